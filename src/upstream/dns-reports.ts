/**
 * How DNS trouble is worded for the operator: which nameservers failed, with which code
 * and over which transport, and the missing end of a dangling CNAME.
 */
import { type DnsError, describeFailures } from "../dns/index.js";

/**
 * A DNS error as an operator reads it, one wording for discovery's logs, the 503 and
 * `portico check`: every failing nameserver's code, URL and transport; for NXDOMAIN/NODATA the
 * server that said so (and the missing target of a dangling CNAME); else the code and message.
 */
export function explainDnsError(err: DnsError): string {
  const { failures, server, transport, target, name } = err.details;
  if (failures?.length) return describeFailures(failures);
  if (err.code !== "NXDOMAIN" && err.code !== "NODATA") return `${err.code}: ${err.message}`;
  const missing = target && target !== name ? ` for ${target}, the CNAME target of ${name}` : "";
  const from = server ? ` from ${server}${transport ? ` over ${transport}` : ""}` : "";
  return `${err.code}${missing}${from}`;
}

/** Which servers failed how (`TIMEOUT udp://10.0.0.53`), without the details that change every time. */
export function failureSignature(err: DnsError): string {
  return err.details.failures?.map((f) => `${f.code} ${f.server}`).join(",") ?? err.code;
}

/** `12 s`, `1.5 s`, `250 ms`. */
export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
