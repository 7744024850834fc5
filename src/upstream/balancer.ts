/**
 * The interface every balancing policy implements (one policy per file in `balancers/`),
 * and the factory that picks one by its config name.
 */

import { SmoothWeightedRoundRobin } from "./balancers/round-robin.js";
import type { Peer } from "./peer.js";

/** A balancing policy: choose the peer for the next request, or undefined when none can take it. */
export interface Balancer {
  pick(peers: readonly Peer[]): Peer | undefined;
}

/** Build the balancer named by an upstream's `balance` setting. */
export function createBalancer(policy: "round_robin"): Balancer {
  switch (policy) {
    case "round_robin":
      return new SmoothWeightedRoundRobin();
  }
}
