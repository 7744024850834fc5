/**
 * The worker's limiter and the master's service over a real IPC channel: worker processes
 * (the built `dist/worker/rate-limit.js` in forked children) ask this process, which runs the
 * master's `RateLimitService`. Two workers share the master's buckets, a turn's checks go in
 * one message, a master that does not answer in time leaves each worker deciding with its
 * share (and saying so), and what the workers applied is what the counters show.
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { RateLimit } from "../../src/config/types.js";
import type { RateLimitCheckMessage, RateLimitCountsMessage } from "../../src/ipc.js";
import type { Logger } from "../../src/observability/logger.js";
import { RateLimitService } from "../../src/ratelimit/service.js";
import { MasterRateLimits } from "../../src/worker/rate-limit.js";

const LIMITER = new URL("../../dist/worker/rate-limit.js", import.meta.url).href;
if (!existsSync(fileURLToPath(LIMITER)))
  throw new Error(`${fileURLToPath(LIMITER)} is missing: npm run build`);

/** The worker side: a MasterRateLimits driven by commands from the test. */
const CHILD = `
import { MasterRateLimits } from ${JSON.stringify(LIMITER)};
const logs = [];
const log = { warn: (o, m) => logs.push(m), info() {}, error() {}, debug() {} };
const limiter = new MasterRateLimits({
  send: (m) => process.send(m, undefined, {}, () => {}),
  connected: () => process.connected,
  workers: Number(process.env.WORKERS),
  log,
});
process.on("message", async (msg) => {
  if (msg.type === "rate-limit-answer") return limiter.onAnswer(msg);
  if (msg.cmd === "run") {
    const runs = Array.from({ length: msg.n }, () =>
      Promise.resolve(limiter.check(msg.limit, msg.key)).then((d) => ({ ...d, at: Date.now() })),
    );
    process.send({ cmd: "started" });
    const decisions = await Promise.all(runs);
    process.send({ cmd: "result", decisions, logs });
  } else if (msg.cmd === "report") {
    limiter.report();
    process.send({ cmd: "reported" });
  }
});
process.send({ cmd: "ready" });
`;

type Decision = { allowed: boolean; retryAfterSec: number; at: number };

const quietLog = { warn() {}, info() {}, error() {}, debug() {} } as unknown as Logger;
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0).reverse()) fn();
});

/** A forked worker wired to `service` as the master wires its workers. */
async function worker(service: RateLimitService, workers: number) {
  const dir = mkdtempSync(join(tmpdir(), "portico-rl-ipc-"));
  const script = join(dir, "worker.mjs");
  writeFileSync(script, CHILD);
  const child: ChildProcess = fork(script, [], { env: { ...process.env, WORKERS: String(workers) } });
  cleanup.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const checkMessages: RateLimitCheckMessage[] = [];
  const waiters = new Map<string, (msg: Record<string, unknown>) => void>();
  child.on("message", (msg: Record<string, unknown>) => {
    if (msg.type === "rate-limit-check") {
      checkMessages.push(msg as unknown as RateLimitCheckMessage);
      service.handle(msg as unknown as RateLimitCheckMessage, (answer) => child.send(answer));
    } else if (msg.type === "rate-limit-counts") {
      service.addCounts((msg as unknown as RateLimitCountsMessage).counts);
    } else if (typeof msg.cmd === "string") {
      waiters.get(msg.cmd)?.(msg);
    }
  });
  const next = (cmd: string) => new Promise<Record<string, unknown>>((resolve) => waiters.set(cmd, resolve));
  await next("ready");
  return {
    checkMessages,
    /** Start `n` checks at once; resolves when the worker says they are under way. */
    start: async (n: number, limit: RateLimit, key: string) => {
      const started = next("started");
      const result = next("result");
      child.send({ cmd: "run", n, limit, key });
      await started;
      return result as Promise<{ decisions: Decision[]; logs: string[] }>;
    },
    report: async () => {
      const done = next("reported");
      child.send({ cmd: "report" });
      await done;
      // The counts message was sent before "reported": it has been handled by now.
    },
  };
}

const limit = (rate: number, burst: number, store = "local"): RateLimit => ({
  id: "servers[0].routes[0]",
  rate,
  burst,
  key: { kind: "client_ip" },
  store,
});

describe("worker <-> master rate limiting", () => {
  it("two workers share the master's bucket; each turn's checks travel in one message", async () => {
    const service = new RateLimitService(quietLog);
    const a = await worker(service, 2);
    const b = await worker(service, 2);
    const perMinute = limit(1 / 60, 9); // 10 at once, then one a minute
    const [ra, rb] = await Promise.all([
      a.start(7, perMinute, "203.0.113.9").then((r) => r),
      b.start(7, perMinute, "203.0.113.9").then((r) => r),
    ]);
    const all = [...ra.decisions, ...rb.decisions];
    expect(all.filter((d) => d.allowed)).toHaveLength(10);
    expect(all.filter((d) => !d.allowed).map((d) => d.retryAfterSec)).toEqual([60, 60, 60, 60]);
    expect(a.checkMessages).toHaveLength(1);
    expect(a.checkMessages[0]?.checks).toHaveLength(7);
    expect(b.checkMessages).toHaveLength(1);
    await a.report();
    await b.report();
    expect(service.stats()).toEqual({
      "servers[0].routes[0]": { allowed: 10, limited: 4, storeFallbacks: 0, workerFallbacks: 0 },
    });
  });

  it("a master that does not answer in time leaves the worker deciding with its share, counted once", async () => {
    const service = new RateLimitService(quietLog);
    const w = await worker(service, 2);
    const lim = limit(1 / 60, 9); // share of 2 workers: 5 at once
    const result = w.start(20, lim, "203.0.113.10");
    // The checks are on their way: this "master" now stalls (a blocked event loop) for 400 ms.
    const stallUntil = Date.now() + 400;
    while (Date.now() < stallUntil) {
      // busy: no IPC message is read meanwhile
    }
    const stalledUntil = Date.now();
    const { decisions, logs } = await result;
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
    // Every one was decided while the master was still stalled.
    expect(decisions.every((d) => d.at < stalledUntil)).toBe(true);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/the master did not answer within 50 ms; this worker decides with its own share/);
    // The stalled master skipped the checks it read after their deadline; only what the
    // worker applied is counted.
    await w.report();
    expect(service.stats()["servers[0].routes[0]"]).toEqual({
      allowed: 5,
      limited: 15,
      storeFallbacks: 0,
      workerFallbacks: 20,
    });
  });

  it("a key the master refused is refused by the worker itself until its next token, without asking", async () => {
    const service = new RateLimitService(quietLog);
    const w = await worker(service, 2);
    const lim = limit(2, 0); // a token every 500 ms
    const first = await w.start(3, lim, "203.0.113.11");
    expect(first.decisions.map((d) => d.allowed)).toEqual([true, false, false]);
    expect(w.checkMessages).toHaveLength(1);
    // A flood in the next 400 ms: refused in the worker, no message to the master.
    const flood = await w.start(50, lim, "203.0.113.11");
    expect(flood.decisions.every((d) => !d.allowed && d.retryAfterSec === 1)).toBe(true);
    expect(w.checkMessages).toHaveLength(1);
    // Another key is still asked about.
    expect((await w.start(1, lim, "203.0.113.12")).decisions[0]?.allowed).toBe(true);
    expect(w.checkMessages).toHaveLength(2);
    // Once the token is back, the master is asked again and lets one through.
    await new Promise((r) => setTimeout(r, 600));
    const later = await w.start(2, lim, "203.0.113.11");
    expect(later.decisions.map((d) => d.allowed)).toEqual([true, false]);
    expect(w.checkMessages).toHaveLength(3);
    await w.report();
    expect(service.stats()["servers[0].routes[0]"]).toMatchObject({ allowed: 3, limited: 53 });
  });

  it("a worker without a master decides alone at once", async () => {
    const sent: unknown[] = [];
    const limiter = new MasterRateLimits({
      send: (m) => sent.push(m) > 0,
      connected: () => false,
      workers: 4,
      log: quietLog,
    });
    const decisions = await Promise.all(
      Array.from({ length: 6 }, () => limiter.check(limit(8, 7), "198.51.100.1")),
    );
    // Share: 8 tokens / 4 workers = 2 at once.
    expect(decisions.filter((d) => d.allowed)).toHaveLength(2);
    expect(sent).toEqual([]);
    expect(limiter.counts.get("servers[0].routes[0]")).toEqual({ allowed: 2, limited: 4, alone: 6 });
  });

  it("a Redis store that cannot be reached is decided by the master's own buckets, and counted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portico-rl-nostore-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const service = new RateLimitService(quietLog);
    cleanup.push(() => void service.stop());
    const lim = limit(1 / 60, 2, `unix://${join(dir, "absent.sock")}`);
    const answers = await new Promise<Array<[number, number]>>((resolve) =>
      service.handle(
        {
          type: "rate-limit-check",
          deadline: Date.now() + 1_000,
          limits: [lim],
          checks: Array.from({ length: 5 }, (_, seq) => [seq, 0, "k"] as [number, number, string]),
        },
        (answer) => resolve(answer.answers),
      ),
    );
    // [seq, ms until a token]: 0 lets through; one token a minute, so (about) 60 s.
    expect(answers.map(([seq, waitMs]) => [seq, Math.ceil(waitMs / 1000)])).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 60],
      [4, 60],
    ]);
    expect(service.stats()["servers[0].routes[0]"]?.storeFallbacks).toBe(5);
  });
});
