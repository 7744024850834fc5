/**
 * The request handler of a listen socket: route (Host, then path), then run the route's
 * action (forward to an upstream, return a fixed response, or redirect). The `Exchange`
 * (proxy.ts) carries the request from there to its access-log line.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Readable, Transform } from "node:stream";
import type { Route } from "../config/types.js";
import { ProxyError } from "./errors.js";
import { appendSet, type CompiledEdits, type HeaderList, upstreamRequestHeaders } from "./headers.js";
import { Exchange, type HandlerContext } from "./proxy.js";
import { type HostRouter, splitTarget } from "./router.js";

export type { HandlerContext } from "./proxy.js";

/** Build the `(req, res)` handler of one listen socket. */
export function createRequestHandler(ctx: HandlerContext, router: HostRouter, scheme: "http" | "https") {
  return (req: IncomingMessage, res: ServerResponse): void => {
    serve(ctx, router, scheme, new Exchange(ctx, req, res));
  };
}

function serve(ctx: HandlerContext, router: HostRouter, scheme: "http" | "https", x: Exchange): void {
  const req = x.req;
  const via = req.headers.via;
  if (via !== undefined && (Array.isArray(via) ? via.join(",") : via).includes(ctx.via)) {
    x.reply(new ProxyError("PRT_ERR_LOOP", `request came back to this proxy (Via: ${via})`));
    return;
  }
  const { path, query } = splitTarget(x.target);
  const server = router.serverFor(x.host);
  const matched = server.match(path);
  if (!matched) {
    x.reply(new ProxyError("PRT_ERR_NO_ROUTE", `no route for ${path} on this server`));
    return;
  }
  const route = matched.route;
  const action = route.action;

  if (action.kind === "return") {
    const body = Buffer.from(action.body);
    const headers: HeaderList = ["content-type", action.contentType, "content-length", String(body.length)];
    x.respond(action.status, withEdits(headers, matched.responseEdits), body, body.length);
    return;
  }
  if (action.kind === "redirect") {
    const location = expandRedirect(action.to, { scheme, host: x.host, path, query });
    const body = `${action.status} Redirect\n`;
    const headers: HeaderList = [
      "location",
      location,
      "content-type",
      "text/plain; charset=utf-8",
      "content-length",
      String(body.length),
    ];
    x.respond(action.status, withEdits(headers, matched.responseEdits), body, body.length);
    return;
  }

  const group = ctx.upstreams.get(action.upstream);
  const peer = group?.pick();
  if (!group || !peer) {
    const why = group?.missing.length ? `: ${group.missing.join("; ")}` : "";
    const message = `upstream '${action.upstream}' has no peer to send to${why}`;
    x.reply(new ProxyError("PRT_ERR_NO_PEER", message, { detail: message }));
    return;
  }
  const body = requestBody(req, server.server.maxRequestBody);
  if (body instanceof ProxyError) {
    x.reply(body);
    return;
  }
  const headers = upstreamRequestHeaders(req.headers, matched.requestEdits, {
    remote: x.remote,
    proto: scheme,
    host: x.host,
    requestId: x.requestId,
    via: ctx.via,
  });
  x.forward(group, peer, upstreamTarget(route, path, query), headers, body, matched.responseEdits);
}

/** A fixed response's own headers with the route's response edits applied (remove, then set). */
function withEdits(headers: HeaderList, edits: CompiledEdits): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!edits.overridden.has(headers[i] as string)) out.push(headers[i], headers[i + 1]);
  }
  return appendSet(out, edits);
}

/** The request body stream to forward, null when there is none, or a 413 when it is too large. */
function requestBody(req: IncomingMessage, limit: number): Readable | null | ProxyError {
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
  return query ? `${path}${query}` : path;
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
      default:
        return name === "uri" ? v.path : v.query.slice(1);
    }
  });
}
