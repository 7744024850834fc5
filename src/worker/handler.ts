/**
 * The request handler of a listen socket: route (Host, then path), then run the route's
 * action (forward to an upstream, return a fixed response, or redirect). The `Exchange`
 * (proxy.ts) carries the request from there to its access-log line.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { type Readable, Transform } from "node:stream";
import type { HashKey, RequestLimits, Route } from "../config/types.js";
import { ProxyError } from "./errors.js";
import { appendSet, type CompiledEdits, type HeaderList, upstreamRequestHeaders } from "./headers.js";
import { type ClientRequest, Exchange, type HandlerContext } from "./proxy.js";
import type { RateDecision } from "./rate-limit.js";
import {
  type CompiledRoute,
  encodePath,
  type HostRouter,
  normalizeHost,
  parseTarget,
  type ServerRoutes,
  type Target,
} from "./router.js";
import { forwardWithTrailers } from "./trailers.js";
import { isWebSocketUpgrade, openTunnel } from "./tunnel.js";

export type { HandlerContext } from "./proxy.js";

/**
 * HTTP/2 request bodies up to this size are read whole before the request is forwarded, so
 * a body that disagrees with its Content-Length (which node:http2 only finds at the end of
 * the stream) never reaches the upstream, even in part (nginx buffers request bodies too).
 */
const H2_BUFFERED_BODY = 64 * 1024;

/** No bytes after the request header (an HTTP/2 tunnel has none). */
const EMPTY = Buffer.alloc(0);

/**
 * Build the handler of one listen socket: `(req, res)` for a request, with `upgradeHead`
 * (the bytes after the request header) for an HTTP/1.1 `Upgrade` request.
 */
export function createRequestHandler(ctx: HandlerContext, router: HostRouter, scheme: "http" | "https") {
  return (req: ClientRequest, res: ServerResponse | Http2ServerResponse, upgradeHead?: Buffer): void => {
    serve(ctx, router, scheme, new Exchange(ctx, req, res), upgradeHead);
  };
}

/**
 * What node:http2 lets through that RFC 9113 §8.3 still calls malformed (it refuses
 * connection-specific fields, upper-case names, a bad or missing :path and a Content-Length
 * the DATA disagrees with itself; fields with CR, LF or NUL it drops): a fragment in :path,
 * and a Host that names another authority than :authority.
 */
function malformedH2(req: IncomingMessage): string | undefined {
  const path = req.headers[":path"] as string | undefined;
  if (path?.includes("#")) return ":path contains a fragment ('#')";
  const host = req.headers.host;
  const authority = req.headers[":authority"] as string | undefined;
  if (host !== undefined && authority !== undefined && normalizeHost(host) !== normalizeHost(authority)) {
    return `Host '${host}' differs from :authority '${authority}'`;
  }
  return undefined;
}

/**
 * What Node's strict HTTP/1 parser lets through that still makes a request ambiguous or
 * over a limit (it refuses Content-Length with Transfer-Encoding, duplicate or malformed
 * Content-Length, obs-fold and control characters itself): a Transfer-Encoding other than
 * `chunked` (RFC 9112 §6.1: a proxy must not guess), Transfer-Encoding in HTTP/1.0, more than
 * one Host (§3.2), and the server's URL and header limits.
 */
function headProblem(req: IncomingMessage, limits: RequestLimits, h2: boolean): ProxyError | undefined {
  const url = req.url ?? "";
  if (url.length > limits.maxUrl) {
    return new ProxyError(
      "PRT_ERR_URI_TOO_LONG",
      `request target of ${url.length} bytes exceeds max_url ${limits.maxUrl}`,
    );
  }
  const raw = req.rawHeaders;
  if (raw.length > 2 * limits.maxHeaders) {
    return new ProxyError(
      "PRT_ERR_HEADERS_TOO_LARGE",
      `more than max_headers ${limits.maxHeaders} header fields (${raw.length / 2})`,
    );
  }
  let size = url.length + (req.method?.length ?? 0) + 12;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    size += name.length + (raw[i + 1] as string).length + 4;
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
  }
  if (size > limits.maxHeaderSize) {
    return new ProxyError(
      "PRT_ERR_HEADERS_TOO_LARGE",
      `request head of ${size} bytes exceeds max_header_size ${limits.maxHeaderSize}`,
    );
  }
  if (h2) return undefined;
  if (req.httpVersionMajor !== 1) {
    return new ProxyError("PRT_ERR_BAD_REQUEST", `HTTP/${req.httpVersion} in an HTTP/1 request line`);
  }
  if (hosts > 1)
    return new ProxyError("PRT_ERR_BAD_REQUEST", `${hosts} Host header fields (RFC 9112 §3.2 allows one)`);
  const te = req.headers["transfer-encoding"];
  if (te !== undefined) {
    if (req.httpVersionMinor === 0) {
      return new ProxyError(
        "PRT_ERR_BAD_REQUEST",
        "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)",
      );
    }
    if (te.length !== 7 || te.toLowerCase() !== "chunked") {
      return new ProxyError("PRT_ERR_BAD_REQUEST", `Transfer-Encoding '${te}' (only 'chunked' is accepted)`);
    }
  }
  return undefined;
}

/** Methods a reverse proxy never forwards: CONNECT (it is not a forward proxy) and TRACE (it echoes credentials). */
const REFUSED_METHODS = new Set(["CONNECT", "TRACE"]);

function serve(
  ctx: HandlerContext,
  router: HostRouter,
  scheme: "http" | "https",
  x: Exchange,
  upgradeHead: Buffer | undefined,
): void {
  const req = x.req;
  if (x.behindRefusal) {
    x.drop();
    return;
  }
  if (x.h2) {
    const malformed = malformedH2(req);
    if (malformed) {
      x.refuseStream(malformed);
      return;
    }
  }
  const method = req.method ?? "GET";
  if (x.h2 && method === "CONNECT" && req.headers[":protocol"] !== undefined) {
    // RFC 8441 extended CONNECT: a WebSocket becomes a tunnel; another protocol is not known here.
    const protocol = req.headers[":protocol"] as string;
    if (protocol !== "websocket") {
      x.reply(
        new ProxyError(
          "PRT_ERR_NOT_IMPLEMENTED",
          `extended CONNECT for '${protocol}' (only websocket is tunnelled)`,
        ),
      );
      return;
    }
    x.extendedConnect = true;
  } else if (REFUSED_METHODS.has(method)) {
    x.refuse(
      new ProxyError("PRT_ERR_METHOD_NOT_ALLOWED", `${method} is not served by a reverse proxy`, {
        headers: ["allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"],
      }),
    );
    return;
  }
  const via = req.headers.via;
  if (via !== undefined && (Array.isArray(via) ? via.join(",") : via).includes(ctx.via)) {
    x.reply(new ProxyError("PRT_ERR_LOOP", `request came back to this proxy (Via: ${via})`));
    return;
  }
  const target = parseTarget(x.target);
  if (typeof target === "string") {
    x.refuse(new ProxyError("PRT_ERR_BAD_REQUEST", target));
    return;
  }
  if (target.authority !== undefined) {
    // RFC 9112 §3.2.2: the target's authority wins over Host; no server for it, no request.
    if (!router.serves(target.authority)) {
      x.refuse(
        new ProxyError(
          "PRT_ERR_BAD_REQUEST",
          `absolute-form request for '${target.authority}', a host no server here names (Portico is not a forward proxy)`,
        ),
      );
      return;
    }
    x.host = target.authority;
  }
  const server = router.serverFor(x.host);
  const problem = headProblem(req, server.server.limits, x.h2);
  if (problem) {
    x.refuse(problem);
    return;
  }
  if (scheme === "http" && server.httpsOrigin !== undefined) {
    redirectToHttps(x, server.httpsOrigin, server.server.exactNames[0], target);
    return;
  }
  const matched = server.match(target.path);
  if (!matched) {
    x.reply(new ProxyError("PRT_ERR_NO_ROUTE", `no route for ${target.path} on this server`));
    return;
  }
  x.routeMetrics = ctx.metrics.forRoute(server.server, matched.route);
  const limit = matched.route.rateLimit;
  if (limit === undefined) {
    act(ctx, scheme, x, server, matched, target, upgradeHead);
    return;
  }
  const key = limit.key.kind === "client_ip" ? x.client : headerText(req.headers[limit.key.name]);
  const decision = ctx.rateLimits.check(limit, key);
  const decided = (d: RateDecision) => {
    if (d.allowed) act(ctx, scheme, x, server, matched, target, upgradeHead);
    else
      x.reply(
        new ProxyError("PRT_ERR_RATE_LIMITED", `over the rate limit of route ${limit.id} for '${key}'`, {
          headers: ["retry-after", String(Math.max(1, Math.ceil(d.retryAfterSec)))],
        }),
      );
  };
  if ("then" in decision) decision.then(decided, () => decided({ allowed: true, retryAfterSec: 0 }));
  else decided(decision);
}

/** A header's value as one string ("" when absent). */
function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(",") : (value ?? "");
}

/** Run the matched route's action. */
function act(
  ctx: HandlerContext,
  scheme: "http" | "https",
  x: Exchange,
  server: ServerRoutes,
  matched: CompiledRoute,
  target: Target,
  upgradeHead: Buffer | undefined,
): void {
  const req = x.req;
  const route = matched.route;
  const action = route.action;
  const { path, query } = target;

  if (action.kind === "return") {
    const body = Buffer.from(action.body);
    const headers: HeaderList = ["content-type", action.contentType, "content-length", String(body.length)];
    x.respond(action.status, withEdits(headers, matched.responseEdits), body, body.length);
    return;
  }
  if (action.kind === "redirect") {
    const location = expandRedirect(action.to, {
      scheme,
      host: x.host,
      path,
      query,
      requestUri: target.origin,
    });
    const body = `${action.status} Redirect\n`;
    x.respond(
      action.status,
      withEdits(redirectHeaders(location, body), matched.responseEdits),
      body,
      body.length,
    );
    return;
  }

  const group = ctx.upstreams.get(action.upstream);
  const key = group?.hashKey ? hashKeyOf(group.hashKey, x.client, x.req.headers, path, query) : undefined;
  x.balanceKey = key;
  const peer = group?.pick(undefined, key);
  if (!group || !peer) {
    const why = group?.missing.length
      ? `: ${group.missing.join("; ")}`
      : group?.peers.length
        ? ": every peer is down (on_all_down: fail)"
        : "";
    const message = `upstream '${action.upstream}' has no peer to send to${why}`;
    x.reply(new ProxyError("PRT_ERR_NO_PEER", message, { detail: message }));
    return;
  }
  const websocket =
    x.extendedConnect || (upgradeHead !== undefined && isWebSocketUpgrade(req.headers.upgrade));
  const body = websocket
    ? null
    : requestBody(x, server.server.limits.maxRequestBody, ctx.timeouts.clientBody);
  if (body instanceof ProxyError) {
    x.reply(body);
    return;
  }
  if (upgradeHead !== undefined && !websocket && body !== null) {
    // Node stops reading after an Upgrade request's header: its body cannot be forwarded.
    x.reply(new ProxyError("PRT_ERR_BAD_REQUEST", `Upgrade: ${req.headers.upgrade} with a request body`));
    return;
  }
  const headers = upstreamRequestHeaders(req.headers, matched.requestEdits, {
    remote: x.remote,
    trusted: x.fromTrustedProxy,
    proto: scheme,
    host: x.host,
    requestId: x.requestId,
    via: ctx.via,
  });
  // HTTP/1.1 needs Host: an HTTP/2 request names its authority in :authority instead, and
  // an absolute-form target's authority replaces the Host received (RFC 9112 §3.2.2).
  if (x.wantsTrailers) headers.push("te", "trailers");
  if (target.authority !== undefined) setHeader(headers, "host", target.authority);
  else if (x.h2 && req.headers.host === undefined && x.host) headers.push("host", x.host);
  const upstreamPath = upstreamTarget(route, target);
  if (websocket) {
    openTunnel(ctx, x, peer, upstreamPath, headers, upgradeHead ?? EMPTY, matched.responseEdits);
    return;
  }
  if (body !== null && req.headers.trailer !== undefined) {
    // undici cannot send request trailers: this request goes through node:http (trailers.ts).
    forwardWithTrailers(ctx, x, peer, upstreamPath, headers, body, matched.responseEdits);
    return;
  }
  if (x.h2 && body !== null && Number(req.headers["content-length"]) <= H2_BUFFERED_BODY) {
    readWhole(req).then(
      (whole) => x.forward(group, peer, upstreamPath, headers, whole, matched.responseEdits),
      // The stream was reset (a body longer or shorter than its Content-Length, or the
      // client cancelled): the response's `close` logs it; nothing was sent upstream.
      () => {},
    );
    return;
  }
  x.forward(group, peer, upstreamPath, headers, body, matched.responseEdits);
}

/** Replace the value of `name` in a flat header list (add it when absent). */
function setHeader(headers: HeaderList, name: string, value: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) {
      headers[i + 1] = value;
      return;
    }
  }
  headers.push(name, value);
}

/** The key `balance: hash` hashes for this request. */
export function hashKeyOf(
  spec: HashKey,
  client: string,
  headers: IncomingHttpHeaders,
  path: string,
  query: string,
): string {
  switch (spec.kind) {
    case "client_ip":
      return client;
    case "uri":
      return `${path}${query}`;
    case "header": {
      const value = headers[spec.name];
      return Array.isArray(value) ? value.join(",") : (value ?? "");
    }
    case "cookie":
      return cookieValue(headers.cookie, spec.name);
  }
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §4.2), "" when absent. */
function cookieValue(header: string | undefined, name: string): string {
  if (!header) return "";
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return "";
}

/** The whole body of a (small) request. */
function readWhole(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("aborted", () => reject(new Error("aborted")));
    req.on("error", reject);
  });
}

/** https_redirect: 308 to the same host, path and query on the server's first `tls` address. */
function redirectToHttps(
  x: Exchange,
  origin: { port: number },
  fallbackName: string | undefined,
  target: Target,
): void {
  const host = x.host ? normalizeHost(x.host) : fallbackName;
  if (!host) {
    x.reply(new ProxyError("PRT_ERR_BAD_REQUEST", "no Host header to redirect to https with"));
    return;
  }
  const location = `https://${host}${origin.port === 443 ? "" : `:${origin.port}`}${target.origin}`;
  const body = "308 Permanent Redirect\n";
  x.respond(308, redirectHeaders(location, body), body, body.length);
}

/** The headers of a redirect Portico answers itself, with its short plain-text body. */
function redirectHeaders(location: string, body: string): HeaderList {
  return [
    "location",
    location,
    "content-type",
    "text/plain; charset=utf-8",
    "content-length",
    String(body.length),
  ];
}

/** A fixed response's own headers with the route's response edits applied (remove, then set). */
function withEdits(headers: HeaderList, edits: CompiledEdits): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!edits.overridden.has(headers[i] as string)) out.push(headers[i], headers[i + 1]);
  }
  return appendSet(out, edits);
}

/**
 * The request body stream to forward, null when there is none, or a 413 when it is too
 * large. A body that stays silent for `timeouts.client_body` fails the request with 408.
 */
function requestBody(x: Exchange, limit: number, idleMs: number): Readable | null | ProxyError {
  const req = x.req;
  const length = req.headers["content-length"];
  // HTTP/2 frames the body itself: there is one unless HEADERS ended the stream.
  const chunked = x.h2
    ? !(req as unknown as Http2ServerRequest).stream.endAfterHeaders
    : req.headers["transfer-encoding"] !== undefined;
  if (length === "0" || (!chunked && length === undefined)) return null;
  if (limit > 0 && length !== undefined && Number(length) > limit) {
    return new ProxyError("PRT_ERR_BODY_TOO_LARGE", `request body of ${length} bytes exceeds ${limit}`);
  }
  if (idleMs > 0) x.watchBody(idleMs);
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

/**
 * Path and query sent upstream: the target as the client sent it (origin-form), or, when
 * the route strips its prefix, the normalized path without it and the query as received.
 */
export function upstreamTarget(route: Route, target: Target): string {
  if (route.action.kind === "upstream" && route.action.stripPrefix && route.match.kind === "prefix") {
    const rest = target.path.slice(route.match.path.length);
    return `${encodePath(rest.startsWith("/") ? rest : `/${rest}`)}${target.query}`;
  }
  return target.origin;
}

/** Substitute nginx-style variables in a redirect target. */
function expandRedirect(
  to: string,
  v: { scheme: string; host: string; path: string; query: string; requestUri: string },
): string {
  return to.replace(/\$(request_uri|scheme|host|uri|args)\b/g, (_, name: string) => {
    switch (name) {
      case "request_uri":
        return v.requestUri;
      case "scheme":
        return v.scheme;
      case "host":
        return v.host;
      default:
        return name === "uri" ? v.path : v.query.slice(1);
    }
  });
}
