/**
 * End-to-end: passive health. A backend answering 500 to everything is ejected when 5xx is
 * listed in passive.on, stays out for fail_timeout, and a second ejection lasts twice as
 * long; without 5xx listed, 500s eject nothing.
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

async function backend(name: string, status: number): Promise<Backend> {
  const b = await startBackend(name, (req, res) => {
    req.resume();
    res.writeHead(status, { "content-length": name.length });
    res.end(name);
  });
  cleanup.push(() => b.close());
  return b;
}

async function portico(bad: Backend, good: Backend, passive: string): Promise<Portico> {
  const p = await startPortico(`
workers: 2
upstreams:
  app:
    passive: ${passive}
    servers: [{ address: ${bad.address} }, { address: ${good.address} }]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  return p;
}

const ejections = (p: Portico) => p.lines.filter((l) => typeof l.ejectedMs === "number");

/**
 * Ejections are per worker: every request goes over one keep-alive connection, so one
 * worker of the two sees the whole sequence and its decisions can be followed.
 */
function client(): { get: (url: string) => ReturnType<typeof request>; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return { get: (url) => request(url, { agent }), close: () => agent.destroy() };
}

describe("passive health", () => {
  it("ejects a peer answering 500 for fail_timeout when 5xx is listed, and twice as long the second time", async () => {
    const bad = await backend("bad", 500);
    const good = await backend("good", 200);
    const p = await portico(bad, good, "{ max_fails: 2, fail_timeout: 1s, on: [error, timeout, 5xx] }");
    const c = client();
    cleanup.push(async () => c.close());
    // Round-robin: every other request reaches bad until its 2nd failure in a row.
    while (ejections(p).length === 0) await c.get(p.url());
    const first = ejections(p)[0];
    expect(first?.ejectedMs).toBe(1000);
    expect(first?.msg).toBe(
      `peer ${bad.address} of app ejected for 1000 ms by this worker: 2 failure(s) in a row, last: answered 500`,
    );

    // While ejected, bad gets nothing.
    const during = bad.requests;
    for (let i = 0; i < 20; i++) expect((await c.get(p.url())).body.toString()).toBe("good");
    expect(bad.requests).toBe(during);

    // Back after 1 s, it fails again at once: the second ejection doubles.
    await new Promise((r) => setTimeout(r, 1100));
    while (ejections(p).length === 1) await c.get(p.url());
    expect(bad.requests).toBe(during + 2);
    expect(ejections(p)[1]?.ejectedMs).toBe(2000);
    // Still out 1.2 s later: longer than the first ejection lasted.
    await new Promise((r) => setTimeout(r, 1200));
    const later = bad.requests;
    for (let i = 0; i < 10; i++) await c.get(p.url());
    expect(bad.requests).toBe(later);
    expect(new Set(ejections(p).map((l) => l.pid)).size).toBe(1);
  });

  it("does not eject on 500 answers when passive.on does not list 5xx", async () => {
    const bad = await backend("bad", 500);
    const good = await backend("good", 200);
    const p = await portico(bad, good, "{ max_fails: 1, fail_timeout: 10s }");
    const c = client();
    cleanup.push(async () => c.close());
    // One connection, one worker: round-robin alternates, so bad gets exactly half.
    for (let i = 0; i < 20; i++) await c.get(p.url());
    expect(bad.requests).toBe(10);
    expect(ejections(p)).toEqual([]);
  });

  it("keeps an ejection running across a reload: the new workers do not send to the peer early", async () => {
    const bad = await backend("bad", 500);
    const good = await backend("good", 200);
    const p = await portico(bad, good, "{ max_fails: 1, fail_timeout: 30s, on: [5xx] }");
    const c = client();
    cleanup.push(async () => c.close());
    while (ejections(p).length === 0) await c.get(p.url());
    const seen = bad.requests;
    process.kill(p.pid, "SIGHUP");
    await p.waitForLine((l) => l.msg === "reload complete");
    // New connections: both new workers answer, neither sends to the ejected peer.
    for (let i = 0; i < 20; i++) expect((await request(p.url())).body.toString()).toBe("good");
    expect(bad.requests).toBe(seen);
  });
});
