/**
 * A peer: one address of an upstream that requests can be sent to. Per-worker state
 * (its connection pool, requests in flight) lives here; the balancer only reads it.
 */
import { readFileSync } from "node:fs";
import { buildConnector, Pool } from "undici";
import type { Timeouts, UpstreamTls } from "../config/types.js";
import type { PeerSpec } from "./peer-table.js";

/** PEM files read once per worker (`portico check` made sure they read). */
const pemCache = new Map<string, string>();
function pem(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text = pemCache.get(file);
  if (text === undefined) {
    text = readFileSync(file, "utf8");
    pemCache.set(file, text);
  }
  return text;
}

/**
 * How a peer is spoken to over TLS: SNI and the name verified are `server_name`, else the
 * DNS name the peer was found by (an IP literal sends no SNI and is verified as an IP).
 */
export function tlsConnectOptions(tls: UpstreamTls, name: string | undefined) {
  const servername = tls.serverName ?? name;
  return {
    servername,
    ca: pem(tls.ca),
    cert: pem(tls.cert),
    key: pem(tls.key),
    rejectUnauthorized: tls.verify,
  };
}

/** One upstream address with its per-worker connection pool. */
export class Peer {
  /** `host:port` (IPv6 in brackets), as used in logs and the access log's `upstream` field. */
  readonly address: string;
  /** Relative weight for balancers, integer >= 1 (an SRV update may change it). */
  weight: number;
  /** SRV priority: the lowest value with a peer takes the traffic. 0 for `address` servers. */
  priority: number;
  /** Keep-alive connection pool to this peer (undici), capped at the upstream's `max_connections`. */
  readonly pool: Pool;
  /** How the peer is spoken to over TLS (undefined: plain HTTP), for requests that bypass the pool. */
  readonly tls: ReturnType<typeof tlsConnectOptions> | undefined;
  /** Requests sent to this peer and not finished yet, in this worker. */
  inFlight = 0;
  /**
   * Passive health (nginx `max_fails=1 fail_timeout=10s`): epoch ms until which this peer is
   * skipped because a connection to it failed. Per worker, from real traffic.
   */
  failedUntil = 0;
  /** The master's active health checks took this peer out (down, or not checked yet). */
  checkedDown = false;
  /** Failures of real traffic in a row (passive health). */
  failures = 0;
  /** Ejections in a row, for the doubling of the next one; reset by a long enough good spell. */
  ejections = 0;
  /** How long the last ejection lasted, ms, and when it ends (epoch ms). */
  lastEjectionMs = 0;
  ejectedUntil = 0;
  /** slow_start of the upstream, ms (0 = none), and when the running ramp began (0 = none). */
  private readonly slowStart: number;
  private rampStart = 0;

  /** @param connected told how long each new connection took (connect and TLS handshake), seconds. */
  constructor(
    spec: PeerSpec,
    maxConnections: number,
    timeouts: Timeouts,
    tls?: UpstreamTls,
    slowStart = 0,
    connected?: (seconds: number) => void,
  ) {
    this.slowStart = slowStart;
    this.address = spec.key;
    this.weight = spec.weight;
    this.priority = spec.priority;
    this.tls = tls ? tlsConnectOptions(tls, spec.name) : undefined;
    // undici's own connector, timed: called once per new connection, never per request.
    const connector = buildConnector({ ...this.tls, timeout: timeouts.connect });
    const connect: buildConnector.connector = connected
      ? (options, callback) => {
          const started = performance.now();
          connector(options, (err, socket) => {
            if (!err) connected((performance.now() - started) / 1000);
            // The callback's overloads want err and socket apart.
            if (err) callback(err, null);
            else callback(null, socket as NonNullable<typeof socket>);
          });
        }
      : connector;
    this.pool = new Pool(`${tls ? "https" : "http"}://${this.address}`, {
      connect,
      connections: maxConnections,
      pipelining: 1,
      headersTimeout: timeouts.upstreamHeader,
      bodyTimeout: timeouts.upstreamBody,
      keepAliveTimeout: timeouts.upstreamKeepalive,
      // Never keep a socket longer than we were told to: an upstream that closes idle
      // sockets after N seconds must not see us reuse one at N seconds (the keep-alive race).
      keepAliveMaxTimeout: timeouts.upstreamKeepalive,
    });
  }

  /** Whether the balancer may choose this peer now (a healthy peer costs no clock read). */
  get available(): boolean {
    if (this.checkedDown) return false;
    if (this.failedUntil === 0) return true;
    const now = Date.now();
    if (now < this.failedUntil) return false;
    this.failedUntil = 0;
    this.rampFrom(now);
    return true;
  }

  /**
   * With slow_start: the weight balancers use, ramping from 10% to full over `slowStart`
   * after the peer came (back). Costs one clock read per pick only while a ramp runs.
   */
  get effectiveWeight(): number {
    if (this.rampStart === 0) return this.weight;
    const elapsed = Date.now() - this.rampStart;
    if (elapsed >= this.slowStart) {
      this.rampStart = 0;
      return this.weight;
    }
    return this.weight * Math.max(0.1, elapsed / this.slowStart);
  }

  /** Start a slow_start ramp at `now` (epoch ms), when the upstream has one. */
  rampFrom(now: number): void {
    if (this.slowStart > 0) this.rampStart = now;
  }

  /** A connection to this peer failed: skip it for `ms`. */
  markFailed(ms: number): void {
    this.failedUntil = Date.now() + ms;
  }

  /** Close the pool: idle connections close now, in-flight requests finish first. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
