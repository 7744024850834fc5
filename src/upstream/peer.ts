/**
 * A peer: one address of an upstream that requests can be sent to. Per-worker state
 * (its connection pool, requests in flight) lives here; the balancer only reads it.
 */
import { readFileSync } from "node:fs";
import { Pool } from "undici";
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
  /** Requests sent to this peer and not finished yet, in this worker. */
  inFlight = 0;
  /**
   * Passive health (nginx `max_fails=1 fail_timeout=10s`): epoch ms until which this peer is
   * skipped because a connection to it failed. Per worker, from real traffic.
   */
  failedUntil = 0;
  /** The master's active health checks took this peer out (down, or not checked yet). */
  checkedDown = false;

  constructor(spec: PeerSpec, maxConnections: number, timeouts: Timeouts, tls?: UpstreamTls) {
    this.address = spec.key;
    this.weight = spec.weight;
    this.priority = spec.priority;
    this.pool = new Pool(`${tls ? "https" : "http"}://${this.address}`, {
      connect: tls ? tlsConnectOptions(tls, spec.name) : undefined,
      connections: maxConnections,
      pipelining: 1,
      connectTimeout: timeouts.connect,
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
    if (Date.now() < this.failedUntil) return false;
    this.failedUntil = 0;
    return true;
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
