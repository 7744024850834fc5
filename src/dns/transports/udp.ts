/**
 * DNS over UDP (RFC 1035 §4.2.1) with the RFC 5452 defences: a random ID for every query, and
 * a random source port from a small pool of sockets, each bound to a port the OS picks at
 * random. A socket carries one query at a time, a random idle one is picked for each query,
 * and it is closed and replaced after `queriesPerSocket` queries, after a timeout or error on
 * it, or when idle (RFC 5452 §9.2 asks for several source ports in use at once;
 * `queriesPerSocket: 1` is a fresh socket for every query). An answer is accepted only when it
 * comes from the nameserver's address and port and carries the ID and question of the query in
 * flight on that socket; anything else (including a late answer to an earlier query of a
 * reused socket) is dropped and counted, and the real answer can still arrive. A truncated
 * answer is returned as is: the nameserver layer retries it over TCP.
 */
import { randomInt } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { DnsError } from "../errors.js";
import { answersQuestion, decodeResponse, encodeQuery, type Response, randomId } from "../message.js";
import type { Question } from "../types.js";
import type { Endpoint, Transport, TransportEvents } from "./transport.js";

/**
 * Default of `queriesPerSocket`. On the benchmark VM 8 reaches the resolver's goal of 20,000
 * uncached queries/s only just and 16 with a margin (bench/RESULTS.md, "DNS layer").
 */
export const DEFAULT_UDP_QUERIES_PER_SOCKET = 16;

/**
 * An idle socket is closed after this long without a query, ms (checked this often, so it stays
 * open 1 to 2 times this), so that no port stays open for nothing.
 */
const IDLE_CLOSE_MS = 1000;

/** The query in flight on a socket. */
interface Pending {
  id: number;
  question: Question;
  resolve(response: Response): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** One socket of the pool and what it is doing. */
interface PoolSocket {
  socket: Socket;
  /** Queries sent on it so far. */
  used: number;
  /** The one query in flight, or undefined while idle. */
  pending: Pending | undefined;
  /** Date.now() when it last became idle. */
  idleSince: number;
}

/** DNS over UDP to one nameserver, through a pool of randomly bound sockets. */
export class UdpTransport implements Transport {
  readonly kind = "udp" as const;
  /** Every open socket, busy or idle, so close() can settle and close them. */
  private readonly sockets = new Set<PoolSocket>();
  /** Sockets with no query in flight, in no particular order (one is picked at random). */
  private readonly idle: PoolSocket[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly family: "udp4" | "udp6";

  /** `queriesPerSocket`: queries a socket carries (one at a time) before it is replaced; at least 1. */
  constructor(
    private readonly endpoint: Endpoint,
    private readonly events: TransportEvents,
    private readonly queriesPerSocket = DEFAULT_UDP_QUERIES_PER_SOCKET,
  ) {
    if (!Number.isInteger(queriesPerSocket) || queriesPerSocket < 1) {
      throw new RangeError(`udpQueriesPerSocket must be a whole number >= 1, not ${queriesPerSocket}`);
    }
    this.family = isIPv6(endpoint.host) ? "udp6" : "udp4";
  }

  exchange(question: Question, timeoutMs: number): Promise<Response> {
    const id = randomId();
    const query = encodeQuery(question, id);
    const entry = this.take();
    entry.used++;
    return new Promise<Response>((resolve, reject) => {
      const pending: Pending = { id, question, resolve, reject, timer: undefined };
      pending.timer = setTimeout(() => this.onTimeout(entry, pending, timeoutMs), timeoutMs);
      entry.pending = pending;
      // No callback: without one Node tries a synchronous send first (uv_udp_try_send), and a
      // failure is emitted as 'error', handled in onError.
      entry.socket.send(query, this.endpoint.port, this.endpoint.host);
    });
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.idle.length = 0;
    const error = new DnsError("NETWORK", `${this.endpoint.url}: resolver closed`);
    for (const entry of [...this.sockets]) this.finish(entry, error, undefined, false);
  }

  /** A random idle socket, or a new one bound to a port the OS picks. */
  private take(): PoolSocket {
    const idle = this.idle;
    if (idle.length > 0) {
      const i = idle.length === 1 ? 0 : randomInt(idle.length);
      const entry = idle[i] as PoolSocket;
      idle[i] = idle[idle.length - 1] as PoolSocket;
      idle.pop();
      entry.socket.ref();
      return entry;
    }
    const socket = createSocket({ type: this.family, lookup: literalLookup });
    // idleSince starts as a time, not 0: a field that holds only small integers and then a
    // Date.now() changes the object's shape, which throws away optimized code.
    const entry: PoolSocket = { socket, used: 0, pending: undefined, idleSince: Date.now() };
    socket.on("message", (bytes, from) => this.onMessage(entry, bytes, from));
    socket.on("error", (cause) => this.onError(entry, cause));
    this.sockets.add(entry);
    // The first send binds it to port 0: an OS-chosen, random source port (RFC 5452 §9.2).
    return entry;
  }

  private onMessage(entry: PoolSocket, bytes: Buffer, from: RemoteInfo): void {
    const { host, port, url } = this.endpoint;
    const pending = entry.pending;
    // RFC 5452 §9.1: only the nameserver's own address and port may answer, and only while a
    // query is in flight on this socket.
    if (pending === undefined || from.port !== port || from.address !== host) {
      this.events.onSpoofed();
      return;
    }
    let response: Response;
    try {
      response = decodeResponse(bytes, url);
    } catch (err) {
      if (bytes.length >= 2 && bytes.readUInt16BE(0) !== pending.id) this.events.onSpoofed();
      else this.finish(entry, err as Error, undefined, false);
      return;
    }
    // The ID and question must be those of the query in flight: a late answer to an earlier
    // query on this socket fails here.
    if (response.id !== pending.id || !answersQuestion(response, pending.question, bytes)) {
      this.events.onSpoofed();
      return;
    }
    this.finish(entry, undefined, response, true);
  }

  private onTimeout(entry: PoolSocket, pending: Pending, timeoutMs: number): void {
    if (entry.pending !== pending) return;
    const { url } = this.endpoint;
    const { question } = pending;
    this.finish(
      entry,
      new DnsError(
        "TIMEOUT",
        `${url}: no answer for ${question.name} ${question.type} within ${timeoutMs} ms`,
        {
          ...question,
          server: url,
        },
      ),
      undefined,
      false,
    );
  }

  private onError(entry: PoolSocket, cause: Error): void {
    const { url } = this.endpoint;
    const question = entry.pending?.question;
    this.finish(
      entry,
      new DnsError("NETWORK", `${url}: ${cause.message}`, { ...question, server: url, cause }),
      undefined,
      false,
    );
  }

  /**
   * Settle the query in flight on `entry` (if any), then return the socket to the idle set, or
   * close it: after an error or a timeout (a late answer would land on it), when it has carried
   * `queriesPerSocket` queries, or when it is not `reusable`.
   */
  private finish(
    entry: PoolSocket,
    err: Error | undefined,
    response: Response | undefined,
    reusable: boolean,
  ): void {
    const pending = entry.pending;
    entry.pending = undefined;
    if (pending) clearTimeout(pending.timer);
    if (reusable && entry.used < this.queriesPerSocket) {
      entry.idleSince = Date.now();
      // An idle socket must not keep the process alive.
      entry.socket.unref();
      this.idle.push(entry);
      this.sweepTimer ??= setTimeout(() => this.sweep(), IDLE_CLOSE_MS).unref();
    } else if (this.sockets.delete(entry)) {
      const i = this.idle.indexOf(entry);
      if (i >= 0) {
        this.idle[i] = this.idle[this.idle.length - 1] as PoolSocket;
        this.idle.pop();
      }
      entry.socket.close();
    }
    if (!pending) return;
    if (err) pending.reject(err);
    else pending.resolve(response as Response);
  }

  /** Close the sockets idle for IDLE_CLOSE_MS; come back while any stay idle. */
  private sweep(): void {
    this.sweepTimer = undefined;
    const now = Date.now();
    for (const entry of [...this.idle]) {
      if (now - entry.idleSince >= IDLE_CLOSE_MS) this.finish(entry, undefined, undefined, false);
    }
    if (this.idle.length > 0) this.sweepTimer = setTimeout(() => this.sweep(), IDLE_CLOSE_MS).unref();
  }
}

/**
 * dgram's address lookup for the socket's bind address and the nameserver's: both are IP
 * literals (parseNameserverUrl insists), so this skips dns.lookup's checks and its deferral to
 * the next tick on every send.
 */
function literalLookup(
  address: string,
  _family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, address.includes(":") ? 6 : 4);
}
