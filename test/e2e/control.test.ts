/**
 * End-to-end: operating a running master. `portico reload` / `portico stop` find it through
 * its pid file; SIGQUIT stops gracefully; SIGUSR2 reopens log files after rotation.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(() => p.stop());
  return p;
}

const config = (body: string, extra = "") => `
workers: 2
${extra}
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, return: { status: 200, body: "${body}" } }]
`;

it("writes its pid file once ready; portico reload and portico stop use it", async () => {
  const p = await portico(config("one"));
  const pidFile = join(p.dir, "portico.pid");
  expect(readFileSync(pidFile, "utf8").trim()).toBe(String(p.pid));

  writeFileSync(p.configFile, config("two"));
  const reload = await runCli(["reload", "-c", p.configFile]);
  expect(reload.code).toBe(0);
  expect(reload.stdout).toContain(`reload signal sent to the master (pid ${p.pid})`);
  await p.waitForLine((l) => l.msg === "reload complete");
  expect((await request(`${p.url()}/`)).body.toString()).toBe("two");

  const stop = await runCli(["stop", "-c", p.configFile]);
  expect(stop.stdout).toBe(`portico stopped (pid ${p.pid})\n`);
  expect(stop.code).toBe(0);
  expect(await p.exited).toBe(0);
  expect(existsSync(pidFile)).toBe(false);
});

it("portico reload refuses a bad file without signalling the master", async () => {
  const p = await portico(config("one"));
  writeFileSync(p.configFile, config("two").replace("routes:", "routs:"));
  const reload = await runCli(["reload", "-c", p.configFile]);
  expect(reload.code).toBe(1);
  expect(reload.stderr).toContain(`${p.configFile}:6:5: unknown key 'routs'; did you mean 'routes'?`);
  expect(reload.stderr).toContain("no reload sent, the running configuration keeps serving");
  expect(p.lines.some((l) => l.msg === "reload: configuration valid; starting a new generation")).toBe(false);
  expect((await request(`${p.url()}/`)).body.toString()).toBe("one");
});

it("portico reload and stop say clearly when no master runs", async () => {
  const p = await startPortico(config("x"), { waitReady: true });
  const pidFile = join(p.dir, "portico.pid");
  const configFile = p.configFile;
  // A copy of the config in another folder names a pid file that does not exist.
  const elsewhere = join(mkdtempSync(join(tmpdir(), "portico-none-")), "portico.yaml");
  copyFileSync(configFile, elsewhere);
  expect(await p.stop()).toBe(0);
  expect(existsSync(pidFile)).toBe(false);

  const none = await runCli(["reload", "-c", elsewhere]);
  expect(none.code).toBe(1);
  expect(none.stderr).toBe(
    `portico: no running master: pid file ${join(elsewhere, "..", "portico.pid")} does not exist (is Portico started with this config?)\n`,
  );
  writeFileSync(join(elsewhere, "..", "portico.pid"), "999999999\n");
  const stale = await runCli(["stop", "-c", elsewhere]);
  expect(stale.code).toBe(1);
  expect(stale.stderr).toContain("is not running (stale pid file)");
});

it("SIGQUIT stops gracefully with exit 0", async () => {
  const p = await portico(config("q"));
  p.proc.kill("SIGQUIT");
  expect(await p.exited).toBe(0);
  expect(p.lines.some((l) => l.msg === "graceful stop: draining workers" && l.signal === "SIGQUIT")).toBe(
    true,
  );
});

it("SIGUSR2 reopens the access log after rotation, in every worker", async () => {
  const p = await portico(config("logged", "log: { access: access.log }"));
  const log = join(p.dir, "access.log");
  await request(`${p.url()}/`, { headers: { "x-request-id": "before-rotation" } });
  // The line is written asynchronously by the worker.
  for (
    let i = 0;
    i < 200 && !(existsSync(log) && readFileSync(log, "utf8").includes("before-rotation"));
    i++
  ) {
    await new Promise((r) => setTimeout(r, 25));
  }
  renameSync(log, `${log}.1`);
  const seen = p.lines.length;
  p.proc.kill("SIGUSR2");
  const reopened = () =>
    p.lines.filter((l, i) => i >= seen && l.msg === "log files reopened").map((l) => l.pid);
  for (let i = 0; i < 200 && reopened().length < p.workers.length; i++)
    await new Promise((r) => setTimeout(r, 25));
  expect(new Set(reopened())).toEqual(new Set(p.workers));
  for (let i = 0; i < 4; i++) {
    await request(`${p.url()}/`, { headers: { "x-request-id": `after-rotation-${i}` } });
  }
  for (
    let i = 0;
    i < 200 && !(existsSync(log) && readFileSync(log, "utf8").includes("after-rotation-3"));
    i++
  ) {
    await new Promise((r) => setTimeout(r, 25));
  }
  expect(readFileSync(`${log}.1`, "utf8")).toContain("before-rotation");
  expect(readFileSync(`${log}.1`, "utf8")).not.toContain("after-rotation");
  expect(readFileSync(log, "utf8")).toContain("after-rotation-3");
});
