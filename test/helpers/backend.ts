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

/** Start a backend; `handler` replaces the echo handler. */
export async function startBackend(name: string, handler?: http.RequestListener): Promise<Backend> {
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
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  backend.server = server;
  backend.port = (server.address() as AddressInfo).port;
  backend.address = `127.0.0.1:${backend.port}`;
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
