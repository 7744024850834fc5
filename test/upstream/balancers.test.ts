import { describe, expect, it } from "vitest";
import { createBalancer } from "../../src/upstream/balancer.js";
import type { Peer } from "../../src/upstream/peer.js";

/** Balancers only read `address`, `effectiveWeight` and `inFlight`: plain objects stand in for pooled peers. */
function peers(n: number, weight = 1): Peer[] {
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        address: `10.0.0.${i + 1}:80`,
        weight,
        inFlight: 0,
        get effectiveWeight() {
          return this.weight;
        },
      }) as Peer,
  );
}

function counts(picks: Array<Peer | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) out[p?.address ?? "none"] = (out[p?.address ?? "none"] ?? 0) + 1;
  return out;
}

describe("least_conn", () => {
  it("takes the peer with the fewest requests in flight for its weight, and turns between ties", () => {
    const b = createBalancer({ balance: "least_conn", hash: undefined });
    const set = peers(3);
    expect(new Set([b.pick(set), b.pick(set), b.pick(set)].map((p) => p?.address)).size).toBe(3);
    (set[0] as Peer).inFlight = 2;
    (set[1] as Peer).inFlight = 1;
    (set[2] as Peer).inFlight = 3;
    expect(b.pick(set)?.address).toBe("10.0.0.2:80");
    (set[2] as Peer).weight = 10; // 4/10 beats 2/1
    expect(b.pick(set)?.address).toBe("10.0.0.3:80");
  });
});

describe("random_two", () => {
  it("never picks the busier of two peers", () => {
    const b = createBalancer({ balance: "random_two", hash: undefined });
    const set = peers(2);
    (set[0] as Peer).inFlight = 5;
    expect(counts(Array.from({ length: 200 }, () => b.pick(set)))).toEqual({ "10.0.0.2:80": 200 });
  });

  it("spreads over idle peers", () => {
    const b = createBalancer({ balance: "random_two", hash: undefined });
    const c = counts(Array.from({ length: 3000 }, () => b.pick(peers(3))));
    for (const n of Object.values(c)) expect(n).toBeGreaterThan(700);
  });
});

describe("first", () => {
  it("sends everything to the first peer it is given", () => {
    const b = createBalancer({ balance: "first", hash: undefined });
    const set = peers(3);
    expect(counts(Array.from({ length: 10 }, () => b.pick(set)))).toEqual({ "10.0.0.1:80": 10 });
    expect(b.pick(set.slice(1))?.address).toBe("10.0.0.2:80");
  });
});

describe("hash", () => {
  const keys = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
  const hash = (boundedLoad?: number) =>
    createBalancer({ balance: "hash", hash: { key: { kind: "header", name: "x-user" }, boundedLoad } });

  it("sends a key to the same peer every time, and spreads keys evenly", () => {
    const b = hash();
    const set = peers(10);
    const first = keys.map((k) => b.pick(set, k)?.address);
    expect(keys.map((k) => b.pick(set, k)?.address)).toEqual(first);
    for (const n of Object.values(counts(keys.map((k) => b.pick(set, k))))) {
      expect(n).toBeGreaterThan(60);
      expect(n).toBeLessThan(140);
    }
  });

  it("moves at most 15% of 1,000 keys when one of 10 peers leaves, and only keys of that peer", () => {
    const b = hash();
    const set = peers(10);
    const before = keys.map((k) => b.pick(set, k)?.address);
    const gone = set[4]?.address;
    const after = keys.map(
      (k) =>
        b.pick(
          set.filter((p) => p.address !== gone),
          k,
        )?.address,
    );
    const moved = keys.filter((_, i) => before[i] !== after[i]);
    expect(moved.length).toBeLessThanOrEqual(150);
    expect(moved.every((_, i) => before[keys.indexOf(moved[i] as string)] === gone)).toBe(true);
  });

  it("follows weights", () => {
    const b = hash();
    const set = peers(2);
    (set[0] as Peer).weight = 3;
    const c = counts(keys.map((k) => b.pick(set, k)));
    expect(c["10.0.0.1:80"]).toBeGreaterThan(680);
    expect(c["10.0.0.1:80"]).toBeLessThan(820);
  });

  it("with bounded_load, passes a key over to its next peer when its own carries too much", () => {
    const b = hash(1.25);
    const set = peers(4);
    const home = b.pick(set, "hot") as Peer;
    home.inFlight = 10;
    const next = b.pick(set, "hot");
    expect(next).not.toBe(home);
    expect(b.pick(set, "hot")).toBe(next);
    home.inFlight = 0;
    expect(b.pick(set, "hot")).toBe(home);
  });
});

describe("slow_start", () => {
  it("ramps a recovered peer's share from 10% to its full weight over the duration", async () => {
    const { Peer } = await import("../../src/upstream/peer.js");
    const timeouts = {
      connect: 1000,
      upstreamHeader: 1000,
      upstreamBody: 1000,
      clientKeepalive: 1000,
      upstreamKeepalive: 1000,
      shutdown: 1000,
      drainGrace: 1000,
      workerStart: 1000,
      tunnelIdle: 1000,
      clientHeader: 10_000,
      clientBody: 60_000,
    };
    const spec = (port: number) => ({
      key: `127.0.0.1:${port}`,
      host: "127.0.0.1",
      port,
      weight: 1,
      priority: 0,
    });
    const steady = new Peer(spec(1), 1, timeouts, undefined, 30_000);
    const back = new Peer(spec(2), 1, timeouts, undefined, 30_000);
    try {
      const rr = createBalancer({ balance: "round_robin", hash: undefined });
      const share = () =>
        counts(Array.from({ length: 1000 }, () => rr.pick([steady, back])))["127.0.0.1:2"] ?? 0;
      const now = Date.now();
      back.rampFrom(now); // just back: 10% of its weight
      expect(share()).toBeLessThan(120);
      back.rampFrom(now - 15_000); // half way: about a third of the requests (0.5 / 1.5)
      const half = share();
      expect(half).toBeGreaterThan(280);
      expect(half).toBeLessThan(390);
      back.rampFrom(now - 30_000); // done: an even split
      expect(share()).toBe(500);
      expect(steady.effectiveWeight).toBe(1);
    } finally {
      await Promise.all([steady.close(), back.close()]);
    }
  });
});
