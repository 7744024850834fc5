// Shared helpers for the benchmarks: start the backend and Portico as child processes on
// loopback (ports picked by the OS), run autocannon for a bounded time, and print a table.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** Start bench/backend.js; resolves with { port, stop }. */
export function startBackend() {
  const proc = spawn(process.execPath, [fileURLToPath(new URL("./backend.js", import.meta.url))], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    proc.once("error", reject);
    proc.stdout.once("data", (d) => {
      resolve({ port: Number(String(d).trim()), stop: () => stop(proc) });
    });
  });
}

/** Start `portico start` on a YAML text; resolves with { port, pids, stop } once ready. */
export function startPortico(yaml) {
  const dir = mkdtempSync(join(os.tmpdir(), "portico-bench-"));
  const file = join(dir, "portico.yaml");
  writeFileSync(file, yaml);
  const proc = spawn(process.execPath, [CLI, "start", "-c", file], { stdio: ["ignore", "ignore", "pipe"] });
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
          rmSync(dir, { recursive: true, force: true });
        },
      });
    };
    proc.stderr.on("data", onData);
  });
}

function stop(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });
}

/** Run autocannon against `url` for `seconds`; resolves with its result. */
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

/** Print rows as a Markdown table. */
export function table(headers, rows) {
  const lines = [`| ${headers.join(" | ")} |`, `|${headers.map(() => " --- ").join("|")}|`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}
