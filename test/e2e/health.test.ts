/**
 * End-to-end: active health checks in the master (2 workers), with real backends and the
 * test DNS server: a killed backend leaves the traffic without a failed request and comes
 * back after `rise` checks; one check per interval per peer whatever the workers; a peer DNS
 * adds that fails its check never gets a request; panic mode and on_all_down: fail; a peer
 * down before a reload is down after it.
 */
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend, startBackendsOnOnePort } from "../helpers/backend.js";
import { startDnsServer } from "../helpers/dns-server.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A backend whose /healthz answers 200 while `healthy`, 500 otherwise; counts checks and client requests. */
interface Checked {
  backend: Backend;
  healthy: boolean;
  checks: number;
  served: number;
}

function handler(state: Omit<Checked, "backend">, name: string): http.RequestListener {
  return (req, res) => {
    req.resume();
    if (req.url === "/healthz") {
      state.checks++;
      res.writeHead(state.healthy ? 200 : 500, { "content-length": 2 });
      res.end("hc");
      return;
    }
    state.served++;
    res.end(name);
  };
}

async function checked(name: string, healthy = true, port?: number): Promise<Checked> {
  const state = { healthy, checks: 0, served: 0 } as Checked;
  state.backend = await startBackend(name, handler(state, name), port ? { port } : {});
  cleanup.push(() => state.backend.close());
  return state;
}

async function portico(servers: string, upstreamExtra = "", top = ""): Promise<Portico> {
  const p = await startPortico(`
workers: 2
${top}
upstreams:
  app:
    health: { path: /healthz, interval: 200ms, timeout: 500ms, rise: 2, fall: 2 }
${upstreamExtra}
    servers: ${servers}
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  return p;
}

/** Requests from `clients` keep-alive clients until `stop()`; counts failures. */
function load(url: string, clients = 4) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let running = true;
  const stats = { ok: 0, failed: 0, errors: [] as string[] };
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const r = await request(url, { agent });
        if (r.status === 200) stats.ok++;
        else {
          stats.failed++;
          stats.errors.push(`status ${r.status}: ${r.body.toString()}`);
        }
      } catch (err) {
        stats.failed++;
        stats.errors.push(String(err));
      }
    }
  });
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return stats;
    },
  };
}

describe("active health checks", () => {
  it("takes a killed backend out without a failed request, brings it back after rise checks, one check per interval per peer", async () => {
    const a = await checked("a");
    const b = await checked("b");
    const port = a.backend.port;
    const p = await portico(`[{ address: ${a.backend.address} }, { address: ${b.backend.address} }]`);
    await p.waitForLine(
      (l) => typeof l.msg === "string" && l.msg.startsWith(`peer ${b.backend.address} of app up`),
    );

    // Checks over 2 s: one per 200 ms interval (+ up to one in flight), not one per worker.
    const before = b.checks;
    await sleep(2000);
    const checks = b.checks - before;
    console.log(`health: ${checks} checks of one peer in 2 s at interval 200ms with 2 workers`);
    expect(checks).toBeGreaterThanOrEqual(7);
    expect(checks).toBeLessThanOrEqual(12);

    const traffic = load(p.url());
    await sleep(500);
    expect(a.served).toBeGreaterThan(0);
    await a.backend.close();
    const killed = Date.now();
    await p.waitForLine(
      (l) =>
        typeof l.msg === "string" &&
        l.msg.startsWith(`peer ${a.backend.address} of app down: 2 failed checks`),
    );
    // fall (2) x interval (200 ms) + 1 s after the kill, no worker sends to the dead address.
    await sleep(Math.max(0, killed + 2 * 200 + 1000 - Date.now()));
    const cutoff = Date.now();
    await sleep(1000);
    const late = p.lines.filter(
      (l) =>
        Date.parse(String(l.time)) > cutoff &&
        typeof l.msg === "string" &&
        l.msg.includes(`cannot connect to ${a.backend.address}`),
    );
    expect(late).toEqual([]);

    // Back on the same port: traffic again once 2 checks passed.
    const again = await checked("a2", true, port);
    await p.waitForLine(
      (l) => typeof l.msg === "string" && l.msg === `peer ${a.backend.address} of app up: 2 checks passed`,
    );
    await sleep(500);
    const stats = await traffic.stop();
    expect(again.served).toBeGreaterThan(0);
    expect(stats.failed, stats.errors.slice(0, 5).join("\n")).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
  });

  it("never sends a client request to a peer DNS adds that fails its check", async () => {
    const server = await startDnsServer();
    server.soa = { ttl: 60, minimum: 1 };
    cleanup.push(() => server.close());
    const states = [
      { healthy: true, checks: 0, served: 0 },
      { healthy: false, checks: 0, served: 0 },
    ];
    const list = await startBackendsOnOnePort(["good", "sick"]);
    cleanup.push(() => Promise.all(list.map((b) => b.close())));
    // Replace the echo handlers with the counting ones.
    list.forEach((b, i) => {
      b.server.removeAllListeners("request");
      b.server.on("request", handler(states[i] as Omit<Checked, "backend">, b.name));
    });
    const [good, sick] = list as [Backend, Backend];
    server.set("api.test", "A", ["127.0.0.2"], 1);
    const p = await portico(
      `[{ address: "api.test:${good.port}" }]`,
      "",
      `dns: { nameservers: [${server.urls.udp}], timeout: 500ms, attempts: 1, min_ttl: 1s }`,
    );
    const traffic = load(p.url(), 2);
    server.set("api.test", "A", ["127.0.0.2", "127.0.0.3"], 1);
    await p.waitForLine(
      (l) =>
        typeof l.msg === "string" &&
        l.msg.startsWith(`peer ${sick.address} of app down: its first check failed`),
    );
    await sleep(1500);
    const stats = await traffic.stop();
    expect(states[1]?.checks).toBeGreaterThan(0);
    expect(states[1]?.served).toBe(0);
    expect(states[0]?.served).toBeGreaterThan(0);
    expect(stats.failed).toBe(0);
  });

  it("with too few peers passing, spreads over all of them (panic); on_all_down: fail answers 503", async () => {
    const a = await checked("a", false);
    const b = await checked("b", false);
    const c = await checked("c", true);
    const servers = `[{ address: ${a.backend.address} }, { address: ${b.backend.address} }, { address: ${c.backend.address} }]`;
    const p = await portico(servers);
    for (let i = 0; i < 60; i++) expect((await request(p.url())).status).toBe(200);
    // 1 of 3 passes, below the 50% threshold: every peer gets requests.
    expect(a.served).toBeGreaterThan(0);
    expect(b.served).toBeGreaterThan(0);
    expect(c.served).toBeGreaterThan(0);
    await p.waitForLine(
      (l) =>
        typeof l.msg === "string" && l.msg.startsWith("upstream app in panic mode: 1 of 3 peers available"),
    );
    const panics = p.lines.filter(
      (l) => typeof l.msg === "string" && l.msg.startsWith("upstream app in panic mode"),
    );
    expect(panics.length).toBeLessThanOrEqual(2); // once per worker, not per request

    // Every peer failing: on_all_down: panic (the default) still serves, from all of them.
    c.healthy = false;
    const allDown = await portico(servers);
    const before = [a.served, b.served, c.served];
    for (let i = 0; i < 30; i++) expect((await request(allDown.url())).status).toBe(200);
    expect(a.served).toBeGreaterThan(before[0] as number);
    expect(b.served).toBeGreaterThan(before[1] as number);
    expect(c.served).toBeGreaterThan(before[2] as number);
    await allDown.waitForLine(
      (l) => l.msg === "upstream app: no peer available; sending to them anyway (on_all_down: panic)",
    );

    const failing = await portico(
      `[{ address: ${a.backend.address} }, { address: ${c.backend.address} }]`,
      "    on_all_down: fail",
    );
    const res = await request(failing.url());
    expect(res.status).toBe(503);
    expect(res.body.toString()).toContain("every peer is down");
  });

  it("keeps a peer that was down before a reload down after it, without new failed checks", async () => {
    const sick = await checked("sick", false);
    const well = await checked("well", true);
    const p = await startPortico(`
workers: 2
upstreams:
  app:
    health: { path: /healthz, interval: 1h, rise: 2, fall: 2 }
    servers: [{ address: ${sick.backend.address} }, { address: ${well.backend.address} }]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
    cleanup.push(() => p.stop());
    for (let i = 0; i < 10; i++) await request(p.url());
    expect(sick.served).toBe(0);
    expect(sick.checks).toBe(1);
    process.kill(p.pid, "SIGHUP");
    await p.waitForLine((l) => l.msg === "reload complete");
    for (let i = 0; i < 20; i++) expect((await request(p.url())).body.toString()).toBe("well");
    expect(sick.served).toBe(0);
    expect(sick.checks).toBe(1); // the verdict was kept, not checked again
  });

  it("slow_start ramps a recovered peer's share over the duration", async () => {
    const steady = await checked("steady", true);
    const back = await checked("back", false);
    const p = await portico(
      `[{ address: ${steady.backend.address} }, { address: ${back.backend.address} }]`,
      "    slow_start: 3s",
    );
    back.healthy = true;
    await p.waitForLine((l) => l.msg === `peer ${back.backend.address} of app up: 2 checks passed`);
    // Shares in three windows of the 3 s ramp, then after it: the recovered peer's grows.
    const windows: number[] = [];
    for (let w = 0; w < 4; w++) {
      const begun = Date.now();
      const before = back.served;
      let total = 0;
      while (Date.now() - begun < 900) {
        await request(p.url());
        total++;
      }
      windows.push((back.served - before) / total);
      await sleep(100);
    }
    console.log(`slow_start shares of the recovered peer: ${windows.map((x) => x.toFixed(2)).join(", ")}`);
    expect(windows[0] as number).toBeLessThan(windows[2] as number);
    expect(windows[0] as number).toBeLessThan(0.35);
    expect(windows[3] as number).toBeGreaterThan(0.4);
  });
});
