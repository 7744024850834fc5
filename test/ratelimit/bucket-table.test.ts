/**
 * The token bucket table on a clock the test moves: the rate and burst hold (nginx's
 * limit_req nodelay semantics), Retry-After says when a token is back, spaces are apart,
 * memory stays under the cap, and eviction never lets a key through more than its bucket
 * allows (checked over random schedules with fast-check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RateLimit } from "../../src/config/types.js";
import { TokenBucketTable } from "../../src/ratelimit/bucket-table.js";
import { bucketKey, bucketSpace, bucketSpec, workerShare } from "../../src/ratelimit/limit.js";

/** A table on a clock that only moves when told (ms). */
function table(maxKeys?: number) {
  let now = 1_000;
  const t = new TokenBucketTable({ maxKeys, now: () => now });
  return {
    t,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const limit = (rate: number, burst: number, id = "servers[0].routes[0]"): RateLimit => ({
  id,
  rate,
  burst,
  key: { kind: "client_ip" },
  store: "local",
});

describe("TokenBucketTable", () => {
  it("with burst 0 lets one request through per 1/rate seconds, as nginx's limit_req", () => {
    const { t, advance } = table();
    const spec = bucketSpec(limit(10, 0));
    expect(t.take("s", "a", spec).allowed).toBe(true);
    expect(t.take("s", "a", spec).allowed).toBe(false);
    advance(99);
    expect(t.take("s", "a", spec).allowed).toBe(false);
    advance(1);
    expect(t.take("s", "a", spec).allowed).toBe(true);
    expect(t.take("s", "a", spec).allowed).toBe(false);
  });

  it("with burst B lets B + 1 through at once, then the rate", () => {
    const { t, advance } = table();
    const spec = bucketSpec(limit(10, 5));
    const first = Array.from({ length: 10 }, () => t.take("s", "a", spec).allowed);
    expect(first.filter(Boolean)).toHaveLength(6);
    expect(first.slice(0, 6).every(Boolean)).toBe(true);
    // 10 s of one attempt every 10 ms (100/s): 10/s of them pass.
    let allowed = 0;
    for (let i = 0; i < 1000; i++) {
      advance(10);
      if (t.take("s", "a", spec).allowed) allowed++;
    }
    expect(allowed).toBe(100);
  });

  it("refills to the burst, never beyond it, however long a key was idle", () => {
    const { t, advance } = table();
    const spec = bucketSpec(limit(1, 2));
    for (let i = 0; i < 3; i++) expect(t.take("s", "a", spec).allowed).toBe(true);
    advance(3_600_000);
    const after = Array.from({ length: 5 }, () => t.take("s", "a", spec).allowed);
    expect(after).toEqual([true, true, true, false, false]);
  });

  it("answers Retry-After with the whole seconds until a token is back (at least 1)", () => {
    const { t, advance } = table();
    const perMinute = bucketSpec(limit(1 / 60, 0));
    expect(t.take("m", "a", perMinute)).toEqual({ allowed: true, retryAfterSec: 0, waitMs: 0 });
    expect(t.take("m", "a", perMinute)).toEqual({ allowed: false, retryAfterSec: 60, waitMs: 60_000 });
    advance(30_000);
    expect(t.take("m", "a", perMinute)).toMatchObject({ retryAfterSec: 30, waitMs: 30_000 });
    advance(29_500);
    expect(t.take("m", "a", perMinute)).toMatchObject({ retryAfterSec: 1, waitMs: 500 });
    const fast = bucketSpec(limit(100, 0));
    t.take("f", "a", fast);
    expect(t.take("f", "a", fast)).toEqual({ allowed: false, retryAfterSec: 1, waitMs: 10 });
    const half = bucketSpec(limit(0.5, 0));
    t.take("h", "a", half);
    expect(t.take("h", "a", half).retryAfterSec).toBe(2);
  });

  it("keeps keys and spaces apart", () => {
    const { t } = table();
    const spec = bucketSpec(limit(1, 0));
    expect(t.take("s1", "a", spec).allowed).toBe(true);
    expect(t.take("s1", "a", spec).allowed).toBe(false);
    expect(t.take("s1", "b", spec).allowed).toBe(true);
    expect(t.take("s2", "a", spec).allowed).toBe(true);
  });

  it("drops buckets that refilled, so an idle table shrinks", () => {
    const { t, advance } = table();
    const spec = bucketSpec(limit(10, 0));
    for (let i = 0; i < 100; i++) t.take("s", `k${i}`, spec);
    expect(t.size).toBe(100);
    advance(1_000);
    for (let i = 0; i < 60; i++) t.take("s", "busy", spec);
    // Each take drops up to two full buckets from the old end: 50 takes drop all 100.
    expect(t.size).toBe(1);
  });

  it("never holds more buckets than its cap", () => {
    const { t, advance } = table(50);
    const spec = bucketSpec(limit(1, 10));
    for (let i = 0; i < 10_000; i++) {
      t.take("s", `k${i}`, spec);
      if (i % 100 === 0) advance(1);
      expect(t.size).toBeLessThanOrEqual(50);
    }
    expect(t.evictedEarly).toBeGreaterThan(9_000);
  });

  it("a key evicted before its bucket refilled does not come back with a full one", () => {
    const { t, advance } = table(10);
    const spec = bucketSpec(limit(1, 4)); // 5 tokens, 1 per second
    for (let i = 0; i < 5; i++) expect(t.take("s", "victim", spec).allowed).toBe(true);
    expect(t.take("s", "victim", spec).allowed).toBe(false);
    // Twenty other keys push the victim out of a table of ten.
    for (let i = 0; i < 20; i++) t.take("s", `flood${i}`, spec);
    expect(t.evictedEarly).toBeGreaterThan(0);
    expect(t.take("s", "victim", spec).allowed).toBe(false);
    // Its bucket would have one token again after 1 s, and is given exactly that.
    advance(1_000);
    expect(t.take("s", "victim", spec).allowed).toBe(true);
    expect(t.take("s", "victim", spec).allowed).toBe(false);
    // Once every evicted bucket would be full, new keys start full again.
    advance(6_000);
    const fresh = Array.from({ length: 6 }, () => t.take("s", "newcomer", spec).allowed);
    expect(fresh).toEqual([true, true, true, true, true, false]);
  });

  it("over any schedule, no key gets more than burst + 1 + rate x T in any window T, whatever the evictions", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }), // cap on keys
        fc.integer({ min: 0, max: 5 }), // burst
        fc.integer({ min: 1, max: 50 }), // rate per second
        fc.array(fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 120 })), {
          minLength: 1,
          maxLength: 300,
        }), // (key, ms before the request)
        (maxKeys, burst, rate, schedule) => {
          const { t, advance } = table(maxKeys);
          const spec = bucketSpec(limit(rate, burst));
          const times = new Map<number, number[]>();
          let now = 0;
          for (const [key, wait] of schedule) {
            advance(wait);
            now += wait;
            if (t.take("s", `k${key}`, spec).allowed) times.set(key, [...(times.get(key) ?? []), now]);
          }
          // The token bucket's promise: the requests let through between two moments never
          // outnumber a full bucket plus what the rate added in between.
          for (const list of times.values()) {
            for (let i = 0; i < list.length; i++) {
              for (let j = i; j < list.length; j++) {
                const span = (list[j] as number) - (list[i] as number);
                expect(j - i + 1).toBeLessThanOrEqual(burst + 1 + (rate * span) / 1000 + 1e-6);
              }
            }
          }
        },
      ),
      { seed: 20261203, numRuns: 300 },
    );
  });
});

describe("limit helpers", () => {
  it("a bucket holds burst + 1 tokens; a worker's share is rate/N, never below one token", () => {
    expect(bucketSpec(limit(10, 0))).toEqual({ rate: 10, capacity: 1 });
    expect(bucketSpec(limit(10, 50))).toEqual({ rate: 10, capacity: 51 });
    expect(workerShare(limit(10, 49), 2)).toEqual({ rate: 5, capacity: 25 });
    expect(workerShare(limit(10, 0), 4)).toEqual({ rate: 2.5, capacity: 1 });
  });

  it("a changed rate, burst or key is a new space; the same limit keeps its space", () => {
    const base = limit(10, 5);
    expect(bucketSpace({ ...base })).toBe(bucketSpace(base));
    expect(bucketSpace({ ...base, rate: 20 })).not.toBe(bucketSpace(base));
    expect(bucketSpace({ ...base, burst: 6 })).not.toBe(bucketSpace(base));
    expect(bucketSpace({ ...base, key: { kind: "header", name: "x-api-key" } })).not.toBe(bucketSpace(base));
  });

  it("hashes long keys, keeps short ones", () => {
    expect(bucketKey("192.0.2.1")).toBe("192.0.2.1");
    const long = bucketKey("x".repeat(10_000));
    expect(long).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    expect(bucketKey("x".repeat(10_000))).toBe(long);
    expect(bucketKey(`${"x".repeat(9_999)}y`)).not.toBe(long);
  });
});
