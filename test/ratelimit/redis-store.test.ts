/**
 * The Redis store against a real redis-server (on a unix socket in a temp dir): the Lua token
 * bucket holds the rate and burst on the server's clock, buckets expire, two clients (two
 * Portico instances) share one bucket, a flushed script cache is survived, and a Redis that
 * stops or never was there makes `check` answer "decide locally" at once, logged once, and
 * once again when it is back. Skipped, with the reason, when redis-server cannot be had.
 */
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from "vitest";
import type { Logger } from "../../src/observability/logger.js";
import { RedisStore } from "../../src/ratelimit/redis-store.js";
import { parseStore, type RedisTarget } from "../../src/ratelimit/syntax.js";
import { prepareRedis, type RedisServer, startRedis } from "../helpers/redis.js";

let redis: RedisServer | undefined;
let unavailable: string | undefined;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const prepared = await prepareRedis();
  if (!prepared.ok) unavailable = prepared.reason;
  else {
    try {
      redis = await startRedis(prepared.server);
      console.log(`redis-store: ${prepared.version}; pid ${redis.pid()} on ${redis.socket}`);
    } catch (err) {
      unavailable = `redis-server could not be started: ${(err as Error).message}`;
    }
  }
  if (unavailable) console.warn(`redis-store: SKIPPING every Redis test: ${unavailable}`);
}, 600_000);
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await redis?.close();
});

function server(ctx: TestContext): RedisServer {
  if (!redis) return ctx.skip(`redis-server unavailable: ${unavailable}`);
  return redis;
}

/** A logger that keeps what it was told (the store logs through pino's interface). */
function recordingLogger() {
  const lines: Array<{ level: string; msg: string }> = [];
  const at = (level: string) => (a: unknown, b?: unknown) =>
    lines.push({ level, msg: String(typeof a === "string" ? a : b) });
  const log = { info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") };
  return { log: log as unknown as Logger, lines };
}

function target(url: string): RedisTarget {
  const parsed = parseStore(url);
  if (!parsed.ok || parsed.value.kind !== "redis") throw new Error(`not a redis store: ${url}`);
  return parsed.value.redis;
}

function store(url: string) {
  const { log, lines } = recordingLogger();
  const s = new RedisStore(target(url), log);
  cleanup.push(() => s.close());
  return { store: s, lines };
}

/** Resolves once `check` gets an answer from Redis (not "decide locally"), within 10 s. */
async function untilAnswering(s: RedisStore): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await s.check("probe", `p${Math.random()}`, { rate: 1000, capacity: 1000 })) !== undefined) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the store did not answer within 10 s");
}

/** A plain client to look into Redis. */
async function inspector(socket: string) {
  const client = createClient({ socket: { path: socket, tls: false } });
  client.on("error", () => {});
  await client.connect();
  cleanup.push(() => client.close());
  return client;
}

describe("RedisStore", () => {
  it("holds the burst and the rate in Redis, with Retry-After, and lets buckets expire", async (ctx) => {
    const r = server(ctx);
    const { store: s } = store(r.url);
    await untilAnswering(s);
    const spec = { rate: 0.5, capacity: 3 }; // burst 2, one token every 2 s
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await s.check("space1", "198.51.100.7", spec));
    expect(answers).toMatchObject([
      { allowed: true, retryAfterSec: 0, waitMs: 0 },
      { allowed: true, retryAfterSec: 0, waitMs: 0 },
      { allowed: true, retryAfterSec: 0, waitMs: 0 },
      { allowed: false, retryAfterSec: 2 },
      { allowed: false, retryAfterSec: 2 },
    ]);
    // A token every 2 s: the next one is at most 2 s away (Redis's clock, whole ms).
    for (const refused of answers.slice(3)) {
      expect(refused?.waitMs).toBeGreaterThan(1_000);
      expect(refused?.waitMs).toBeLessThanOrEqual(2_000);
    }
    expect((await s.check("space1", "198.51.100.8", spec))?.allowed).toBe(true);
    const look = await inspector(r.socket);
    const key = "portico:rl:space1:198.51.100.7";
    expect(Number((await look.hGet(key, "v")) ?? Number.NaN)).toBeCloseTo(0, 1);
    // Empty bucket: 3 tokens at 0.5/s are 6 s away, plus 1 s of margin.
    const ttl = await look.pTTL(key);
    expect(ttl).toBeGreaterThan(5_000);
    expect(ttl).toBeLessThanOrEqual(7_000);
  });

  it("two clients (two instances) share one bucket", async (ctx) => {
    const r = server(ctx);
    const { store: a } = store(r.url);
    const { store: b } = store(r.url);
    await untilAnswering(a);
    await untilAnswering(b);
    const spec = { rate: 1 / 60, capacity: 3 };
    expect((await a.check("shared", "k", spec))?.allowed).toBe(true);
    expect((await b.check("shared", "k", spec))?.allowed).toBe(true);
    expect((await a.check("shared", "k", spec))?.allowed).toBe(true);
    expect(await b.check("shared", "k", spec)).toMatchObject({ allowed: false, retryAfterSec: 60 });
    expect((await a.check("shared", "k", spec))?.allowed).toBe(false);
  });

  it("survives a flushed script cache (EVALSHA falls back to EVAL)", async (ctx) => {
    const r = server(ctx);
    const { store: s } = store(r.url);
    await untilAnswering(s);
    const look = await inspector(r.socket);
    await look.scriptFlush();
    const spec = { rate: 1 / 60, capacity: 1 };
    expect((await s.check("flushed", "k", spec))?.allowed).toBe(true);
    expect((await s.check("flushed", "k", spec))?.allowed).toBe(false);
    const info = await look.info("stats");
    expect(Number(/evicted_scripts:(\d+)/.exec(info)?.[1] ?? 0)).toBe(0);
  });

  it("says 'decide locally' while Redis is stopped, logs it once, and once again when it is back", async (ctx) => {
    const r = server(ctx);
    const { store: s, lines } = store(r.url);
    await untilAnswering(s);
    expect(lines.filter((l) => l.level === "info").map((l) => l.msg)).toEqual([
      `rate limits: Redis store ${r.url} connected`,
    ]);
    await r.stop();
    const spec = { rate: 100, capacity: 100 };
    const during = [];
    for (let i = 0; i < 50; i++) during.push(await s.check("outage", `k${i}`, spec));
    expect(during.every((d) => d === undefined)).toBe(true);
    const down = lines.filter((l) => l.level === "warn");
    expect(down).toHaveLength(1);
    expect(down[0]?.msg).toMatch(
      /^rate limits: Redis store unix:\/\/.+ stopped answering \(.+\); limits using it are enforced by this instance's own buckets until it answers again$/,
    );
    await r.restart();
    await untilAnswering(s);
    for (let i = 0; i < 20; i++) expect(await s.check("outage", `k${i}`, spec)).toBeDefined();
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    const back = lines.filter((l) => l.level === "info" && /answers again/.test(l.msg));
    expect(back).toHaveLength(1);
    expect(back[0]?.msg).toMatch(/checks were decided by this instance's own buckets meanwhile/);
  });

  it("a Redis that is not there at start is a warning, and every check is decided locally", async (ctx) => {
    const r = server(ctx);
    const { store: s, lines } = store(`unix://${r.dir}/nobody-listens.sock`);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => s.check("absent", `k${i}`, { rate: 1, capacity: 1 })),
    );
    expect(answers.every((a) => a === undefined)).toBe(true);
    const deadline = Date.now() + 5_000;
    while (lines.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("warn");
    expect(lines[0]?.msg).toMatch(
      /^rate limits: Redis store unix:\/\/.+nobody-listens.sock cannot be reached/,
    );
  });
});
