// `npm run bench:dns`: the DNS layer's speed.
//  1. cached lookups per second (one name, answered from the cache), against the goal 1,000,000/s;
//  2. uncached queries per second over UDP with 100 in flight (every name asked once), against
//     Node's own c-ares resolver (dns.Resolver) asking the same server the same way: the baseline;
//     Portico runs twice: with its default `udpQueriesPerSocket` (a small pool of randomly bound
//     sockets, each replaced after that many queries) and with 1 (a fresh socket for every query);
//  3. the same over DNS over TLS (one connection, pipelined).
// Every uncached run is preceded by a warm-up of WARM_QUERIES other names with the same client
// (JIT, socket pools, the server's own warm-up), so the figures are steady state.
// The test DNS server runs in a child process. BENCH_QUERIES (default 50000) split over the
// uncached runs;
// BENCH_UDP_QUERIES_PER_SOCKET replaces the default of the first Portico UDP run.
import { spawn } from "node:child_process";
import { Resolver as CaresResolver } from "node:dns/promises";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Resolver } from "../dist/dns/index.js";
import { DEFAULT_UDP_QUERIES_PER_SOCKET } from "../dist/dns/transports/udp.js";
import { machine, table } from "./lib.js";

const queries = Number(process.env.BENCH_QUERIES ?? 50_000);
const inFlight = 100;
const WARM_QUERIES = 10_000;
const perSocket = Number(process.env.BENCH_UDP_QUERIES_PER_SOCKET ?? DEFAULT_UDP_QUERIES_PER_SOCKET);

const child = spawn(
  process.execPath,
  [fileURLToPath(new URL("./dns-server.js", import.meta.url)), String(queries + WARM_QUERIES)],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
const [line] = await once(createInterface({ input: child.stdout }), "line");
const { urls, ca } = JSON.parse(line);

/** Run `ask(i)` for i in [0, total) with `concurrency` in flight; returns queries per second. */
async function drive(total, concurrency, ask) {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        try {
          await ask(i);
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { rate: total / seconds, failed };
}

/** Warm `ask` up on the names after `queries`, then time it on `total` names from `first`. */
async function uncached(first, total, ask) {
  await drive(WARM_QUERIES, inFlight, (i) => ask(queries + i));
  return drive(total, inFlight, (i) => ask(first + i));
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");
const rows = [];
try {
  // 1. Cached.
  const cached = new Resolver({ nameservers: [urls.udp], hostsFile: false });
  await cached.resolve("n0.bench", "A");
  const lookups = 3_000_000;
  await drive(100_000, 1, () => cached.resolve("n0.bench", "A")); // warm up
  const c = await drive(lookups, 1, () => cached.resolve("n0.bench", "A"));
  rows.push([
    "cached lookup (1 in flight)",
    fmt(c.rate),
    c.failed,
    "goal 1,000,000/s",
    (c.rate / 1_000_000).toFixed(2),
  ]);
  await cached.close();

  // 2. Uncached over UDP, baseline c-ares on the same server.
  const udpUrl = new URL(urls.udp);
  const cares = new CaresResolver({ timeout: 2000, tries: 2 });
  cares.setServers([`${udpUrl.hostname}:${udpUrl.port}`]);
  const half = Math.floor(queries / 2);
  const base = await uncached(0, half, (i) => cares.resolve4(`n${i}.bench`));
  rows.push(["uncached UDP, Node c-ares (baseline)", fmt(base.rate), base.failed, "", "1.00"]);
  for (const udpQueriesPerSocket of [perSocket, 1]) {
    const udp = new Resolver({
      nameservers: [urls.udp],
      hostsFile: false,
      timeoutMs: 2000,
      attempts: 2,
      udpQueriesPerSocket,
    });
    const u = await uncached(half, queries - half, (i) => udp.resolve(`n${i}.bench`, "A"));
    rows.push([
      `uncached UDP, Portico (${udpQueriesPerSocket} ${udpQueriesPerSocket === 1 ? "query" : "queries"}/socket)`,
      fmt(u.rate),
      u.failed,
      "goal 20,000/s",
      (u.rate / base.rate).toFixed(2),
    ]);
    await udp.close();
  }

  // 3. Uncached over DoT.
  const dot = new Resolver({
    nameservers: [urls.tls],
    hostsFile: false,
    tls: { ca },
    timeoutMs: 2000,
    attempts: 2,
  });
  const d = await uncached(0, queries, (i) => dot.resolve(`n${i}.bench`, "A"));
  rows.push(["uncached DoT, Portico", fmt(d.rate), d.failed, "", (d.rate / base.rate).toFixed(2)]);
  await dot.close();

  console.log(`\n${machine()}`);
  console.log(
    `uncached: ${fmt(half)} distinct names per UDP run, ${fmt(queries)} for DoT, each after a warm-up of ${fmt(WARM_QUERIES)}; ${inFlight} in flight; the DNS server in its own process\n`,
  );
  console.log(table(["run", "per second", "failed", "target", "ratio (to c-ares / to goal)"], rows));
} finally {
  child.kill("SIGTERM");
}
