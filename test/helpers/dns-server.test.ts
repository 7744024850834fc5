/**
 * Self-test of the loopback DNS server, with plain node:dgram / node:net / node:tls / undici
 * clients and dns-packet as the codec (Portico's own resolver is tested against it elsewhere).
 */
import dgram from "node:dgram";
import net from "node:net";
import tls from "node:tls";
import type { Answer, DecodedPacket, OptAnswer, RecordType, SoaData, SrvData } from "dns-packet";
import dnsPacket from "dns-packet";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { startDnsServer, type TestDnsServer } from "./dns-server.js";

type Decoded = DecodedPacket & { rcode: string };
type RecordAnswer = Exclude<Answer, OptAnswer>;

const servers: TestDnsServer[] = [];
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await Promise.all(servers.splice(0).map((server) => server.close()));
  // Client sockets closed above release their handles a loop turn or two later.
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
});

async function start(opts?: Parameters<typeof startDnsServer>[0]): Promise<TestDnsServer> {
  const server = await startDnsServer(opts);
  servers.push(server);
  return server;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

let nextId = 1;

/** A recursive query for name/type; `edns` adds an OPT record advertising 1232 bytes. */
function query(name: string, type: RecordType, opts: { id?: number; edns?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: opts.id ?? nextId++ & 0xffff,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
    additionals: opts.edns
      ? [
          {
            type: "OPT",
            name: ".",
            udpPayloadSize: 1232,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [],
  });
}

function decode(message: Buffer): Decoded {
  return dnsPacket.decode(message) as Decoded;
}

interface Datagram {
  message: Buffer;
  port: number;
}

/** Send one UDP query and collect datagrams until `count` arrived or `timeoutMs` passed. */
async function udpExchange(url: string, message: Buffer, count = 1, timeoutMs = 1000): Promise<Datagram[]> {
  const socket = dgram.createSocket("udp4");
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return new Promise((resolve, reject) => {
    const received: Datagram[] = [];
    const timer = setTimeout(() => resolve(received), timeoutMs);
    socket.on("error", reject);
    socket.on("message", (data, remote) => {
      received.push({ message: data, port: remote.port });
      if (received.length === count) {
        clearTimeout(timer);
        resolve(received);
      }
    });
    socket.send(message, portOf(url), "127.0.0.1");
  });
}

async function udpQuery(url: string, message: Buffer): Promise<Decoded> {
  const [datagram] = await udpExchange(url, message);
  if (!datagram) throw new Error("no UDP answer");
  return decode(datagram.message);
}

/** Reads RFC 7766 length-prefixed messages off a TCP or TLS socket. */
class FramedReader {
  private buffer = Buffer.alloc(0);
  private readonly messages: Buffer[] = [];
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 2 && this.buffer.length >= 2 + this.buffer.readUInt16BE(0)) {
        const length = this.buffer.readUInt16BE(0);
        this.messages.push(this.buffer.subarray(2, 2 + length));
        this.buffer = this.buffer.subarray(2 + length);
      }
      this.waiter?.();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  send(...messages: Buffer[]): void {
    const frames = messages.map((message) => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(message.length);
      return Buffer.concat([prefix, message]);
    });
    // One write: the queries are pipelined in a single segment.
    this.socket.write(Buffer.concat(frames));
  }

  /** The next message, or undefined when the socket closed or `timeoutMs` passed. */
  async next(timeoutMs = 1000): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0 && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.messages.shift();
  }

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    return whenClosed(this.socket);
  }
}

function whenClosed(socket: net.Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once("close", () => resolve()));
}

async function connectTcp(url: string): Promise<FramedReader> {
  const socket = net.connect(portOf(url), "127.0.0.1");
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return new FramedReader(socket);
}

async function connectTls(url: string, options: tls.ConnectionOptions): Promise<FramedReader> {
  const socket = tls.connect({ port: portOf(url), host: "127.0.0.1", ...options });
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  return new FramedReader(socket);
}

function agentFor(server: TestDnsServer, extra: tls.ConnectionOptions = {}): Agent {
  const agent = new Agent({ connect: { ca: server.ca, ...extra } });
  cleanups.push(() => agent.destroy());
  return agent;
}

async function dohPost(server: TestDnsServer, agent: Agent, message: Buffer) {
  const res = await request(server.urls.https, {
    method: "POST",
    headers: { "content-type": "application/dns-message", accept: "application/dns-message" },
    body: message,
    dispatcher: agent,
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, contentType: res.headers["content-type"], body };
}

/** The answer section without OPT pseudo-records, so `data` and `ttl` are typed. */
function records(section: Answer[] | undefined): RecordAnswer[] {
  return (section ?? []).filter((record): record is RecordAnswer => record.type !== "OPT");
}

function ipv4s(packet: Decoded): string[] {
  return records(packet.answers)
    .filter((a) => a.type === "A")
    .map((a) => a.data as string);
}

/** TCP and UDP handles (listeners and sockets) currently open in this process. */
/**
 * Open sockets and listeners of this process. Only handles: a request still in flight
 * (`TCPConnectWrap` of a connect, a UDP send) also starts with TCP or UDP, and one of the
 * previous test's was once counted here on a loaded machine.
 */
function netHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((name) => name === "TCPSocketWrap" || name === "TCPServerWrap" || name === "UDPWrap").length;
}

/**
 * The handle count once the previous tests' sockets stopped opening and closing (a client
 * socket of the mTLS test may still be connecting or closing when the next test begins,
 * which a loaded CI machine showed as one handle too many).
 */
async function settledHandles(): Promise<number> {
  let last = netHandles();
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = netHandles();
    if (now === last) return now;
    last = now;
  }
  return last;
}

describe("test DNS server", () => {
  it("answers A over UDP, echoing ID, question and flags", async () => {
    const server = await start();
    server.set("API.Test.", "A", ["10.0.0.1", "10.0.0.2"], 120);
    const answer = await udpQuery(server.urls.udp, query("api.test", "A", { id: 4242 }));
    expect(answer.id).toBe(4242);
    expect(answer.rcode).toBe("NOERROR");
    expect(answer.flag_qr && answer.flag_aa && answer.flag_rd && answer.flag_ra).toBe(true);
    expect(answer.questions).toEqual([{ name: "api.test", type: "A", class: "IN" }]);
    expect(ipv4s(answer)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(records(answer.answers)[0]?.ttl).toBe(120);
    expect(answer.additionals).toEqual([]);
  });

  it("adds an OPT record when the query carries EDNS0", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    const answer = await udpQuery(server.urls.udp, query("api.test", "A", { edns: true }));
    const opt = answer.additionals?.find((a): a is OptAnswer => a.type === "OPT");
    expect(opt?.udpPayloadSize).toBe(1232);
  });

  it("answers two pipelined SRV queries on one TCP connection", async () => {
    const server = await start();
    server.set("_http._tcp.api.test", "SRV", [
      { priority: 10, weight: 5, port: 8080, target: "a.api.test" },
      { priority: 20, weight: 0, port: 8081, target: "b.api.test" },
    ]);
    server.set("_grpc._tcp.api.test", "SRV", [{ priority: 0, weight: 1, port: 9090, target: "c.api.test" }]);
    const client = await connectTcp(server.urls.tcp);
    client.send(
      query("_http._tcp.api.test", "SRV", { id: 1 }),
      query("_grpc._tcp.api.test", "SRV", { id: 2 }),
    );
    const first = decode((await client.next()) as Buffer);
    const second = decode((await client.next()) as Buffer);
    expect(first.id).toBe(1);
    expect(records(first.answers).map((a) => a.data as SrvData)).toEqual([
      { priority: 10, weight: 5, port: 8080, target: "a.api.test" },
      { priority: 20, weight: 0, port: 8081, target: "b.api.test" },
    ]);
    expect(second.id).toBe(2);
    expect(records(second.answers).map((a) => (a.data as SrvData).port)).toEqual([9090]);
    expect(server.count({ transport: "tcp" })).toBe(2);
    expect(new Set(server.log.map((entry) => entry.port)).size).toBe(1);
  });

  it("answers AAAA over DNS over TLS, verified against servername localhost", async () => {
    const server = await start();
    server.set("v6.test", "AAAA", ["2001:db8::1"]);
    const client = await connectTls(server.urls.tls, { ca: server.ca, servername: "localhost" });
    expect((client.socket as tls.TLSSocket).authorized).toBe(true);
    client.send(query("v6.test", "AAAA"));
    const answer = decode((await client.next()) as Buffer);
    expect(records(answer.answers).map((a) => a.data)).toEqual(["2001:db8::1"]);
    expect(server.count({ transport: "tls", type: "aaaa" })).toBe(1);
  });

  it("rejects an untrusted certificate: the ca is what makes DoT verification pass", async () => {
    const server = await start();
    await expect(connectTls(server.urls.tls, { servername: "localhost" })).rejects.toThrow(/self.signed/);
  });

  it("answers A over DNS over HTTPS, POST and GET", async () => {
    const server = await start();
    server.set("doh.test", "A", "192.0.2.7");
    const agent = agentFor(server);

    const post = await dohPost(server, agent, query("doh.test", "A"));
    expect(post.status).toBe(200);
    expect(post.contentType).toBe("application/dns-message");
    expect(ipv4s(decode(post.body))).toEqual(["192.0.2.7"]);

    const dns = query("doh.test", "A", { id: 0 }).toString("base64url");
    const get = await request(`${server.urls.https}?dns=${dns}`, {
      headers: { accept: "application/dns-message" },
      dispatcher: agent,
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers["content-type"]).toBe("application/dns-message");
    const answer = decode(Buffer.from(await get.body.arrayBuffer()));
    expect(answer.id).toBe(0);
    expect(ipv4s(answer)).toEqual(["192.0.2.7"]);
    expect(server.count({ transport: "https", name: "DOH.test." })).toBe(2);
  });

  it("answers NXDOMAIN with the SOA and its minimum (RFC 2308)", async () => {
    const server = await start();
    server.soa.ttl = 10;
    server.soa.minimum = 5;
    const answer = await udpQuery(server.urls.udp, query("missing.test", "A"));
    expect(answer.rcode).toBe("NXDOMAIN");
    expect(answer.answers).toEqual([]);
    const [soa] = records(answer.authorities);
    expect(soa?.type).toBe("SOA");
    expect(soa?.ttl).toBe(10);
    expect((soa?.data as SoaData | undefined)?.minimum).toBe(5);
  });

  it("answers NODATA for a name that has other types, and NXDOMAIN once removed", async () => {
    const server = await start();
    server.set("only-v4.test", "A", "10.0.0.1");
    const nodata = await udpQuery(server.urls.udp, query("only-v4.test", "AAAA"));
    expect(nodata.rcode).toBe("NOERROR");
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities?.[0]?.type).toBe("SOA");

    server.remove("only-v4.test", "A");
    expect((await udpQuery(server.urls.udp, query("only-v4.test", "A"))).rcode).toBe("NXDOMAIN");
  });

  it("answers a CNAME alone for other types, without chasing it", async () => {
    const server = await start();
    server.set("a.test", "CNAME", "b.test");
    server.set("b.test", "CNAME", "a.test");
    const answer = await udpQuery(server.urls.udp, query("a.test", "A"));
    expect(answer.answers).toMatchObject([{ type: "CNAME", name: "a.test", data: "b.test" }]);
  });

  it("sets TC with no answers over UDP for `truncate`, but answers over TCP", async () => {
    const server = await start();
    server.set("big.test", "A", "10.0.0.1");
    server.behavior = "truncate";
    const truncated = await udpQuery(server.urls.udp, query("big.test", "A"));
    expect(truncated.flag_tc).toBe(true);
    expect(truncated.answers).toEqual([]);

    const client = await connectTcp(server.urls.tcp);
    client.send(query("big.test", "A"));
    const full = decode((await client.next()) as Buffer);
    expect(full.flag_tc).toBe(false);
    expect(ipv4s(full)).toEqual(["10.0.0.1"]);
  });

  it("truncates a UDP answer larger than the client's payload size", async () => {
    const server = await start();
    const addresses = Array.from({ length: 40 }, (_, i) => `10.0.1.${i}`);
    server.set("many.test", "A", addresses);
    const plain = await udpQuery(server.urls.udp, query("many.test", "A"));
    expect(plain.flag_tc).toBe(true);
    const withEdns = await udpQuery(server.urls.udp, query("many.test", "A", { edns: true }));
    expect(withEdns.flag_tc).toBe(false);
    expect(ipv4s(withEdns)).toHaveLength(40);
  });

  it("sends a forged answer with another ID before the real one for `wrong-id`", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    server.setBehavior("API.test", "wrong-id");
    const [forged, real] = await udpExchange(server.urls.udp, query("api.test", "A", { id: 77 }), 2);
    expect(decode(forged?.message as Buffer).id).not.toBe(77);
    expect(ipv4s(decode(forged?.message as Buffer))).toEqual(["6.6.6.6"]);
    expect(decode(real?.message as Buffer).id).toBe(77);
    expect(ipv4s(decode(real?.message as Buffer))).toEqual(["10.0.0.1"]);
  });

  it("sends a forged answer from a different source port for `wrong-source`", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    server.setBehavior("api.test", "wrong-source");
    const [forged, real] = await udpExchange(server.urls.udp, query("api.test", "A", { id: 78 }), 2);
    expect(forged?.port).not.toBe(portOf(server.urls.udp));
    expect(decode(forged?.message as Buffer).id).toBe(78);
    expect(ipv4s(decode(forged?.message as Buffer))).toEqual(["6.6.6.6"]);
    expect(real?.port).toBe(portOf(server.urls.udp));
    expect(ipv4s(decode(real?.message as Buffer))).toEqual(["10.0.0.1"]);

    server.setBehavior("api.test", undefined);
    expect(ipv4s(await udpQuery(server.urls.udp, query("api.test", "A")))).toEqual(["10.0.0.1"]);
  });

  it("gives no answer within 300 ms when `silent`, on UDP and TCP, but logs the query", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    server.behavior = "silent";
    expect(await udpExchange(server.urls.udp, query("api.test", "A"), 1, 300)).toEqual([]);
    const client = await connectTcp(server.urls.tcp);
    client.send(query("api.test", "A"));
    expect(await client.next(300)).toBeUndefined();
    expect(client.closed).toBe(false);
    expect(server.count({ name: "api.test" })).toBe(2);
  });

  it("replies with undecodable bytes when `malformed`, framed on TCP and as a DoH body", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    server.behavior = "malformed";
    const [datagram] = await udpExchange(server.urls.udp, query("api.test", "A"));
    expect(() => dnsPacket.decode(datagram?.message as Buffer)).toThrow();

    const client = await connectTcp(server.urls.tcp);
    client.send(query("api.test", "A"));
    const framed = (await client.next()) as Buffer;
    expect(framed).toHaveLength(5);
    expect(() => dnsPacket.decode(framed)).toThrow();

    const doh = await dohPost(server, agentFor(server), query("api.test", "A"));
    expect(doh.status).toBe(200);
    expect(() => dnsPacket.decode(doh.body)).toThrow();
  });

  it("answers SERVFAIL and REFUSED, and FORMERR to an undecodable query", async () => {
    const server = await start();
    server.behavior = "servfail";
    expect((await udpQuery(server.urls.udp, query("x.test", "A"))).rcode).toBe("SERVFAIL");
    server.behavior = "refused";
    expect((await udpQuery(server.urls.udp, query("x.test", "A"))).rcode).toBe("REFUSED");
    const garbage = Buffer.from([0x12, 0x34, 0xff, 0xff, 0xff, 0xff]);
    const formerr = await udpQuery(server.urls.udp, garbage);
    expect(formerr.id).toBe(0x1234);
    expect(formerr.rcode).toBe("FORMERR");
  });

  it("delays answers by delayMs", async () => {
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    server.delayMs = 150;
    const started = performance.now();
    await udpQuery(server.urls.udp, query("api.test", "A"));
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("counts queries by name, type and transport, and resets", async () => {
    const server = await start();
    server.set("a.test", "A", "10.0.0.1");
    await udpQuery(server.urls.udp, query("a.test", "A"));
    await udpQuery(server.urls.udp, query("A.TEST.", "AAAA"));
    await udpQuery(server.urls.udp, query("b.test", "A"));
    const client = await connectTcp(server.urls.tcp);
    client.send(query("a.test", "A"));
    await client.next();

    expect(server.count()).toBe(4);
    expect(server.count({ name: "a.test" })).toBe(3);
    expect(server.count({ name: "a.test", type: "A" })).toBe(2);
    expect(server.count({ name: "a.test", type: "A", transport: "udp" })).toBe(1);
    expect(server.count({ transport: "tcp" })).toBe(1);
    expect(server.log.map((entry) => `${entry.transport} ${entry.name} ${entry.type}`)).toEqual([
      "udp a.test A",
      "udp a.test AAAA",
      "udp b.test A",
      "tcp a.test A",
    ]);
    server.resetLog();
    expect(server.count()).toBe(0);
    expect(server.log).toEqual([]);
  });

  it("keeps counts but no log with keepLog: false", async () => {
    const server = await start({ keepLog: false });
    await udpQuery(server.urls.udp, query("a.test", "A"));
    expect(server.log).toEqual([]);
    expect(server.count({ name: "a.test", transport: "udp" })).toBe(1);
  });

  it("with requireClientCert, rejects a client without a certificate and accepts one with it", async () => {
    const server = await start({ requireClientCert: true });
    server.set("mtls.test", "A", "10.9.9.9");
    const client = server.client;
    if (!client) throw new Error("no client certificate");

    // TLS 1.3: the handshake completes on the client side, then the server's alert arrives.
    const anonymous = await connectTls(server.urls.tls, { ca: server.ca, servername: "localhost" }).catch(
      () => undefined,
    );
    if (anonymous) {
      anonymous.send(query("mtls.test", "A"));
      expect(await anonymous.next()).toBeUndefined();
      expect(anonymous.closed).toBe(true);
    }
    await expect(dohPost(server, agentFor(server), query("mtls.test", "A"))).rejects.toThrow();

    const authenticated = await connectTls(server.urls.tls, {
      ca: server.ca,
      servername: "localhost",
      cert: client.cert,
      key: client.key,
    });
    authenticated.send(query("mtls.test", "A"));
    expect(ipv4s(decode((await authenticated.next()) as Buffer))).toEqual(["10.9.9.9"]);
    const doh = await dohPost(
      server,
      agentFor(server, { cert: client.cert, key: client.key }),
      query("mtls.test", "A"),
    );
    expect(ipv4s(decode(doh.body))).toEqual(["10.9.9.9"]);
  });

  it("close() drops open TCP, TLS and DoH keep-alive clients and pending answers, leaving no handles", async () => {
    const before = await settledHandles();
    const server = await start();
    server.set("api.test", "A", "10.0.0.1");
    expect(netHandles()).toBe(before + 5); // UDP, spoofing UDP, TCP, TLS and HTTPS listeners

    const tcp = await connectTcp(server.urls.tcp);
    tcp.send(query("api.test", "A"));
    await tcp.next();
    const dot = await connectTls(server.urls.tls, { ca: server.ca, servername: "localhost" });
    dot.send(query("api.test", "A"));
    await dot.next();
    const agent = agentFor(server);
    expect((await dohPost(server, agent, query("api.test", "A"))).status).toBe(200); // connection kept alive
    // A half-open handshake, a silent DoH request and a delayed UDP answer, all pending.
    const raw = net.connect(portOf(server.urls.tls), "127.0.0.1");
    raw.on("error", () => {});
    cleanups.push(() => raw.destroy());
    await new Promise((resolve) => raw.once("connect", resolve));
    server.setBehavior("silent.test", "silent");
    const held = dohPost(server, agent, query("silent.test", "A")).catch((err: Error) => err);
    server.delayMs = 60_000;
    const udpPending = udpExchange(server.urls.udp, query("api.test", "A"), 1, 200);
    await expect.poll(() => server.count({ name: "silent.test" })).toBe(1);
    await expect.poll(() => server.count({ name: "api.test", transport: "udp" })).toBe(1);

    const started = performance.now();
    await server.close();
    expect(performance.now() - started).toBeLessThan(1000);
    await Promise.all([tcp.whenClosed(), dot.whenClosed(), whenClosed(raw)]);
    expect(await held).toBeInstanceOf(Error);
    expect(await udpPending).toEqual([]);
    for (const cleanup of cleanups.splice(0)) await cleanup(); // destroys the agent and client sockets
    await expect.poll(netHandles).toBe(before);
  });
});
