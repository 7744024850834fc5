/**
 * End-to-end: DNS-driven upstreams. The real master with real workers, real backends on
 * loopback, and the test DNS server: traffic follows DNS without a reload, DNS outages and
 * short NXDOMAINs change nothing, SRV weights and priorities are honoured, and discovery
 * costs one query per name and type per TTL however many workers run (reloads add none).
 */
import { writeFileSync } from "node:fs";
import type http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, closedPort, startBackend, startBackendsOnOnePort } from "../helpers/backend.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";
import { request } from "../helpers/http.js";
import { startLoad } from "../helpers/load.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function dns(): Promise<TestDnsServer> {
  const server = await startDnsServer();
  server.soa = { ttl: 60, minimum: 1 };
  cleanup.push(() => server.close());
  return server;
}

async function backends(names: string[], handler?: http.RequestListener): Promise<Backend[]> {
  const list = await startBackendsOnOnePort(names, handler);
  cleanup.push(() => Promise.all(list.map((b) => b.close())));
  return list;
}

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(() => p.stop());
  return p;
}

/** A config whose upstream `api` is `servers`, resolved through `server` (UDP). */
function config(
  server: TestDnsServer,
  servers: string,
  opts: { workers?: number; dns?: string; upstreamDns?: string } = {},
) {
  return `
workers: ${opts.workers ?? 2}
log: { access: off }
dns:
  nameservers: [${server.urls.udp}]
  timeout: 500ms
  attempts: 1
  ${opts.dns ?? ""}
upstreams:
  api:
    ${opts.upstreamDns ?? ""}
    servers:
${servers}
servers:
  - listen: 127.0.0.1:0
    routes:
      - path: /
        upstream: api
`;
}

/** Which backend answered each of `n` requests (sequential, new connection each). */
async function who(url: string, n: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(url);
    names.push(res.status === 200 ? String(res.headers["x-backend"]) : `status ${res.status}`);
  }
  return names;
}

/** Poll until `check` passes (it throws until then), at most `ms`. */
async function eventually(check: () => Promise<void>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

describe("DNS-driven upstreams", () => {
  it("moves all traffic to the new A record within TTL + 1 s, without a reload, with 0 failed requests", async () => {
    const server = await dns();
    const [b1, b2] = await backends(["b1", "b2"]);
    server.set("api.test", "A", ["127.0.0.2"], 2);
    const p = await portico(config(server, `      - address: api.test:${b1?.port}`, { dns: "family: ipv4" }));
    expect(new Set(await who(p.url(), 6))).toEqual(new Set(["b1"]));
    const load = startLoad(p.bound[0]?.port ?? 0, "/", { keepAlive: 4, fresh: 2 });
    await sleep(500);
    server.set("api.test", "A", ["127.0.0.3"], 2);
    await sleep(2000 + 1000);
    expect(new Set(await who(p.url(), 20))).toEqual(new Set(["b2"]));
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join("\n")).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    expect(b2?.requests).toBeGreaterThan(20);
    const change = await p.waitForLine((l) => String(l.msg).startsWith("upstream api: +127.0.0.3:"));
    expect(change.msg).toBe(`upstream api: +127.0.0.3:${b1?.port} -127.0.0.2:${b1?.port} (api.test, ttl 2s)`);
    expect(p.lines.some((l) => l.msg === "reload complete")).toBe(false);
  });

  it("keeps the peers while the DNS server is silent for 30 s, then answers SERVFAIL for 30 s: 0 failed requests; says what failed; follows a change within retry_max once DNS is back", async () => {
    const server = await dns();
    const [b1, b2] = await backends(["b1", "b2"]);
    server.set("api.test", "A", ["127.0.0.2"], 1);
    const p = await portico(
      config(server, `      - address: api.test:${b1?.port}`, { dns: "family: ipv4\n  retry_max: 2s" }),
    );
    const load = startLoad(p.bound[0]?.port ?? 0, "/", { keepAlive: 2, fresh: 1 });
    server.behavior = "silent";
    await sleep(30_000);
    const silentQueries = server.count({ name: "api.test" });
    server.behavior = "servfail";
    await sleep(30_000);
    const udp = server.urls.udp.replaceAll(".", "\\.");
    const warnings = p.lines
      .filter((l) => String(l.msg).startsWith("DNS: api.test"))
      .map((l) => String(l.msg));
    // The first warning: the code, the nameserver and its transport, how long the answer has been stale.
    expect(warnings[0]).toMatch(
      new RegExp(
        `^DNS: api\\.test: A lookup failed: TIMEOUT from ${udp} over udp \\(no answer for api\\.test A within 500 ms\\); only a stale answer is left \\(expired \\d+ ms ago\\); keeping the 1 known address\\(es\\), retrying within 2\\.0 s$`,
      ),
    );
    // When what fails changes, it says so at once, with how long the outage has lasted.
    expect(warnings[1]).toMatch(
      new RegExp(
        `^DNS: api\\.test \\(failing for \\d+ s\\): A lookup failed: SERVFAIL from ${udp} over udp \\(rcode SERVFAIL\\); only a stale answer is left \\(expired \\d+ s ago\\);`,
      ),
    );
    expect(warnings).toHaveLength(2);
    // DNS answers again, with a change: traffic follows within TTL (1 s) + retry_max (2 s) + 1 s.
    server.set("api.test", "A", ["127.0.0.3"], 1);
    server.behavior = "answer";
    const changedAt = Date.now();
    const moved = await p.waitForLine((l) => String(l.msg).startsWith("upstream api: +127.0.0.3:"), 5000);
    const followedMs = Date.parse(String(moved.time)) - changedAt;
    console.log(
      `discovery: after 60 s of DNS failures, a change reached the peers in ${followedMs} ms (bound 4000 ms)`,
    );
    expect(followedMs).toBeLessThanOrEqual(1000 + 2000 + 1000);
    await eventually(async () => expect(new Set(await who(p.url(), 4))).toEqual(new Set(["b2"])), 2000);
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join("\n")).toBe(0);
    expect(stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(500);
    expect(silentQueries).toBeGreaterThan(3); // it kept trying, with backoff
    expect(server.count({ name: "api.test" })).toBeGreaterThan(silentQueries);
    expect(p.lines.filter((l) => String(l.msg).startsWith("upstream api:"))).toHaveLength(2); // the first +, the change
    expect(b2?.requests).toBeGreaterThan(0);
    expect(
      p.lines.some((l) => /^DNS: api\.test answers again after \d+ s of failures$/.test(String(l.msg))),
    ).toBe(true);
  }, 120_000);

  it("keeps the peers through a short NXDOMAIN, removes them after remove_after, restores them when the name is back", async () => {
    const server = await dns();
    const [b1] = await backends(["b1"]);
    server.set("api.test", "A", ["127.0.0.2"], 1);
    const p = await portico(
      config(server, `      - address: api.test:${b1?.port}`, {
        dns: "family: ipv4",
        upstreamDns: "dns: { remove_after: 4s }",
      }),
    );
    const before = server.count({ name: "api.test" });
    server.remove("api.test");
    await eventually(async () => {
      expect(server.count({ name: "api.test" })).toBeGreaterThan(before);
    }, 3000);
    await sleep(200);
    expect(await who(p.url(), 4)).toEqual(["b1", "b1", "b1", "b1"]); // NXDOMAIN seen, peers kept
    await eventually(async () => {
      const res = await request(p.url());
      expect(res.status).toBe(503);
      expect(res.body.toString()).toContain("api.test");
      expect(res.body.toString()).toContain("NXDOMAIN");
    }, 8000);
    const removed = await p.waitForLine((l) =>
      String(l.msg).startsWith(`upstream api: -127.0.0.2:${b1?.port}`),
    );
    expect(String(removed.msg)).toContain("no peer left");
    server.set("api.test", "A", ["127.0.0.2"], 1);
    await eventually(async () => expect(await who(p.url(), 2)).toEqual(["b1", "b1"]), 5000);
  });

  it("starts when a name does not resolve, answers 503 for it, and serves it once it appears", async () => {
    const server = await dns();
    const [b1] = await backends(["b1"]);
    const yaml = config(server, `      - address: later.test:${b1?.port}`, { dns: "family: ipv4" });
    const check = await (async () => {
      const p = await portico(yaml);
      writeFileSync(p.configFile, yaml);
      return { p, out: await runCli(["check", "-c", p.configFile]) };
    })();
    expect(check.out.code).toBe(0);
    expect(check.out.stdout).toContain("configuration OK");
    expect(check.out.stderr).toMatch(
      /portico\.yaml:\d+:\d+: warning: upstream 'api': later\.test does not resolve now \(A: NXDOMAIN from udp:\/\/127\.0\.0\.1:\d+ over udp\); Portico starts anyway/,
    );
    const res = await request(check.p.url());
    expect(res.status).toBe(503);
    expect(res.body.toString()).toContain("upstream 'api' has no peer to send to: later.test:");
    server.set("later.test", "A", ["127.0.0.2"], 5);
    await eventually(async () => expect(await who(check.p.url(), 2)).toEqual(["b1", "b1"]), 5000);
  });

  it("treats an SRV target '.' as no service: 503 with the reason, and a portico check warning", async () => {
    const server = await dns();
    server.set("_http._tcp.none.test", "SRV", [{ priority: 0, weight: 0, port: 0, target: "." }], 5);
    const yaml = config(server, "      - service: _http._tcp.none.test", { dns: "family: ipv4" });
    const p = await portico(yaml);
    writeFileSync(p.configFile, yaml);
    const check = await runCli(["check", "-c", p.configFile]);
    expect(check.code).toBe(0);
    expect(check.stderr).toMatch(
      /portico\.yaml:\d+:\d+: warning: upstream 'api': _http\._tcp\.none\.test does not resolve now \(SRV target '\.': the service is decidedly not available at this domain \(RFC 2782\)\); Portico starts anyway/,
    );
    await eventually(async () => {
      const res = await request(p.url());
      expect(res.status).toBe(503);
      expect(res.body.toString()).toContain(
        "_http._tcp.none.test: the service is decidedly not available at this domain (RFC 2782) (SRV target '.' from udp://",
      );
    }, 3000);
    const dnsOut = await runCli(["dns", "_http._tcp.none.test", "SRV", "--server", server.urls.udp]);
    expect(dnsOut.stdout).toContain("IN\tSRV\t0 0 0 .");
    expect(dnsOut.stdout).toContain(
      ";; SRV target '.': the service is decidedly not available at this domain",
    );
  });

  it("splits traffic 3:1 between SRV targets of weights 3 and 1", async () => {
    const server = await dns();
    const heavy = await startBackend("heavy");
    const light = await startBackend("light");
    cleanup.push(() => Promise.all([heavy.close(), light.close()]));
    server.set("_http._tcp.api.test", "SRV", [
      { priority: 10, weight: 3, port: heavy.port, target: "heavy.test" },
      { priority: 10, weight: 1, port: light.port, target: "light.test" },
    ]);
    server.set("heavy.test", "A", ["127.0.0.1"]);
    server.set("light.test", "A", ["127.0.0.1"]);
    const p = await portico(config(server, "      - service: _http._tcp.api.test", { dns: "family: ipv4" }));
    const answers = await who(p.url(), 400);
    const share = answers.filter((n) => n === "heavy").length / answers.length;
    expect(answers.filter((n) => n !== "heavy" && n !== "light")).toEqual([]);
    expect(share).toBeGreaterThanOrEqual(0.75 * 0.9);
    expect(share).toBeLessThanOrEqual(0.75 * 1.1);
  });

  it("sends the traffic to priority 20 when every target of priority 10 is gone", async () => {
    const server = await dns();
    const primary = await startBackend("primary");
    const standby = await startBackend("standby");
    cleanup.push(() => Promise.all([primary.close(), standby.close()]));
    server.set(
      "_http._tcp.api.test",
      "SRV",
      [
        { priority: 10, weight: 1, port: primary.port, target: "primary.test" },
        { priority: 20, weight: 1, port: standby.port, target: "standby.test" },
      ],
      1,
    );
    server.set("primary.test", "A", ["127.0.0.1"], 1);
    server.set("standby.test", "A", ["127.0.0.1"], 1);
    const p = await portico(
      config(server, "      - service: _http._tcp.api.test", {
        dns: "family: ipv4",
        upstreamDns: "dns: { remove_after: 1s }",
      }),
    );
    expect(new Set(await who(p.url(), 10))).toEqual(new Set(["primary"]));
    server.remove("primary.test");
    await eventually(async () => expect(new Set(await who(p.url(), 10))).toEqual(new Set(["standby"])), 6000);
    server.set("primary.test", "A", ["127.0.0.1"], 1);
    await eventually(async () => expect(new Set(await who(p.url(), 10))).toEqual(new Set(["primary"])), 6000);
  });

  it("sends the traffic to priority 20 when every peer of priority 10 refuses connections, without a failed request", async () => {
    const server = await dns();
    const standby = await startBackend("standby");
    cleanup.push(() => standby.close());
    const [down1, down2] = [await closedPort(), await closedPort()];
    server.set("_http._tcp.api.test", "SRV", [
      { priority: 10, weight: 1, port: down1, target: "primary.test" },
      { priority: 10, weight: 1, port: down2, target: "primary.test" },
      { priority: 20, weight: 1, port: standby.port, target: "standby.test" },
    ]);
    server.set("primary.test", "A", ["127.0.0.1"]);
    server.set("standby.test", "A", ["127.0.0.1"]);
    const p = await portico(config(server, "      - service: _http._tcp.api.test", { dns: "family: ipv4" }));
    // Each worker finds the priority-10 peers down on its first requests and retries them on
    // the next peer (nothing was sent), so no client sees an error.
    expect(await who(p.url(), 20)).toEqual(Array(20).fill("standby"));
    const retried = p.lines.filter((l) => String(l.msg).endsWith("trying the next peer"));
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.length).toBeLessThanOrEqual(4); // 2 down peers x 2 workers: then they are skipped
  });

  it("asks at most once per name and type per TTL with 4 workers under load; a reload in the middle adds no query", async () => {
    const server = await dns();
    const [b1] = await backends(["b1"]);
    server.set("api.test", "A", ["127.0.0.2"], 2);
    server.set("api.test", "AAAA", [], 2);
    const p = await portico(config(server, `      - address: api.test:${b1?.port}`, { workers: 4 }));
    const load = startLoad(p.bound[0]?.port ?? 0, "/", { keepAlive: 4, fresh: 2 });
    server.resetLog();
    const t0 = Date.now();
    await sleep(3000);
    writeFileSync(
      p.configFile,
      config(server, `      - address: api.test:${b1?.port}`, { workers: 4 }).replace(
        "log: { access: off }",
        "log: { access: off, level: info }",
      ),
    );
    p.proc.kill("SIGHUP");
    await p.waitForLine((l) => l.msg === "reload complete", 20_000);
    await sleep(Math.max(0, t0 + 6000 - Date.now()));
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join("\n")).toBe(0);
    // The first 6 s = 3 TTL periods: at most 3 queries per type, whatever the workers and the reload.
    const inWindow = (type: string) =>
      server.log.filter((e) => e.name === "api.test" && e.type === type && e.time < t0 + 6000).length;
    expect(inWindow("A")).toBeLessThanOrEqual(3);
    expect(inWindow("AAAA")).toBeLessThanOrEqual(3);
    expect(inWindow("A")).toBeGreaterThanOrEqual(2);
    // The reload itself asked nothing: every query is a TTL refresh, ~2 s apart.
    const times = server.log.filter((e) => e.name === "api.test" && e.type === "A").map((e) => e.time);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(1900);
  });

  it("lets a departed peer's in-flight slow request finish with 200", async () => {
    const server = await dns();
    const [b1, b2] = await backends(["b1", "b2"], (req, res) => {
      const name = req.socket.localAddress === "127.0.0.2" ? "b1" : "b2";
      const delay = req.url === "/slow" ? 3000 : 0;
      setTimeout(() => {
        res.writeHead(200, { "x-backend": name, "content-length": 2 });
        res.end("ok");
      }, delay);
    });
    server.set("api.test", "A", ["127.0.0.2"], 1);
    const p = await portico(config(server, `      - address: api.test:${b1?.port}`, { dns: "family: ipv4" }));
    const slow = request(`${p.url()}/slow`);
    await sleep(200);
    server.set("api.test", "A", ["127.0.0.3"], 1);
    await eventually(async () => expect(await who(p.url(), 2)).toEqual(["b2", "b2"]), 4000);
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.headers["x-backend"]).toBe("b1");
    expect(b2?.requests).toBeGreaterThan(0);
  });
});
