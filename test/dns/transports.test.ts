// The resolver against the real test DNS server on loopback, over each transport.
import { createSocket } from "node:dgram";
import { readdirSync } from "node:fs";
import dnsPacket from "dns-packet";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Resolver, type ResolverOptions } from "../../src/dns/index.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";

let server: TestDnsServer;
const resolvers: Resolver[] = [];

function resolver(options: ResolverOptions): Resolver {
  const r = new Resolver({ hostsFile: false, timeoutMs: 1000, attempts: 1, ...options });
  resolvers.push(r);
  return r;
}

beforeEach(async () => {
  server = await startDnsServer();
  server.set("api.test", "A", ["10.0.0.1", "10.0.0.2"], 30);
  server.set("api.test", "AAAA", ["fd00::1"], 40);
  server.set(
    "_http._tcp.api.test",
    "SRV",
    [
      { priority: 10, weight: 3, port: 8080, target: "a.api.test" },
      { priority: 20, weight: 1, port: 8081, target: "b.api.test" },
    ],
    50,
  );
});

afterEach(async () => {
  await Promise.all(resolvers.splice(0).map((r) => r.close()));
  await server.close();
});

describe.each(["udp", "tcp", "tls", "https"] as const)("over %s", (transport) => {
  it("answers A, AAAA and SRV with their TTLs and says who answered", async () => {
    const url = server.urls[transport];
    const r = resolver({ nameservers: [url], tls: { ca: server.ca } });

    const a = await r.resolve("api.test", "A");
    expect(a.records.map((x) => (x.type === "A" ? x.address : "")).sort()).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(a.ttl).toBe(30);
    expect(a.records.every((x) => x.ttl === 30)).toBe(true);
    expect(a.source).toEqual({ kind: "nameserver", server: url, transport });

    const aaaa = await r.resolve("API.test.", "AAAA");
    expect(aaaa.records).toEqual([{ type: "AAAA", name: "api.test", ttl: 40, address: "fd00::1" }]);

    const srv = await r.resolve("_http._tcp.api.test", "SRV");
    expect(srv.ttl).toBe(50);
    expect(srv.records).toEqual([
      {
        type: "SRV",
        name: "_http._tcp.api.test",
        ttl: 50,
        priority: 10,
        weight: 3,
        port: 8080,
        target: "a.api.test",
      },
      {
        type: "SRV",
        name: "_http._tcp.api.test",
        ttl: 50,
        priority: 20,
        weight: 1,
        port: 8081,
        target: "b.api.test",
      },
    ]);
    expect(server.count({ transport })).toBe(3);
    expect(server.count()).toBe(3);

    // A second ask is served from the cache, with the server that gave it.
    const cached = await r.resolve("api.test", "A");
    expect(cached.source).toEqual({ kind: "cache", server: url, transport });
    expect(server.count()).toBe(3);
  });

  if (transport === "tcp" || transport === "tls") {
    it("reuses one connection and pipelines queries", async () => {
      const r = resolver({ nameservers: [server.urls[transport]], tls: { ca: server.ca } });
      const names = Array.from({ length: 20 }, (_, i) => `n${i}.test`);
      for (const [i, n] of names.entries()) server.set(n, "A", [`10.1.0.${i}`]);
      const answers = await Promise.all(names.map((n) => r.resolve(n, "A")));
      expect(answers.map((a) => (a.records[0]?.type === "A" ? a.records[0].address : ""))).toEqual(
        names.map((_, i) => `10.1.0.${i}`),
      );
      const ports = new Set(server.log.filter((e) => e.transport === transport).map((e) => e.port));
      expect(ports.size).toBe(1);
    });
  }
});

describe("transport safety", () => {
  it("uses a random ID and a distinct source port for every UDP query in flight", async () => {
    const r = resolver({ nameservers: [server.urls.udp] });
    for (let i = 0; i < 20; i++) server.set(`p${i}.test`, "A", ["10.2.0.1"]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => r.resolve(`p${i}.test`, "A")));
    const udp = server.log.filter((e) => e.transport === "udp");
    expect(udp).toHaveLength(20);
    // Never two queries in flight on one socket.
    expect(new Set(udp.map((e) => e.port)).size).toBe(20);
    expect(new Set(udp.map((e) => e.id)).size).toBeGreaterThan(15);
  });

  it("replaces a UDP socket after udpQueriesPerSocket queries", async () => {
    for (let i = 0; i < 24; i++) server.set(`q${i}.test`, "A", ["10.2.0.1"]);
    const ports = async (udpQueriesPerSocket: number, from: number) => {
      server.resetLog();
      const r = resolver({ nameservers: [server.urls.udp], udpQueriesPerSocket });
      // One at a time: every query could take the same idle socket.
      for (let i = from; i < from + 12; i++) await r.resolve(`q${i}.test`, "A");
      const uses = new Map<number, number>();
      for (const e of server.log) uses.set(e.port, (uses.get(e.port) ?? 0) + 1);
      return [...uses.values()];
    };
    // 1: a fresh socket (and source port) for every query.
    expect(await ports(1, 0)).toEqual(Array(12).fill(1));
    // 4: a socket carries at most 4 queries, so 12 sequential queries use at least 3 ports.
    const four = await ports(4, 12);
    expect(Math.max(...four)).toBeLessThanOrEqual(4);
    expect(four.reduce((a, b) => a + b)).toBe(12);
    expect(() => resolver({ nameservers: [server.urls.udp], udpQueriesPerSocket: 0 })).toThrow(
      /udpQueriesPerSocket/,
    );
  });

  it("does not reuse a UDP socket whose query timed out", async () => {
    server.set("late.test", "A", ["10.2.0.2"]);
    server.setBehavior("slow.test", "silent");
    const r = resolver({ nameservers: [server.urls.udp], timeoutMs: 100, udpQueriesPerSocket: 100 });
    await expect(r.resolve("slow.test", "A")).rejects.toMatchObject({ code: "TIMEOUT" });
    await r.resolve("late.test", "A");
    const [slow, late] = server.log.filter((e) => e.transport === "udp");
    expect(late?.port).not.toBe(slow?.port);
  });

  it.skipIf(process.platform !== "linux")(
    "keeps idle UDP sockets from holding the process, and closes them when idle and on close()",
    async () => {
      const openFds = () => readdirSync("/proc/self/fd").length;
      const udpHandles = () => process.getActiveResourcesInfo().filter((x) => x === "UDPWrap").length;
      const fds = openFds();
      const handles = udpHandles();
      for (let i = 0; i < 3; i++) server.set(`idle${i}.test`, "A", ["10.2.0.3"]);
      const r = resolver({ nameservers: [server.urls.udp], udpQueriesPerSocket: 8 });
      await Promise.all([r.resolve("idle0.test", "A"), r.resolve("idle1.test", "A")]);
      // Two sockets stay open for the next queries, but unreferenced.
      expect(openFds()).toBe(fds + 2);
      expect(udpHandles()).toBe(handles);
      await vi.waitFor(() => expect(openFds()).toBe(fds), { timeout: 3000, interval: 50 });
      await r.resolve("idle2.test", "A");
      expect(openFds()).toBe(fds + 1);
      await r.close();
      expect(openFds()).toBe(fds);
    },
  );

  it("drops a late answer to an earlier query that reaches a reused UDP socket", async () => {
    // A nameserver that answers first.test twice (the copy 50 ms late, as a duplicating
    // network would) and second.test after 100 ms, so the late copy arrives while second.test
    // is in flight on the same socket.
    const fake = createSocket("udp4");
    const ports: number[] = [];
    fake.on("message", (bytes, from) => {
      const query = dnsPacket.decode(bytes);
      const name = query.questions?.[0]?.name ?? "";
      ports.push(from.port);
      const answer = dnsPacket.encode({
        type: "response",
        id: query.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: query.questions,
        answers: [{ type: "A", name, ttl: 60, data: name === "first.test" ? "10.3.0.1" : "10.3.0.2" }],
      });
      const reply = () => fake.send(answer, from.port, from.address);
      if (name === "first.test") {
        reply();
        setTimeout(reply, 50);
      } else setTimeout(reply, 100);
    });
    await new Promise<void>((resolve) => fake.bind(0, "127.0.0.1", resolve));
    try {
      const r = resolver({ nameservers: [`udp://127.0.0.1:${fake.address().port}`], udpQueriesPerSocket: 8 });
      const first = await r.resolve("first.test", "A");
      expect(first.records[0]).toMatchObject({ address: "10.3.0.1" });
      const second = await r.resolve("second.test", "A");
      expect(second.records[0]).toMatchObject({ address: "10.3.0.2" });
      // Both went out on one socket, and the late copy of the first answer was dropped and counted.
      expect(ports).toHaveLength(2);
      expect(ports[1]).toBe(ports[0]);
      expect(r.stats().nameservers[0]?.spoofed).toBe(1);
    } finally {
      await Promise.all(resolvers.splice(0).map((x) => x.close()));
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it("retries a truncated UDP answer over TCP", async () => {
    server.setBehavior("api.test", "truncate");
    const r = resolver({ nameservers: [server.urls.udp] });
    const answer = await r.resolve("api.test", "A");
    expect(answer.records).toHaveLength(2);
    expect(answer.source.transport).toBe("tcp");
    expect(server.count({ name: "api.test", transport: "udp" })).toBe(1);
    expect(server.count({ name: "api.test", transport: "tcp" })).toBe(1);
    expect(r.stats().nameservers[0]?.truncated).toBe(1);
  });

  it.each(["wrong-id", "wrong-source"] as const)(
    "ignores a spoofed answer (%s) and accepts the real one",
    async (behavior) => {
      server.setBehavior("api.test", behavior);
      const r = resolver({ nameservers: [server.urls.udp] });
      const answer = await r.resolve("api.test", "A");
      const addresses = answer.records.map((x) => (x.type === "A" ? x.address : ""));
      expect(addresses.sort()).toEqual(["10.0.0.1", "10.0.0.2"]);
      expect(r.stats().nameservers[0]?.spoofed).toBe(1);
    },
  );

  it("verifies the DoT and DoH certificate: an untrusted server is a NETWORK error", async () => {
    const dot = resolver({ nameservers: [server.urls.tls] });
    await expect(dot.resolve("api.test", "A")).rejects.toMatchObject({ code: "NETWORK" });
    const doh = resolver({ nameservers: [server.urls.https] });
    await expect(doh.resolve("api.test", "A")).rejects.toMatchObject({ code: "NETWORK" });
  });

  it.each(["tls", "https"] as const)(
    "fails a %s:// nameserver that is a plain DNS port at once, saying so",
    async (scheme) => {
      const port = new URL(server.urls.tcp).port;
      const url =
        scheme === "tls"
          ? `tls://127.0.0.1:${port}`
          : `https://127.0.0.1:${port}/dns-query?servername=dns.test`;
      // The timeout is long: only the plain-DNS probe can end the handshake with this error.
      const r = resolver({ nameservers: [url], tls: { ca: server.ca }, timeoutMs: 30_000 });
      const err = await r.resolve("api.test", "A").catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "NETWORK" });
      expect(String((err as Error).message)).toContain(
        `no TLS handshake: 127.0.0.1:${port} answers plain DNS over TCP`,
      );
      expect(String((err as Error).message)).toContain(`write tcp://127.0.0.1:${port}`);
    },
  );

  it("checks the certificate against ?servername=", async () => {
    const good = resolver({
      nameservers: [`${server.urls.tls}?servername=dns.test`],
      tls: { ca: server.ca },
    });
    expect((await good.resolve("api.test", "A")).records).toHaveLength(2);
    const bad = resolver({
      nameservers: [`${server.urls.tls}?servername=other.example`],
      tls: { ca: server.ca },
    });
    await expect(bad.resolve("api.test", "A")).rejects.toMatchObject({ code: "NETWORK" });
  });

  it("presents a client certificate (mTLS) over DoT and DoH", async () => {
    const mtls = await startDnsServer({ requireClientCert: true });
    try {
      mtls.set("api.test", "A", ["10.9.9.9"]);
      const client = mtls.client;
      if (!client) throw new Error("test server gave no client certificate");
      for (const url of [mtls.urls.tls, mtls.urls.https]) {
        const without = resolver({ nameservers: [url], tls: { ca: mtls.ca } });
        await expect(without.resolve("api.test", "A")).rejects.toMatchObject({ code: "NETWORK" });
        const withCert = resolver({
          nameservers: [url],
          tls: { ca: mtls.ca, cert: client.cert, key: client.key },
        });
        expect((await withCert.resolve("api.test", "A")).records[0]).toMatchObject({ address: "10.9.9.9" });
      }
    } finally {
      await Promise.all(resolvers.splice(0).map((r) => r.close()));
      await mtls.close();
    }
  });
});
