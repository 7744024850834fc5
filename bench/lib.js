// Shared helpers for the benchmarks: start the backend, Portico and other servers as child
// processes on loopback (ports picked by the OS), optionally pinned to CPUs with taskset,
// stop every one of them by PID (also on error and Ctrl-C: `stopAll`), run autocannon
// in-process for a bounded time (bench:reload), and print Markdown tables.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { processTree } from "./cpu.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** The path of `name` on PATH, or undefined. */
export function which(name) {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** True when processes can be pinned: taskset is installed and there are at least 2 CPUs. */
export const canPin = os.cpus().length >= 2 && which("taskset") !== undefined;

/** Every child process started through `spawnTracked` that has not exited yet. */
const running = new Set();
/** Temp dirs made by `tempDir`, removed by `stopAll`. */
const dirs = new Set();

/**
 * Spawn `cmd args`, on CPUs `cpus` ("0", "1", "0,1") through taskset when pinning is
 * possible (taskset execs the command: the PID is the command's). Tracked for `stopAll`.
 */
export function spawnTracked(cmd, args, { cpus, ...options } = {}) {
  const [file, argv] = cpus !== undefined && canPin ? ["taskset", ["-c", cpus, cmd, ...args]] : [cmd, args];
  const proc = spawn(file, argv, options);
  running.add(proc);
  proc.once("exit", () => running.delete(proc));
  proc.once("error", () => running.delete(proc));
  return proc;
}

/** A temp dir, removed by `stopAll` (or by `removeDir`). */
export function tempDir(prefix = "portico-bench-") {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** Remove a dir made by `tempDir`. */
export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/**
 * Stop `proc` and its descendants (found before signalling it): SIGTERM, then SIGKILL to
 * whichever is still there after `graceMs`.
 */
export async function stop(proc, graceMs = 5000) {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const tree = processTree(proc.pid);
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  try {
    proc.kill("SIGTERM");
  } catch {}
  const timer = new Promise((resolve) => setTimeout(resolve, graceMs, "timeout"));
  if ((await Promise.race([exited, timer])) === "timeout") proc.kill("SIGKILL");
  // Children that outlived their parent (a worker killed with its master, say).
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of tree) {
    if (pid === proc.pid) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

/** Stop every tracked process and remove every temp dir. */
export async function stopAll() {
  await Promise.all([...running].map((proc) => stop(proc, 3000)));
  for (const dir of dirs) removeDir(dir);
}

/** A free TCP port on 127.0.0.1 (bound with port 0, read back, closed). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolve once 127.0.0.1:`port` accepts connections; reject if `proc` exits or after `ms`. */
export async function waitForPort(port, proc, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${proc.spawnfile} exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.end();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on port ${port} after ${ms} ms`);
}

/** Start a node script that prints its port on its first stdout line; resolves with { port, proc, stop }. */
export function startNodeServer(script, args = [], { cpus } = {}) {
  const proc = spawnTracked(process.execPath, [script, ...args], {
    cpus,
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    proc.once("error", reject);
    proc.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
    proc.stdout.once("data", (d) => {
      resolve({ port: Number(String(d).trim()), proc, stop: () => stop(proc) });
    });
  });
}

/** Start bench/backend.js (on CPUs `cpus` if given); resolves with { port, proc, stop }. */
export function startBackend({ cpus } = {}) {
  return startNodeServer(fileURLToPath(new URL("./backend.js", import.meta.url)), [], { cpus });
}

/**
 * Start `portico start` on a YAML text (in `dir`, or a temp dir of its own that `stop`
 * removes; on CPUs `cpus` if given: workers inherit the affinity); resolves with
 * { port, pids, proc, file, lines, stop } once ready.
 */
export function startPortico(yaml, { cpus, dir: inDir, name = "portico.yaml" } = {}) {
  const dir = inDir ?? tempDir();
  const file = join(dir, name);
  writeFileSync(file, yaml);
  // BENCH_NODE_ARGS: extra node flags for Portico's master and workers (e.g. "--cpu-prof --cpu-prof-dir=DIR").
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(/\s+/).filter((a) => a !== "");
  const proc = spawnTracked(process.execPath, [...nodeArgs, CLI, "start", "-c", file], {
    cpus,
    stdio: ["ignore", "ignore", "pipe"],
  });
  /** Every JSON line of the master's and workers' error log. */
  const lines = [];
  let rest = "";
  proc.stderr.on("data", (d) => {
    const parts = (rest + d).split("\n");
    rest = parts.pop() ?? "";
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part));
      } catch {
        process.stderr.write(`${part}\n`);
      }
    }
  });
  return new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`portico exited with ${code}`));
    proc.once("exit", onExit);
    const onData = () => {
      const ready = lines.find((l) => l.msg === "portico ready");
      if (!ready) return;
      proc.stderr.off("data", onData);
      proc.off("exit", onExit);
      resolve({
        port: ready.listening[0].port,
        pids: ready.workers,
        proc,
        file,
        lines,
        stop: async () => {
          await stop(proc);
          if (!inDir) removeDir(dir);
        },
      });
    };
    proc.stderr.on("data", onData);
  });
}

/** Run autocannon in this process against `url` for `seconds`; resolves with its result. */
export function load(url, { seconds, connections }) {
  return new Promise((resolve, reject) => {
    autocannon({ url, duration: seconds, connections, pipelining: 1 }, (err, result) =>
      err ? reject(err) : resolve(result),
    );
  });
}

/** One line describing this machine, for RESULTS.md. */
export function machine() {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? "unknown CPU"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

/** Rows as a Markdown table, columns padded to their widest cell (as Biome formats Markdown, so a recorded run passes lint). */
export function table(headers, rows) {
  const all = [headers, ...rows].map((r) => r.map(String));
  const widths = headers.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const [head, ...body] = all;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
