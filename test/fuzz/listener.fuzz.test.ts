/**
 * Fuzzing a worker's listeners (issue 13, item 6): the real `portico start` with one worker in
 * front of a real backend, and raw TCP connections sending generated HTTP/1.1 requests (see
 * http-requests.ts) to a plain listener and to an h2c one: valid requests mutated, broken
 * framing, huge lines, pipelining, random bytes, HTTP/2 prefaces, sent in pieces and then
 * half-closed, held open, reset or cut off.
 *
 * Properties:
 * - every case ends in time: after a half-close the worker answers and/or closes within
 *   END_DEADLINE_MS; a held socket is destroyed by the test once the answer stops (or at
 *   HOLD_DEADLINE_MS), so no case waits forever;
 * - what comes back is HTTP/1.x (HTTP/2 only for bytes that are the HTTP/2 preface), and
 *   never a 500 (an internal error);
 * - the worker never crashes: right after every case a health probe on a new connection gets
 *   its 200 and the worker's pid is alive (a crash fails that case, so fast-check shrinks it,
 *   each shrink step on a fresh Portico), and at the end no "worker died" line was logged;
 * - meanwhile a keep-alive client sends normal requests, one every CLIENT_GAP_MS, and every
 *   one of them gets the backend's 200 for the whole run; the master is alive at the end and
 *   no process printed a stack trace;
 * - nothing outlives its client: once every client is gone, a graceful stop finds no request in
 *   flight and no connection open, and is over at once.
 */
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { type Portico, servingPids, startPortico } from "../helpers/portico.js";
import { FUZZ_PATH, FUZZ_SECONDS, fuzzTestTimeout, ProcessErrorWatch, runFuzz } from "./fuzz-options.js";
import { caseBytes, type ListenerCase, listenerCase } from "./http-requests.js";

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** After a half-close, the worker must have answered or closed within this, ms. */
const END_DEADLINE_MS = 3000;
/** A held-open socket is given up (destroyed) this long after the last byte sent, ms... */
const HOLD_DEADLINE_MS = 500;
/** ...or this long after the last byte received, once something came back. */
const HOLD_IDLE_MS = 100;
/** The normal client's pause between requests, ms. */
const CLIENT_GAP_MS = 20;
/** The normal client's patience for one request, ms (generous: a busy machine). */
const CLIENT_TIMEOUT_MS = 10_000;

let backend: Backend;
let portico: Portico;
let workerPid: number;
const watch = new ProcessErrorWatch();
const stats = { statuses: new Map<string, number>(), silent: 0, bytesSent: 0 };

/** The normal traffic: one keep-alive connection, one request at a time, all run long. */
class NormalClient {
  ok = 0;
  reused = 0;
  readonly failures: string[] = [];
  private running = true;
  private agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private loop: Promise<void> | undefined;

  constructor(private port: number) {}

  /** After Portico was restarted (a crash while shrinking): a new connection to the new port. */
  retarget(port: number): void {
    this.port = port;
    this.agent.destroy();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.agent.destroy();
  }

  private async run(): Promise<void> {
    for (let i = 0; this.running; i++) {
      try {
        await this.once(i);
        this.ok++;
      } catch (err) {
        this.failures.push(`request ${i}: ${err instanceof Error ? err.message : String(err)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, CLIENT_GAP_MS));
    }
  }

  private once(i: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: this.port,
          path: `/normal/${i}`,
          agent: this.agent,
          headers: { host: "fuzz.test" },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const body = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200)
              return reject(new Error(`status ${res.statusCode}: ${body.slice(0, 200)}`));
            if (res.headers["x-backend"] !== "app") return reject(new Error("not answered by the backend"));
            if (!body.includes(`"/normal/${i}"`))
              return reject(new Error(`wrong body: ${body.slice(0, 200)}`));
            if (req.reusedSocket) this.reused++;
            resolve();
          });
        },
      );
      req.setTimeout(CLIENT_TIMEOUT_MS, () =>
        req.destroy(new Error(`no answer within ${CLIENT_TIMEOUT_MS} ms`)),
      );
      req.on("error", reject);
      req.end();
    });
  }
}

let client: NormalClient;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What happened on one fuzz connection. */
interface Seen {
  received: Buffer;
  closed: boolean;
  /** ms from the last byte sent to the close, when it closed. */
  closedAfterMs: number | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function exchange(
  host: string,
  port: number,
  bytes: Buffer,
  sending: ListenerCase["sending"],
): Promise<Seen> {
  const socket = net.connect({ host, port });
  socket.on("error", () => {});
  const chunks: Buffer[] = [];
  let lastData = 0;
  let lastSent = 0;
  let closedAt: number | undefined;
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    lastData = performance.now();
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.once("close", () => {
    closedAt = performance.now();
  });
  try {
    await Promise.race([new Promise<void>((resolve) => socket.once("connect", () => resolve())), closed]);
    const cuts = [
      ...new Set([
        ...sending.cuts.map((c) => c % (bytes.length + 1)),
        ...(sending.firstByteAlone ? [1] : []),
      ]),
    ]
      .filter((c) => c > 0 && c < bytes.length)
      .sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const at of cuts) {
      pieces.push(bytes.subarray(from, at));
      from = at;
    }
    pieces.push(bytes.subarray(from));
    for (const [i, piece] of pieces.entries()) {
      if (socket.destroyed) break;
      const gap = i === 1 && sending.firstByteAlone ? Math.max(1, sending.gapMs) : sending.gapMs;
      if (i > 0 && gap > 0) await sleep(gap);
      socket.write(piece);
      stats.bytesSent += piece.length;
      if (sending.finally === "cut") break;
    }
    lastSent = performance.now();
    if (sending.finally === "cut") socket.destroy();
    else if (sending.finally === "reset") {
      await sleep(5);
      socket.resetAndDestroy();
    } else if (sending.finally === "end") {
      socket.end();
      await Promise.race([closed, sleep(END_DEADLINE_MS)]);
    } else {
      // Hold: wait until it closes, or the answer has stopped coming, or nothing comes at all.
      for (;;) {
        if (closedAt !== undefined) break;
        const now = performance.now();
        if (lastData > 0 ? now - lastData >= HOLD_IDLE_MS : now - lastSent >= HOLD_DEADLINE_MS) break;
        await Promise.race([closed, sleep(20)]);
      }
    }
  } finally {
    socket.destroy();
    await closed;
  }
  const wasClosedByServer =
    closedAt !== undefined && (sending.finally === "end" ? closedAt - lastSent < END_DEADLINE_MS : true);
  return {
    received: Buffer.concat(chunks),
    closed: wasClosedByServer,
    closedAfterMs: closedAt === undefined ? undefined : closedAt - lastSent,
  };
}

const YAML = (backendAddress: string) => `
workers: 1
upstreams:
  app: { servers: [{ address: ${backendAddress} }] }
servers:
  # Port 0 twice on one address would be one address: the h2c listener is on 127.0.0.2.
  - listen: [127.0.0.1:0, "127.0.0.2:0 h2c"]
    routes:
      - exact: /health
        return: { status: 200, body: "ok" }
      - path: /
        upstream: app
`;

/** What the test saw go wrong with Portico's processes: each crash, with the stderr of that run. */
const crashes: string[] = [];
let restartNeeded = false;

/**
 * Once a case has killed the worker, fast-check shrinks it, which kills it again and again:
 * node:cluster would give up respawning (and back off first), so each such case gets a fresh
 * Portico instead. The run fails anyway; this only keeps the shrinking going.
 */
async function ensurePortico(): Promise<void> {
  if (!restartNeeded && alive(workerPid)) return;
  restartNeeded = false;
  const old = portico;
  try {
    await old.stop("SIGKILL");
  } catch (err) {
    // stop() refuses a run that printed a stack trace: that is the crash, already recorded.
    if (!(err instanceof Error) || !/stack trace/.test(err.message)) throw err;
  }
  portico = await startPortico(YAML(backend.address));
  workerPid = portico.workers[0] as number;
  client.retarget(portico.bound[0]?.port as number);
}

/** A plain GET /health on a new connection: whether the worker still answers, right after a case. */
async function probe(): Promise<string | undefined> {
  const seen = await exchange(
    "127.0.0.1",
    portico.bound[0]?.port as number,
    Buffer.from("GET /health HTTP/1.1\r\nHost: fuzz.test\r\nConnection: close\r\n\r\n"),
    { cuts: [], gapMs: 0, firstByteAlone: false, finally: "end" },
  );
  const head = seen.received.subarray(0, 12).toString("latin1");
  return head === "HTTP/1.1 200" ? undefined : `the health probe after the case got ${JSON.stringify(head)}`;
}

async function fuzzCase(c: ListenerCase): Promise<void> {
  const mark = watch.errors.length;
  await ensurePortico();
  const pid = workerPid;
  const bound = portico.bound[c.listener === "plain" ? 0 : 1] as Portico["bound"][number];
  const bytes = caseBytes(c);
  const started = performance.now();
  const seen = await exchange(bound.address, bound.port, bytes, c.sending);
  const probeProblem = await probe();
  if (probeProblem !== undefined || !alive(pid)) {
    restartNeeded = true;
    crashes.push(portico.stderr());
    const cause = alive(pid) ? probeProblem : `the worker (pid ${pid}) died`;
    throw new Error(`${cause} handling this input; Portico's stderr:\n${portico.stderr().slice(-3000)}`);
  }
  if (c.sending.finally === "end") {
    expect(
      seen.closed,
      `after a half-close the worker neither answered and closed nor closed within ${END_DEADLINE_MS} ms (received ${seen.received.length} bytes)`,
    ).toBe(true);
  }
  // The whole case is bounded: sending (at most 4 gaps of 30 ms), then at most the deadline.
  expect(performance.now() - started).toBeLessThan(END_DEADLINE_MS + 2000);
  // HTTP/2 is the answer only to bytes that are the HTTP/2 preface as far as they go.
  const n = Math.min(bytes.length, H2_PREFACE.length);
  const h2 = c.listener === "h2c" && bytes.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
  if (seen.received.length === 0) stats.silent++;
  else if (!h2) {
    const head = seen.received.subarray(0, 16).toString("latin1");
    expect(head, "the answer is HTTP/1.x").toMatch(/^HTTP\/1\.[01] \d{3} /);
    for (const m of seen.received.toString("latin1").matchAll(/HTTP\/1\.[01] (\d{3}) /g)) {
      const status = m[1] as string;
      stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
      expect(status, "no internal error").not.toBe("500");
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
  watch.check(mark);
}

beforeAll(async () => {
  watch.install();
  backend = await startBackend("app");
  portico = await startPortico(YAML(backend.address));
  workerPid = portico.workers[0] as number;
  client = new NormalClient(portico.bound[0]?.port as number);
  client.start();
});

afterAll(async () => {
  await client?.stop();
  if (portico) {
    // A request left in flight would hold a graceful stop for the 30 s shutdown timeout (the
    // test has failed on it already): never leave the processes behind.
    const killer = setTimeout(() => portico.proc.kill("SIGKILL"), 10_000);
    try {
      await portico.stop();
    } finally {
      clearTimeout(killer);
    }
  }
  await backend?.close();
  watch.uninstall();
}, 30_000);

it(
  "random and mutated HTTP/1.1: every connection answered or closed in time, the worker never crashes, normal traffic keeps flowing",
  async () => {
    const firstWorker = workerPid;
    await runFuzz(listenerCase, fuzzCase, {
      name: "listener",
      minCasesPerSecond: 3,
      summary: () =>
        `statuses ${[...stats.statuses]
          .sort()
          .map(([s, n]) => `${s}x${n}`)
          .join(
            " ",
          )}; ${stats.silent} silent; ${Math.round(stats.bytesSent / 1024)} KiB sent; normal client ${client.ok} ok (${client.reused} on a reused connection), ${client.failures.length} failed`,
    });
    await client.stop();
    watch.check();
    expect(client.failures, "every normal request succeeded").toEqual([]);
    expect(client.ok).toBeGreaterThan(FUZZ_PATH === undefined ? Math.floor(FUZZ_SECONDS) : 0);
    // Keep-alive connections carried them (a new one only after max_requests_per_connection).
    expect(client.reused).toBeGreaterThanOrEqual(Math.floor(client.ok * 0.99) - 1);
    expect(crashes, "no worker crashed").toEqual([]);
    expect(
      portico.lines.filter((l) => /worker died/.test(l.msg ?? "")),
      "no worker died",
    ).toEqual([]);
    expect(workerPid).toBe(firstWorker);
    expect(alive(firstWorker)).toBe(true);
    expect([...servingPids(portico)]).toEqual([firstWorker]);
    expect(portico.proc.exitCode).toBeNull();
    expect(alive(portico.pid), "the master is alive").toBe(true);
    const trace = portico
      .stderr()
      .split("\n")
      .find((l) => /^\s+at .+:\d+:\d+\)?$/.test(l));
    expect(trace, "no stack trace on stderr").toBeUndefined();

    // Nothing outlives its client: with every client gone, a graceful stop finds no request in
    // flight and no connection open, and is over at once (not after the 30 s shutdown timeout).
    await sleep(500);
    portico.proc.kill("SIGTERM");
    const draining = await portico.waitForLine((l) => l.msg === "worker draining", 10_000);
    expect({ inFlight: draining.inFlight, connections: draining.connections }).toEqual({
      inFlight: 0,
      connections: 0,
    });
    const code = await Promise.race([portico.exited, sleep(10_000).then(() => "still running")]);
    expect(code, "Portico stops at once").toBe(0);
  },
  fuzzTestTimeout(),
);
