/**
 * deploy/container/admin.mjs against a real Portico: the image's HEALTHCHECK (`healthz`,
 * and `readyz`) and the Kubernetes config-reloader sidecar (`watch-reload`), both reading
 * the admin address and token from the config file. The reloader is driven the way the
 * kubelet updates a ConfigMap volume: the config path is a symlink through `..data`, which
 * is swapped atomically to a new folder.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

const SCRIPT = fileURLToPath(new URL("../../deploy/container/admin.mjs", import.meta.url));
const TOKEN = "admin-script-test-token";

/** Run admin.mjs to its end. */
function runScript(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A loopback port nothing listens on now (the admin listener needs a port written in the file). */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const configWith = (adminPort: number, body: string, token = TOKEN) => `
workers: 1
admin: { listen: "127.0.0.1:${adminPort}", token: "${token}" }
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, return: { status: 200, body: "${body}" } }]
`;

let portico: Portico | undefined;
let reloader: ChildProcess | undefined;
const scratch: string[] = [];

afterEach(async () => {
  reloader?.kill("SIGKILL");
  reloader = undefined;
  await portico?.stop();
  portico = undefined;
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "portico-admin-script-"));
  scratch.push(dir);
  return dir;
}

describe("deploy/container/admin.mjs healthz / readyz (the image's HEALTHCHECK)", () => {
  it("exits 0 on a serving Portico, with the token from its config", async () => {
    portico = await startPortico(configWith(await freePort(), "one"));
    expect(await runScript(["healthz", "-c", portico.configFile])).toEqual({
      code: 0,
      stdout: "ok\n",
      stderr: "",
    });
    expect(await runScript(["readyz", "-c", portico.configFile])).toEqual({
      code: 0,
      stdout: "ready\n",
      stderr: "",
    });
  });

  it("exits 1 (never Docker's reserved 2) on a wrong token, no listener, no admin section or bad usage", async () => {
    const port = await freePort();
    portico = await startPortico(configWith(port, "one"));
    const dir = scratchDir();
    const wrong = join(dir, "wrong.yaml");
    writeFileSync(wrong, configWith(port, "one", "another-token-entirely"));
    const refused = await runScript(["healthz", "-c", wrong]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/\/healthz: 401 /)]);

    const wildcard = join(dir, "wildcard.yaml");
    writeFileSync(wildcard, configWith(await freePort(), "x").replace("127.0.0.1:", "0.0.0.0:"));
    const down = await runScript(["healthz", "-c", wildcard]);
    // 0.0.0.0 is asked on loopback.
    expect([down.code, down.stderr]).toEqual([
      1,
      expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/healthz: /),
    ]);

    const bare = join(dir, "bare.yaml");
    writeFileSync(bare, "servers: []\n");
    const none = await runScript(["healthz", "-c", bare]);
    expect([none.code, none.stderr]).toEqual([1, expect.stringMatching(/no admin listener/)]);

    expect((await runScript(["frobnicate"])).code).toBe(1);
  });
});

describe("deploy/container/admin.mjs watch-reload (the Kubernetes config-reloader)", () => {
  it("reloads when the ConfigMap volume swaps, and leaves a refused config serving the old one", async () => {
    const port = await freePort();
    portico = await startPortico(configWith(port, "one"));
    const first = readFileSync(portico.configFile, "utf8");
    // The kubelet's layout: portico.yaml -> ..data/portico.yaml, ..data -> ..v1.
    const dir = portico.dir;
    const swapTo = (version: string, text: string) => {
      mkdirSync(join(dir, version));
      writeFileSync(join(dir, version, "portico.yaml"), text);
      symlinkSync(version, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    };
    swapTo("..v1", first);
    symlinkSync("..data/portico.yaml", join(dir, "link.tmp"));
    renameSync(join(dir, "link.tmp"), portico.configFile);

    reloader = spawn(
      process.execPath,
      [SCRIPT, "watch-reload", "-c", portico.configFile, "--interval", "100ms"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const events: Array<Record<string, unknown>> = [];
    let buffered = "";
    reloader.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) events.push(JSON.parse(line) as Record<string, unknown>);
    });
    const waitFor = async (msg: string, count = 1) => {
      const deadline = Date.now() + 15_000;
      while (events.filter((e) => e.msg === msg).length < count) {
        if (Date.now() > deadline)
          throw new Error(`no '${msg}' from the reloader: ${JSON.stringify(events)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return events.filter((e) => e.msg === msg).at(-1) as Record<string, unknown>;
    };

    expect(await waitFor("watching the config file")).toMatchObject({ admin: `http://127.0.0.1:${port}` });
    // The file the master runs: nothing to do, whatever the number of ticks.
    await new Promise((r) => setTimeout(r, 400));
    expect(events.map((e) => e.msg)).toEqual(["watching the config file"]);

    swapTo("..v2", configWith(port, "two"));
    expect(await waitFor("reloaded")).toMatchObject({ generation: 2 });
    expect((await request(portico.url())).body.toString()).toBe("two");

    swapTo("..v3", `${configWith(port, "three")}upstreems: {}\n`);
    const refused = await waitFor("reload refused; the running config keeps serving");
    expect(JSON.stringify(refused.errors)).toMatch(/upstreems/);
    expect((await request(portico.url())).body.toString()).toBe("two");
    // Refused once, not sent again every tick.
    await new Promise((r) => setTimeout(r, 400));
    expect(events.filter((e) => String(e.msg).startsWith("reload")).length).toBe(2);

    swapTo("..v4", configWith(port, "four"));
    expect(await waitFor("reloaded", 2)).toMatchObject({ generation: 3 });
    expect((await request(portico.url())).body.toString()).toBe("four");
  });
});
