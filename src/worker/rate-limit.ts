/**
 * Rate limits, worker side: asks whether one more request under a route's `rate_limit` may
 * pass. The master owns the buckets (so a limit holds for the whole instance, not once per
 * worker): the checks of one event-loop turn go to it in one IPC message, matched to their
 * answers by sequence number. When the master does not answer within a short bound (busy,
 * stalled, gone), the worker decides with its own share of the limit (rate/N, burst/N for N
 * workers) and counts it, so a slow master never fails or stalls a request for long.
 */
import type { RateLimit } from "../config/types.js";
import type { RateLimitAnswerMessage, RateLimitCheckMessage, WorkerToMaster } from "../ipc.js";
import type { Logger } from "../observability/logger.js";
import { TokenBucketTable } from "../ratelimit/bucket-table.js";
import { bucketKey, bucketSpace, workerShare } from "../ratelimit/limit.js";
import { REDIS_TIMEOUT_MS } from "../ratelimit/redis-store.js";

/** The answer for one request. */
export interface RateDecision {
  allowed: boolean;
  /** When refused: seconds until a token is free (the `Retry-After` value, >= 1). */
  retryAfterSec: number;
}

/** What the request handler calls. */
export interface RateLimits {
  check(limit: RateLimit, key: string): RateDecision | Promise<RateDecision>;
}

const ALLOW: RateDecision = { allowed: true, retryAfterSec: 0 };

/** Lets every request through. */
export const noRateLimits: RateLimits = { check: () => ALLOW };

/** How long a worker waits for the master's answer to a `local` limit before deciding alone. */
export const MASTER_ANSWER_MS = 50;
/** The same for a Redis limit: the master itself may wait up to REDIS_TIMEOUT_MS for Redis. */
export const MASTER_ANSWER_REDIS_MS = MASTER_ANSWER_MS + REDIS_TIMEOUT_MS;
/** How often decisions made alone are reported to the master's counters, and logged at most. */
const REPORT_MS = 1_000;
const LOG_EVERY_MS = 10_000;
/** Buckets a worker keeps for its own decisions (only used while the master is slow). */
const FALLBACK_KEYS = 10_000;

interface Pending {
  limit: RateLimit;
  key: string;
  resolve: (decision: RateDecision) => void;
  /** Set once sent. */
  batch?: Batch;
}

interface Batch {
  seqs: number[];
  left: number;
  timer?: NodeJS.Timeout;
}

/** The limiter of one worker: the master decides; the worker's share when it is too slow. */
export class MasterRateLimits implements RateLimits {
  private readonly send: (msg: WorkerToMaster) => boolean;
  private readonly connected: () => boolean;
  private readonly workers: number;
  private log: Logger;
  private nextSeq = 1;
  private readonly pending = new Map<number, Pending>();
  /** Checks of this event-loop turn, sent together by `flush`. */
  private queue: Array<{ seq: number; limit: RateLimit; key: string }> = [];
  private flushScheduled = false;
  private readonly fallback = new TokenBucketTable({ maxKeys: FALLBACK_KEYS });
  /** Decisions made alone since the last report, by limit id. */
  private unreported = new Map<string, { allowed: number; limited: number }>();
  private reportTimer?: NodeJS.Timeout;
  private aloneSinceLog = 0;
  private lastLog = 0;

  /**
   * @param send sends a message to the master (false when the channel is gone).
   * @param workers N, the workers of this generation: the share is rate/N.
   */
  constructor(opts: {
    send: (msg: WorkerToMaster) => boolean;
    connected: () => boolean;
    workers: number;
    log: Logger;
  }) {
    this.send = opts.send;
    this.connected = opts.connected;
    this.workers = opts.workers;
    this.log = opts.log;
  }

  check(limit: RateLimit, key: string): Promise<RateDecision> {
    const bucket = bucketKey(key);
    if (!this.connected()) return Promise.resolve(this.decideAlone(limit, bucket));
    return new Promise((resolve) => {
      const seq = this.nextSeq++;
      this.queue.push({ seq, limit, key: bucket });
      this.pending.set(seq, { limit, key: bucket, resolve });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // After the I/O of this turn: every request parsed in it goes in one message.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const queue = this.queue;
    this.queue = [];
    if (queue.length === 0) return;
    const limits: RateLimit[] = [];
    const index = new Map<RateLimit, number>();
    const batch: Batch = { seqs: [], left: queue.length };
    let bound = MASTER_ANSWER_MS;
    const checks = queue.map(({ seq, limit, key }) => {
      let i = index.get(limit);
      if (i === undefined) {
        i = limits.push(limit) - 1;
        index.set(limit, i);
        if (limit.store !== "local") bound = MASTER_ANSWER_REDIS_MS;
      }
      batch.seqs.push(seq);
      const entry = this.pending.get(seq);
      if (entry) entry.batch = batch;
      return { seq, limit: i, key };
    });
    const msg: RateLimitCheckMessage = { type: "rate-limit-check", limits, checks };
    let sent = false;
    try {
      sent = this.connected() && this.send(msg) !== false;
    } catch {
      sent = false;
    }
    // `send` returns false also when the message is only queued behind others: it still goes.
    if (!sent && !this.connected()) {
      this.expire(batch);
      return;
    }
    batch.timer = setTimeout(() => this.expire(batch), bound);
  }

  /** The master's answers: settle those still waiting (a late one was already decided alone). */
  onAnswer(msg: RateLimitAnswerMessage): void {
    for (const { seq, allowed, retryAfterSec } of msg.answers) {
      const entry = this.pending.get(seq);
      if (!entry) continue;
      this.pending.delete(seq);
      entry.resolve(allowed ? ALLOW : { allowed: false, retryAfterSec: Math.max(1, retryAfterSec) });
      if (entry.batch && --entry.batch.left === 0) clearTimeout(entry.batch.timer);
    }
  }

  /** The master did not answer in time: decide what is still waiting alone. */
  private expire(batch: Batch): void {
    for (const seq of batch.seqs) {
      const entry = this.pending.get(seq);
      if (!entry) continue;
      this.pending.delete(seq);
      entry.resolve(this.decideAlone(entry.limit, entry.key));
    }
  }

  /** Decide with this worker's share of the limit, and count it for the master. */
  private decideAlone(limit: RateLimit, key: string): RateDecision {
    const decision = this.fallback.take(bucketSpace(limit), key, workerShare(limit, this.workers));
    const counts = this.unreported.get(limit.id) ?? { allowed: 0, limited: 0 };
    if (decision.allowed) counts.allowed++;
    else counts.limited++;
    this.unreported.set(limit.id, counts);
    this.aloneSinceLog++;
    const now = Date.now();
    if (now - this.lastLog >= LOG_EVERY_MS) {
      this.log.warn(
        { limit: limit.id, decisions: this.aloneSinceLog },
        `rate limits: the master did not answer within ${limit.store === "local" ? MASTER_ANSWER_MS : MASTER_ANSWER_REDIS_MS} ms; this worker decides with its own share of the limit (1/${this.workers} of the rate) meanwhile`,
      );
      this.lastLog = now;
      this.aloneSinceLog = 0;
    }
    this.reportTimer ??= setTimeout(() => this.report(), REPORT_MS).unref();
    return decision.allowed ? ALLOW : decision;
  }

  /** Send the decisions made alone to the master's counters. */
  private report(): void {
    this.reportTimer = undefined;
    if (this.unreported.size === 0) return;
    if (!this.connected()) return;
    const counts = Object.fromEntries(this.unreported);
    this.unreported = new Map();
    try {
      this.send({ type: "rate-limit-fallbacks", counts });
    } catch {
      // The master is gone: nobody to count for.
    }
  }

  /** Checks waiting for the master's answer (for tests). */
  get waiting(): number {
    return this.pending.size;
  }
}
