/**
 * The per-worker runtime of one configured upstream: its peers (each with a pool), grouped
 * in SRV priority tiers, and its balancer. Built from the config and the peer table a worker
 * receives; every new table is applied as a diff (new peers get pools, departed peers stop
 * getting requests and close once their requests are done).
 */
import type { HashKey, Timeouts, Upstream } from "../config/types.js";
import { type Balancer, createBalancer } from "./balancer.js";
import { Peer } from "./peer.js";
import { type PeerTable, upstreamPeers } from "./peer-table.js";

/** What one table changed, for the worker's log. */
export interface PeerChange {
  added: string[];
  removed: string[];
}

/** One upstream's peers and balancer, in one worker. */
export class UpstreamGroup {
  readonly name: string;
  readonly upstream: Upstream;
  private readonly timeouts: Timeouts;
  private readonly peersByKey = new Map<string, Peer>();
  /** Peers by ascending priority; only the first tier with a peer gets traffic. */
  private tiers: Peer[][] = [];
  private readonly balancer: Balancer;
  /** With `balance: hash`: what a request's key is made of. */
  readonly hashKey: HashKey | undefined;
  /** Why servers of this upstream have no peers (for the 503 body). */
  missing: string[] = [];

  /**
   * @param slot the worker's slot: each worker starts its rotation that many picks further
   *   on, so N fresh workers send their first requests to N different peers instead of all
   *   to the first one.
   */
  constructor(upstream: Upstream, timeouts: Timeouts, table: PeerTable, slot = 0) {
    this.name = upstream.name;
    this.upstream = upstream;
    this.timeouts = timeouts;
    this.balancer = createBalancer(upstream);
    this.hashKey = upstream.hash?.key;
    this.apply(table);
    const first = this.tiers[0] ?? [];
    for (let i = 0; i < slot % Math.max(1, first.length); i++) this.balancer.pick(first);
  }

  /** Every current peer. */
  get peers(): Peer[] {
    return [...this.peersByKey.values()];
  }

  /** Bring the peers in line with `table`. Departed peers finish their in-flight requests. */
  apply(table: PeerTable): PeerChange {
    const { peers: wanted, missing } = upstreamPeers(this.upstream, table);
    this.missing = missing;
    const change: PeerChange = { added: [], removed: [] };
    const keep = new Set(wanted.map((p) => p.key));
    for (const [key, peer] of this.peersByKey) {
      if (keep.has(key)) continue;
      this.peersByKey.delete(key);
      change.removed.push(key);
      void peer.close().catch(() => {});
    }
    for (const spec of wanted) {
      const peer = this.peersByKey.get(spec.key);
      if (peer) {
        peer.weight = spec.weight;
        peer.priority = spec.priority;
        continue;
      }
      this.peersByKey.set(spec.key, new Peer(spec, this.upstream.maxConnectionsPerPeer, this.timeouts));
      change.added.push(spec.key);
    }
    // Tiers keep the config's order (and DNS's within a name): `first` relies on it.
    const byPriority = new Map<number, Peer[]>();
    for (const spec of wanted) {
      const peer = this.peersByKey.get(spec.key) as Peer;
      const tier = byPriority.get(peer.priority) ?? [];
      tier.push(peer);
      byPriority.set(peer.priority, tier);
    }
    this.tiers = [...byPriority.entries()].sort((a, b) => a[0] - b[0]).map(([, tier]) => tier);
    return change;
  }

  /**
   * The peer for the next request: from the lowest-priority tier that has an available peer
   * (SRV failover), skipping `tried` (peers this request already failed to reach). When no
   * peer is available at all, any untried peer is tried anyway, as nginx does: a peer marked
   * down may be back, and refusing everything helps no one. Undefined when none is left.
   */
  pick(tried?: ReadonlySet<Peer>, key?: string): Peer | undefined {
    for (const tier of this.tiers) {
      const healthy = !tried && tier.every((p) => p.available);
      const candidates = healthy ? tier : tier.filter((p) => p.available && !tried?.has(p));
      if (candidates.length > 0) return this.balancer.pick(candidates, key);
    }
    for (const tier of this.tiers) {
      const candidates = tried ? tier.filter((p) => !tried.has(p)) : tier;
      if (candidates.length > 0) return this.balancer.pick(candidates, key);
    }
    return undefined;
  }

  /** Close every peer's pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }
}
