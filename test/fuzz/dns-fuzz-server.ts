/**
 * A scriptable DNS server on loopback for the DNS fuzzer: UDP and TCP on one port number (so a
 * truncated UDP answer is retried over TCP on the same port, as the resolver does), answering
 * each query with whatever the `responder` returns, byte for byte: several messages, late ones,
 * from a second UDP socket (another source port), with a wrong TCP length prefix, unframed, in
 * pieces. It keeps a log of every query and of what the client could parse (each UDP datagram;
 * each frame a TCP client would cut from the byte stream sent on its connection), so the fuzzer
 * can tell which answers a correct resolver may accept.
 */
import dgram from "node:dgram";
import net from "node:net";
import type { DecodedPacket } from "dns-packet";
import dnsPacket from "dns-packet";

/** Where a message came in or goes out: `udp:PORT` (client source port) or `tcp:N` (connection). */
export type Channel = string;

/** One query received. */
export interface ReceivedQuery {
  transport: "udp" | "tcp";
  channel: Channel;
  raw: Buffer;
  packet: DecodedPacket;
}

/** One message to send back. */
export interface Delivery {
  bytes: Buffer;
  /** Milliseconds after the query (0: at once). */
  delayMs?: number;
  /** UDP: send from the second socket, whose source port is not the nameserver's. */
  spoof?: boolean;
  /** TCP: add this to the 2-byte length prefix (the frame lies about its length). */
  lengthDelta?: number;
  /** TCP: write the bytes with no length prefix at all. */
  unframed?: boolean;
  /** TCP: write the frame in pieces cut at these offsets, 1 ms apart. */
  splitAt?: number[];
  /** TCP: close the connection (FIN) after this message. */
  closeAfter?: boolean;
}

/** A message as the client would parse it. */
export interface ParsedByClient {
  channel: Channel;
  bytes: Buffer;
  /** Sent from the spoofing socket: no correct client accepts it. */
  spoofed: boolean;
}

/** Decides the answers to a query. */
export type Responder = (query: ReceivedQuery) => Delivery[];

const noop = (): void => {};

/** The frames a TCP client cuts from a connection's byte stream, in order (RFC 7766 §8 framing). */
class StreamView {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (bytes: Buffer) => void) {}

  push(bytes: Buffer): void {
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      this.onFrame(Buffer.from(this.pending.subarray(2, 2 + length)));
      this.pending = this.pending.subarray(2 + length);
    }
  }
}

export class FuzzDnsServer {
  port = 0;
  responder: Responder = () => [];
  /** Queries received since the last `takeLog`. */
  private queries: ReceivedQuery[] = [];
  /** Messages the client could parse since the last `takeLog`. */
  private parsed: ParsedByClient[] = [];
  private readonly udp = dgram.createSocket("udp4");
  private readonly spoof = dgram.createSocket("udp4");
  private readonly tcp = net.createServer((socket) => this.serveTcp(socket));
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private connections = 0;
  private closed = false;

  /** Bind UDP and TCP to one free port number on 127.0.0.1 (the OS picks it), and the spoofer anywhere. */
  static async start(): Promise<FuzzDnsServer> {
    const server = new FuzzDnsServer();
    await server.listen();
    return server;
  }

  private async listen(): Promise<void> {
    this.udp.on("error", noop);
    this.spoof.on("error", noop);
    this.tcp.on("error", noop);
    this.udp.on("message", (raw, remote) => this.onUdp(raw, remote));
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await new Promise<number>((resolve, reject) => {
        this.tcp.once("error", reject);
        this.tcp.listen(0, "127.0.0.1", () => {
          this.tcp.off("error", reject);
          resolve((this.tcp.address() as net.AddressInfo).port);
        });
      });
      const bound = await new Promise<boolean>((resolve) => {
        const onError = (): void => resolve(false);
        this.udp.once("error", onError);
        this.udp.bind(port, "127.0.0.1", () => {
          this.udp.off("error", onError);
          resolve(true);
        });
      });
      if (bound) {
        this.port = port;
        await new Promise<void>((resolve) => this.spoof.bind(0, "127.0.0.1", resolve));
        return;
      }
      await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    }
    throw new Error("fuzz DNS server: no port free for both UDP and TCP after 20 tries");
  }

  /** Everything received and parseable by clients since the last call; the log starts afresh. */
  takeLog(): { queries: ReceivedQuery[]; parsed: ParsedByClient[] } {
    const log = { queries: this.queries, parsed: this.parsed };
    this.queries = [];
    this.parsed = [];
    return log;
  }

  /** Resolves once no delayed message is waiting to be sent. */
  async flushed(): Promise<void> {
    while (this.timers.size > 0) await new Promise((resolve) => setTimeout(resolve, 2));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.spoof.close(() => resolve())),
    ]);
  }

  private later(ms: number, fn: () => void): void {
    if (ms <= 0) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(timer);
  }

  private decodeQuery(raw: Buffer): DecodedPacket | undefined {
    try {
      const packet = dnsPacket.decode(raw);
      return packet.type === "query" ? packet : undefined;
    } catch {
      return undefined;
    }
  }

  private onUdp(raw: Buffer, remote: dgram.RemoteInfo): void {
    const packet = this.decodeQuery(raw);
    if (!packet || this.closed) return;
    const query: ReceivedQuery = { transport: "udp", channel: `udp:${remote.port}`, raw, packet };
    this.queries.push(query);
    for (const delivery of this.responder(query)) {
      this.later(delivery.delayMs ?? 0, () => {
        const from = delivery.spoof ? this.spoof : this.udp;
        this.parsed.push({ channel: query.channel, bytes: delivery.bytes, spoofed: delivery.spoof === true });
        from.send(delivery.bytes, remote.port, remote.address, noop);
      });
    }
  }

  private serveTcp(socket: net.Socket): void {
    const channel = `tcp:${++this.connections}`;
    this.sockets.add(socket);
    socket.on("error", noop);
    socket.on("close", () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    // What the client will cut from the bytes sent on this connection.
    const view = new StreamView((bytes) => this.parsed.push({ channel, bytes, spoofed: false }));
    const write = (bytes: Buffer): void => {
      if (socket.destroyed || !socket.writable) return;
      view.push(bytes);
      socket.write(bytes);
    };
    let pending: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const raw = Buffer.from(pending.subarray(2, 2 + length));
        pending = pending.subarray(2 + length);
        const packet = this.decodeQuery(raw);
        if (!packet) continue;
        const query: ReceivedQuery = { transport: "tcp", channel, raw, packet };
        this.queries.push(query);
        for (const delivery of this.responder(query)) {
          this.later(delivery.delayMs ?? 0, () => this.sendFrame(socket, delivery, write));
        }
      }
    });
  }

  private sendFrame(socket: net.Socket, delivery: Delivery, write: (bytes: Buffer) => void): void {
    let frame = delivery.bytes;
    if (!delivery.unframed) {
      frame = Buffer.alloc(2 + delivery.bytes.length);
      frame.writeUInt16BE((delivery.bytes.length + (delivery.lengthDelta ?? 0)) & 0xffff, 0);
      delivery.bytes.copy(frame, 2);
    }
    const cuts = [...new Set((delivery.splitAt ?? []).map((at) => at % (frame.length + 1)))]
      .filter((at) => at > 0 && at < frame.length)
      .sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const at of cuts) {
      pieces.push(frame.subarray(from, at));
      from = at;
    }
    pieces.push(frame.subarray(from));
    pieces.forEach((piece, i) => {
      this.later(i, () => {
        write(piece);
        if (i === pieces.length - 1 && delivery.closeAfter) socket.end();
      });
    });
  }
}
