/**
 * The per-worker runtime of one configured upstream: its peers (each with a pool) and its
 * balancer. Built from the config a worker receives; closed when the worker drains.
 */
import type { Timeouts, Upstream } from "../config/types.js";
import { type Balancer, createBalancer } from "./balancer.js";
import { Peer } from "./peer.js";

/** One upstream's peers and balancer, in one worker. */
export class UpstreamGroup {
  readonly name: string;
  readonly peers: Peer[];
  private readonly balancer: Balancer;

  /**
   * @param slot the worker's slot: each worker starts its rotation that many picks further
   *   on, so N fresh workers send their first requests to N different peers instead of all
   *   to the first one.
   */
  constructor(upstream: Upstream, timeouts: Timeouts, slot = 0) {
    this.name = upstream.name;
    this.peers = upstream.servers.map((s) => new Peer(s, upstream.maxConnectionsPerPeer, timeouts));
    this.balancer = createBalancer(upstream.balance);
    for (let i = 0; i < slot % Math.max(1, this.peers.length); i++) this.balancer.pick(this.peers);
  }

  /** The peer for the next request, or undefined when the upstream has no peer to offer. */
  pick(): Peer | undefined {
    return this.balancer.pick(this.peers);
  }

  /** Close every peer's pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }
}
