/**
 * WebSocket tunnels (HTTP/1.1 `Upgrade: websocket`, RFC 6455): the request goes to a peer
 * on a connection of its own; a `101` from the peer is passed to the client and both
 * sockets are then piped to each other with `stream.pipeline`, so an error or a close on
 * either side closes both. Any other answer (the peer refused the upgrade) is passed back
 * as an ordinary response. Only `websocket` is tunnelled: another upgrade (`h2c`, ...) is
 * served as a plain request without its `Upgrade` header (see handler.ts).
 *
 * WebSocket over HTTP/2 (RFC 8441): a client's extended CONNECT (`:protocol: websocket`)
 * becomes an HTTP/1.1 upgrade to the peer (a GET with `Upgrade: websocket` and a
 * `Sec-WebSocket-Key` Portico makes, whose `Sec-WebSocket-Accept` it checks); the peer's
 * `101` becomes `200` on the stream, and the stream and the peer's socket are piped to each
 * other. WebSocket frames are the same on both legs; END_STREAM is a FIN and RST_STREAM a
 * reset (RFC 8441 §5), and the stream's flow control holds the peer back.
 */
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { type Http2ServerRequest, type Http2ServerResponse, constants as h2constants } from "node:http2";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { Peer } from "../upstream/peer.js";
import { classifyUpstreamError, ProxyError } from "./errors.js";
import { appendSet, type CompiledEdits, copyHeaders, type HeaderList } from "./headers.js";
import type { Exchange, HandlerContext } from "./proxy.js";

/** RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key before it is hashed. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The `Sec-WebSocket-Accept` a peer must answer `key` with (RFC 6455 §4.2.2). */
function acceptFor(key: string): string {
  return createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
}

/** Fields an HTTP/1.1 upgrade has and an RFC 8441 request must not: Portico sets its own. */
const H1_HANDSHAKE = new Set(["sec-websocket-key", "sec-websocket-accept"]);

/** True when a request asks to upgrade to WebSocket (`Upgrade` lists `websocket`, RFC 9110 §7.8). */
export function isWebSocketUpgrade(upgrade: string | undefined): boolean {
  if (upgrade === undefined) return false;
  for (const token of upgrade.split(",")) {
    if (token.trim().toLowerCase().split("/")[0] === "websocket") return true;
  }
  return false;
}

/** `host` and `port` of a peer address (`10.0.0.5:8080`, `[::1]:8080`). */
export function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(address.slice(colon + 1)) };
}

function ignore(): void {}

/**
 * `close` listeners the two pipelines add to one socket: 8 on the client's on Node 20 (eos
 * for each pipeline, the destroyer, `pipe`'s unpipe-on-close), which has 3 to 5 already
 * (Node's server, the connection tracker, the response; TLS adds its own). Past 10 Node
 * prints a MaxListenersExceededWarning ("possible memory leak") for every tunnel.
 */
const PIPELINE_LISTENERS = 10;

/** Raise `socket`'s listener cap by what the pipelines add (0 means no cap: left alone). */
function allowPipelines(socket: Socket): void {
  const max = socket.getMaxListeners();
  if (max !== 0) socket.setMaxListeners(max + PIPELINE_LISTENERS);
}

/**
 * Send the upgrade request `x` to `peer` and, on `101`, join the client's socket (or, for
 * an RFC 8441 extended CONNECT, its HTTP/2 stream) to the peer's. `headers` are the
 * forwarded request headers (hop-by-hop ones already removed); `head` is what the client
 * sent after its request header (HTTP/1.1).
 */
export function openTunnel(
  ctx: HandlerContext,
  x: Exchange,
  peer: Peer,
  path: string,
  headers: HeaderList,
  head: Buffer,
  responseEdits: CompiledEdits,
): void {
  const { host, port } = hostPort(peer.address);
  const key = x.extendedConnect ? randomBytes(16).toString("base64") : undefined;
  const upgradeHeaders =
    key === undefined
      ? [...(headers as string[]), "connection", "upgrade", "upgrade", x.req.headers.upgrade as string]
      : [
          ...(withoutHandshake(headers) as string[]),
          "connection",
          "upgrade",
          "upgrade",
          "websocket",
          "sec-websocket-key",
          key,
        ];
  const request = http.request({
    host,
    port,
    method: key === undefined ? x.req.method : "GET",
    path,
    headers: upgradeHeaders,
    agent: false,
    setHost: false,
    // Until the peer answers: connect and response header share the header timeout.
    timeout: ctx.timeouts.upstreamHeader,
  });
  const fail = (err: Error) => {
    request.destroy();
    if (!x.tunnel) x.upstreamFailed(classifyUpstreamError(err, peer.address), peer.address);
  };
  request.on("timeout", () => {
    const err = Object.assign(new Error(`${peer.address} did not answer the upgrade in time`), {
      code: "UND_ERR_HEADERS_TIMEOUT",
    });
    fail(err);
  });
  request.on("error", fail);
  request.on("response", (response) => {
    // The peer refused the upgrade: its answer goes back as it is.
    x.relay(response, peer.address, responseEdits);
  });
  request.on("upgrade", (response: http.IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
    upstream.on("error", ignore);
    if (x.tunnelGone) {
      upstream.destroy();
      return;
    }
    request.setTimeout(0);
    if (key === undefined) joinSocket(ctx, x, peer, response, upstream, upstreamHead, head);
    else joinStream(ctx, x, peer, response, upstream, upstreamHead, key, responseEdits);
  });
  request.end();
}

/** `headers` without a client's own Sec-WebSocket-Key/-Accept (an RFC 8441 client sends none). */
function withoutHandshake(headers: HeaderList): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!H1_HANDSHAKE.has(headers[i] as string)) out.push(headers[i], headers[i + 1]);
  }
  return out;
}

/** HTTP/1.1: pass the `101` on as it came and join the two sockets. */
function joinSocket(
  ctx: HandlerContext,
  x: Exchange,
  peer: Peer,
  response: http.IncomingMessage,
  upstream: Socket,
  upstreamHead: Buffer,
  head: Buffer,
): void {
  const client = x.req.socket;
  let text = `HTTP/1.1 101 ${response.statusMessage || "Switching Protocols"}\r\n`;
  const raw = response.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  client.write(`${text}\r\n`);
  const before = client.bytesWritten;
  x.tunnel = { bytes: () => client.bytesWritten - before, peer: peer.address, status: 101 };
  if (upstreamHead.length > 0) client.write(upstreamHead);
  if (head.length > 0) upstream.write(head);
  ctx.connections.tunnelOpened(client);
  client.setTimeout(ctx.timeouts.tunnelIdle, () => client.destroy());
  // Either pipeline destroys both sockets on an error or a premature close.
  allowPipelines(client);
  allowPipelines(upstream);
  pipeline(client, upstream, ignore);
  pipeline(upstream, client, ignore);
}

/**
 * HTTP/2 (RFC 8441): check the peer's `Sec-WebSocket-Accept`, answer the stream with `200`
 * and the `101`'s end-to-end fields (the route's response edits applied), and join the
 * stream to the peer's socket.
 */
function joinStream(
  ctx: HandlerContext,
  x: Exchange,
  peer: Peer,
  response: http.IncomingMessage,
  upstream: Socket,
  upstreamHead: Buffer,
  key: string,
  responseEdits: CompiledEdits,
): void {
  const accept = response.headers["sec-websocket-accept"];
  if (accept !== acceptFor(key)) {
    upstream.destroy();
    const message =
      accept === undefined
        ? `${peer.address} answered the WebSocket upgrade without Sec-WebSocket-Accept`
        : `${peer.address} answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept '${accept}'`;
    x.upstreamFailed(new ProxyError("PRT_ERR_UPSTREAM_PROTOCOL", message), peer.address);
    return;
  }
  const out = withoutHandshake(appendSet(copyHeaders(response.headers, responseEdits, []), responseEdits));
  const req = x.req as unknown as Http2ServerRequest;
  const res = x.res as unknown as Http2ServerResponse;
  res.writeHead(200, out as unknown as Record<string, string>);
  const before = upstream.bytesRead - upstreamHead.length;
  x.tunnel = { bytes: () => upstream.bytesRead - before, peer: peer.address, status: 200 };
  if (upstreamHead.length > 0) res.write(upstreamHead);
  const stream = req.stream;
  ctx.connections.tunnelOpened(stream);
  // Idle: RST_STREAM CANCEL, the counterpart of the HTTP/1.1 socket being closed.
  stream.setTimeout(ctx.timeouts.tunnelIdle, () => stream.close(h2constants.NGHTTP2_CANCEL));
  allowPipelines(upstream);
  // The compatibility objects read and write the stream (with its flow control); an
  // error or a reset on either leg destroys both.
  pipeline(req, upstream, ignore);
  pipeline(upstream, res as unknown as NodeJS.WritableStream, ignore);
}
