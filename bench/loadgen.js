// The load generator of `npm run bench`: wrk when it is installed (`wrk -t1 -cN -dSs --latency`,
// its text output parsed), autocannon's CLI in a child process otherwise; either one pinned
// to a CPU with taskset when possible. Both give the same result shape:
// { requests, seconds, bytes, p50, p99 (ms), socketErrors, non2xx }.
// The HTTP/2 scenario uses h2load (Debian's nghttp2-client), which gives the same shape with
// the mean request time instead of percentiles (it prints none): { ..., mean, protocol }.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { spawnTracked, stop, which } from "./lib.js";

const require = createRequire(import.meta.url);
const WRK = which("wrk");
export const H2LOAD = which("h2load");
const AUTOCANNON = join(dirname(require.resolve("autocannon/package.json")), "autocannon.js");

/** True when wrk is installed (the HTTPS scenarios need it: autocannon's fallback is plain-only here). */
export const hasWrk = WRK !== undefined;

/** `h2load nghttp2/1.52.0`, for the header. */
export function h2loadVersion() {
  return execFileSync(H2LOAD, ["--version"], { encoding: "utf8" }).trim();
}

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

/** "450us", "102.95ms", "1.48s" (h2load's times) -> ms. */
function h2loadTime(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  return m ? Number(m[1]) * TIME_UNITS[m[2]] : Number.NaN;
}

/**
 * Parse h2load's summary into the common result shape: requests = streams that succeeded,
 * socketErrors = failed (errored included) + timed out, non2xx = 4xx + 5xx (as wrk counts
 * them), mean = mean time per request (ms), protocol = the ALPN protocol it negotiated.
 */
export function parseH2load(out) {
  const finished = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(out);
  const reqs =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  if (!finished || !reqs) throw new Error(`cannot parse h2load output:\n${out}`);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const traffic = /traffic: \S+ \((\d+)\) total/.exec(out);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  return {
    requests: Number(reqs[4]),
    seconds: (Number(finished[1]) * TIME_UNITS[finished[2]]) / 1000,
    bytes: traffic ? Number(traffic[1]) : 0,
    p50: Number.NaN,
    p99: Number.NaN,
    mean: time ? h2loadTime(time[3]) : Number.NaN,
    socketErrors: Number(reqs[5]) + Number(reqs[7]),
    non2xx: codes ? Number(codes[3]) + Number(codes[4]) : 0,
    protocol: /Application protocol: (\S+)/.exec(out)?.[1] ?? "none",
  };
}

/**
 * Run `cmd args` (pinned to `cpus`) for a load run of `seconds`; resolves with its stdout.
 * Killed if it runs 20 s past its duration (h2load, for one, can hang at its end).
 */
async function runChild(cmd, args, { seconds, cpus }) {
  const proc = spawnTracked(cmd, args, { cpus, stdio: ["ignore", "pipe", "pipe"] });
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
  return { out, err };
}

/**
 * Run h2load against `url` (https://) for `seconds`: `clients` connections with up to
 * `streams` concurrent streams each, one thread, on CPUs `cpus`. Throws when it did not
 * negotiate h2 (a result over HTTP/1.1 would not be this scenario's).
 */
export async function runH2load(url, { seconds, clients, streams, cpus }) {
  const args = ["-t1", `-c${clients}`, `-m${streams}`, "-D", String(seconds), url];
  const { out, err } = await runChild(H2LOAD, args, { seconds, cpus });
  const result = parseH2load(out);
  if (process.env.BENCH_DEBUG || result.requests === 0 || result.socketErrors > 0)
    process.stderr.write(`${[H2LOAD, ...args].join(" ")}\n${out.replace(/^progress: .*\n/gm, "")}${err}`);
  if (result.protocol !== "h2") throw new Error(`h2load negotiated ${result.protocol}, not h2`);
  // h2load prints this once per connection that can take no more streams (the target sent
  // GOAWAY) and does not reconnect, so the rest of the run would measure idle connections.
  const stopped = out.match(/^Process Request Failure/gm)?.length ?? 0;
  if (stopped > 0)
    throw new Error(
      `${stopped} of ${clients} connections stopped taking streams before the end (GOAWAY: a requests-per-connection limit?); h2load does not reconnect`,
    );
  return result;
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
  const { out, err } = await runChild(cmd, [...args, url], { seconds, cpus });
  const result = WRK ? parseWrk(out) : fromAutocannon(JSON.parse(out));
  if (process.env.BENCH_DEBUG || result.requests === 0)
    process.stderr.write(`${[cmd, ...args, url].join(" ")}\n${out}${err}`);
  return result;
}
