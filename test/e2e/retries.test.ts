/**
 * End-to-end: retries with the real master and real backends. A connection that cannot be
 * made goes to the next peer whatever the method; a request that reached its peer is sent
 * again only when idempotent, bodiless and allowed by retry_on; the retry budget keeps
 * upstream attempts near the client's requests when every peer fails.
 */
import type http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, closedPort, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(name: string, handler?: http.RequestListener): Promise<Backend> {
  const b = await startBackend(name, handler);
  cleanup.push(() => b.close());
  return b;
}

/** Answers with its name and what it read of the body. */
const named =
  (name: string): http.RequestListener =>
  (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => res.end(`${name}:${body}`));
  };

async function portico(servers: string[], extra = "", workers = 2): Promise<Portico> {
  const p = await startPortico(`
workers: ${workers}
upstreams:
  app:
    balance: first
${extra}
    servers: [${servers.map((s) => `{ address: ${s} }`).join(", ")}]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  return p;
}

describe("retries", () => {
  it("sends a GET whose peer reset the connection to the next peer, but not a POST that was sent", async () => {
    // Reads the whole request, then resets the connection: the request did reach it.
    const reset = await backend("reset", (req, res) => {
      req.resume();
      req.on("end", () => res.socket?.destroy());
    });
    const ok = await backend("ok", named("ok"));
    // Resets must not eject the peer here (passive health would keep the POST away from it).
    const p = await portico([reset.address, ok.address], "    passive: { on: [timeout] }");

    const get = await request(`${p.url()}/g`);
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe("ok:");
    expect(reset.requests).toBe(1);

    const post = await request(`${p.url()}/p`, { method: "POST", body: "payload" });
    expect(post.status).toBe(502);
    expect(reset.requests).toBe(2);
    expect(ok.requests).toBe(1); // only the GET
  });

  it("sends a POST with a body to the next peer when the first cannot be reached (nothing was sent)", async () => {
    const ok = await backend("ok", named("ok"));
    const p = await portico([`127.0.0.1:${await closedPort()}`, ok.address]);
    const post = await request(`${p.url()}/p`, { method: "POST", body: "x".repeat(100_000) });
    expect(post.status).toBe(200);
    expect(post.body.toString()).toBe(`ok:${"x".repeat(100_000)}`);
  });

  it("retries a 503 only when retry_on lists it, and never a POST", async () => {
    const busy = await backend("busy", (req, res) => {
      req.resume();
      res.writeHead(503, { "content-length": 4 });
      res.end("busy");
    });
    const ok = await backend("ok", named("ok"));
    const plain = await portico([busy.address, ok.address]);
    expect((await request(`${plain.url()}/`)).status).toBe(503);
    const retrying = await portico([busy.address, ok.address], "    retry_on: [error, timeout, 503]");
    const get = await request(`${retrying.url()}/`);
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe("ok:");
    const post = await request(`${retrying.url()}/`, { method: "POST", body: "b" });
    expect(post.status).toBe(503);
    expect(post.body.toString()).toBe("busy");
  });

  it("with every peer refusing connections, upstream attempts stay at or below 1.2x the requests plus 3 per worker", async () => {
    const ports = await Promise.all([closedPort(), closedPort(), closedPort()]);
    const workers = 2;
    const p = await portico(
      ports.map((port) => `127.0.0.1:${port}`),
      "",
      workers,
    );
    const requests = 300;
    for (let i = 0; i < requests; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, () => request(`${p.url()}/`).then((r) => expect(r.status).toBe(502))),
      );
    }
    await p.waitForLine(() => p.accessLines().length >= requests);
    const retries = p.lines.filter(
      (l) => typeof l.msg === "string" && l.msg.endsWith("trying the next peer"),
    ).length;
    const refused = p.lines.filter(
      (l) => typeof l.msg === "string" && l.msg.includes("retry budget is spent"),
    ).length;
    const attempts = requests + retries;
    console.log(`retry budget: ${requests} requests, ${retries} retries, ${refused} refused by the budget`);
    expect(refused).toBeGreaterThan(0);
    expect(attempts).toBeLessThanOrEqual(1.2 * requests + 3 * workers);
  });
});
