// CPU time of a process tree from /proc (Linux): a process and all its descendants (found by
// the parent PID in /proc/PID/stat, since /proc/PID/task/TID/children needs a kernel option
// that not every kernel has), and the sum of their utime + stime (fields 14 and 15 of
// /proc/PID/stat, in clock ticks of `getconf CLK_TCK`).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second (`getconf CLK_TCK`, normally 100). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/PID/stat after `comm`: index 0 is field 3 (state). Undefined if gone. */
function statFields(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) is in parentheses and may itself contain spaces or parentheses.
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** `pid` and every live descendant of it. */
export function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(entry);
    if (!fields) continue;
    const ppid = Number(fields[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

/** utime + stime of `pid`, in clock ticks (0 if it is gone). */
function ticks(pid) {
  const fields = statFields(pid);
  return fields ? Number(fields[11]) + Number(fields[12]) : 0;
}

/**
 * A snapshot of the CPU time of the trees rooted at `roots`: { at, ticks: Map pid -> ticks }.
 * Pass two snapshots to `cpuSeconds`.
 */
export function cpuSnapshot(roots) {
  const map = new Map();
  for (const root of roots) for (const pid of processTree(root)) map.set(pid, ticks(pid));
  return { at: performance.now(), ticks: map };
}

/**
 * CPU seconds spent between two snapshots by the processes in the second (a process that
 * appeared in between counts from 0), and the wall seconds between them.
 */
export function cpuSeconds(before, after) {
  let sum = 0;
  // A process gone by the second snapshot reads 0: it adds nothing rather than a negative.
  for (const [pid, t] of after.ticks) sum += Math.max(0, t - (before.ticks.get(pid) ?? 0));
  return { cpu: sum / CLK_TCK, wall: (after.at - before.at) / 1000, pids: after.ticks.size };
}

/**
 * The machine's busy CPU time (user, nice, system, irq, softirq, steal of /proc/stat) and this
 * process's own, its reaped children's included (utime, stime, cutime, cstime: a load
 * generator that exited counts), in clock ticks: to tell how much else ran during a window.
 */
export function machineTicks() {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/).slice(1).map(Number);
  const busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] || 0);
  const self = statFields(process.pid);
  return { busy, self: Number(self[11]) + Number(self[12]) + Number(self[13]) + Number(self[14]) };
}

/**
 * CPU share (CPU-seconds per second) used between two `machineTicks` by processes other than
 * this one, its reaped children and the `known` CPU-seconds (the proxy and the backend).
 */
export function otherShare(before, after, known, wall) {
  const ticks = after.busy - before.busy - (after.self - before.self);
  return Math.max(0, ticks / CLK_TCK - known) / wall;
}
