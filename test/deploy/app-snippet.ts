/**
 * Runs the demo app that deploy/compose.yaml and deploy/kubernetes/app.yaml start with
 * `node -e SCRIPT`, so the few lines shipped there are known to serve and to stop on SIGTERM.
 * The script's port 8080 becomes one the OS picks, on loopback.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

/** The running snippet: its URL, and `stop` (SIGTERM, resolves with the exit code). */
export interface RunningSnippet {
  url: string;
  proc: ChildProcess;
  stop: () => Promise<number | null>;
}

/** Start `script` (a `node -e` program listening on 8080) on a free loopback port. */
export async function runAppSnippet(script: string): Promise<RunningSnippet> {
  const onFreePort = script.replace(
    ".listen(8080)",
    '.listen(0, "127.0.0.1", function () { console.log(this.address().port); })',
  );
  if (onFreePort === script) throw new Error("the app snippet does not .listen(8080)");
  const proc = spawn(process.execPath, ["-e", onFreePort], { stdio: ["ignore", "pipe", "inherit"] });
  const [chunk] = (await once(proc.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  const port = Number(chunk.toString().trim());
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    stop: () => {
      proc.kill("SIGTERM");
      return exited;
    },
  };
}
