/**
 * Client connections of a worker, tracked so a drain closes none of them under a client's
 * feet. nginx and HAProxy close idle keep-alive connections the instant they drain, which
 * races a client that is reusing the connection at that moment: its request is reset and it
 * must retry. Portico instead:
 * - answers every request that arrives during the drain with `Connection: close` (Node then
 *   closes the connection after that response), including in-flight requests whose
 *   response header is not sent yet (the proxy checks `isDraining` when it writes a header);
 * - closes a connection with no request in flight only after it has stayed idle for
 *   `drain_grace` and no byte of a new request has arrived in that time.
 *
 * An HTTP/2 connection drains the HTTP/2 way: GOAWAY at once (`session.close()`), which tells
 * the client which streams will still be answered, so none is lost; the session closes when
 * its last stream is over.
 *
 * A connection's state lives on its socket (no per-request entry in a worker-wide
 * collection: such a collection keeps every in-flight response reachable from an old
 * object, which made young-generation GC promote them).
 */
import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

const kState = Symbol("portico.connection");

/** One client connection's state (what a request holds on to: an HTTP/2 request's `socket` is a proxy that forgets it once the session is gone). */
export interface ConnectionState {
  tracker: ConnectionTracker;
  socket: Socket;
  /** Requests received on this connection whose response is not over. */
  busy: number;
  /** Requests received on this connection in all. */
  served: number;
  /** When the connection last became idle (ms, monotonic). */
  idleSince: number;
  /** `socket.bytesRead` at that moment: more means a request is arriving. */
  bytesAtIdle: number;
  /** The socket carries HTTP/2: its session is drained with GOAWAY, never closed as idle. */
  h2: boolean;
}

type TrackedSocket = Socket & { [kState]?: ConnectionState };

/** A socket closed: shared by every connection, so none needs a closure of its own. */
function onSocketClose(this: TrackedSocket): void {
  const state = this[kState];
  if (state) state.tracker.forget(this);
}

/** Tracks every client connection of a worker's servers and its requests in flight. */
export class ConnectionTracker {
  private readonly connections = new Set<TrackedSocket>();
  /** Connections refused because limits.max_connections were open (counted by the listeners). */
  dropped = 0;
  private requests = 0;
  /** Bytes of the connections that closed. */
  private closedRead = 0;
  private closedWritten = 0;
  private openTunnels = 0;
  private draining = false;
  private sweeper?: NodeJS.Timeout;
  private onEmpty?: () => void;
  private readonly sessions = new Set<Http2Session>();
  private readonly onConnection = (socket: TrackedSocket) => {
    const h2 = (socket as TLSSocket).alpnProtocol === "h2";
    socket[kState] = {
      tracker: this,
      socket,
      busy: 0,
      served: 0,
      idleSince: performance.now(),
      bytesAtIdle: 0,
      h2,
    };
    this.connections.add(socket);
    socket.on("close", onSocketClose);
  };

  private readonly onSession = (session: Http2Session) => {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    if (this.draining) session.close();
  };

  private readonly onTunnelClose = () => {
    this.openTunnels--;
  };

  /**
   * Start tracking the connections of `server`: `event` is `connection` for plain servers and
   * `secureConnection` for TLS ones (the TLS socket is the one requests see). HTTP/2 sessions
   * are tracked too, when the server has them.
   */
  watch(server: EventEmitter, event: "connection" | "secureConnection" = "connection"): void {
    server.on(event, this.onConnection);
    server.on("session", this.onSession);
  }

  /** `socket` speaks HTTP/2 with prior knowledge (h2c): never closed as idle while draining. */
  markHttp2(socket: Socket): void {
    const state = (socket as TrackedSocket)[kState];
    if (state) state.h2 = true;
  }

  /** A WebSocket tunnel opened on `leg` (a socket, or an HTTP/2 stream), open until it closes. */
  tunnelOpened(leg: { once(event: "close", listener: () => void): unknown }): void {
    this.openTunnels++;
    leg.once("close", this.onTunnelClose);
  }

  /** WebSocket tunnels open now. */
  get tunnels(): number {
    return this.openTunnels;
  }

  /**
   * Requests (HTTP/1) one connection may carry (limits.max_requests_per_connection; 0 = no
   * limit). Node's own maxRequestsPerSocket answers the one after the last with 503 and
   * leaves the connection open; the response to the last one says `Connection: close` here.
   */
  maxRequests = 0;

  /**
   * A request arrived on `socket`; `requestEnded(state)` with the state returned must follow
   * once its response is over. `state.served === maxRequests`: it is the last the connection
   * may carry.
   */
  requestStarted(socket: Socket): ConnectionState | undefined {
    this.requests++;
    const state = (socket as TrackedSocket)[kState];
    if (!state) return undefined;
    state.busy++;
    state.served++;
    return state;
  }

  /** The response of a request is over (sent, or the client went away). */
  requestEnded(state: ConnectionState | undefined): void {
    if (state) {
      // Already settled when its socket closed (see forget).
      if (state.busy === 0) return;
      if (--state.busy === 0) {
        state.idleSince = performance.now();
        state.bytesAtIdle = state.socket.bytesRead;
      }
    }
    this.requests--;
    if (this.draining) this.checkEmpty();
  }

  /**
   * @internal A tracked socket closed. Responses still queued on it behind another one
   * (pipelined requests) are never told by Node that their connection is gone: once the
   * close events have run, what the socket still counts is settled here, or the worker
   * would wait for them until its shutdown timeout.
   */
  forget(socket: TrackedSocket): void {
    this.connections.delete(socket);
    this.closedRead += socket.bytesRead;
    this.closedWritten += socket.bytesWritten;
    const state = socket[kState];
    if (state && state.busy > 0) {
      setImmediate(() => {
        if (state.busy === 0) return;
        this.requests -= state.busy;
        state.busy = 0;
        if (this.draining) this.checkEmpty();
      });
    }
    if (this.draining) this.checkEmpty();
  }

  /** Requests whose response is not over yet. */
  get inFlight(): number {
    return this.requests;
  }

  /** Bytes read from and written to client connections, closed ones and open ones (read at a scrape). */
  bytes(): { read: number; written: number } {
    let read = this.closedRead;
    let written = this.closedWritten;
    for (const socket of this.connections) {
      read += socket.bytesRead;
      written += socket.bytesWritten;
    }
    return { read, written };
  }

  /** Open client connections. */
  get open(): number {
    return this.connections.size;
  }

  /**
   * Begin draining: idle connections are closed after `graceMs` (responses not yet started
   * get `Connection: close` from the proxy). `onEmpty` runs once no connection is left.
   */
  drain(graceMs: number, onEmpty: () => void): void {
    if (this.draining) return;
    this.draining = true;
    this.onEmpty = onEmpty;
    for (const session of this.sessions) session.close();
    const every = Math.max(10, Math.min(100, graceMs / 4));
    this.sweeper = setInterval(() => this.closeIdle(graceMs), every);
    this.sweeper.unref();
    this.closeIdle(graceMs);
  }

  /**
   * Close every connection now (the shutdown timeout expired); resolves once their `close`
   * events ran (so what they log, such as a tunnel's access-log line, is written), or after
   * `waitMs`.
   */
  closeAll(waitMs = 500): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    return new Promise((resolve) => {
      const begun = performance.now();
      const check = () => {
        if (this.connections.size === 0 || performance.now() - begun >= waitMs) resolve();
        else setTimeout(check, 5);
      };
      setImmediate(check);
    });
  }

  private closeIdle(graceMs: number): void {
    const now = performance.now();
    for (const socket of this.connections) {
      const state = socket[kState];
      if (!state || state.busy > 0 || state.h2 || socket.destroyed) continue;
      if (socket.bytesRead !== state.bytesAtIdle) {
        // A request is arriving: it will be answered with `Connection: close`.
        state.idleSince = now;
        state.bytesAtIdle = socket.bytesRead;
        continue;
      }
      if (now - state.idleSince >= graceMs) {
        socket.end();
        socket.once("finish", () => socket.destroy());
      }
    }
    this.checkEmpty();
  }

  private checkEmpty(): void {
    if (!this.draining || this.connections.size > 0 || this.requests > 0) return;
    if (this.sweeper) clearInterval(this.sweeper);
    const onEmpty = this.onEmpty;
    this.onEmpty = undefined;
    onEmpty?.();
  }
}
