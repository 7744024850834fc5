// `npm run bench [-- --quick] [-- --record | --no-record]`: Portico side by side with peers.
//   full (default; records into bench/RESULTS.md unless --no-record): scenarios (a) 1 KiB,
//     keep-alive, (b) 256 KiB, keep-alive, (c) a new connection per request (1 KiB), against
//     the backend directly, Portico (workers: 1, pinned; workers: auto, not pinned), the
//     minimal undici proxy, http-proxy, nginx and HAProxy (when installed), in rounds;
//   --quick (about a minute; records only with --record): a guard for later changes: Portico
//     (workers: 1) vs the minimal undici proxy vs direct, scenarios (a) and (c), 1 round of 5 s.
// The load generator is wrk (autocannon when wrk is missing). With taskset and 2+ CPUs, the
// proxy under test runs on CPU 0, the load generator and the backend on CPU 1. The proxy's CPU
// share comes from /proc (utime + stime of all its processes over the measured window).
// Environment: BENCH_SECONDS (10; quick: 5), BENCH_ROUNDS (2; quick: 1), BENCH_CONNECTIONS (50),
// BENCH_ACCESS_LOG=off (Portico's access log, on by default, to a file; nginx's and HAProxy's too),
// BENCH_SCENARIOS (a,b,c) and BENCH_TARGETS (direct,portico-1,portico-auto,undici,http-proxy,
// nginx,haproxy) to run only some.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cpuSeconds, cpuSnapshot, machineTicks, otherShare } from "./cpu.js";
import { canPin, machine, startBackend, stopAll, tempDir } from "./lib.js";
import { loadGenerator, runLoad } from "./loadgen.js";
import { HAPROXY, haproxyVersion } from "./peers/haproxy.js";
import { NGINX, nginxVersion } from "./peers/nginx.js";
import { fileSize, linesPerPid, record, scenarioTable, shares, summarize, windowFigures } from "./report.js";
import { startTargets, targetList } from "./targets.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const recording = argv.includes("--record") || (!quick && !argv.includes("--no-record"));
const seconds = Number(process.env.BENCH_SECONDS ?? (quick ? 5 : 10));
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 2));
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const accessLog = process.env.BENCH_ACCESS_LOG !== "off";
const WARMUP_SECONDS = 2;

const SCENARIOS = [
  { key: "a", title: "(a) 1 KiB response, keep-alive", path: "/1k", close: false },
  { key: "b", title: "(b) 256 KiB response, keep-alive", path: "/256k", close: false },
  { key: "c", title: "(c) new connection per request (Connection: close), 1 KiB", path: "/1k", close: true },
].filter((s) =>
  process.env.BENCH_SCENARIOS
    ? process.env.BENCH_SCENARIOS.split(",").includes(s.key)
    : !quick || s.key !== "b",
);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const progress = (text) => process.stderr.write(`${text}\n`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    progress(`\n${signal}: stopping every process started by the benchmark`);
    await stopAll();
    process.exit(130);
  });
}

if (!existsSync(fileURLToPath(new URL("../dist/cli.js", import.meta.url)))) {
  throw new Error("dist/cli.js is missing: run `npm run build` (npm run bench does it first)");
}

/** The header lines: date, machine, versions, load and pinning. */
function header(gen, targets) {
  const undici = createRequire(import.meta.url)("undici/package.json").version;
  const versions = [`Node ${process.version}`, `undici ${undici}`, gen.version];
  if (NGINX) versions.push(nginxVersion());
  if (HAPROXY) versions.push(haproxyVersion());
  const cmd =
    gen.name === "wrk"
      ? `wrk -t1 -c${connections} -d${seconds}s --latency`
      : `autocannon -c ${connections} -d ${seconds} (wrk is not installed: apt-get install wrk)`;
  const auto = targets.find((t) => t.key === "portico-auto");
  return [
    `Date: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
    `Machine: ${machine()}`,
    `Versions: ${versions.join(", ")}`,
    `Load: ${cmd}, ${rounds} round(s) per scenario (median of the rounds), targets alternated, ${WARMUP_SECONDS} s warm-up per target and scenario; scenario (c) adds -H "Connection: close"`,
    canPin
      ? `Pinning (taskset): proxy under test on CPU 0, load generator and backend on CPU 1${auto ? "; Portico workers: auto not pinned" : ""}`
      : "Pinning: none (taskset missing or fewer than 2 CPUs)",
    `Access log: ${accessLog ? "on (Portico: JSON lines to a file; nginx, HAProxy: to a file; node peers: none)" : "off (BENCH_ACCESS_LOG=off)"}`,
    "proxy CPU: CPU-seconds of all the proxy's processes / wall-seconds (from /proc); vs undici, vs nginx: ratio of req/s per CPU-second; other CPU: CPU share of everything else on the machine (not the proxy, backend, load generator or this script: noise); MB = 10^6 bytes read by the load generator",
  ].join("\n");
}

async function main() {
  const gen = loadGenerator();
  const missing = [!NGINX && "nginx", !HAPROXY && "haproxy", gen.name !== "wrk" && "wrk"].filter(Boolean);
  if (missing.length > 0 && !quick)
    progress(
      `not installed: ${missing.join(", ")} (skipped; install with: apt-get install nginx haproxy wrk)`,
    );
  if (gen.name !== "wrk") progress("load generator: autocannon (wrk is not installed)");
  const pin = canPin ? ", CPU 0" : "";
  const proxyCpus = canPin ? "0" : undefined;
  const genCpus = canPin ? "1" : undefined;
  const dir = tempDir();
  const backend = await startBackend({ cpus: genCpus });
  const only =
    process.env.BENCH_TARGETS?.split(",") ?? (quick ? ["direct", "portico-1", "undici"] : undefined);
  const list = targetList({ only });
  progress(`starting ${list.map((t) => t.key).join(", ")} (temp dir ${dir})`);
  const targets = await startTargets(list, { backend, dir, accessLog, proxyCpus, pin });

  const out = [header(gen, targets)];
  console.log(`\n${out[0]}\n`);
  for (const scenario of SCENARIOS) {
    const windows = new Map(targets.map((t) => [t.key, []]));
    const perWorker = new Map();
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        if (t.failed) continue;
        const url = `http://127.0.0.1:${t.port}${scenario.path}`;
        const opts = { connections, close: scenario.close, cpus: genCpus };
        const offset = t.accessLog ? fileSize(t.accessLog) : 0;
        let before;
        let result;
        try {
          if (round === 1) {
            await runLoad(url, { ...opts, seconds: WARMUP_SECONDS });
            await sleep(500);
          }
          before = [cpuSnapshot(t.roots), cpuSnapshot([backend.proc.pid]), machineTicks()];
          result = await runLoad(url, { ...opts, seconds });
          // A target that answers nothing (hung, or accepting and never responding) is a failure, not a row of zeros.
          if (result.requests === 0)
            throw new Error(`no response in ${seconds} s (${result.socketErrors} socket errors)`);
        } catch (err) {
          // A target that died (or a load run that failed) is reported, not fatal to the run.
          t.failed = String(err.message ?? err).split("\n")[0];
          progress(`${scenario.key} round ${round}: ${t.name}: FAILED: ${t.failed}`);
          continue;
        }
        const after = [cpuSnapshot(t.roots), cpuSnapshot([backend.proc.pid]), machineTicks()];
        const proxyCpu = cpuSeconds(before[0], after[0]);
        const backendCpu = cpuSeconds(before[1], after[1]);
        const other = otherShare(before[2], after[2], proxyCpu.cpu + backendCpu.cpu, backendCpu.wall);
        const w = windowFigures(result, proxyCpu, backendCpu, other);
        windows.get(t.key).push(w);
        const cpu = Number.isFinite(w.share) ? `, proxy CPU ${w.share.toFixed(2)}` : "";
        progress(
          `${scenario.key} round ${round}: ${t.name}: ${Math.round(w.rps)} req/s${cpu}, errors ${w.errors}`,
        );
        if (scenario.close && t.key === "portico-auto" && t.accessLog) {
          await sleep(500); // the workers' asynchronous access-log writes
          for (const [pid, n] of linesPerPid(t.accessLog, offset))
            perWorker.set(pid, (perWorker.get(pid) ?? 0) + n);
        }
        await sleep(500);
      }
    }
    const rows = targets.map((t) => ({
      key: t.key,
      name: t.failed ? `${t.name} (FAILED: ${t.failed})` : t.name,
      s: summarize(windows.get(t.key)),
    }));
    let text = `### ${scenario.title}\n\n${scenarioTable(rows)}`;
    const auto = targets.find((t) => t.key === "portico-auto");
    if (scenario.close && auto) {
      const split = auto.accessLog ? shares(auto.workers, perWorker) : "unknown (access log off)";
      text += `\n\nPortico workers: auto, connections per worker: ${split}`;
    }
    out.push(text);
    console.log(`${text}\n`);
  }
  if (recording) {
    record(out.join("\n\n"), `npm run bench${quick ? " --quick" : ""}`);
    progress("appended to bench/RESULTS.md");
  }
}

try {
  await main();
} finally {
  await stopAll();
}
