/**
 * The admin listener, in the master (never on a worker's socket, so it never slows the data
 * path):
 * - `GET /`: the status page; `GET /status`: the same as JSON;
 * - `GET /metrics`: one scrape summing every worker of every live generation with the
 *   master's own metrics; `GET /healthz` (the master answers); `GET /readyz` (it serves and
 *   is not draining to stop: 503 then, so a load balancer takes it out first);
 * - `GET /dns?name=&type=[&server=URL]...`: a lookup through Portico's DNS layer, and
 *   `POST /dns/flush?name=`: drop a name's cache entries (both rate-limited per client);
 * - `POST /reload`: the same as SIGHUP, answered with its outcome.
 * With a token every request must carry it, as `Authorization: Bearer TOKEN` or as the
 * password of HTTP Basic authentication (what a browser asks for), compared in constant time;
 * a wrong or missing one gets 401.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ConfigIssue } from "../config/types.js";
import type { LookupResult, QueryType } from "../dns/index.js";
import type { StatusDocument } from "../observability/status.js";
import { TokenBucketTable } from "../ratelimit/bucket-table.js";
import type { BucketSpec } from "../ratelimit/limit.js";
import { statusPageHtml } from "./status-page.js";

/** The outcome of `POST /reload` (and of every reload). */
export type ReloadResult =
  | { ok: true; generation: number; warnings: ConfigIssue[] }
  | { ok: false; reason: string; errors: ConfigIssue[] };

/** What the admin listener asks of the master. */
export interface AdminHandlers {
  /** The text of one scrape. */
  metrics(): Promise<string>;
  status(): Promise<StatusDocument>;
  /** `name`/`type` asked of each of `servers` (undefined: the proxy's own resolver). */
  dns(name: string, type: QueryType, servers: Array<string | undefined>): Promise<LookupResult[]>;
  /** Drop the cache entries of `name`; how many went. */
  flush(name: string): number;
  reload(): Promise<ReloadResult>;
  /** Serving and not stopping (`/readyz`); why not, when not. */
  ready(): { ready: true } | { ready: false; why: string };
}

export interface AdminOptions {
  host: string;
  port: number;
  token: string | undefined;
  /** The token bucket of each client address for `/dns` and `/dns/flush`. */
  dnsRate: BucketSpec;
  handlers: AdminHandlers;
}

const TYPES: readonly QueryType[] = ["A", "AAAA", "SRV", "CNAME"];
/** At most this many `server` parameters in one `/dns` request. */
const MAX_SERVERS = 8;
/** Client buckets kept for `/dns` (one per client address). */
const MAX_DNS_CLIENTS = 10_000;

/** Constant-time comparison of two strings (their SHA-256 digests: equal lengths). */
function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token a request carries: a Bearer token, or the password of Basic authentication. */
function givenToken(header: string | undefined): string {
  if (header === undefined) return "";
  if (header.startsWith("Bearer ")) return header.slice(7);
  if (header.startsWith("Basic ")) {
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon < 0 ? "" : decoded.slice(colon + 1);
  }
  return "";
}

function answer(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  answer(res, status, `${JSON.stringify(value, null, 2)}\n`, "application/json; charset=utf-8");
}

/** A JSON error body: what went wrong and what to do. */
function problem(res: http.ServerResponse, status: number, error: string): void {
  json(res, status, { error });
}

/** A lookup result as `/dns` returns it. */
function lookupJson(r: LookupResult) {
  const ms = Math.round(r.ms * 10) / 10;
  const server = r.server ?? "portico's resolver (the dns section)";
  if (!r.ok) return { server, ok: false, code: r.code, error: r.message, ms };
  const { answer: a } = r;
  return {
    server,
    ok: true,
    name: a.name,
    type: a.type,
    ttl: a.ttl,
    records: a.records,
    cnames: a.cnames,
    source: a.source,
    stale: a.stale,
    ms,
  };
}

/** An admin listener that is listening. */
export interface Admin {
  address: AddressInfo;
  close(): Promise<void>;
}

type Route = {
  methods: readonly string[];
  run: (req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams) => void;
  /** Rate-limited per client (the DNS endpoints). */
  limited?: boolean;
};

/** Open the admin listener; rejects when the address cannot be bound. */
export function startAdmin(opts: AdminOptions): Promise<Admin> {
  const { handlers } = opts;
  const buckets = new TokenBucketTable({ maxKeys: MAX_DNS_CLIENTS });
  const failed = (res: http.ServerResponse, what: string) => (err: Error) =>
    problem(res, 500, `${what} failed: ${err.message}`);
  const routes: Record<string, Route> = {
    "/": {
      methods: ["GET", "HEAD"],
      run: (_req, res) => answer(res, 200, statusPageHtml(), "text/html; charset=utf-8"),
    },
    "/healthz": { methods: ["GET", "HEAD"], run: (_req, res) => answer(res, 200, "ok\n") },
    "/readyz": {
      methods: ["GET", "HEAD"],
      run: (_req, res) => {
        const state = handlers.ready();
        if (state.ready) answer(res, 200, "ready\n");
        else answer(res, 503, `not ready: ${state.why}\n`);
      },
    },
    "/metrics": {
      methods: ["GET", "HEAD"],
      run: (_req, res) =>
        handlers.metrics().then(
          (text) => answer(res, 200, text, "text/plain; version=0.0.4; charset=utf-8"),
          (err: Error) => answer(res, 500, `500 metrics failed: ${err.message}\n`),
        ),
    },
    "/status": {
      methods: ["GET", "HEAD"],
      run: (_req, res) => handlers.status().then((doc) => json(res, 200, doc), failed(res, "status")),
    },
    "/dns": {
      methods: ["GET"],
      limited: true,
      run: (_req, res, query) => {
        const name = query.get("name") ?? "";
        const type = (query.get("type") ?? "A").toUpperCase() as QueryType;
        const servers = query.getAll("server");
        if (name === "") {
          problem(res, 400, "name is missing: /dns?name=api.internal&type=A[&server=udp://10.0.0.53]");
          return;
        }
        if (!TYPES.includes(type)) {
          problem(res, 400, `type ${query.get("type")} is not one of ${TYPES.join(", ")}`);
          return;
        }
        if (servers.length > MAX_SERVERS) {
          problem(res, 400, `${servers.length} server parameters: at most ${MAX_SERVERS}`);
          return;
        }
        const asked = servers.length > 0 ? servers : [undefined];
        handlers
          .dns(name, type, asked)
          .then(
            (results) => json(res, 200, { name, type, results: results.map(lookupJson) }),
            failed(res, "lookup"),
          );
      },
    },
    "/dns/flush": {
      methods: ["POST"],
      limited: true,
      run: (_req, res, query) => {
        const name = query.get("name") ?? "";
        if (name === "") {
          problem(res, 400, "name is missing: POST /dns/flush?name=api.internal");
          return;
        }
        json(res, 200, { name, flushed: handlers.flush(name) });
      },
    },
    "/reload": {
      methods: ["POST"],
      run: (_req, res) =>
        handlers
          .reload()
          .then(
            (result) => json(res, result.ok ? 200 : result.errors.length > 0 ? 422 : 500, result),
            failed(res, "reload"),
          ),
    },
  };

  const server = http.createServer((req, res) => {
    if (opts.token !== undefined && !sameToken(givenToken(req.headers.authorization), opts.token)) {
      res.setHeader("www-authenticate", ['Bearer realm="portico"', 'Basic realm="portico", charset="UTF-8"']);
      answer(res, 401, "401 Unauthorized: send Authorization: Bearer TOKEN (admin.token)\n");
      return;
    }
    const url = new URL(req.url ?? "/", "http://admin");
    const route = routes[url.pathname];
    if (!route) {
      answer(res, 404, `404 Not Found: ${Object.keys(routes).join(", ")}\n`);
      return;
    }
    if (!route.methods.includes(req.method ?? "")) {
      res.setHeader("allow", route.methods.join(", "));
      answer(res, 405, `405 Method Not Allowed: ${url.pathname} takes ${route.methods.join(", ")}\n`);
      return;
    }
    if (route.limited) {
      const decision = buckets.take("dns", req.socket.remoteAddress ?? "", opts.dnsRate);
      if (!decision.allowed) {
        res.setHeader("retry-after", String(decision.retryAfterSec));
        problem(
          res,
          429,
          `too many DNS requests from this client: try again in ${decision.retryAfterSec} s (admin.dns_rate)`,
        );
        return;
      }
    }
    // A request body is not used: read and dropped, so the connection stays usable.
    req.resume();
    route.run(req, res, url.searchParams);
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
