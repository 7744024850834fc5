/**
 * The validated, normalized configuration that the master builds from YAML and sends to
 * every worker over IPC. Plain data only (it crosses a process boundary as JSON): durations
 * are milliseconds, sizes are bytes, regexes are source strings compiled by the worker.
 */

import type { Cidr } from "./units.js";

/** Where a value came from in the YAML file, for messages that point an operator at it. */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

/** One address a server listens on. */
export interface ListenAddress {
  /** IP literal to bind; `0.0.0.0` / `::` for all. */
  host: string;
  /** TCP port, 1-65535 (0 lets the OS pick: tests only). */
  port: number;
  /** The `listen` entry exactly as written, for messages. */
  text: string;
  /** `tls` flag: TLS (HTTP/1.1 and HTTP/2 by ALPN) on this address. */
  tls: boolean;
  /** `h2c` flag (plain addresses only): HTTP/2 with prior knowledge as well as HTTP/1.1. */
  h2c: boolean;
}

/** One certificate of a server: PEM files (absolute paths). */
export interface CertificateFiles {
  cert: string;
  /** Undefined when the key is in the `cert` file (one combined PEM file). */
  key: string | undefined;
  position: SourcePosition;
}

/** A server's `tls` section. */
export interface ServerTls {
  /** `tls: auto`: a self-signed development certificate, made and kept in the state directory. */
  auto: boolean;
  /** In order; the first is the server's default. Empty with `auto`. */
  certificates: CertificateFiles[];
  minVersion: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults). */
  ciphers: string;
  position: SourcePosition;
}

/** HTTP Strict Transport Security (RFC 6797), sent on responses over TLS. */
export interface Hsts {
  /** Seconds. */
  maxAge: number;
  includeSubdomains: boolean;
  preload: boolean;
}

/** Header edits applied to a request before it goes upstream, or to a response before it goes back. */
export interface HeaderEdits {
  /** Header name (lower case) -> value; replaces any existing value. */
  set: Record<string, string>;
  /** Header names (lower case) to remove. */
  remove: string[];
}

/** How a route matches the request path (nginx `location =`, `location`, `location ~`). */
export type RouteMatch =
  | { kind: "exact"; path: string }
  | { kind: "prefix"; path: string }
  | { kind: "regex"; source: string; caseInsensitive: boolean };

/** What a route does with a request it matched. */
export type RouteAction =
  | {
      kind: "upstream";
      /** Name of an entry in `Config.upstreams`. */
      upstream: string;
      /** Remove the matched prefix from the path before forwarding (prefix routes only). */
      stripPrefix: boolean;
    }
  | { kind: "return"; status: number; body: string; contentType: string }
  | { kind: "redirect"; status: number; to: string };

/** A route's `rate_limit`: a token bucket per key. */
export interface RateLimit {
  /** Stable id of this limit (the route's position), the same in every worker. */
  id: string;
  /** Tokens added per second. */
  rate: number;
  /** Bucket size: requests allowed at once above the rate. */
  burst: number;
  key: { kind: "client_ip" } | { kind: "header"; name: string };
  /** `local` (this instance) or a `redis://` URL (every instance sharing that Redis). */
  store: string;
}

/** One route inside a server block. */
export interface Route {
  /** `servers[i].routes[j]`: bounded, for metrics labels and messages. */
  id: string;
  match: RouteMatch;
  action: RouteAction;
  requestHeaders: HeaderEdits;
  responseHeaders: HeaderEdits;
  /** Requests over this rate get 429; undefined = no limit. */
  rateLimit: RateLimit | undefined;
  /** Where the route is written, for `portico explain` and messages. */
  position: SourcePosition;
}

/** Limits on a request, each with the status that refuses it. Sizes in bytes. */
export interface RequestLimits {
  /** Request target length (414). */
  maxUrl: number;
  /** Request line and header fields together (431). */
  maxHeaderSize: number;
  /** Header fields (431). */
  maxHeaders: number;
  /** Request body (413); 0 = no limit. */
  maxRequestBody: number;
}

/** The top-level `limits`: request limits for every server, and limits of a worker's connections. */
export interface Limits extends RequestLimits {
  /** Requests (HTTP/2: streams) per client connection; 0 = no limit. */
  maxRequestsPerConnection: number;
  /** Client connections one worker keeps open; 0 = no limit. */
  maxConnections: number;
}

/** One virtual server: a set of listen addresses and host names with its routes. */
export interface Server {
  /** `servers[i]`, for messages. */
  id: string;
  /** The server's name in metrics: its first server name, or its id. */
  label: string;
  listen: ListenAddress[];
  /** Exact names, lower case (`example.com`). */
  exactNames: string[];
  /** Wildcard suffixes, lower case, with the leading dot (`*.example.com` -> `.example.com`). */
  wildcardNames: string[];
  /** True when this server answers requests whose Host matches no server on its port. */
  isDefault: boolean;
  routes: Route[];
  /** This server's request limits (the top-level `limits` where it sets none). */
  limits: RequestLimits;
  /** Certificates for this server's `tls` listen addresses; undefined when it has none. */
  tls: ServerTls | undefined;
  /** Requests on plain addresses get a 308 to the same URL on the server's first `tls` address. */
  httpsRedirect: boolean;
  hsts: Hsts | undefined;
  position: SourcePosition;
}

/** Which address families a DNS name contributes as peers. */
export type AddressFamily = "ipv4" | "ipv6" | "any" | "prefer_ipv4" | "prefer_ipv6";

/**
 * One `upstreams.<name>.servers[]` entry: an `address: host:port` (an IP literal is one fixed
 * peer; a name becomes one peer per A/AAAA address, discovered by the master) or a
 * `service: _http._tcp.name` (SRV: targets, ports, priorities and weights).
 */
export type UpstreamServer = UpstreamAddressServer | UpstreamServiceServer;

/** `address: host:port`. */
export interface UpstreamAddressServer {
  kind: "address";
  /** Host name (lower case, no trailing dot) or IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** True when `host` is an IP literal: a fixed peer, never resolved. */
  fixed: boolean;
  /** Relative weight for the balancer, integer >= 1 (each resolved address gets it). */
  weight: number;
  /** `host:port` as written, for logs. */
  text: string;
  position: SourcePosition;
}

/** `service: _http._tcp.name` (RFC 2782 SRV). */
export interface UpstreamServiceServer {
  kind: "service";
  /** The SRV name, lower case, no trailing dot. */
  service: string;
  /** As written, for logs. */
  text: string;
  position: SourcePosition;
}

/** Per-upstream DNS settings (each defaults to the top-level `dns` value). */
export interface UpstreamDns {
  family: AddressFamily;
  /** How long a name must stay NXDOMAIN/empty before its peers are removed, ms. */
  removeAfter: number;
}

/** What `balance: hash` hashes on. */
export type HashKey =
  | { kind: "client_ip" }
  | { kind: "uri" }
  | { kind: "header"; name: string }
  | { kind: "cookie"; name: string };

/** Active health checks of an upstream's peers, run by the master. Durations in ms. */
export interface HealthCheck {
  path: string;
  method: "GET" | "HEAD";
  /** Host header; undefined = the peer's address. */
  host: string | undefined;
  /** Port to check; undefined = the peer's own. */
  port: number | undefined;
  interval: number;
  /** Up to this much is added at random to each interval, so checks do not bunch up. */
  jitter: number;
  timeout: number;
  /** Consecutive passes that bring a down peer back. */
  rise: number;
  /** Consecutive failures that take an up peer down. */
  fall: number;
  /** Statuses that pass, as inclusive ranges. */
  status: Array<[number, number]>;
  /** A regex source the body must match (first 64 KiB), when set. */
  body: string | undefined;
  /** `checked_first`: a new peer gets traffic only once a check passed; `trusted`: at once. */
  newPeers: "checked_first" | "trusted";
}

/** Passive health: ejection on failures of real traffic, in each worker. Durations in ms. */
export interface PassiveHealth {
  /** Consecutive failures that eject a peer. */
  maxFails: number;
  /** First ejection; each repeated one doubles it, up to `maxFailTimeout`. */
  failTimeout: number;
  maxFailTimeout: number;
  /** Most of an upstream's peers ejected at once, 0-1 (one peer may always be). */
  maxEjected: number;
  /** What counts as a failure: error (connect, reset, TLS, invalid answer), timeout, 5xx. */
  on: Array<"error" | "timeout" | "5xx">;
}

/** An upstream's `tls`: every peer is spoken to over TLS. Paths are absolute. */
export interface UpstreamTls {
  /** SNI and the name the certificate must carry; undefined = the peer's DNS name (none for an IP). */
  serverName: string | undefined;
  /** CA certificates (PEM) to verify peers against; undefined = the system CAs. */
  ca: string | undefined;
  /** Client certificate and key for mutual TLS. */
  cert: string | undefined;
  key: string | undefined;
  /** Verify the peer's certificate (false only when written out). */
  verify: boolean;
}

/** Balancing policies (one file each in src/upstream/balancers/). */
export type BalancePolicy = "round_robin" | "least_conn" | "random_two" | "hash" | "first";

/** A named group of peers that routes forward to. */
export interface Upstream {
  name: string;
  balance: BalancePolicy;
  /** With `balance: hash`: the key, and the bounded-load factor (>= 1) when set. */
  hash: { key: HashKey; boundedLoad: number | undefined } | undefined;
  servers: UpstreamServer[];
  /** Cap on open connections per peer, per worker. */
  maxConnectionsPerPeer: number;
  /** Most peers one request is sent to, the first included (nginx proxy_next_upstream_tries). */
  tries: number;
  /**
   * What sends a request that reached its peer to the next one (idempotent methods without a
   * body only): `error` (reset, invalid answer), `timeout`, or those statuses. A connection
   * that could not be made always goes to the next peer.
   */
  retryOn: Array<"error" | "timeout" | 502 | 503 | 504>;
  /** From the first try, how long a request may still go to another peer; 0 = no limit. */
  tryTimeout: number;
  health: HealthCheck | undefined;
  /** TLS to the peers (HTTPS), when set. */
  tls: UpstreamTls | undefined;
  /** Below this share of available peers (0-1), traffic is spread over all of them (Envoy's panic mode). */
  panicThreshold: number;
  /** With no peer available: `panic` sends to them anyway, `fail` answers 503. */
  onAllDown: "panic" | "fail";
  passive: PassiveHealth;
  /** A new or recovered peer's weight ramps from 10% to full over this long, ms; 0 = off. */
  slowStart: number;
  dns: UpstreamDns;
}

/** The top-level `dns` section: how the master resolves upstream names. Durations in ms. */
export interface DnsConfig {
  /** Nameserver URLs in order; undefined = those of /etc/resolv.conf. */
  nameservers: string[] | undefined;
  /** Per attempt; undefined = resolv.conf's `timeout` (or 2 s with `nameservers`). */
  timeout: number | undefined;
  /** Rounds over the nameservers; undefined = resolv.conf's `attempts` (or 2). */
  attempts: number | undefined;
  /** TTL clamp for answers (and so for refreshes). */
  minTtl: number;
  maxTtl: number;
  /** While every nameserver fails, how long the last known peers are kept. */
  staleMax: number;
  /** While a name's lookups fail, the longest wait between two tries. */
  retryMax: number;
  /** Default family for upstreams (each may override). */
  family: AddressFamily;
  /** Default `remove_after` for upstreams (each may override). */
  removeAfter: number;
  /** Absolute paths of PEM files for tls:// and https:// nameservers: CA, client cert and key (mTLS). */
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

/** Time limits, all in milliseconds. */
export interface Timeouts {
  /** Establishing a TCP connection to a peer. */
  connect: number;
  /** From sending the request to receiving the full response header. */
  upstreamHeader: number;
  /** Longest silence between two chunks of an upstream response body. */
  upstreamBody: number;
  /** Idle time before a client keep-alive connection is closed. */
  clientKeepalive: number;
  /** Idle time before a pooled upstream connection is closed. */
  upstreamKeepalive: number;
  /** Longest graceful stop (or drain of an old generation): in-flight requests get this long, then connections are closed. */
  shutdown: number;
  /** While draining, how long a keep-alive connection with no request in flight stays open before it is closed. */
  drainGrace: number;
  /** How long a new generation has to get every worker listening before a reload is abandoned. */
  workerStart: number;
  /** A WebSocket tunnel with no byte either way for this long is closed. */
  tunnelIdle: number;
  /** A client's whole request head (slowloris): 408, then the connection is closed. */
  clientHeader: number;
  /** Longest silence between two reads of a request body (408). */
  clientBody: number;
}

/** HTTP/2 towards clients (ALPN `h2` on `tls` addresses, prior knowledge on `h2c` ones). */
export interface Http2Config {
  /** Offer `h2` in ALPN on `tls` addresses; false = HTTP/1.1 only. */
  enabled: boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS a client may open on one connection. */
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, bytes. */
  maxHeaderListSize: number;
}

/** Logging. */
export interface LogConfig {
  /** pino level for lifecycle and error logs. */
  level: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** Access log destination: `stdout`, `stderr`, `off`, or a file path. */
  access: string;
  /** Lifecycle/error log destination: `stdout`, `stderr`, or a file path. */
  error: string;
  /** `auto`: pretty on a terminal, JSON elsewhere. */
  format: "auto" | "json" | "pretty";
}

/** The whole configuration. Deep-frozen once built. */
export interface Config {
  /** Absolute path of the YAML file this was read from. */
  file: string;
  /** Number of worker processes (`auto` is resolved to the CPU count). */
  workers: number;
  servers: Server[];
  upstreams: Record<string, Upstream>;
  timeouts: Timeouts;
  log: LogConfig;
  dns: DnsConfig;
  http2: Http2Config;
  limits: Limits;
  /** The admin listener (master): undefined when off. */
  admin:
    | {
        host: string;
        port: number;
        token: string | undefined;
        /** Token bucket of each client of /dns and /dns/flush (per second, tokens). */
        dnsRate: { rate: number; capacity: number };
      }
    | undefined;
  /** `trusted_proxies`: addresses and CIDR ranges whose X-Forwarded-For is believed. */
  trustedProxies: Cidr[];
  /** Absolute path of the master's PID file. */
  pidFile: string;
  /** Absolute path of the directory Portico keeps its own files in (`tls: auto` certificates). */
  stateDir: string;
}

/** One problem found in a config file. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: "error" | "warning";
}
