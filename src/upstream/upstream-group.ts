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

type PanicState = "normal" | "panic" | "all-down-panic" | "all-down-fail";

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
  private panicState?: PanicState;
  /** Set after the first table: peers added later ramp up with slow_start. */
  private started = false;
  /** Where panic-mode changes are reported (the worker's log, at warn). */
  private readonly log?: (message: string) => void;

  /**
   * @param connected told how long each new connection to a peer took (connect and TLS), seconds.
   * @param slot the worker's slot: each worker starts its rotation that many picks further
   *   on, so N fresh workers send their first requests to N different peers instead of all
   *   to the first one.
   */
  constructor(
    upstream: Upstream,
    timeouts: Timeouts,
    table: PeerTable,
    slot = 0,
    log?: (message: string) => void,
    private readonly connected?: (seconds: number) => void,
  ) {
    this.name = upstream.name;
    this.log = log;
    this.upstream = upstream;
    this.timeouts = timeouts;
    this.balancer = createBalancer(upstream);
    this.hashKey = upstream.hash?.key;
    this.apply(table);
    this.started = true;
    const first = this.tiers[0] ?? [];
    for (let i = 0; i < slot % Math.max(1, first.length); i++) this.balancer.pick(first);
  }

  /** Peers that left the upstream and still have requests in flight. */
  readonly departing = new Set<Peer>();

  /** Every current peer. */
  get peers(): Peer[] {
    return [...this.peersByKey.values()];
  }

  /** Bring the peers in line with `table`. Departed peers finish their in-flight requests. */
  apply(table: PeerTable): PeerChange {
    const { peers: wanted, missing } = upstreamPeers(this.upstream, table);
    this.missing = missing;
    const down = new Set(table.down?.[this.name] ?? []);
    const change: PeerChange = { added: [], removed: [] };
    const keep = new Set(wanted.map((p) => p.key));
    for (const [key, peer] of this.peersByKey) {
      if (keep.has(key)) continue;
      this.peersByKey.delete(key);
      change.removed.push(key);
      this.departing.add(peer);
      void peer
        .close()
        .catch(() => {})
        .finally(() => this.departing.delete(peer));
    }
    for (const spec of wanted) {
      const peer = this.peersByKey.get(spec.key);
      if (peer) {
        peer.weight = spec.weight;
        peer.priority = spec.priority;
        const isDown = down.has(spec.key);
        // Back up by its checks: the passive skip of a failed connect is over too.
        if (peer.checkedDown && !isDown) {
          peer.failedUntil = 0;
          peer.rampFrom(Date.now());
        }
        peer.checkedDown = isDown;
        continue;
      }
      const added = new Peer(
        spec,
        this.upstream.maxConnectionsPerPeer,
        this.timeouts,
        this.upstream.tls,
        this.upstream.slowStart,
        this.connected,
      );
      added.checkedDown = down.has(spec.key);
      // A peer that joins a running upstream (DNS, not the first table) ramps up.
      if (this.started) added.rampFrom(Date.now());
      this.peersByKey.set(spec.key, added);
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
   * (SRV failover), skipping `tried` (peers this request already failed to reach). Below
   * `panic_threshold` of available peers, every peer is a candidate (Envoy's panic mode:
   * better some errors than the whole load on the few left). When no peer is
   * available at all, `on_all_down: panic` tries any untried peer anyway (a peer marked down
   * may be back); `fail` gives none (503). Undefined when none is left.
   */
  pick(tried?: ReadonlySet<Peer>, key?: string): Peer | undefined {
    // Envoy's health across priorities: each tier's share of available peers, summed (so a
    // healthy backup tier makes up for a dead primary one, SRV failover), at most 1.
    let total = 0;
    let available = 0;
    let health = 0;
    /** The first tier with an available peer, and whether all of its peers are. */
    let first: Peer[] | undefined;
    let firstWhole = false;
    for (const tier of this.tiers) {
      let up = 0;
      for (const p of tier) if (p.available) up++;
      total += tier.length;
      available += up;
      health += up / tier.length;
      if (!first && up > 0) {
        first = tier;
        firstWhole = up === tier.length;
      }
    }
    const panic =
      available === 0
        ? this.upstream.onAllDown === "panic"
        : Math.min(1, health) < this.upstream.panicThreshold;
    this.notePanic(
      available === 0 ? (panic ? "all-down-panic" : "all-down-fail") : panic ? "panic" : "normal",
      available,
      total,
    );
    if (available === 0 && !panic) return undefined;
    if (!panic) {
      // The common case: a first request and a tier that is all up, taken as it is.
      if (!tried && firstWhole) return this.balancer.pick(first as Peer[], key);
      for (const tier of this.tiers) {
        const candidates = tier.filter((p) => p.available && !tried?.has(p));
        if (candidates.length > 0) return this.balancer.pick(candidates, key);
      }
    }
    for (const tier of this.tiers) {
      const candidates = tried ? tier.filter((p) => !tried.has(p)) : tier;
      if (candidates.length > 0) return this.balancer.pick(candidates, key);
    }
    return undefined;
  }

  /** Log once per change (not per request) when the upstream enters or leaves panic mode. */
  private notePanic(state: PanicState, available: number, total: number): void {
    if (state === this.panicState) return;
    const before = this.panicState;
    this.panicState = state;
    if (!this.log) return;
    const counts = `${available} of ${total} peers available`;
    if (state === "normal") {
      if (before !== undefined) this.log(`upstream ${this.name} out of panic mode: ${counts}`);
    } else if (state === "panic") {
      this.log(
        `upstream ${this.name} in panic mode: ${counts}, below panic_threshold ${Math.round(this.upstream.panicThreshold * 100)}%; spreading requests over every peer`,
      );
    } else if (state === "all-down-panic") {
      this.log(`upstream ${this.name}: no peer available; sending to them anyway (on_all_down: panic)`);
    } else {
      this.log(`upstream ${this.name}: no peer available; answering 503 (on_all_down: fail)`);
    }
  }

  /**
   * A request to `peer` failed (`kind`): after `max_fails` in a row the peer is ejected for
   * `fail_timeout`, doubled on each ejection that follows the last one too soon, up to
   * `max_fail_timeout`, unless `max_ejected_percent` of the upstream is out already.
   * Returns the ejection's length in ms, or 0.
   */
  failed(peer: Peer, kind: "error" | "timeout" | "5xx", connect: boolean): number {
    const passive = this.upstream.passive;
    // A connection that could not be made always counts: the peer cannot take requests.
    if (!connect && !passive.on.includes(kind)) return 0;
    if (++peer.failures < passive.maxFails) return 0;
    const now = Date.now();
    // A peer that refuses connections cannot take a request whatever the cap: only the
    // judgement calls (resets, timeouts, 5xx) are held to max_ejected_percent.
    if (!connect) {
      let ejected = 0;
      for (const p of this.peersByKey.values()) if (p !== peer && p.failedUntil > now) ejected++;
      const allowed = Math.max(1, Math.floor(this.peersByKey.size * passive.maxEjected));
      if (ejected + 1 > allowed) return 0;
    }
    // Back for less than its last ejection lasted: this one is twice as long (Envoy).
    if (peer.ejections > 0 && now - peer.ejectedUntil > peer.lastEjectionMs) peer.ejections = 0;
    const ms = Math.min(passive.maxFailTimeout, passive.failTimeout * 2 ** peer.ejections);
    peer.ejections++;
    peer.lastEjectionMs = ms;
    peer.ejectedUntil = now + ms;
    peer.failures = 0;
    peer.markFailed(ms);
    return ms;
  }

  /** Close every peer's pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }
}
