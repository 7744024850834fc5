// `npm run bench:reload`: full autocannon load on Portico while it is reloaded 20 times with
// alternating configs, first over keep-alive connections, then with a new connection per
// request (`Connection: close`). Prints requests, errors, non-2xx and reload durations.
// Environment: BENCH_RELOADS (default 20), BENCH_CONNECTIONS (50), BENCH_WORKERS (2).
import { writeFileSync } from "node:fs";
import autocannon from "autocannon";
import { machine, startBackend, startPortico, table } from "./lib.js";

const reloads = Number(process.env.BENCH_RELOADS ?? 20);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const workers = Number(process.env.BENCH_WORKERS ?? 2);

const backend = await startBackend();
const config = (variant) => `
workers: ${workers}
log: { access: off }
upstreams:
  bench: { servers: [{ address: 127.0.0.1:${backend.port} }] }
servers:
  - listen: 127.0.0.1:0
    routes:
      - path: /
        upstream: bench
        response_headers: { set: { x-config: "${variant}" } }
`;
const portico = await startPortico(config("a"));

/** Wait for the master's log line `msg` that comes after line number `from`. */
function nextLine(msg, from) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${msg}' within 30 s`)), 30_000);
    const check = () => {
      const line = portico.lines.slice(from).find((l) => l.msg === msg || l.msg?.startsWith("reload failed"));
      if (!line) return;
      portico.proc.stderr.off("data", onData);
      clearTimeout(timer);
      resolve(line);
    };
    const onData = () => setImmediate(check);
    portico.proc.stderr.on("data", onData);
    check();
  });
}

/** Run autocannon until `reloads` reloads are done; resolves with its result and reload times. */
async function phase(name, headers) {
  const instance = autocannon({
    url: `http://127.0.0.1:${portico.port}/`,
    connections,
    duration: 600,
    headers,
  });
  autocannon.track(instance, {
    renderProgressBar: false,
    renderResultsTable: false,
    renderLatencyTable: false,
  });
  const result = new Promise((resolve) => instance.on("done", resolve));
  const times = [];
  let failed = 0;
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < reloads; i++) {
    writeFileSync(portico.file, config(i % 2 === 0 ? "b" : "a"));
    const from = portico.lines.length;
    portico.proc.kill("SIGHUP");
    const line = await nextLine("reload complete", from);
    if (line.msg === "reload complete") times.push(line.reloadMs);
    else failed++;
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 1000));
  instance.stop();
  const r = await result;
  return { name, r, times, failed };
}

try {
  const keepAlive = await phase("keep-alive connections", {});
  const fresh = await phase("new connection per request", { connection: "close" });
  const drains = portico.lines.filter((l) => l.msg === "generation drained").map((l) => l.drainMs);
  const ms = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? `${s[0]} / ${s[Math.floor(s.length / 2)]} / ${s[s.length - 1]} ms` : "-";
  };
  console.log(`\n${machine()}`);
  console.log(`${connections} connections, Portico workers: ${workers}, ${reloads} reloads per phase\n`);
  console.log(
    table(
      [
        "phase",
        "requests",
        "req/s",
        "errors",
        "timeouts",
        "non-2xx",
        "reloads ok",
        "reload min / median / max",
      ],
      [keepAlive, fresh].map(({ name, r, times, failed }) => [
        name,
        r.requests.total.toLocaleString("en-US"),
        Math.round(r.requests.average).toLocaleString("en-US"),
        r.errors,
        r.timeouts,
        r.non2xx,
        `${times.length}/${times.length + failed}`,
        ms(times),
      ]),
    ),
  );
  console.log(`\nold generation drain time (min / median / max): ${ms(drains)}`);
} finally {
  await portico.stop();
  await backend.stop();
}
