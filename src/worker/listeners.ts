/**
 * The listen sockets of a worker: one server per distinct `listen` address, serving every
 * virtual server configured on it. Under node:cluster the master owns the socket and the
 * workers share it; `listen` here asks the master for it, and with SCHED_NONE (set by the
 * master) the master sends the socket itself, so this worker accepts from it directly.
 *
 * Three kinds of address:
 * - plain: node:http (HTTP/1.1, with WebSocket upgrades);
 * - `h2c`: the first bytes of a connection decide: the HTTP/2 preface goes to a node:http2
 *   server (prior knowledge, RFC 9113 §3.3), anything else to node:http;
 * - `tls`: node:http2's secure server with `allowHTTP1`: ALPN picks h2 or http/1.1, SNI the
 *   certificate (src/tls/contexts.ts). Session tickets use the key the master shares.
 */
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net, { type AddressInfo, type Socket } from "node:net";
import type tls from "node:tls";
import type { Config, Server } from "../config/types.js";
import type { BoundAddress } from "../ipc.js";
import { tlsServerOptions } from "../tls/contexts.js";
import type { TlsMaterial } from "../tls/material.js";
import { createRequestHandler, type HandlerContext } from "./handler.js";
import { HostRouter } from "./router.js";

/** An open listen socket and the servers it carries. */
export interface Listener {
  listen: string;
  /** The server that listens (closing it stops accepting). */
  server: net.Server;
  /** For `tls` addresses: the server whose session ticket key is shared. */
  tls?: tls.Server;
}

/** A listen address that could not be opened. */
export class ListenError extends Error {
  readonly listen: string;
  readonly code: string;
  constructor(listen: string, code: string, message: string) {
    super(message);
    this.listen = listen;
    this.code = code;
  }
}

interface ListenGroup {
  host: string;
  port: number;
  tls: boolean;
  h2c: boolean;
  servers: Server[];
}

/** Servers grouped by the listen address they share, in config order (checks.ts makes their flags agree). */
function groupByListen(servers: readonly Server[]): Map<string, ListenGroup> {
  const groups = new Map<string, ListenGroup>();
  for (const server of servers) {
    for (const l of server.listen) {
      const key = `${l.host}|${l.port}`;
      let group = groups.get(key);
      if (!group) {
        group = { host: l.host, port: l.port, tls: l.tls, h2c: l.h2c, servers: [] };
        groups.set(key, group);
      }
      group.servers.push(server);
    }
  }
  return groups;
}

function ignoreSocketError(): void {}

/** The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** What every listener's servers share. */
interface Shared {
  config: Config;
  ctx: HandlerContext;
  tls: TlsMaterial;
  ticketKey: Buffer;
}

type Handler = ReturnType<typeof createRequestHandler>;

const REASONS: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
};

/**
 * What a request head Node's HTTP/1 parser refused gets: 408 when it was too slow
 * (`timeouts.client_header`), 414 or 431 when it was too large, else 400.
 */
function clientErrorStatus(
  err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number },
): number {
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") return 408;
  if (err.code !== "HPE_HEADER_OVERFLOW") return 400;
  // Over max_header_size: 414 while the request line is still open (no line ended before
  // the parser gave up in the bytes it had), 431 once header fields have begun. A client
  // that sends its head in many small writes may get 431 for a long URL.
  const packet = err.rawPacket;
  if (!packet) return 431;
  const parsed = Math.min(packet.length, err.bytesParsed ?? packet.length);
  return packet.subarray(0, parsed).includes(0x0a) ? 431 : 414;
}

/**
 * Answer a request Node's HTTP/1 parser refused (or drop a connection that is gone, or
 * whose response has begun) and log it: it never reached the handler.
 */
function onClientError(ctx: HandlerContext) {
  return (err: NodeJS.ErrnoException, socket: net.Socket): void => {
    const busy = (socket as net.Socket & { _httpMessage?: unknown })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err);
    const body = `${status} ${REASONS[status]}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    if (ctx.accessLog.enabled) {
      ctx.accessLog.write({
        requestId: "-",
        remote: socket.remoteAddress ?? "",
        method: "",
        host: "",
        path: "",
        status,
        bytes: 0,
        ms: 0,
        error: status === 408 ? "PRT_ERR_CLIENT_TIMEOUT" : "PRT_ERR_BAD_REQUEST",
        reason: status === 408 ? "request head not received within timeouts.client_header" : err.message,
      });
    }
  };
}

/**
 * CONNECT. HTTP/1.1: a reverse proxy is not a tunnel to anywhere (405, then the connection
 * is closed). HTTP/2 (node:http2 hands CONNECT streams over here, not to the request
 * handler): the handler runs, which tunnels an RFC 8441 WebSocket and refuses the rest.
 */
function onConnect(handler: Handler) {
  return (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    socket: Socket | http2.Http2ServerResponse,
  ) => {
    if (socket instanceof http2.Http2ServerResponse) {
      handler(req, socket);
      return;
    }
    const body = "405 Method Not Allowed\n";
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
  };
}

/**
 * HTTP/1.1 `Upgrade` requests: node:http hands them over with the socket detached from its
 * parser. A response object is put back on the socket so the request runs through the same
 * handler (WebSocket becomes a tunnel; anything else is answered as a plain request and the
 * connection closed after it).
 */
function onUpgrade(handler: Handler) {
  return (req: http.IncomingMessage, socket: Socket, head: Buffer): void => {
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on("finish", () => socket.end());
    handler(req, res, head);
  };
}

/** Settings every HTTP/1 side of a listener gets (before it listens). */
function http1Settings(
  server: http.Server | http2.Http2SecureServer,
  shared: Shared,
  group: ListenGroup,
  handler: Handler,
): void {
  // Read by node:http when the server starts listening / a connection comes: set before both.
  const s = server as http.Server & { connectionsCheckingInterval: number; maxHeaderSize: number };
  const { timeouts } = shared.config;
  s.keepAliveTimeout = timeouts.clientKeepalive;
  s.requestTimeout = 0;
  // The whole request head within client_header (slowloris), checked every 250 ms at most.
  s.headersTimeout = timeouts.clientHeader;
  s.connectionsCheckingInterval = Math.max(50, Math.min(250, timeouts.clientHeader / 4));
  // The parser holds the largest head any server here allows; each server's own limit is
  // checked once the request is routed (handler.ts). One more header than allowed is kept,
  // so "too many" is seen rather than silently cut.
  s.maxHeaderSize = Math.max(...group.servers.map((sv) => sv.limits.maxHeaderSize));
  s.maxHeadersCount = Math.max(...group.servers.map((sv) => sv.limits.maxHeaders)) + 1;
  server.on("upgrade", onUpgrade(handler));
  server.on("clientError", onClientError(shared.ctx));
  server.on("connect", onConnect(handler));
}

/**
 * `limits.max_connections`: the listen socket accepts no more than this per worker; the
 * kernel's extra connections are closed at once (Node's `drop`), counted and logged at most
 * once per 10 s.
 */
function capConnections(server: net.Server, shared: Shared, listen: string): void {
  const max = shared.config.limits.maxConnections;
  if (max === 0) return;
  server.maxConnections = max;
  let dropped = 0;
  let reported = 0;
  server.on("drop", () => {
    dropped++;
    shared.ctx.connections.dropped++;
    const now = Date.now();
    if (now - reported < 10_000) return;
    reported = now;
    shared.ctx.log.warn(
      { listen, dropped, maxConnections: max },
      `refusing connections on ${listen}: this worker has limits.max_connections (${max}) open`,
    );
  });
}

function h2Settings(config: Config): http2.Settings {
  // Header count and size of an HTTP/2 request are held by max_header_list_size (and the
  // server's own limits, checked in handler.ts).
  return {
    maxConcurrentStreams: config.http2.maxConcurrentStreams,
    maxHeaderListSize: config.http2.maxHeaderListSize,
    // RFC 8441: WebSocket over HTTP/2 (extended CONNECT).
    enableConnectProtocol: true,
  };
}

/**
 * An HTTP/2 session with no stream open for client_keepalive is closed (GOAWAY), as an idle
 * HTTP/1 connection is; so is one that carried `maxStreams` streams (0 = no limit), as
 * max_requests_per_connection closes an HTTP/1 connection.
 */
function closeIdleSessions(
  server: http2.Http2Server | http2.Http2SecureServer,
  idleMs: number,
  maxStreams: number,
): void {
  server.on("session", (session: http2.ServerHttp2Session) => {
    let open = 0;
    let streams = 0;
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      stream.once("close", () => open--);
      if (++streams === maxStreams) session.close();
    });
    session.setTimeout(idleMs, () => {
      if (open === 0) session.close();
    });
  });
}

function plainServer(shared: Shared, group: ListenGroup, router: HostRouter): { server: net.Server } {
  const handler = createRequestHandler(shared.ctx, router, "http");
  const h1 = http.createServer(handler);
  http1Settings(h1, shared, group, handler);
  shared.ctx.connections.watch(h1);
  if (!group.h2c) return { server: h1 };
  const h2 = http2.createServer({ settings: h2Settings(shared.config) }, handler);
  h2.on("connect", onConnect(handler));
  shared.ctx.connections.watch(h2);
  closeIdleSessions(
    h2,
    shared.config.timeouts.clientKeepalive,
    shared.config.limits.maxRequestsPerConnection,
  );
  // The first bytes decide; they are put back before the chosen server reads the socket.
  const server = net.createServer((socket) => {
    // A reset before the first byte (a port scanner) must not be an unhandled 'error'.
    socket.on("error", ignoreSocketError);
    // Bytes until they decide: a first segment may be shorter than the preface ("P" of POST).
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const prefix = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (prefix && n < H2_PREFACE.length) return; // not decided yet: wait for more
      socket.off("data", onData);
      socket.pause();
      socket.unshift(seen);
      if (prefix) {
        // node:http2 reads what is buffered itself (on the next tick): no resume here, it
        // would hand the bytes to no listener.
        h2.emit("connection", socket);
        shared.ctx.connections.markHttp2(socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
  // node:http checks header timeouts (client_header) from when it listens; this one never
  // does itself (the net server in front listens), so it is told.
  server.once("listening", () => h1.emit("listening"));
  return { server };
}

function tlsServer(
  shared: Shared,
  group: ListenGroup,
  serverIndex: Map<Server, number>,
): { server: net.Server; tls: tls.Server } {
  const router = new HostRouter(group.servers, true);
  const handler = createRequestHandler(shared.ctx, router, "https");
  const options = tlsServerOptions(
    group.servers.map((server) => ({
      server,
      certificates: shared.tls[serverIndex.get(server) ?? -1] ?? [],
    })),
    (name) => router.serverForName(name).server,
  );
  const config = shared.config;
  const server = config.http2.enabled
    ? http2.createSecureServer({ ...options, allowHTTP1: true, settings: h2Settings(config) }, handler)
    : https.createServer(options, handler);
  http1Settings(server as http.Server, shared, group, handler);
  if (server instanceof http.Server === false)
    closeIdleSessions(
      server as http2.Http2SecureServer,
      config.timeouts.clientKeepalive,
      config.limits.maxRequestsPerConnection,
    );
  shared.ctx.connections.watch(server, "secureConnection");
  // A failed handshake (a scanner, TLS 1.0, no shared cipher) is the client's problem, not a crash.
  const metrics = shared.ctx.metrics;
  server.on("secureConnection", () => metrics.tlsHandshake());
  server.on("tlsClientError", (err: Error, socket: Socket) => {
    metrics.tlsHandshakeFailed(err);
    socket.destroy();
  });
  (server as tls.Server).setTicketKeys(shared.ticketKey);
  return { server, tls: server as tls.Server };
}

/** Open every listen address of `config`; rejects with a ListenError naming the first that failed. */
export async function openListeners(
  config: Config,
  ctx: HandlerContext,
  material: { tls: TlsMaterial; ticketKey: string },
  opened: Listener[] = [],
): Promise<{ listeners: Listener[]; bound: BoundAddress[] }> {
  const listeners = opened;
  const bound: BoundAddress[] = [];
  const shared: Shared = {
    config,
    ctx,
    tls: material.tls,
    ticketKey: Buffer.from(material.ticketKey, "base64"),
  };
  ctx.connections.maxRequests = config.limits.maxRequestsPerConnection;
  const serverIndex = new Map(config.servers.map((s, i) => [s, i]));
  const plainRouters: HostRouter[] = [];
  /** `host|port` as configured -> the port bound (differs for port 0). */
  const boundPorts = new Map<string, number>();
  for (const [key, group] of groupByListen(config.servers)) {
    const hostPort = group.host.includes(":")
      ? `[${group.host}]:${group.port}`
      : `${group.host}:${group.port}`;
    const text = group.tls ? `${hostPort} tls` : group.h2c ? `${hostPort} h2c` : hostPort;
    let made: { server: net.Server; tls?: tls.Server };
    if (group.tls) {
      made = tlsServer(shared, group, serverIndex);
    } else {
      const router = new HostRouter(group.servers);
      plainRouters.push(router);
      made = plainServer(shared, group, router);
    }
    const server = made.server;
    capConnections(server, shared, text);
    listeners.push({ listen: text, ...made });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new ListenError(text, err.code ?? "UNKNOWN", err.message)),
      );
      server.listen({ host: group.host, port: group.port }, () => resolve());
    });
    const address = server.address() as AddressInfo;
    boundPorts.set(key, address.port);
    bound.push({ listen: text, address: address.address, port: address.port });
  }
  // https_redirect to a `tls` address written with port 0 (tests): the port the OS picked.
  for (const router of plainRouters) {
    for (const sr of router.servers) {
      const tlsListen = sr.server.listen.find((l) => l.tls);
      if (sr.httpsOrigin?.port === 0 && tlsListen) {
        sr.httpsOrigin.port = boundPorts.get(`${tlsListen.host}|${tlsListen.port}`) ?? 0;
      }
    }
  }
  return { listeners, bound };
}
