/**
 * Token buckets in Redis, shared by every Portico instance that points at the same server:
 * one atomic Lua script per check, on the Redis server's clock (instances' clocks may
 * disagree), each bucket a hash that expires once it would be full again.
 *
 * Redis must never fail or stall a request. Each call is bounded by `REDIS_TIMEOUT_MS`; the
 * offline queue is off, so while the connection is down a call fails at once instead of
 * waiting; the client reconnects with backoff. A failure marks the store down: `check`
 * answers `undefined` (the caller decides with its local buckets) without asking Redis, but
 * lets one call through per `PROBE_MS` to find out whether it is back. Down and back are each
 * logged once.
 */
import { createClient } from "redis";
import type { Logger } from "../observability/logger.js";
import type { BucketDecision } from "./bucket-table.js";
import { type BucketSpec, REDIS_TIMEOUT_MS } from "./limit.js";
import type { RedisTarget } from "./syntax.js";

/** While down with a live connection (Redis slow), one call per this long tries Redis again. */
const PROBE_MS = 1_000;
/** Reconnect backoff: 100 ms doubling up to 5 s, with up to 20% jitter. */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 2_000;

/**
 * KEYS[1]: the bucket (a hash: `t` = ms of the last take, `v` = tokens after it).
 * ARGV[1]: tokens per second; ARGV[2]: capacity.
 * Returns {1, 0} when a token was taken, {0, ms until one is back} when refused. A refusal
 * writes nothing: the stored state already yields the same answer later. Times are whole ms
 * (Lua turns numbers into strings with 14 significant digits: µs since 1970 would not fit).
 */
export const TOKEN_BUCKET_LUA = `
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'v')
local tokens = capacity
if state[1] and state[2] then
  local elapsed = math.max(0, now - tonumber(state[1]))
  tokens = math.min(capacity, tonumber(state[2]) + elapsed * rate / 1000)
end
if tokens < 1 - 1e-9 then
  return {0, math.ceil((1 - tokens) * 1000 / rate)}
end
tokens = math.max(0, tokens - 1)
redis.call('HSET', KEYS[1], 't', now, 'v', tokens)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * 1000 / rate) + 1000)
return {1, 0}
`;

/** Prefix of every key Portico writes. */
const KEY_PREFIX = "portico:rl:";

type Client = ReturnType<typeof createClient>;

/** One Redis server's buckets, through one client. */
export class RedisStore {
  readonly display: string;
  private readonly client: Client;
  private sha = "";
  private log: Logger;
  /** `up` until a call fails; `down` from then until a call succeeds again. */
  private state: "connecting" | "up" | "down" = "connecting";
  private downSince = 0;
  private nextProbe = 0;
  private closed = false;
  /** Checks answered `undefined` since the store went down (for the "back" line). */
  private missed = 0;

  constructor(target: RedisTarget, log: Logger) {
    this.display = target.display;
    this.log = log;
    const socket = {
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectStrategy: (retries: number) =>
        Math.round(Math.min(RECONNECT_BASE_MS * 2 ** retries, RECONNECT_MAX_MS) * (1 + Math.random() * 0.2)),
    };
    this.client = createClient({
      ...(target.url === undefined
        ? { socket: { ...socket, path: target.socketPath as string, tls: false as const } }
        : { url: target.url, socket }),
      database: target.database,
      username: target.username,
      password: target.password,
      disableOfflineQueue: true,
      // A check that is late is useless: fail fast rather than queue behind a stalled socket.
      commandsQueueMaxLength: 10_000,
    });
    // Every failed (re)connect emits `error`; without a listener node-redis would throw.
    this.client.on("error", (err: Error) => this.markDown(err));
    this.client.on("ready", () => {
      // Loaded once per connection; a check that still meets NOSCRIPT (SCRIPT FLUSH, a
      // failover) sends the script itself, which loads it again.
      this.client
        .sendCommand(["SCRIPT", "LOAD", TOKEN_BUCKET_LUA])
        .then((sha) => {
          this.sha = String(sha);
        })
        .catch(() => {});
      this.nextProbe = 0;
      if (this.state === "connecting") {
        this.state = "up";
        this.log.info({ store: this.display }, `rate limits: Redis store ${this.display} connected`);
      }
    });
    this.client.connect().catch(() => {
      // connect() only rejects once the client is closed; failures come as `error` events.
    });
  }

  setLogger(log: Logger): void {
    this.log = log;
  }

  /**
   * Take a token from `key`'s bucket in `space`, or refuse; `undefined` when Redis cannot
   * answer within `REDIS_TIMEOUT_MS` (down, slow, or not connected yet): decide locally.
   */
  async check(space: string, key: string, spec: BucketSpec): Promise<BucketDecision | undefined> {
    if (this.closed) return undefined;
    if (this.state !== "up") {
      const now = Date.now();
      if (!this.client.isReady || now < this.nextProbe) {
        this.missed++;
        return undefined;
      }
      this.nextProbe = now + PROBE_MS;
    }
    try {
      const reply = await this.evaluate(`${KEY_PREFIX}${space}:${key}`, spec);
      this.markUp();
      const [taken, retryMs] = reply;
      return taken === 1
        ? { allowed: true, retryAfterSec: 0, waitMs: 0 }
        : {
            allowed: false,
            retryAfterSec: Math.max(1, Math.ceil(retryMs / 1000)),
            waitMs: Math.max(1, retryMs),
          };
    } catch (err) {
      this.markDown(err as Error);
      this.missed++;
      return undefined;
    }
  }

  /** EVALSHA of the script, or EVAL when Redis does not have it (yet). */
  private async evaluate(key: string, spec: BucketSpec): Promise<[number, number]> {
    const args = ["1", key, String(spec.rate), String(spec.capacity)];
    const options = { timeout: REDIS_TIMEOUT_MS };
    let reply: unknown;
    try {
      if (this.sha === "") throw new Error("NOSCRIPT not loaded yet");
      reply = await this.client.sendCommand(["EVALSHA", this.sha, ...args], options);
    } catch (err) {
      if (!String((err as Error)?.message).startsWith("NOSCRIPT")) throw err;
      reply = await this.client.sendCommand(["EVAL", TOKEN_BUCKET_LUA, ...args], options);
    }
    if (!Array.isArray(reply) || reply.length !== 2)
      throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
    return [Number(reply[0]), Number(reply[1])];
  }

  private markDown(err: Error): void {
    if (this.closed || this.state === "down") return;
    const first = this.state === "connecting";
    this.state = "down";
    this.downSince = Date.now();
    this.missed = 0;
    this.nextProbe = Date.now() + PROBE_MS;
    this.log.warn(
      { store: this.display, err: err?.message ?? String(err) },
      `rate limits: Redis store ${this.display} ${first ? "cannot be reached" : "stopped answering"} (${err?.message ?? err}); limits using it are enforced by this instance's own buckets until it answers again`,
    );
  }

  private markUp(): void {
    if (this.state === "up") return;
    const wasDown = this.state === "down";
    this.state = "up";
    if (!wasDown) return;
    const seconds = ((Date.now() - this.downSince) / 1000).toFixed(1);
    this.log.info(
      { store: this.display, downSec: Number(seconds), localDecisions: this.missed },
      `rate limits: Redis store ${this.display} answers again after ${seconds} s (${this.missed} checks were decided by this instance's own buckets meanwhile)`,
    );
  }

  /** Close the connection (no reconnect). */
  async close(): Promise<void> {
    this.closed = true;
    try {
      this.client.destroy();
    } catch {
      // Never connected.
    }
  }
}
