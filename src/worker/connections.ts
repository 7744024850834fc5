/**
 * Client connections of a worker, tracked so a drain closes none of them under a client's
 * feet. nginx and HAProxy close idle keep-alive connections the instant they drain, which
 * races a client that is reusing the connection at that moment: its request is reset and it
 * must retry. Portico instead:
 * - answers every request that arrives during the drain with `Connection: close` (Node then
 *   closes the connection after that response), including in-flight requests whose
 *   response header is not sent yet;
 * - closes a connection with no request in flight only after it has stayed idle for
 *   `drain_grace` and no byte of a new request has arrived in that time.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

interface ConnectionState {
  /** Requests received on this connection whose response is not over. */
  busy: number;
  /** When the connection last became idle (ms, monotonic). */
  idleSince: number;
  /** `socket.bytesRead` at that moment: more means a request is arriving. */
  bytesAtIdle: number;
}

/** Tracks every client connection and in-flight response of a worker's servers. */
export class ConnectionTracker {
  private readonly connections = new Map<Socket, ConnectionState>();
  private readonly responses = new Set<ServerResponse>();
  private draining = false;
  private sweeper?: NodeJS.Timeout;
  private onEmpty?: () => void;

  /** Start tracking the connections of `server`. */
  watch(server: Server): void {
    server.on("connection", (socket: Socket) => {
      this.connections.set(socket, { busy: 0, idleSince: performance.now(), bytesAtIdle: 0 });
      socket.once("close", () => {
        this.connections.delete(socket);
        this.checkEmpty();
      });
    });
  }

  /** Record a request; the returned function must be called once its response is over. */
  requestStarted(req: IncomingMessage, res: ServerResponse): () => void {
    // Node detaches the socket from the request once the response is over: keep it now.
    const socket = req.socket;
    const state = this.connections.get(socket);
    if (state) state.busy++;
    this.responses.add(res);
    return () => {
      this.responses.delete(res);
      if (state && --state.busy === 0) {
        state.idleSince = performance.now();
        state.bytesAtIdle = socket.bytesRead;
      }
      this.checkEmpty();
    };
  }

  /** Requests whose response is not over yet. */
  get inFlight(): number {
    return this.responses.size;
  }

  /** Open client connections. */
  get open(): number {
    return this.connections.size;
  }

  /**
   * Begin draining: in-flight responses not yet started get `Connection: close`, and idle
   * connections are closed after `graceMs`. `onEmpty` runs once no connection is left.
   */
  drain(graceMs: number, onEmpty: () => void): void {
    if (this.draining) return;
    this.draining = true;
    this.onEmpty = onEmpty;
    for (const res of this.responses) if (!res.headersSent) res.setHeader("connection", "close");
    const every = Math.max(10, Math.min(100, graceMs / 4));
    this.sweeper = setInterval(() => this.closeIdle(graceMs), every);
    this.sweeper.unref();
    this.closeIdle(graceMs);
  }

  /** Close every connection now (the shutdown timeout expired). */
  closeAll(): void {
    for (const socket of this.connections.keys()) socket.destroy();
  }

  private closeIdle(graceMs: number): void {
    const now = performance.now();
    for (const [socket, state] of this.connections) {
      if (state.busy > 0 || socket.destroyed) continue;
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
    if (!this.draining || this.connections.size > 0 || this.responses.size > 0) return;
    if (this.sweeper) clearInterval(this.sweeper);
    const onEmpty = this.onEmpty;
    this.onEmpty = undefined;
    onEmpty?.();
  }
}
