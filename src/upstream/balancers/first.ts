/**
 * `first`: every request to the first available peer in the upstream's order (active /
 * standby, HAProxy's `balance first`); the next one takes over when it is down.
 */
import type { Balancer } from "../balancer.js";
import type { Peer } from "../peer.js";

export class FirstAvailable implements Balancer {
  pick(peers: readonly Peer[]): Peer | undefined {
    return peers[0];
  }
}
