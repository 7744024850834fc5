// `npm run bench [-- --quick] [-- --record | --no-record]`: Portico side by side with peers.
//   full (default; records into bench/RESULTS.md unless --no-record): scenarios (a) 1 KiB,
//     keep-alive, (b) 256 KiB, keep-alive, (c) a new connection per request (1 KiB), against
//     the backend directly, Portico (workers: 1, pinned; workers: auto, not pinned), the
//     minimal undici proxy, http-proxy, nginx and HAProxy (when installed), in rounds; then the
//     HTTPS scenarios, 1 KiB each, against the targets that terminate TLS (Portico with
//     workers: 1, nginx and HAProxy, pinned, started afresh with one self-signed certificate):
//     (d) HTTP/1.1 keep-alive over TLS (wrk), (e) a new TLS connection per request (wrk,
//     Connection: close: handshakes/s), (f) HTTP/2, many streams per connection (h2load);
//   --quick (about a minute; records only with --record): a guard for later changes: Portico
//     (workers: 1) vs the minimal undici proxy vs direct, scenarios (a) and (c), 1 round of 5 s;
//   --https (`npm run bench:https`; records unless --no-record): the HTTPS scenarios only.
// The load generator is wrk (autocannon when wrk is missing; the HTTPS scenarios (d) and (e)
// are then skipped), h2load for (f) (skipped when missing). With taskset and 2+ CPUs, the
// proxy under test runs on CPU 0, the load generator and the backend on CPU 1. The proxy's CPU
// share comes from /proc (utime + stime of all its processes over the measured window).
// Environment: BENCH_SECONDS (10; quick: 5), BENCH_ROUNDS (2; quick: 1), BENCH_CONNECTIONS (50),
// BENCH_H2_CLIENTS (10) and BENCH_H2_STREAMS (100) for (f),
// BENCH_ACCESS_LOG=off (Portico's access log, on by default, to a file; nginx's and HAProxy's too),
// BENCH_SCENARIOS (a,b,c,d,e,f) and BENCH_TARGETS (direct,portico-1,portico-auto,undici,http-proxy,
// node-floor,nginx,haproxy) to run only some; BENCH_NODE_ARGS: extra node flags for Portico (profiling).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cpuSeconds, cpuSnapshot, machineTicks, otherShare } from "./cpu.js";
import { canPin, machine, startBackend, stopAll, tempDir } from "./lib.js";
import { H2LOAD, h2loadVersion, hasWrk, loadGenerator, runH2load, runLoad } from "./loadgen.js";
import { HAPROXY, haproxyOpenssl, haproxyVersion } from "./peers/haproxy.js";
import { NGINX, nginxOpenssl, nginxVersion } from "./peers/nginx.js";
import {
  fileSize,
  httpsTable,
  linesPerPid,
  record,
  resumedLines,
  scenarioTable,
  shares,
  summarize,
  warnings,
  windowFigures,
} from "./report.js";
import { startTargets, targetList } from "./targets.js";
import { makeCertificate, probeTls } from "./tls.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const httpsOnly = argv.includes("--https");
const recording = argv.includes("--record") || (!quick && !argv.includes("--no-record"));
const seconds = Number(process.env.BENCH_SECONDS ?? (quick ? 5 : 10));
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 2));
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const h2Clients = Number(process.env.BENCH_H2_CLIENTS ?? 10);
const h2Streams = Number(process.env.BENCH_H2_STREAMS ?? 100);
const accessLog = process.env.BENCH_ACCESS_LOG !== "off";
const WARMUP_SECONDS = 2;

const SCENARIOS = [
  { key: "a", title: "(a) 1 KiB response, keep-alive", path: "/1k", close: false },
  { key: "b", title: "(b) 256 KiB response, keep-alive", path: "/256k", close: false },
  { key: "c", title: "(c) new connection per request (Connection: close), 1 KiB", path: "/1k", close: true },
  // HTTPS: `tls` scenarios run against the TLS instances of the targets, after the plain ones.
  {
    key: "d",
    title: "(d) HTTPS: HTTP/1.1 keep-alive over TLS, 1 KiB",
    short: "(d) HTTP/1.1 keep-alive over TLS",
    path: "/1k",
    close: false,
    tls: true,
  },
  {
    key: "e",
    title: "(e) HTTPS: new TLS connection per request (Connection: close: handshakes/s), 1 KiB",
    short: "(e) new TLS connection per request",
    path: "/1k",
    close: true,
    tls: true,
  },
  {
    key: "f",
    title: `(f) HTTPS: HTTP/2, ${h2Clients} connections x ${h2Streams} concurrent streams (h2load), 1 KiB`,
    short: `(f) HTTP/2, ${h2Clients} x ${h2Streams} streams`,
    path: "/1k",
    tls: true,
    h2: true,
  },
].filter((s) =>
  process.env.BENCH_SCENARIOS
    ? process.env.BENCH_SCENARIOS.split(",").includes(s.key)
    : httpsOnly
      ? s.tls
      : !quick || (s.key !== "b" && !s.tls),
);

/** Why a scenario cannot run here (its load generator is missing), or undefined. */
function missingTool(scenario) {
  if (scenario.h2 && !H2LOAD) return "h2load is not installed (apt-get install nghttp2-client)";
  if (scenario.tls && !scenario.h2 && !hasWrk) return "wrk is not installed (apt-get install wrk)";
  return undefined;
}

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

/** The header lines: date, machine, versions, load and pinning (`list`: the plain targets' definitions). */
function header(gen, list) {
  const undici = createRequire(import.meta.url)("undici/package.json").version;
  const versions = [`Node ${process.version}`, `undici ${undici}`, gen.version];
  if (NGINX) versions.push(nginxVersion());
  if (HAPROXY) versions.push(haproxyVersion());
  const https = SCENARIOS.some((s) => s.tls);
  if (https && H2LOAD) versions.push(h2loadVersion());
  if (https) {
    // Each server's own OpenSSL: Node's is bundled or the system's; nginx and HAProxy link Debian's.
    const openssl = [`Node ${process.versions.openssl}`];
    if (NGINX) openssl.push(`nginx ${nginxOpenssl()}`);
    if (HAPROXY) openssl.push(`HAProxy ${haproxyOpenssl()}`);
    versions.push(`OpenSSL: ${openssl.join(", ")}`);
  }
  const cmd =
    gen.name === "wrk"
      ? `wrk -t1 -c${connections} -d${seconds}s --latency`
      : `autocannon -c ${connections} -d ${seconds} (wrk is not installed: apt-get install wrk)`;
  const auto = list.find((t) => t.key === "portico-auto");
  return [
    `Date: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
    `Machine: ${machine()}`,
    `Versions: ${versions.join(", ")}`,
    `Load: ${cmd}, ${rounds} round(s) per scenario (median of the rounds), targets alternated, ${WARMUP_SECONDS} s warm-up per target and scenario; scenarios (c) and (e) add -H "Connection: close"${https ? `; (d) and (e) over https://; (f): h2load -t1 -c${h2Clients} -m${h2Streams} -D ${seconds}` : ""}`,
    canPin
      ? `Pinning (taskset): proxy under test on CPU 0, load generator and backend on CPU 1${auto ? "; Portico workers: auto not pinned" : ""}`
      : "Pinning: none (taskset missing or fewer than 2 CPUs)",
    `Access log: ${accessLog ? "on (Portico: JSON lines to a file; nginx, HAProxy: to a file; node peers: none)" : "off (BENCH_ACCESS_LOG=off)"}`,
    "proxy CPU: CPU-seconds of all the proxy's processes / wall-seconds (from /proc); vs undici, vs nginx: ratio of req/s per CPU-second; other CPU: CPU share of everything else on the machine (not the proxy, backend, load generator or this script: noise); MB = 10^6 bytes read by the load generator",
  ].join("\n");
}

/**
 * Run one scenario against `targets` in rounds (targets alternated, a warm-up before each
 * target's first round); resolves with Map key -> measured windows, and the connections each
 * Portico workers: auto process took in the Connection: close scenario (Map pid -> lines).
 */
async function runScenario(scenario, targets, { backend, genCpus }) {
  const windows = new Map(targets.map((t) => [t.key, []]));
  const perWorker = new Map();
  const scheme = scenario.tls ? "https" : "http";
  // h2load's connections carry many streams each; wrk's one request at a time each.
  const run = scenario.h2
    ? (url, secs) => runH2load(url, { seconds: secs, clients: h2Clients, streams: h2Streams, cpus: genCpus })
    : (url, secs) => runLoad(url, { seconds: secs, connections, close: scenario.close, cpus: genCpus });
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      if (t.failed) continue;
      const url = `${scheme}://127.0.0.1:${t.port}${scenario.path}`;
      const offset = t.accessLog ? fileSize(t.accessLog) : 0;
      let before;
      let result;
      try {
        if (round === 1) {
          await run(url, WARMUP_SECONDS);
          await sleep(500);
        }
        before = [cpuSnapshot(t.roots), cpuSnapshot([backend.proc.pid]), machineTicks()];
        result = await run(url, seconds);
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
  return { windows, perWorker };
}

/** The rows of a scenario's table: the median figures per target, failures named. */
function rowsOf(targets, windows) {
  return targets.map((t) => ({
    key: t.key,
    name: t.failed ? `${t.name} (FAILED: ${t.failed})` : t.name,
    s: summarize(windows.get(t.key)),
  }));
}

/** The plain scenarios (a)–(c): every selected target, started once for all of them. */
async function plainPhase(scenarios, list, options, out) {
  progress(`starting ${list.map((t) => t.key).join(", ")} (temp dir ${options.dir})`);
  const targets = await startTargets(list, options);
  try {
    for (const scenario of scenarios) {
      const { windows, perWorker } = await runScenario(scenario, targets, options);
      let text = `### ${scenario.title}\n\n${scenarioTable(rowsOf(targets, windows))}`;
      const auto = targets.find((t) => t.key === "portico-auto");
      if (scenario.close && auto) {
        const split = auto.accessLog ? shares(auto.workers, perWorker) : "unknown (access log off)";
        text += `\n\nPortico workers: auto, connections per worker: ${split}`;
      }
      out.push(text);
      console.log(`${text}\n`);
    }
  } finally {
    // Stopped before the HTTPS phase, so the TLS instances run on a machine as quiet as the plain ones did.
    for (const t of targets) await t.stop?.();
  }
}

/**
 * The HTTPS scenarios (d)–(f): fresh TLS instances of the selected targets that terminate
 * TLS, one self-signed certificate for all; a probe of what each negotiates first, since wrk
 * and h2load resume the previous connection's session when the target offers tickets.
 */
async function httpsPhase(scenarios, only, options, out) {
  const list = targetList({ only, tls: true });
  const skippedTargets = targetList({ only }).filter((t) => !t.tls);
  let text = "### HTTPS (TLS termination)";
  const notes = [];
  if (skippedTargets.length > 0)
    notes.push(`not run over TLS (they do not terminate it): ${skippedTargets.map((t) => t.key).join(", ")}`);
  if (!NGINX) notes.push("nginx is not installed (apt-get install nginx): no nginx reference, no ratio");
  const runnable = scenarios.filter((s) => {
    const why = missingTool(s);
    if (why) notes.push(`${s.title.split(" ")[0]} skipped: ${why}`);
    return !why;
  });
  if (list.length === 0) notes.push("no selected target terminates TLS: HTTPS scenarios skipped");
  if (list.length === 0 || runnable.length === 0) {
    text += `\n\n${notes.map((n) => `- ${n}`).join("\n")}`;
    for (const n of notes) progress(n);
    out.push(text);
    console.log(`${text}\n`);
    return;
  }
  const cert = await makeCertificate(options.dir);
  progress(`starting over TLS: ${list.map((t) => t.key).join(", ")}`);
  const targets = await startTargets(list, { ...options, tls: cert });
  try {
    const probes = [];
    for (const t of targets) probes.push(`${t.name}: ${await probeTls(t.port)}`);
    notes.unshift(
      "certificate: one self-signed ECDSA P-256 (SHA-256) certificate, served by every target; TLS 1.2 and 1.3 allowed, HTTP/2 and HTTP/1.1 by ALPN, session tickets on (each target's default), 128 concurrent streams per HTTP/2 connection",
      `negotiated with Node's TLS client, and a second connection offering the first one's session: ${probes.join("; ")}`,
      "(e): wrk keeps each connection's TLS session across its reconnects (SSL_clear) and offers it again, so against targets that resume sessions each request is a resumed handshake (TLS 1.3: PSK with a fresh X25519 exchange, no certificate signature), not a full one (see the share nginx logged below the tables)",
      "(f): h2load prints no percentiles: the p50 column is empty and the summary gives its mean time per request; a proxy CPU well under 1.00 there means CPU 1 (h2load and the backend) was the limit, which req/s per CPU-second allows for",
    );
    text += `\n\n${notes.map((n) => `- ${n}`).join("\n")}`;
    console.log(`${text}\n`);
    out.push(text);
    const summary = [];
    for (const scenario of runnable) {
      const nginx = targets.find((t) => t.resumeLog);
      const offset = nginx ? fileSize(nginx.resumeLog) : 0;
      const { windows } = await runScenario(scenario, targets, options);
      const rows = rowsOf(targets, windows);
      summary.push({ scenario, rows });
      let table = `#### ${scenario.title}\n\n${scenarioTable(rows)}`;
      if (scenario.close && nginx) {
        await sleep(500); // nginx's buffered access-log writes
        const { lines, resumed } = resumedLines(nginx.resumeLog, offset);
        const share = lines ? `${((100 * resumed) / lines).toFixed(1)}%` : "-";
        const line = `nginx's access log ($ssl_session_reused) in (e), warm-up included: ${resumed.toLocaleString("en-US")} of ${lines.toLocaleString("en-US")} handshakes resumed (${share})`;
        table += `\n\n${line}`;
      }
      out.push(table);
      console.log(`${table}\n`);
    }
    let table = `#### HTTPS summary: Portico (workers: 1) / nginx (1 worker), same run\n\n${httpsTable(summary)}`;
    for (const t of targets.filter((t) => t.errorLog))
      table += `\n\n${t.name}, its log at warn or above during the HTTPS scenarios: ${warnings(t.errorLog)}`;
    out.push(table);
    console.log(`${table}\n`);
  } finally {
    for (const t of targets) await t.stop?.();
  }
}

async function main() {
  const gen = loadGenerator();
  const https = SCENARIOS.some((s) => s.tls);
  const missing = [
    !NGINX && "nginx",
    !HAPROXY && "haproxy",
    gen.name !== "wrk" && "wrk",
    https && !H2LOAD && "nghttp2-client",
  ].filter(Boolean);
  if (missing.length > 0 && !quick)
    progress(
      `not installed: ${missing.join(", ")} (skipped; install with: apt-get install ${missing.join(" ")})`,
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
  const options = { backend, dir, accessLog, proxyCpus, genCpus, pin };

  const out = [header(gen, list)];
  console.log(`\n${out[0]}\n`);
  const plain = SCENARIOS.filter((s) => !s.tls);
  if (plain.length > 0) await plainPhase(plain, list, options, out);
  const secure = SCENARIOS.filter((s) => s.tls);
  if (secure.length > 0) await httpsPhase(secure, only, options, out);
  if (recording) {
    // A partial run says which part it is, so it is not read as the full comparison; so
    // does one with extra node flags for Portico (a profiler slows it down).
    const env = ["BENCH_SCENARIOS", "BENCH_TARGETS", "BENCH_SECONDS", "BENCH_ROUNDS", "BENCH_NODE_ARGS"]
      .filter((k) => process.env[k])
      .map((k) => (/\s/.test(process.env[k]) ? `${k}="${process.env[k]}"` : `${k}=${process.env[k]}`));
    record(
      out.join("\n\n"),
      `${env.length ? `${env.join(" ")} ` : ""}npm run bench${httpsOnly ? ":https" : quick ? " --quick" : ""}`,
    );
    progress("appended to bench/RESULTS.md");
  }
}

try {
  await main();
} finally {
  await stopAll();
}
