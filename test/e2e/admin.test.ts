/**
 * End-to-end: the admin listener's /status, /dns, /dns/flush and /reload, on a real Portico
 * (2 workers) whose upstreams come from a real DNS server on loopback (A and SRV), with real
 * backends on 127.0.0.2 and 127.0.0.3 and a peer that refuses connections.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PeerStatus, StatusDocument } from "../../src/observability/status.js";
import { type Backend, closedPort, startBackendsOnOnePort } from "../helpers/backend.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

let dns: TestDnsServer;
let backends: Backend[];
let dead: number;
let dir: string;
let caFile: string;
let p: Portico;
let admin: string;
const TOKEN = "admin-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}` };

function config(extra = ""): string {
  return `
workers: 2
admin: { listen: 127.0.0.1:0, token: ${TOKEN}, dns_rate: 1/s, dns_burst: 5 }
dns:
  nameservers: [${dns.urls.udp}]
  ca: ${caFile}
upstreams:
  app:
    servers: [{ address: "api.test:${backends[0]?.port}" }, { address: "127.0.0.1:${dead}" }]
    health: { path: /, interval: 200ms, timeout: 500ms, rise: 1, fall: 1 }
  srv:
    servers: [{ service: _http._tcp.api.test }]
servers:
  - listen: 127.0.0.1:0
    routes:
      - path: /srv/
        upstream: srv
      - path: /
        upstream: app
${extra}`;
}

beforeAll(async () => {
  dns = await startDnsServer();
  backends = await startBackendsOnOnePort(["b2", "b3"]);
  dead = await closedPort();
  dir = mkdtempSync(join(tmpdir(), "portico-admin-"));
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, dns.ca);
  dns.set("api.test", "A", ["127.0.0.2", "127.0.0.3"], 2);
  dns.set(
    "_http._tcp.api.test",
    "SRV",
    [{ priority: 10, weight: 5, port: backends[0]?.port ?? 0, target: "api.test" }],
    60,
  );
  p = await startPortico(config());
  const ready = await p.waitForLine((l) => l.msg === "portico ready");
  admin = `http://127.0.0.1:${(ready.admin as { port: number }).port}`;
});

afterAll(async () => {
  await p?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
  await dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function status(): Promise<StatusDocument> {
  const res = await request(`${admin}/status`, { headers: auth });
  expect(res.status).toBe(200);
  return res.json<StatusDocument>();
}

/** Polls /status until `pred` holds (every 100 ms, at most `ms`). */
async function statusUntil(pred: (s: StatusDocument) => boolean, ms = 10_000): Promise<StatusDocument> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await status();
    if (pred(s) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const peersOf = (s: StatusDocument, upstream: string): PeerStatus[] =>
  s.upstreams.find((u) => u.name === upstream)?.peers ?? [];

describe("admin /status", () => {
  it("lists every peer with its DNS origin and health, workers by generation, DNS names", async () => {
    const port = backends[0]?.port;
    const s = await statusUntil((x) => peersOf(x, "app").some((q) => q.health === "unhealthy"));
    const app = peersOf(s, "app").sort((a, b) => a.address.localeCompare(b.address));
    expect(app.map((q) => [q.address, q.health, q.origin.kind, q.origin.name])).toEqual([
      [`127.0.0.1:${dead}`, "unhealthy", "address", `127.0.0.1:${dead}`],
      [`127.0.0.2:${port}`, "healthy", "name", "api.test"],
      [`127.0.0.3:${port}`, "healthy", "name", "api.test"],
    ]);
    expect(app[0]?.why).toMatch(/ECONNREFUSED/);
    expect(app[1]?.checks).toBeGreaterThan(0);
    const srv = peersOf(s, "srv").sort((a, b) => a.address.localeCompare(b.address));
    expect(srv.map((q) => [q.address, q.origin.kind, q.origin.name, q.origin.record])).toEqual([
      [`127.0.0.2:${port}`, "service", "_http._tcp.api.test", `10 5 ${port} api.test`],
      [`127.0.0.3:${port}`, "service", "_http._tcp.api.test", `10 5 ${port} api.test`],
    ]);
    expect(s.generations).toHaveLength(1);
    expect(s.generations[0]?.state).toBe("serving");
    expect(s.generations[0]?.reported.map((w) => w.pid).sort()).toEqual([...p.workers].sort());
    for (const w of s.generations[0]?.reported ?? []) {
      expect(w.rssBytes).toBeGreaterThan(1_000_000);
      expect(w.generation).toBe(1);
    }
    const a = s.dns.names.find((n) => n.name === "api.test" && n.type === "A");
    expect(a?.records.sort()).toEqual(["127.0.0.2", "127.0.0.3"]);
    expect(a?.server).toBe(dns.urls.udp);
    expect(a?.transport).toBe("udp");
    expect(a?.stale).toBe(false);
    expect(s.config.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.portico.node).toBe(process.version);
  });

  it("counts the requests of each upstream, and a DNS change shows within the TTL", async () => {
    const before = (await status()).upstreams.find((u) => u.name === "app")?.requests ?? 0;
    for (let i = 0; i < 10; i++) expect((await request(`${p.url()}/x`)).status).toBe(200);
    const after = await status();
    expect(after.upstreams.find((u) => u.name === "app")?.requests).toBe(before + 10);

    dns.set("api.test", "A", ["127.0.0.2"], 2);
    const changed = Date.now();
    const s = await statusUntil((x) => !peersOf(x, "app").some((q) => q.address.startsWith("127.0.0.3")));
    const took = Date.now() - changed;
    console.log(`admin: a DNS change (TTL 2 s) showed in /status after ${took} ms`);
    expect(peersOf(s, "app").map((q) => q.address)).not.toContain(`127.0.0.3:${backends[0]?.port}`);
    // Within the TTL: refreshed when it runs out (plus at most 500 ms of jitter and the poll).
    expect(took).toBeLessThan(2_000 + 1_000);
    const a = s.dns.names.find((n) => n.name === "api.test" && n.type === "A");
    expect(a?.records).toEqual(["127.0.0.2"]);
    expect(a?.lastChange).toBeGreaterThanOrEqual(changed);
    const scrape = (await request(`${admin}/metrics`, { headers: auth })).body.toString();
    expect(scrape).toMatch(/^portico_peer_set_changes_total\{upstream="app"\} [1-9]/m);
    expect(scrape).toMatch(/^portico_upstream_peers\{upstream="app",state="unhealthy"\} 1$/m);
    expect(scrape).toMatch(
      /^portico_dns_queries_total\{nameserver="udp:[^"]+",transport="udp",rcode="NOERROR"\} [1-9]/m,
    );
  });
});

describe("admin /dns", () => {
  it.each(["udp", "tcp", "tls", "https"] as const)("answers like portico dns over %s", async (transport) => {
    const url = dns.urls[transport];
    const res = await request(
      `${admin}/dns?name=_http._tcp.api.test&type=SRV&server=${encodeURIComponent(url)}`,
      {
        headers: auth,
      },
    );
    expect(res.status).toBe(200);
    type Result = {
      server: string;
      ok: boolean;
      ttl: number;
      records: Array<{
        name: string;
        ttl: number;
        priority: number;
        weight: number;
        port: number;
        target: string;
      }>;
      source: { server: string; transport: string };
    };
    const body = res.json<{ results: Result[] }>();
    const [result] = body.results;
    expect(result, JSON.stringify(body)).toMatchObject({ ok: true });
    expect(result?.source).toMatchObject({ server: url, transport });
    const cli = await runCli(["dns", "_http._tcp.api.test", "SRV", "--server", url, "--ca", caFile]);
    expect(cli.code).toBe(0);
    // The same records, as `portico dns` prints them.
    const lines = (result?.records ?? []).map(
      (r) => `${r.name}.\t${r.ttl}\tIN\tSRV\t${r.priority} ${r.weight} ${r.port} ${r.target}.`,
    );
    expect(lines).toHaveLength(1);
    for (const line of lines) expect(cli.stdout).toContain(line);
    expect(cli.stdout).toContain(`from ${url} over ${transport}`);
    // Rate limit: wait for the bucket to refill before the next transport (1/s, burst 5).
    await new Promise((r) => setTimeout(r, 1100));
  });

  it("flushes a name from the cache, and is rate-limited per client with Retry-After", async () => {
    await new Promise((r) => setTimeout(r, 5000)); // a full bucket: 1 + 5 tokens
    const cached = await request(`${admin}/dns?name=api.test`, { headers: auth });
    expect(cached.status).toBe(200);
    expect(cached.json<{ results: Array<{ source: { kind: string } }> }>().results[0]?.source.kind).toBe(
      "cache",
    );
    const flush = await request(`${admin}/dns/flush?name=api.test`, { method: "POST", headers: auth });
    expect(flush.status).toBe(200);
    expect(flush.json<{ flushed: number }>().flushed).toBeGreaterThanOrEqual(1);
    const asked = dns.count({ name: "api.test", type: "A" });
    // Dropped and asked again at once (discovery refreshes the names it follows): the
    // nameserver gets a query now rather than when the TTL runs out.
    const flushed = Date.now();
    while (dns.count({ name: "api.test", type: "A" }) === asked && Date.now() - flushed < 1000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(dns.count({ name: "api.test", type: "A" })).toBeGreaterThan(asked);
    const codes: number[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 8; i++) {
      const res = await request(`${admin}/dns?name=api.test`, { headers: auth });
      codes.push(res.status);
      if (res.status === 429) retryAfter = res.headers["retry-after"];
    }
    expect(codes).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    const bad = await request(`${admin}/dns?name=api.test&type=MX`, { headers: auth });
    expect([400, 429]).toContain(bad.status);
  });
});

describe("admin /reload and auth", () => {
  it("a browser's Basic authentication with the token works; a wrong one gets 401", async () => {
    const basic = (password: string) => `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`;
    const ok = await request(`${admin}/`, { headers: { authorization: basic(TOKEN) } });
    expect(ok.status).toBe(200);
    expect(ok.headers["content-type"]).toMatch(/^text\/html/);
    const wrong = await request(`${admin}/status`, {
      headers: { authorization: basic("nope-nope-nope-nope") },
    });
    expect(wrong.status).toBe(401);
    expect(String(wrong.headers["www-authenticate"])).toContain("Basic");
  });

  it("POST /reload returns every error with its line and column, then the new generation", async () => {
    expect((await request(`${admin}/reload`, { headers: auth })).status).toBe(405);
    writeFileSync(p.configFile, `${config("      - path: /x\n        upstream: nope\n    bogus: 1\n")}`);
    const broken = await request(`${admin}/reload`, { method: "POST", headers: auth });
    expect(broken.status).toBe(422);
    const failed = broken.json<{
      ok: boolean;
      errors: Array<{ line: number; col: number; message: string }>;
    }>();
    expect(failed.ok).toBe(false);
    expect(failed.errors.length, JSON.stringify(failed)).toBeGreaterThanOrEqual(2);
    for (const e of failed.errors) {
      expect(e.line).toBeGreaterThan(0);
      expect(e.col).toBeGreaterThan(0);
    }
    expect(failed.errors.map((e) => e.message).join("\n")).toMatch(/upstream 'nope' is not defined/);
    // The old config still serves.
    expect((await request(`${p.url()}/x`)).status).toBe(200);
    writeFileSync(p.configFile, config());
    const good = await request(`${admin}/reload`, { method: "POST", headers: auth });
    expect(good.status).toBe(200);
    expect(good.json<{ ok: boolean; generation: number }>()).toMatchObject({ ok: true, generation: 2 });
    const s = await status();
    expect(s.generations.find((g) => g.state === "serving")?.number).toBe(2);
  });
});
