// The request path's metric children against prom-client's own: the same observations give
// the same scrape (buckets, +Inf, sum, count), so the fast path changes nothing but its cost.
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { Route, Server } from "../../src/config/types.js";
import { observeRequest, WorkerMetrics } from "../../src/observability/metrics.js";

describe("WorkerMetrics' request-path children", () => {
  it("scrape exactly as prom-client's own Counter and Histogram would", async () => {
    const metrics = new WorkerMetrics();
    const reference = new Registry();
    const requests = new Counter({
      name: "portico_requests_total",
      help: "h",
      labelNames: ["server", "route", "upstream", "status_class"],
      registers: [reference],
    });
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    const duration = new Histogram({
      name: "portico_request_duration_seconds",
      help: "h",
      labelNames: ["server", "upstream"],
      buckets,
      registers: [reference],
    });
    const server = { label: "site" } as Server;
    const route = {
      id: "servers[0].routes[0]",
      action: { kind: "upstream", upstream: "app" },
    } as unknown as Route;
    const bound = metrics.forRoute(server, route);
    // Values on every bound, between bounds, below the first and past the last.
    const values = [0, 0.001, 0.0011, 0.005, 0.3, 1, 59.9, 60, 61, 1000, 0.0000001];
    const statuses = [200, 204, 301, 404, 502, 503, 101, 200, 500, 200, 200];
    values.forEach((v, i) => {
      const status = statuses[i] as number;
      observeRequest(bound, status, v);
      requests.labels("site", "servers[0].routes[0]", "app", `${Math.floor(status / 100)}xx`).inc();
      duration.labels("site", "app").observe(v);
    });
    const ours = await metrics.registry.getSingleMetric("portico_request_duration_seconds")?.get();
    const theirs = await duration.get();
    expect(ours?.values).toEqual(theirs.values);
    const count = (m: Awaited<ReturnType<Counter["get"]>> | undefined) =>
      [...(m?.values ?? [])].map((v) => `${JSON.stringify(v.labels)} ${v.value}`).sort();
    expect(count((await metrics.registry.getSingleMetric("portico_requests_total")?.get()) as never)).toEqual(
      count(await requests.get()),
    );
    expect((await metrics.traffic()).upstreams.app).toEqual({ requests: values.length, errors: 3 });
  });
});
