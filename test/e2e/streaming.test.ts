/**
 * End-to-end: 50 MB bodies stream through a worker in both directions with backpressure,
 * without the worker's RSS growing by more than 64 MB. Each side pauses for a while so a
 * proxy that buffered instead of pausing its source would hold the whole body.
 */
import http from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { type Portico, startPortico } from "../helpers/portico.js";
import { rssBytes, sampleRss } from "../helpers/rss.js";

const SIZE = 50 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, "x");
const LIMIT = 64 * 1024 * 1024;

let backend: Backend;
let portico: Portico;
let workerPid: number;

/** A readable that produces `size` bytes in 64 KiB chunks, respecting backpressure. */
function source(size: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(CHUNK.length, size - sent);
      sent += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

beforeAll(async () => {
  backend = await startBackend("big", (req, res) => {
    if (req.method === "POST") {
      // Read nothing for 1 s: the upload must wait in the client, not in the worker.
      req.pause();
      let received = 0;
      setTimeout(() => {
        req.on("data", (c: Buffer) => (received += c.length));
        req.on("end", () => res.end(String(received)));
        req.resume();
      }, 1000);
      return;
    }
    res.writeHead(200, { "content-length": SIZE, "content-type": "application/octet-stream" });
    source(SIZE).pipe(res);
  });
  portico = await startPortico(`
workers: 1
upstreams: { big: { servers: [{ address: ${backend.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: big }] }]
`);
  workerPid = portico.workers[0];
});

afterAll(async () => {
  expect(await portico?.stop()).toBe(0);
  await backend?.close();
});

it("streams a 50 MB request body to the backend", async () => {
  const before = rssBytes(workerPid);
  const sampler = sampleRss(workerPid);
  const received = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      `${portico.url()}/upload`,
      { method: "POST", headers: { "content-length": SIZE }, agent: false },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve(body));
      },
    );
    req.on("error", reject);
    source(SIZE).pipe(req);
  });
  const growth = sampler.stop() - before;
  expect(received).toBe(String(SIZE));
  expect(growth).toBeLessThan(LIMIT);
});

it("streams a 50 MB response body to a slow client", async () => {
  const before = rssBytes(workerPid);
  const sampler = sampleRss(workerPid);
  const received = await new Promise<number>((resolve, reject) => {
    const req = http.get(`${portico.url()}/download`, { agent: false }, (res) => {
      let n = 0;
      res.once("data", (c: Buffer) => {
        n += c.length;
        // Stop reading for 1 s: the backend must be paused, not the worker filled.
        res.pause();
        setTimeout(() => {
          res.on("data", (d: Buffer) => (n += d.length));
          res.resume();
        }, 1000);
      });
      res.on("end", () => resolve(n));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  const growth = sampler.stop() - before;
  expect(received).toBe(SIZE);
  expect(growth).toBeLessThan(LIMIT);
});
