/**
 * Resident set size of a process from /proc (Linux), sampled while a test runs, to show a
 * large body streams through a worker instead of piling up in its memory.
 */
import { readFileSync } from "node:fs";

/** Current RSS of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Sample the RSS of `pid` every 20 ms until `stop()`; returns the peak seen. */
export function sampleRss(pid: number): { stop: () => number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // the process exited: keep the peak seen so far
    }
  }, 20);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
