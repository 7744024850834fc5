// `npm run build && node bench/rate-limit.js`: what a `rate_limit` costs a request.
// 1. The worker -> master round trip on its own (next to a bare IPC ping-pong, the floor):
//    a node:cluster worker running the real
//    MasterRateLimits asks a primary running the real RateLimitService, one check at a time
//    (latency), then 100 checks per event-loop turn (batched: cost per check), with the CPU
//    time each side spent per check.
// 2. End to end: autocannon on Portico (`workers: 1`, a `return` route) without a limit,
//    with one that never refuses (1000000/s: every request asks the master), and with one
//    that refuses nearly all (10/s: refused keys are refused by the worker until their next
//    token, without asking).
// Environment: BENCH_CHECKS (default 20000), BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (20).
// The machine is shared and noisy: compare the two columns of one run, not runs.
import cluster from "node:cluster";
import { fileURLToPath } from "node:url";

const checks = Number(process.env.BENCH_CHECKS ?? 20_000);
const limit = { id: "bench", rate: 1e9, burst: 1e9, key: { kind: "client_ip" }, store: "local" };
const quiet = { warn() {}, info() {}, error() {}, debug() {} };

if (cluster.isWorker) {
  const { MasterRateLimits } = await import("../dist/worker/rate-limit.js");
  const limiter = new MasterRateLimits({
    send: (m) => process.send(m, undefined, {}, () => {}),
    connected: () => process.connected,
    workers: 1,
    log: quiet,
  });
  let pong;
  process.on("message", async (msg) => {
    if (msg.type === "rate-limit-answer") return limiter.onAnswer(msg);
    if (msg.type === "pong") return pong();
    if (msg.cmd !== "run") return;
    const cpu0 = process.cpuUsage();
    const latencies = [];
    const begun = performance.now();
    if (msg.batch === 0) {
      // Node's IPC alone: the floor under any round trip to the master.
      for (let i = 0; i < checks; i++) {
        const t = performance.now();
        await new Promise((resolve) => {
          pong = resolve;
          process.send({ type: "ping", seq: i });
        });
        latencies.push((performance.now() - t) * 1000);
      }
    } else if (msg.batch === 1) {
      for (let i = 0; i < checks; i++) {
        const t = performance.now();
        await limiter.check(limit, `10.0.${i % 250}.${i % 200}`);
        latencies.push((performance.now() - t) * 1000);
      }
    } else {
      for (let i = 0; i < checks; i += msg.batch) {
        const t = performance.now();
        await Promise.all(
          Array.from({ length: msg.batch }, (_, j) => limiter.check(limit, `10.0.${j % 250}.${i % 200}`)),
        );
        latencies.push((performance.now() - t) * 1000);
      }
    }
    const elapsed = performance.now() - begun;
    const cpu = process.cpuUsage(cpu0);
    process.send({ cmd: "done", latencies, elapsed, cpuUs: cpu.user + cpu.system });
  });
  process.send({ cmd: "ready" });
} else {
  const { RateLimitService } = await import("../dist/ratelimit/service.js");
  const { load, machine, startPortico, table } = await import("./lib.js");
  const service = new RateLimitService(quiet);
  cluster.setupPrimary({ exec: fileURLToPath(import.meta.url) });
  const worker = cluster.fork();
  const waiters = new Map();
  worker.on("message", (msg) => {
    if (msg.type === "rate-limit-check") service.handle(msg, (answer) => worker.send(answer));
    else if (msg.type === "ping") worker.send({ type: "pong", seq: msg.seq });
    else if (msg.type === "rate-limit-counts") service.addCounts(msg.counts);
    else waiters.get(msg.cmd)?.(msg);
  });
  const next = (cmd) => new Promise((resolve) => waiters.set(cmd, resolve));
  await next("ready");
  const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const rows = [];
  for (const batch of [0, 1, 100]) {
    const done = next("done");
    const cpu0 = process.cpuUsage();
    worker.send({ cmd: "run", batch });
    const { latencies, elapsed, cpuUs } = await done;
    const master = process.cpuUsage(cpu0);
    const sorted = latencies.sort((a, b) => a - b);
    rows.push([
      ["IPC ping-pong (floor)", "one check at a time", ""][batch] ?? "100 checks per turn",
      (quantile(sorted, 0.5) / Math.max(1, batch)).toFixed(1),
      (quantile(sorted, 0.99) / Math.max(1, batch)).toFixed(1),
      Math.round(checks / (elapsed / 1000)),
      (cpuUs / checks).toFixed(1),
      ((master.user + master.system) / checks).toFixed(1),
    ]);
  }
  worker.kill();
  console.log(`rate-limit IPC round trip, ${checks} checks each, ${machine()}\n`);
  console.log(
    table(
      [
        "pattern",
        "p50 µs per check",
        "p99 µs per check",
        "checks/s",
        "worker CPU µs/check",
        "master CPU µs/check",
      ],
      rows,
    ),
  );

  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 20);
  const variants = [
    ["no rate_limit", ""],
    ["rate_limit, never refusing", "{ rate: 1000000/s, burst: 1000000 }"],
    ["rate_limit, refusing nearly all", "{ rate: 10/s }"],
  ];
  const yaml = (rateLimit) => `
workers: 1
log: { access: off }
servers:
  - listen: 127.0.0.1:0
    routes:
      - path: /
        return: { status: 200, body: "ok\\n" }
${rateLimit ? `        rate_limit: ${rateLimit}\n` : ""}`;
  // Alternated rounds, so a neighbour's load drifting over the run hits all alike; medians.
  const runs = variants.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, [, rateLimit]] of variants.entries()) {
      const p = await startPortico(yaml(rateLimit));
      await load(`http://127.0.0.1:${p.port}/`, { seconds: 1, connections }); // warm-up
      runs[i].push(await load(`http://127.0.0.1:${p.port}/`, { seconds, connections }));
      await p.stop();
    }
  }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const e2e = variants.map(([name], i) => [
    name,
    Math.round(median(runs[i].map((r) => r.requests.average))),
    median(runs[i].map((r) => r.latency.p50)),
    median(runs[i].map((r) => r.latency.p99)),
    `${Math.round((100 * runs[i].reduce((n, r) => n + r.non2xx, 0)) / runs[i].reduce((n, r) => n + r.requests.total, 0))}%`,
    runs[i].reduce((n, r) => n + r.errors, 0),
  ]);
  console.log(
    `\nend to end, workers: 1, ${connections} connections, median of ${rounds} alternated rounds of ${seconds} s\n`,
  );
  console.log(table(["route", "req/s", "p50 ms", "p99 ms", "429", "errors"], e2e));
  process.exit(0);
}
