/**
 * End-to-end: HTTP/2 towards clients, HTTP/1.1 towards the backend. Many concurrent streams
 * on one connection, every class of malformed request RFC 9113 §8.2/§8.3 names (sent with a
 * raw frame writer, since node:http2's own client refuses to send them), flow control
 * towards a slow reader, the h2 settings, and h2c with prior knowledge on a plain address.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { generateCert } from "../helpers/certs.js";
import { rawH2Request } from "../helpers/h2raw.js";
import { type Portico, startPortico } from "../helpers/portico.js";
import { rssBytes, sampleRss } from "../helpers/rss.js";

const BIG = 200 * 1024 * 1024;
const RSS_LIMIT = 64 * 1024 * 1024;

/** What the backend saw of each request. */
interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  complete: boolean;
}

let app: Backend;
let p: Portico;
let dir: string;
const seen: Seen[] = [];
let tlsPort = 0;
let h2cPort = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portico-h2-"));
  const pair = await generateCert({ altNames: ["localhost"] });
  writeFileSync(join(dir, "cert.pem"), pair.cert);
  writeFileSync(join(dir, "key.pem"), pair.key);
  const chunk = Buffer.alloc(64 * 1024, 120);
  app = await startBackend("app", (req, res) => {
    const entry: Seen = {
      method: req.method ?? "",
      url: req.url ?? "",
      rawHeaders: req.rawHeaders,
      complete: false,
    };
    seen.push(entry);
    if (req.url === "/big") {
      // 200 MB with backpressure: the proxy's pace decides how fast it is made.
      res.writeHead(200, { "content-length": BIG });
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (req.url === "/slow") {
      req.resume();
      setTimeout(() => res.end("slow"), 800);
      return;
    }
    const hash = createHash("sha256");
    let length = 0;
    req.on("data", (d: Buffer) => {
      hash.update(d);
      length += d.length;
    });
    req.on("end", () => {
      entry.complete = true;
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        length,
        sha256: hash.digest("hex"),
        headers: req.headers,
      });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  p = await startPortico(`
workers: 1
http2: { max_concurrent_streams: 150, max_header_list_size: 16k }
upstreams:
  app: { servers: [{ address: ${app.address}, }], max_connections: 64 }
servers:
  - listen: ["127.0.0.1:0 tls", "127.0.0.2:0 h2c"]
    server_names: [localhost]
    tls: { certificates: [{ cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} }] }
    routes: [{ path: /, upstream: app }]
`);
  tlsPort = p.bound.find((b) => b.listen.endsWith(" tls"))?.port ?? 0;
  h2cPort = p.bound.find((b) => b.listen.endsWith(" h2c"))?.port ?? 0;
});

afterAll(async () => {
  await p?.stop();
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

function connect(url = `https://127.0.0.1:${tlsPort}`): http2.ClientHttp2Session {
  return http2.connect(url, { rejectUnauthorized: false, servername: "localhost" });
}

/** One request on `session`; resolves with status, headers and body. */
function h2request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    if (body !== undefined) stream.end(body);
  });
}

describe("HTTP/2 to clients, HTTP/1.1 to the backend", () => {
  it("proxies 100 concurrent streams on one connection, GETs and POSTs with bodies, each to its own answer", async () => {
    const session = connect();
    try {
      const jobs = Array.from({ length: 100 }, (_, i) => {
        if (i % 2 === 0) {
          return h2request(session, { ":method": "GET", ":path": `/get/${i}` }).then((r) => ({
            i,
            r,
            sent: undefined,
          }));
        }
        // Bodies from 1 byte to ~200 KB: small ones are read whole first, large ones stream;
        // every third one has no content-length (chunked towards the backend).
        const sent = Buffer.alloc(1 + ((i * 4099) % 200_000), i);
        const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": `/post/${i}` };
        if (i % 3 !== 0) headers["content-length"] = sent.length;
        return h2request(session, headers, sent).then((r) => ({ i, r, sent }));
      });
      const results = await Promise.all(jobs);
      for (const { i, r, sent } of results) {
        expect(r.status).toBe(200);
        const echo = JSON.parse(r.body.toString()) as {
          method: string;
          url: string;
          length: number;
          sha256: string;
          headers: Record<string, string>;
        };
        expect(echo.url).toBe(i % 2 === 0 ? `/get/${i}` : `/post/${i}`);
        expect(echo.headers.host).toBe(`localhost:${tlsPort}`);
        if (sent) {
          expect(echo.method).toBe("POST");
          expect(echo.length).toBe(sent.length);
          expect(echo.sha256).toBe(createHash("sha256").update(sent).digest("hex"));
        } else {
          expect(echo.length).toBe(0);
        }
      }
    } finally {
      session.close();
    }
  });

  it("announces the configured settings (max concurrent streams, header list size)", async () => {
    const session = connect();
    try {
      const settings = await new Promise<http2.Settings>((r) => session.once("remoteSettings", r));
      expect(settings.maxConcurrentStreams).toBe(150);
      expect(settings.maxHeaderListSize).toBe(16 * 1024);
    } finally {
      session.close();
    }
  });

  const base = (path: string): Array<[string, string]> => [
    [":method", "POST"],
    [":scheme", "https"],
    [":authority", "localhost"],
    [":path", path],
  ];
  const PROTOCOL_ERROR = 1;

  // Each is refused with RST_STREAM PROTOCOL_ERROR, by node:http2 itself or by Portico.
  const refused: Array<[string, Array<[string, string]>, Buffer[] | undefined]> = [
    [
      "Content-Length larger than the DATA",
      [...base("/m"), ["content-length", "10"]],
      [Buffer.from("hello")],
    ],
    [
      "Content-Length smaller than the DATA",
      [...base("/m"), ["content-length", "5"]],
      [Buffer.from("hello world")],
    ],
    [
      "Content-Length exceeded in a second DATA frame",
      [...base("/m"), ["content-length", "5"]],
      [Buffer.from("hel"), Buffer.from("lo world")],
    ],
    [
      "Transfer-Encoding",
      [...base("/m"), ["transfer-encoding", "chunked"]],
      [Buffer.from("5\r\nhello\r\n0\r\n\r\n")],
    ],
    ["Connection", [...base("/m"), ["connection", "keep-alive"]], undefined],
    ["Keep-Alive", [...base("/m"), ["keep-alive", "5"]], undefined],
    ["Proxy-Connection", [...base("/m"), ["proxy-connection", "x"]], undefined],
    ["Upgrade", [...base("/m"), ["upgrade", "websocket"]], undefined],
    ["TE other than trailers", [...base("/m"), ["te", "gzip"]], undefined],
    ["an upper-case field name", [...base("/m"), ["X-Foo", "1"]], undefined],
    ["an empty :path", base(""), undefined],
    ["a :path without a leading slash", base("foo"), undefined],
    ["a :path with a space", base("/a b"), undefined],
    ["a :path with a fragment", base("/x#frag"), undefined],
    ["two :path", [...base("/m"), [":path", "/n"]], undefined],
    ["no :path", base("/m").filter(([n]) => n !== ":path"), undefined],
    ["Host disagreeing with :authority", [...base("/m"), ["host", "other.example"]], undefined],
  ];

  it.each(refused)("refuses a request with %s; the backend sees nothing of it", async (_, headers, data) => {
    const before = seen.length;
    const result = await rawH2Request({ port: tlsPort, servername: "localhost", headers, data });
    expect(result.rstCode).toBe(PROTOCOL_ERROR);
    expect(result.status).toBeUndefined();
    // A request forwarded a moment later would still be seen by the next test's check.
    const probe = await rawH2Request({
      port: tlsPort,
      servername: "localhost",
      headers: [...base("/probe")].map(([n, v]) => [n, n === ":method" ? "GET" : v]),
    });
    expect(probe.status).toBe(200);
    expect(seen.slice(before).map((s) => s.url)).toEqual(["/probe"]);
  });

  it.each([
    ["a CR LF in a value", ["x-bad", "a\r\nx-injected: 1"]],
    ["a NUL in a value", ["x-bad", "a\0b"]],
    ["a bare LF in a value", ["x-bad", "a\nx-injected: 1"]],
    ["a space in a name", ["x bad", "1"]],
  ] as Array<[string, [string, string]]>)(
    "never passes on a field with %s (node:http2 drops the field before Portico sees the request)",
    async (_, field) => {
      const before = seen.length;
      const result = await rawH2Request({
        port: tlsPort,
        servername: "localhost",
        headers: [...base("/dropped"), field],
      });
      const got = seen.slice(before);
      // Either the stream is refused, or the request arrives without the field: never with it.
      if (result.rstCode === undefined) expect(result.status).toBe(200);
      for (const request of got) {
        const names = request.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
        expect(names).not.toContain("x-bad");
        expect(names).not.toContain("x bad");
        expect(names).not.toContain("x-injected");
        expect(request.rawHeaders.join("|")).not.toMatch(/[\r\n\0]/);
      }
    },
  );

  it("respects flow control: a slow reader of a 200 MB response does not grow the worker by 64 MB", async () => {
    const worker = p.workers[0] as number;
    const before = rssBytes(worker);
    const sampler = sampleRss(worker);
    const session = connect();
    try {
      const received = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": "/big" });
        let n = 0;
        stream.once("data", (c: Buffer) => {
          n += c.length;
          // Stop reading for 1.5 s: the windows fill, the worker must pause the backend.
          stream.pause();
          setTimeout(() => {
            stream.on("data", (d: Buffer) => (n += d.length));
            stream.resume();
          }, 1500);
        });
        stream.on("end", () => resolve(n));
        stream.on("error", reject);
      });
      expect(received).toBe(BIG);
    } finally {
      session.close();
    }
    const growth = sampler.stop() - before;
    console.log(`h2 slow reader: worker RSS grew ${(growth / 1048576).toFixed(1)} MB for a 200 MB response`);
    expect(growth).toBeLessThan(RSS_LIMIT);
  });

  it("speaks h2c with prior knowledge and HTTP/1.1 on the same plain address", async () => {
    const session = http2.connect(`http://127.0.0.2:${h2cPort}`);
    try {
      const r = await h2request(session, { ":method": "GET", ":path": "/over-h2c" });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString()).url).toBe("/over-h2c");
    } finally {
      session.close();
    }
    const h1 = await new Promise<{ status: number; version: string }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.2", port: h2cPort, path: "/over-h1", agent: false }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, version: res.httpVersion }));
        })
        .on("error", reject);
    });
    expect(h1).toEqual({ status: 200, version: "1.1" });
  });

  // Last: it replaces the workers the tests above measure.
  it("drains an HTTP/2 connection on reload with GOAWAY: the stream in flight is answered, new ones go to a new connection", async () => {
    const session = connect();
    try {
      const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
      const slow = h2request(session, { ":method": "GET", ":path": "/slow" });
      await new Promise((r) => setTimeout(r, 100));
      process.kill(p.pid, "SIGHUP");
      await goaway;
      const answered = await slow;
      expect(answered).toEqual({ status: 200, body: Buffer.from("slow") });
    } finally {
      session.close();
    }
    await p.waitForLine((l) => l.msg === "reload complete");
    const fresh = connect();
    try {
      expect((await h2request(fresh, { ":method": "GET", ":path": "/after" })).status).toBe(200);
    } finally {
      fresh.close();
    }
  });
});
