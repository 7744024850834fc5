// Figures and tables of `npm run bench`: per target, the median over rounds of req/s, MB/s,
// the proxy's CPU share and req/s per CPU-second, latency, and ratios (per CPU-second) to the
// minimal undici proxy and to nginx; the share of connections each Portico worker took (from
// the access log); the HTTPS summary (Portico / nginx per scenario); and appending a run to
// bench/RESULTS.md.
import { appendFileSync, closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { table } from "./lib.js";

/** The median of numbers (the mean of the middle two for an even count); NaN when empty. */
export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One measured window: the load result, the CPU seconds of the proxy and the backend, the others' CPU share. */
export function windowFigures(load, proxyCpu, backendCpu, otherShare) {
  const rps = load.requests / load.seconds;
  const share = proxyCpu.pids > 0 ? proxyCpu.cpu / proxyCpu.wall : Number.NaN;
  return {
    rps,
    mbps: load.bytes / load.seconds / 1e6,
    share,
    perCpu: rps / share,
    backendShare: backendCpu.cpu / backendCpu.wall,
    otherShare,
    p50: load.p50,
    p99: load.p99,
    mean: load.mean ?? Number.NaN, // h2load's mean time per request (it prints no percentiles)
    errors: load.socketErrors + load.non2xx,
  };
}

/** Median figures of one target over its rounds (errors: summed). */
export function summarize(windows) {
  const m = (k) => median(windows.map((w) => w[k]));
  return {
    rps: m("rps"),
    mbps: m("mbps"),
    share: m("share"),
    perCpu: m("perCpu"),
    backendShare: m("backendShare"),
    otherShare: m("otherShare"),
    p50: m("p50"),
    p99: m("p99"),
    mean: m("mean"),
    errors: windows.reduce((a, w) => a + w.errors, 0),
  };
}

const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "-");
const fixed = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const ms = (x) => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms` : "-");

/**
 * The Markdown table of one scenario: `rows` is [{ key, name, s: summarize(...) }]. The
 * "vs undici" column is left out when the undici proxy is not among the rows (the HTTPS
 * scenarios: it does not terminate TLS).
 */
export function scenarioTable(rows) {
  const per = (key) => rows.find((r) => r.key === key)?.s.perCpu;
  const withUndici = rows.some((r) => r.key === "undici");
  const undici = per("undici");
  const nginx = per("nginx");
  const headers = ["target", "req/s", "MB/s", "proxy CPU", "req/s per CPU-s"];
  headers.push(...(withUndici ? ["vs undici"] : []), "vs nginx");
  headers.push("backend CPU", "p50", "p99", "errors", "other CPU");
  return table(
    headers,
    rows.map(({ name, s }) => {
      const row = [name, int(s.rps), fixed(s.mbps, 1), fixed(s.share, 2), int(s.perCpu)];
      if (withUndici) row.push(fixed(s.perCpu / undici, 2));
      row.push(nginx === undefined ? "-" : fixed(s.perCpu / nginx, 2));
      row.push(fixed(s.backendShare, 2), ms(s.p50), ms(s.p99), String(s.errors), fixed(s.otherShare, 2));
      return row;
    }),
  );
}

/**
 * The HTTPS summary: one line per scenario (`summary` is [{ scenario, rows }], rows as for
 * `scenarioTable`), Portico (workers: 1) against nginx measured in the same run: req/s, req/s
 * per CPU-second and their ratios, HAProxy's ratio when it ran, p99 (h2load: the mean, marked).
 */
export function httpsTable(summary) {
  const headers = [
    "scenario",
    "Portico req/s",
    "nginx req/s",
    "Portico req/s per CPU-s",
    "nginx req/s per CPU-s",
  ];
  headers.push("Portico / nginx per CPU-s", "Portico / nginx req/s", "HAProxy / nginx per CPU-s");
  headers.push("Portico p99", "nginx p99", "errors Portico / nginx");
  return table(
    headers,
    summary.map(({ scenario, rows }) => {
      const get = (key) => rows.find((r) => r.key === key);
      const [p, n, h] = [get("portico-1"), get("nginx"), get("haproxy")];
      const failed = (r) => (r?.name.includes("(FAILED") ? " (FAILED)" : "");
      const ratio = (a, b) => (a && b ? fixed(a / b, 2) : "-");
      const lat = (r) =>
        !r
          ? "-"
          : Number.isFinite(r.s.p99)
            ? ms(r.s.p99)
            : Number.isFinite(r.s.mean)
              ? `${ms(r.s.mean)} mean`
              : "-";
      return [
        scenario.short,
        `${p ? int(p.s.rps) : "-"}${failed(p)}`,
        `${n ? int(n.s.rps) : "-"}${failed(n)}`,
        p ? int(p.s.perCpu) : "-",
        n ? int(n.s.perCpu) : "-",
        ratio(p?.s.perCpu, n?.s.perCpu),
        ratio(p?.s.rps, n?.s.rps),
        ratio(h?.s.perCpu, n?.s.perCpu),
        lat(p),
        lat(n),
        `${p ? p.s.errors : "-"} / ${n ? n.s.errors : "-"}`,
      ];
    }),
  );
}

/** The size of `file` now (0 if it does not exist): where a window's access-log lines start. */
export function fileSize(file) {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Count the access-log lines of `file` from byte `offset` on, per `pid`: Map pid -> lines. */
export function linesPerPid(file, offset) {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buf, 0, buf.length, offset);
    const counts = new Map();
    for (const line of buf.toString("utf8").split("\n")) {
      if (!line) continue;
      try {
        const pid = JSON.parse(line).pid;
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
      } catch {} // a line still being written
    }
    return counts;
  } finally {
    closeSync(fd);
  }
}

/** Of nginx's TLS access-log lines from byte `offset` on (ending in $ssl_session_reused): { lines, resumed }. */
export function resumedLines(file, offset) {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buf, 0, buf.length, offset);
    const lines = buf.toString("utf8").split("\n").filter(Boolean);
    return { lines: lines.length, resumed: lines.filter((l) => l.endsWith(" r")).length };
  } finally {
    closeSync(fd);
  }
}

/** Portico's log lines at warn or above (pino levels: 40 warn, 50 error, 60 fatal) as `N x msg`, or "none". */
export function warnings(lines) {
  const counts = new Map();
  for (const l of lines ?? []) {
    if (!(l.level >= 40)) continue;
    const key = `${l.level >= 50 ? "error" : "warn"}: ${l.msg}${l.err?.message ? ` (${l.err.message})` : l.code ? ` (${l.code})` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts.size === 0
    ? "none"
    : [...counts]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${n} x ${k}`)
        .join("; ");
}

/** `51% / 49%` for the workers `pids` (in decreasing order), from Map pid -> lines. */
export function shares(pids, counts) {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return "no access-log lines";
  const all = [...new Set([...pids, ...counts.keys()])].map((pid) => counts.get(pid) ?? 0);
  return all
    .sort((a, b) => b - a)
    .map((n) => `${Math.round((100 * n) / total)}%`)
    .join(" / ");
}

/** Append `text` to bench/RESULTS.md under `## <date> — <title>`. */
export function record(text, title) {
  const file = new URL("./RESULTS.md", import.meta.url);
  const date = new Date().toISOString().slice(0, 10);
  appendFileSync(file, `\n## ${date} — ${title}\n\n${text.trim()}\n`);
}
