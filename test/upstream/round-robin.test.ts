import { describe, expect, it } from "vitest";
import { SmoothWeightedRoundRobin } from "../../src/upstream/balancers/round-robin.js";
import type { Peer } from "../../src/upstream/peer.js";

/** Balancers only read `address` and `effectiveWeight`: plain objects stand in for pooled peers. */
function peers(...weights: number[]): Peer[] {
  return weights.map(
    (weight, i) => ({ address: String.fromCharCode(97 + i), weight, effectiveWeight: weight }) as Peer,
  );
}

describe("smooth weighted round-robin", () => {
  it("spreads weights 5,1,1 as nginx does: a a b a c a a", () => {
    const rr = new SmoothWeightedRoundRobin();
    const set = peers(5, 1, 1);
    const picks = Array.from({ length: 7 }, () => rr.pick(set)?.address).join(" ");
    expect(picks).toBe("a a b a c a a");
  });

  it("alternates between equal peers", () => {
    const rr = new SmoothWeightedRoundRobin();
    const set = peers(1, 1);
    expect(Array.from({ length: 4 }, () => rr.pick(set)?.address)).toEqual(["a", "b", "a", "b"]);
  });

  it("gives each peer its share over a full cycle", () => {
    const rr = new SmoothWeightedRoundRobin();
    const set = peers(3, 2, 1);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 600; i++) {
      const a = rr.pick(set)?.address ?? "none";
      counts[a] = (counts[a] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 300, b: 200, c: 100 });
  });

  it("returns undefined when there is no peer", () => {
    expect(new SmoothWeightedRoundRobin().pick([])).toBeUndefined();
  });
});
