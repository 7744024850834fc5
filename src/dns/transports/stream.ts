/**
 * DNS over TCP (RFC 7766) and over TLS (RFC 7858): each message framed by a two-byte length,
 * one connection per nameserver reused for every query and pipelined (several queries in
 * flight, answers matched by ID, in any order). The connection is opened on first use,
 * closed after `idleMs` without queries, and reopened when the server has closed it.
 */
import { isIP, type Socket, connect as tcpConnect } from "node:net";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { DnsError } from "../errors.js";
import { answersQuestion, decodeResponse, encodeQuery, type Response, randomId } from "../message.js";
import type { Question } from "../types.js";
import { watchHandshake } from "./plain-probe.js";
import type { Endpoint, Transport, TransportEvents } from "./transport.js";

interface Pending {
  question: Question;
  resolve(response: Response): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Close a connection that carried no query for this long (RFC 7766 §6.2.3 leaves it to clients). */
const DEFAULT_IDLE_MS = 10_000;

export class StreamTransport implements Transport {
  private socket: Socket | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, Pending>();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly kind: "tcp" | "tls",
    private readonly endpoint: Endpoint,
    private readonly events: TransportEvents,
    private readonly idleMs = DEFAULT_IDLE_MS,
  ) {}

  exchange(question: Question, timeoutMs: number): Promise<Response> {
    const { url } = this.endpoint;
    let id = randomId();
    while (this.pending.has(id)) id = randomId();
    const query = encodeQuery(question, id);
    const frame = Buffer.allocUnsafe(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // Part of a frame still waiting when an answer is overdue: the framing is lost (a length
        // prefix that lies, bytes that are not DNS), and every later answer on this connection
        // would be cut wrong. Drop it; the next query opens a new one.
        if (this.socket && this.buffered.length > 0) this.dropDesynced(this.socket);
        this.armIdle();
        reject(
          new DnsError(
            "TIMEOUT",
            `${url}: no answer for ${question.name} ${question.type} within ${timeoutMs} ms`,
            {
              ...question,
              server: url,
            },
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { question, resolve, reject, timer });
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      this.connection().write(frame);
    });
  }

  private connection(): Socket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const { host, port, servername, ca, cert, key } = this.endpoint;
    const socket: Socket =
      this.kind === "tls"
        ? tlsConnect({
            host,
            port,
            // RFC 7858 §4.2: verify the certificate against the configured name (or the IP address).
            servername: servername ?? (isIP(host) ? undefined : host),
            ca,
            cert,
            key,
            ALPNProtocols: ["dot"],
          })
        : tcpConnect({ host, port });
    if (socket instanceof TLSSocket) watchHandshake(socket, this.endpoint, "tls");
    socket.setNoDelay(true);
    socket.unref();
    this.buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => this.onData(socket, chunk));
    socket.on("error", (cause) =>
      this.fail(
        socket,
        cause instanceof DnsError
          ? cause
          : new DnsError("NETWORK", `${this.endpoint.url}: ${cause.message}`, {
              server: this.endpoint.url,
              cause,
            }),
      ),
    );
    socket.on("close", () =>
      this.fail(
        socket,
        new DnsError("NETWORK", `${this.endpoint.url}: connection closed by the server`, {
          server: this.endpoint.url,
        }),
      ),
    );
    this.socket = socket;
    return socket;
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 2) {
      const length = this.buffered.readUInt16BE(0);
      if (this.buffered.length < 2 + length) break;
      const message = this.buffered.subarray(2, 2 + length);
      this.buffered = this.buffered.subarray(2 + length);
      this.onMessage(socket, message);
    }
  }

  private onMessage(socket: Socket, message: Buffer): void {
    const id = message.length >= 2 ? message.readUInt16BE(0) : -1;
    const pending = this.pending.get(id);
    let response: Response;
    try {
      response = decodeResponse(message, this.endpoint.url);
    } catch (err) {
      if (pending) this.settle(id, pending, err as Error);
      else {
        // Framing can no longer be trusted: drop the connection and everything on it.
        socket.destroy();
        this.fail(socket, err as Error);
      }
      return;
    }
    if (!pending || !answersQuestion(response, pending.question, message)) {
      this.events.onSpoofed();
      return;
    }
    this.settle(id, pending, undefined, response);
  }

  private settle(id: number, pending: Pending, err: Error | undefined, response?: Response): void {
    clearTimeout(pending.timer);
    this.pending.delete(id);
    this.armIdle();
    if (err) pending.reject(err);
    else pending.resolve(response as Response);
  }

  /** The connection failed or closed: every query on it fails (the resolver may retry). */
  private fail(socket: Socket, err: Error): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    for (const [id, pending] of this.pending) this.settle(id, pending, err);
  }

  private dropDesynced(socket: Socket): void {
    socket.destroy();
    this.fail(
      socket,
      new DnsError(
        "NETWORK",
        `${this.endpoint.url}: answer framing lost (partial message); connection dropped`,
        {
          server: this.endpoint.url,
        },
      ),
    );
  }

  private armIdle(): void {
    if (this.pending.size > 0 || !this.socket) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.socket?.end(), this.idleMs);
    this.idleTimer.unref();
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const socket = this.socket;
    if (!socket) return;
    this.fail(
      socket,
      new DnsError("NETWORK", `${this.endpoint.url}: resolver closed`, { server: this.endpoint.url }),
    );
    socket.destroy();
  }
}
