// `npm run bench`: the same load straight at a backend, then through Portico in front of it.
// Prints req/s, p50, p99 and the ratio of each to the direct run, as a Markdown table.
// Environment: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (100), BENCH_WORKERS (1).
import { load, machine, startBackend, startPortico, table } from "./lib.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 100);
const workers = Number(process.env.BENCH_WORKERS ?? 1);

const backend = await startBackend();
const portico = await startPortico(`
workers: ${workers}
log: { access: off }
upstreams:
  bench: { servers: [{ address: 127.0.0.1:${backend.port} }] }
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: bench }]
`);
try {
  // Warm up both paths (connections, JIT) before measuring.
  await load(`http://127.0.0.1:${backend.port}/`, { seconds: 2, connections });
  await load(`http://127.0.0.1:${portico.port}/`, { seconds: 2, connections });
  const direct = await load(`http://127.0.0.1:${backend.port}/`, { seconds, connections });
  const proxied = await load(`http://127.0.0.1:${portico.port}/`, { seconds, connections });
  const row = (name, r) => [
    name,
    Math.round(r.requests.average).toLocaleString("en-US"),
    `${r.latency.p50} ms`,
    `${r.latency.p99} ms`,
    `${r.errors + r.timeouts}`,
    `${r.non2xx}`,
    (r.requests.average / direct.requests.average).toFixed(2),
  ];
  console.log(`\n${machine()}`);
  console.log(`${seconds} s per run, ${connections} keep-alive connections, Portico workers: ${workers}\n`);
  console.log(
    table(
      ["target", "req/s", "p50", "p99", "errors", "non-2xx", "ratio to direct"],
      [row("direct to backend", direct), row("through Portico", proxied)],
    ),
  );
} finally {
  await portico.stop();
  await backend.stop();
}
