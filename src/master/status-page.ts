/**
 * The admin listener's status page (`GET /`): one self-contained HTML page (inline CSS and
 * JS, nothing fetched but `status`, so it works offline and behind a path prefix) that polls
 * the `/status` document (observability/status.ts) every second and renders it: upstreams and
 * their peers, request and 5xx rates of the last 5 minutes, the DNS names discovery follows
 * with a TTL countdown, the generations and their workers.
 *
 * Every string of the document (names come from config and DNS) reaches the page through
 * `textContent` or `setAttribute`, never `innerHTML`; a Content-Security-Policy pinned to the
 * hashes of the inline script and style forbids anything else to run or load.
 *
 * Tests select by stable attributes: a peer row is
 * `tr[data-upstream="NAME"][data-peer="ADDRESS"][data-health="healthy|unhealthy|ejected|draining|unchecked"]`,
 * a chart `svg[data-chart="requests|errors"][data-upstream="NAME"]` (with `data-points` and
 * `data-peak`), a DNS row `tr[data-dns-name][data-dns-type]`, a worker row `tr[data-pid]`,
 * and the banner `#banner[data-state="loading|ok|error"]`.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { --fg: #1d232b; --muted: #6a737d; --line: #dde1e6; --bg: #f6f7f9; --card: #fff;
  --ok: #1a7f37; --bad: #cf222e; --warn: #bc4c00; --grey: #8c959f; --pending: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; padding: 10px 16px; background: #24292f; color: #fff; }
header h1 { margin: 0; font-size: 18px; }
header .meta { color: #c9d1d9; font-size: 12px; }
#banner { padding: 6px 16px; font-size: 12px; border-bottom: 1px solid var(--line); }
#banner[data-state="ok"] { background: #dafbe1; }
#banner[data-state="loading"] { background: #fff8c5; }
#banner[data-state="error"] { background: #ffebe9; color: var(--bad); font-weight: 600; }
main { padding: 8px 16px 24px; }
h2 { font-size: 15px; margin: 16px 0 6px; }
h3 { font-size: 14px; margin: 0 0 4px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; margin-bottom: 10px; }
.muted { color: var(--muted); font-weight: normal; }
.mono, td.addr { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 11px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; color: #fff; font-size: 11px; font-weight: 600; }
.h-healthy { background: var(--ok); } .h-unhealthy { background: var(--bad); } .h-ejected { background: var(--warn); }
.h-draining { background: var(--grey); } .h-unchecked { background: #d4a72c; color: #3b2300; }
.why { color: var(--muted); font-size: 12px; margin-left: 6px; }
.missing { color: var(--bad); margin: 4px 0; padding-left: 18px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 6px 0; }
.chart { margin: 0; }
.chart figcaption { font-size: 11px; color: var(--muted); }
.chart svg { display: block; background: #fbfcfd; border: 1px solid var(--line); border-radius: 3px; }
.chart .line { fill: none; stroke-width: 1.5; stroke-linejoin: round; stroke-linecap: round; }
.chart .requests { stroke: #0969da; } .chart .errors { stroke: var(--bad); }
.chart .reset { stroke: var(--warn); stroke-dasharray: 2 2; }
.stale { color: var(--warn); font-weight: 600; } .err { color: var(--bad); }
.expired { color: var(--bad); }
`;

// Plain ES2020, no build step: the browser runs this text as it is. A TS template literal:
// no backslash, backtick or dollar-brace in it.
const SCRIPT = `
"use strict";
(() => {
  const WINDOW_MS = 5 * 60 * 1000; // the charts show the last 5 minutes
  const POLL_MS = 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const HEALTHS = ["healthy", "unhealthy", "ejected", "draining", "unchecked"];
  let doc = null; // the last good document
  let received = 0; // performance.now() when it arrived
  let lastError = "";
  const history = new Map(); // upstream name -> { last, points: [{t, req, err, gap}], resets: [t] }
  const workers = new Map(); // pid -> { now, traffic, rates: { upstream: {req, err} } }

  // DOM building: text only through text nodes and attributes, never markup.
  function attrs(el, a) {
    if (a) for (const k of Object.keys(a)) if (a[k] !== undefined && a[k] !== null && a[k] !== false) el.setAttribute(k, String(a[k]));
    return el;
  }
  function h(tag, a, ...kids) {
    const el = attrs(document.createElement(tag), a);
    for (const k of kids.flat(3)) {
      if (k === undefined || k === null || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  const svg = (tag, a) => attrs(document.createElementNS(SVG, tag), a);
  const $ = (id) => document.getElementById(id);

  const pad = (n) => String(n).padStart(2, "0");
  function clock(ms) {
    const d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor(s / 60) % 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s / 3600) % 24 + "h";
  }
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }
  const rate = (v) => (v >= 10 ? Math.round(v) : v.toFixed(1)) + "/s";
  // The server's clock now, from the document's 'now' and the time since it arrived: TTLs are
  // the server's epoch ms, and the browser's clock may be off.
  const serverNow = () => (doc ? doc.now + (performance.now() - received) : Date.now());

  // Rates from the deltas of cumulative counters between two polls, per worker when the
  // workers report their traffic: the upstream's sum covers only the workers that answered, so
  // a busy worker that misses one poll would be a dip and then a spike. A worker that did not
  // answer but is alive keeps its last rate (its next delta spans both intervals); one that
  // exited leaves, its counts with it: a reset, marked on the chart, never a negative rate.
  // Without per-worker traffic, the upstream's sum: a sum that goes down is a reset.
  const ZERO = { requests: 0, errors: 0 };
  let lastNow = 0;
  function record(d) {
    if (d.now <= lastNow) return; // the same or an older document
    const alive = new Set();
    const reported = [];
    for (const g of d.generations) {
      for (const pid of g.pids) alive.add(pid);
      reported.push(...g.reported);
    }
    const perWorker = reported.length > 0 && reported.every((w) => w.traffic && typeof w.traffic === "object");
    const answered = new Set();
    for (const w of reported) {
      answered.add(w.pid);
      // A worker first seen that started since the last document (a respawn, a reload) counts
      // from zero at its start.
      const fresh = lastNow > 0 && w.uptimeS * 1000 <= d.now - lastNow + 1000;
      const prev = workers.get(w.pid) || (fresh ? { now: lastNow, traffic: {} } : undefined);
      const dt = prev ? (d.now - prev.now) / 1000 : 0;
      const rates = {};
      if (prev && dt > 0) {
        for (const u of d.upstreams) {
          const now = w.traffic[u.name] || ZERO;
          const before = prev.traffic[u.name] || ZERO;
          rates[u.name] = { req: Math.max(0, now.requests - before.requests) / dt, err: Math.max(0, now.errors - before.errors) / dt };
        }
      }
      workers.set(w.pid, { now: d.now, traffic: w.traffic || {}, rates });
    }
    const exited = [];
    for (const [pid, w] of workers) {
      if (answered.has(pid)) continue;
      if (!alive.has(pid) || d.now - w.now > 10000) {
        exited.push(w);
        workers.delete(pid);
      }
    }
    const seen = new Set();
    for (const u of d.upstreams) {
      seen.add(u.name);
      let hist = history.get(u.name);
      if (!hist) history.set(u.name, (hist = { last: null, points: [], resets: [] }));
      const last = hist.last;
      let point = null;
      if (perWorker) {
        let req = 0, err = 0, known = false;
        for (const w of workers.values()) {
          const r = w.rates[u.name];
          if (r) { req += r.req; err += r.err; known = true; }
        }
        if (known) point = { req, err };
        if (exited.some((w) => (w.traffic[u.name] || ZERO).requests > 0)) hist.resets.push(d.now);
      } else if (last) {
        const dt = (d.now - last.now) / 1000;
        const dReq = u.requests - last.requests;
        const dErr = u.errors - last.errors;
        if (dReq < 0 || dErr < 0) hist.resets.push(d.now);
        else point = { req: dReq / dt, err: dErr / dt };
      }
      if (point) {
        // A long silence (fetches failing) or a reset breaks the line rather than bridging it.
        const prev = hist.points[hist.points.length - 1];
        const reset = hist.resets.length > 0 && prev !== undefined && hist.resets[hist.resets.length - 1] > prev.t;
        hist.points.push({ t: d.now, req: point.req, err: point.err, gap: !prev || d.now - prev.t > 5000 || reset });
      }
      hist.last = { now: d.now, requests: u.requests, errors: u.errors };
      const cutoff = d.now - WINDOW_MS;
      while (hist.points.length && hist.points[0].t < cutoff) hist.points.shift();
      while (hist.resets.length && hist.resets[0] < cutoff) hist.resets.shift();
    }
    for (const name of [...history.keys()]) if (!seen.has(name)) history.delete(name);
    lastNow = d.now;
  }

  function chart(upstream, kind, hist, now) {
    const W = 300, H = 44, P = 3;
    const key = kind === "requests" ? "req" : "err";
    const points = hist ? hist.points : [];
    let peak = 0;
    for (const p of points) peak = Math.max(peak, p[key]);
    const x = (t) => (W * (t - (now - WINDOW_MS))) / WINDOW_MS;
    const y = (v) => H - P - ((H - 2 * P) * v) / (peak || 1);
    let d = "";
    points.forEach((p, i) => {
      d += (i === 0 || p.gap ? "M" : "L") + x(p.t).toFixed(1) + " " + y(p[key]).toFixed(1) + " ";
      const next = points[i + 1];
      if ((i === 0 || p.gap) && (!next || next.gap)) d += "h-2 "; // a lone point still shows
    });
    const box = svg("svg", {
      width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
      "data-chart": kind, "data-upstream": upstream, "data-points": points.length, "data-peak": peak,
      "aria-label": upstream + " " + kind + " per second, last 5 minutes",
    });
    box.appendChild(svg("line", { x1: 0, x2: W, y1: H - P, y2: H - P, stroke: "#dde1e6" }));
    for (const t of hist ? hist.resets : []) box.appendChild(svg("line", { class: "reset", x1: x(t), x2: x(t), y1: 0, y2: H }));
    box.appendChild(svg("path", { class: "line " + kind, d: d.trim() }));
    const latest = points.length ? points[points.length - 1] : null;
    const label = kind === "requests" ? "requests" : "5xx";
    let caption = label + " " + (latest ? rate(latest[key]) : "…") + " · peak " + rate(peak);
    if (kind === "errors" && latest && latest.req > 0) caption += " · " + ((100 * latest.err) / latest.req).toFixed(1) + "%";
    if (hist && hist.resets.length) caption += " · reset " + clock(hist.resets[hist.resets.length - 1]) + " (a worker exited)";
    return h("figure", { class: "chart" }, box, h("figcaption", null, caption));
  }

  function origin(o) {
    if (o.kind === "address") return h("span", { class: "muted" }, "address");
    return [o.kind === "service" ? "SRV " : "DNS ", h("span", { class: "mono" }, o.name), o.record ? h("span", { class: "why mono" }, o.record) : null];
  }

  function peerRow(u, p) {
    const health = HEALTHS.includes(p.health) ? p.health : "unchecked";
    return h("tr", { "data-upstream": u.name, "data-peer": p.address, "data-health": health },
      h("td", { class: "addr" }, p.address),
      h("td", null, origin(p.origin)),
      h("td", { class: "num", title: "priority " + p.priority }, p.weight, p.priority ? h("span", { class: "muted" }, " p" + p.priority) : null),
      h("td", null, h("span", { class: "badge h-" + health }, health), p.why ? h("span", { class: "why" }, p.why) : null),
      h("td", { class: "num" }, p.inFlight),
      h("td", { class: "num" }, p.failures),
      h("td", { class: "num" }, p.ejections),
      h("td", { class: "num" }, p.checks));
  }

  function upstreamCard(u, now) {
    const healthy = u.peers.filter((p) => p.health === "healthy").length;
    const hist = history.get(u.name);
    return h("section", { class: "card", "data-upstream-card": u.name },
      h("h3", null, u.name, h("span", { class: "muted" }, "  " + u.balancer + " · " + healthy + "/" + u.peers.length + " healthy · " + u.requests + " requests, " + u.errors + " 5xx")),
      h("div", { class: "muted" }, "servers: ", h("span", { class: "mono" }, u.servers.join(", "))),
      u.missing.length ? h("ul", { class: "missing" }, u.missing.map((m) => h("li", null, m))) : null,
      h("div", { class: "charts" }, chart(u.name, "requests", hist, now), chart(u.name, "errors", hist, now)),
      u.peers.length === 0 ? h("p", { class: "err" }, "no peers") :
        h("table", null,
          h("thead", null, h("tr", null, ["address", "origin", "weight", "health", "in flight", "failures", "ejections", "checks"].map((c, i) => h("th", { class: i > 1 && i !== 3 ? "num" : null }, c)))),
          h("tbody", null, u.peers.map((p) => peerRow(u, p)))));
  }

  function dnsRow(n) {
    return h("tr", { "data-dns-name": n.name, "data-dns-type": n.type, "data-stale": n.stale ? "true" : "false" },
      h("td", { class: "mono" }, n.name),
      h("td", null, n.type),
      h("td", { class: "mono" }, n.records.length ? n.records.map((r, i) => [i ? h("br") : null, r]) : h("span", { class: "muted" }, "none")),
      h("td", { class: "num" }, h("span", { "data-expires": n.expiresAt }, ""), h("div", { class: "muted" }, "ttl " + n.ttl + "s")),
      h("td", null, n.server ? h("span", { class: "mono" }, n.server) : "—", n.transport ? h("div", { class: "muted" }, n.transport) : null),
      h("td", null, n.lastLookup ? clock(n.lastLookup) : "never", h("div", { class: "muted" }, n.lastChange ? "changed " + clock(n.lastChange) : "never learned")),
      h("td", null, n.stale ? h("div", { class: "stale" }, "stale: serving last known records") : null,
        n.lastError ? h("div", { class: "err" }, n.lastError) : n.stale ? null : h("span", { class: "muted" }, "ok")));
  }

  function generationCard(g) {
    const reported = new Set(g.reported.map((w) => w.pid));
    return h("section", { class: "card", "data-generation": g.number },
      h("h3", null, "generation " + g.number, h("span", { class: "muted" }, "  " + g.state + " · " + g.reported.length + "/" + g.workers + " workers reported")),
      h("table", null,
        h("thead", null, h("tr", null, ["pid", "slot", "uptime", "connections", "in flight", "requests", "rss"].map((c, i) => h("th", { class: i > 0 ? "num" : null }, c)))),
        h("tbody", null,
          g.reported.map((w) => h("tr", { "data-pid": w.pid },
            h("td", { class: "mono" }, w.pid), h("td", { class: "num" }, w.slot), h("td", { class: "num" }, duration(w.uptimeS)),
            h("td", { class: "num" }, w.connections), h("td", { class: "num" }, w.inFlight), h("td", { class: "num" }, w.requests),
            h("td", { class: "num" }, bytes(w.rssBytes)))),
          g.pids.filter((pid) => !reported.has(pid)).map((pid) => h("tr", { "data-pid": pid },
            h("td", { class: "mono" }, pid), h("td", { class: "muted", colspan: 6 }, "did not answer (busy or exiting)"))))));
  }

  function render() {
    const d = doc;
    const p = d.portico;
    $("meta").replaceChildren(
      "v" + p.version + " · node " + p.node + " · master pid " + p.pid + " · up " + duration(p.uptimeS) + " · instance " + p.instanceId);
    $("config").replaceChildren(
      h("span", { class: "mono" }, d.config.file), "  sha256 ",
      h("span", { class: "mono", title: d.config.sha256 }, String(d.config.sha256).slice(0, 12)),
      "  loaded " + clock(d.config.loadedAt));
    $("upstreams").replaceChildren(...(d.upstreams.length ? d.upstreams.map((u) => upstreamCard(u, d.now)) : [h("p", { class: "muted" }, "no upstreams")]));
    $("dns").replaceChildren(d.dns.names.length
      ? h("table", null,
          h("thead", null, h("tr", null, ["name", "type", "records", "ttl left", "server", "last lookup", "state"].map((c) => h("th", { class: c === "ttl left" ? "num" : null }, c)))),
          h("tbody", null, d.dns.names.map(dnsRow)))
      : h("p", { class: "muted" }, "no DNS names followed (every server is an address)"));
    $("generations").replaceChildren(...d.generations.map(generationCard));
    tick();
  }

  // Every second: the TTL countdowns and the banner's age, between polls too.
  function tick() {
    const now = serverNow();
    for (const el of document.querySelectorAll("[data-expires]")) {
      const left = (Number(el.getAttribute("data-expires")) - now) / 1000;
      el.textContent = left >= 0 ? duration(Math.ceil(left)) : "expired " + duration(-left) + " ago";
      el.className = left >= 0 ? "" : "expired";
    }
    const banner = $("banner");
    if (!doc) {
      banner.setAttribute("data-state", lastError ? "error" : "loading");
      banner.textContent = lastError ? "status fetch failed: " + lastError : "loading status…";
      return;
    }
    const age = duration((performance.now() - received) / 1000);
    banner.setAttribute("data-state", lastError ? "error" : "ok");
    banner.textContent = lastError
      ? "status fetch failed: " + lastError + " — showing data from " + clock(doc.now) + " (" + age + " ago)"
      : "updated " + clock(doc.now) + " (" + age + " ago) · refreshing every second";
  }

  async function poll() {
    const started = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5000);
    try {
      const res = await fetch("status", { cache: "no-store", signal: abort.signal, headers: { accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status + (res.status === 401 ? " (log in with the admin token as the password)" : ""));
      const next = await res.json();
      if (!next || !Array.isArray(next.upstreams) || !next.dns || !Array.isArray(next.generations)) throw new Error("not a status document");
      record(next);
      doc = next;
      received = performance.now();
      lastError = "";
      render();
    } catch (err) {
      lastError = err && err.name === "AbortError" ? "timed out after 5s" : String((err && err.message) || err);
      tick();
    } finally {
      clearTimeout(timer);
      setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  setInterval(tick, 1000);
  poll();
})();
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

let page: string | undefined;

/** The status page's HTML (built once). */
export function statusPageHtml(): string {
  page ??= `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src ${sha256(SCRIPT)}; style-src ${sha256(STYLE)}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'">
<title>Portico status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header><h1>Portico</h1><span class="meta" id="meta"></span><span class="meta" id="config"></span></header>
<div id="banner" data-state="loading">loading status…</div>
<main>
<h2>Upstreams</h2><div id="upstreams"></div>
<h2>DNS</h2><div class="card" id="dns"></div>
<h2>Generations</h2><div id="generations"></div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
  return page;
}
