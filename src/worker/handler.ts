/**
 * The request handler of a listen socket: route (Host, then path), then run the route's
 * action (forward to an upstream, return a fixed response, or redirect), and write one
 * access-log line when the response is over.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform } from "node:stream";
import type { Route } from "../config/types.js";
import type { Logger } from "../observability/logger.js";
import type { Peer } from "../upstream/peer.js";
import type { UpstreamGroup } from "../upstream/upstream-group.js";
import type { ConnectionTracker } from "./connections.js";
import { ProxyError } from "./errors.js";
import { appendList, applyEdits, withoutHopByHop } from "./headers.js";
import { forward, type ProxyOutcome } from "./proxy.js";
import { type HostRouter, splitTarget } from "./router.js";

/** What every request handler of a worker shares. */
export interface HandlerContext {
  /** `1.1 portico-xxxx`: this instance's Via entry, also used to detect loops. */
  via: string;
  upstreams: ReadonlyMap<string, UpstreamGroup>;
  accessLog: Logger;
  log: Logger;
  /** Client connections and in-flight requests, for draining. */
  connections: ConnectionTracker;
  /** True once the worker drains: responses carry `Connection: close`. */
  isDraining: () => boolean;
}

/** A request id we accept from a client: printable, no spaces, at most 200 characters. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** Most peers one request is sent to when they cannot be reached (nginx proxy_next_upstream_tries). */
const MAX_TRIES = 3;

/** Build the `(req, res)` handler of one listen socket. */
export function createRequestHandler(ctx: HandlerContext, router: HostRouter, scheme: "http" | "https") {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const inbound = req.headers["x-request-id"];
    const requestId = typeof inbound === "string" && REQUEST_ID.test(inbound) ? inbound : randomUUID();
    const host = req.headers.host ?? "";
    const target = req.url ?? "/";
    let upstreamAddress: string | undefined;
    const over = ctx.connections.requestStarted(req, res);
    req.on("error", () => {}); // a client reset is reported through res "close"
    res.on("error", () => {});
    if (ctx.isDraining()) res.setHeader("connection", "close");

    let logged = false;
    const finish = (outcome: ProxyOutcome) => {
      if (logged) return;
      logged = true;
      ctx.accessLog.info({
        requestId,
        remote: req.socket.remoteAddress,
        method: req.method,
        host,
        path: target.length > 2048 ? target.slice(0, 2048) : target,
        status: outcome.status,
        bytes: outcome.bytes,
        ms: round(performance.now() - started),
        upstream: upstreamAddress,
        upstreamMs: outcome.upstreamHeaderMs === undefined ? undefined : round(outcome.upstreamHeaderMs),
        error: outcome.error?.code,
        reason: outcome.error?.message,
      });
    };
    res.once("close", () => {
      // A response that ends without reporting (a client gone during a fixed reply).
      if (!logged) finish({ status: res.writableFinished ? res.statusCode : 499, bytes: 0 });
      over();
    });

    const fail = (error: ProxyError) => {
      if (res.headersSent || res.destroyed) {
        res.destroy(error);
        return;
      }
      const body = error.body;
      res.writeHead(error.status, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        // A request body we did not read leaves the connection unusable.
        ...(req.complete ? {} : { connection: "close" }),
      });
      res.end(body);
      if (error.status >= 500) ctx.log.warn({ requestId, code: error.code }, error.message);
    };
    const reply = (error: ProxyError) => {
      fail(error);
      finish({ status: error.status, bytes: 0, error });
    };

    const via = req.headers.via;
    if (via !== undefined && (Array.isArray(via) ? via.join(",") : via).includes(ctx.via)) {
      reply(new ProxyError("PRT_ERR_LOOP", `request came back to this proxy (Via: ${via})`));
      return;
    }
    const { path, query } = splitTarget(target);
    const server = router.serverFor(host);
    const matched = server.match(path);
    if (!matched) {
      reply(new ProxyError("PRT_ERR_NO_ROUTE", `no route for ${path} on this server`));
      return;
    }
    const route = matched.route;
    const action = route.action;

    if (action.kind === "return") {
      const body = Buffer.from(action.body);
      const headers: Record<string, string | number> = {
        "content-type": action.contentType,
        "content-length": body.length,
      };
      applyEdits(headers, route.responseHeaders);
      res.writeHead(action.status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
      finish({ status: action.status, bytes: body.length });
      return;
    }
    if (action.kind === "redirect") {
      const location = expandRedirect(action.to, { scheme, host, path, query });
      const body = `${action.status} Redirect\n`;
      const headers = {
        location,
        "content-type": "text/plain; charset=utf-8",
        "content-length": body.length,
      };
      applyEdits(headers, route.responseHeaders);
      res.writeHead(action.status, headers);
      res.end(body);
      finish({ status: action.status, bytes: body.length });
      return;
    }

    const group = ctx.upstreams.get(action.upstream);
    const peer = group?.pick();
    if (!peer) {
      const why = group?.missing.length ? `: ${group.missing.join("; ")}` : "";
      const message = `upstream '${action.upstream}' has no peer to send to${why}`;
      reply(new ProxyError("PRT_ERR_NO_PEER", message, { detail: message }));
      return;
    }
    upstreamAddress = peer.address;

    const body = requestBody(req, server.server.maxRequestBody);
    if (body instanceof ProxyError) {
      reply(body);
      return;
    }

    const headers = withoutHopByHop(req.headers);
    headers["x-forwarded-for"] = appendList(req.headers["x-forwarded-for"], req.socket.remoteAddress ?? "");
    headers["x-forwarded-proto"] = scheme;
    if (host) headers["x-forwarded-host"] = host;
    headers["x-request-id"] = requestId;
    headers.via = appendList(via, ctx.via);
    applyEdits(headers, route.requestHeaders);

    const upstreamPath = upstreamTarget(route, path, query);
    // A request without a body can go to another peer when one cannot be reached (at most
    // MAX_TRIES peers); with a body, the body stream may already be partly consumed.
    // `tried` is only built when a retry happens: the common request allocates nothing for it.
    const send = (to: Peer, tried: Set<Peer> | undefined) => {
      upstreamAddress = to.address;
      forward({
        req,
        res,
        peer: to,
        method: req.method ?? "GET",
        target: upstreamPath,
        headers,
        body,
        responseHeaders: route.responseHeaders,
        done: finish,
        fail,
        retry:
          body === null && group
            ? (error) => {
                const seen = tried ?? new Set<Peer>();
                seen.add(to);
                const next = seen.size < MAX_TRIES ? group.pick(seen) : undefined;
                if (!next) return false;
                ctx.log.warn(
                  { requestId, peer: to.address, next: next.address },
                  `${error.message}; trying the next peer`,
                );
                send(next, seen);
                return true;
              }
            : undefined,
      });
    };
    send(peer, undefined);
  };
}

/** The request body stream to forward, null when there is none, or a 413 when it is too large. */
function requestBody(req: IncomingMessage, limit: number): NodeJS.ReadableStream | null | ProxyError {
  const length = req.headers["content-length"];
  const chunked = req.headers["transfer-encoding"] !== undefined;
  if (!chunked && (length === undefined || length === "0")) return null;
  if (limit > 0 && length !== undefined && Number(length) > limit) {
    return new ProxyError("PRT_ERR_BODY_TOO_LARGE", `request body of ${length} bytes exceeds ${limit}`);
  }
  if (limit === 0 || !chunked) return req;
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) cb(new ProxyError("PRT_ERR_BODY_TOO_LARGE", `request body exceeds ${limit} bytes`));
      else cb(null, chunk);
    },
  });
  req.on("error", (err) => counter.destroy(err));
  return req.pipe(counter);
}

/** Path and query sent upstream: the normalized path, with the matched prefix removed when asked. */
function upstreamTarget(route: Route, path: string, query: string): string {
  if (route.action.kind === "upstream" && route.action.stripPrefix && route.match.kind === "prefix") {
    const rest = path.slice(route.match.path.length);
    return `${rest.startsWith("/") ? rest : `/${rest}`}${query}`;
  }
  return `${path}${query}`;
}

/** Substitute nginx-style variables in a redirect target. */
function expandRedirect(
  to: string,
  v: { scheme: string; host: string; path: string; query: string },
): string {
  return to.replace(/\$(request_uri|scheme|host|uri|args)\b/g, (_, name: string) => {
    switch (name) {
      case "request_uri":
        return `${v.path}${v.query}`;
      case "scheme":
        return v.scheme;
      case "host":
        return v.host;
      case "uri":
        return v.path;
      default:
        return v.query.slice(1);
    }
  });
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
