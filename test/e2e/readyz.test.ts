/**
 * The admin listener's probes: /healthz (the master answers) and /readyz (it serves, and is
 * not draining to stop). During a graceful stop the master keeps answering: /readyz says
 * 503 while the request in flight finishes, so a load balancer or Kubernetes takes the
 * instance out before it is gone.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { startPortico } from "../helpers/portico.js";

let slow: Backend;
let release: () => void = () => {};

beforeAll(async () => {
  slow = await startBackend("slow", (req, res) => {
    if (req.url === "/slow") {
      release = () => res.end("late");
      return;
    }
    res.end("ok");
  });
});

afterAll(async () => {
  release();
  await slow?.close();
});

describe("admin /healthz and /readyz", () => {
  it("are 200 while serving; during a graceful stop /readyz is 503 and /healthz 200", async () => {
    const p = await startPortico(`
workers: 1
admin: { listen: 127.0.0.1:0 }
upstreams:
  app: { servers: [{ address: ${slow.address} }] }
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
    const ready = await p.waitForLine((l) => l.msg === "portico ready");
    const admin = `http://127.0.0.1:${(ready.admin as { port: number }).port}`;
    expect((await request(`${admin}/healthz`)).status).toBe(200);
    const yes = await request(`${admin}/readyz`);
    expect([yes.status, yes.body.toString()]).toEqual([200, "ready\n"]);

    // A request in flight keeps the drain going.
    const inFlight = new Promise<number>((resolve, reject) => {
      http
        .get(`${p.url()}/slow`, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        })
        .on("error", reject);
    });
    while (slow.requests === 0) await new Promise((r) => setTimeout(r, 20));
    const stopped = p.stop("SIGTERM");
    await p.waitForLine((l) => l.msg === "graceful stop: draining workers");
    const no = await request(`${admin}/readyz`);
    expect([no.status, no.body.toString()]).toEqual([503, "not ready: draining to stop\n"]);
    expect((await request(`${admin}/healthz`)).status).toBe(200);
    release();
    expect(await inFlight).toBe(200);
    expect(await stopped).toBe(0);
  });
});
