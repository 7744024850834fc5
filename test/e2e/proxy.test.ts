/**
 * End-to-end: the real master with 2 workers in front of real backends on loopback.
 * Proxying, forwarding headers, hop-by-hop headers, routing, and error statuses.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, closedPort, type Echo, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

let app: Backend;
let api: Backend;
let slow: Backend;
let hop: Backend;
let portico: Portico;

beforeAll(async () => {
  app = await startBackend("app");
  api = await startBackend("api");
  // Answers after 3 s: longer than the 500 ms upstream_header timeout of the `slow` upstream.
  slow = await startBackend("slow", (_req, res) => {
    setTimeout(() => res.end("late"), 3000).unref();
  });
  // Sends hop-by-hop response headers that must not reach the client.
  hop = await startBackend("hop", (req, res) => {
    req.resume();
    res.setHeader("connection", "keep-alive, x-resp-hop");
    res.setHeader("keep-alive", "timeout=5");
    res.setHeader("x-resp-hop", "secret");
    res.setHeader("proxy-authenticate", "Basic");
    res.setHeader("x-end-to-end", "kept");
    res.end("ok");
  });
  const dead = await closedPort();
  portico = await startPortico(`
workers: 2
timeouts: { connect: 2s, upstream_header: 500ms }
upstreams:
  app: { servers: [{ address: ${app.address} }] }
  api: { servers: [{ address: ${api.address} }] }
  slow: { servers: [{ address: ${slow.address} }] }
  hop: { servers: [{ address: ${hop.address} }] }
  dead: { servers: [{ address: 127.0.0.1:${dead} }] }
servers:
  - listen: 127.0.0.1:0
    server_names: [api.example.com]
    routes:
      - path: /
        upstream: api
  - listen: 127.0.0.1:0
    server_names: ["*.example.com"]
    routes:
      - path: /
        upstream: app
        request_headers: { set: { x-matched: wildcard } }
  - listen: 127.0.0.1:0
    server_names: [www.test]
    default: true
    routes:
      - exact: /health
        return: { status: 200, body: "healthy" }
      - path: /api/
        upstream: api
        strip_prefix: true
      - regex: "\\\\.png$"
        upstream: app
        response_headers: { set: { x-image: "yes" }, remove: [x-backend] }
      - path: /old/
        redirect: { to: "https://$host/new$request_uri", status: 301 }
      - path: /slow
        upstream: slow
      - path: /hop
        upstream: hop
      - path: /dead
        upstream: dead
      - path: /
        upstream: app
`);
});

afterAll(async () => {
  expect(await portico?.stop()).toBe(0);
  await Promise.all([app, api, slow, hop].map((b) => b?.close()));
});

describe("proxying", () => {
  it("proxies a GET and returns the backend's answer", async () => {
    const res = await request(`${portico.url()}/hello?x=1`);
    expect(res.status).toBe(200);
    const echo = res.json<Echo>();
    expect(echo.name).toBe("app");
    expect(echo.method).toBe("GET");
    expect(echo.url).toBe("/hello?x=1");
  });

  it("proxies a POST with its body", async () => {
    const sink = await startBackend("sink", (req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => res.end(JSON.stringify({ method: req.method, body })));
    });
    const p = await startPortico(`
workers: 2
upstreams: { sink: { servers: [{ address: ${sink.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: sink }] }]
`);
    try {
      const res = await request(`${p.url()}/submit`, { method: "POST", body: "name=portico&x=1" });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toEqual({ method: "POST", body: "name=portico&x=1" });
    } finally {
      expect(await p.stop()).toBe(0);
      await sink.close();
    }
  });

  it("sets X-Forwarded-For/-Proto/-Host, Via and X-Request-Id, and keeps Host", async () => {
    const res = await request(`${portico.url()}/`, {
      headers: { host: "www.test:8080", "x-forwarded-for": "203.0.113.7" },
    });
    const echo = res.json<Echo>();
    expect(echo.headers.host).toBe("www.test:8080");
    // No trusted_proxies: the client's own X-Forwarded-For is replaced, never believed.
    expect(echo.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(echo.headers["x-forwarded-proto"]).toBe("http");
    expect(echo.headers["x-forwarded-host"]).toBe("www.test:8080");
    expect(echo.headers.via).toMatch(/^1\.1 portico-[0-9a-f]{8}$/);
    expect(echo.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("passes a client's X-Request-Id through and logs it", async () => {
    const res = await request(`${portico.url()}/with-id`, { headers: { "x-request-id": "abc-123" } });
    expect(res.json<Echo>().headers["x-request-id"]).toBe("abc-123");
    const line = await portico.waitForLine((l) => l.requestId === "abc-123" && "status" in l);
    expect(line).toMatchObject({ method: "GET", path: "/with-id", status: 200, upstream: app.address });
    expect(typeof line.ms).toBe("number");
    expect(typeof line.upstreamMs).toBe("number");
    expect(typeof line.bytes).toBe("number");
  });

  it("refuses a request that already went through this proxy (Via loop) with 508", async () => {
    const first = await request(`${portico.url()}/`);
    const via = first.json<Echo>().headers.via as string;
    const looped = await request(`${portico.url()}/`, { headers: { via } });
    expect(looped.status).toBe(508);
  });
});

describe("hop-by-hop headers", () => {
  it("removes them from the request, including those named in Connection", async () => {
    const res = await request(`${portico.url()}/`, {
      headers: {
        connection: "keep-alive, x-req-hop",
        "keep-alive": "timeout=5",
        "x-req-hop": "secret",
        te: "gzip", // "trailers" is asked for upstream by Portico itself (hardening.test.ts)
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "x-end-to-end": "kept",
      },
    });
    const headers = res.json<Echo>().headers;
    for (const name of ["x-req-hop", "keep-alive", "te", "proxy-authorization"]) {
      expect(headers[name], name).toBeUndefined();
    }
    expect(headers.connection).not.toContain("x-req-hop");
    expect(headers["x-end-to-end"]).toBe("kept");
  });

  it("removes them from the response, including those named in Connection", async () => {
    const res = await request(`${portico.url()}/hop`);
    expect(res.status).toBe(200);
    expect(res.headers["x-resp-hop"]).toBeUndefined();
    expect(res.headers["keep-alive"]).not.toBe("timeout=5");
    expect(res.headers["proxy-authenticate"]).toBeUndefined();
    expect(res.headers.connection ?? "").not.toContain("x-resp-hop");
    expect(res.headers["x-end-to-end"]).toBe("kept");
  });
});

describe("routing", () => {
  it("picks the server by exact name, then wildcard, then the default server", async () => {
    const exact = await request(`${portico.url()}/x`, { headers: { host: "api.example.com" } });
    expect(exact.json<Echo>().name).toBe("api");
    const wildcard = await request(`${portico.url()}/x`, { headers: { host: "shop.example.com" } });
    expect(wildcard.json<Echo>().name).toBe("app");
    expect(wildcard.json<Echo>().headers["x-matched"]).toBe("wildcard");
    const other = await request(`${portico.url()}/health`, { headers: { host: "unknown.test" } });
    expect(other.status).toBe(200);
    expect(other.body.toString()).toBe("healthy");
  });

  it("matches exact paths, regexes and the longest prefix, and strips a prefix when asked", async () => {
    const health = await request(`${portico.url()}/health`);
    expect(health.body.toString()).toBe("healthy");
    const stripped = await request(`${portico.url()}/api/users?id=7`);
    expect(stripped.json<Echo>()).toMatchObject({ name: "api", url: "/users?id=7" });
    const image = await request(`${portico.url()}/api/logo.png`);
    expect(image.json<Echo>()).toMatchObject({ name: "app", url: "/api/logo.png" });
    expect(image.headers["x-image"]).toBe("yes");
    expect(image.headers["x-backend"]).toBeUndefined();
  });

  it("redirects with nginx variables expanded", async () => {
    const res = await request(`${portico.url()}/old/page?q=1`, { headers: { host: "www.test" } });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe("https://www.test/new/old/page?q=1");
  });

  it("routes on the normalized path, so dot segments cannot skip a route", async () => {
    const res = await request(`${portico.url()}/static/../api/users`);
    expect(res.json<Echo>()).toMatchObject({ name: "api", url: "/users" });
  });
});

describe("upstream errors", () => {
  it("answers 502 when the backend port is closed, and logs it", async () => {
    const res = await request(`${portico.url()}/dead`, { headers: { "x-request-id": "dead-1" } });
    expect(res.status).toBe(502);
    expect(res.body.toString()).toBe("502 Bad Gateway\n");
    const line = await portico.waitForLine((l) => l.requestId === "dead-1" && "status" in l);
    expect(line).toMatchObject({ status: 502, error: "PRT_ERR_UPSTREAM_CONNECT" });
  });

  it("answers 504 when the backend does not answer within upstream_header", async () => {
    const res = await request(`${portico.url()}/slow`, { headers: { "x-request-id": "slow-1" } });
    expect(res.status).toBe(504);
    expect(res.body.toString()).toBe("504 Gateway Timeout\n");
    const line = await portico.waitForLine((l) => l.requestId === "slow-1" && "status" in l);
    expect(line).toMatchObject({ status: 504, error: "PRT_ERR_UPSTREAM_TIMEOUT" });
  });

  it("answers 404 with a short body when no route matches", async () => {
    const res = await request(`${portico.url()}/anything`, { headers: { host: "api.example.com" } });
    expect(res.status).toBe(200); // api.example.com has a catch-all
    const p = await startPortico(`
workers: 1
servers: [{ listen: "127.0.0.1:0", routes: [{ exact: /only, return: { status: 204 } }] }]
`);
    try {
      const miss = await request(`${p.url()}/other`);
      expect(miss.status).toBe(404);
      expect(miss.body.toString()).toBe("404 Not Found\n");
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});

describe("workers", () => {
  it("serves requests from both worker pids", async () => {
    const pids = new Set<string>();
    for (let i = 0; i < 40 && pids.size < 2; i++) {
      const id = `spread-${i}`;
      // A new connection per request: node:cluster hands connections to workers in turn.
      await request(`${portico.url()}/`, { headers: { "x-request-id": id }, agent: new http.Agent() });
      const line = await portico.waitForLine((l) => l.requestId === id);
      pids.add(String(line.pid));
    }
    expect(pids.size).toBe(2);
  });
});
