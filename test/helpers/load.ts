/**
 * Continuous load for hitless-reload tests, with the strictest possible accounting:
 * - keep-alive clients on raw sockets, which check that the proxy never closes a connection
 *   without having said `Connection: close` on the last response (a client would have to
 *   retry), and count resets and failed requests;
 * - new-connection clients (one TCP connection per request), which count refused and reset
 *   connections.
 * Responses must carry Content-Length (Portico's fixed replies and the test backends do).
 */
import http from "node:http";
import net from "node:net";

/** What a load run saw. */
export interface LoadStats {
  ok: number;
  non2xx: number;
  /** Requests that failed: reset, refused, or closed without an answer. */
  failed: number;
  /** Keep-alive connections the proxy closed without a `Connection: close` response first. */
  unannouncedCloses: number;
  /** The first 20 failures, described. */
  errors: string[];
}

/**
 * A running load; `stop()` ends it once in-flight requests finish (those unanswered 5 s later
 * are destroyed and counted as failed) and returns the stats.
 */
export interface Load {
  stats: LoadStats;
  /** Last body seen by any client for `path`. */
  lastBody: () => string;
  stop: () => Promise<LoadStats>;
}

/** Run `keepAlive` raw keep-alive clients and `fresh` new-connection clients against `port` + `path`. */
export function startLoad(port: number, path: string, opts: { keepAlive: number; fresh: number }): Load {
  const stats: LoadStats = { ok: 0, non2xx: 0, failed: 0, unannouncedCloses: 0, errors: [] };
  let running = true;
  let last = "";
  /** Open connections, destroyed by `stop` if they do not finish in time. */
  const open = new Set<{ destroy: () => void }>();
  const record = (status: number, body: string) => {
    if (status >= 200 && status < 300) stats.ok++;
    else stats.non2xx++;
    last = body;
  };
  const fail = (what: string) => {
    stats.failed++;
    if (stats.errors.length < 20) stats.errors.push(what);
  };

  const keepAliveLoop = async () => {
    while (running) {
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        open.add(socket);
        let buf = Buffer.alloc(0);
        let announcedClose = false;
        let waiting = false;
        const send = () => {
          if (!running || announcedClose) {
            socket.end();
            return;
          }
          waiting = true;
          socket.write(`GET ${path} HTTP/1.1\r\nHost: load.test\r\n\r\n`);
        };
        socket.on("connect", send);
        socket.on("data", (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk]);
          for (;;) {
            const end = buf.indexOf("\r\n\r\n");
            if (end < 0) return;
            const head = buf.subarray(0, end).toString("latin1");
            const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? "0");
            if (buf.length < end + 4 + length) return;
            const body = buf.subarray(end + 4, end + 4 + length).toString();
            buf = buf.subarray(end + 4 + length);
            waiting = false;
            record(Number(head.slice(9, 12)), body);
            if (/\r\nconnection:\s*close/i.test(head)) announcedClose = true;
            send();
          }
        });
        socket.on("error", (err: NodeJS.ErrnoException) => fail(`keep-alive: ${err.code ?? err.message}`));
        socket.on("close", () => {
          open.delete(socket);
          if (waiting) fail("keep-alive: connection closed with a request unanswered");
          else if (running && !announcedClose) stats.unannouncedCloses++;
          resolve();
        });
      });
    }
  };

  const freshLoop = async () => {
    while (running) {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
          res.on("close", () => open.delete(req));
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => {
            record(res.statusCode ?? 0, body);
            resolve();
          });
          res.on("error", (err: NodeJS.ErrnoException) => {
            fail(`fresh response: ${err.code ?? err.message}`);
            resolve();
          });
        });
        open.add(req);
        req.on("error", (err: NodeJS.ErrnoException) => {
          open.delete(req);
          fail(`fresh: ${err.code ?? err.message}`);
          resolve();
        });
      });
    }
  };

  const loops = [
    ...Array.from({ length: opts.keepAlive }, keepAliveLoop),
    ...Array.from({ length: opts.fresh }, freshLoop),
  ];
  return {
    stats,
    lastBody: () => last,
    stop: async () => {
      running = false;
      // A request still unanswered 5 s after the load stopped is a failure: end it.
      const timer = setTimeout(() => {
        for (const conn of open) conn.destroy();
      }, 5000);
      await Promise.all(loops);
      clearTimeout(timer);
      return stats;
    },
  };
}
