/**
 * Real HTTP backends on loopback for tests: port 0, read back, closed in afterEach.
 * The default handler echoes the request as JSON: `{ name, method, url, headers }`.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** A running test backend. */
export interface Backend {
  name: string;
  server: http.Server;
  port: number;
  /** `127.0.0.1:PORT`, as written in an upstream's `address`. */
  address: string;
  /** Requests received so far. */
  requests: number;
  /** Sockets currently open to this backend. */
  sockets: Set<Socket>;
  close: () => Promise<void>;
}

/** What a backend's echo handler answers with. */
export interface Echo {
  name: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
}

/**
 * Start a backend; `handler` replaces the echo handler. `at` binds another loopback address
 * (127.0.0.2, ...) and/or a given port: DNS tests give two backends the same port on two
 * addresses, so an A record alone decides which one gets the traffic.
 */
export async function startBackend(
  name: string,
  handler?: http.RequestListener,
  at: { host?: string; port?: number } = {},
): Promise<Backend> {
  const sockets = new Set<Socket>();
  const backend = { name, sockets, requests: 0 } as Backend;
  const echo: http.RequestListener = (req, res) => {
    const body = JSON.stringify({
      name,
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
    } satisfies Echo);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "x-backend": name,
      });
      res.end(body);
    });
  };
  const server = http.createServer((req, res) => {
    backend.requests++;
    (handler ?? echo)(req, res);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const host = at.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port ?? 0, host, resolve);
  });
  backend.server = server;
  backend.port = (server.address() as AddressInfo).port;
  backend.address = `${host}:${backend.port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

/** A port that nothing listens on (bound, read back, closed). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Backends on the same port at 127.0.0.2, 127.0.0.3, ... (the first picks the port; if a
 * later address has it taken, all are closed and another port is tried).
 */
export async function startBackendsOnOnePort(
  names: string[],
  handler?: http.RequestListener,
): Promise<Backend[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const started: Backend[] = [];
    try {
      for (const [i, name] of names.entries()) {
        started.push(await startBackend(name, handler, { host: `127.0.0.${i + 2}`, port: started[0]?.port }));
      }
      return started;
    } catch {
      await Promise.all(started.map((b) => b.close()));
    }
  }
  throw new Error("could not find one free port on every loopback address");
}
