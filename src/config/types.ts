/**
 * The validated, normalized configuration that the master builds from YAML and sends to
 * every worker over IPC. Plain data only (it crosses a process boundary as JSON): durations
 * are milliseconds, sizes are bytes, regexes are source strings compiled by the worker.
 */

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

/** One route inside a server block. */
export interface Route {
  match: RouteMatch;
  action: RouteAction;
  requestHeaders: HeaderEdits;
  responseHeaders: HeaderEdits;
  /** Where the route is written, for `portico explain` and messages. */
  position: SourcePosition;
}

/** One virtual server: a set of listen addresses and host names with its routes. */
export interface Server {
  listen: ListenAddress[];
  /** Exact names, lower case (`example.com`). */
  exactNames: string[];
  /** Wildcard suffixes, lower case, with the leading dot (`*.example.com` -> `.example.com`). */
  wildcardNames: string[];
  /** True when this server answers requests whose Host matches no server on its port. */
  isDefault: boolean;
  routes: Route[];
  /** Largest request body accepted, in bytes; 0 = no limit. */
  maxRequestBody: number;
  position: SourcePosition;
}

/** One statically configured upstream peer. */
export interface UpstreamServer {
  /** Host name or IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** Relative weight for the balancer, integer >= 1. */
  weight: number;
  /** `host:port` as written, for logs. */
  text: string;
}

/** A named group of peers that routes forward to. */
export interface Upstream {
  name: string;
  /** Balancing policy; only smooth weighted round-robin for now. */
  balance: "round_robin";
  servers: UpstreamServer[];
  /** Cap on open connections per peer, per worker. */
  maxConnectionsPerPeer: number;
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
}

/** Logging. */
export interface LogConfig {
  /** pino level for lifecycle and error logs. */
  level: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** Access log destination: `stdout`, `stderr`, `off`, or a file path. */
  access: string;
  /** Lifecycle/error log destination: `stdout`, `stderr`, or a file path. */
  error: string;
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
  /** Absolute path of the master's PID file. */
  pidFile: string;
}

/** One problem found in a config file. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: "error" | "warning";
}
