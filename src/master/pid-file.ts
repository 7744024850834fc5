/**
 * The master's PID file: written once the first generation is ready, removed on exit, and
 * read by `portico reload` / `portico stop` to find the running master.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Write `pid` to `file` (creating its folder). Throws with the path and reason on failure. */
export function writePidFile(file: string, pid: number): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${pid}\n`);
}

/** Remove `file` if it still holds `pid` (a newer master may have taken it over). */
export function removePidFile(file: string, pid: number): void {
  try {
    if (Number(readFileSync(file, "utf8").trim()) === pid) rmSync(file);
  } catch {
    // already gone
  }
}

/** Whether a process with this PID exists (signal 0 checks without sending anything). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The PID of the running master, or an operator-facing reason why there is none. */
export function runningMaster(file: string): { pid: number } | { error: string } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      error:
        code === "ENOENT"
          ? `no running master: pid file ${file} does not exist (is Portico started with this config?)`
          : `cannot read pid file ${file}: ${code}`,
    };
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0)
    return { error: `pid file ${file} does not hold a PID: '${text.trim()}'` };
  if (!isRunning(pid))
    return { error: `no running master: pid ${pid} from ${file} is not running (stale pid file)` };
  return { pid };
}
