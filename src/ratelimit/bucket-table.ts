/**
 * Token buckets in memory, one per (space, key), with a cap on how many are kept.
 *
 * A bucket holds up to `capacity` tokens and gains `rate` per second; a request takes one
 * token or is refused. A bucket that has refilled to capacity is the same as no bucket, so
 * full ones are dropped as they are met (the least recently used first); that keeps the table
 * near the number of keys active within one refill time.
 *
 * Bounded memory: past `maxKeys` buckets the least recently used one is evicted even when it
 * is not full. Forgetting a bucket that is not full would let its key through again with a
 * full one, so each space keeps a watermark: the moment its emptiest evicted bucket would
 * have been full. Until then a new bucket in that space starts with the tokens that evicted
 * bucket would have now, not with `capacity`. So no key ever gets more than its bucket would
 * have allowed; the price, while more keys are active than the table holds, is that keys new
 * to the table start with fewer tokens than a full bucket.
 */
import type { BucketSpec } from "./limit.js";

/** The answer for one request. */
export interface BucketDecision {
  allowed: boolean;
  /** When refused: whole seconds until a token is back (>= 1, the `Retry-After`); 0 when allowed. */
  retryAfterSec: number;
  /** When refused: ms until a token is back (> 0); 0 when allowed. */
  waitMs: number;
}

interface Bucket {
  space: string;
  tokens: number;
  /** When `tokens` was computed, ms on the table's clock. */
  at: number;
  spec: BucketSpec;
}

/** Default cap on buckets: about 150 bytes each, so some 15 MB at the cap. */
export const DEFAULT_MAX_KEYS = 100_000;

/** Tolerance of the token count (float error of many small refills). */
const EPSILON = 1e-9;

/** Full buckets looked at (and dropped) per `take`: keeps the table clean without a timer. */
const SWEEP_PER_TAKE = 2;

/** Token buckets keyed by space and key, least recently used first. */
export class TokenBucketTable {
  private readonly buckets = new Map<string, Bucket>();
  /** Space -> until when (ms) a new bucket in it starts below capacity (see the module doc). */
  private readonly watermarks = new Map<string, number>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  /** Buckets evicted before they were full (for tests and metrics). */
  evictedEarly = 0;

  /** @param now the clock in ms, monotonic (default `performance.now`). */
  constructor(opts: { maxKeys?: number; now?: () => number } = {}) {
    this.maxKeys = Math.max(1, opts.maxKeys ?? DEFAULT_MAX_KEYS);
    this.now = opts.now ?? (() => performance.now());
  }

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Take one token from the bucket of `key` in `space` (made on first use), or refuse. */
  take(space: string, key: string, spec: BucketSpec): BucketDecision {
    const now = this.now();
    const id = `${space}\n${key}`;
    let bucket = this.buckets.get(id);
    if (bucket) {
      // Most recently used goes last: a Map iterates in insertion order.
      this.buckets.delete(id);
      bucket.tokens = Math.min(
        bucket.spec.capacity,
        bucket.tokens + ((now - bucket.at) * bucket.spec.rate) / 1000,
      );
      bucket.at = now;
    } else {
      bucket = { space, tokens: this.startingTokens(space, spec, now), at: now, spec };
    }
    this.buckets.set(id, bucket);
    // The epsilon absorbs float error: ten refills of 0.1 token must make a whole one.
    const allowed = bucket.tokens >= 1 - EPSILON;
    if (allowed) bucket.tokens = Math.max(0, bucket.tokens - 1);
    const waitMs = allowed ? 0 : Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / bucket.spec.rate));
    // After the take: this bucket is no longer full, so the sweep cannot drop it.
    this.sweep(now);
    return { allowed, retryAfterSec: allowed ? 0 : Math.ceil(waitMs / 1000), waitMs };
  }

  /** A new bucket's tokens: full, unless buckets of its space were evicted before they were full. */
  private startingTokens(space: string, spec: BucketSpec, now: number): number {
    const until = this.watermarks.get(space);
    if (until === undefined) return spec.capacity;
    if (until <= now) {
      this.watermarks.delete(space);
      return spec.capacity;
    }
    return Math.max(0, spec.capacity - ((until - now) * spec.rate) / 1000);
  }

  /** When `bucket` will be full again (ms). */
  private static fullAt(bucket: Bucket): number {
    return bucket.at + ((bucket.spec.capacity - bucket.tokens) * 1000) / bucket.spec.rate;
  }

  /** Drop full buckets from the old end, then evict down to the cap. */
  private sweep(now: number): void {
    let looked = 0;
    for (const [id, bucket] of this.buckets) {
      if (looked++ >= SWEEP_PER_TAKE || TokenBucketTable.fullAt(bucket) > now) break;
      this.buckets.delete(id);
    }
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.entries().next().value as [string, Bucket];
      const [id, bucket] = oldest;
      this.buckets.delete(id);
      const fullAt = TokenBucketTable.fullAt(bucket);
      if (fullAt > now) {
        this.evictedEarly++;
        this.watermarks.set(bucket.space, Math.max(this.watermarks.get(bucket.space) ?? 0, fullAt));
      }
    }
  }
}
