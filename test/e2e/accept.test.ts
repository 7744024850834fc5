/**
 * End-to-end: workers accept their own connections from the listen socket the master owns
 * (node:cluster SCHED_NONE, nginx's model). The master is not in the path of a connection:
 * with it stopped (SIGSTOP), new connections are still accepted and answered; connections
 * spread across workers; a reload under connection-per-request load loses none.
 */
import { writeFileSync } from "node:fs";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { startLoad } from "../helpers/load.js";
import { type LogLine, type Portico, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(): Promise<Backend> {
  const b = await startBackend("app");
  cleanup.push(() => b.close());
  return b;
}

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(async () => {
    p.proc.kill("SIGCONT"); // never leave a stopped master behind
    await p.stop();
  });
  return p;
}

function config(app: Backend, version: number): string {
  return `
workers: 2
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: 127.0.0.1:0
    routes:
      - exact: /version
        return: { status: 200, body: "v${version}" }
      - path: /
        upstream: app
`;
}

/** One request on a new connection; resolves with the status line's code (0 on failure). */
function oneShot(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let data = "";
    socket.setTimeout(5000, () => socket.destroy());
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n`));
    socket.on("data", (d) => (data += d));
    socket.on("error", () => {});
    socket.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}

/** Run `total` connection-per-request requests, `concurrency` at a time; returns the statuses. */
async function burst(port: number, path: string, total: number, concurrency: number): Promise<number[]> {
  const statuses: number[] = [];
  let started = 0;
  const lane = async () => {
    while (started < total) {
      started++;
      statuses.push(await oneShot(port, path));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return statuses;
}

/** Share of the access-log lines (from index `from`) served by each worker pid. */
function sharesByWorker(lines: LogLine[], workers: number[]): number[] {
  const counts = new Map<number, number>(workers.map((pid) => [pid, 0]));
  for (const line of lines) {
    const pid = line.pid as number;
    if (counts.has(pid)) counts.set(pid, (counts.get(pid) ?? 0) + 1);
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts.values()].map((n) => n / Math.max(1, total));
}

describe("workers accept their own connections", () => {
  it("new connections are served while the master is stopped (SIGSTOP): it is not in their path", async () => {
    const app = await backend();
    const p = await portico(config(app, 0));
    const port = p.bound[0].port;
    p.proc.kill("SIGSTOP");
    try {
      // With node:cluster's round-robin every one of these would wait on the stopped master.
      const statuses = await burst(port, "/", 200, 10);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(statuses).toHaveLength(200);
    } finally {
      p.proc.kill("SIGCONT");
    }
  });

  it("connections spread across both workers", async () => {
    const app = await backend();
    const p = await portico(config(app, 0));
    const statuses = await burst(p.bound[0].port, "/", 2000, 50);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Access-log lines are written asynchronously: wait until all 2000 have arrived.
    const isAccess = (l: LogLine) => typeof l.status === "number" && typeof l.method === "string";
    while (p.lines.filter(isAccess).length < 2000) await new Promise((r) => setTimeout(r, 20));
    const shares = sharesByWorker(p.accessLines(), p.workers);
    // Both serve; the benchmark (`npm run bench`) measures how evenly under heavier load.
    for (const share of shares) expect(share).toBeGreaterThan(0.1);
  });

  it("a reload under connection-per-request load loses no connection", async () => {
    const app = await backend();
    const p = await portico(config(app, 0));
    const port = p.bound[0].port;
    const load = startLoad(port, "/", { keepAlive: 0, fresh: 16 });
    try {
      for (let i = 1; i <= 5; i++) {
        const seen = p.lines.length;
        writeFileSync(p.configFile, config(app, i));
        p.proc.kill("SIGHUP");
        const done = await p.waitForLine(
          (l) => p.lines.indexOf(l) >= seen && l.msg === "reload complete",
          20_000,
        );
        expect(done.generation).toBe(i + 1);
        await p.waitForLine((l) => l.msg === "generation drained" && l.generation === i, 20_000);
      }
    } finally {
      const stats = await load.stop();
      expect(stats.errors).toEqual([]);
      expect(stats.failed).toBe(0);
      expect(stats.non2xx).toBe(0);
      expect(stats.ok).toBeGreaterThan(200);
    }
  });
});
