/**
 * End-to-end: WebSocket tunnels (src/worker/tunnel.ts) through the real master and worker,
 * against real `ws` backends on loopback. Echo over ws:// and wss://, the forwarded upgrade
 * request, both legs closing together, a tunnel kept open across a reload until the old
 * worker's shutdown timeout, an h2c upgrade served as a plain request, an upgrade the
 * backend refuses, and `tunnel_idle`.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type http from "node:http";
import http2 from "node:http2";
import net, { type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as wsModule from "ws";
import WebSocket, { WebSocketServer } from "ws";
import { type Backend, type Echo, startBackend } from "../helpers/backend.js";
import { generateCert } from "../helpers/certs.js";
import { type LogLine, type Portico, startPortico } from "../helpers/portico.js";
import { rssBytes, sampleRss } from "../helpers/rss.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** RFC 6455 §1.3: the GUID a server appends to Sec-WebSocket-Key before hashing it. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A backend that echoes plain requests as JSON (helpers/backend.ts) and WebSocket messages as they came. */
interface WsBackend {
  backend: Backend;
  /** Upgrade requests received, in order. */
  upgrades: http.IncomingMessage[];
  /** Resolves with the n-th (0-based) server-side WebSocket and its raw socket. */
  connection: (n: number) => Promise<{ ws: WebSocket; socket: Socket }>;
}

/**
 * Start a backend; `onUpgrade` replaces the WebSocket echo (for a backend that refuses).
 * Every socket it accepted is destroyed in afterEach (upgraded ones included).
 */
async function wsBackend(
  name: string,
  onUpgrade?: (req: http.IncomingMessage, socket: Socket) => void,
): Promise<WsBackend> {
  const backend = await startBackend(name);
  const wss = new WebSocketServer({ noServer: true });
  const upgrades: http.IncomingMessage[] = [];
  const accepted: Array<{ ws: WebSocket; socket: Socket }> = [];
  const waiters: Array<() => void> = [];
  backend.server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    upgrades.push(req);
    if (onUpgrade) {
      onUpgrade(req, socket);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on("error", () => {});
      accepted.push({ ws, socket });
      for (const w of waiters.splice(0)) w();
    });
  });
  cleanup.push(async () => {
    for (const socket of backend.sockets) socket.destroy();
    for (const { ws } of accepted) ws.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await backend.close();
  });
  const connection = async (n: number) => {
    while (accepted.length <= n) await new Promise<void>((r) => waiters.push(r));
    return accepted[n];
  };
  return { backend, upgrades, connection };
}

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(() => p.stop());
  return p;
}

/** A temporary directory removed in afterEach. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "portico-ws-"));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A one-worker config sending `/` to `backend`; `timeouts` and `extra` server keys are added as given. */
function config(backend: Backend, opts: { timeouts?: string; listen?: string; extra?: string } = {}): string {
  return `
workers: 1
timeouts: { shutdown: 3s${opts.timeouts ? `, ${opts.timeouts}` : ""} }
upstreams:
  app: { servers: [{ address: ${backend.address} }] }
servers:
  - listen: ${opts.listen ?? "127.0.0.1:0"}
${opts.extra ?? ""}    routes:
      - path: /
        upstream: app
`;
}

/** Its `ws://` (or `wss://`) base for the first bound address matching `tls`. */
function base(p: Portico, tls = false): string {
  const b = p.bound.find((x) => x.listen.endsWith(" tls") === tls);
  if (!b) throw new Error(`no ${tls ? "tls" : "plain"} address in ${JSON.stringify(p.bound)}`);
  return `${tls ? "wss" : "ws"}://${b.address}:${b.port}`;
}

/** What a client WebSocket saw of its handshake and its close. */
interface Client {
  ws: WebSocket;
  /** The 101 response the client received. */
  response: http.IncomingMessage;
  /** Resolves with the close code and reason once the client's WebSocket is closed. */
  closed: Promise<{ code: number; reason: string }>;
}

/** Open a WebSocket to `url`; it is terminated in afterEach. */
async function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const ws = new WebSocket(url, options);
  cleanup.push(async () => ws.terminate());
  // An abrupt close may also report an error (ECONNRESET): the close event says what matters.
  ws.on("error", () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    ws.once("upgrade", resolve);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once("error", reject);
  });
  if (ws.readyState !== WebSocket.OPEN) await new Promise((r) => ws.once("open", r));
  return { ws, response, closed };
}

/** Send `data` and resolve with the next message that comes back. */
function echo(ws: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error("closed before the echo came back"));
    ws.once("close", onClose);
    ws.once("message", (raw, isBinary) => {
      ws.off("close", onClose);
      resolve({ data: Buffer.isBuffer(raw) ? raw : Buffer.from(raw as ArrayBuffer), isBinary });
    });
    ws.send(data, { binary: Buffer.isBuffer(data) });
  });
}

/** Stop Portico and wait until its stdout and stderr are closed: every line it wrote is then read. */
async function stopAndDrainOutput(p: Portico): Promise<number | null> {
  const code = await p.stop();
  await Promise.all(
    [p.proc.stdout, p.proc.stderr].map((s) =>
      s === null || s.closed ? undefined : new Promise((r) => s.once("close", r)),
    ),
  );
  return code;
}

/** Send SIGHUP to the master and wait for that reload's outcome line. */
async function reload(p: Portico): Promise<LogLine> {
  const seen = p.lines.length;
  process.kill(p.pid, "SIGHUP");
  return p.waitForLine(
    (l) => p.lines.indexOf(l) >= seen && (l.msg === "reload complete" || /^reload failed/.test(l.msg ?? "")),
    20_000,
  );
}

/** The access-log line of request `id`. */
function accessLine(p: Portico, id: string): Promise<LogLine> {
  return p.waitForLine((l) => l.requestId === id && typeof l.status === "number");
}

describe("WebSocket tunnels", () => {
  it("echoes text and a 1 MB binary message over ws:// and wss://, with forwarding headers added", async () => {
    const app = await wsBackend("app");
    const dir = tempDir();
    const pair = await generateCert();
    writeFileSync(join(dir, "cert.pem"), pair.cert);
    writeFileSync(join(dir, "key.pem"), pair.key);
    const p = await portico(
      config(app.backend, {
        listen: '[127.0.0.1:0, "127.0.0.2:0 tls"]',
        extra: `    tls: { certificates: [{ cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} }] }\n`,
      }),
    );
    const cases = [
      { url: `${base(p)}/chat?room=1`, proto: "http", options: {} },
      { url: `${base(p, true)}/chat?room=1`, proto: "https", options: { rejectUnauthorized: false } },
    ];
    for (const [i, c] of cases.entries()) {
      const client = await connect(c.url, c.options);
      const text = await echo(client.ws, `hello over ${c.proto}`);
      expect(text.isBinary).toBe(false);
      expect(text.data.toString()).toBe(`hello over ${c.proto}`);
      const big = randomBytes(1024 * 1024);
      const binary = await echo(client.ws, big);
      expect(binary.isBinary).toBe(true);
      expect(binary.data.length).toBe(big.length);
      expect(binary.data.equals(big)).toBe(true);

      const upgrade = app.upgrades[i];
      expect(upgrade, `upgrade request ${i}`).toBeDefined();
      expect(upgrade.url).toBe("/chat?room=1");
      const h = upgrade.headers;
      expect(h.upgrade?.toLowerCase()).toBe("websocket");
      expect(h.connection?.toLowerCase()).toContain("upgrade");
      expect(h["x-forwarded-for"]).toMatch(/^127\.0\.0\.\d+$/);
      expect(h["x-forwarded-proto"]).toBe(c.proto);
      expect(h.via).toMatch(/^1\.1 portico-[0-9a-f]{8}$/);
      expect(h["sec-websocket-version"]).toBe("13");
      // The client checked Sec-WebSocket-Accept against its own key (or it would not be
      // open): the accept the backend derived from the key it got is the one the client got.
      const key = h["sec-websocket-key"] as string;
      expect(key).toMatch(/^[A-Za-z0-9+/]{22}==$/);
      const accept = createHash("sha1").update(`${key}${WS_GUID}`).digest("base64");
      expect(client.response.headers["sec-websocket-accept"]).toBe(accept);
      client.ws.close(1000);
      expect((await client.closed).code).toBe(1000);
    }
    expect(app.upgrades).toHaveLength(2);
    // Nothing alarming for an operator: Node warns of a listener leak past 10 per socket.
    expect(await stopAndDrainOutput(p)).toBe(0);
    expect(p.stderr()).not.toContain("MaxListenersExceededWarning");
  });

  it("closes the backend's side when the client closes", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-client-closes" } });
    expect((await echo(client.ws, "ping")).data.toString()).toBe("ping");
    const server = await app.connection(0);
    const serverClosed = new Promise<{ code: number; reason: string }>((resolve) =>
      server.ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    client.ws.close(1000, "client says bye");
    expect(await serverClosed).toEqual({ code: 1000, reason: "client says bye" });
    expect(await client.closed).toEqual({ code: 1000, reason: "client says bye" });
    const line = await accessLine(p, "ws-client-closes");
    expect(line).toMatchObject({ status: 101, method: "GET" });
  });

  it("closes the client's side with the backend's code when the backend closes", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-backend-closes" } });
    expect((await echo(client.ws, "ping")).data.toString()).toBe("ping");
    const server = await app.connection(0);
    server.ws.close(4001, "backend says bye");
    expect(await client.closed).toEqual({ code: 4001, reason: "backend says bye" });
    const line = await accessLine(p, "ws-backend-closes");
    expect(line).toMatchObject({ status: 101, method: "GET" });
  });

  it("closes the client's side when the backend's socket is destroyed, and logs the tunnel as 101", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-backend-reset" } });
    expect((await echo(client.ws, "ping")).data.toString()).toBe("ping");
    const server = await app.connection(0);
    // No close frame, and a TCP RST instead of a FIN.
    server.socket.resetAndDestroy();
    const closed = await client.closed;
    // 1006: closed without a close frame (RFC 6455 §7.1.5).
    expect(closed.code).toBe(1006);
    const line = await accessLine(p, "ws-backend-reset");
    expect(line).toMatchObject({ status: 101, method: "GET" });
    expect(typeof line.bytes).toBe("number");
    expect(line.bytes as number).toBeGreaterThan(0);
  });

  it("keeps an open tunnel across a reload until the old worker's shutdown timeout", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const [oldPid] = p.workers;
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-across-reload" } });
    expect((await echo(client.ws, "before")).data.toString()).toBe("before");
    const events: string[] = [];
    void client.closed.then(() => events.push("tunnel closed"));

    const done = await reload(p);
    expect(done.msg).toBe("reload complete");
    const newPids = done.workers as number[];
    expect(newPids).not.toContain(oldPid);
    const draining = await p.waitForLine((l) => l.msg === "worker draining" && l.pid === oldPid);
    // The tunnel is the old worker's one connection and one request in flight.
    expect(draining).toMatchObject({ inFlight: 1, connections: 1 });

    // The old worker drains: the tunnel it carries still works...
    expect((await echo(client.ws, "after reload")).data.toString()).toBe("after reload");
    events.push("echo after the drain began");
    // ...and a new WebSocket goes to the new generation.
    const fresh = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-after-reload" } });
    expect((await echo(fresh.ws, "new")).data.toString()).toBe("new");
    expect(app.upgrades).toHaveLength(2);

    // The old worker counts the tunnel as open when its shutdown timeout fires (the line says
    // what is left before it closes it): the tunnel was not closed before that moment. Log
    // lines are written asynchronously, so their arrival is not compared with the close.
    const timeout = await p.waitForLine(
      (l) => l.msg === "shutdown timeout: closing the remaining connections" && l.pid === oldPid,
    );
    expect(timeout).toMatchObject({ inFlight: 1, connections: 1 });
    // ...and then it is cut (no close frame: 1006).
    expect((await client.closed).code).toBe(1006);
    expect(events).toEqual(["echo after the drain began", "tunnel closed"]);
    // The old worker did not drain on its own before the timeout (its tunnel kept it busy).
    // Once the timeout has closed the tunnel it may say it drained. Lines of one worker can
    // arrive out of order (pino writes asynchronously), so they are ordered by their `time`.
    const at = (msg: string) =>
      p.lines.find((l) => l.pid === oldPid && l.msg === msg)?.time as string | undefined;
    const drained = at("worker drained");
    const timedOut = at("shutdown timeout: closing the remaining connections") as string;
    expect(drained === undefined || drained >= timedOut, `drained ${drained}, timeout ${timedOut}`).toBe(
      true,
    );

    // The tunnel opened after the reload is the new worker's, untouched by the old one's timeout.
    expect(fresh.ws.readyState).toBe(WebSocket.OPEN);
    expect((await echo(fresh.ws, "still here")).data.toString()).toBe("still here");
    fresh.ws.close(1000);
    expect((await fresh.closed).code).toBe(1000);
    const freshLine = await accessLine(p, "ws-after-reload");
    expect(freshLine.status).toBe(101);
    expect(newPids).toContain(freshLine.pid);
  });

  it("serves an Upgrade: h2c request as a plain request, without its Upgrade header", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const port = p.bound[0].port;
    const socket = net.connect(port, "127.0.0.1");
    cleanup.push(async () => socket.destroy());
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve, reject) => {
      socket.once("end", resolve);
      socket.once("error", reject);
    });
    socket.write(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    // The connection is closed after the answer.
    await ended;
    const raw = Buffer.concat(chunks).toString();
    const split = raw.indexOf("\r\n\r\n");
    expect(split).toBeGreaterThan(0);
    const head = raw.slice(0, split);
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    expect(head.toLowerCase()).not.toContain("upgrade:");
    const echoed = JSON.parse(raw.slice(split + 4)) as Echo;
    expect(echoed.name).toBe("app");
    expect(echoed.headers.upgrade).toBeUndefined();
    expect(echoed.headers["http2-settings"]).toBeUndefined();
    expect(echoed.headers.connection ?? "").not.toMatch(/upgrade/i);
    expect(app.upgrades).toHaveLength(0);
    expect(app.backend.requests).toBe(1);
  });

  it("passes a refused upgrade (403 with a body) back to the client", async () => {
    const body = "no websockets for you\n";
    const app = await wsBackend("app", (_req, socket) => {
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
    });
    const p = await portico(config(app.backend));
    const ws = new WebSocket(`${base(p)}/`, { headers: { "x-request-id": "ws-refused" } });
    cleanup.push(async () => ws.terminate());
    ws.on("error", () => {});
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      ws.once("unexpected-response", (_req, r) => resolve(r));
      ws.once("open", () => reject(new Error("the upgrade was accepted")));
    });
    expect(res.statusCode).toBe(403);
    expect(res.headers["content-type"]).toBe("text/plain");
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(body);
    expect(app.upgrades).toHaveLength(1);
    const line = await accessLine(p, "ws-refused");
    expect(line).toMatchObject({ status: 403, upstream: app.backend.address });
  });

  it("closes a tunnel idle for tunnel_idle, but not one with traffic", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend, { timeouts: "tunnel_idle: 1s" }));
    const idle = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-idle" } });
    const busy = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-busy" } });
    const events: string[] = [];
    let busyClosed = false;
    void busy.closed.then(() => {
      busyClosed = true;
      events.push("busy closed");
    });
    const idleClosed = idle.closed.then((c) => {
      events.push("idle closed");
      return c;
    });
    // One message every 300 ms: each gap is shorter than tunnel_idle. Run until the idle
    // tunnel has been closed, then as many more: past twice tunnel_idle in all.
    let sent = 0;
    let afterIdle = -1;
    while (afterIdle < 0 || sent < afterIdle * 2 || sent < 8) {
      if (afterIdle < 0 && sent >= 30) throw new Error(`the idle tunnel is still open after ${sent} ticks`);
      const message = `tick ${sent}`;
      expect((await echo(busy.ws, message)).data.toString()).toBe(message);
      sent++;
      if (afterIdle < 0 && events.includes("idle closed")) {
        afterIdle = sent;
        events.push("busy still echoing");
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    const closed = await idleClosed;
    expect(closed.code).toBe(1006);
    expect(events).toEqual(["idle closed", "busy still echoing"]);
    expect(busyClosed).toBe(false);
    expect(busy.ws.readyState).toBe(WebSocket.OPEN);
    expect((await accessLine(p, "ws-idle")).status).toBe(101);
    expect(p.accessLines().some((l) => l.requestId === "ws-busy")).toBe(false);
  });
});

describe("access log of tunnels", () => {
  it("names the peer that served a tunnel in its 101 line", async () => {
    const app = await wsBackend("app");
    const p = await portico(config(app.backend));
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-upstream" } });
    expect((await echo(client.ws, "ping")).data.toString()).toBe("ping");
    client.ws.close(1000);
    expect((await client.closed).code).toBe(1000);
    const line = await accessLine(p, "ws-upstream");
    expect(line.status).toBe(101);
    expect(line.upstream).toBe(app.backend.address);
  });

  it("logs a tunnel the shutdown timeout of a reload cut, with 101", async () => {
    const app = await wsBackend("app");
    // Lifecycle and access lines on one pipe, so "worker exited" comes after the worker's lines.
    const p = await portico(`${config(app.backend)}log: { error: stdout, access: stdout }\n`);
    const [oldPid] = p.workers;
    const client = await connect(`${base(p)}/`, { headers: { "x-request-id": "ws-cut-at-shutdown" } });
    expect((await echo(client.ws, "ping")).data.toString()).toBe("ping");
    expect((await reload(p)).msg).toBe("reload complete");
    await p.waitForLine(
      (l) => l.msg === "shutdown timeout: closing the remaining connections" && l.pid === oldPid,
    );
    expect((await client.closed).code).toBe(1006);
    // The master writes this once the old worker has exited: every line that worker wrote
    // is in the pipe before it.
    await p.waitForLine((l) => l.msg === "worker exited" && l.workerPid === oldPid);
    const line = p.lines.find((l) => l.requestId === "ws-cut-at-shutdown" && typeof l.status === "number");
    expect(line, "the old worker's access-log line for the tunnel").toBeDefined();
    expect(line?.status).toBe(101);
    expect(line?.pid).toBe(oldPid);
  });
});

/** ws's own frame codec (exported by `ws`, not declared by @types/ws): real framing for an HTTP/2 client. */
interface WsCodec {
  Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; mask: boolean; opcode: number; readOnly: boolean; rsv1: boolean },
    ): Buffer[];
  };
  Receiver: new (options: { isServer: boolean }) => NodeJS.WritableStream & NodeJS.EventEmitter;
}
const codec = wsModule as unknown as WsCodec;

/** An RFC 8441 WebSocket on an HTTP/2 stream, as a browser opens one. */
interface H2Client {
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  response: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  /** Send a masked frame (text for a string, binary for a Buffer). */
  send(data: string | Buffer): void;
  /** Send a close frame. */
  close(code: number, reason: string): void;
  /** Resolves with the next message that comes back. */
  next(): Promise<{ data: Buffer; isBinary: boolean }>;
  /** Resolves with the close frame the server sent. */
  closeFrame: Promise<{ code: number; reason: string }>;
  /** Resolves once the stream is closed, with its RST_STREAM code (0: ended both ways). */
  streamClosed: Promise<number>;
}

/** The `https://` (TLS, ALPN h2) or `http://` (h2c) origin of `p`'s address whose flag is `flag`. */
function h2Origin(p: Portico, flag: "tls" | "h2c"): string {
  const b = p.bound.find((x) => x.listen.endsWith(` ${flag}`));
  if (!b) throw new Error(`no ${flag} address in ${JSON.stringify(p.bound)}`);
  return `${flag === "tls" ? "https" : "http"}://${b.address}:${b.port}`;
}

/** Open an HTTP/2 session to `origin` (closed in afterEach); resolves once the server's SETTINGS came. */
async function h2Session(origin: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(origin, { rejectUnauthorized: false });
  cleanup.push(async () => session.destroy());
  session.on("error", () => {});
  await new Promise((resolve) => session.once("remoteSettings", resolve));
  return session;
}

/** Send an extended CONNECT for `path` and resolve with the response header and the stream. */
async function h2Connect(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<H2Client> {
  const stream = session.request(
    {
      ":method": "CONNECT",
      ":protocol": "websocket",
      ":scheme": session.encrypted ? "https" : "http",
      ":path": path,
      "sec-websocket-version": "13",
      ...headers,
    },
    { endStream: false },
  );
  stream.on("error", () => {});
  const streamClosed = new Promise<number>((resolve) =>
    stream.once("close", () => resolve(stream.rstCode ?? 0)),
  );
  const receiver = new codec.Receiver({ isServer: false });
  const messages: Array<{ data: Buffer; isBinary: boolean }> = [];
  const waiting: Array<() => void> = [];
  receiver.on("message", (data: Buffer, isBinary: boolean) => {
    messages.push({ data, isBinary });
    for (const w of waiting.splice(0)) w();
  });
  const closeFrame = new Promise<{ code: number; reason: string }>((resolve) =>
    receiver.on("conclude", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  stream.on("data", (chunk: Buffer) => receiver.write(chunk));
  const response = await new Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader>(
    (resolve, reject) => {
      stream.once("response", resolve);
      stream.once("close", () =>
        reject(new Error(`stream closed before a response (RST ${stream.rstCode})`)),
      );
    },
  );
  const frame = (opcode: number, data: Buffer) => {
    for (const b of codec.Sender.frame(data, { fin: true, mask: true, opcode, readOnly: true, rsv1: false }))
      stream.write(b);
  };
  return {
    session,
    stream,
    response,
    send: (data) => frame(typeof data === "string" ? 1 : 2, Buffer.isBuffer(data) ? data : Buffer.from(data)),
    close: (code, reason) => {
      const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
      payload.writeUInt16BE(code, 0);
      payload.write(reason, 2);
      frame(8, payload);
    },
    next: async () => {
      while (messages.length === 0) {
        if (stream.closed) throw new Error("stream closed before the echo came back");
        await new Promise<void>((r) => {
          waiting.push(r);
          stream.once("close", r);
        });
      }
      return messages.shift() as { data: Buffer; isBinary: boolean };
    },
    closeFrame,
    streamClosed,
  };
}

/** Read a whole HTTP/2 response: its header and its body. */
async function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string; rst: number }> {
  const stream = session.request(headers);
  stream.on("error", () => {});
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  let head: http2.IncomingHttpHeaders = {};
  stream.once("response", (h) => {
    head = h;
  });
  await new Promise((r) => stream.once("close", r));
  return {
    status: Number(head[":status"] ?? 0),
    headers: head,
    body: Buffer.concat(chunks).toString(),
    rst: stream.rstCode ?? 0,
  };
}

/** A config with an h2c address and a TLS address (ALPN h2 and http/1.1) in front of `backend`. */
async function h2Config(backend: Backend, opts: { timeouts?: string } = {}): Promise<string> {
  const dir = tempDir();
  const pair = await generateCert();
  writeFileSync(join(dir, "cert.pem"), pair.cert);
  writeFileSync(join(dir, "key.pem"), pair.key);
  return config(backend, {
    ...opts,
    listen: '["127.0.0.1:0 h2c", "127.0.0.2:0 tls"]',
    extra: `    tls: { certificates: [{ cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} }] }\n`,
  });
}

describe("WebSocket over HTTP/2 (RFC 8441 extended CONNECT)", () => {
  it("echoes text and a 1 MB binary message over h2 (TLS) and h2c, as an HTTP/1.1 upgrade upstream", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    for (const [i, flag] of (["tls", "h2c"] as const).entries()) {
      const session = await h2Session(h2Origin(p, flag));
      // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3): what makes a browser use it.
      expect(session.remoteSettings.enableConnectProtocol).toBe(true);
      const id = `ws-h2-${flag}`;
      const client = await h2Connect(session, "/chat?room=1", {
        "x-request-id": id,
        "sec-websocket-protocol": "chat, superchat",
      });
      expect(client.response[":status"]).toBe(200);
      // The HTTP/1.1 handshake's own fields stay on the upstream leg.
      expect(client.response["sec-websocket-accept"]).toBeUndefined();
      expect(client.response.upgrade).toBeUndefined();
      client.send(`hello over ${flag}`);
      const text = await client.next();
      expect(text.isBinary).toBe(false);
      expect(text.data.toString()).toBe(`hello over ${flag}`);
      const big = randomBytes(1024 * 1024);
      client.send(big);
      const binary = await client.next();
      expect(binary.isBinary).toBe(true);
      expect(binary.data.equals(big)).toBe(true);
      // Another stream on the same connection is served meanwhile.
      const plain = await h2Request(session, { ":path": "/plain" });
      expect(plain.status).toBe(200);
      expect((JSON.parse(plain.body) as Echo).url).toBe("/plain");

      const upgrade = app.upgrades[i];
      expect(upgrade.method).toBe("GET");
      expect(upgrade.url).toBe("/chat?room=1");
      const h = upgrade.headers;
      expect(h.upgrade).toBe("websocket");
      expect(h.connection?.toLowerCase()).toBe("upgrade");
      expect(h["sec-websocket-version"]).toBe("13");
      expect(h["sec-websocket-protocol"]).toBe("chat, superchat");
      expect(h["sec-websocket-key"]).toMatch(/^[A-Za-z0-9+/]{22}==$/);
      expect(h.host).toBe(new URL(h2Origin(p, flag)).host);
      expect(h["x-forwarded-proto"]).toBe(flag === "tls" ? "https" : "http");
      expect(h.via).toMatch(/^1\.1 portico-[0-9a-f]{8}$/);

      client.close(1000, "bye");
      expect(await client.closeFrame).toEqual({ code: 1000, reason: "bye" });
      // The backend closed its socket after the close handshake: the stream ends both ways.
      client.stream.end();
      expect(await client.streamClosed).toBe(0);
      const line = await accessLine(p, id);
      expect(line).toMatchObject({ status: 200, method: "CONNECT", upstream: app.backend.address });
      expect(line.remote).toBe("127.0.0.1");
      expect(line.bytes as number).toBeGreaterThan(big.length);
    }
    expect(app.upgrades).toHaveLength(2);
    expect(await stopAndDrainOutput(p)).toBe(0);
    expect(p.stderr()).not.toContain("Warning");
  });

  it("holds a fast backend back for a slow HTTP/2 client: 100 MB through without growing the worker by 64 MB", async () => {
    const MESSAGES = 100;
    const chunk = randomBytes(1024 * 1024);
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    const worker = p.workers[0] as number;
    const session = await h2Session(h2Origin(p, "tls"));
    const client = await h2Connect(session, "/", { "x-request-id": "ws-h2-slow-reader" });
    // The client reads nothing for 1.5 s while the backend sends as fast as its socket takes.
    client.stream.pause();
    const before = rssBytes(worker);
    const sampler = sampleRss(worker);
    const server = await app.connection(0);
    let sent = 0;
    const sendNext = () => {
      if (sent++ < MESSAGES) server.ws.send(chunk, { binary: true }, sendNext);
    };
    sendNext();
    await new Promise((r) => setTimeout(r, 1500));
    // Held back: most of it is still at the backend.
    const sentWhilePaused = sent;
    expect(sentWhilePaused).toBeLessThan(MESSAGES / 2);
    client.stream.resume();
    for (let i = 0; i < MESSAGES; i++) {
      const message = await client.next();
      expect(message.data.length).toBe(chunk.length);
    }
    const growth = sampler.stop() - before;
    console.log(
      `h2 tunnel slow reader: ${sentWhilePaused} MB sent in 1.5 s unread; worker RSS grew ${(growth / 1048576).toFixed(1)} MB for 100 MB`,
    );
    expect(growth).toBeLessThan(64 * 1024 * 1024);
  });

  it("closes the backend's socket when the client resets the stream", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    const session = await h2Session(h2Origin(p, "tls"));
    const client = await h2Connect(session, "/", { "x-request-id": "ws-h2-client-reset" });
    client.send("ping");
    expect((await client.next()).data.toString()).toBe("ping");
    const server = await app.connection(0);
    const serverClosed = new Promise<number>((resolve) => server.ws.once("close", (code) => resolve(code)));
    client.stream.close(http2.constants.NGHTTP2_CANCEL);
    // No close frame reached the backend: its socket was closed under it (1006).
    expect(await serverClosed).toBe(1006);
    // The session is still good for other streams.
    expect((await h2Request(session, { ":path": "/after" })).status).toBe(200);
    expect((await accessLine(p, "ws-h2-client-reset")).status).toBe(200);
  });

  it("resets the client's stream when the backend's socket is destroyed", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    const session = await h2Session(h2Origin(p, "tls"));
    const client = await h2Connect(session, "/", { "x-request-id": "ws-h2-backend-reset" });
    client.send("ping");
    expect((await client.next()).data.toString()).toBe("ping");
    const server = await app.connection(0);
    server.socket.resetAndDestroy();
    // RST_STREAM is a TCP RST's counterpart (RFC 8441 §5).
    expect(await client.streamClosed).not.toBe(0);
    expect((await h2Request(session, { ":path": "/after" })).status).toBe(200);
    expect((await accessLine(p, "ws-h2-backend-reset")).status).toBe(200);
  });

  it("passes a refused upgrade back, and answers a wrong Sec-WebSocket-Accept with 502", async () => {
    const body = "no websockets for you\n";
    let n = 0;
    const app = await wsBackend("app", (_req, socket) => {
      if (n++ === 0) {
        socket.end(
          `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
            `Connection: close\r\n\r\n${body}`,
        );
      } else {
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        );
      }
    });
    const p = await portico(await h2Config(app.backend));
    const session = await h2Session(h2Origin(p, "tls"));
    const refused = await h2Connect(session, "/", { "x-request-id": "ws-h2-refused" });
    expect(refused.response[":status"]).toBe(403);
    expect(refused.response["content-type"]).toBe("text/plain");
    const chunks: Buffer[] = [];
    refused.stream.removeAllListeners("data");
    refused.stream.on("data", (c: Buffer) => chunks.push(c));
    await refused.streamClosed;
    expect(Buffer.concat(chunks).toString()).toBe(body);
    expect(await accessLine(p, "ws-h2-refused")).toMatchObject({ status: 403 });

    const wrong = await h2Connect(session, "/", { "x-request-id": "ws-h2-wrong-accept" });
    expect(wrong.response[":status"]).toBe(502);
    expect(await accessLine(p, "ws-h2-wrong-accept")).toMatchObject({
      status: 502,
      error: "PRT_ERR_UPSTREAM_PROTOCOL",
    });
    expect(app.upgrades).toHaveLength(2);
  });

  it("answers another :protocol with 501 and a plain CONNECT with 405, forwarding neither", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    const session = await h2Session(h2Origin(p, "tls"));
    const other = await h2Request(session, {
      ":method": "CONNECT",
      ":protocol": "webtransport",
      ":scheme": "https",
      ":path": "/",
      "x-request-id": "ws-h2-webtransport",
    });
    expect(other.status).toBe(501);
    expect(await accessLine(p, "ws-h2-webtransport")).toMatchObject({ error: "PRT_ERR_NOT_IMPLEMENTED" });
    const plain = await h2Request(session, {
      ":method": "CONNECT",
      ":authority": "example.com:443",
      "x-request-id": "ws-h2-connect",
    });
    expect(plain.status).toBe(405);
    expect(plain.headers.allow).toContain("GET");
    expect(await accessLine(p, "ws-h2-connect")).toMatchObject({ error: "PRT_ERR_METHOD_NOT_ALLOWED" });
    expect(app.upgrades).toHaveLength(0);
    expect(app.backend.requests).toBe(0);
  });

  it("closes an HTTP/2 tunnel idle for tunnel_idle, leaving the session open", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend, { timeouts: "tunnel_idle: 1s" }));
    const session = await h2Session(h2Origin(p, "tls"));
    const client = await h2Connect(session, "/", { "x-request-id": "ws-h2-idle" });
    client.send("ping");
    expect((await client.next()).data.toString()).toBe("ping");
    const server = await app.connection(0);
    const serverClosed = new Promise<number>((resolve) => server.ws.once("close", (code) => resolve(code)));
    const opened = performance.now();
    expect(await client.streamClosed).not.toBe(0);
    expect(performance.now() - opened).toBeGreaterThanOrEqual(900);
    expect(await serverClosed).toBe(1006);
    expect((await accessLine(p, "ws-h2-idle")).status).toBe(200);
    expect((await h2Request(session, { ":path": "/after" })).status).toBe(200);
  });

  it("keeps an HTTP/2 tunnel across a reload until the old worker's shutdown timeout", async () => {
    const app = await wsBackend("app");
    const p = await portico(await h2Config(app.backend));
    const [oldPid] = p.workers;
    const session = await h2Session(h2Origin(p, "tls"));
    const client = await h2Connect(session, "/", { "x-request-id": "ws-h2-across-reload" });
    client.send("before");
    expect((await client.next()).data.toString()).toBe("before");
    let closed = false;
    void client.streamClosed.then(() => {
      closed = true;
    });
    const goaway = new Promise((resolve) => session.once("goaway", resolve));
    expect((await reload(p)).msg).toBe("reload complete");
    // The old worker drains the session with GOAWAY; the tunnel's stream goes on.
    await goaway;
    client.send("after reload");
    expect((await client.next()).data.toString()).toBe("after reload");
    expect(closed).toBe(false);
    const timeout = await p.waitForLine(
      (l) => l.msg === "shutdown timeout: closing the remaining connections" && l.pid === oldPid,
    );
    expect(timeout).toMatchObject({ inFlight: 1, connections: 1 });
    await client.streamClosed;
    expect((await accessLine(p, "ws-h2-across-reload")).pid).toBe(oldPid);
  });
});
