/**
 * One client request from arrival to its access-log line: an `Exchange`. For a proxied
 * request it is also the undici `dispatch` handler (undici's fastest path), streaming both
 * bodies with backpressure:
 * - request body: the client's IncomingMessage is given to undici as the body stream;
 * - response body: chunks are written to the client; when its socket is full the upstream
 *   is paused and resumed on `drain`;
 * - the client going away aborts the upstream request, so no upstream socket is left behind.
 *
 * One object per request carries all of it: the listeners it needs on the response are
 * shared functions that find their exchange on the response, so a request allocates no
 * closures of its own.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { type Http2ServerRequest, type Http2ServerResponse, constants as h2constants } from "node:http2";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { Dispatcher } from "undici";
import type { Timeouts } from "../config/types.js";
import type { AccessLog, Logger } from "../observability/logger.js";
import { observeRequest, type RouteMetrics, type WorkerMetrics } from "../observability/metrics.js";
import type { Peer } from "../upstream/peer.js";
import type { UpstreamGroup } from "../upstream/upstream-group.js";
import type { ConnectionState, ConnectionTracker } from "./connections.js";
import { classifyUpstreamError, ProxyError } from "./errors.js";
import type { TrustedProxies } from "./forwarded.js";
import { appendSet, type CompiledEdits, copyHeaders, type HeaderList } from "./headers.js";
import type { RateLimits } from "./rate-limit.js";
import { requestIdFor } from "./request-id.js";
import { RETRY_BUDGET_PERCENT, type RetryBudget } from "./retry-budget.js";

/** What every request of a worker shares. */
export interface HandlerContext {
  /** `1.1 portico-xxxx`: this instance's Via entry, also used to detect loops. */
  via: string;
  upstreams: ReadonlyMap<string, UpstreamGroup>;
  accessLog: AccessLog;
  log: Logger;
  /** Client connections and in-flight requests, for draining. */
  connections: ConnectionTracker;
  /** True once the worker drains: responses carry `Connection: close`. */
  isDraining: () => boolean;
  timeouts: Timeouts;
  /** Bounds the retries of this worker (RetryBudget). */
  retries: RetryBudget;
  /** Passive health ejected a peer (the worker tells the master). */
  ejected: (upstream: string, peer: string, ms: number, reason: string) => void;
  /** Decides `rate_limit` routes (src/worker/rate-limit.ts). */
  rateLimits: RateLimits;
  /** `trusted_proxies`; undefined when there are none. */
  trusted: TrustedProxies | undefined;
  /** Prometheus metrics of this worker. */
  metrics: WorkerMetrics;
}

/** Methods a request may be sent twice with (RFC 9110 §9.2.2), when it has no body. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** An error that means nothing reached the peer: safe to send elsewhere, whatever the method. */
function nothingSent(error: ProxyError): boolean {
  if (error.code === "PRT_ERR_UPSTREAM_CONNECT" || error.code === "PRT_ERR_UPSTREAM_TLS") return true;
  return (error.cause as { code?: string } | undefined)?.code === "UND_ERR_CONNECT_TIMEOUT";
}

/**
 * How much of a response may wait in a worker for a slow client before the upstream is
 * paused (nginx's proxy_buffers). Pausing whenever Node's 16 KiB high-water mark is passed
 * would pause and resume the upstream socket for every 64 KiB chunk a fast client takes.
 */
const RESPONSE_BUFFER_BYTES = 256 * 1024;

const kExchange = Symbol("portico.exchange");
/** On an HTTP/1 socket: a response said `Connection: close` after a refusal; pipelined requests behind it are not served. */
const kClosing = Symbol("portico.closing");
/** A client request: HTTP/1.x, or an HTTP/2 stream through node:http2's compatibility API. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;
/**
 * The response of either. Typed as ServerResponse: the calls made on it (writeHead with a
 * flat header list, write, end, flushHeaders, writableLength, `drain`, `close`) behave the
 * same on Http2ServerResponse; what differs (no `destroyed`, no status message, no
 * connection-specific headers) is handled where `h2` is checked.
 */
type ExchangeResponse = ServerResponse & { [kExchange]?: Exchange };

/** A client reset is reported through the response's `close`; these must not crash the worker. */
function ignoreError(): void {}

function onResponseClose(this: ExchangeResponse): void {
  this[kExchange]?.clientClosed();
}

function onResponseDrain(this: ExchangeResponse): void {
  this[kExchange]?.clientDrained();
}

/** `timeouts.client_body` ran out on a request body (the request or stream is `this`). */
function onBodyIdle(this: ClientRequest & { [kExchange]?: Exchange }): void {
  this[kExchange]?.bodyIdle();
}

/** The body arrived whole: its idle timer stops. */
function onBodyEnd(this: ClientRequest): void {
  this.setTimeout(0);
}

/** Statuses whose responses never have a body (RFC 9110 §6.4.1), whatever their headers say. */
function bodiless(status: number): boolean {
  return status === 204 || status === 304;
}

function clientGone(cause?: unknown): ProxyError {
  return new ProxyError("PRT_ERR_CLIENT_GONE", "client closed the connection", { cause });
}

/** One request and its response; the dispatch handler when it is forwarded. */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly req: IncomingMessage;
  readonly res: ExchangeResponse;
  /** An HTTP/2 stream (compatibility API) rather than an HTTP/1.x request. */
  readonly h2: boolean;
  /** Controllers of responses dropped for a retry (a 502-504 that retry_on lists). */
  private abandoned?: WeakSet<Dispatcher.DispatchController>;
  /** The matched route's metrics (unset until routed). */
  routeMetrics: RouteMetrics | undefined = undefined;
  /** The request's key for `balance: hash` (kept for a retry's pick). */
  balanceKey: string | undefined;
  /** Set once the request became a WebSocket tunnel: the access log then says 101 (HTTP/2: 200). */
  tunnel?: { bytes: () => number; peer: string; status: number };
  /** An HTTP/2 extended CONNECT for `websocket` (RFC 8441), set by the handler. */
  extendedConnect = false;
  readonly requestId: string;
  /**
   * The authority the request is for: `:authority` (HTTP/2), else the target's own in
   * absolute form (set by the handler), else the `Host` header ("" when absent).
   */
  host: string;
  /** The request target as received. */
  readonly target: string;
  private readonly ctx: HandlerContext;
  /** The connection's state in the tracker (undefined for a socket it does not track). */
  private readonly connection: ConnectionState | undefined;
  /** Node detaches the socket from the request once the response is over: kept here. */
  private readonly socket: Socket;
  private readonly started = performance.now();
  private logged = false;
  // Forwarding state, set by `forward`.
  private group?: UpstreamGroup;
  private peer?: Peer;
  /** Peers this request failed to reach; only built when a retry happens. */
  private tried?: Set<Peer>;
  private options?: Dispatcher.DispatchOptions;
  private responseEdits?: CompiledEdits;
  private controller?: Dispatcher.DispatchController;
  private dispatchedAt = 0;
  private headerMs?: number;
  private bytes = 0;
  private waitingDrain = false;
  /** The address of the last peer tried, for the access log. */
  private upstream?: string;
  /** The connection's address (read on first use). */
  private remoteAddress?: string;
  /** The client's address after `trusted_proxies` (computed on first use). */
  private clientAddress?: string;
  /** Whether the connection's address is a trusted proxy (computed on first use). */
  private trustedRemote?: boolean;
  /** The connection is closed after the response (a request refused for its framing). */
  private mustClose = false;
  /** The client sent `TE: trailers`: response trailers are passed on (and asked for upstream). */
  readonly wantsTrailers: boolean;
  /** The response ended at its header (204, 304): undici's end or error that follows is not news. */
  private endedEarly = false;

  constructor(ctx: HandlerContext, req: ClientRequest, res: ServerResponse | Http2ServerResponse) {
    this.ctx = ctx;
    // The compatibility API mirrors IncomingMessage/ServerResponse (see ExchangeResponse).
    this.req = req as IncomingMessage;
    this.res = res as ServerResponse;
    // Node's HTTP/1 parser also takes a request line saying HTTP/2.0: only a real stream is HTTP/2.
    this.h2 = (req as Http2ServerRequest).stream !== undefined;
    this.socket = req.socket;
    const headers = req.headers;
    this.requestId = requestIdFor(headers["x-request-id"]);
    // RFC 9113 §8.3.1: :authority, when present, is the target's authority; Host otherwise.
    this.host = (this.h2 ? (headers[":authority"] as string | undefined) : undefined) ?? headers.host ?? "";
    this.target = req.url ?? "/";
    const te = headers.te;
    this.wantsTrailers = te !== undefined && String(te).toLowerCase().includes("trailers");
    const socket = this.socket as Socket & { [kClosing]?: boolean };
    this.behindRefusal = socket[kClosing] === true;
    // The last request a connection may carry closes it, as one refused does.
    this.connection = ctx.connections.requestStarted(socket);
    if (this.connection?.served === ctx.connections.maxRequests && !this.h2) {
      this.mustClose = true;
      socket[kClosing] = true;
    }
    req.on("error", ignoreError);
    res.on("error", ignoreError);
    this.res[kExchange] = this;
    res.on("close", onResponseClose);
  }

  /**
   * The address the connection came from, kept once read: an HTTP/2 request's socket is a
   * proxy that forgets it once the stream is closed (when a tunnel's line is logged).
   */
  get remote(): string {
    this.remoteAddress ??= this.socket.remoteAddress ?? "";
    return this.remoteAddress;
  }

  /** The connection comes from a trusted proxy (`trusted_proxies`); asked once per request. */
  get fromTrustedProxy(): boolean {
    if (this.trustedRemote === undefined) this.trustedRemote = this.ctx.trusted?.trusts(this.remote) ?? false;
    return this.trustedRemote;
  }

  /**
   * The client's address: the connection's, or behind a trusted proxy the one its
   * X-Forwarded-For names. For logs, `balance: hash` on client_ip and rate limits.
   */
  get client(): string {
    if (this.clientAddress === undefined) {
      const remote = this.remote;
      this.clientAddress =
        this.fromTrustedProxy && this.ctx.trusted
          ? this.ctx.trusted.clientOf(remote, this.req.headers["x-forwarded-for"])
          : remote;
    }
    return this.clientAddress;
  }

  /** Refuse the request with `error` and close the connection after the answer (HTTP/1). */
  refuse(error: ProxyError): void {
    this.mustClose = true;
    this.reply(error);
  }

  /**
   * An earlier request on this HTTP/1 connection was refused and the connection is closing:
   * requests pipelined behind it (which Node parses and hands over at once) get no answer.
   */
  readonly behindRefusal: boolean;

  /**
   * Leave this request unanswered (it is behind a refusal): its response waits in Node's
   * queue behind the closing one and may never report `close`, so it stops counting now.
   */
  drop(): void {
    this.logged = true;
    this.res[kExchange] = undefined;
    this.ctx.connections.requestEnded(this.connection);
  }

  /** Fail the request with 408 when its body stays silent for `ms` (timeouts.client_body). */
  watchBody(ms: number): void {
    const req = this.req as ClientRequest & { [kExchange]?: Exchange };
    req[kExchange] = this;
    req.setTimeout(ms, onBodyIdle);
    req.once("end", onBodyEnd);
  }

  /** @internal The request body was idle too long: answer 408 (or cut the response) and stop the upstream. */
  bodyIdle(): void {
    if (this.req.complete || this.logged) return;
    const error = new ProxyError(
      "PRT_ERR_CLIENT_TIMEOUT",
      `request body idle for ${this.ctx.timeouts.clientBody} ms (timeouts.client_body)`,
    );
    const controller = this.controller;
    if (controller && !controller.aborted) {
      // Its abort comes back through onResponseError: not ours any more.
      this.abandoned ??= new WeakSet();
      this.abandoned.add(controller);
      controller.abort(error);
    }
    this.releasePeer();
    this.refuse(error);
  }

  /** The client's side is closed: HTTP/1 responses say so themselves, HTTP/2 ones through their stream. */
  private get gone(): boolean {
    return this.h2 ? (this.res as unknown as Http2ServerResponse).stream.destroyed : this.res.destroyed;
  }

  /** The client left before its upgrade was answered (HTTP/1: its socket; HTTP/2: its stream). */
  get tunnelGone(): boolean {
    return this.h2 ? this.gone : this.req.socket.destroyed;
  }

  /**
   * While draining, an HTTP/1 response says `Connection: close`; HTTP/2 has no such header
   * (the worker sends GOAWAY instead).
   */
  private closeIfDraining(headers: HeaderList): void {
    if (!this.h2 && (this.mustClose || this.ctx.isDraining())) headers.push("connection", "close");
  }

  /** Refuse a malformed HTTP/2 request with RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.1.1) and log it. */
  refuseStream(reason: string): void {
    (this.req as unknown as Http2ServerRequest).stream.close(h2constants.NGHTTP2_PROTOCOL_ERROR);
    this.log(400, 0, new ProxyError("PRT_ERR_H2_MALFORMED", `malformed HTTP/2 request: ${reason}`));
  }

  /** Answer with a fixed response (a `return` or `redirect` route) and log it. */
  respond(status: number, headers: HeaderList, body: string | Buffer, bytes: number): void {
    this.closeIfDraining(headers);
    this.res.writeHead(status, headers);
    this.res.end(body);
    this.log(status, bytes, undefined);
  }

  /** Answer with an error response (or cut the connection if a response has begun) and log it. */
  reply(error: ProxyError): void {
    this.fail(error);
    this.log(error.status, 0, error);
  }

  /** A tunnel's upstream request failed before the tunnel opened: answer with the error. */
  upstreamFailed(error: ProxyError, peer: string): void {
    this.upstream = peer;
    this.reply(error);
  }

  /** Pass an upstream response read with node:http (an upgrade the peer refused) back as it is. */
  relay(response: IncomingMessage, peer: string, edits: CompiledEdits): void {
    this.upstream = peer;
    const status = response.statusCode ?? 502;
    const out = appendSet(copyHeaders(response.headers, edits, []), edits);
    this.closeIfDraining(out);
    // HTTP/2 has no reason phrase (Node warns when given one).
    if (this.h2) this.res.writeHead(status, out);
    else this.res.writeHead(status, response.statusMessage, out);
    let bytes = 0;
    response.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    // Before pipeline's own `end` listener, which ends the response.
    if (this.wantsTrailers) response.once("end", () => this.passTrailers(response.trailers));
    pipeline(response, this.res, (err) => {
      if (err) this.res.destroy();
      this.log(status, bytes, undefined);
    });
  }

  /** Forward the request to `peer` of `group` and stream the response back. */
  forward(
    group: UpstreamGroup,
    peer: Peer,
    path: string,
    headers: HeaderList,
    body: Dispatcher.DispatchOptions["body"],
    responseEdits: CompiledEdits,
  ): void {
    this.group = group;
    this.responseEdits = responseEdits;
    this.ctx.retries.deposit();
    this.options = {
      method: (this.req.method ?? "GET") as Dispatcher.HttpMethod,
      path,
      headers: headers as string[],
      body,
      // A proxied request is forwarded exactly once: undici must never replay it on
      // another connection (non-idempotent requests after a keep-alive race).
      idempotent: false,
      blocking: false,
      reset: false,
    };
    this.send(peer);
  }

  private send(peer: Peer): void {
    this.peer = peer;
    this.upstream = peer.address;
    this.controller = undefined;
    peer.inFlight++;
    this.dispatchedAt = performance.now();
    try {
      peer.pool.dispatch(this.options as Dispatcher.DispatchOptions, this);
    } catch (err) {
      this.onResponseError(undefined as never, err as Error);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.gone) controller.abort(clientGone());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (this.abandoned?.has(controller)) return;
    if (statusCode < 200) {
      // 1xx: 100 Continue is Node's to answer; 103 Early Hints is passed on. Others are dropped.
      if (statusCode === 103 && headers.link !== undefined && !this.gone && !this.res.headersSent) {
        this.res.writeEarlyHints({ link: headers.link });
      }
      return;
    }
    if (statusCode >= 500) this.peerFailed(this.peer as Peer, "5xx", false, `answered ${statusCode}`);
    else (this.peer as Peer).failures = 0;
    if (statusCode >= 502 && statusCode <= 504 && this.group?.upstream.retryOn.includes(statusCode as 502)) {
      const peer = this.peer as Peer;
      const error = new ProxyError("PRT_ERR_UPSTREAM_RESET", `${peer.address} answered ${statusCode}`);
      if (this.mayRetryAfterSend() && this.retry(peer, error)) {
        // Its answer is dropped: the abort's onResponseError carries this old controller.
        this.abandoned ??= new WeakSet();
        this.abandoned.add(controller);
        controller.abort(error);
        return;
      }
    }
    this.headerMs = performance.now() - this.dispatchedAt;
    if (this.group) this.ctx.metrics.upstreamHeaderSeconds(this.group.name, this.headerMs / 1000);
    const res = this.res;
    if (this.gone) return;
    const edits = this.responseEdits as CompiledEdits;
    const out = appendSet(copyHeaders(headers, edits, []), edits);
    if (statusCode === 204) dropFraming(out);
    this.closeIfDraining(out);
    // HTTP/2 has no reason phrase (node:http2 warns when given one).
    res.writeHead(statusCode, this.h2 ? undefined : statusMessage || undefined, out);
    if (bodiless(statusCode) || this.options?.method === "HEAD") {
      // Ended here: no body is read or passed on, whatever the upstream's headers say (undici
      // 7 fails a 304 that keeps its Content-Length, RFC 9110 §8.6, when the message ends).
      this.endedEarly = true;
      res.end();
      this.releasePeer();
      this.log(statusCode, 0, undefined);
      return;
    }
    // A body of unknown length may be a stream (SSE) that is slow to start: send the header
    // now. With a Content-Length, Node sends it together with the first chunk (one write).
    if (headers["content-length"] === undefined) res.flushHeaders();
    if (controller.paused) controller.resume();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.endedEarly || this.abandoned?.has(controller)) return;
    this.bytes += chunk.length;
    if (!this.res.write(chunk) && this.res.writableLength >= RESPONSE_BUFFER_BYTES) {
      controller.pause();
      if (!this.waitingDrain) {
        this.waitingDrain = true;
        this.res.once("drain", onResponseDrain);
      }
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.endedEarly || this.abandoned?.has(controller)) return;
    if (trailers && this.wantsTrailers) this.passTrailers(trailers);
    this.res.end();
    this.releasePeer();
    this.log(this.res.statusCode, this.bytes, undefined);
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // A response dropped for a retry (see onResponseStart) ends here too: not ours any more;
    // so does one already ended at its header (a 304 whose Content-Length undici holds to).
    if (this.endedEarly || (controller && this.abandoned?.has(controller))) return;
    const res = this.res;
    const peer = this.peer as Peer;
    // The client leaving first makes the body stream or the socket fail too: report that as 499.
    const error =
      this.gone && !res.writableFinished ? clientGone(err) : classifyUpstreamError(err, peer.address);
    if (!res.headersSent && !this.gone && error.code !== "PRT_ERR_CLIENT_GONE") {
      const unsent = nothingSent(error);
      this.peerFailed(
        peer,
        error.code === "PRT_ERR_UPSTREAM_TIMEOUT" ? "timeout" : "error",
        unsent,
        error.message,
      );
      // Nothing reached the peer: another one may take the request, whatever its method
      // (nginx proxy_next_upstream error). Once sent, only what retry_on allows.
      const on = this.group?.upstream.retryOn ?? [];
      const allowed = unsent
        ? this.bodyReplayable()
        : this.mayRetryAfterSend() &&
          (error.code === "PRT_ERR_UPSTREAM_TIMEOUT" ? on.includes("timeout") : on.includes("error"));
      if (allowed && this.retry(peer, error)) return;
    }
    this.releasePeer();
    if (error.code === "PRT_ERR_CLIENT_GONE") {
      this.log(499, this.bytes, error);
      return;
    }
    this.fail(error);
    this.log(res.headersSent ? res.statusCode : error.status, this.bytes, error);
  }

  /** Send an upstream response's trailers after the body (the client asked with `TE: trailers`). */
  passTrailers(trailers: Record<string, string | string[] | undefined>): void {
    const out: Record<string, string | string[]> = {};
    let any = false;
    for (const name in trailers) {
      const value = trailers[name];
      if (value === undefined || name.charCodeAt(0) === 58) continue;
      out[name] = value;
      any = true;
    }
    if (any) this.res.addTrailers(out);
  }

  /** The client's socket can take more: resume the upstream. */
  clientDrained(): void {
    this.waitingDrain = false;
    this.controller?.resume();
  }

  /** The response is over: sent, or the connection closed under it. */
  clientClosed(): void {
    const res = this.res;
    if (this.tunnel) {
      if (!this.logged) this.log(this.tunnel.status, this.tunnel.bytes(), undefined);
    } else if (!res.writableFinished) {
      // The client went away first: stop the upstream request so its socket is not left behind.
      const controller = this.controller;
      if (this.peer && controller && !controller.aborted) controller.abort(clientGone());
      if (!this.logged) this.log(499, this.bytes, undefined);
    } else if (!this.logged) {
      this.log(res.statusCode, 0, undefined);
    }
    this.res[kExchange] = undefined;
    this.ctx.connections.requestEnded(this.connection);
  }

  /** Passive health: count a failure of `peer`, and report an ejection it causes. */
  private peerFailed(peer: Peer, kind: "error" | "timeout" | "5xx", connect: boolean, reason: string): void {
    const group = this.group;
    if (!group) return;
    const ms = group.failed(peer, kind, connect);
    if (ms === 0) return;
    this.ctx.log.warn(
      { upstream: group.name, peer: peer.address, ejectedMs: ms },
      `peer ${peer.address} of ${group.name} ejected for ${ms} ms by this worker: ${group.upstream.passive.maxFails} failure(s) in a row, last: ${reason}`,
    );
    this.ctx.ejected(group.name, peer.address, ms, reason);
  }

  /** A request that reached its peer may be sent again only when idempotent and without a body. */
  private mayRetryAfterSend(): boolean {
    return this.options?.body === null && IDEMPOTENT.has(this.options.method);
  }

  /** A body not read yet (or read whole into memory) can go to another peer. */
  private bodyReplayable(): boolean {
    const body = this.options?.body;
    if (body === null || body === undefined || Buffer.isBuffer(body)) return true;
    return !(body as { readableDidRead?: boolean }).readableDidRead;
  }

  /**
   * Send the request to another peer of the group, not one it was sent to already: at most
   * `tries` peers in all, within `try_timeout` of the first, while the worker's retry budget
   * lasts. False when none of that allows it.
   */
  private retry(failed: Peer, error: ProxyError): boolean {
    const group = this.group;
    if (!group) return false;
    const tried = this.tried ?? new Set<Peer>();
    this.tried = tried;
    tried.add(failed);
    const { tries, tryTimeout } = group.upstream;
    if (tried.size >= tries) return false;
    if (tryTimeout > 0 && performance.now() - this.started >= tryTimeout) return false;
    const next = group.pick(tried, this.balanceKey);
    if (!next) return false;
    const budget = this.ctx.retries;
    if (!budget.withdraw()) {
      this.ctx.metrics.retries.labels(group.name, "budget_exhausted").inc();
      if (budget.takeReport()) {
        this.ctx.log.warn(
          { requestId: this.requestId, peer: failed.address, refusedRetries: budget.exhausted },
          `${error.message}; not retried: this worker's retry budget is spent (retries are held to ${RETRY_BUDGET_PERCENT}% of requests while peers fail; said once per 10 s)`,
        );
      }
      return false;
    }
    this.ctx.log.warn(
      { requestId: this.requestId, peer: failed.address, next: next.address },
      `${error.message}; trying the next peer`,
    );
    this.ctx.metrics.retries.labels(group.name, "sent").inc();
    this.releasePeer();
    this.send(next);
    return true;
  }

  private releasePeer(): void {
    if (!this.peer) return;
    this.peer.inFlight--;
    this.peer = undefined;
  }

  /** Send an error response, or destroy the connection when a response has already begun. */
  private fail(error: ProxyError): void {
    const res = this.res;
    if (res.headersSent || this.gone) {
      res.destroy(error);
      return;
    }
    const body = error.body;
    const headers: HeaderList = [
      "content-type",
      "text/plain; charset=utf-8",
      "content-length",
      String(Buffer.byteLength(body)),
    ];
    const extra = error.headers;
    if (extra) for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
    // A request body we did not read leaves an HTTP/1 connection unusable; so does a
    // request refused for its framing or size (what follows it cannot be trusted).
    const refused = this.mustClose || error.status === 413 || error.status === 408;
    const unread = !this.req.complete && this.hasBody();
    if (!this.h2 && (refused || unread || this.ctx.isDraining())) {
      headers.push("connection", "close");
      if (refused || unread) (this.socket as Socket & { [kClosing]?: boolean })[kClosing] = true;
    }
    res.writeHead(error.status, headers);
    res.end(body);
    if (error.status >= 500)
      this.ctx.log.warn({ requestId: this.requestId, code: error.code }, error.message);
  }

  /**
   * The HTTP/1 request has a body (which may not be read yet). `req.complete` alone does not
   * say: during the `request` event it is false for a GET too, as the parser has not reached
   * the end of the message yet.
   */
  private hasBody(): boolean {
    const headers = this.req.headers;
    const length = headers["content-length"];
    return (length !== undefined && length !== "0") || headers["transfer-encoding"] !== undefined;
  }

  /** Write the access-log line, once. */
  private log(status: number, bytes: number, error: ProxyError | undefined): void {
    if (this.logged) return;
    this.logged = true;
    const ms = performance.now() - this.started;
    observeRequest(this.routeMetrics ?? this.ctx.metrics.unrouted, status, ms / 1000);
    const accessLog = this.ctx.accessLog;
    if (!accessLog.enabled) return;
    const target = this.target;
    accessLog.write({
      requestId: this.requestId,
      remote: this.client,
      method: this.req.method ?? "",
      host: this.host,
      path: target.length > 2048 ? target.slice(0, 2048) : target,
      status,
      bytes,
      ms: round(ms),
      upstream: this.upstream ?? this.tunnel?.peer,
      upstreamMs: this.headerMs === undefined ? undefined : round(this.headerMs),
      error: error?.code,
      reason: error?.message,
    });
  }
}

/** A 204 carries no Content-Length or Transfer-Encoding (RFC 9110 §8.6, RFC 9112 §6.1). */
function dropFraming(headers: HeaderList): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i];
    if (name === "content-length" || name === "transfer-encoding") headers.splice(i, 2);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
