/**
 * How discovery words DNS trouble for the operator: which nameservers failed, with which code
 * and over which transport, and the missing end of a dangling CNAME.
 */
import { type DnsError, describeFailures } from "../dns/index.js";

/** A failure as an operator reads it: every nameserver's code, URL and transport, or the message. */
export function describeFailure(err: DnsError): string {
  const failures = err.details.failures;
  return failures?.length ? describeFailures(failures) : `${err.code}: ${err.message}`;
}

/** Which servers failed how (`TIMEOUT udp://10.0.0.53`), without the details that change every time. */
export function failureSignature(err: DnsError): string {
  return err.details.failures?.map((f) => `${f.code} ${f.server}`).join(",") ?? err.code;
}

/** `NXDOMAIN (A) from udp://10.0.0.53:53 over udp`, naming the missing target of a dangling CNAME. */
export function negativeReason(err: DnsError, name: string, type: string): string {
  const { server, transport, target } = err.details;
  const alias = target && target !== name ? `, for ${target}, the CNAME target of ${name}` : "";
  const from = server ? ` from ${server}${transport ? ` over ${transport}` : ""}` : "";
  return `${err.code} (${type}${alias})${from}`;
}

/** `12 s`, `1.5 s`, `250 ms`. */
export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
