/**
 * Parsers for the value syntaxes an operator writes in the config file: durations (`5s`),
 * sizes (`512k`), addresses (`127.0.0.1:8080`, `[::1]:8080`, `api.internal:8080`) and SRV
 * names (`_http._tcp.api.internal`).
 * Each returns either the parsed value or a sentence that says what is wrong and what to write.
 */

import { isIP } from "node:net";
import { isHostName } from "../dns/names.js";

export { isHostName };

/** The outcome of parsing one value: the value, or an operator-facing reason it is invalid. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/**
 * Parses a duration such as `500ms`, `5s`, `1.5m`, `1h`, `1d` or `1m30s` into milliseconds
 * (rounded to a whole millisecond). A bare number is refused: the unit is never guessed.
 */
export function parseDuration(input: string | number): Parsed<number> {
  if (typeof input === "number" || /^\s*\d+(?:\.\d+)?\s*$/.test(input)) {
    const n = String(input).trim();
    return {
      ok: false,
      error: `duration '${n}' has no unit; add one, e.g. '${n}s' for seconds or '${n}ms' for milliseconds (units: ms, s, m, h, d)`,
    };
  }
  const text = input.trim().toLowerCase();
  DURATION_PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let m = DURATION_PART.exec(text); m !== null; m = DURATION_PART.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number);
    consumed = DURATION_PART.lastIndex;
  }
  if (text === "" || consumed !== text.length) {
    return {
      ok: false,
      error: `invalid duration '${input}': write a number followed by a unit (ms, s, m, h, d), e.g. 500ms, 5s, 1.5m, 1h`,
    };
  }
  return { ok: true, value: Math.round(total) };
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
};

/**
 * Parses a size into bytes: an integer (bytes), or a number with a binary unit `k`/`kb`
 * (1024), `m`/`mb` (1024²) or `g`/`gb` (1024³), case-insensitive: `512k`, `10m`, `1.5GB`.
 */
export function parseSize(input: string | number): Parsed<number> {
  if (typeof input === "number") {
    if (Number.isInteger(input) && input >= 0) return { ok: true, value: input };
    return {
      ok: false,
      error: `invalid size ${input}: write a whole number of bytes, or e.g. 512k, 10m, 1g`,
    };
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  const factor = m ? SIZE_UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    return {
      ok: false,
      error: `invalid size '${input}': write bytes, or a number followed by k, m or g (also kb, mb, gb), e.g. 512k, 10m, 1g`,
    };
  }
  return { ok: true, value: Math.round(Number(m[1]) * factor) };
}

/** A host and port as parsed from `host:port` or `[v6]:port` (IPv6 host without brackets). */
export interface HostPort {
  host: string;
  port: number;
}

/** Splits `host:port` / `[v6]:port`; the host is returned unchecked, the port is checked. */
function splitHostPort(input: string, minPort: number): Parsed<HostPort> | { ok: false; error: "noport" } {
  const m = /^\[([^\]]*)\]:(\d+)$/.exec(input) ?? /^([^:[\]]*):(\d+)$/.exec(input);
  if (!m) return { ok: false, error: "noport" };
  const port = Number(m[2]);
  if (port < minPort || port > 65535) {
    return { ok: false, error: `port ${m[2]} is out of range: use ${minPort}-65535` };
  }
  return { ok: true, value: { host: m[1] as string, port } };
}

/**
 * Parses an upstream peer address `host:port` or `[v6]:port` (port 1-65535); the host may
 * be an IP literal or a DNS name, resolved later by the DNS layer.
 */
export function parseUpstreamAddress(input: string): Parsed<HostPort> {
  const text = input.trim();
  const split = splitHostPort(text, 1);
  if (!split.ok) {
    if (split.error !== "noport") return { ok: false, error: `invalid address '${input}': ${split.error}` };
    return {
      ok: false,
      error: `invalid address '${input}': write host:port, e.g. 10.0.0.5:8080, api.internal:8080 or [::1]:8080`,
    };
  }
  const { host } = split.value;
  const bracketed = text.startsWith("[");
  if (bracketed ? isIP(host) !== 6 : isIP(host) !== 4 && !isHostName(host)) {
    return {
      ok: false,
      error: `invalid address '${input}': '${host}' is not an IP address or host name`,
    };
  }
  if (!bracketed && isIP(host) === 0 && endsInNumericLabel(host)) {
    // `10.0.0.256` would otherwise be taken for a name that never resolves: an upstream with no peers.
    return {
      ok: false,
      error: `invalid address '${input}': '${host}' is not a valid IP address, and a host name cannot end in a numeric label`,
    };
  }
  return split;
}

/** RFC 3696 §2: a top-level domain is never all-numeric, so such a "name" is a mistyped IP address. */
function endsInNumericLabel(name: string): boolean {
  return /(?:^|\.)\d+\.?$/.test(name);
}

/** RFC 2782 service label: an underscore, then letters, digits and inner hyphens. */
const SERVICE_LABEL = /^_[A-Za-z0-9](?:[A-Za-z0-9-]{0,60}[A-Za-z0-9])?$/;

/**
 * Parses an SRV name `_service._proto.name` (RFC 2782; proto `_tcp` or `_udp`), e.g.
 * `_http._tcp.api.internal`, into lower case without the trailing dot.
 */
export function parseServiceName(input: string): Parsed<string> {
  const text = input.trim();
  const fail = (reason: string): Parsed<string> => ({
    ok: false,
    error: `invalid service '${input}': ${reason}; write an SRV name _service._proto.name, e.g. _http._tcp.api.internal`,
  });
  const name = text.replace(/\.$/, "");
  const [service = "", proto, ...rest] = name.split(".");
  const domain = rest.join(".");
  if (!SERVICE_LABEL.test(service)) {
    return fail(`'${service}' is not a service label (an underscore, then letters, digits and '-')`);
  }
  if (proto === undefined || !["_tcp", "_udp"].includes(proto.toLowerCase())) {
    return fail(
      proto === undefined
        ? "the protocol label is missing"
        : `the protocol label must be _tcp or _udp (got '${proto}')`,
    );
  }
  if (domain === "") return fail("the domain name is missing");
  if (!isHostName(domain) || domain.endsWith(".") || endsInNumericLabel(domain) || name.length > 253) {
    return fail(`'${domain}' is not a valid domain name`);
  }
  return { ok: true, value: name.toLowerCase() };
}

/** A `listen` entry: the address and its flags. */
export interface ListenSpec extends HostPort {
  tls: boolean;
  h2c: boolean;
}

/** What an operator coming from nginx may write after the address, and what to write instead. */
const LISTEN_FLAG_HINTS: Record<string, string> = {
  ssl: "write 'tls' (nginx's 'ssl')",
  https: "write 'tls'",
  http2: "HTTP/2 is offered on every 'tls' address (see http2.enabled); on a plain address write 'h2c'",
  h2: "HTTP/2 is offered on every 'tls' address; on a plain address write 'h2c'",
};

/**
 * Parses a `listen` entry: `IP:port`, `[IPv6]:port` or a bare port (meaning 0.0.0.0:port),
 * optionally followed by flags: `tls` (TLS, with HTTP/2 by ALPN) or `h2c` (plain HTTP/2
 * with prior knowledge, besides HTTP/1.1), e.g. `127.0.0.1:8443 tls`.
 */
export function parseListenAddress(input: string | number): Parsed<ListenSpec> {
  const [address = "", ...flags] = String(input).trim().split(/\s+/);
  const parsed = parseListenHostPort(address);
  if (!parsed.ok) return parsed;
  const spec: ListenSpec = { ...parsed.value, tls: false, h2c: false };
  for (const flag of flags) {
    const lower = flag.toLowerCase();
    if (lower === "tls" || lower === "h2c") {
      spec[lower] = true;
      continue;
    }
    const hint = LISTEN_FLAG_HINTS[lower] ?? "the flags are 'tls' and 'h2c'";
    return {
      ok: false,
      error: `invalid listen address '${String(input).trim()}': unknown flag '${flag}': ${hint}`,
    };
  }
  if (spec.tls && spec.h2c) {
    return {
      ok: false,
      error: `invalid listen address '${String(input).trim()}': 'tls' and 'h2c' exclude each other ('tls' addresses offer HTTP/2 by ALPN already)`,
    };
  }
  return { ok: true, value: spec };
}

/**
 * The address of a `listen` entry: `IP:port`, `[IPv6]:port`, or a bare port (string or
 * integer) meaning `0.0.0.0:port`. Port 0 lets the OS pick (tests). Host names are refused: Portico
 * binds addresses, it does not resolve them.
 */
function parseListenHostPort(text: string): Parsed<HostPort> {
  if (/^\d+$/.test(text)) {
    const port = Number(text);
    if (port > 65535) return { ok: false, error: `invalid listen address '${text}': port must be 0-65535` };
    return { ok: true, value: { host: "0.0.0.0", port } };
  }
  const split = splitHostPort(text, 0);
  if (!split.ok) {
    if (split.error !== "noport")
      return { ok: false, error: `invalid listen address '${text}': ${split.error}` };
    return {
      ok: false,
      error: `invalid listen address '${text}': write IP:port, [IPv6]:port or a port, e.g. 127.0.0.1:8080, [::1]:8080, 8080`,
    };
  }
  const { host, port } = split.value;
  const family = text.startsWith("[") ? 6 : 4;
  if (isIP(host) === family) return { ok: true, value: { host, port } };
  if (family === 4 && isHostName(host)) {
    return {
      ok: false,
      error: `invalid listen address '${text}': '${host}' is a host name, but Portico binds IP addresses; use e.g. 127.0.0.1:${port}, 0.0.0.0:${port} or [::1]:${port}`,
    };
  }
  return { ok: false, error: `invalid listen address '${text}': '${host}' is not an IP address` };
}

/** Parses a `hash.key`: `client_ip`, `uri`, `header:NAME` or `cookie:NAME`. */
export function parseHashKey(
  input: string,
): Parsed<
  | { kind: "client_ip" }
  | { kind: "uri" }
  | { kind: "header"; name: string }
  | { kind: "cookie"; name: string }
> {
  const text = input.trim();
  if (text === "client_ip" || text === "uri") return { ok: true, value: { kind: text } };
  const m = /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(text);
  if (m) {
    const kind = m[1] as "header" | "cookie";
    return {
      ok: true,
      value: { kind, name: kind === "header" ? (m[2] as string).toLowerCase() : (m[2] as string) },
    };
  }
  return {
    ok: false,
    error: `invalid hash key '${text}': write client_ip, uri, header:NAME or cookie:NAME (e.g. header:x-user-id)`,
  };
}

/** Parses a health-check status: a code (`200`) or an inclusive range (`"200-399"`). */
export function parseStatusRange(input: string | number): Parsed<[number, number]> {
  const text = String(input).trim();
  const m = /^([1-5]\d\d)(?:\s*-\s*([1-5]\d\d))?$/.exec(text);
  if (!m)
    return {
      ok: false,
      error: `invalid status '${text}': write a code (200) or a range ("200-399"), 100-599`,
    };
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (hi < lo) return { ok: false, error: `invalid status range '${text}': ${hi} is below ${lo}` };
  return { ok: true, value: [lo, hi] };
}

/** An IP address or CIDR range, normalized: `{ address, prefix, family }`. */
export interface Cidr {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128). */
export function parseCidr(input: string): Parsed<Cidr> {
  const text = input.trim();
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  const max = version === 6 ? 128 : 32;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (version === 0 || !(prefix >= 0 && prefix <= max)) {
    return {
      ok: false,
      error: `invalid address or CIDR range '${input}': write an IP address (10.0.0.1) or a range (10.0.0.0/8, fd00::/8)${version !== 0 ? `; the prefix length must be 0-${max}` : ""}`,
    };
  }
  return { ok: true, value: { address, prefix, family: version === 6 ? "ipv6" : "ipv4" } };
}
