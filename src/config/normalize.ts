/**
 * Builds the typed `Config` from data that passed the schema and the semantic checks (so
 * every default is present and every value is well-formed): units become numbers, names
 * become lower case, keys become camelCase, and the result is deep-frozen plain data.
 */

import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { dirname, resolve } from "node:path";
import { parseRate, parseRateKey } from "../ratelimit/syntax.js";
import type {
  AddressFamily,
  BalancePolicy,
  Config,
  DnsConfig,
  HeaderEdits,
  Hsts,
  Limits,
  ListenAddress,
  LogConfig,
  RateLimit,
  RequestLimits,
  Route,
  RouteAction,
  RouteMatch,
  Server,
  ServerTls,
  SourcePosition,
  Upstream,
  UpstreamServer,
} from "./types.js";
import {
  type Parsed,
  parseCidr,
  parseDuration,
  parseHashKey,
  parseListenAddress,
  parseServiceName,
  parseSize,
  parseStatusRange,
  parseUpstreamAddress,
} from "./units.js";
import type { DataPath, SourceDocument } from "./yaml-source.js";

/* The YAML shapes, as the schema guarantees them after defaults are filled in. */
interface RawHeaderEdits {
  set: Record<string, string>;
  remove: string[];
}
interface RawRoute {
  exact?: string;
  path?: string;
  regex?: string;
  ignore_case: boolean;
  upstream?: string;
  strip_prefix: boolean;
  return?: { status: number; body: string; content_type: string };
  redirect?: { to: string; status: number };
  request_headers: RawHeaderEdits;
  response_headers: RawHeaderEdits;
  rate_limit?: { rate: string | number; burst: number; key: string; store: string };
}
interface RawTls {
  certificates: Array<{ cert: string; key?: string }>;
  min_version: "TLSv1.2" | "TLSv1.3";
  ciphers?: string;
}
interface RawServer {
  listen: string | number | (string | number)[];
  server_names: string[];
  default: boolean;
  max_url?: string | number;
  max_header_size?: string | number;
  max_headers?: number;
  max_request_body?: string | number;
  tls?: "auto" | RawTls;
  https_redirect: boolean;
  hsts?: boolean | { max_age: string; include_subdomains: boolean; preload: boolean };
  routes: RawRoute[];
}
/** One servers[] entry: exactly one of address and service (checks.ts); weight is always filled in. */
interface RawUpstreamServer {
  address?: string;
  service?: string;
  weight: number;
}
interface RawUpstream {
  balance: BalancePolicy;
  tries: number;
  retry_on: Upstream["retryOn"];
  try_timeout: string;
  health?: {
    path: string;
    method: "GET" | "HEAD";
    host?: string;
    port?: number;
    interval: string;
    jitter: string;
    timeout: string;
    rise: number;
    fall: number;
    status: Array<string | number>;
    body?: string;
    new_peers: "checked_first" | "trusted";
  };
  panic_threshold: number;
  on_all_down: "panic" | "fail";
  slow_start: string;
  passive: {
    max_fails: number;
    fail_timeout: string;
    max_fail_timeout: string;
    max_ejected_percent: number;
    on: Array<"error" | "timeout" | "5xx">;
  };
  tls?: { server_name?: string; ca?: string; cert?: string; key?: string; verify: boolean };
  hash?: { key: string; bounded_load?: number };
  max_connections: number;
  servers: RawUpstreamServer[];
  dns?: { family?: AddressFamily; remove_after?: string };
}
interface RawDns {
  nameservers?: string[];
  timeout?: string;
  attempts?: number;
  min_ttl: string;
  max_ttl: string;
  stale_max: string;
  retry_max: string;
  family: AddressFamily;
  remove_after: string;
  ca?: string;
  cert?: string;
  key?: string;
}
interface RawConfig {
  workers: number | "auto";
  http2: { enabled: boolean; max_concurrent_streams: number; max_header_list_size: string | number };
  state_dir: string;
  timeouts: Record<string, string>;
  log: { level: LogConfig["level"]; access: string; error: string; format: LogConfig["format"] };
  dns: RawDns;
  pid_file: string;
  limits: {
    max_url: string | number;
    max_header_size: string | number;
    max_headers: number;
    max_request_body: string | number;
    max_requests_per_connection: number;
    max_connections: number;
  };
  trusted_proxies: string[];
  admin?: { listen: string | number; token?: string; dns_rate: string | number; dns_burst: number };
  upstreams: Record<string, RawUpstream>;
  servers: RawServer[];
}

/** The admin listener's host and port (the schema checked the address; checks.ts its flags). */
function adminAddress(listen: string | number): { host: string; port: number } {
  const spec = valid(parseListenAddress(listen));
  return { host: spec.host, port: spec.port };
}

/** Unwraps a parse that the schema already proved valid. */
function valid<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`internal: value passed validation but does not parse: ${parsed.error}`);
  return parsed.value;
}

/** Recursively freezes plain data (objects and arrays) and returns it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function headerEdits(raw: RawHeaderEdits): HeaderEdits {
  // Object.fromEntries defines own properties, so even a header named __proto__ stays data.
  const set = Object.fromEntries(Object.entries(raw.set).map(([name, value]) => [name.toLowerCase(), value]));
  return { set, remove: raw.remove.map((name) => name.toLowerCase()) };
}

function routeMatch(raw: RawRoute): RouteMatch {
  if (raw.exact !== undefined) return { kind: "exact", path: raw.exact };
  if (raw.path !== undefined) return { kind: "prefix", path: raw.path };
  return { kind: "regex", source: raw.regex as string, caseInsensitive: raw.ignore_case };
}

function routeAction(raw: RawRoute): RouteAction {
  if (raw.upstream !== undefined) {
    return { kind: "upstream", upstream: raw.upstream, stripPrefix: raw.strip_prefix };
  }
  if (raw.return !== undefined) {
    const { status, body, content_type } = raw.return;
    return { kind: "return", status, body, contentType: content_type };
  }
  const redirect = raw.redirect as NonNullable<RawRoute["redirect"]>;
  return { kind: "redirect", status: redirect.status, to: redirect.to };
}

/** A route's `rate_limit`, with the route's position as its id (the same in every worker). */
function rateLimit(raw: RawRoute["rate_limit"], id: string): RateLimit | undefined {
  if (raw === undefined) return undefined;
  return {
    id,
    rate: valid(parseRate(raw.rate)),
    burst: raw.burst,
    key: valid(parseRateKey(raw.key)),
    store: raw.store.trim(),
  };
}

function listenAddress(entry: string | number): ListenAddress {
  return { ...valid(parseListenAddress(entry)), text: String(entry).trim() };
}

/** Mozilla's "intermediate" TLS 1.2 cipher list (ECDHE, AEAD only): the default `tls.ciphers`. */
export const DEFAULT_CIPHERS =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

function serverTls(
  raw: RawServer["tls"],
  path: DataPath,
  source: SourceDocument,
  configDir: string,
): ServerTls | undefined {
  if (raw === undefined) return undefined;
  const position = (p: DataPath) => ({ file: source.file, ...source.valueAt(p) });
  if (raw === "auto") {
    return {
      auto: true,
      certificates: [],
      minVersion: "TLSv1.2",
      ciphers: DEFAULT_CIPHERS,
      position: position([...path, "tls"]),
    };
  }
  return {
    auto: false,
    certificates: raw.certificates.map((c, i) => ({
      cert: resolve(configDir, c.cert),
      key: c.key === undefined ? undefined : resolve(configDir, c.key),
      position: position([...path, "tls", "certificates", i]),
    })),
    minVersion: raw.min_version,
    ciphers: raw.ciphers ?? DEFAULT_CIPHERS,
    position: position([...path, "tls"]),
  };
}

/** `hsts: true` means the defaults; false or absent means off. */
function hsts(raw: RawServer["hsts"]): Hsts | undefined {
  if (raw === undefined || raw === false) return undefined;
  const value = raw === true ? { max_age: "365d", include_subdomains: false, preload: false } : raw;
  return {
    maxAge: Math.floor(ms(value.max_age) / 1000),
    includeSubdomains: value.include_subdomains,
    preload: value.preload,
  };
}

function server(
  raw: RawServer,
  path: DataPath,
  source: SourceDocument,
  configDir: string,
  defaults: RequestLimits,
): Server {
  const position = (p: DataPath) => ({ file: source.file, ...source.valueAt(p) });
  const names = raw.server_names.map((name) => name.toLowerCase());
  return {
    id: `servers[${String(path[1])}]`,
    label: names[0] ?? `servers[${String(path[1])}]`,
    listen: (Array.isArray(raw.listen) ? raw.listen : [raw.listen]).map(listenAddress),
    exactNames: [...new Set(names.filter((n) => !n.startsWith("*.")))],
    wildcardNames: [...new Set(names.filter((n) => n.startsWith("*.")).map((n) => n.slice(1)))],
    isDefault: raw.default,
    routes: raw.routes.map(
      (route, i): Route => ({
        match: routeMatch(route),
        action: routeAction(route),
        requestHeaders: headerEdits(route.request_headers),
        responseHeaders: headerEdits(route.response_headers),
        id: `servers[${String(path[1])}].routes[${i}]`,
        rateLimit: rateLimit(route.rate_limit, `servers[${String(path[1])}].routes[${i}]`),
        position: position([...path, "routes", i]),
      }),
    ),
    limits: {
      maxUrl: raw.max_url === undefined ? defaults.maxUrl : valid(parseSize(raw.max_url)),
      maxHeaderSize:
        raw.max_header_size === undefined ? defaults.maxHeaderSize : valid(parseSize(raw.max_header_size)),
      maxHeaders: raw.max_headers ?? defaults.maxHeaders,
      maxRequestBody:
        raw.max_request_body === undefined ? defaults.maxRequestBody : valid(parseSize(raw.max_request_body)),
    },
    tls: serverTls(raw.tls, path, source, configDir),
    httpsRedirect: raw.https_redirect,
    hsts: hsts(raw.hsts),
    position: position(path),
  };
}

const ms = (duration: string) => valid(parseDuration(duration));

function upstreamServer(raw: RawUpstreamServer, position: SourcePosition): UpstreamServer {
  if (raw.service !== undefined) {
    return {
      kind: "service",
      service: valid(parseServiceName(raw.service)),
      text: raw.service.trim(),
      position,
    };
  }
  const address = raw.address as string;
  const { host, port } = valid(parseUpstreamAddress(address));
  return {
    kind: "address",
    host: host.toLowerCase().replace(/\.$/, ""),
    port,
    fixed: isIP(host) !== 0,
    weight: raw.weight,
    text: address.trim(),
    position,
  };
}

function upstream(
  name: string,
  raw: RawUpstream,
  dns: DnsConfig,
  source: SourceDocument,
  configDir: string,
): Upstream {
  return {
    name,
    balance: raw.balance,
    hash: raw.hash && { key: valid(parseHashKey(raw.hash.key)), boundedLoad: raw.hash.bounded_load },
    servers: raw.servers.map((server, i) =>
      upstreamServer(server, { file: source.file, ...source.valueAt(["upstreams", name, "servers", i]) }),
    ),
    maxConnectionsPerPeer: raw.max_connections,
    tries: raw.tries,
    retryOn: raw.retry_on,
    tryTimeout: ms(raw.try_timeout),
    health: raw.health && {
      path: raw.health.path,
      method: raw.health.method,
      host: raw.health.host,
      port: raw.health.port,
      interval: ms(raw.health.interval),
      jitter: ms(raw.health.jitter),
      timeout: ms(raw.health.timeout),
      rise: raw.health.rise,
      fall: raw.health.fall,
      status: raw.health.status.map((s) => valid(parseStatusRange(s))),
      body: raw.health.body,
      newPeers: raw.health.new_peers,
    },
    tls: raw.tls && {
      serverName: raw.tls.server_name?.toLowerCase(),
      ca: raw.tls.ca === undefined ? undefined : resolve(configDir, raw.tls.ca),
      cert: raw.tls.cert === undefined ? undefined : resolve(configDir, raw.tls.cert),
      key: raw.tls.key === undefined ? undefined : resolve(configDir, raw.tls.key),
      verify: raw.tls.verify,
    },
    panicThreshold: raw.panic_threshold / 100,
    onAllDown: raw.on_all_down,
    slowStart: ms(raw.slow_start),
    passive: {
      maxFails: raw.passive.max_fails,
      failTimeout: ms(raw.passive.fail_timeout),
      maxFailTimeout: ms(raw.passive.max_fail_timeout),
      maxEjected: raw.passive.max_ejected_percent / 100,
      on: raw.passive.on,
    },
    dns: {
      family: raw.dns?.family ?? dns.family,
      removeAfter: raw.dns?.remove_after === undefined ? dns.removeAfter : ms(raw.dns.remove_after),
    },
  };
}

/** The top-level `dns` section; what is not written stays undefined so the resolver applies resolv.conf's. */
function dnsConfig(raw: RawDns, configDir: string): DnsConfig {
  const file = (path: string | undefined) => (path === undefined ? undefined : resolve(configDir, path));
  return {
    nameservers: raw.nameservers?.map((url) => url.trim()),
    timeout: raw.timeout === undefined ? undefined : ms(raw.timeout),
    attempts: raw.attempts,
    minTtl: ms(raw.min_ttl),
    maxTtl: ms(raw.max_ttl),
    staleMax: ms(raw.stale_max),
    retryMax: ms(raw.retry_max),
    family: raw.family,
    removeAfter: ms(raw.remove_after),
    ca: file(raw.ca),
    cert: file(raw.cert),
    key: file(raw.key),
  };
}

/** A log destination: the stream names as they are, file paths made absolute from the config's folder. */
function logTarget(target: string, configDir: string): string {
  return ["stdout", "stderr", "off"].includes(target) ? target : resolve(configDir, target);
}

/**
 * Builds the deep-frozen `Config` from validated data. `absoluteFile` becomes `Config.file`;
 * positions use `source.file`, the path as the operator wrote it, like every message.
 */
export function buildConfig(data: unknown, source: SourceDocument, absoluteFile: string): Config {
  const raw = data as RawConfig;
  const timeout = (key: string) => ms(raw.timeouts[key] as string);
  const configDir = dirname(absoluteFile);
  const dns = dnsConfig(raw.dns, configDir);
  const upstreams: Record<string, Upstream> = Object.fromEntries(
    Object.entries(raw.upstreams).map(([name, value]) => [
      name,
      upstream(name, value, dns, source, configDir),
    ]),
  );
  const size = (value: string | number) => valid(parseSize(value));
  const limits: Limits = {
    maxUrl: size(raw.limits.max_url),
    maxHeaderSize: size(raw.limits.max_header_size),
    maxHeaders: raw.limits.max_headers,
    maxRequestBody: size(raw.limits.max_request_body),
    maxRequestsPerConnection: raw.limits.max_requests_per_connection,
    maxConnections: raw.limits.max_connections,
  };
  const config: Config = {
    file: absoluteFile,
    workers: raw.workers === "auto" ? availableParallelism() : raw.workers,
    servers: raw.servers.map((s, i) => server(s, ["servers", i], source, configDir, limits)),
    upstreams,
    timeouts: {
      connect: timeout("connect"),
      upstreamHeader: timeout("upstream_header"),
      upstreamBody: timeout("upstream_body"),
      clientKeepalive: timeout("client_keepalive"),
      upstreamKeepalive: timeout("upstream_keepalive"),
      shutdown: timeout("shutdown"),
      drainGrace: timeout("drain_grace"),
      workerStart: timeout("worker_start"),
      tunnelIdle: timeout("tunnel_idle"),
      clientHeader: timeout("client_header"),
      clientBody: timeout("client_body"),
    },
    limits,
    admin: raw.admin
      ? {
          ...adminAddress(raw.admin.listen),
          token: raw.admin.token,
          dnsRate: { rate: valid(parseRate(raw.admin.dns_rate)), capacity: raw.admin.dns_burst + 1 },
        }
      : undefined,
    trustedProxies: raw.trusted_proxies.map((text) => valid(parseCidr(text))),
    http2: {
      enabled: raw.http2.enabled,
      maxConcurrentStreams: raw.http2.max_concurrent_streams,
      maxHeaderListSize: valid(parseSize(raw.http2.max_header_list_size)),
    },
    stateDir: resolve(configDir, raw.state_dir),
    pidFile: resolve(configDir, raw.pid_file),
    log: {
      level: raw.log.level,
      access: logTarget(raw.log.access, configDir),
      error: logTarget(raw.log.error, configDir),
      format: raw.log.format,
    },
    dns,
  };
  return deepFreeze(config);
}
