/**
 * End-to-end: the balancers with the real master (2 workers) and real backends. least_conn
 * and random_two prefer the faster of two peers; hash keeps a key on its peer in every
 * worker; first sends everything to the first peer and fails over when it goes down.
 */
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(name: string, delayMs = 0): Promise<Backend> {
  const b = await startBackend(name, (req, res) => {
    req.resume();
    setTimeout(() => res.end(name), delayMs);
  });
  cleanup.push(() => b.close());
  return b;
}

async function portico(balance: string, backends: Backend[], extra = ""): Promise<Portico> {
  const p = await startPortico(`
workers: 2
upstreams:
  app:
    balance: ${balance}
${extra}
    servers: [${backends.map((b) => `{ address: ${b.address} }`).join(", ")}]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  return p;
}

/** `total` requests, `concurrency` at a time, each on a keep-alive agent; counts answers by body. */
async function load(url: string, total: number, concurrency: number, headers?: http.OutgoingHttpHeaders) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      const res = await request(url, { agent, headers });
      const key = res.status === 200 ? res.body.toString() : `status ${res.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return counts;
}

describe("balancers", () => {
  it.each(["least_conn", "random_two"])(
    "%s sends at least 70 percent of requests to the faster of two peers when the other answers 200 ms slower",
    async (balance) => {
      const fast = await backend("fast");
      const slow = await backend("slow", 200);
      const p = await portico(balance, [fast, slow]);
      const counts = await load(p.url(), 400, 20);
      console.log(`${balance}: ${JSON.stringify(counts)}`);
      expect((counts.fast ?? 0) + (counts.slow ?? 0)).toBe(400);
      expect(counts.fast ?? 0).toBeGreaterThanOrEqual(280);
    },
  );

  it("hash on a header sends a key to the same peer every time, from every worker", async () => {
    const backends = await Promise.all(["a", "b", "c", "d"].map((n) => backend(n)));
    const p = await portico("hash", backends, "    hash: { key: header:x-user }");
    const homes = new Map<string, Set<string>>();
    for (let round = 0; round < 6; round++) {
      // A new connection each time: the kernel spreads them over both workers.
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const res = await request(p.url(), { headers: { "x-user": `user-${i}` } });
          const set = homes.get(`user-${i}`) ?? new Set<string>();
          set.add(res.body.toString());
          homes.set(`user-${i}`, set);
        }),
      );
    }
    expect([...homes.values()].every((set) => set.size === 1)).toBe(true);
    // 20 keys over 4 peers: more than one peer is used.
    expect(new Set([...homes.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
    expect(new Set(p.accessLines().map((l) => l.pid)).size).toBe(2);
  });

  it("first sends everything to the first peer, and fails over to the next when it goes down", async () => {
    const primary = await backend("primary");
    const standby = await backend("standby");
    const p = await portico("first", [primary, standby]);
    expect(await load(p.url(), 50, 5)).toEqual({ primary: 50 });
    await primary.close();
    expect(await load(p.url(), 50, 5)).toEqual({ standby: 50 });
  });

  it("round_robin with weights 5:1 gives 5 of 6 requests to the heavy peer, never more than 5 in a row, in each worker", async () => {
    // 5 of every 6 requests must go to the heavy peer, so 5 in a row between two of the
    // light one's is forced; what smooth weighted round-robin rules out is a longer burst.
    const heavy = await backend("heavy");
    const light = await backend("light");
    const p = await startPortico(`
workers: 2
upstreams:
  app:
    servers: [{ address: ${heavy.address}, weight: 5 }, { address: ${light.address} }]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
    cleanup.push(() => p.stop());
    for (let i = 0; i < 120; i++) await request(p.url());
    await p.waitForLine(() => p.accessLines().length >= 120);
    const byPid = new Map<number, string[]>();
    for (const line of p.accessLines()) {
      const list = byPid.get(line.pid as number) ?? [];
      list.push(String(line.upstream));
      byPid.set(line.pid as number, list);
    }
    let total = 0;
    for (const seq of byPid.values()) {
      let run = 0;
      let longest = 0;
      for (let i = 0; i < seq.length; i++) {
        run = i > 0 && seq[i] === seq[i - 1] ? run + 1 : 1;
        longest = Math.max(longest, run);
      }
      expect(longest).toBeLessThanOrEqual(5);
      total += seq.length;
    }
    expect(total).toBe(120);
    expect(heavy.requests).toBeGreaterThanOrEqual(96);
    expect(heavy.requests).toBeLessThanOrEqual(104);
  });
});
