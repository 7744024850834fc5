/**
 * The admin listener, in the master (never on a worker's socket, so it never slows the data
 * path): `/healthz`, and `/metrics`, where one scrape sums every worker of every live
 * generation with the master's own metrics. Off loopback every request must carry the
 * configured bearer token (compared in constant time); a wrong or missing one gets 401.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface AdminOptions {
  host: string;
  port: number;
  token: string | undefined;
  /** The text of one scrape. */
  metrics: () => Promise<string>;
}

/** Constant-time comparison of two strings (their SHA-256 digests: equal lengths). */
function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

function answer(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** An admin listener that is listening. */
export interface Admin {
  address: AddressInfo;
  close(): Promise<void>;
}

/** Open the admin listener; rejects when the address cannot be bound. */
export function startAdmin(opts: AdminOptions): Promise<Admin> {
  const server = http.createServer((req, res) => {
    if (opts.token !== undefined) {
      const header = req.headers.authorization ?? "";
      const given = header.startsWith("Bearer ") ? header.slice(7) : "";
      if (!sameToken(given, opts.token)) {
        res.setHeader("www-authenticate", 'Bearer realm="portico"');
        answer(res, 401, "401 Unauthorized: send Authorization: Bearer TOKEN (admin.token)\n");
        return;
      }
    }
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      answer(res, 405, "405 Method Not Allowed\n");
      return;
    }
    if (path === "/healthz") {
      answer(res, 200, "ok\n");
    } else if (path === "/metrics") {
      opts.metrics().then(
        (text) => answer(res, 200, text, "text/plain; version=0.0.4; charset=utf-8"),
        (err: Error) => answer(res, 500, `500 metrics failed: ${err.message}\n`),
      );
    } else {
      answer(res, 404, "404 Not Found: /metrics, /healthz\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off("error", reject);
      resolve({
        address: server.address() as AddressInfo,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
