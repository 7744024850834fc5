/**
 * The lifecycle log's formats: short human-readable lines on a terminal (a real pseudo-
 * terminal made by util-linux `script`), JSON lines on a pipe, and `log.format` overriding
 * both ways.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { CLI } from "../helpers/portico.js";
import { findTool } from "../helpers/real-dns.js";

let dir: string;
let app: Backend;
const script = findTool("script");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portico-logfmt-"));
  app = await startBackend("app");
});

afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Start Portico on `format` (undefined: the default), on a terminal or a pipe; resolves with
 * everything it printed once its ready line is out, after stopping it by its pid file.
 */
async function run(format: string | undefined, terminal: boolean): Promise<string> {
  const pidFile = join(dir, `${format}-${terminal}.pid`);
  const file = join(dir, `${format}-${terminal}.yaml`);
  writeFileSync(
    file,
    `workers: 1
pid_file: ${pidFile}
log: { access: off${format ? `, format: ${format}` : ""} }
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`,
  );
  const command = `${process.execPath} ${CLI} start -c ${file}`;
  const child: ChildProcess = terminal
    ? spawn(script as string, ["-qfec", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] })
    : spawn(process.execPath, [CLI, "start", "-c", file], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout?.on("data", (c: Buffer) => {
    text += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!text.includes("portico ready") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const master = Number(readFileSync(pidFile, "utf8").trim());
  process.kill(master, "SIGTERM");
  await exited;
  return text;
}

describe("log.format", () => {
  it.skipIf(!script)("auto on a terminal: short human-readable lines", async () => {
    const text = await run(undefined, true);
    expect(text).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*: .*master\[\d+\].*: .*portico ready/);
    expect(text).not.toContain('{"level"');
  });

  it.skipIf(!script)("json on a terminal: JSON lines", async () => {
    const text = await run("json", true);
    const ready = text.split(/\r?\n/).find((l) => l.includes("portico ready"));
    expect(JSON.parse(ready ?? "")).toMatchObject({ level: 30, role: "master", msg: "portico ready" });
  });

  it("auto on a pipe: JSON lines; pretty on a pipe: human-readable, without colours", async () => {
    const json = await run(undefined, false);
    const ready = json.split("\n").find((l) => l.includes("portico ready"));
    expect(JSON.parse(ready ?? "")).toMatchObject({ role: "master", msg: "portico ready" });
    const pretty = await run("pretty", false);
    expect(pretty).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: master\[\d+\] gen 1: portico ready \{/m);
    expect(pretty).toMatch(/INFO: worker\[\d+\] gen 1 slot 0: /);
    expect(pretty).not.toContain("\u001b[");
  });

  if (!script) console.warn("log-format: SKIPPING the terminal tests: util-linux `script` is not installed");
});
