/**
 * Forwarding one request to a peer with undici's `dispatch` and a handler object (its
 * fastest path), streaming both bodies with backpressure:
 * - request body: the client's IncomingMessage is given to undici as the body stream;
 * - response body: chunks are written to the client; when its socket is full the upstream
 *   is paused and resumed on `drain`;
 * - the client going away aborts the upstream request, so no upstream socket is left behind.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import type { HeaderEdits } from "../config/types.js";
import type { Peer } from "../upstream/peer.js";
import { classifyUpstreamError, ProxyError } from "./errors.js";
import { applyEdits, withoutHopByHop } from "./headers.js";

/** What the proxy reports back for the access log once the exchange is over. */
export interface ProxyOutcome {
  /** Status sent to the client (0 when nothing could be sent). */
  status: number;
  /** Response body bytes written to the client. */
  bytes: number;
  /** Milliseconds from dispatch to the upstream's response header (undefined if none came). */
  upstreamHeaderMs?: number;
  /** Set when the exchange failed. */
  error?: ProxyError;
}

/** Everything one forwarded request needs. */
export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  peer: Peer;
  method: string;
  /** Path and query to send upstream. */
  target: string;
  /** Request headers to send (hop-by-hop already removed, forwarding headers added). */
  headers: Record<string, string | string[]>;
  /** Request body stream, or null when the request has none. */
  body: NodeJS.ReadableStream | null;
  responseHeaders: HeaderEdits;
  /** Called once, when the exchange is over (success or not). */
  done: (outcome: ProxyOutcome) => void;
  /** Sends an error response (or destroys the connection when headers already went). */
  fail: (error: ProxyError) => void;
  /**
   * The peer could not be reached (nothing was sent): return true after forwarding the
   * request to another peer, false to answer the error. Absent: never retried.
   */
  retry?: (error: ProxyError) => boolean;
}

/** nginx's `fail_timeout`: a peer that refused a connection is skipped this long (per worker). */
export const PEER_FAIL_TIMEOUT_MS = 10_000;

/** undici dispatch handler that streams one upstream response to the client. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  private readonly f: ForwardRequest;
  private readonly started = performance.now();
  private controller?: Dispatcher.DispatchController;
  private headerMs?: number;
  private bytes = 0;
  private finished = false;
  private readonly onDrain = () => this.controller?.resume();
  private readonly onClientClose = () => {
    if (!this.f.res.writableFinished) {
      this.abort(new ProxyError("PRT_ERR_CLIENT_GONE", "client closed the connection"));
    }
  };

  constructor(f: ForwardRequest) {
    this.f = f;
    f.res.on("close", this.onClientClose);
    f.res.on("drain", this.onDrain);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.f.res.destroyed)
      controller.abort(new ProxyError("PRT_ERR_CLIENT_GONE", "client closed the connection"));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx informational: Node answers 100-continue itself
    this.headerMs = performance.now() - this.started;
    const res = this.f.res;
    if (res.destroyed) return;
    const out = withoutHopByHop(headers);
    applyEdits(out, this.f.responseHeaders);
    res.writeHead(statusCode, statusMessage || undefined, out);
    // A body of unknown length may be a stream (SSE) that is slow to start: send the header
    // now. With a Content-Length, Node sends it together with the first chunk (one write).
    if (headers["content-length"] === undefined) res.flushHeaders();
    if (controller.paused) controller.resume();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    if (!this.f.res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.f.res.end();
    this.finish({ status: this.f.res.statusCode, bytes: this.bytes, upstreamHeaderMs: this.headerMs });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const res = this.f.res;
    // The client leaving first makes the body stream or the socket fail too: report that as 499.
    const error =
      res.destroyed && !res.writableFinished
        ? new ProxyError("PRT_ERR_CLIENT_GONE", "client closed the connection", { cause: err })
        : classifyUpstreamError(err, this.f.peer.address);
    if (error.code === "PRT_ERR_UPSTREAM_CONNECT") {
      this.f.peer.markFailed(PEER_FAIL_TIMEOUT_MS);
      // Nothing reached the peer: another one may take the request (nginx proxy_next_upstream error).
      if (!res.headersSent && !res.destroyed && this.f.retry?.(error)) {
        this.release();
        return;
      }
    }
    if (error.code !== "PRT_ERR_CLIENT_GONE") this.f.fail(error);
    const status =
      error.code === "PRT_ERR_CLIENT_GONE" ? 499 : res.headersSent ? res.statusCode : error.status;
    this.finish({ status, bytes: this.bytes, upstreamHeaderMs: this.headerMs, error });
  }

  private abort(reason: ProxyError): void {
    if (this.controller && !this.controller.aborted) this.controller.abort(reason);
  }

  private finish(outcome: ProxyOutcome): void {
    if (this.release()) this.f.done(outcome);
  }

  /** Detach from the client and the peer; false when already done. */
  private release(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.f.peer.inFlight--;
    this.f.res.off("close", this.onClientClose);
    this.f.res.off("drain", this.onDrain);
    return true;
  }
}

/** Send a request to its peer and stream the response back. Reports through `f.done`. */
export function forward(f: ForwardRequest): void {
  const handler = new ForwardHandler(f);
  f.peer.inFlight++;
  try {
    f.peer.pool.dispatch(
      {
        method: f.method as Dispatcher.HttpMethod,
        path: f.target,
        headers: f.headers,
        body: f.body as Dispatcher.DispatchOptions["body"],
        // A proxied request is forwarded exactly once: undici must never replay it on
        // another connection (non-idempotent requests after a keep-alive race).
        idempotent: false,
        blocking: false,
        reset: false,
      },
      handler,
    );
  } catch (err) {
    handler.onResponseError(undefined as never, err as Error);
  }
}
