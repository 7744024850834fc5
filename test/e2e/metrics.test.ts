/**
 * End-to-end: the admin listener in the master. One scrape of /metrics sums every worker
 * (2 here) with the master's own; a token guards it; a scrape during a reload answers.
 */
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, closedPort, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

let app: Backend;
let dead: number;
const running: Portico[] = [];

beforeAll(async () => {
  app = await startBackend("app");
  dead = await closedPort();
});

afterAll(async () => {
  for (const p of running) await p.stop();
  await app?.close();
});

function config(admin: string): string {
  return `
workers: 2
${admin}
upstreams:
  app: { servers: [{ address: ${app.address} }] }
  two: { servers: [{ address: 127.0.0.1:${dead} }, { address: ${app.address} }] }
servers:
  - listen: 127.0.0.1:0
    server_names: [site.test]
    routes:
      - exact: /fixed
        return: { status: 204 }
      - path: /two/
        upstream: two
      - path: /
        upstream: app
`;
}

async function start(admin: string): Promise<{ p: Portico; admin: string }> {
  const p = await startPortico(config(admin));
  running.push(p);
  const ready = await p.waitForLine((l) => l.msg === "portico ready");
  const address = ready.admin as { address: string; port: number };
  return { p, admin: `http://127.0.0.1:${address.port}` };
}

/** The value of one sample line (`name{labels} value`) of a scrape, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

describe("admin listener", () => {
  it("after N requests through 2 workers, /metrics counts exactly N, and the histograms agree", async () => {
    const { p, admin } = await start("admin: { listen: 127.0.0.1:0 }");
    // New connections until both workers have served (the kernel picks the worker), then some more.
    let N = 0;
    const pids = new Set<unknown>();
    while ((pids.size < 2 || N < 60) && N < 400) {
      const res = await request(`${p.url()}/n`, { headers: { host: "site.test" } });
      expect(res.status).toBe(200);
      N++;
      const line = await p.waitForLine((l) => l.path === "/n" && l.n === undefined);
      line.n = N;
      pids.add(line.pid);
    }
    expect(pids.size).toBe(2);
    for (let i = 0; i < 7; i++) {
      expect((await request(`${p.url()}/fixed`, { headers: { host: "site.test" } })).status).toBe(204);
    }
    const scrape = await request(`${admin}/metrics`);
    expect(scrape.status).toBe(200);
    const text = scrape.body.toString();
    const route = { server: "site.test", route: "servers[0].routes[2]", upstream: "app" };
    expect(sample(text, "portico_requests_total", { ...route, status_class: "2xx" })).toBe(N);
    expect(
      sample(text, "portico_requests_total", { route: "servers[0].routes[0]", status_class: "2xx" }),
    ).toBe(7);
    expect(
      sample(text, "portico_request_duration_seconds_count", { server: "site.test", upstream: "app" }),
    ).toBe(N);
    expect(sample(text, "portico_request_duration_seconds_bucket", { upstream: "app", le: "+Inf" })).toBe(N);
    expect(sample(text, "portico_upstream_header_seconds_count", { upstream: "app" })).toBe(N);
    // A peer that refuses connections: its requests go to the other peer, and are counted.
    for (let i = 0; i < 4; i++) {
      expect((await request(`${p.url()}/two/x`, { headers: { host: "site.test" } })).status).toBe(200);
    }
    const retried = (await request(`${admin}/metrics`)).body.toString();
    expect(
      sample(retried, "portico_retries_total", { upstream: "two", outcome: "sent" }),
    ).toBeGreaterThanOrEqual(1);
    // Gauges read at the scrape: no request is in flight now, and the sum covers both workers.
    expect(text).toMatch(/^portico_requests_in_flight 0$/m);
    expect(text).toMatch(/^portico_client_connections \d+$/m);
    expect(text).toMatch(/^portico_tunnels_open 0$/m);
    // N requests on N connections: at least 30 bytes each way per request (closed ones included).
    expect(Number(/^portico_client_received_bytes_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(30 * N);
    expect(Number(/^portico_client_sent_bytes_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(30 * N);
    // One connection per peer and worker at least, each timed.
    expect(
      sample(text, "portico_upstream_connect_seconds_count", { upstream: "app" }),
    ).toBeGreaterThanOrEqual(1);
    // Bounded labels: no path or client address appears.
    expect(text).not.toContain('"/n"');
    expect(text).not.toContain("127.0.0.1");
    expect((await request(`${admin}/healthz`)).body.toString()).toBe("ok\n");
  });

  it("a scrape during a reload answers, and counts the reload", async () => {
    const { p, admin } = await start("admin: { listen: 127.0.0.1:0 }");
    writeFileSync(p.configFile, `${config("admin: { listen: 127.0.0.1:0 }")}\n# changed\n`);
    p.proc.kill("SIGHUP");
    const during = await request(`${admin}/metrics`).catch((err: Error) => ({
      status: 0,
      body: Buffer.from(err.message),
    }));
    // The admin settings did not change, so the listener stays where it was.
    expect(during.status).toBe(200);
    await p.waitForLine((l) => l.msg === "reload complete");
    const after = (await request(`${admin}/metrics`)).body.toString();
    expect(after).toMatch(/^portico_reloads_total\{result="ok"\} 1$/m);
  });

  it("a token is required when set: missing or wrong gets 401", async () => {
    const token = "s3cret-token-0123456789";
    const { admin } = await start(`admin: { listen: 127.0.0.1:0, token: ${token} }`);
    const missing = await request(`${admin}/metrics`);
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(
      (await request(`${admin}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789" } }))
        .status,
    ).toBe(401);
    const ok = await request(`${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toContain("portico_requests_total");
  });

  it("counts TLS handshakes, and failed ones by reason", async () => {
    const state = mkdtempSync(join(tmpdir(), "portico-tlsm-"));
    try {
      const p = await startPortico(`
workers: 1
state_dir: ${state}
admin: { listen: 127.0.0.1:0 }
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: ["127.0.0.1:0 tls"]
    server_names: [dev.test]
    tls: auto
    routes: [{ path: /, upstream: app }]
`);
      running.push(p);
      const ready = await p.waitForLine((l) => l.msg === "portico ready");
      const admin = `http://127.0.0.1:${(ready.admin as { port: number }).port}`;
      const port = p.bound[0]?.port ?? 0;
      for (let i = 0; i < 3; i++) {
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          servername: "dev.test",
          rejectUnauthorized: false,
        });
        // A whole request and its answer: the server's side of the handshake is over then.
        socket.write("GET / HTTP/1.1\r\nHost: dev.test\r\nConnection: close\r\n\r\n");
        socket.resume();
        await once(socket, "end");
        socket.destroy();
      }
      // Plain HTTP to the TLS port: a failed handshake.
      const plain = net.connect(port, "127.0.0.1");
      plain.on("error", () => {});
      plain.write("GET / HTTP/1.1\r\nHost: dev.test\r\n\r\n");
      await once(plain, "close");
      let text = "";
      for (let i = 0; i < 50 && !/portico_tls_handshakes_total\{result="error"\} 1/.test(text); i++) {
        text = (await request(`${admin}/metrics`)).body.toString();
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(text).toMatch(/^portico_tls_handshakes_total\{result="ok"\} 3$/m);
      expect(text).toMatch(/^portico_tls_handshakes_total\{result="error"\} 1$/m);
      expect(text).toMatch(/^portico_tls_handshake_errors_total\{reason="http_request"\} 1$/m);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it("a non-loopback admin address without a token fails portico check", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portico-admin-"));
    try {
      const file = join(dir, "portico.yaml");
      writeFileSync(file, config("admin: { listen: 0.0.0.0:9901 }"));
      const result = await runCli(["check", "-c", file]);
      expect(result.code).toBe(1);
      expect(result.stderr + result.stdout).toMatch(
        /portico\.yaml:3:18: admin\.listen '0\.0\.0\.0:9901' is not a loopback address, so the admin listener needs a token/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
