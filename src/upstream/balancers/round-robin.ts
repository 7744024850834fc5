/**
 * Smooth weighted round-robin, nginx's algorithm (ngx_http_upstream_get_peer): each pick adds
 * every peer's weight to its current weight, takes the largest, and subtracts the total from
 * it. Weights 5,1,1 give a,a,b,a,c,a,a — spread out, never bursts of one peer.
 */
import type { Balancer } from "../balancer.js";
import type { Peer } from "../peer.js";

/** nginx's smooth weighted round-robin. State is kept per peer object, so a new peer set starts fresh. */
export class SmoothWeightedRoundRobin implements Balancer {
  private readonly current = new WeakMap<Peer, number>();

  pick(peers: readonly Peer[]): Peer | undefined {
    let best: Peer | undefined;
    let bestWeight = 0;
    let total = 0;
    for (const peer of peers) {
      const effective = peer.effectiveWeight;
      const weight = (this.current.get(peer) ?? 0) + effective;
      this.current.set(peer, weight);
      total += effective;
      if (best === undefined || weight > bestWeight) {
        best = peer;
        bestWeight = weight;
      }
    }
    if (best !== undefined) this.current.set(best, bestWeight - total);
    return best;
  }
}
