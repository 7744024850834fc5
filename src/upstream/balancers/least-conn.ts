/**
 * Weighted least connections (nginx `least_conn`): the peer with the fewest requests in
 * flight for its weight, `(inFlight + 1) / weight`; ties go round the tied peers in turn, so
 * an idle upstream still spreads its requests.
 */
import type { Balancer } from "../balancer.js";
import type { Peer } from "../peer.js";

export class LeastConnections implements Balancer {
  private turn = 0;

  pick(peers: readonly Peer[]): Peer | undefined {
    const n = peers.length;
    if (n === 0) return undefined;
    const start = this.turn++ % n;
    let best: Peer | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const peer = peers[(start + i) % n] as Peer;
      const score = (peer.inFlight + 1) / peer.effectiveWeight;
      if (score < bestScore) {
        best = peer;
        bestScore = score;
      }
    }
    return best;
  }
}
