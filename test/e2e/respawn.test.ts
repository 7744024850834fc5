/**
 * End-to-end: workers that die are replaced in their own slot; a slot that crashes at every
 * start stops being respawned after 5 tries, loudly, while the other workers keep serving.
 */
import { afterEach, expect, it } from "vitest";
import { startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { startLoad } from "../helpers/load.js";
import { type LogLine, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup(workers: number) {
  const app = await startBackend("app");
  cleanup.push(() => app.close());
  const p = await startPortico(`
workers: ${workers}
upstreams: { app: { servers: [{ address: ${app.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: app }] }]
`);
  cleanup.push(() => p.stop());
  return p;
}

it("replaces a worker killed with SIGKILL under load", async () => {
  const p = await setup(2);
  const load = startLoad(p.bound[0].port, "/", { keepAlive: 2, fresh: 2 });
  await new Promise((r) => setTimeout(r, 300));
  const [victim, survivor] = p.workers;
  process.kill(victim, "SIGKILL");
  const died = await p.waitForLine((l) => l.msg === "worker died unexpectedly; replacing it");
  expect(died).toMatchObject({ workerPid: victim, signal: "SIGKILL" });
  const started = await p.waitForLine(
    (l) => l.msg === "worker started" && l.slot === died.slot && l.workerPid !== victim,
  );
  await p.waitForLine((l) => l.msg === "worker listening" && l.workerPid === started.workerPid);
  // The replacement serves. Workers accept for themselves (SCHED_NONE), and the kernel may
  // hand every new connection to the survivor: stop it for a moment, so only the replacement
  // can accept, then let it go on.
  process.kill(survivor as number, "SIGSTOP");
  try {
    const res = await request(`${p.url()}/`, { headers: { "x-request-id": "after-kill" } });
    expect(res.status).toBe(200);
    const served = await p.waitForLine((l) => l.requestId === "after-kill" && "status" in l);
    expect(served.pid).toBe(started.workerPid);
  } finally {
    process.kill(survivor as number, "SIGCONT");
  }
  const stats = await load.stop();
  // Requests in flight on the killed worker die with it (and node:cluster loses a connection
  // it was handing to that worker at that instant); the load goes on through the others.
  expect(stats.ok).toBeGreaterThan(50);
  expect(stats.failed).toBeLessThan(20);
});

it("stops respawning a slot that crashes at every start, while the others serve", async () => {
  const p = await setup(2);
  const slot = 1;
  const killed: number[] = [];
  // Kill slot 1's worker each time it comes up, as a crash at every start would.
  const killEachStart = (l: LogLine) => {
    if (l.msg === "worker started" && l.slot === slot && l.generation === 1) {
      killed.push(l.workerPid as number);
      process.kill(l.workerPid as number, "SIGKILL");
    }
    return false;
  };
  // It also sees the first worker's line, so the slot's current worker is the first one killed.
  const watcher = p.waitForLine(killEachStart, 60_000).catch(() => {});
  const gaveUp = await p.waitForLine((l) => /no longer respawning/.test(l.msg ?? ""), 30_000);
  expect(gaveUp).toMatchObject({ slot, crashes: 6, level: 60 });
  // 1 original worker + 5 respawns, each killed.
  const respawns = p.lines.filter((l) => l.msg === "worker started" && l.slot === slot).length - 1;
  expect(respawns).toBe(5);
  expect(killed.length).toBe(6);
  // The other slot keeps serving.
  for (let i = 0; i < 5; i++) expect((await request(`${p.url()}/`)).status).toBe(200);
  await new Promise((r) => setTimeout(r, 500));
  expect(p.lines.filter((l) => l.msg === "worker started" && l.slot === slot).length - 1).toBe(5);
  void watcher;
});
