// The load generator of `npm run bench`: wrk when it is installed (`wrk -t1 -cN -dSs --latency`,
// its text output parsed), autocannon's CLI in a child process otherwise; either one pinned
// to a CPU with taskset when possible. Both give the same result shape:
// { requests, seconds, bytes, p50, p99 (ms), socketErrors, non2xx }.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { spawnTracked, stop, which } from "./lib.js";

const require = createRequire(import.meta.url);
const WRK = which("wrk");
const AUTOCANNON = join(dirname(require.resolve("autocannon/package.json")), "autocannon.js");

/** The load generator in use and its version, for the header. */
export function loadGenerator() {
  if (WRK) {
    let version = "";
    try {
      execFileSync(WRK, ["-v"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      version = String(err.stdout ?? "") + String(err.stderr ?? ""); // wrk -v exits with 1
    }
    return {
      name: "wrk",
      version:
        version
          .split("\n")[0]
          .replace(/ Copyright.*/, "")
          .trim() || "wrk",
    };
  }
  return { name: "autocannon", version: `autocannon ${require("autocannon/package.json").version}` };
}

const TIME_UNITS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
const SIZE_UNITS = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 };

/** "215.00us" -> 0.215 (ms). */
function wrkTime(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`unexpected wrk time '${text}'`);
  return Number(m[1]) * TIME_UNITS[m[2]];
}

/** Parse wrk's output (with --latency) into the common result shape. */
export function parseWrk(out) {
  const total = /(\d+) requests in ([\d.]+\w+), ([\d.]+)(B|KB|MB|GB|TB) read/.exec(out);
  if (!total) throw new Error(`cannot parse wrk output:\n${out}`);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)$`, "m").exec(out);
    return m ? wrkTime(m[1]) : Number.NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: wrkTime(total[2]) / 1000,
    bytes: Number(total[3]) * SIZE_UNITS[total[4]],
    p50: pct(50),
    p99: pct(99),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

/** Map autocannon's JSON result to the common shape. */
function fromAutocannon(r) {
  return {
    requests: r.requests.total,
    seconds: r.duration,
    bytes: r.throughput.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    socketErrors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

/**
 * Run the load generator against `url` for `seconds` with `connections` connections, each
 * request with `Connection: close` when `close` (a new connection per request), on CPUs
 * `cpus`. Killed if it runs 20 s past its duration.
 */
export async function runLoad(url, { seconds, connections, close = false, cpus }) {
  const [cmd, args] = WRK
    ? [
        WRK,
        [
          "-t1",
          `-c${connections}`,
          `-d${seconds}s`,
          "--latency",
          ...(close ? ["-H", "Connection: close"] : []),
        ],
      ]
    : [process.execPath, [AUTOCANNON, "-j", "-c", `${connections}`, "-d", `${seconds}`]];
  if (!WRK && close) args.push("-H", "connection=close");
  const proc = spawnTracked(cmd, [...args, url], { cpus, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout.on("data", (d) => {
    out += d;
  });
  proc.stderr.on("data", (d) => {
    err += d;
  });
  const watchdog = setTimeout(() => void stop(proc, 1000), (seconds + 20) * 1000);
  const code = await new Promise((resolve, reject) => {
    proc.once("error", reject);
    proc.once("close", resolve);
  });
  clearTimeout(watchdog);
  if (code !== 0) throw new Error(`${cmd} exited with ${code}: ${err || out}`);
  const result = WRK ? parseWrk(out) : fromAutocannon(JSON.parse(out));
  if (process.env.BENCH_DEBUG || result.requests === 0)
    process.stderr.write(`${[cmd, ...args, url].join(" ")}\n${out}${err}`);
  return result;
}
