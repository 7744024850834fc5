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

/** DNS query times, seconds: from 0.5 ms to the longest timeout. */
const DNS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Distinct TLS error reasons kept as labels; more count as `other`. */
const MAX_TLS_REASONS = 32;

type Labels = Record<string, string>;

/**
 * A counter child counted in a plain number on the request path and written into its
 * prom-client Counter when scraped (prom-client's own child hashes its labels on every inc).
 */
export class CountedChild {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(): void {
    this.value++;
  }
}

/**
 * A histogram child whose observations are bucketed into a plain array on the request path
 * and written into its prom-client Histogram when scraped. prom-client's own observe hashes
 * the labels and indexes its buckets by the bound as a string key, converting the float on
 * every call: with two observations per request that was 2.4% of a worker's CPU under load
 * (bench/RESULTS.md). prom-client still does everything else: cumulative buckets, +Inf, sum,
 * count, the text format and the master's aggregation.
 */
export class BucketedChild {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    if (i < bounds.length) (this.counts as number[])[i]++;
    this.sum += value;
    this.count++;
  }

  /** The child as prom-client keeps it (`bucketValues` by bound, not cumulative). */
  values(): { labels: Labels; bucketValues: Record<number, number>; sum: number; count: number } | undefined {
    if (this.count === 0) return undefined;
    const bucketValues: Record<number, number> = {};
    this.bounds.forEach((bound, i) => {
      bucketValues[bound] = this.counts[i] ?? 0;
    });
    return { labels: this.labels, bucketValues, sum: this.sum, count: this.count };
  }
}

/** A Counter whose children are CountedChild: `child(labels)` gives the one child of those labels. */
function countedCounter(registry: Registry, config: { name: string; help: string; labelNames: string[] }) {
  const children = new Map<string, CountedChild>();
  const counter = new Counter({
    ...config,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of children.values()) if (c.value > 0) this.inc(c.labels, c.value);
    },
  });
  const child = (labels: Labels): CountedChild => {
    const key = JSON.stringify(labels);
    let found = children.get(key);
    if (!found) {
      found = new CountedChild(labels);
      children.set(key, found);
    }
    return found;
  };
  return { counter, child };
}

/** A Histogram whose children are BucketedChild (see there). */
function bucketedHistogram(
  registry: Registry,
  config: { name: string; help: string; labelNames: string[]; buckets: number[] },
) {
  const children = new Map<string, BucketedChild>();
  const histogram = new Histogram({
    ...config,
    registers: [registry],
    collect() {
      // prom-client exports Object.values(hashMap); the keys only matter to its own observe,
      // which is never called on this histogram.
      const hashMap: Record<string, unknown> = {};
      let i = 0;
      for (const c of children.values()) {
        const values = c.values();
        if (values) hashMap[`c${i++}`] = values;
      }
      (this as unknown as { hashMap: Record<string, unknown> }).hashMap = hashMap;
    },
  });
  if (typeof (histogram as unknown as { hashMap?: unknown }).hashMap !== "object")
    throw new Error("prom-client's Histogram no longer keeps `hashMap`: BucketedChild needs updating");
  const child = (labels: Labels): BucketedChild => {
    const key = JSON.stringify(labels);
    let found = children.get(key);
    if (!found) {
      found = new BucketedChild(labels, config.buckets);
      children.set(key, found);
    }
    return found;
  };
  return { histogram, child };
}

/** The metric children one route writes to, bound once. */
export interface RouteMetrics {
  byClass: CountedChild[];
  duration: BucketedChild;
}

/** A worker's metrics. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests = countedCounter(this.registry, {
    name: "portico_requests_total",
    help: "Requests answered, by server, route, upstream and status class.",
    labelNames: ["server", "route", "upstream", "status_class"],
  });
  private readonly duration = bucketedHistogram(this.registry, {
    name: "portico_request_duration_seconds",
    help: "From a request's arrival to the end of its response, by server and upstream.",
    labelNames: ["server", "upstream"],
    buckets: BUCKETS,
  });
  private readonly upstreamHeader = bucketedHistogram(this.registry, {
    name: "portico_upstream_header_seconds",
    help: "From sending a request upstream to its response header, by upstream.",
    labelNames: ["upstream"],
    buckets: BUCKETS,
  });
  private readonly upstreamConnect = new Histogram({
    name: "portico_upstream_connect_seconds",
    help: "Time to open a connection to a peer (TCP connect and TLS handshake), by upstream.",
    labelNames: ["upstream"],
    buckets: BUCKETS,
    registers: [this.registry],
  });
  private readonly tlsHandshakes = new Counter({
    name: "portico_tls_handshakes_total",
    help: "TLS handshakes with clients, by result (ok, error).",
    labelNames: ["result"],
    registers: [this.registry],
  });
  private readonly tlsErrors = new Counter({
    name: "portico_tls_handshake_errors_total",
    help: "Failed TLS handshakes with clients, by reason (the OpenSSL or Node error code, lower case).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly tlsOk = this.tlsHandshakes.labels("ok");
  private readonly tlsFailed = this.tlsHandshakes.labels("error");
  /** Bounded: reasons past this many distinct ones count as `other`. */
  private readonly tlsReasons = new Set<string>();
  /** Retries sent to another peer, and retries the retry budget refused, by upstream. */
  readonly retries = new Counter({
    name: "portico_retries_total",
    help: "Requests sent to another peer after a failure, by upstream and outcome (sent, budget_exhausted).",
    labelNames: ["upstream", "outcome"],
    registers: [this.registry],
  });
  private readonly routes = new WeakMap<Route, RouteMetrics>();
  /** Bound children of the upstream header histogram, by upstream name (from the config: bounded). */
  private readonly headerChildren = new Map<string, BucketedChild>();
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

  /** A function to tell how long a new connection to a peer of `upstream` took, seconds. */
  connectTimer(upstream: string): (seconds: number) => void {
    const child = this.upstreamConnect.labels(upstream);
    return (seconds) => child.observe(seconds);
  }

  /** A client's TLS handshake succeeded. */
  tlsHandshake(): void {
    this.tlsOk.inc();
  }

  /** A client's TLS handshake failed with `err` (its code becomes the reason: a bounded set). */
  tlsHandshakeFailed(err: Error & { code?: string }): void {
    this.tlsFailed.inc();
    let reason = (err.code ?? "unknown")
      .toLowerCase()
      .replace(/^err_ssl_|^err_/, "")
      .replace(/[^a-z0-9_]/g, "_")
      .slice(0, 48);
    if (!this.tlsReasons.has(reason)) {
      if (this.tlsReasons.size >= MAX_TLS_REASONS) reason = "other";
      else this.tlsReasons.add(reason);
    }
    this.tlsErrors.labels(reason).inc();
  }

  /**
   * Requests answered since the worker started, in all and by upstream (with those answered
   * 5xx): read from the request counter, for `/status`.
   */
  async traffic(): Promise<{
    total: number;
    upstreams: Record<string, { requests: number; errors: number }>;
  }> {
    const { values } = await this.requests.counter.get();
    let total = 0;
    const upstreams: Record<string, { requests: number; errors: number }> = {};
    for (const { labels, value } of values) {
      total += value;
      const name = String(labels.upstream ?? "");
      if (name === "") continue;
      const entry = upstreams[name] ?? { requests: 0, errors: 0 };
      entry.requests += value;
      if (labels.status_class === "5xx") entry.errors += value;
      upstreams[name] = entry;
    }
    return { total, upstreams };
  }

  /** An upstream's time to its response header. */
  upstreamHeaderSeconds(upstream: string, seconds: number): void {
    let child = this.headerChildren.get(upstream);
    if (!child) {
      child = this.upstreamHeader.child({ upstream });
      this.headerChildren.set(upstream, child);
    }
    child.observe(seconds);
  }

  /**
   * Gauges read when scraped (nothing on the request path): client connections, requests in
   * flight and WebSocket tunnels open in this worker, and connections refused over
   * limits.max_connections.
   */
  watchConnections(
    read: () => { open: number; inFlight: number; tunnels: number; refused: number },
    bytes: () => { read: number; written: number },
    draining: () => Record<string, number>,
  ): void {
    const counter = (name: string, help: string, pick: (v: ReturnType<typeof bytes>) => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(pick(bytes()));
        },
      });
    counter("portico_client_received_bytes_total", "Bytes read from client connections.", (v) => v.read);
    counter("portico_client_sent_bytes_total", "Bytes written to client connections.", (v) => v.written);
    new Gauge({
      name: "portico_upstream_peers",
      help: "Peers by upstream and state (healthy, unhealthy, ejected, draining).",
      labelNames: ["upstream", "state"],
      // The master sets the other states; draining ones are known to workers (max over them).
      aggregator: "max",
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [upstream, n] of Object.entries(draining())) this.labels(upstream, "draining").set(n);
      },
    });
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
      byClass: CLASSES.map((c) => this.requests.child({ server, route, upstream, status_class: c })),
      duration: this.duration.child({ server, upstream }),
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
  readonly healthChecks = new Counter({
    name: "portico_health_checks_total",
    help: "Active health checks, by upstream and result (pass, fail).",
    labelNames: ["upstream", "result"],
    registers: [this.registry],
  });
  readonly dnsQueries = new Counter({
    name: "portico_dns_queries_total",
    help: "DNS queries of upstream discovery, by nameserver, transport and rcode (or TIMEOUT, NETWORK, MALFORMED).",
    labelNames: ["nameserver", "transport", "rcode"],
    registers: [this.registry],
  });
  readonly dnsDuration = new Histogram({
    name: "portico_dns_query_duration_seconds",
    help: "Time of a DNS query of upstream discovery until its answer or failure, by nameserver and transport.",
    labelNames: ["nameserver", "transport"],
    buckets: DNS_BUCKETS,
    registers: [this.registry],
  });
  readonly dnsCache = new Counter({
    name: "portico_dns_cache_lookups_total",
    help: "Cache lookups of upstream discovery's resolver, by result (hit, miss, stale: an expired answer served because every nameserver failed).",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly peerSetChanges = new Counter({
    name: "portico_peer_set_changes_total",
    help: "Changes of an upstream's peers by DNS (peers added or removed), by upstream.",
    labelNames: ["upstream"],
    registers: [this.registry],
  });

  /**
   * Gauges and counters read when scraped: peers by upstream and state (draining ones come
   * from the workers), the serving generation, rate-limit decisions by limit.
   */
  watch(read: {
    peers: () => Array<{ upstream: string; state: string; count: number }>;
    generation: () => number;
    rateLimits: () => Record<string, { allowed: number; limited: number }>;
  }): void {
    new Gauge({
      name: "portico_upstream_peers",
      help: "Peers by upstream and state (healthy, unhealthy, ejected, draining).",
      labelNames: ["upstream", "state"],
      aggregator: "max",
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { upstream, state, count } of read.peers()) this.labels(upstream, state).set(count);
      },
    });
    new Gauge({
      name: "portico_generation",
      help: "The number of the generation of workers that serves (1 at start, +1 per reload).",
      aggregator: "max",
      registers: [this.registry],
      collect() {
        this.set(read.generation());
      },
    });
    new Counter({
      name: "portico_rate_limit_requests_total",
      help: "Requests under a rate limit, by limit (the route's id) and decision (allowed, limited).",
      labelNames: ["limit", "decision"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [limit, c] of Object.entries(read.rateLimits())) {
          this.labels(limit, "allowed").inc(c.allowed);
          this.labels(limit, "limited").inc(c.limited);
        }
      },
    });
  }
}
