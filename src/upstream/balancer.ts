/**
 * The interface every balancing policy implements (one policy per file in `balancers/`),
 * and the factory that picks one by its config name.
 */

import type { Upstream } from "../config/types.js";
import { FirstAvailable } from "./balancers/first.js";
import { ConsistentHash } from "./balancers/hash.js";
import { LeastConnections } from "./balancers/least-conn.js";
import { RandomTwoChoices } from "./balancers/random-two.js";
import { SmoothWeightedRoundRobin } from "./balancers/round-robin.js";
import type { Peer } from "./peer.js";

/**
 * A balancing policy: choose the peer for the next request among `peers` (available ones,
 * in the upstream's order), or undefined when there is none. `key` is the request's hash
 * key, given to `hash` only.
 */
export interface Balancer {
  pick(peers: readonly Peer[], key?: string): Peer | undefined;
}

/** Build the balancer named by an upstream's `balance` setting. */
export function createBalancer(upstream: Pick<Upstream, "balance" | "hash">): Balancer {
  switch (upstream.balance) {
    case "round_robin":
      return new SmoothWeightedRoundRobin();
    case "least_conn":
      return new LeastConnections();
    case "random_two":
      return new RandomTwoChoices();
    case "first":
      return new FirstAvailable();
    case "hash":
      return new ConsistentHash(upstream.hash?.boundedLoad);
  }
}
