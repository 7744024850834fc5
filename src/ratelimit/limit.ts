/**
 * From a route's `RateLimit` to the token buckets that enforce it: the bucket's size and fill
 * rate, the namespace its keys live in, and a worker's share when it must decide alone.
 * Shared by the master (its bucket table, the Redis store) and the workers (their fallback).
 */
import { createHash } from "node:crypto";
import type { RateLimit } from "../config/types.js";

/**
 * Longest wait for one check's answer from Redis (the master's Redis store). Here, not in
 * redis-store.ts, so that workers, which need the number, do not load the Redis client.
 */
export const REDIS_TIMEOUT_MS = 50;

/** A token bucket's shape: `rate` tokens per second, at most `capacity` tokens. */
export interface BucketSpec {
  rate: number;
  capacity: number;
}

/**
 * The bucket of a limit. As nginx's `limit_req ... nodelay`: with `burst: 0` one request is
 * let through per 1/rate seconds; `burst: B` lets B more through at once. So the bucket holds
 * `burst + 1` tokens, each request takes one, and they come back at `rate` per second.
 */
export function bucketSpec(limit: RateLimit): BucketSpec {
  return { rate: limit.rate, capacity: limit.burst + 1 };
}

/**
 * A worker's share of a limit when the master cannot answer in time: rate/N and burst/N for
 * N workers, but never less than one token of capacity (a share of 0.5 would refuse every
 * request), so with `burst + 1 < N` the instance may briefly let N requests through at once.
 */
export function workerShare(limit: RateLimit, workers: number): BucketSpec {
  const n = Math.max(1, workers);
  return { rate: limit.rate / n, capacity: Math.max(1, (limit.burst + 1) / n) };
}

/**
 * The namespace of a limit's buckets: its id (the route's position) and everything that
 * shapes its buckets. A reload that keeps a route's limit as it was keeps its buckets; one
 * that changes the rate, burst or key starts new ones (a bucket of 100/s must not carry over
 * into a limit of 1/s).
 */
export function bucketSpace(limit: RateLimit): string {
  const key = limit.key.kind === "header" ? `header:${limit.key.name}` : "client_ip";
  return `${limit.id}|${limit.rate}|${limit.burst}|${key}`;
}

/** Keys longer than this are hashed: a header value can be kilobytes, a bucket key should not. */
const MAX_KEY_LENGTH = 64;

/**
 * The bucket key for a request's key (a client address or a header value): itself when
 * short, else its SHA-256, so neither the bucket table, the IPC messages nor Redis grow with
 * what a client sends.
 */
export function bucketKey(key: string): string {
  if (key.length <= MAX_KEY_LENGTH) return key;
  return `sha256:${createHash("sha256").update(key).digest("base64url")}`;
}
