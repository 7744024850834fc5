/**
 * Power of two random choices (HAProxy `random(2)`, Envoy's default least-request): two peers
 * drawn at random, the one with fewer requests in flight for its weight wins. Nearly as good
 * as least connections, without every worker herding onto the same idle peer.
 */
import type { Balancer } from "../balancer.js";
import type { Peer } from "../peer.js";

export class RandomTwoChoices implements Balancer {
  pick(peers: readonly Peer[]): Peer | undefined {
    const n = peers.length;
    if (n <= 1) return peers[0];
    const i = Math.floor(Math.random() * n);
    let j = Math.floor(Math.random() * (n - 1));
    if (j >= i) j++;
    const a = peers[i] as Peer;
    const b = peers[j] as Peer;
    return (a.inFlight + 1) / a.effectiveWeight <= (b.inFlight + 1) / b.effectiveWeight ? a : b;
  }
}
