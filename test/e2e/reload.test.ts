/**
 * End-to-end: hitless reloads. Under continuous load (raw keep-alive clients and
 * new-connection clients), SIGHUP starts a new generation and drains the old one without a
 * failed request, a reset, or a keep-alive connection closed without `Connection: close`.
 * A bad file or a taken port leaves the running generation serving.
 */
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { startLoad } from "../helpers/load.js";
import { type LogLine, type Portico, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(name: string, handler?: http.RequestListener): Promise<Backend> {
  const b = await startBackend(name, handler);
  cleanup.push(() => b.close());
  return b;
}

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(() => p.stop());
  return p;
}

/** A config whose `/version` route answers `v<version>` and whose `/` goes to `app`. */
function config(app: Backend, version: number, extra = ""): string {
  return `
workers: 2
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: 127.0.0.1:0
    routes:
      - exact: /version
        return: { status: 200, body: "v${version}" }
      - path: /
        upstream: app
${extra}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Send SIGHUP and wait for the outcome line of that reload (complete or failed). */
async function reload(p: Portico, yaml: string): Promise<LogLine> {
  const seen = p.lines.length;
  writeFileSync(p.configFile, yaml);
  p.proc.kill("SIGHUP");
  return p.waitForLine(
    (l) => p.lines.indexOf(l) >= seen && (l.msg === "reload complete" || /^reload failed/.test(l.msg ?? "")),
    20_000,
  );
}

describe("reload", () => {
  it("10 reloads under load: 0 failed requests, 0 resets, every close announced, each change visible", async () => {
    const app = await backend("app");
    const p = await portico(config(app, 0));
    const port = p.bound[0].port;
    const versionLoad = startLoad(port, "/version", { keepAlive: 4, fresh: 2 });
    const proxyLoad = startLoad(port, "/", { keepAlive: 2, fresh: 1 });
    let oldPids = p.workers;
    try {
      for (let i = 1; i <= 10; i++) {
        const done = await reload(p, config(app, i));
        expect(done.msg).toBe("reload complete");
        expect(done.generation).toBe(i + 1);
        await p.waitForLine((l) => l.msg === "generation drained" && l.generation === i, 20_000);
        // The old workers are gone...
        expect(oldPids.filter(isAlive)).toEqual([]);
        oldPids = done.workers as number[];
        // ...and the change is what every new request sees.
        expect((await request(`http://127.0.0.1:${port}/version`)).body.toString()).toBe(`v${i}`);
      }
    } finally {
      const versions = await versionLoad.stop();
      const proxied = await proxyLoad.stop();
      expect(versions.errors).toEqual([]);
      expect(proxied.errors).toEqual([]);
      for (const stats of [versions, proxied]) {
        expect(stats.failed).toBe(0);
        expect(stats.unannouncedCloses).toBe(0);
        expect(stats.non2xx).toBe(0);
        expect(stats.ok).toBeGreaterThan(100);
      }
    }
    expect(versionLoad.lastBody()).toBe("v10");
  });

  it("a 5 s request started before a reload completes with 200 on the old generation", async () => {
    const slow = await backend("slow", (req, res) => {
      req.resume();
      setTimeout(() => res.end("slow done"), 5000);
    });
    const p = await portico(config(slow, 0));
    const oldPids = p.workers;
    const inFlight = request(`${p.url()}/slow`, { headers: { "x-request-id": "slow-across-reload" } });
    while (slow.requests === 0) await new Promise((r) => setTimeout(r, 20));
    const done = await reload(p, config(slow, 1));
    expect(done.msg).toBe("reload complete");
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("slow done");
    const line = await p.waitForLine((l) => l.requestId === "slow-across-reload" && "status" in l);
    expect(oldPids).toContain(line.pid);
    await p.waitForLine((l) => l.msg === "generation drained" && l.generation === 1);
    expect(oldPids.filter(isAlive)).toEqual([]);
  });

  it("a broken YAML file is refused with FILE:LINE:COL, and the old config keeps serving", async () => {
    const app = await backend("app");
    const p = await portico(config(app, 0));
    const load = startLoad(p.bound[0].port, "/version", { keepAlive: 2, fresh: 1 });
    const failed = await reload(
      p,
      config(app, 1).replace("routes:", "routes: [").concat("\n  unknown_key: 1\n"),
    );
    expect(failed.msg).toMatch(/^reload failed: .* is invalid/);
    expect(p.lines.some((l) => (l.msg ?? "").startsWith(`${p.configFile}:`))).toBe(true);
    expect((await request(`${p.url()}/version`)).body.toString()).toBe("v0");
    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.unannouncedCloses).toBe(0);
    expect(stats.ok).toBeGreaterThan(0);
    expect(load.lastBody()).toBe("v0");
    expect(p.workers.every(isAlive)).toBe(true);
  });

  it("a reload onto a taken port is rolled back, and the old config keeps serving", async () => {
    const app = await backend("app");
    const squatter = http.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => squatter.close(r)));
    const taken = (squatter.address() as AddressInfo).port;
    const p = await portico(config(app, 0));
    const load = startLoad(p.bound[0].port, "/version", { keepAlive: 2, fresh: 1 });
    const extra = `  - listen: 127.0.0.1:${taken}\n    routes: [{ path: /, upstream: app }]\n`;
    const failed = await reload(p, config(app, 1, extra));
    expect(failed.msg).toContain(`cannot listen on 127.0.0.1:${taken}: address already in use`);
    expect(failed.msg).toContain("generation 1 keeps serving");
    await p.waitForLine((l) => l.msg === "generation drained" && l.generation === 2);
    expect((await request(`${p.url()}/version`)).body.toString()).toBe("v0");
    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.unannouncedCloses).toBe(0);
    expect(load.lastBody()).toBe("v0");
    expect(p.workers.every(isAlive)).toBe(true);
  });

  it("opens a port added by a reload and closes one that was removed", async () => {
    const app = await backend("app");
    const p = await portico(config(app, 0));
    const port = p.bound[0].port;
    // A second server on 127.0.0.2 (another loopback address), port picked by the OS.
    const extra =
      "  - listen: 127.0.0.2:0\n    routes: [{ path: /, return: { status: 200, body: added } }]\n";
    const added = await reload(p, config(app, 1, extra));
    const second = (added.listening as Array<{ address: string; port: number }>).find(
      (b) => b.address === "127.0.0.2",
    );
    expect(second).toBeDefined();
    const url = `http://127.0.0.2:${second?.port}/`;
    expect((await request(url)).body.toString()).toBe("added");
    const removed = await reload(p, config(app, 2));
    expect(removed.msg).toBe("reload complete");
    await p.waitForLine((l) => l.msg === "generation drained" && l.generation === 2);
    await expect(request(url)).rejects.toThrow(/ECONNREFUSED/);
    expect((await request(`http://127.0.0.1:${port}/version`)).body.toString()).toBe("v2");
  });
});
