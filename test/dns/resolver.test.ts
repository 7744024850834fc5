// Resolution policy and cache against the real test DNS server: hosts file, failover, circuit
// breaker, TTLs, negative caching, serve-stale, single flight, bad answers.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DnsError, Resolver, type ResolverOptions } from "../../src/dns/index.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";

const servers: TestDnsServer[] = [];
const resolvers: Resolver[] = [];
let server: TestDnsServer;
let dir: string;

async function dnsServer(): Promise<TestDnsServer> {
  const s = await startDnsServer();
  servers.push(s);
  return s;
}

function resolver(options: ResolverOptions = {}): Resolver {
  const r = new Resolver({
    nameservers: [server.urls.udp],
    hostsFile: false,
    timeoutMs: 300,
    attempts: 1,
    ...options,
  });
  resolvers.push(r);
  return r;
}

const addresses = (answer: { records: Array<{ type: string; address?: string }> }) =>
  answer.records.map((r) => r.address).sort();

/** Resolve to the DnsError it rejects with. */
async function failure(promise: Promise<unknown>): Promise<DnsError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof DnsError) return err;
    throw err;
  }
  throw new Error("expected a DnsError");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  server = await dnsServer();
  server.set("api.test", "A", ["10.0.0.1"], 60);
  dir = mkdtempSync(join(tmpdir(), "portico-dns-"));
});

afterEach(async () => {
  await Promise.all(resolvers.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe("hosts file", () => {
  it("answers localhost and hosts-file names without a query, and re-reads the file when it changes", async () => {
    const hosts = join(dir, "hosts");
    writeFileSync(
      hosts,
      "127.0.0.1 localhost\n::1 localhost\n10.5.5.5 app.hosts.test alias.hosts.test # comment\n",
    );
    const r = resolver({ hostsFile: hosts });
    expect(addresses(await r.resolve("localhost", "A"))).toEqual(["127.0.0.1"]);
    expect(addresses(await r.resolve("localhost", "AAAA"))).toEqual(["::1"]);
    const app = await r.resolve("ALIAS.hosts.test", "A");
    expect(addresses(app)).toEqual(["10.5.5.5"]);
    expect(app.source.kind).toBe("hosts");
    expect(server.count()).toBe(0);

    writeFileSync(hosts, "10.6.6.6 app.hosts.test\n");
    // The file's mtime is checked at most once per second.
    await sleep(1100);
    expect(addresses(await r.resolve("app.hosts.test", "A"))).toEqual(["10.6.6.6"]);
    expect(server.count()).toBe(0);
    // A name the file does not have goes to the nameservers.
    expect(addresses(await r.resolve("api.test", "A"))).toEqual(["10.0.0.1"]);
    expect(server.count()).toBe(1);
  });
});

describe("nameserver policy", () => {
  it("fails over to the second nameserver when the first times out, then the breaker skips the first", async () => {
    const second = await dnsServer();
    second.set("api.test", "A", ["10.0.0.2"]);
    second.set("other.test", "A", ["10.0.0.3"]);
    server.behavior = "silent";
    const r = resolver({
      nameservers: [server.urls.udp, second.urls.udp],
      breaker: { failures: 1, cooldownMs: 60_000 },
    });
    const first = await r.resolve("api.test", "A");
    expect(addresses(first)).toEqual(["10.0.0.2"]);
    expect(first.source.server).toBe(second.urls.udp);
    expect(server.count()).toBe(1);

    expect(addresses(await r.resolve("other.test", "A"))).toEqual(["10.0.0.3"]);
    expect(server.count()).toBe(1); // skipped: its breaker is open
    const stats = r.stats().nameservers;
    expect(stats[0]).toMatchObject({ breaker: "open", timeouts: 1, sent: 1 });
    expect(stats[1]).toMatchObject({ breaker: "closed", answered: 2 });
  });

  it("probes an open breaker after the cool-down and closes it when the server answers", async () => {
    const second = await dnsServer();
    for (const s of [server, second]) for (const n of ["a", "b", "c"]) s.set(`${n}.test`, "A", ["10.0.0.9"]);
    server.behavior = "silent";
    const r = resolver({
      nameservers: [server.urls.udp, second.urls.udp],
      breaker: { failures: 1, cooldownMs: 200 },
    });
    await r.resolve("a.test", "A");
    expect(r.stats().nameservers[0]?.breaker).toBe("open");
    server.behavior = "answer";
    await sleep(250);
    const b = await r.resolve("b.test", "A");
    expect(b.source.server).toBe(server.urls.udp);
    expect(r.stats().nameservers[0]?.breaker).toBe("closed");
  });

  it("tries the next nameserver on SERVFAIL and REFUSED, and reports the last failure when all fail", async () => {
    const second = await dnsServer();
    second.set("api.test", "A", ["10.0.0.2"]);
    server.behavior = "servfail";
    const r = resolver({ nameservers: [server.urls.udp, second.urls.udp] });
    expect(addresses(await r.resolve("api.test", "A"))).toEqual(["10.0.0.2"]);

    second.behavior = "refused";
    server.set("new.test", "A", ["10.0.0.4"]);
    const err = await failure(r.resolve("new.test", "A"));
    expect(err.code).toBe("REFUSED");
    expect(err.message).toContain(second.urls.udp);
    expect(r.stats().nameservers[0]?.rcodes.SERVFAIL).toBe(2);
  });

  it("names every nameserver that failed, with its code and transport", async () => {
    const second = await dnsServer();
    server.behavior = "silent";
    second.behavior = "refused";
    const r = resolver({ nameservers: [server.urls.udp, `${second.urls.tcp}`], attempts: 2 });
    const err = await failure(r.resolve("api.test", "A"));
    expect(err.details.failures).toEqual([
      {
        server: server.urls.udp,
        transport: "udp",
        code: "TIMEOUT",
        detail: "no answer for api.test A within 300 ms",
        count: 2,
      },
      { server: second.urls.tcp, transport: "tcp", code: "REFUSED", detail: "rcode REFUSED", count: 2 },
    ]);
    expect(err.message).toBe(
      `api.test A: TIMEOUT from ${server.urls.udp} over udp (no answer for api.test A within 300 ms, 2 times); REFUSED from ${second.urls.tcp} over tcp (rcode REFUSED, 2 times)`,
    );
  });

  it("says which failure a stale answer stands in for, and how long it has been stale", async () => {
    server.set("stale.test", "A", ["10.0.0.1"], 1);
    const r = resolver({ staleRetryMs: 300 });
    await r.resolve("stale.test", "A");
    server.behavior = "servfail";
    await sleep(1200);
    const stale = await r.resolve("stale.test", "A");
    expect(stale.stale).toBe(true);
    expect(stale.staleForMs).toBeGreaterThanOrEqual(200);
    expect(stale.failure?.code).toBe("SERVFAIL");
    expect(stale.failure?.details.failures?.[0]).toMatchObject({ server: server.urls.udp, transport: "udp" });
  });

  it("tells when a failing nameserver answers again, and then asks again at once for stale names", async () => {
    server.set("stale.test", "A", ["10.0.0.1"], 1);
    server.set("other.test", "A", ["10.0.0.9"], 60);
    const recovered: string[] = [];
    const r = resolver({ staleRetryMs: 60_000, onRecovered: (url) => recovered.push(url) });
    await r.resolve("stale.test", "A");
    server.behavior = "silent";
    await sleep(1100);
    expect((await r.resolve("stale.test", "A")).stale).toBe(true);
    expect(recovered).toEqual([]);
    server.behavior = "answer";
    server.set("stale.test", "A", ["10.0.0.2"], 1);
    // Another name's answer shows the server is back: the stale one is not held for 60 s.
    await r.resolve("other.test", "A");
    expect(recovered).toEqual([server.urls.udp]);
    const fresh = await r.resolve("stale.test", "A");
    expect(fresh.stale).toBe(false);
    expect(addresses(fresh)).toEqual(["10.0.0.2"]);
    // A server that keeps answering is not "recovered" again.
    await r.resolve("api.test", "A");
    expect(recovered).toHaveLength(1);
  });

  it("rotates the first nameserver when asked to", async () => {
    const second = await dnsServer();
    for (let i = 0; i < 4; i++) for (const s of [server, second]) s.set(`r${i}.test`, "A", ["10.0.0.1"]);
    const r = resolver({ nameservers: [server.urls.udp, second.urls.udp], rotate: true });
    for (let i = 0; i < 4; i++) await r.resolve(`r${i}.test`, "A");
    expect(server.count()).toBe(2);
    expect(second.count()).toBe(2);
  });

  it("says when no nameserver is configured", async () => {
    const err = await failure(resolver({ nameservers: [] }).resolve("api.test", "A"));
    expect(err.code).toBe("NO_NAMESERVERS");
  });
});

describe("cache", () => {
  it("re-queries an entry only after its TTL", async () => {
    server.set("short.test", "A", ["10.0.0.1"], 1);
    const r = resolver();
    await r.resolve("short.test", "A");
    const hit = await r.resolve("short.test", "A");
    expect(hit.source.kind).toBe("cache");
    expect(server.count({ name: "short.test" })).toBe(1);
    server.set("short.test", "A", ["10.0.0.7"], 1);
    await sleep(1100);
    expect(addresses(await r.resolve("short.test", "A"))).toEqual(["10.0.0.7"]);
    expect(server.count({ name: "short.test" })).toBe(2);
  });

  it("clamps TTLs to min_ttl and max_ttl; TTL 0 stays 0 and is kept only 250 ms", async () => {
    server.set("short.test", "A", ["10.0.0.1"], 2);
    server.set("long.test", "A", ["10.0.0.1"], 999_999);
    server.set("zero.test", "A", ["10.0.0.1"], 0);
    const r = resolver({ minTtl: 5, maxTtl: 100 });
    expect((await r.resolve("short.test", "A")).ttl).toBe(5);
    expect((await r.resolve("long.test", "A")).ttl).toBe(100);
    expect((await r.resolve("zero.test", "A")).ttl).toBe(0);
    // Concurrent and immediate askers share it; 250 ms later it is asked again.
    const asked = server.count({ name: "zero.test" });
    expect((await r.resolve("zero.test", "A")).source.kind).toBe("cache");
    await sleep(300);
    server.set("zero.test", "A", ["10.0.0.2"], 0);
    expect(addresses(await r.resolve("zero.test", "A"))).toEqual(["10.0.0.2"]);
    expect(server.count({ name: "zero.test" })).toBe(asked + 1);
  });

  it("caches NXDOMAIN for the SOA minimum (RFC 2308), and NODATA too", async () => {
    server.soa = { ttl: 60, minimum: 1 };
    const r = resolver();
    expect((await failure(r.resolve("missing.test", "A"))).code).toBe("NXDOMAIN");
    expect((await failure(r.resolve("missing.test", "A"))).code).toBe("NXDOMAIN");
    expect(server.count({ name: "missing.test" })).toBe(1);
    expect((await failure(r.resolve("api.test", "AAAA"))).code).toBe("NODATA");
    expect((await failure(r.resolve("api.test", "AAAA"))).code).toBe("NODATA");
    expect(server.count({ name: "api.test", type: "AAAA" })).toBe(1);
    server.set("missing.test", "A", ["10.0.0.8"]);
    await sleep(1100);
    expect(addresses(await r.resolve("missing.test", "A"))).toEqual(["10.0.0.8"]);
    expect(server.count({ name: "missing.test" })).toBe(2);
  });

  it("serves stale while every nameserver fails, and fresh data once one answers (RFC 8767)", async () => {
    server.set("stale.test", "A", ["10.0.0.1"], 1);
    const r = resolver({ staleRetryMs: 300 });
    await r.resolve("stale.test", "A");
    server.behavior = "servfail";
    await sleep(1100);
    const stale = await r.resolve("stale.test", "A");
    expect(stale.stale).toBe(true);
    expect(addresses(stale)).toEqual(["10.0.0.1"]);
    server.behavior = "silent";
    // Within the failure-recheck interval the nameservers are not asked again.
    const before = server.count();
    expect((await r.resolve("stale.test", "A")).stale).toBe(true);
    expect(server.count()).toBe(before);
    await sleep(350);
    expect((await r.resolve("stale.test", "A")).stale).toBe(true); // timed out, stale again
    server.behavior = "answer";
    server.set("stale.test", "A", ["10.0.0.2"], 1);
    await sleep(350);
    const fresh = await r.resolve("stale.test", "A");
    expect(fresh.stale).toBe(false);
    expect(addresses(fresh)).toEqual(["10.0.0.2"]);
    expect(r.stats().cache.staleServed).toBe(3);
  });

  it("does not serve stale past stale_max", async () => {
    server.set("old.test", "A", ["10.0.0.1"], 1);
    const r = resolver({ staleMaxMs: 100 });
    await r.resolve("old.test", "A");
    server.behavior = "servfail";
    await sleep(1200);
    expect((await failure(r.resolve("old.test", "A"))).code).toBe("SERVFAIL");
  });

  it("sends exactly 1 query for 1,000 concurrent resolves of one name", async () => {
    server.delayMs = 50;
    const r = resolver();
    const answers = await Promise.all(Array.from({ length: 1000 }, () => r.resolve("api.test", "A")));
    expect(answers.every((a) => a.records[0]?.type === "A" && a.records[0].address === "10.0.0.1")).toBe(
      true,
    );
    expect(server.count()).toBe(1);
  });

  it("prefetches an entry hit in the last 10% of its TTL", async () => {
    server.set("pre.test", "A", ["10.0.0.1"], 2);
    const r = resolver();
    await r.resolve("pre.test", "A");
    await sleep(1850);
    server.set("pre.test", "A", ["10.0.0.2"], 2);
    const hit = await r.resolve("pre.test", "A");
    expect(addresses(hit)).toEqual(["10.0.0.1"]); // still the cached answer...
    await sleep(100);
    expect(server.count({ name: "pre.test" })).toBe(2); // ...but refreshed in the background
    const next = await r.resolve("pre.test", "A");
    expect(addresses(next)).toEqual(["10.0.0.2"]);
    expect(next.source.kind).toBe("cache");
    expect(r.stats().cache.prefetches).toBe(1);
  });

  it("evicts the least recently used entry past max entries", async () => {
    for (const n of ["a", "b", "c"]) server.set(`${n}.test`, "A", ["10.0.0.1"]);
    const r = resolver({ maxEntries: 2 });
    await r.resolve("a.test", "A");
    await r.resolve("b.test", "A");
    await r.resolve("a.test", "A"); // a is now the most recently used
    await r.resolve("c.test", "A"); // evicts b
    expect(r.stats().cache).toMatchObject({ size: 2, evictions: 1 });
    await r.resolve("a.test", "A");
    expect(server.count({ name: "a.test" })).toBe(1);
    await r.resolve("b.test", "A");
    expect(server.count({ name: "b.test" })).toBe(2);
  });
});

describe("names and bad answers", () => {
  it("follows a CNAME chain, with the smallest TTL of the chain", async () => {
    server.set("www.test", "CNAME", "edge.test", 20);
    server.set("edge.test", "CNAME", "api.test", 300);
    const answer = await resolver().resolve("www.test", "A");
    expect(addresses(answer)).toEqual(["10.0.0.1"]);
    expect(answer.cnames.map((c) => `${c.name}->${c.target}`)).toEqual([
      "www.test->edge.test",
      "edge.test->api.test",
    ]);
    expect(answer.ttl).toBe(20);
  });

  it("names the missing target of a dangling CNAME", async () => {
    server.soa = { ttl: 30, minimum: 30 };
    server.set("alias.test", "CNAME", "gone.test", 60);
    const err = await failure(resolver().resolve("alias.test", "A"));
    expect(err.code).toBe("NXDOMAIN");
    expect(err.details.target).toBe("gone.test");
    expect(err.message).toMatch(/^alias\.test is an alias \(CNAME\) of gone\.test/);
    expect(err.message).toContain("gone.test does not exist (NXDOMAIN from");
  });

  it("reports a CNAME loop as an error", async () => {
    server.set("loop-a.test", "CNAME", "loop-b.test");
    server.set("loop-b.test", "CNAME", "loop-a.test");
    const err = await failure(resolver().resolve("loop-a.test", "A"));
    expect(err.code).toBe("CNAME_LOOP");
    expect(err.message).toContain("loop-a.test -> loop-b.test -> loop-a.test");
  });

  it.each(["udp", "tcp", "tls", "https"] as const)(
    "reports a malformed answer over %s as MALFORMED",
    async (transport) => {
      server.behavior = "malformed";
      const r = resolver({ nameservers: [server.urls[transport]], tls: { ca: server.ca } });
      const err = await failure(r.resolve("api.test", "A"));
      expect(err.code).toBe("MALFORMED");
      // The resolver still works afterwards.
      server.behavior = "answer";
      expect(addresses(await r.resolve("api.test", "A"))).toEqual(["10.0.0.1"]);
    },
  );

  it("refuses an invalid name without asking", async () => {
    const err = await failure(resolver().resolve(`${"x".repeat(64)}.test`, "A"));
    expect(err.code).toBe("BAD_NAME");
    expect(server.count()).toBe(0);
    const bad = ["-a.test", "a-.test", "a..test", "a*.test", "a b.test", "ü.test", `${"a.".repeat(127)}test`];
    for (const name of bad)
      expect((await failure(resolver().resolve(name, "A"))).code, name).toBe("BAD_NAME");
    expect(server.count()).toBe(0);
    // Valid: '_' anywhere, '*' as a first character, a 63-character label, 253 characters in all.
    const good = [
      "_http._tcp.a-b.test",
      "*.test",
      "*x.test",
      `${"x".repeat(63)}.test`,
      `${"a.".repeat(124)}test`,
    ];
    for (const name of good)
      expect((await failure(resolver().resolve(name, "A"))).code, name).toBe("NXDOMAIN");
  });

  it("applies the search list and ndots", async () => {
    server.set("api.svc.test", "A", ["10.0.0.5"]);
    const r = resolver({ search: ["svc.test", "other.test"], ndots: 1 });
    const answer = await r.resolve("api", "A");
    expect(answer.name).toBe("api.svc.test");
    expect(addresses(answer)).toEqual(["10.0.0.5"]);
    // A name with enough dots is asked as is first.
    expect(addresses(await r.resolve("api.test", "A"))).toEqual(["10.0.0.1"]);
    expect(server.count({ name: "api.test.svc.test" })).toBe(0);
  });
});
