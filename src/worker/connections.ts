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
 * A connection's state lives on its socket (no per-request entry in a worker-wide
 * collection: such a collection keeps every in-flight response reachable from an old
 * object, which made young-generation GC promote them).
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

const kState = Symbol("portico.connection");

interface ConnectionState {
  tracker: ConnectionTracker;
  /** Requests received on this connection whose response is not over. */
  busy: number;
  /** When the connection last became idle (ms, monotonic). */
  idleSince: number;
  /** `socket.bytesRead` at that moment: more means a request is arriving. */
  bytesAtIdle: number;
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
  private requests = 0;
  private draining = false;
  private sweeper?: NodeJS.Timeout;
  private onEmpty?: () => void;
  private readonly onConnection = (socket: TrackedSocket) => {
    socket[kState] = { tracker: this, busy: 0, idleSince: performance.now(), bytesAtIdle: 0 };
    this.connections.add(socket);
    socket.on("close", onSocketClose);
  };

  /** Start tracking the connections of `server`. */
  watch(server: Server): void {
    server.on("connection", this.onConnection);
  }

  /** A request arrived on `socket`; `requestEnded(socket)` must follow once its response is over. */
  requestStarted(socket: Socket): void {
    this.requests++;
    const state = (socket as TrackedSocket)[kState];
    if (state) state.busy++;
  }

  /** The response of a request on `socket` is over (sent, or the client went away). */
  requestEnded(socket: Socket): void {
    this.requests--;
    const state = (socket as TrackedSocket)[kState];
    if (state && --state.busy === 0) {
      state.idleSince = performance.now();
      state.bytesAtIdle = socket.bytesRead;
    }
    if (this.draining) this.checkEmpty();
  }

  /** @internal A tracked socket closed. */
  forget(socket: TrackedSocket): void {
    this.connections.delete(socket);
    if (this.draining) this.checkEmpty();
  }

  /** Requests whose response is not over yet. */
  get inFlight(): number {
    return this.requests;
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
    const every = Math.max(10, Math.min(100, graceMs / 4));
    this.sweeper = setInterval(() => this.closeIdle(graceMs), every);
    this.sweeper.unref();
    this.closeIdle(graceMs);
  }

  /** Close every connection now (the shutdown timeout expired). */
  closeAll(): void {
    for (const socket of this.connections) socket.destroy();
  }

  private closeIdle(graceMs: number): void {
    const now = performance.now();
    for (const socket of this.connections) {
      const state = socket[kState];
      if (!state || state.busy > 0 || socket.destroyed) continue;
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
