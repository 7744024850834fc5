/**
 * Runs the real `portico start` (built JS) as a child process on a config written to a
 * temporary file, collects its JSON log lines, and waits for its "portico ready" line to
 * learn the ports it listens on (tests use port 0 and read them back).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Path of the built CLI. `npm test` builds first. */
export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

/** One parsed log line (JSON), or `{ text }` for a line that is not JSON. */
export type LogLine = Record<string, unknown> & { msg?: string; pid?: number };

/** A running Portico master. */
export interface Portico {
  proc: ChildProcess;
  pid: number;
  /** Directory holding the config file; removed by `stop`. */
  dir: string;
  configFile: string;
  /** Every log line from stdout and stderr, parsed. */
  lines: LogLine[];
  /** Raw stderr text (non-JSON lines included). */
  stderr: () => string;
  /** `http://127.0.0.1:PORT` of the n-th bound listen address (in config order). */
  url: (n?: number) => string;
  /** Worker PIDs from the ready line. */
  workers: number[];
  /** Bound addresses from the ready line. */
  bound: Array<{ listen: string; address: string; port: number }>;
  /** Resolves with the first line (already seen or future) that satisfies `pred`. */
  waitForLine: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
  /** Access-log lines (those with a `status` and a `method`). */
  accessLines: () => LogLine[];
  /** Send a signal and wait for the exit; resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Spawn `portico <args>` and collect its output; resolves when it exits. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Write `yaml` to a temp file and start Portico on it; resolves once every worker listens. */
export async function startPortico(yaml: string, opts: { waitReady?: boolean } = {}): Promise<Portico> {
  const dir = mkdtempSync(join(tmpdir(), "portico-test-"));
  const configFile = join(dir, "portico.yaml");
  writeFileSync(configFile, yaml);
  const proc = spawn(process.execPath, [CLI, "start", "-c", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: LogLine[] = [];
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let stderrText = "";
  const onLine = (text: string) => {
    if (!text) return;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { text };
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  const splitter = (onText?: (t: string) => void) => {
    let buf = "";
    return (chunk: Buffer) => {
      const s = chunk.toString();
      onText?.(s);
      buf += s;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    };
  };
  proc.stdout?.on("data", splitter());
  proc.stderr?.on(
    "data",
    splitter((s) => (stderrText += s)),
  );
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));

  const waitForLine = (pred: (l: LogLine) => boolean, timeoutMs = 15_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const seen = lines.find(pred);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${stderrText.slice(-4000)}`));
      }, timeoutMs);
      const waiter = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(waiter);
    });

  const portico: Portico = {
    proc,
    pid: proc.pid ?? 0,
    dir,
    configFile,
    lines,
    stderr: () => stderrText,
    bound: [],
    workers: [],
    url: (n = 0) => `http://127.0.0.1:${portico.bound[n]?.port}`,
    waitForLine,
    accessLines: () => lines.filter((l) => typeof l.status === "number" && typeof l.method === "string"),
    exited,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      // An operator must never see a stack trace: a crash in any process fails the test.
      const trace = stderrText.split("\n").find((l) => /^\s+at .+:\d+:\d+\)?$/.test(l));
      if (trace) throw new Error(`portico printed a stack trace:\n${stderrText.slice(-3000)}`);
      return code;
    },
  };
  if (opts.waitReady !== false) {
    const ready = await Promise.race([
      waitForLine((l) => l.msg === "portico ready"),
      exited.then((code) => {
        throw new Error(`portico exited with ${code} before it was ready; stderr:\n${stderrText}`);
      }),
    ]).catch(async (err: unknown) => {
      // The caller never gets a handle to stop it: stop it here (its workers follow on disconnect).
      await portico.stop("SIGKILL");
      throw err;
    });
    portico.bound = ready.listening as Portico["bound"];
    portico.workers = ready.workers as number[];
  }
  return portico;
}

/** PIDs of the workers that served access-log lines. */
export function servingPids(p: Portico): Set<number> {
  return new Set(p.accessLines().map((l) => l.pid as number));
}
