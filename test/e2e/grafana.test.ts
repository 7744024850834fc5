/**
 * End-to-end: the Grafana dashboard shipped in conf/grafana/portico.json queries only
 * metrics that a real Portico exports. Every PromQL expression of the dashboard (panel
 * targets, rows' nested panels included, template variables and annotations) is read for
 * the `portico_*` names it uses, and each must be a `# TYPE` line of a real scrape of the
 * admin listener (2 workers and the master summed); a histogram must be queried through its
 * `_bucket`, `_sum` or `_count` series, and `_bucket` only of a histogram.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

const DASHBOARD = fileURLToPath(new URL("../../conf/grafana/portico.json", import.meta.url));

/** Fewest distinct metrics the dashboard must query: an emptied or gutted dashboard fails. */
const MIN_METRICS = 15;

/** The parts of a Grafana panel this test reads. */
interface Panel {
  id?: unknown;
  type?: string;
  title?: string;
  targets?: Array<{ expr?: unknown }>;
  /** A collapsed row keeps its panels here. */
  panels?: Panel[];
}

/** The parts of a Grafana dashboard this test reads. */
interface Dashboard {
  panels?: Panel[];
  templating?: { list?: Array<{ name?: string; query?: unknown; definition?: unknown }> };
  annotations?: { list?: Array<{ name?: string; expr?: unknown }> };
}

/** One PromQL expression and where in the dashboard it is. */
interface Query {
  where: string;
  expr: string;
}

/** A metric name as a query writes it, and the series suffix it was written with. */
interface Reference {
  base: string;
  suffix: "" | "_bucket" | "_sum" | "_count";
  where: string;
}

/** Every panel, rows' nested panels included, depth first. */
function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}

/** Every PromQL expression of the dashboard: panel targets, template variable queries, annotations. */
function queries(d: Dashboard): Query[] {
  const found: Query[] = [];
  const add = (where: string, expr: unknown) => {
    if (typeof expr === "string" && expr.trim() !== "") found.push({ where, expr });
  };
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) add(`panel ${String(p.id)} "${p.title ?? ""}"`, t.expr);
  }
  for (const v of d.templating?.list ?? []) {
    // A variable's query is a string in old dashboards, `{ query }` in new ones; `definition` mirrors it.
    const q = v.query;
    add(
      `variable $${v.name ?? ""}`,
      typeof q === "object" && q !== null ? (q as { query?: unknown }).query : q,
    );
    add(`variable $${v.name ?? ""}`, v.definition);
  }
  for (const a of d.annotations?.list ?? []) add(`annotation "${a.name ?? ""}"`, a.expr);
  return found;
}

/** The `portico_*` metric names an expression uses (string literals, such as label values, skipped). */
function references(q: Query): Reference[] {
  const code = q.expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return [...code.matchAll(/(?<![\w:])portico_\w*/g)].map(([name]) => {
    const m = /^(.*?)(_bucket|_sum|_count)$/.exec(name);
    return m
      ? { base: m[1] as string, suffix: m[2] as Reference["suffix"], where: q.where }
      : { base: name, suffix: "", where: q.where };
  });
}

/** `name -> type` from the `# TYPE` lines of a Prometheus text scrape. */
function types(scrape: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm))
    map.set(name as string, type as string);
  return map;
}

/**
 * What is wrong with one reference against the scrape's types, or undefined. A name that is
 * itself a TYPE line is taken as written (a counter may end in `_count`); otherwise the suffix
 * is a histogram's (or a summary's) series, and the base name must be that kind.
 */
function problem(ref: Reference, scraped: Map<string, string>): string | undefined {
  const written = ref.base + ref.suffix;
  const asWritten = scraped.get(written);
  if (asWritten !== undefined) {
    return asWritten === "histogram" || asWritten === "summary"
      ? `${written} is a ${asWritten}: query its _bucket, _sum or _count series`
      : undefined;
  }
  const type = scraped.get(ref.base);
  if (type === undefined) return `${ref.base} is not in the scrape`;
  if (ref.suffix === "_bucket" && type !== "histogram")
    return `${written}: ${ref.base} is a ${type}, not a histogram`;
  if (ref.suffix !== "_bucket" && type !== "histogram" && type !== "summary") {
    return `${written}: ${ref.base} is a ${type}, which has no ${ref.suffix} series`;
  }
  return undefined;
}

const dashboardText = readFileSync(DASHBOARD, "utf8");

describe("Grafana dashboard", () => {
  it("parses, has panels with unique numeric ids, and queries at least 15 distinct metrics", () => {
    const d = JSON.parse(dashboardText) as Dashboard;
    const panels = allPanels(d.panels);
    expect(panels.filter((p) => p.type !== "row").length).toBeGreaterThan(0);
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const names = new Set(
      queries(d)
        .flatMap(references)
        .map((r) => r.base),
    );
    expect(names.size, `distinct metrics queried: ${[...names].sort().join(", ")}`).toBeGreaterThanOrEqual(
      MIN_METRICS,
    );
  });

  describe("against a real scrape", () => {
    let app: Backend;
    let portico: Portico | undefined;
    let scrape = "";

    beforeAll(async () => {
      app = await startBackend("app");
      // One upstream on a real backend, actively checked, and a rate-limited route: the
      // dashboard's rows each have something behind them.
      portico = await startPortico(`
workers: 2
admin: { listen: 127.0.0.1:0 }
upstreams:
  app:
    servers: [{ address: ${app.address} }]
    health: { path: /, interval: 200ms, rise: 1, fall: 1 }
servers:
  - listen: 127.0.0.1:0
    server_names: [site.test]
    routes:
      - exact: /limited
        upstream: app
        rate_limit: { rate: 100/s, burst: 10 }
      - exact: /fixed
        return: { status: 204 }
      - path: /
        upstream: app
`);
      const ready = await portico.waitForLine((l) => l.msg === "portico ready");
      const admin = `http://127.0.0.1:${(ready.admin as { port: number }).port}`;
      const host = { host: "site.test" };
      for (const path of ["/a", "/b", "/limited", "/limited", "/fixed", "/c"]) {
        await request(`${portico.url()}${path}`, { headers: host });
      }
      await request(`${portico.url()}/a`, { headers: { host: "nowhere.test" } });
      const res = await request(`${admin}/metrics`);
      expect(res.status).toBe(200);
      scrape = res.body.toString();
    });

    afterAll(async () => {
      await portico?.stop();
      await app?.close();
    });

    it("every metric the dashboard queries is a # TYPE line of the scrape, of the kind queried", () => {
      const scraped = types(scrape);
      expect(scraped.size).toBeGreaterThan(0);
      const byProblem = new Map<string, Set<string>>();
      const wrongNames = new Set<string>();
      for (const ref of queries(JSON.parse(dashboardText) as Dashboard).flatMap(references)) {
        const wrong = problem(ref, scraped);
        if (wrong === undefined) continue;
        wrongNames.add(ref.base);
        const places = byProblem.get(wrong) ?? new Set<string>();
        places.add(ref.where);
        byProblem.set(wrong, places);
      }
      const problems = [...byProblem].map(([wrong, places]) => `${wrong} (${[...places].join("; ")})`).sort();
      expect(
        problems,
        `the dashboard queries metrics the scrape lacks or has of another kind: ${[...wrongNames].sort().join(", ")}`,
      ).toEqual([]);
    });
  });
});
