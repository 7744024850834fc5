/**
 * WebSocket tunnels (HTTP/1.1 `Upgrade: websocket`, RFC 6455): the request goes to a peer
 * on a connection of its own; a `101` from the peer is passed to the client and both
 * sockets are then piped to each other with `stream.pipeline`, so an error or a close on
 * either side closes both. Any other answer (the peer refused the upgrade) is passed back
 * as an ordinary response. Only `websocket` is tunnelled: another upgrade (`h2c`, ...) is
 * served as a plain request without its `Upgrade` header (see handler.ts).
 */
import http from "node:http";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { Peer } from "../upstream/peer.js";
import { classifyUpstreamError } from "./errors.js";
import type { CompiledEdits, HeaderList } from "./headers.js";
import type { Exchange, HandlerContext } from "./proxy.js";

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
 * Send the upgrade request `x` to `peer` and, on `101`, join the client's socket to the
 * peer's. `headers` are the forwarded request headers (hop-by-hop ones already removed);
 * `head` is what the client sent after its request header.
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
  const client = x.req.socket;
  const { host, port } = hostPort(peer.address);
  const upgrade = x.req.headers.upgrade as string;
  const request = http.request({
    host,
    port,
    method: x.req.method,
    path,
    headers: [...(headers as string[]), "connection", "upgrade", "upgrade", upgrade],
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
  request.on("upgrade", (response, upstream: Socket, upstreamHead: Buffer) => {
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    request.setTimeout(0);
    upstream.on("error", ignore);
    let text = `HTTP/1.1 101 ${response.statusMessage || "Switching Protocols"}\r\n`;
    const raw = response.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
    client.write(`${text}\r\n`);
    const before = client.bytesWritten;
    x.tunnel = { bytes: () => client.bytesWritten - before, peer: peer.address };
    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (head.length > 0) upstream.write(head);
    ctx.connections.tunnelOpened(client);
    client.setTimeout(ctx.timeouts.tunnelIdle, () => client.destroy());
    // Either pipeline destroys both sockets on an error or a premature close.
    allowPipelines(client);
    allowPipelines(upstream);
    pipeline(client, upstream, ignore);
    pipeline(upstream, client, ignore);
  });
  request.end();
}
