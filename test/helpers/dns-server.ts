/**
 * A real DNS server on loopback for tests and benchmarks of Portico's stub resolver.
 *
 * One zone is served over four transports: UDP, TCP (RFC 7766: 2-byte length prefix, several
 * pipelined queries per connection), DNS over TLS (RFC 7858: TLS plus the same framing) and DNS
 * over HTTPS (RFC 8484: HTTP/1.1 POST and GET on `/dns-query`). Every listener binds 127.0.0.1
 * port 0. Misbehaviours (SERVFAIL, truncation, spoofed answers, garbage, silence, delay) are
 * switched on globally or per name. All encoding and decoding goes through dns-packet.
 *
 * Close every server in `afterEach`: `close()` also drops open client connections.
 */
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import type http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import type { Answer, DecodedPacket, OptAnswer, Question } from "dns-packet";
import dnsPacket from "dns-packet";
import { generateCert } from "./certs.js";

/** Record types the test zone holds. */
export type RecordType = "A" | "AAAA" | "SRV" | "CNAME";

/** One SRV record's data (RFC 2782), as dns-packet encodes it. */
export interface SrvTarget {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** How the server treats a query; see each member. */
export type Behavior =
  /** Answer from the zone (default). */
  | "answer"
  /** RCODE SERVFAIL, no answers. */
  | "servfail"
  /** RCODE REFUSED, no answers. */
  | "refused"
  /** NXDOMAIN with the SOA in the authority section, even for names that exist. */
  | "nxdomain"
  /** Over UDP: TC flag set and no answers. TCP, DoT and DoH answer normally. */
  | "truncate"
  /** Over UDP: a forged answer with a different ID (A 6.6.6.6 / AAAA ::6) first, the real one 5 ms later. */
  | "wrong-id"
  /** Over UDP: a forged answer with the right ID from another socket (other source port) first, the real one 5 ms later. */
  | "wrong-source"
  /** Bytes dns-packet cannot decode (the query ID then 3 random bytes); framed on TCP/DoT, a 200 body on DoH. */
  | "malformed"
  /** Never answer: TCP/DoT keep the connection open, DoH holds the request until `close()`. */
  | "silent";

/** One query the server received. */
export interface QueryLogEntry {
  transport: "udp" | "tcp" | "tls" | "https";
  /** Question name, lowercased, without the trailing dot. */
  name: string;
  /** Question type as dns-packet names it (`A`, `SRV`, `UNKNOWN_65280`, ...). */
  type: string;
  /** DNS message ID of the query. */
  id: number;
  /** Client source port. */
  port: number;
  /** Arrival time, `Date.now()` milliseconds. */
  time: number;
}

/** A running test DNS server. */
export interface TestDnsServer {
  /**
   * Where each transport listens: `udp://127.0.0.1:P`, `tcp://127.0.0.1:P`, `tls://127.0.0.1:P` and
   * `https://127.0.0.1:P/dns-query`. TCP takes the UDP port number when it is free.
   */
  urls: { udp: string; tcp: string; tls: string; https: string };
  /** PEM certificate clients must trust (`ca`) for tls and https; valid for localhost, dns.test, 127.0.0.1, ::1. */
  ca: string;
  /** With `requireClientCert`: a client certificate and key the server accepts. */
  client?: { cert: string; key: string };
  /**
   * Replace the RRset for name+type. data: A -> IPv4 strings, AAAA -> IPv6 strings, CNAME -> one
   * target name, SRV -> SrvTarget[]. An empty array removes the RRset. ttl in seconds, default 60.
   */
  set(name: string, type: RecordType, data: string | string[] | SrvTarget[], ttl?: number): void;
  /**
   * Remove the name (all types if type omitted). A name with no records at all answers NXDOMAIN;
   * a name with other types but not the queried one answers NOERROR with no answers (NODATA);
   * both carry the SOA in the authority section.
   */
  remove(name: string, type?: RecordType): void;
  /** SOA of negative answers (RFC 2308): `ttl` of the SOA record and its `minimum` field, seconds; both default 30. */
  soa: { ttl: number; minimum: number };
  /** Behavior for every name without an override; default "answer". */
  behavior: Behavior;
  /** Per-name behavior, taking precedence over `behavior`; undefined clears it. Case-insensitive, trailing dot ignored. */
  setBehavior(name: string, behavior: Behavior | undefined): void;
  /** Delay before every answer, milliseconds; default 0. */
  delayMs: number;
  /** Queries received on all transports, in order (empty when started with `keepLog: false`). */
  log: QueryLogEntry[];
  /** Number of queries received, optionally filtered; works with `keepLog: false` too. */
  count(filter?: { name?: string; type?: string; transport?: QueryLogEntry["transport"] }): number;
  /** Forget the log and the counts. */
  resetLog(): void;
  /** Close every listener and client connection and cancel pending delayed or silent answers. */
  close(): Promise<void>;
}

/** Options for `startDnsServer`. */
export interface StartDnsServerOptions {
  /** DoT and DoH demand a client certificate (mTLS); the accepted one is in `client`. Default false. */
  requireClientCert?: boolean;
  /** Keep every query in `log`; false keeps only the counts behind `count()` (benchmarks). Default true. */
  keepLog?: boolean;
}

type Transport = QueryLogEntry["transport"];
type Reply = (message: Buffer) => void;
type RRset =
  | { type: "A" | "AAAA" | "CNAME"; ttl: number; values: string[] }
  | { type: "SRV"; ttl: number; values: SrvTarget[] };

const RCODE_NOERROR = 0;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;
const FLAG_OPCODE = 0x7800;
/** Gap between a forged UDP answer and the real one, milliseconds. */
const FORGED_GAP_MS = 5;
/** Our EDNS0 UDP payload size: the DNS Flag Day 2020 value. */
const EDNS_UDP_PAYLOAD = 1232;
/** RFC 1035 §4.2.1: UDP messages are limited to 512 bytes without EDNS0. */
const PLAIN_UDP_PAYLOAD = 512;
const DNS_MESSAGE = "application/dns-message";
const EMPTY = Buffer.alloc(0);
const noop = (): void => {};

/** Lowercase, without the trailing dot: how names are stored and compared. */
function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

function hasOpt(query: DecodedPacket): boolean {
  return query.additionals?.some((record) => record.type === "OPT") ?? false;
}

/** Largest UDP answer the client accepts: 512 without EDNS0, else its size capped at ours. */
function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((record): record is OptAnswer => record.type === "OPT");
  if (!opt) return PLAIN_UDP_PAYLOAD;
  return Math.max(PLAIN_UDP_PAYLOAD, Math.min(opt.udpPayloadSize, EDNS_UDP_PAYLOAD));
}

/** A header-only response (no question), for queries we cannot parse. */
function headerOnly(id: number, rcode: number): Buffer {
  return dnsPacket.encode({ type: "response", id, flags: dnsPacket.RECURSION_AVAILABLE | rcode });
}

function toAnswers(owner: string, rrset: RRset): Answer[] {
  if (rrset.type === "SRV") {
    return rrset.values.map((data) => ({ type: "SRV", name: owner, class: "IN", ttl: rrset.ttl, data }));
  }
  const type = rrset.type;
  return rrset.values.map((data) => ({ type, name: owner, class: "IN", ttl: rrset.ttl, data }));
}

/** What a spoofer would inject: an answer pointing at 6.6.6.6 / ::6 / evil.test. */
function forgedAnswers(question: Question): Answer[] {
  const base = { name: question.name, class: "IN" as const, ttl: 60 };
  switch (question.type) {
    case "AAAA":
      return [{ ...base, type: "AAAA", data: "::6" }];
    case "SRV":
      return [{ ...base, type: "SRV", data: { priority: 0, weight: 0, port: 6666, target: "evil.test" } }];
    case "CNAME":
      return [{ ...base, type: "CNAME", data: "evil.test" }];
    default:
      return [{ ...base, type: "A", data: "6.6.6.6" }];
  }
}

function validateRecords(type: RecordType, values: ReadonlyArray<string | SrvTarget>): void {
  for (const value of values) {
    const ok =
      type === "A"
        ? typeof value === "string" && net.isIPv4(value)
        : type === "AAAA"
          ? typeof value === "string" && net.isIPv6(value)
          : type === "CNAME"
            ? typeof value === "string" && value.length > 0
            : typeof value === "object" &&
              [value.priority, value.weight, value.port].every(
                (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
              ) &&
              typeof value.target === "string";
    if (!ok) throw new TypeError(`dns-server: invalid ${type} data ${JSON.stringify(value)}`);
  }
  if (type === "CNAME" && values.length !== 1) {
    throw new TypeError(`dns-server: a CNAME RRset holds exactly one name, got ${values.length}`);
  }
}

function listenTcp(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function bindUdp(socket: dgram.Socket, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve(socket.address().port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}

function closeUdp(socket: dgram.Socket, bound: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (!bound) return resolve();
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

class DnsServer implements TestDnsServer {
  urls = { udp: "", tcp: "", tls: "", https: "" };
  readonly ca: string;
  readonly client?: { cert: string; key: string };
  soa = { ttl: 30, minimum: 30 };
  behavior: Behavior = "answer";
  delayMs = 0;
  readonly log: QueryLogEntry[] = [];

  private readonly keepLog: boolean;
  /** name -> type -> RRset. */
  private readonly zone = new Map<string, Map<string, RRset>>();
  private readonly behaviors = new Map<string, Behavior>();
  /** `transport name type` -> count, so `count()` works without the log. */
  private readonly counts = new Map<
    string,
    { transport: Transport; name: string; type: string; n: number }
  >();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<net.Socket>();
  private serial = 1;
  private closing: Promise<void> | undefined;
  private readonly udp = dgram.createSocket({
    type: "udp4",
    recvBufferSize: 1 << 22,
    sendBufferSize: 1 << 22,
  });
  /** Second socket, the "off-path attacker" of `wrong-source`. */
  private readonly spoof = dgram.createSocket("udp4");
  private udpBound = false;
  private spoofBound = false;
  private readonly tcpServer: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly httpsServer: https.Server;

  constructor(
    server: { key: string; cert: string },
    client: { key: string; cert: string } | undefined,
    keepLog: boolean,
  ) {
    this.ca = server.cert;
    this.keepLog = keepLog;
    if (client) this.client = { cert: client.cert, key: client.key };
    const tlsOptions: tls.TlsOptions = {
      key: server.key,
      cert: server.cert,
      ...(client ? { requestCert: true, rejectUnauthorized: true, ca: client.cert } : {}),
    };

    this.udp.on("error", noop);
    this.spoof.on("error", noop);
    this.udp.on("message", (message, remote) => {
      const send: Reply = (out) => this.sendUdp(this.udp, out, remote);
      this.handleMessage(message, "udp", remote.port, send, (out) => this.sendUdp(this.spoof, out, remote));
    });

    this.tcpServer = net.createServer((socket) => this.serveStream(socket, "tcp"));
    this.tcpServer.on("connection", (socket) => this.track(socket));
    this.tcpServer.on("error", noop);

    this.tlsServer = tls.createServer(tlsOptions, (socket) => {
      this.track(socket);
      this.serveStream(socket, "tls");
    });
    // Track the raw socket too: a client stuck in the handshake has no TLSSocket yet.
    this.tlsServer.on("connection", (socket) => this.track(socket));
    this.tlsServer.on("tlsClientError", (_err, socket) => socket.destroy());
    this.tlsServer.on("error", noop);

    this.httpsServer = https.createServer(tlsOptions, (req, res) => this.serveHttps(req, res));
    this.httpsServer.on("connection", (socket) => this.track(socket as net.Socket));
    this.httpsServer.on("secureConnection", (socket) => this.track(socket));
    this.httpsServer.on("tlsClientError", (_err, socket) => socket.destroy());
    this.httpsServer.on("clientError", (_err, socket) => socket.destroy());
    this.httpsServer.on("error", noop);
  }

  /**
   * Bind every listener. UDP and TCP share one port number, as on a real nameserver (a
   * truncated UDP answer is retried over TCP on the same port): the OS picks a TCP port, and
   * UDP takes the same number; when another process holds it for UDP, another is picked.
   * (Taking the UDP port first and hoping TCP's was free failed on a busy CI machine.)
   */
  async listen(): Promise<void> {
    let udpPort = 0;
    let tcpPort = 0;
    for (let attempt = 0; attempt < 20 && !this.udpBound; attempt++) {
      tcpPort = await listenTcp(this.tcpServer, 0);
      try {
        udpPort = await bindUdp(this.udp, tcpPort);
        this.udpBound = true;
      } catch {
        await closeServer(this.tcpServer);
      }
    }
    if (!this.udpBound) throw new Error("test DNS server: no port free for both UDP and TCP after 20 tries");
    await bindUdp(this.spoof);
    this.spoofBound = true;
    const tlsPort = await listenTcp(this.tlsServer, 0);
    const httpsPort = await listenTcp(this.httpsServer, 0);
    this.urls = {
      udp: `udp://127.0.0.1:${udpPort}`,
      tcp: `tcp://127.0.0.1:${tcpPort}`,
      tls: `tls://127.0.0.1:${tlsPort}`,
      https: `https://127.0.0.1:${httpsPort}/dns-query`,
    };
  }

  set(name: string, type: RecordType, data: string | string[] | SrvTarget[], ttl = 60): void {
    const values: ReadonlyArray<string | SrvTarget> = Array.isArray(data) ? data : [data];
    if (values.length === 0) {
      this.remove(name, type);
      return;
    }
    validateRecords(type, values);
    if (!Number.isInteger(ttl) || ttl < 0) throw new TypeError(`dns-server: invalid ttl ${ttl}`);
    const key = normalizeName(name);
    let rrsets = this.zone.get(key);
    if (!rrsets) {
      rrsets = new Map();
      this.zone.set(key, rrsets);
    }
    const rrset: RRset =
      type === "SRV"
        ? {
            type,
            ttl,
            values: (values as SrvTarget[]).map((v) => ({ ...v, target: normalizeName(v.target) })),
          }
        : type === "CNAME"
          ? { type, ttl, values: [normalizeName(values[0] as string)] }
          : { type, ttl, values: [...(values as string[])] };
    rrsets.set(type, rrset);
    this.serial++;
  }

  remove(name: string, type?: RecordType): void {
    const key = normalizeName(name);
    const rrsets = this.zone.get(key);
    if (!rrsets) return;
    if (type === undefined) this.zone.delete(key);
    else {
      rrsets.delete(type);
      if (rrsets.size === 0) this.zone.delete(key);
    }
    this.serial++;
  }

  setBehavior(name: string, behavior: Behavior | undefined): void {
    if (behavior === undefined) this.behaviors.delete(normalizeName(name));
    else this.behaviors.set(normalizeName(name), behavior);
  }

  count(filter: { name?: string; type?: string; transport?: Transport } = {}): number {
    const name = filter.name === undefined ? undefined : normalizeName(filter.name);
    const type = filter.type?.toUpperCase();
    let total = 0;
    for (const c of this.counts.values()) {
      if (name !== undefined && c.name !== name) continue;
      if (type !== undefined && c.type !== type) continue;
      if (filter.transport !== undefined && c.transport !== filter.transport) continue;
      total += c.n;
    }
    return total;
  }

  resetLog(): void {
    this.log.length = 0;
    this.counts.clear();
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.httpsServer.closeAllConnections();
    await Promise.all([
      closeServer(this.tcpServer),
      closeServer(this.tlsServer),
      closeServer(this.httpsServer),
      closeUdp(this.udp, this.udpBound),
      closeUdp(this.spoof, this.spoofBound),
    ]);
    // Close callbacks run before libuv releases the handles (two loop turns); wait for that, so a
    // leak check right after `await close()` sees none of ours.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  private track(socket: net.Socket): void {
    socket.on("error", noop);
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  /** Run `fn` after `ms` unless the server closes first. */
  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closing) this.guard(fn);
    }, ms);
    this.timers.add(timer);
  }

  /** Nothing may throw out of an event handler: a test server must not crash the test process. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      // A bug in this helper or an unencodable echo: the client sees a timeout, never a crash.
    }
  }

  private sendUdp(socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    if (this.closing) return;
    try {
      socket.send(message, remote.port, remote.address, noop);
    } catch {
      // socket closed under us
    }
  }

  /** RFC 7766 §8 / RFC 7858 §3.3: each message is preceded by its 2-byte length; pipelining allowed. */
  private serveStream(socket: net.Socket, transport: "tcp" | "tls"): void {
    socket.on("error", noop);
    socket.setNoDelay(true);
    const port = socket.remotePort ?? 0;
    const reply: Reply = (message) => {
      if (socket.destroyed || !socket.writable) return;
      const frame = Buffer.allocUnsafe(2 + message.length);
      frame.writeUInt16BE(message.length, 0);
      message.copy(frame, 2);
      socket.write(frame);
    };
    let pending: Buffer = EMPTY;
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      while (pending.length - offset >= 2) {
        const length = pending.readUInt16BE(offset);
        if (pending.length - offset - 2 < length) break;
        const message = pending.subarray(offset + 2, offset + 2 + length);
        offset += 2 + length;
        this.handleMessage(message, transport, port, reply);
      }
      pending = offset === pending.length ? EMPTY : pending.subarray(offset);
    });
  }

  /** RFC 8484 §4.1: POST with an application/dns-message body, or GET with `?dns=<base64url>`. */
  private serveHttps(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on("error", noop);
    res.on("error", noop);
    const fail = (status: number, headers: Record<string, string> = {}): void => {
      if (res.headersSent) return;
      res.writeHead(status, { "content-length": 0, ...headers });
      res.end();
    };
    const reply: Reply = (message) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(200, { "content-type": DNS_MESSAGE, "content-length": message.length });
      res.end(message);
    };
    const port = req.socket.remotePort ?? 0;
    const serve = (raw: Buffer): void => {
      // Fewer than 2 bytes carry no ID for a FORMERR: answer at the HTTP layer instead.
      if (raw.length < 2) fail(400);
      else this.handleMessage(raw, "https", port, reply);
    };
    const url = new URL(req.url ?? "/", "https://localhost");
    const contentType = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
    if (url.pathname !== "/dns-query") {
      req.resume();
      fail(404);
    } else if (req.method === "GET") {
      req.resume();
      const dns = url.searchParams.get("dns");
      if (dns) serve(Buffer.from(dns, "base64url"));
      else fail(400);
    } else if (req.method !== "POST") {
      req.resume();
      fail(405, { allow: "GET, POST" });
    } else if (contentType !== DNS_MESSAGE) {
      req.resume();
      fail(415);
    } else {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 65535) chunks.push(chunk);
      });
      req.on("end", () => {
        if (size > 65535) fail(413);
        else this.guard(() => serve(Buffer.concat(chunks)));
      });
    }
  }

  /** Decode, log, then answer according to the behavior (after `delayMs`). */
  private handleMessage(raw: Buffer, transport: Transport, port: number, reply: Reply, spoof?: Reply): void {
    this.guard(() => {
      let query: DecodedPacket;
      try {
        query = dnsPacket.decode(raw);
      } catch {
        if (raw.length >= 2) reply(headerOnly(raw.readUInt16BE(0), RCODE_FORMERR));
        return;
      }
      if (query.type === "response") return; // never answer an answer
      const question = query.questions?.[0];
      const id = query.id ?? 0;
      if (!question) {
        reply(headerOnly(id, RCODE_FORMERR));
        return;
      }
      const name = normalizeName(question.name);
      this.record(transport, name, question.type, id, port);
      const behavior = (this.behaviors.size > 0 ? this.behaviors.get(name) : undefined) ?? this.behavior;
      if (behavior === "silent") return;
      const deliver = (): void => this.deliver(query, question, name, behavior, transport, reply, spoof);
      if (this.delayMs > 0) this.later(this.delayMs, deliver);
      else deliver();
    });
  }

  private record(transport: Transport, name: string, type: string, id: number, port: number): void {
    if (this.keepLog) this.log.push({ transport, name, type, id, port, time: Date.now() });
    const key = `${transport} ${name} ${type}`;
    const entry = this.counts.get(key);
    if (entry) entry.n++;
    else this.counts.set(key, { transport, name, type, n: 1 });
  }

  /** Send the answer `behavior` calls for; the UDP spoofing behaviors send a forgery first. */
  private deliver(
    query: DecodedPacket,
    question: Question,
    name: string,
    behavior: Behavior,
    transport: Transport,
    reply: Reply,
    spoof: Reply | undefined,
  ): void {
    const realAnswer = (): void => reply(this.answer(query, question, name, transport));
    if (transport === "udp" && behavior === "wrong-id") {
      const otherId = ((query.id ?? 0) ^ 0x5a5a) & 0xffff;
      reply(this.encode(query, RCODE_NOERROR, forgedAnswers(question), [], 0, otherId));
      this.later(FORGED_GAP_MS, realAnswer);
    } else if (transport === "udp" && behavior === "wrong-source" && spoof) {
      spoof(this.encode(query, RCODE_NOERROR, forgedAnswers(question), []));
      this.later(FORGED_GAP_MS, realAnswer);
    } else {
      reply(this.message(query, question, name, behavior, transport));
    }
  }

  /** The single message `behavior` calls for. */
  private message(
    query: DecodedPacket,
    question: Question,
    name: string,
    behavior: Behavior,
    transport: Transport,
  ): Buffer {
    switch (behavior) {
      case "servfail":
        return this.encode(query, RCODE_SERVFAIL, [], []);
      case "refused":
        return this.encode(query, RCODE_REFUSED, [], []);
      case "nxdomain":
        return this.encode(query, RCODE_NXDOMAIN, [], [this.soaRecord(name)]);
      case "malformed": {
        // Shorter than the 12-byte header, so undecodable; it starts with the ID so a client
        // matching replies by ID still takes it as the reply to its query.
        const garbage = randomBytes(5);
        garbage.writeUInt16BE(query.id ?? 0, 0);
        return garbage;
      }
      case "truncate":
        if (transport === "udp")
          return this.encode(query, RCODE_NOERROR, [], [], dnsPacket.TRUNCATED_RESPONSE);
        return this.answer(query, question, name, transport);
      default:
        return this.answer(query, question, name, transport);
    }
  }

  /** The zone's answer. A CNAME answers any other type on its own; the client follows the chain. */
  private answer(query: DecodedPacket, question: Question, name: string, transport: Transport): Buffer {
    const rrsets = this.zone.get(name);
    if (!rrsets) return this.encode(query, RCODE_NXDOMAIN, [], [this.soaRecord(name)]);
    const rrset = (question.type !== "CNAME" ? rrsets.get("CNAME") : undefined) ?? rrsets.get(question.type);
    // RFC 2308 §2.2: NODATA is NOERROR with no answers and the SOA in the authority section.
    if (!rrset) return this.encode(query, RCODE_NOERROR, [], [this.soaRecord(name)]);
    const message = this.encode(query, RCODE_NOERROR, toAnswers(question.name, rrset), []);
    // RFC 1035 §4.2.1 / RFC 6891 §7: too big for the client's UDP payload size -> TC, retry over TCP.
    if (transport === "udp" && message.length > udpLimit(query)) {
      return this.encode(query, RCODE_NOERROR, [], [], dnsPacket.TRUNCATED_RESPONSE);
    }
    return message;
  }

  /** SOA of negative answers, owned by the query's last label so it is always an ancestor. */
  private soaRecord(name: string): Answer {
    const apex = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : name || ".";
    const suffix = apex === "." ? "" : `.${apex}`;
    return {
      type: "SOA",
      name: apex,
      class: "IN",
      ttl: this.soa.ttl,
      data: {
        mname: `ns${suffix}`,
        rname: `hostmaster${suffix}`,
        serial: this.serial,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        // RFC 2308 §5: resolvers cache the negative answer for min(SOA TTL, minimum).
        minimum: this.soa.minimum,
      },
    };
  }

  /** A response echoing the question: QR, AA, RA set, opcode and RD copied, OPT if the query had one. */
  private encode(
    query: DecodedPacket,
    rcode: number,
    answers: Answer[],
    authorities: Answer[],
    extraFlags = 0,
    id = query.id ?? 0,
  ): Buffer {
    const copied = (query.flags ?? 0) & (FLAG_OPCODE | dnsPacket.RECURSION_DESIRED);
    const additionals: Answer[] = hasOpt(query)
      ? [
          {
            type: "OPT",
            name: ".",
            udpPayloadSize: EDNS_UDP_PAYLOAD,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [];
    return dnsPacket.encode({
      type: "response",
      id,
      flags: copied | dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | extraFlags | rcode,
      questions: query.questions,
      answers,
      authorities,
      additionals,
    });
  }
}

/**
 * Start a DNS server on 127.0.0.1 serving one (initially empty) zone over UDP, TCP, DoT and DoH,
 * with a fresh self-signed certificate (`ca`). Close it in `afterEach`.
 */
export async function startDnsServer(opts: StartDnsServerOptions = {}): Promise<TestDnsServer> {
  const [serverCert, clientCert] = await Promise.all([
    generateCert(),
    opts.requireClientCert ? generateCert({ commonName: "dns-test-client" }) : undefined,
  ]);
  const server = new DnsServer(serverCert, clientCert, opts.keepLog ?? true);
  try {
    await server.listen();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
