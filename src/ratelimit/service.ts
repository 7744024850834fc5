/**
 * The master's side of rate limiting: it owns the buckets, so a limit holds for the whole
 * instance however many workers serve it. Workers send the checks of each event-loop turn
 * in one `rate-limit-check` message; `local` limits are decided at once from the bucket
 * table, Redis ones by their store (one client per distinct store URL), falling back to the
 * same local table when Redis cannot answer in time. Counters per limit id (the workers
 * report what they applied) are kept for the metrics.
 *
 * Buckets outlive a reload: they are kept by limit id (the route's position) together with
 * the limit's rate, burst and key, so an unchanged route keeps counting where it was and a
 * changed one starts afresh.
 */
import type { Config } from "../config/types.js";
import type { RateLimitAnswerMessage, RateLimitCheckMessage, RateLimitCountsMessage } from "../ipc.js";
import type { Logger } from "../observability/logger.js";
import { type BucketDecision, TokenBucketTable } from "./bucket-table.js";
import { bucketSpace, bucketSpec } from "./limit.js";
import { RedisStore } from "./redis-store.js";
import { parseStore } from "./syntax.js";

/** What happened to the requests under one limit (every worker, every generation). */
export interface LimitCounters {
  /** Requests let through (as the workers report them, at most a second late). */
  allowed: number;
  /** Requests refused (429). */
  limited: number;
  /** Checks this instance's buckets decided because the limit's Redis store did not answer in time. */
  storeFallbacks: number;
  /** Requests a worker decided with its share of the limit because the master did not answer in time. */
  workerFallbacks: number;
}

type Answer = RateLimitAnswerMessage["answers"][number];

/** A decision on the wire: a wait of 0 means let through. */
const answer = (seq: number, decision: BucketDecision): Answer => [
  seq,
  decision.allowed ? 0 : Math.max(1, decision.waitMs),
];

/** Rate limiting in the master: buckets, Redis stores, counters. */
export class RateLimitService {
  private readonly table: TokenBucketTable;
  private readonly stores = new Map<string, RedisStore>();
  private readonly counters = new Map<string, LimitCounters>();
  private log: Logger;

  constructor(log: Logger, opts: { maxKeys?: number } = {}) {
    this.log = log;
    this.table = new TokenBucketTable({ maxKeys: opts.maxKeys });
  }

  setLogger(log: Logger): void {
    this.log = log;
    for (const store of this.stores.values()) store.setLogger(log);
  }

  /**
   * Open a Redis client for every store `configs` use (at start and on reload, before the
   * workers that need it start) and close those no longer used. Never waits for Redis: one
   * that is down is logged and the limits fall back until it answers.
   */
  setConfigs(configs: readonly Config[]): void {
    const used = new Set<string>();
    for (const config of configs) {
      for (const server of config.servers) {
        for (const route of server.routes) {
          if (route.rateLimit && route.rateLimit.store !== "local") used.add(route.rateLimit.store);
        }
      }
    }
    for (const url of used) this.store(url);
    for (const [url, store] of this.stores) {
      if (used.has(url)) continue;
      this.stores.delete(url);
      void store.close();
    }
  }

  /** The store for `url`, made on first use (a check can come before `setConfigs`). */
  private store(url: string): RedisStore | undefined {
    let store = this.stores.get(url);
    if (!store) {
      const parsed = parseStore(url);
      if (!parsed.ok || parsed.value.kind !== "redis") return undefined;
      store = new RedisStore(parsed.value.redis, this.log);
      this.stores.set(url, store);
    }
    return store;
  }

  /**
   * Decide the checks of one message. `reply` is called once with the `local` decisions and
   * once more, when they are in, with those that went to Redis; not at all for a message
   * read after its deadline.
   */
  handle(msg: RateLimitCheckMessage, reply: (answer: RateLimitAnswerMessage) => void): void {
    // Read too late (this process was stalled): the worker has decided these alone already.
    if (Date.now() > msg.deadline) return;
    const now: Answer[] = [];
    const later: Array<Promise<Answer>> = [];
    const spaces = msg.limits.map(bucketSpace);
    const specs = msg.limits.map(bucketSpec);
    for (const [seq, index, key] of msg.checks) {
      const limit = msg.limits[index];
      const space = spaces[index];
      const spec = specs[index];
      // A malformed check is left unanswered: the worker decides it alone after its bound.
      if (!limit || space === undefined || !spec || typeof key !== "string") continue;
      const store = limit.store === "local" ? undefined : this.store(limit.store);
      if (!store) {
        now.push(answer(seq, this.table.take(space, key, spec)));
        continue;
      }
      later.push(
        store.check(space, key, spec).then((decision) => {
          if (decision) return answer(seq, decision);
          this.countersOf(limit.id).storeFallbacks++;
          return answer(seq, this.table.take(space, key, spec));
        }),
      );
    }
    if (now.length > 0) reply({ type: "rate-limit-answer", answers: now });
    if (later.length > 0) {
      void Promise.all(later)
        .then((answers) => reply({ type: "rate-limit-answer", answers }))
        .catch((err: unknown) => this.log.error({ err }, "rate limits: a Redis check failed unexpectedly"));
    }
  }

  /**
   * A worker's report of the decisions it applied. Counted there, not here: an answer that
   * reaches a worker after it decided alone was never applied, and must not count twice.
   */
  addCounts(counts: RateLimitCountsMessage["counts"]): void {
    for (const [id, { allowed, limited, alone }] of Object.entries(counts)) {
      if (![allowed, limited, alone].every(Number.isFinite)) continue;
      const counters = this.countersOf(id);
      counters.allowed += allowed;
      counters.limited += limited;
      counters.workerFallbacks += alone;
    }
  }

  private countersOf(id: string): LimitCounters {
    let counters = this.counters.get(id);
    if (!counters) {
      counters = { allowed: 0, limited: 0, storeFallbacks: 0, workerFallbacks: 0 };
      this.counters.set(id, counters);
    }
    return counters;
  }

  /** A copy of the counters, by limit id (`servers[0].routes[1]`), for the metrics. */
  stats(): Record<string, LimitCounters> {
    return Object.fromEntries([...this.counters].map(([id, c]) => [id, { ...c }]));
  }

  /** Buckets held in memory now. */
  get buckets(): number {
    return this.table.size;
  }

  /** Close every Redis client. */
  async stop(): Promise<void> {
    await Promise.all([...this.stores.values()].map((store) => store.close()));
    this.stores.clear();
  }
}
