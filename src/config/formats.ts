/**
 * The string formats the config schema uses (`"format": "duration"` etc.). One table serves
 * both ajv (does the value pass?) and the error rewriter (what exactly is wrong with it?), so
 * the check and its message never drift apart.
 */

import { isIP } from "node:net";
import { NAMESERVER_FORMS, nameserverProblem } from "../dns/index.js";
import {
  isHostName,
  parseCidr,
  parseDuration,
  parseHashKey,
  parseListenAddress,
  parseServiceName,
  parseSize,
  parseStatusRange,
  parseUpstreamAddress,
} from "./units.js";

/** A named string format: what a valid value looks like, and a check that explains failures. */
export interface ValueFormat {
  /** Noun phrase for messages: "`connect` must be <expected>". */
  expected: string;
  /** Returns undefined when `value` is valid, else a sentence saying what is wrong. */
  check(value: string): string | undefined;
}

/** RFC 9110 §5.6.2: a field name is a token. */
const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Upstream names are used in metrics labels and messages: keep them plain. */
const UPSTREAM_NAME = /^[A-Za-z0-9_.-]+$/;

function errorOf(parsed: { ok: true } | { ok: false; error: string }): string | undefined {
  return parsed.ok ? undefined : parsed.error;
}

/** Checks one `server_names` entry: a host name, `*.suffix`, an IP literal or `[IPv6]`. */
export function checkServerName(name: string): string | undefined {
  const lower = name.toLowerCase();
  const base = lower.startsWith("*.") ? lower.slice(2) : lower;
  const v6 = /^\[(.*)\]$/.exec(base);
  if (v6 && !lower.startsWith("*.") && isIP(v6[1] as string) === 6) return undefined;
  if (base !== "" && !base.includes("*") && isHostName(base) && !base.endsWith(".")) return undefined;
  return `invalid server name '${name}': use an exact host name (example.com), a wildcard '*.example.com', or an IP address`;
}

/** Checks one `dns.nameservers` entry: a nameserver URL or a bare IP address. */
export function checkNameserver(value: string): string | undefined {
  const problem = nameserverProblem(value.trim());
  if (problem === undefined) return undefined;
  return `invalid nameserver '${value}': ${problem}; valid forms are ${NAMESERVER_FORMS}`;
}

/** Every format the schema refers to, by name. */
export const valueFormats: Record<string, ValueFormat> = {
  duration: {
    expected: "a duration with a unit, e.g. 500ms, 5s, 1m, 1h",
    check: (v) => errorOf(parseDuration(v)),
  },
  size: {
    expected: "a size in bytes, or with a unit, e.g. 512k, 10m, 1g",
    check: (v) => errorOf(parseSize(v)),
  },
  "status-range": {
    expected: 'a status code or a range ("200-399")',
    check: (v) => errorOf(parseStatusRange(v)),
  },
  "hash-key": {
    expected: "client_ip, uri, header:NAME or cookie:NAME",
    check: (v) => errorOf(parseHashKey(v)),
  },
  "tls-auto": {
    expected: "`auto` or a mapping with `certificates`",
    check: (v) =>
      v === "auto"
        ? undefined
        : `'${v}' is not a tls setting: write 'tls: auto' for a development certificate, or 'tls: { certificates: [{ cert: FILE, key: FILE }] }'`,
  },
  listen: {
    expected: "an address to listen on (IP:port, [IPv6]:port or a port)",
    check: (v) => errorOf(parseListenAddress(v)),
  },
  "upstream-address": {
    expected: "host:port (e.g. 10.0.0.5:8080, api.internal:8080, [::1]:8080)",
    check: (v) => errorOf(parseUpstreamAddress(v)),
  },
  "srv-name": {
    expected: "an SRV name _service._proto.name (e.g. _http._tcp.api.internal)",
    check: (v) => errorOf(parseServiceName(v)),
  },
  nameserver: {
    expected: `a nameserver: ${NAMESERVER_FORMS}`,
    check: checkNameserver,
  },
  "server-name": {
    expected: "a host name or '*.suffix' wildcard",
    check: checkServerName,
  },
  "header-name": {
    expected: "an HTTP header name",
    check: (v) =>
      HEADER_TOKEN.test(v)
        ? undefined
        : `invalid header name '${v}': use letters, digits and - (e.g. X-Forwarded-Proto), no spaces or colons`,
  },
  "upstream-name": {
    expected: "an upstream name (letters, digits, '_', '.', '-')",
    check: (v) => {
      if (!UPSTREAM_NAME.test(v))
        return `invalid upstream name '${v}': use only letters, digits, '_', '.' and '-'`;
      // Reserved so that code indexing `Config.upstreams` by name can never reach the prototype.
      return v === "__proto__" ? "the upstream name '__proto__' is reserved: choose another name" : undefined;
    },
  },
  workers: {
    expected: "an integer >= 1 or 'auto'",
    check: (v) => (v === "auto" ? undefined : `workers must be an integer >= 1 or 'auto' (got '${v}')`),
  },
  "path-prefix": {
    expected: "a path starting with /",
    check: (v) => (v.startsWith("/") ? undefined : `path '${v}' must start with '/', e.g. '/${v}'`),
  },
  cidr: {
    expected: "an IP address or CIDR range (10.0.0.0/8, 2001:db8::/32)",
    check: (v) => errorOf(parseCidr(v)),
  },
  "error-log": {
    expected: "stdout, stderr or a file path",
    check: (v) =>
      v === "off" ? "the error log cannot be turned off: use stderr, stdout or a file path" : undefined,
  },
};
