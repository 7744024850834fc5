/**
 * A peer: one address of an upstream that requests can be sent to. Per-worker state
 * (its connection pool, requests in flight) lives here; the balancer only reads it.
 */
import { Pool } from "undici";
import type { Timeouts, UpstreamServer } from "../config/types.js";

/** One upstream address with its per-worker connection pool. */
export class Peer {
  /** `host:port` (IPv6 in brackets), as used in logs and the access log's `upstream` field. */
  readonly address: string;
  /** Relative weight for balancers, integer >= 1. */
  readonly weight: number;
  /** Keep-alive connection pool to this peer (undici), capped at the upstream's `max_connections`. */
  readonly pool: Pool;
  /** Requests sent to this peer and not finished yet, in this worker. */
  inFlight = 0;

  constructor(server: UpstreamServer, maxConnections: number, timeouts: Timeouts) {
    const host = server.host.includes(":") ? `[${server.host}]` : server.host;
    this.address = `${host}:${server.port}`;
    this.weight = server.weight;
    this.pool = new Pool(`http://${this.address}`, {
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

  /** Close the pool once its in-flight requests have finished. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
