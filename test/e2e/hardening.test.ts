/**
 * End-to-end hardening over raw sockets: request framing (smuggling vectors), upstream
 * responses without bodies, trailers, limits and their statuses, slow clients, path
 * normalization against deny rules, absolute-form targets, CONNECT/TRACE and trusted proxies.
 * One real Portico (1 worker) in front of a node:http echo backend that records every
 * request it gets, and a raw TCP backend that answers with canned bytes.
 */
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";
import { rawRequest } from "../helpers/raw-http.js";

/** What the echo backend saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: Record<string, string | undefined>;
}

const seen: Seen[] = [];
let echo: Backend;
let raw: net.Server;
let rawPort: number;
let portico: Portico;
let port: number;

/** Canned upstream answers, by the path the raw backend is asked for. */
const CANNED: Record<string, string> = {
  "/304": 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',
  "/204": "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kind: empty\r\n\r\n",
  "/103":
    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter",
  "/trailers":
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n",
  "/bad-header": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bad: a\u0001b\r\n\r\nhello",
  "/bad-status": "HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
};

beforeAll(async () => {
  echo = await startBackend("echo", (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      if (req.url === "/slow") await new Promise((r) => setTimeout(r, 300));
      const body = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body,
        trailers: req.trailers,
      });
      const out = JSON.stringify({ url: req.url, body, trailers: req.trailers, headers: req.headers });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
      res.end(out);
    });
  });
  // Reads request heads (GET only) and answers each from CANNED, keeping the connection.
  raw = net.createServer((socket) => {
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("latin1");
      for (let end = buffered.indexOf("\r\n\r\n"); end >= 0; end = buffered.indexOf("\r\n\r\n")) {
        const path = buffered.slice(0, end).split(" ")[1] ?? "";
        buffered = buffered.slice(end + 4);
        socket.write(CANNED[path] ?? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
  rawPort = (raw.address() as AddressInfo).port;
  portico = await startPortico(`
workers: 1
timeouts: { client_header: 2s, client_body: 1s }
limits: { max_requests_per_connection: 3, max_connections: 40 }
trusted_proxies: [127.0.0.2]
upstreams:
  echo: { servers: [{ address: ${echo.address} }] }
  raw: { servers: [{ address: 127.0.0.1:${rawPort} }] }
servers:
  - listen: 127.0.0.1:0
    server_names: [site.test]
    default: true
    max_url: 2k
    max_headers: 20
    max_request_body: 1k
    routes:
      - path: /admin
        return: { status: 403, body: "denied\\n" }
      - path: /raw/
        upstream: raw
        strip_prefix: true
      - path: /strip/
        upstream: echo
        strip_prefix: true
      - path: /
        upstream: echo
  - listen: 127.0.0.1:0
    server_names: [other.test]
    routes:
      - path: /x
        return: { status: 200, body: "other\\n" }
  - listen: "127.0.0.2:0 h2c"
    routes:
      - path: /raw/
        upstream: raw
        strip_prefix: true
      - path: /
        upstream: echo
`);
  port = portico.bound[0]?.port as number;
});

afterAll(async () => {
  await portico?.stop();
  await echo?.close();
  await new Promise<void>((resolve) => (raw ? raw.close(() => resolve()) : resolve()));
});

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n";

/** Requests whose framing could be read two ways: each gets 400 and its connection closed. */
const AMBIGUOUS: Record<string, string> = {
  "Content-Length with Transfer-Encoding (CL.TE)":
    "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "Transfer-Encoding with Content-Length (TE.CL)":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
  "two Transfer-Encoding fields (TE.TE)":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
  "Transfer-Encoding other than chunked":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
  "Transfer-Encoding: identity": "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: identity\r\n\r\n",
  "Transfer-Encoding: xchunked":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
  "space before the colon of Transfer-Encoding":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
  "Transfer-Encoding in HTTP/1.0":
    "POST / HTTP/1.0\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "two equal Content-Length fields":
    "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
  "two different Content-Length fields":
    "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
  "a Content-Length list": "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 4, 4\r\n\r\nabcd",
  "a signed Content-Length": "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: +4\r\n\r\nabcd",
  "obs-fold": "GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\r\n c\r\n\r\n",
  "a control character in a value": "GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\u0001c\r\n\r\n",
  "NUL in a value": "GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\u0000c\r\n\r\n",
  "a bare CR": "GET / HTTP/1.1\r\nHost: site.test\rX-A: b\r\n\r\n",
  "a bare LF ending the request line": "GET / HTTP/1.1\nHost: site.test\r\n\r\n",
  "a space in a field name": "GET / HTTP/1.1\r\nHost: site.test\r\nX A: b\r\n\r\n",
  "two Host fields": "GET / HTTP/1.1\r\nHost: site.test\r\nHost: other.test\r\n\r\n",
  "a bad chunk size":
    "POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n4x\r\nabcd\r\n0\r\n\r\n",
};

describe("request framing", () => {
  for (const [name, data] of Object.entries(AMBIGUOUS)) {
    it(`${name}: 400, connection closed, nothing hidden reaches the backend`, async () => {
      const before = seen.length;
      const res = await rawRequest(port, data + SMUGGLED);
      if (name === "a bad chunk size") {
        // The head is fine and goes upstream with the body streamed: the bad chunk cuts it.
        expect(res.statuses.every((s) => s === 400 || s === 502)).toBe(true);
      } else {
        expect(res.statuses).toEqual([400]);
      }
      expect(res.closed).toBe(true);
      expect(seen.slice(before).filter((s) => s.url !== "/")).toEqual([]);
      expect(seen.slice(before).some((s) => s.url === "/smuggled")).toBe(false);
      if (name !== "a bad chunk size") expect(seen.length).toBe(before);
    });
  }

  it("a chunked body goes upstream with one framing, and a smuggled request stays body", async () => {
    const before = seen.length;
    const body = `${SMUGGLED}`;
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const res = await rawRequest(
      port,
      `POST /upload HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    );
    expect(res.statuses).toEqual([200]);
    const got = seen.slice(before);
    expect(got.map((s) => s.url)).toEqual(["/upload"]);
    expect(got[0]?.body).toBe(body);
    // One framing upstream: never both.
    expect(
      got[0]?.headers["content-length"] !== undefined && got[0]?.headers["transfer-encoding"] !== undefined,
    ).toBe(false);
  });
});

describe("upstream responses", () => {
  /** GETs on one keep-alive connection; returns each response and whether its socket was reused. */
  async function onOneConnection(paths: string[], headers: http.OutgoingHttpHeaders = {}) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const out: Array<{
      status: number;
      body: string;
      headers: http.IncomingHttpHeaders;
      reused: boolean;
      trailers: unknown;
    }> = [];
    try {
      for (const path of paths) {
        out.push(
          await new Promise((resolve, reject) => {
            const req = http.get(
              { host: "127.0.0.1", port, path, agent, headers: { host: "site.test", ...headers } },
              (res) => {
                let body = "";
                res.setEncoding("latin1");
                res.on("data", (c: string) => {
                  body += c;
                });
                res.on("end", () =>
                  resolve({
                    status: res.statusCode ?? 0,
                    body,
                    headers: res.headers,
                    reused: req.reusedSocket,
                    trailers: res.trailers,
                  }),
                );
              },
            );
            req.on("error", reject);
          }),
        );
      }
    } finally {
      agent.destroy();
    }
    return out;
  }

  it("a 304 with the Content-Length of the cached representation passes, and the next request on the connection is answered", async () => {
    const [notModified, next] = await onOneConnection(["/raw/304", "/x"]);
    expect(notModified?.status).toBe(304);
    expect(notModified?.headers.etag).toBe('"v1"');
    expect(notModified?.body).toBe("");
    expect(next?.status).toBe(200);
    expect(next?.reused).toBe(true);
  });

  it("a 204 passes without a body or Content-Length, and the connection goes on", async () => {
    const [empty, next] = await onOneConnection(["/raw/204", "/x"]);
    expect(empty?.status).toBe(204);
    expect(empty?.headers["x-kind"]).toBe("empty");
    expect(empty?.headers["content-length"]).toBeUndefined();
    expect(next?.status).toBe(200);
    expect(next?.reused).toBe(true);
  });

  it("an error Portico answers itself (404) keeps a keep-alive connection open", async () => {
    const [missing, next] = await onOneConnection(["/nothing", "/x"], { host: "other.test" });
    expect(missing?.status).toBe(404);
    expect(missing?.headers.connection).toBe("keep-alive");
    expect(next?.status).toBe(200);
    expect(next?.reused).toBe(true);
  });

  it("a 103 Early Hints passes before the final response", async () => {
    const res = await rawRequest(
      port,
      "GET /raw/103 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    expect(res.statuses).toEqual([103, 200]);
    expect(res.text).toMatch(/103 Early Hints\r\nlink: <\/style\.css>; rel=preload\r\n/i);
    expect(res.text.endsWith("after")).toBe(true);
  });

  it("response trailers reach a client that sent TE: trailers, and only it", async () => {
    const before = seen.length;
    const [asked] = await onOneConnection(["/echo-te"], { te: "trailers" });
    expect(asked?.status).toBe(200);
    // Portico passes trailers on, so it asks for them upstream too (RFC 9110 §10.1.4).
    expect(seen.slice(before).map((s) => s.headers.te)).toEqual(["trailers"]);
    const [withTe] = await onOneConnection(["/raw/trailers"], { te: "trailers" });
    expect(withTe?.body).toBe("hello");
    expect(withTe?.trailers).toEqual({ "x-checksum": "abc123" });
    const [without] = await onOneConnection(["/raw/trailers"]);
    expect(without?.body).toBe("hello");
    expect(without?.trailers).toEqual({});
  });

  it("request trailers reach the backend", async () => {
    const before = seen.length;
    const res = await rawRequest(
      port,
      "POST /with-trailers HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nTrailer: x-digest\r\nConnection: close\r\n\r\n4\r\nbody\r\n0\r\nX-Digest: sha-256=abc\r\n\r\n",
    );
    expect(res.statuses).toEqual([200]);
    const got = seen.slice(before);
    expect(got.map((s) => s.url)).toEqual(["/with-trailers"]);
    expect(got[0]?.body).toBe("body");
    expect(got[0]?.trailers).toEqual({ "x-digest": "sha-256=abc" });
  });

  it("over HTTP/2, trailers go both ways", async () => {
    const h2 = portico.bound.find((b) => b.listen.endsWith(" h2c"));
    const session = http2.connect(`http://127.0.0.2:${h2?.port}`);
    try {
      const response = await new Promise<{ body: string; trailers: http2.IncomingHttpHeaders }>(
        (resolve, reject) => {
          const stream = session.request({ ":path": "/raw/trailers", te: "trailers" });
          let body = "";
          stream.setEncoding("latin1");
          stream.on("data", (c: string) => {
            body += c;
          });
          stream.on("trailers", (trailers) => resolve({ body, trailers }));
          stream.on("end", () => resolve({ body, trailers: {} }));
          stream.on("error", reject);
        },
      );
      expect(response.body).toBe("hello");
      expect(response.trailers["x-checksum"]).toBe("abc123");

      const before = seen.length;
      await new Promise<void>((resolve, reject) => {
        const stream = session.request(
          { ":method": "POST", ":path": "/h2-trailers", trailer: "x-digest" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "x-digest": "sha-256=h2" }));
        stream.on("response", () => {});
        stream.resume();
        stream.on("end", () => resolve());
        stream.on("error", reject);
        stream.end("h2 body");
      });
      const got = seen.slice(before);
      expect(got.map((x) => [x.url, x.body])).toEqual([["/h2-trailers", "h2 body"]]);
      expect(got[0]?.trailers).toEqual({ "x-digest": "sha-256=h2" });
    } finally {
      session.close();
    }
  });

  it("a malformed upstream response gets 502, never a part of it", async () => {
    for (const path of ["/raw/bad-header", "/raw/bad-status"]) {
      const res = await rawRequest(
        port,
        `GET ${path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`,
      );
      expect(res.statuses).toEqual([502]);
      expect(res.text).not.toContain("hello");
    }
  });
});

describe("limits", () => {
  it("a 100 KB URL gets 414 and a 100 KB header 431 (over the parser's limit)", async () => {
    const url = await rawRequest(port, `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: site.test\r\n\r\n`);
    expect(url.statuses).toEqual([414]);
    expect(url.closed).toBe(true);
    const header = await rawRequest(
      port,
      `GET / HTTP/1.1\r\nHost: site.test\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`,
    );
    expect(header.statuses).toEqual([431]);
    expect(header.closed).toBe(true);
  });

  it("the server's own max_url (414) and max_headers (431)", async () => {
    const url = await rawRequest(port, `GET /${"a".repeat(3000)} HTTP/1.1\r\nHost: site.test\r\n\r\n`);
    expect(url.statuses).toEqual([414]);
    const fields = Array.from({ length: 25 }, (_, i) => `X-F${i}: v\r\n`).join("");
    const many = await rawRequest(port, `GET / HTTP/1.1\r\nHost: site.test\r\n${fields}\r\n`);
    expect(many.statuses).toEqual([431]);
  });

  it("max_request_body: 413 on Content-Length, and counted on a chunked body", async () => {
    const before = seen.length;
    const declared = await rawRequest(
      port,
      `POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 2000\r\n\r\n${"x".repeat(2000)}`,
    );
    expect(declared.statuses).toEqual([413]);
    const chunk = "x".repeat(600);
    const streamed = await rawRequest(
      port,
      `POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    );
    // The first 600 bytes may already be on their way: the answer is 413 or the cut connection.
    expect(streamed.statuses.filter((s) => s !== 413)).toEqual([]);
    expect(streamed.closed).toBe(true);
    expect(seen.slice(before).filter((s) => s.body.length > 1024)).toEqual([]);
  });

  it("max_requests_per_connection: the third response says Connection: close, and the connection ends", async () => {
    const one = "GET /x HTTP/1.1\r\nHost: site.test\r\n\r\n";
    const res = await rawRequest(port, [one, one, one, one], { gapMs: 100, deadlineMs: 3000 });
    expect(res.statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(res.closed).toBe(true);
    const third = res.text.split(/(?=HTTP\/1\.1 )/)[2] ?? "";
    expect(third.toLowerCase()).toContain("connection: close");
  });

  it("a request body silent for client_body gets 408", async () => {
    const res = await rawRequest(port, "POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 10\r\n\r\nab", {
      deadlineMs: 5000,
    });
    expect(res.statuses).toEqual([408]);
    expect(res.closed).toBe(true);
  });

  it("max_connections: connections over the limit are refused at once, counted in the log, and the others served", async () => {
    const open: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = net.connect(port, "127.0.0.1");
        s.on("error", () => {});
        await new Promise((resolve) => s.once("connect", resolve));
        open.push(s);
      }
      // Let the worker accept the 40 before the next one.
      await new Promise((r) => setTimeout(r, 200));
      const over = await rawRequest(port, "GET /x HTTP/1.1\r\nHost: site.test\r\n\r\n");
      expect(over.statuses).toEqual([]);
      expect(over.closed).toBe(true);
      const line = await portico.waitForLine((l) => /limits\.max_connections \(40\)/.test(String(l.msg)));
      expect(line.dropped).toBeGreaterThanOrEqual(1);
    } finally {
      for (const s of open) s.destroy();
    }
    // Freed: served again (the worker sees the closes first).
    await new Promise((r) => setTimeout(r, 200));
    expect((await request(`http://127.0.0.1:${port}/x`, { headers: { host: "site.test" } })).status).toBe(
      200,
    );
  });

  it("header lines trickled one per second are cut off within client_header, while 500 requests flow", async () => {
    const lines = [
      "GET / HTTP/1.1\r\n",
      ...Array.from({ length: 10 }, (_, i) => `X-Slow-${i}: 1\r\n`),
      "\r\n",
    ];
    const slow = rawRequest(port, lines, { gapMs: 1000, deadlineMs: 8000 });
    let ok = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const worker = async () => {
        for (let i = 0; i < 50; i++) {
          const res = await request(`http://127.0.0.1:${port}/flow`, {
            headers: { host: "site.test" },
            agent,
          });
          if (res.status === 200) ok++;
        }
      };
      await Promise.all(Array.from({ length: 10 }, worker));
    } finally {
      agent.destroy();
    }
    const cut = await slow;
    expect(ok).toBe(500);
    expect(cut.statuses).toEqual([408]);
    expect(cut.closed).toBe(true);
    // client_header is 2 s, checked every 250 ms at most: well before all 11 lines were sent.
    expect(cut.ms).toBeLessThan(4000);
  });
});

describe("paths and routing", () => {
  const DENY_BYPASSES = [
    "/admin",
    "/admin/",
    "/%61dmin",
    "/%61%64%6d%69%6e/users",
    "//admin",
    "/./admin",
    "/x/../admin",
    "/x/%2e%2e/admin",
    "/x/%2E%2E/admin",
    "/x/.%2e/admin",
    "/x%2f..%2fadmin",
    "/x%2F%2E%2E%2Fadmin",
    "/admin%2fsecret",
    "/static/..//admin",
  ];
  for (const target of DENY_BYPASSES) {
    it(`deny rule holds for ${target}`, async () => {
      const before = seen.length;
      const res = await rawRequest(
        port,
        `GET ${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`,
      );
      expect(res.statuses).toEqual([403]);
      expect(seen.length).toBe(before);
    });
  }

  it("a target that climbs above / is refused", async () => {
    for (const target of ["/../admin", "/x/../../admin", "/%2e%2e/admin", "/x%2f..%2f..%2fadmin"]) {
      const before = seen.length;
      const res = await rawRequest(
        port,
        `GET ${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`,
      );
      expect(res.statuses).toEqual([400]);
      expect(seen.length).toBe(before);
    }
  });

  it("a path with dot segments and escapes reaches the backend byte for byte", async () => {
    for (const target of ["/api/./x/../y%2Fz?q=/../a%20b", "/a//b/%7euser", "/caf%C3%A9/%2e/"]) {
      const before = seen.length;
      const res = await rawRequest(
        port,
        `GET ${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`,
      );
      expect(res.statuses).toEqual([200]);
      expect(seen.slice(before).map((s) => s.url)).toEqual([target]);
    }
  });

  it("strip_prefix sends the normalized rest of the path, the query as received", async () => {
    const res = await request(`http://127.0.0.1:${port}/strip/a/./b%20c?x=%2F`, {
      headers: { host: "site.test" },
    });
    expect(res.json<{ url: string }>().url).toBe("/a/b%20c?x=%2F");
  });

  it("an absolute-form target routes by its authority; a host no server names gets 400", async () => {
    const other = await rawRequest(
      port,
      "GET http://other.test/x HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    expect(other.statuses).toEqual([200]);
    expect(other.text.endsWith("other\n")).toBe(true);
    const before = seen.length;
    const site = await rawRequest(
      port,
      "GET http://site.test/abs?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    expect(site.statuses).toEqual([200]);
    const got = seen.slice(before);
    expect(got.map((s) => s.url)).toEqual(["/abs?q=1"]);
    expect(got[0]?.headers.host).toBe("site.test");
    const foreign = await rawRequest(port, "GET http://evil.example/ HTTP/1.1\r\nHost: site.test\r\n\r\n");
    expect(foreign.statuses).toEqual([400]);
    expect(foreign.closed).toBe(true);
    expect(seen.length).toBe(before + 1);
  });

  it("CONNECT and TRACE get 405", async () => {
    const connect = await rawRequest(
      port,
      "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    );
    expect(connect.statuses).toEqual([405]);
    expect(connect.closed).toBe(true);
    const before = seen.length;
    const trace = await rawRequest(port, "TRACE / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    expect(trace.statuses).toEqual([405]);
    expect(trace.text.toLowerCase()).toContain("allow: ");
    expect(seen.length).toBe(before);
  });
});

describe("trusted proxies", () => {
  /** A request from `localAddress` with the given X-Forwarded-* headers; what the backend saw. */
  async function from(localAddress: string, headers: http.OutgoingHttpHeaders): Promise<Seen> {
    const before = seen.length;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(
        {
          host: "127.0.0.1",
          port,
          path: "/who",
          localAddress,
          agent: false,
          headers: { host: "site.test", ...headers },
        },
        (res) => {
          res.resume();
          res.on("end", resolve);
        },
      );
      req.on("error", reject);
    });
    const got = seen.slice(before);
    expect(got).toHaveLength(1);
    return got[0] as Seen;
  }

  it("from an untrusted address, X-Forwarded-* and Forwarded are replaced", async () => {
    const got = await from("127.0.0.1", {
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "bank.example",
      forwarded: "for=203.0.113.9",
    });
    expect(got.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(got.headers["x-forwarded-proto"]).toBe("http");
    expect(got.headers["x-forwarded-host"]).toBe("site.test");
    expect(got.headers.forwarded).toBeUndefined();
  });

  it("from a trusted proxy, X-Forwarded-For is appended to and its client is the one logged", async () => {
    const got = await from("127.0.0.2", {
      "x-forwarded-for": "198.51.100.7, 127.0.0.2",
      "x-forwarded-proto": "https",
    });
    expect(got.headers["x-forwarded-for"]).toBe("198.51.100.7, 127.0.0.2, 127.0.0.2");
    expect(got.headers["x-forwarded-proto"]).toBe("https");
    const line = await portico.waitForLine((l) => l.path === "/who" && l.remote === "198.51.100.7");
    expect(line.status).toBe(200);
  });
});

describe("what the listener fuzzer found", () => {
  it("a request line saying HTTP/2.0 on a plain listener gets 400, and the worker lives", async () => {
    const res = await rawRequest(port, "GET / HTTP/2.0\r\nHost: site.test\r\n\r\n");
    expect(res.statuses).toEqual([400]);
    expect((await request(`http://127.0.0.1:${port}/x`, { headers: { host: "site.test" } })).status).toBe(
      200,
    );
  });

  it("on an h2c listener, a reset before the first byte harms nothing, and a first segment 'P' is still HTTP/1.1", async () => {
    const h2c = portico.bound.find((b) => b.listen.endsWith(" h2c"))?.port as number;
    const s = net.connect(h2c, "127.0.0.2");
    s.on("error", () => {});
    await new Promise((resolve) => s.once("connect", resolve));
    s.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 100));
    const post = await new Promise<string>((resolve) => {
      const c = net.connect(h2c, "127.0.0.2");
      let got = "";
      c.on("data", (d) => {
        got += d.toString("latin1");
      });
      c.on("close", () => resolve(got));
      c.on("error", () => {});
      c.once("connect", () => {
        c.write("P");
        setTimeout(
          () => c.write("OST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
          20,
        );
      });
    });
    expect(post.startsWith("HTTP/1.1 200 ")).toBe(true);
    expect(portico.lines.filter((l) => /worker died|exited unexpectedly/.test(String(l.msg)))).toEqual([]);
  });
});

describe("connections the client closes", () => {
  it("requests pipelined behind a slow one are not left counted when the client goes (the stop is at once)", async () => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    const one = (path: string) => `GET ${path} HTTP/1.1\r\nHost: site.test\r\n\r\n`;
    socket.write(one("/slow") + one("/x") + one("/x"));
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    await new Promise((r) => setTimeout(r, 500));
    portico.proc.kill("SIGTERM");
    const draining = await portico.waitForLine((l) => l.msg === "worker draining");
    expect({ inFlight: draining.inFlight, connections: draining.connections }).toEqual({
      inFlight: 0,
      connections: 0,
    });
    expect(await portico.exited).toBe(0);
  });
});
