/**
 * End-to-end: the master's lifecycle. A killed worker is replaced; SIGTERM lets an
 * in-flight request finish before the master exits 0; a taken port is one clear line, exit 1.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

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
  cleanup.push(() => p.stop("SIGKILL"));
  return p;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("lifecycle", () => {
  it("replaces a worker killed with SIGKILL and keeps serving", async () => {
    const app = await backend("app");
    const p = await portico(`
workers: 2
upstreams: { app: { servers: [{ address: ${app.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: app }] }]
`);
    const [victim, survivor] = p.workers;
    process.kill(victim, "SIGKILL");
    const died = await p.waitForLine((l) => l.msg === "worker died unexpectedly; replacing it");
    expect(died.workerPid).toBe(victim);
    const started = await p.waitForLine(
      (l) => l.msg === "worker started" && l.workerPid !== victim && l.slot === died.slot,
    );
    await p.waitForLine((l) => l.msg === "worker listening" && l.workerPid === started.workerPid);
    expect(isAlive(survivor)).toBe(true);
    for (let i = 0; i < 6; i++) expect((await request(`${p.url()}/`)).status).toBe(200);
  });

  it("stops on SIGTERM when the readers of its stdout and stderr are gone", async () => {
    // sonic-boom's synchronous flush at exit retried EPIPE every 100 ms forever: the master
    // hung there, deaf to signals (3 of 3 tries before the fix).
    const app = await backend("app");
    const p = await portico(`
workers: 2
upstreams: { app: { servers: [{ address: ${app.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: app }] }]
`);
    const workers = [...p.workers];
    expect(workers).toHaveLength(2);
    p.proc.stdout?.destroy();
    p.proc.stderr?.destroy();
    process.kill(p.pid, "SIGTERM");
    const outcome = await Promise.race([
      p.exited.then((code) => `exited ${code}`),
      new Promise<string>((r) => setTimeout(() => r("still running 15 s after SIGTERM"), 15_000)),
    ]);
    expect(outcome).toBe("exited 0");
    for (const pid of workers) expect(isAlive(pid), `worker ${pid}`).toBe(false);
  });

  it("on SIGTERM lets an in-flight 2 s request finish with 200, then exits 0", async () => {
    const slow = await backend("slow", (req, res) => {
      req.resume();
      setTimeout(() => res.end("finished"), 2000);
    });
    const p = await portico(`
workers: 2
upstreams: { slow: { servers: [{ address: ${slow.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: slow }] }]
`);
    const inFlight = request(`${p.url()}/slow`);
    // Signal only once the backend has the request: it is then in flight in a worker.
    while (slow.requests === 0) await new Promise((r) => setTimeout(r, 20));
    p.proc.kill("SIGTERM");
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("finished");
    expect(await p.exited).toBe(0);
    // New connections are refused once stopped.
    await expect(request(`${p.url()}/`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("a second stop signal stops at once", async () => {
    const slow = await backend("slow", (req, res) => {
      req.resume();
      setTimeout(() => res.end("finished"), 30_000).unref();
    });
    const p = await portico(`
workers: 1
upstreams: { slow: { servers: [{ address: ${slow.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: slow }] }]
`);
    const inFlight = request(`${p.url()}/`).catch((err: Error) => err);
    while (slow.requests === 0) await new Promise((r) => setTimeout(r, 20));
    p.proc.kill("SIGTERM");
    await p.waitForLine((l) => l.msg === "graceful stop: draining workers");
    p.proc.kill("SIGINT");
    expect(await p.exited).toBe(1);
    expect(await inFlight).toBeInstanceOf(Error);
  });

  it("a port already in use gives one clear line and exit 1", async () => {
    const squatter = http.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => squatter.close(r)));
    const port = (squatter.address() as AddressInfo).port;
    const p = await startPortico(
      `
workers: 2
servers: [{ listen: "127.0.0.1:${port}", routes: [{ path: /, return: { status: 200 } }] }]
`,
      { waitReady: false },
    );
    cleanup.push(() => p.stop("SIGKILL"));
    expect(await p.exited).toBe(1);
    const plain = p
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("portico:"));
    expect(plain).toEqual([
      `portico: cannot listen on 127.0.0.1:${port}: address already in use: another process listens there; stop it or change 'listen' (EADDRINUSE)`,
    ]);
  });

  it("refuses to start on an invalid config, printing FILE:LINE:COL", async () => {
    const p = await startPortico("workers: 2\nservers:\n  - listen: 127.0.0.1:0\n    routs: []\n", {
      waitReady: false,
    });
    cleanup.push(() => p.stop("SIGKILL"));
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`${p.configFile}:4:5: unknown key 'routs'`);
  });
});

describe("portico check", () => {
  it("prints 'configuration OK' for the shipped config", async () => {
    const res = await runCli(["check", "-c", "conf/portico.yaml"]);
    expect(res.stdout).toBe("configuration OK\n");
    expect(res.code).toBe(0);
  });

  it("prints every error as FILE:LINE:COL and exits 1", async () => {
    const res = await runCli(["check", "-c", "test/fixtures/bad.yaml"]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("");
    expect(res.stderr).toMatch(/^test\/fixtures\/bad\.yaml:\d+:\d+: /m);
    expect(res.stderr).toContain("configuration invalid");
  });

  it("explains a missing file without a stack trace", async () => {
    const res = await runCli(["check", "-c", "no/such/file.yaml"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("no/such/file.yaml: cannot read config file");
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});
