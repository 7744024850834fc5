/**
 * Rate limits, worker side: asks whether one more request under a route's `rate_limit` may
 * pass. The master owns the buckets (so a limit holds for the whole instance, not once per
 * worker): the checks of one event-loop turn go to it in one IPC message, matched to their
 * answers by sequence number. When the master does not answer within a short bound (busy,
 * stalled, gone), the worker decides with its own share of the limit (rate/N and
 * (burst + 1)/N tokens for N workers) and counts it, so a slow master never fails a request
 * nor holds it longer than that bound.
 */
import type { RateLimit } from "../config/types.js";
import type { RateLimitAnswerMessage, RateLimitCheckMessage, WorkerToMaster } from "../ipc.js";
import type { Logger } from "../observability/logger.js";
import { TokenBucketTable } from "../ratelimit/bucket-table.js";
import { bucketKey, bucketSpace, REDIS_TIMEOUT_MS, workerShare } from "../ratelimit/limit.js";

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
/** How often the decisions applied are reported to the master's counters. */
const REPORT_MS = 1_000;
/** Deciding alone is logged at most this often (with the count since the last line). */
const LOG_EVERY_MS = 10_000;
/** Buckets a worker keeps for its own decisions (only used while the master is slow). */
const FALLBACK_KEYS = 10_000;
/** Keys a worker remembers the master refused, until their next token (see `refusedUntil`). */
const REFUSED_KEYS = 10_000;

/** Decisions applied under one limit. */
export interface LimitCounts {
  allowed: number;
  limited: number;
  /** Of those, decided with this worker's share because the master did not answer in time. */
  alone: number;
}

interface Pending {
  limit: RateLimit;
  key: string;
  /** Space and key: what `refusedUntil` is keyed by. */
  bucket: string;
  resolve: (decision: RateDecision) => void;
}

/** Checks sent in one message, and until when (ms) the master has to answer them. */
interface Batch {
  seqs: number[];
  deadline: number;
}

/**
 * Batches waiting for answers, oldest first, all with the same bound (so deadlines come in
 * order), under one timer armed for the oldest: no timer call per request.
 */
class Deadlines {
  private readonly batches: Batch[] = [];
  private head = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly boundMs: number,
    private readonly expire: (batch: Batch) => void,
  ) {}

  add(seqs: number[]): void {
    this.batches.push({ seqs, deadline: performance.now() + this.boundMs });
    if (!this.timer) this.arm();
  }

  private arm(): void {
    const first = this.batches[this.head];
    if (!first) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, first.deadline - performance.now()));
  }

  private fire(): void {
    this.timer = undefined;
    const now = performance.now();
    for (
      let batch = this.batches[this.head];
      batch && batch.deadline <= now;
      batch = this.batches[this.head]
    ) {
      this.head++;
      this.expire(batch);
    }
    // Drop what is behind the head now and then, not on every fire.
    if (this.head > 1024 || this.head === this.batches.length) {
      this.batches.splice(0, this.head);
      this.head = 0;
    }
    this.arm();
  }
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
  private queue: number[] = [];
  private flushScheduled = false;
  private readonly localDeadlines = new Deadlines(MASTER_ANSWER_MS, (b) => this.expire(b));
  private readonly redisDeadlines = new Deadlines(MASTER_ANSWER_REDIS_MS, (b) => this.expire(b));
  private readonly fallback = new TokenBucketTable({ maxKeys: FALLBACK_KEYS });
  /**
   * Bucket -> `performance.now()` before which it has no token, as the master last said. Tokens
   * only come back with time (no worker or instance can add one), so until then the master
   * would refuse the key too: the worker refuses it by itself, and a client flooding a limited
   * route costs one IPC round trip per token, not per request.
   */
  private readonly refusedUntil = new Map<string, number>();
  /** `bucketSpace` of each limit object (frozen config: one per route). */
  private readonly spaces = new WeakMap<RateLimit, string>();
  /** This worker's decisions, by limit id, since it started (for its metrics). */
  readonly counts = new Map<string, LimitCounts>();
  /** The same since the last report to the master. */
  private unreported = new Map<string, LimitCounts>();
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

  check(limit: RateLimit, key: string): RateDecision | Promise<RateDecision> {
    const hashed = bucketKey(key);
    let space = this.spaces.get(limit);
    if (space === undefined) {
      space = bucketSpace(limit);
      this.spaces.set(limit, space);
    }
    const bucket = `${space}\n${hashed}`;
    const until = this.refusedUntil.get(bucket);
    if (until !== undefined) {
      const waitMs = until - performance.now();
      if (waitMs > 0) {
        this.count(limit, false, false);
        // Known without asking: answered at once (no promise, no extra turn of the loop).
        return { allowed: false, retryAfterSec: Math.ceil(waitMs / 1000) };
      }
      this.refusedUntil.delete(bucket);
    }
    if (!this.connected()) return this.decideAlone(limit, hashed);
    return new Promise((resolve) => {
      const seq = this.nextSeq++;
      this.queue.push(seq);
      this.pending.set(seq, { limit, key: hashed, bucket, resolve });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // After the I/O of this turn: every request parsed in it goes in one message.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const seqs = this.queue;
    this.queue = [];
    const limits: RateLimit[] = [];
    const checks: RateLimitCheckMessage["checks"] = [];
    let redis = false;
    for (const seq of seqs) {
      const entry = this.pending.get(seq);
      if (!entry) continue;
      let i = limits.indexOf(entry.limit);
      if (i < 0) {
        i = limits.push(entry.limit) - 1;
        if (entry.limit.store !== "local") redis = true;
      }
      checks.push([seq, i, entry.key]);
    }
    if (checks.length === 0) return;
    const deadline = Date.now() + (redis ? MASTER_ANSWER_REDIS_MS : MASTER_ANSWER_MS);
    const msg: RateLimitCheckMessage = { type: "rate-limit-check", deadline, limits, checks };
    let sent = false;
    try {
      // `send` returns false also when the message is only queued behind others: it still goes.
      sent = this.connected() && (this.send(msg) || this.connected());
    } catch {
      sent = false;
    }
    if (!sent) this.expire({ seqs, deadline: 0 });
    else (redis ? this.redisDeadlines : this.localDeadlines).add(seqs);
  }

  /** The master's answers: settle those still waiting (a late one was already decided alone). */
  onAnswer(msg: RateLimitAnswerMessage): void {
    for (const [seq, waitMs] of msg.answers) {
      const entry = this.pending.get(seq);
      if (!entry) continue;
      this.pending.delete(seq);
      const allowed = waitMs === 0;
      this.count(entry.limit, allowed, false);
      if (allowed) {
        entry.resolve(ALLOW);
        continue;
      }
      this.rememberRefused(entry.bucket, waitMs);
      entry.resolve({ allowed: false, retryAfterSec: Math.max(1, Math.ceil(waitMs / 1000)) });
    }
  }

  /** Refuse `bucket` here until its next token (bounded: the oldest entry goes first). */
  private rememberRefused(bucket: string, waitMs: number): void {
    this.refusedUntil.delete(bucket);
    if (this.refusedUntil.size >= REFUSED_KEYS) {
      const oldest = this.refusedUntil.keys().next().value;
      if (oldest !== undefined) this.refusedUntil.delete(oldest);
    }
    this.refusedUntil.set(bucket, performance.now() + waitMs);
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
    this.count(limit, decision.allowed, true);
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
    return decision.allowed ? ALLOW : decision;
  }

  /** Count one applied decision, here and for the next report to the master. */
  private count(limit: RateLimit, allowed: boolean, alone: boolean): void {
    for (const map of [this.counts, this.unreported]) {
      let counts = map.get(limit.id);
      if (!counts) {
        counts = { allowed: 0, limited: 0, alone: 0 };
        map.set(limit.id, counts);
      }
      if (allowed) counts.allowed++;
      else counts.limited++;
      if (alone) counts.alone++;
    }
    this.reportTimer ??= setTimeout(() => this.report(), REPORT_MS).unref();
  }

  /** Send the decisions applied since the last report to the master's counters. */
  report(): void {
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
    if (this.unreported.size === 0 || !this.connected()) return;
    const counts = Object.fromEntries(this.unreported);
    this.unreported = new Map();
    try {
      this.send({ type: "rate-limit-counts", counts });
    } catch {
      // The master is gone: nobody to count for.
    }
  }

  /** Checks waiting for the master's answer (for tests). */
  get waiting(): number {
    return this.pending.size;
  }
}
