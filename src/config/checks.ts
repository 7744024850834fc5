/**
 * Checks that JSON Schema expresses badly, done in code so each gets a clear message:
 * one matcher and one action per route, references to upstreams, regexes that compile,
 * redirect variables, server names / default servers that collide on a listen address,
 * exactly one of address/service per upstream server, and the `dns` section's TTL order,
 * cert/key pair and PEM files. They run on the data after ajv filled in defaults, and
 * tolerate parts the schema rejected.
 */

import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type Parsed, parseRate, parseRateKey, parseStore } from "../ratelimit/syntax.js";
import { checkServerName } from "./formats.js";
import { compileRouteRegex } from "./regex.js";
import { quoteList, suggestion } from "./suggest.js";
import type { ConfigIssue } from "./types.js";
import { parseCidr, parseDuration, parseListenAddress, parseSize } from "./units.js";
import type { DataPath, SourceDocument } from "./yaml-source.js";

type Data = Record<string, unknown>;

const isRecord = (value: unknown): value is Data =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const listOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

const MATCHERS = ["exact", "path", "regex"] as const;
const ACTIONS = ["upstream", "return", "redirect"] as const;

/** Variables a redirect target may contain (nginx names). */
export const REDIRECT_VARIABLES = ["scheme", "host", "request_uri", "uri", "args"] as const;

/**
 * A route's `rate_limit`: the rate (`100/s`, `30/m`), the key and the store URL, each with
 * the value's position and what to write instead. A Redis store is only checked as a URL
 * here: Redis down is a warning at run time, never a refused config.
 */
function checkRateLimit(limit: Data, path: DataPath, source: SourceDocument): ConfigIssue[] {
  const { rate, key, store } = limit;
  const problems: Array<[string, Parsed<unknown> | undefined]> = [
    ["rate", typeof rate === "string" || typeof rate === "number" ? parseRate(rate) : undefined],
    ["key", typeof key === "string" ? parseRateKey(key) : undefined],
    ["store", typeof store === "string" ? parseStore(store) : undefined],
  ];
  return problems.flatMap(([name, parsed]) =>
    parsed?.ok === false ? [source.issue(source.valueAt([...path, name]), parsed.error)] : [],
  );
}

/** Checks one route: matcher/action counts, option combinations, regex, upstream, redirect. */
function checkRoute(
  route: Data,
  path: DataPath,
  upstreamNames: string[],
  source: SourceDocument,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (key: string) => source.keyAt(path, key);
  const value = (key: string) => source.valueAt([...path, key]);
  const matchers = MATCHERS.filter((k) => k in route);
  const actions = ACTIONS.filter((k) => k in route);

  if (matchers.length === 0) {
    issues.push(
      source.issue(
        source.valueAt(path),
        "route has no matcher: add one of 'exact: /path', 'path: /prefix' or 'regex: ^/pattern'",
      ),
    );
  } else if (matchers.length > 1) {
    issues.push(
      source.issue(
        at(matchers[1] as string),
        `route has more than one matcher (${quoteList(matchers)}): keep exactly one and write a separate route for the other`,
      ),
    );
  }
  if (actions.length === 0) {
    issues.push(
      source.issue(
        source.valueAt(path),
        "route has no action: add one of 'upstream: NAME', 'return: {status: ...}' or 'redirect: {to: ...}'",
      ),
    );
  } else if (actions.length > 1) {
    issues.push(
      source.issue(
        at(actions[1] as string),
        `route has more than one action (${quoteList(actions)}): keep exactly one and write a separate route for the other`,
      ),
    );
  }
  if (route.strip_prefix === true && !("path" in route && "upstream" in route)) {
    issues.push(
      source.issue(
        at("strip_prefix"),
        "strip_prefix only works on a route with both 'path: /prefix' and 'upstream: NAME'; remove it",
      ),
    );
  }
  if (route.ignore_case === true && !("regex" in route)) {
    issues.push(
      source.issue(
        at("ignore_case"),
        "ignore_case only applies to 'regex' routes; remove it, or match with 'regex'",
      ),
    );
  }
  if (typeof route.regex === "string" && route.regex !== "") {
    try {
      compileRouteRegex(route.regex, route.ignore_case === true);
    } catch (error) {
      issues.push(
        source.issue(value("regex"), `invalid regex '${route.regex}': ${(error as Error).message}`),
      );
    }
  }
  if (typeof route.upstream === "string" && !upstreamNames.includes(route.upstream)) {
    const tail =
      upstreamNames.length > 0
        ? suggestion(route.upstream, upstreamNames, "defined upstreams")
        : "; no upstreams are defined: add it under 'upstreams:'";
    issues.push(source.issue(value("upstream"), `upstream '${route.upstream}' is not defined${tail}`));
  }
  if (isRecord(route.rate_limit))
    issues.push(...checkRateLimit(route.rate_limit, [...path, "rate_limit"], source));
  const redirect = route.redirect;
  if (isRecord(redirect) && typeof redirect.to === "string") {
    for (const [, name] of redirect.to.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (!(REDIRECT_VARIABLES as readonly string[]).includes(name as string)) {
        issues.push(
          source.issue(
            source.valueAt([...path, "redirect", "to"]),
            `unknown variable '$${name}' in redirect target${suggestion(name as string, REDIRECT_VARIABLES, "known variables")}`,
          ),
        );
      }
    }
  }
  return issues;
}

/** Canonical `host:port` of a listen entry, or undefined when it is invalid (reported by the schema). */
function listenKey(entry: unknown): string | undefined {
  if (typeof entry !== "string" && typeof entry !== "number") return undefined;
  const parsed = parseListenAddress(entry);
  if (!parsed.ok) return undefined;
  const { host, port } = parsed.value;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Server names and default servers must be unique per listen address (host + port): a
 * request on that address must reach exactly one server.
 */
function checkServerCollisions(servers: unknown[], source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const nameOwners = new Map<string, { line: number; server: number }>();
  const defaultOwners = new Map<string, number>();
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    const listen = Array.isArray(server.listen) ? server.listen : [server.listen];
    const addresses = [...new Set(listen.map(listenKey).filter((k) => k !== undefined))];
    const serverLine = source.valueAt(["servers", i]).line;
    listOf(server.server_names).forEach((name, j) => {
      if (typeof name !== "string" || checkServerName(name) !== undefined) return;
      const at = source.valueAt(["servers", i, "server_names", j]);
      for (const address of addresses) {
        const key = `${address} ${name.toLowerCase()}`;
        const first = nameOwners.get(key);
        if (!first) {
          nameOwners.set(key, { line: at.line, server: i });
          continue;
        }
        const where =
          first.server === i
            ? `this server already lists it (line ${first.line})`
            : `the server at line ${source.valueAt(["servers", first.server]).line} already uses it (line ${first.line})`;
        issues.push(
          source.issue(
            at,
            `server name '${name}' appears twice on ${address}: ${where}; a name may be used once per listen address`,
          ),
        );
        break;
      }
    });
    if (server.default !== true) return;
    for (const address of addresses) {
      const first = defaultOwners.get(address);
      if (first === undefined) {
        defaultOwners.set(address, serverLine);
        continue;
      }
      issues.push(
        source.issue(
          source.valueAt(["servers", i, "default"]),
          `two default servers on ${address}: the server at line ${first} is already the default; only one server per listen address may have 'default: true'`,
        ),
      );
      break;
    }
  });
  return issues;
}

/**
 * `0.0.0.0:P` beside `[::]:P`: Node listens on `::` dual-stack (IPv4 too, as Linux does by
 * default), so the second cannot be bound and the start fails with EADDRINUSE. Refused here.
 */
function checkDualStack(servers: unknown[], source: SourceDocument): ConfigIssue[] {
  const wildcard4 = new Map<number, DataPath>();
  const wildcard6 = new Map<number, DataPath>();
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    const list = Array.isArray(server.listen) ? server.listen : [server.listen];
    list.forEach((entry, j) => {
      if (typeof entry !== "string" && typeof entry !== "number") return;
      const parsed = parseListenAddress(entry);
      if (!parsed.ok) return;
      const path: DataPath = Array.isArray(server.listen)
        ? ["servers", i, "listen", j]
        : ["servers", i, "listen"];
      const { host, port } = parsed.value;
      if (host === "0.0.0.0" && !wildcard4.has(port)) wildcard4.set(port, path);
      if (host === "::" && !wildcard6.has(port)) wildcard6.set(port, path);
    });
  });
  const issues: ConfigIssue[] = [];
  for (const [port, path] of wildcard6) {
    const v4 = wildcard4.get(port);
    if (!v4) continue;
    issues.push(
      source.issue(
        source.valueAt(v4),
        `0.0.0.0:${port} cannot be listened on beside [::]:${port} (line ${source.valueAt(path).line}): [::]:${port} already accepts IPv4 connections too (dual-stack); keep only "[::]:${port}"`,
      ),
    );
  }
  return issues;
}

/** The TLS settings servers sharing one `tls` address must agree on (OpenSSL fixes them before SNI). */
function tlsHandshakeSettings(tls: unknown): string {
  if (!isRecord(tls)) return "TLSv1.2 default ciphers";
  const ciphers = typeof tls.ciphers === "string" ? tls.ciphers : "default ciphers";
  return `${String(tls.min_version ?? "TLSv1.2")} ${ciphers}`;
}

/**
 * TLS across servers and addresses: a `tls` address needs certificates on every server on
 * it; one address is TLS (or h2c) for every server on it or for none; servers sharing a TLS
 * address agree on min_version and ciphers; https_redirect needs a `tls` address; hsts and
 * unused certificates are warned about.
 */
function checkTls(servers: unknown[], source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  /** Canonical address -> its first use: flags, handshake settings, where. */
  const seen = new Map<string, { flags: string; handshake: string; line: number; tls: boolean }>();
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    const path = ["servers", i];
    const listen = Array.isArray(server.listen) ? server.listen : [server.listen];
    let hasTls = false;
    let hasPlain = false;
    listen.forEach((entry, j) => {
      if (typeof entry !== "string" && typeof entry !== "number") return;
      const parsed = parseListenAddress(entry);
      if (!parsed.ok) return;
      const spec = parsed.value;
      const at = source.valueAt(Array.isArray(server.listen) ? [...path, "listen", j] : [...path, "listen"]);
      if (spec.tls) hasTls = true;
      else hasPlain = true;
      if (spec.tls && server.tls === undefined) {
        issues.push(
          source.issue(
            at,
            `listen '${String(entry).trim()}' is a TLS address, but this server has no certificates: add 'tls: { certificates: [{ cert: FILE, key: FILE }] }' (or 'tls: auto' for development) to the server`,
          ),
        );
      }
      const key = spec.host.includes(":") ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
      const flags = spec.tls ? "tls" : spec.h2c ? "h2c" : "plain";
      const handshake = spec.tls ? tlsHandshakeSettings(server.tls) : "";
      const first = seen.get(key);
      if (!first) {
        seen.set(key, { flags, handshake, line: at.line, tls: spec.tls });
        return;
      }
      if (first.flags !== flags) {
        issues.push(
          source.issue(
            at,
            `${key} is '${flags}' here but '${first.flags}' at line ${first.line}: one address is TLS, h2c or plain for every server on it; write the same flag on both`,
          ),
        );
      } else if (spec.tls && first.handshake !== handshake) {
        issues.push(
          source.issue(
            at,
            `servers sharing the TLS address ${key} must use the same tls.min_version and tls.ciphers (OpenSSL settles them before SNI picks a server): this server has '${handshake}', the one at line ${first.line} has '${first.handshake}'`,
          ),
        );
      }
    });
    if (server.tls !== undefined && !hasTls) {
      issues.push(
        source.issue(
          source.keyAt(path, "tls"),
          "this server has 'tls' but none of its listen addresses has the 'tls' flag, so its certificates are not used: write e.g. listen: [\"443 tls\"]",
          "warning",
        ),
      );
    }
    if (server.https_redirect === true && (!hasTls || !hasPlain)) {
      issues.push(
        source.issue(
          source.keyAt(path, "https_redirect"),
          hasTls
            ? "https_redirect redirects requests on plain addresses, but every listen address of this server is 'tls': remove it, or add a plain address"
            : "https_redirect needs an address to redirect to: add a 'tls' listen address to this server (e.g. \"443 tls\")",
        ),
      );
    }
    const hsts = server.hsts;
    if (hsts !== undefined && hsts !== false && !hasTls) {
      issues.push(
        source.issue(
          source.keyAt(path, "hsts"),
          "hsts is only sent over TLS, and this server has no 'tls' listen address: it is never sent",
          "warning",
        ),
      );
    }
    if (isRecord(hsts) && hsts.preload === true) {
      const maxAge = typeof hsts.max_age === "string" ? parseDuration(hsts.max_age) : undefined;
      if (hsts.include_subdomains !== true || (maxAge?.ok && maxAge.value < 365 * 86_400_000)) {
        issues.push(
          source.issue(
            source.keyAt([...path, "hsts"], "preload"),
            "hsts.preload: the browsers' preload lists only accept include_subdomains: true with max_age of at least 365d",
            "warning",
          ),
        );
      }
    }
  });
  return issues;
}

/** The `http2` section: a header list too small for any browser's request. */
function checkHttp2(http2: Data, source: SourceDocument): ConfigIssue[] {
  const value = http2.max_header_list_size;
  const parsed = typeof value === "string" || typeof value === "number" ? parseSize(value) : undefined;
  if (!parsed?.ok || parsed.value >= 1024) return [];
  return [
    source.issue(
      source.valueAt(["http2", "max_header_list_size"]),
      `http2.max_header_list_size of ${parsed.value} bytes is too small for a browser's request headers: use at least 1k (default 32k)`,
    ),
  ];
}

/** Smallest sensible request limits (the schema's minimums apply to integers only; sizes may be strings). */
const LIMIT_MINIMUMS: Record<string, number> = { max_url: 16, max_header_size: 1024 };

/** Request limits written as sizes below their minimum, at the top level and per server. */
function checkLimitSizes(limits: Data, path: DataPath, source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [key, min] of Object.entries(LIMIT_MINIMUMS)) {
    const value = limits[key];
    const parsed = typeof value === "string" || typeof value === "number" ? parseSize(value) : undefined;
    if (parsed?.ok && parsed.value < min) {
      issues.push(
        source.issue(
          source.valueAt([...path, key]),
          `${key} of ${parsed.value} bytes is too small: use at least ${min} bytes (default ${key === "max_url" ? "8k" : "32k"})`,
        ),
      );
    }
  }
  return issues;
}

/** The admin listener: a plain address, and a token unless it is on loopback. */
function checkAdmin(admin: Data, source: SourceDocument): ConfigIssue[] {
  const listen = admin.listen;
  if (typeof listen !== "string" && typeof listen !== "number") return [];
  const parsed = parseListenAddress(listen);
  if (!parsed.ok) return [];
  const at = source.valueAt(["admin", "listen"]);
  if (parsed.value.tls || parsed.value.h2c) {
    return [
      source.issue(at, `admin.listen '${listen}' takes no flag: write only the address, e.g. 127.0.0.1:9901`),
    ];
  }
  const rate = admin.dns_rate;
  const parsedRate = typeof rate === "string" || typeof rate === "number" ? parseRate(rate) : undefined;
  if (parsedRate?.ok === false)
    return [source.issue(source.valueAt(["admin", "dns_rate"]), parsedRate.error)];
  const host = parsed.value.host;
  const loopback = host === "::1" || host.startsWith("127.");
  if (!loopback && typeof admin.token !== "string") {
    return [
      source.issue(
        at,
        `admin.listen '${listen}' is not a loopback address, so the admin listener needs a token: add 'token: <at least 16 characters>' (clients send 'Authorization: Bearer TOKEN'), or listen on 127.0.0.1`,
      ),
    ];
  }
  return [];
}

/** `trusted_proxies` that trust everyone: any client could then claim any address. */
function checkTrustedProxies(list: unknown[], source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  list.forEach((entry, i) => {
    if (typeof entry !== "string") return;
    const parsed = parseCidr(entry);
    if (parsed.ok && parsed.value.prefix === 0) {
      issues.push(
        source.issue(
          source.valueAt(["trusted_proxies", i]),
          `trusted_proxies '${entry}' trusts every address: any client can then set its own address with X-Forwarded-For; list only your load balancers`,
          "warning",
        ),
      );
    }
  });
  return issues;
}

/** An upstream's `tls`: cert with key, readable PEM files, and a warning for verify: false. */
function checkUpstreamTls(tls: Data, path: DataPath, source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if ("cert" in tls !== "key" in tls) {
    const [has, lacks] = "cert" in tls ? ["cert", "key"] : ["key", "cert"];
    issues.push(
      source.issue(
        source.keyAt(path, has as string),
        `tls.${has} needs tls.${lacks}: a client certificate goes with its private key`,
      ),
    );
  }
  const configDir = dirname(resolve(source.file));
  for (const key of TLS_FILES) {
    const value = tls[key];
    if (typeof value !== "string" || value === "") continue;
    const problem = pemFileProblem(key, resolve(configDir, value));
    if (problem !== undefined) issues.push(source.issue(source.valueAt([...path, key]), problem));
  }
  if (tls.verify === false) {
    issues.push(
      source.issue(
        source.valueAt([...path, "verify"]),
        "tls.verify: false accepts any certificate from the peers, so anyone on the path can read and change this traffic; give the peers' CA with tls.ca instead",
        "warning",
      ),
    );
  }
  return issues;
}

/**
 * Upstream policies: `balance: hash` needs `hash`, and `hash` means nothing without it; a
 * health check's body regex compiles, and its interval and timeout are not 0.
 */
function checkBalance(upstreams: Data, source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [name, upstream] of Object.entries(upstreams)) {
    if (!isRecord(upstream)) continue;
    const path = ["upstreams", name];
    if (upstream.balance === "hash" && upstream.hash === undefined) {
      issues.push(
        source.issue(
          source.valueAt([...path, "balance"]),
          "balance: hash needs to know what to hash on: add 'hash: { key: client_ip }' (or uri, header:NAME, cookie:NAME)",
        ),
      );
    }
    const health = upstream.health;
    if (isRecord(health) && typeof health.body === "string") {
      try {
        new RegExp(health.body);
      } catch (error) {
        issues.push(
          source.issue(
            source.valueAt([...path, "health", "body"]),
            `health.body is not a valid regular expression: ${(error as Error).message}`,
          ),
        );
      }
    }
    if (isRecord(health)) {
      for (const key of ["interval", "timeout"]) {
        const value = health[key];
        const parsed = typeof value === "string" ? parseDuration(value) : undefined;
        if (parsed?.ok && parsed.value === 0) {
          issues.push(
            source.issue(source.valueAt([...path, "health", key]), `health.${key} must be greater than 0`),
          );
        }
      }
    }
    if (isRecord(upstream.tls)) issues.push(...checkUpstreamTls(upstream.tls, [...path, "tls"], source));
    // A balance of the wrong type is the schema's to report.
    if (upstream.hash !== undefined && typeof upstream.balance === "string" && upstream.balance !== "hash") {
      issues.push(
        source.issue(
          source.keyAt(path, "hash"),
          `'hash' only applies with 'balance: hash' (this upstream balances with ${String(upstream.balance)}): write balance: hash, or remove it`,
        ),
      );
    }
  }
  return issues;
}

/** Whether `key` is written in the YAML mapping at `path`, rather than filled in from a default. */
function isWritten(source: SourceDocument, path: DataPath, key: string): boolean {
  // nodeAt stops at the deepest node that exists, so a missing key lands on the mapping itself.
  return source.nodeAt([...path, key]) !== source.nodeAt(path);
}

const EXACTLY_ONE_SOURCE =
  "upstream server needs exactly one of 'address: host:port' or 'service: _http._tcp.name'";

/** Each upstream server is an address or an SRV service, and only an address has a weight. */
function checkUpstreamServers(upstreams: Data, source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [name, upstream] of Object.entries(upstreams)) {
    if (!isRecord(upstream)) continue;
    listOf(upstream.servers).forEach((server, i) => {
      if (!isRecord(server)) return;
      const path = ["upstreams", name, "servers", i];
      const hasAddress = "address" in server;
      const hasService = "service" in server;
      if (!hasAddress && !hasService) {
        issues.push(source.issue(source.valueAt(path), EXACTLY_ONE_SOURCE));
      } else if (hasAddress && hasService) {
        issues.push(
          source.issue(
            source.keyAt(path, "service"),
            `${EXACTLY_ONE_SOURCE}, not both: write them as two servers`,
          ),
        );
      } else if (hasService && isWritten(source, path, "weight")) {
        issues.push(
          source.issue(
            source.keyAt(path, "weight"),
            "weight does not apply to a 'service' server: SRV records carry their own weights; remove it",
          ),
        );
      }
    });
  }
  return issues;
}

/** The reason part of a Node fs error: `ENOENT: no such file or directory, open 'x'` -> `no such file or directory`. */
export function fsReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /^[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/** The text of the file `file` given as `key` (a regular file only), or why it cannot be read. */
export function readPemFile(key: string, file: string): { text: string } | { error: string } {
  try {
    // A device such as /dev/zero would never finish reading.
    if (!statSync(file).isFile()) return { error: `${key} file '${file}' is not a regular file` };
    return { text: readFileSync(file, "utf8") };
  } catch (error) {
    return { error: `cannot read ${key} file '${file}': ${fsReason(error)}` };
  }
}

/** What is wrong with the PEM file `file` given as `key`, or undefined when it reads as PEM. */
function pemFileProblem(key: string, file: string): string | undefined {
  const read = readPemFile(key, file);
  if ("error" in read) return read.error;
  return read.text.includes("-----BEGIN ")
    ? undefined
    : `${key} file '${file}' is not PEM: it has no '-----BEGIN ...' line`;
}

const TLS_FILES = ["ca", "cert", "key"] as const;

/** The `dns` section: durations that must not be 0, min_ttl <= max_ttl, cert with key, readable PEM files. */
function checkDns(dns: Data, source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const path = ["dns"];
  const written = (key: string) => isWritten(source, path, key);
  const ms = (key: string): number | undefined => {
    const value = dns[key];
    const parsed = typeof value === "string" ? parseDuration(value) : undefined;
    return parsed?.ok ? parsed.value : undefined;
  };
  if (ms("timeout") === 0) {
    issues.push(source.issue(source.valueAt([...path, "timeout"]), "timeout must be longer than 0, e.g. 2s"));
  }
  const retryMax = ms("retry_max");
  if (retryMax !== undefined && retryMax < 1000) {
    issues.push(
      source.issue(
        source.valueAt([...path, "retry_max"]),
        `retry_max must be at least 1s: it bounds the wait between two tries of a failing name, and shorter would hammer a nameserver that is down (got ${String(dns.retry_max)})`,
      ),
    );
  }
  const minTtl = ms("min_ttl");
  const maxTtl = ms("max_ttl");
  if (minTtl === 0) {
    issues.push(
      source.issue(
        source.valueAt([...path, "min_ttl"]),
        "min_ttl must be longer than 0: it is also the shortest interval between two refreshes of a name (e.g. 1s)",
      ),
    );
  }
  if (minTtl !== undefined && maxTtl !== undefined && maxTtl < minTtl) {
    const shown = (key: string) => `${key} (${String(dns[key])}${written(key) ? "" : ", the default"})`;
    issues.push(
      source.issue(
        source.valueAt([...path, written("max_ttl") ? "max_ttl" : "min_ttl"]),
        `${shown("max_ttl")} is shorter than ${shown("min_ttl")}: max_ttl must be at least min_ttl`,
      ),
    );
  }
  if ("cert" in dns && !("key" in dns)) {
    issues.push(
      source.issue(
        source.keyAt(path, "cert"),
        "cert needs key: a client certificate goes with its private key; add 'key: PATH'",
      ),
    );
  }
  if ("key" in dns && !("cert" in dns)) {
    issues.push(
      source.issue(
        source.keyAt(path, "key"),
        "key needs cert: a private key goes with its client certificate; add 'cert: PATH'",
      ),
    );
  }
  const configDir = dirname(resolve(source.file));
  const nameservers = listOf(dns.nameservers);
  const encrypted = nameservers.some((n) => typeof n === "string" && /^\s*(?:tls|https):/i.test(n));
  for (const key of TLS_FILES) {
    const value = dns[key];
    if (typeof value !== "string" || value === "") continue;
    const problem = pemFileProblem(key, resolve(configDir, value));
    if (problem !== undefined) issues.push(source.issue(source.valueAt([...path, key]), problem));
    if (!encrypted) {
      const none =
        nameservers.length > 0
          ? "'nameservers' lists none"
          : "without 'nameservers' the plain nameservers of /etc/resolv.conf are used";
      issues.push(
        source.issue(
          source.keyAt(path, key),
          `${key} has no effect: it is only used by tls:// and https:// nameservers, and ${none}`,
          "warning",
        ),
      );
    }
  }
  return issues;
}

/** Runs every cross-field check on validated-and-defaulted (possibly partly invalid) data. */
export function semanticIssues(data: unknown, source: SourceDocument): ConfigIssue[] {
  if (!isRecord(data)) return [];
  const upstreamNames = isRecord(data.upstreams) ? Object.keys(data.upstreams) : [];
  const servers = listOf(data.servers);
  const issues: ConfigIssue[] = [];
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    listOf(server.routes).forEach((route, j) => {
      if (isRecord(route))
        issues.push(...checkRoute(route, ["servers", i, "routes", j], upstreamNames, source));
    });
  });
  issues.push(...checkServerCollisions(servers, source));
  issues.push(...checkDualStack(servers, source));
  if (isRecord(data.limits)) issues.push(...checkLimitSizes(data.limits, ["limits"], source));
  servers.forEach((server, i) => {
    if (isRecord(server)) issues.push(...checkLimitSizes(server, ["servers", i], source));
  });
  issues.push(...checkTrustedProxies(listOf(data.trusted_proxies), source));
  if (isRecord(data.admin)) issues.push(...checkAdmin(data.admin, source));
  issues.push(...checkTls(servers, source));
  if (isRecord(data.http2)) issues.push(...checkHttp2(data.http2, source));
  if (isRecord(data.upstreams)) {
    issues.push(...checkUpstreamServers(data.upstreams, source));
    issues.push(...checkBalance(data.upstreams, source));
  }
  if (isRecord(data.dns)) issues.push(...checkDns(data.dns, source));
  return issues;
}
