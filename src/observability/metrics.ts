/**
 * Prometheus metrics (prom-client). Each worker keeps its own registry and sends it to the
 * master as JSON when asked (ipc.ts `metrics-request`); the master's admin listener sums
 * them with its own (prom-client's `AggregatorRegistry.aggregate`), so one scrape covers
 * every worker of every live generation. Labels are bounded: server names and route ids
 * from the config, upstream names, status classes; never paths or client addresses.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Route, Server } from "../config/types.js";

/** Request and upstream timings, seconds: from 1 ms to a minute. */
/** One registry as JSON (what a worker sends). */
export type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** The metric children one route writes to, bound once (a labelled lookup costs a hash per call). */
export interface RouteMetrics {
  byClass: ReturnType<Counter<string>["labels"]>[];
  duration: ReturnType<Histogram<string>["labels"]>;
}

/** A worker's metrics. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "portico_requests_total",
    help: "Requests answered, by server, route, upstream and status class.",
    labelNames: ["server", "route", "upstream", "status_class"],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "portico_request_duration_seconds",
    help: "From a request's arrival to the end of its response, by server and upstream.",
    labelNames: ["server", "upstream"],
    buckets: BUCKETS,
    registers: [this.registry],
  });
  private readonly upstreamHeader = new Histogram({
    name: "portico_upstream_header_seconds",
    help: "From sending a request upstream to its response header, by upstream.",
    labelNames: ["upstream"],
    buckets: BUCKETS,
    registers: [this.registry],
  });
  /** Retries sent to another peer, and retries the retry budget refused, by upstream. */
  readonly retries = new Counter({
    name: "portico_retries_total",
    help: "Requests sent to another peer after a failure, by upstream and outcome (sent, budget_exhausted).",
    labelNames: ["upstream", "outcome"],
    registers: [this.registry],
  });
  private readonly routes = new WeakMap<Route, RouteMetrics>();
  /** Bound children of the upstream header histogram, by upstream name (from the config: bounded). */
  private readonly headerChildren = new Map<string, ReturnType<Histogram<string>["labels"]>>();
  /** Requests answered before a route was chosen (framing, limits, no route). */
  readonly unrouted: RouteMetrics;

  constructor() {
    this.unrouted = this.bind("", "", "");
  }

  /** The children of `route` on `server`, bound on first use. */
  forRoute(server: Server, route: Route): RouteMetrics {
    let bound = this.routes.get(route);
    if (!bound) {
      const upstream = route.action.kind === "upstream" ? route.action.upstream : "";
      bound = this.bind(server.label, route.id, upstream);
      this.routes.set(route, bound);
    }
    return bound;
  }

  /** An upstream's time to its response header. */
  upstreamHeaderSeconds(upstream: string, seconds: number): void {
    let child = this.headerChildren.get(upstream);
    if (!child) {
      child = this.upstreamHeader.labels(upstream);
      this.headerChildren.set(upstream, child);
    }
    child.observe(seconds);
  }

  /**
   * Gauges read when scraped (nothing on the request path): client connections, requests in
   * flight and WebSocket tunnels open in this worker, and connections refused over
   * limits.max_connections.
   */
  watchConnections(read: () => { open: number; inFlight: number; tunnels: number; refused: number }): void {
    const gauge = (name: string, help: string, pick: (v: ReturnType<typeof read>) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(pick(read()));
        },
      });
    gauge("portico_client_connections", "Client connections open.", (v) => v.open);
    gauge("portico_requests_in_flight", "Requests whose response is not over yet.", (v) => v.inFlight);
    gauge("portico_tunnels_open", "WebSocket tunnels open.", (v) => v.tunnels);
    gauge(
      "portico_connections_refused",
      "Client connections refused since the worker started (limits.max_connections).",
      (v) => v.refused,
    );
  }

  /** The registry as JSON, for the master. */
  snapshot(): Promise<MetricsJson> {
    return this.registry.getMetricsAsJSON();
  }

  private bind(server: string, route: string, upstream: string): RouteMetrics {
    return {
      byClass: CLASSES.map((c) => this.requests.labels(server, route, upstream, c)),
      duration: this.duration.labels(server, upstream),
    };
  }
}

/** Count one answered request. */
export function observeRequest(m: RouteMetrics, status: number, seconds: number): void {
  const cls = Math.min(4, Math.max(0, Math.floor(status / 100) - 1));
  m.byClass[cls]?.inc();
  m.duration.observe(seconds);
}

/** The text of one scrape: the workers' registries summed, with the master's own. */
export async function aggregateMetrics(workers: MetricsJson[], master: Registry): Promise<string> {
  const all = [...workers, await master.getMetricsAsJSON()];
  return AggregatorRegistry.aggregate(all).metrics();
}

/** The master's own metrics. */
export class MasterMetrics {
  readonly registry = new Registry();
  readonly reloads = new Counter({
    name: "portico_reloads_total",
    help: "Reloads, by result (ok, failed).",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly workerRestarts = new Counter({
    name: "portico_worker_restarts_total",
    help: "Workers the master started again after they died.",
    registers: [this.registry],
  });
  readonly scrapeWorkers = new Counter({
    name: "portico_metrics_worker_timeouts_total",
    help: "Workers that did not send their metrics in time for a scrape.",
    registers: [this.registry],
  });
}
