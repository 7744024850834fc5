/**
 * The master process: validates the config, runs the workers by generations (node:cluster
 * shares the listen sockets), reloads on SIGHUP without dropping a request, replaces crashed
 * workers, reopens log files on SIGUSR2, and stops gracefully on SIGTERM, SIGINT or SIGQUIT
 * (a second signal stops at once). It never handles a proxied request.
 */
import cluster from "node:cluster";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatIssue, loadConfig } from "../config/load.js";
import type { Config, ConfigIssue, Upstream } from "../config/types.js";
import { type Deferred, deferred } from "../deferred.js";
import type {
  BoundAddress,
  ListenErrorMessage,
  PeerEjectedMessage,
  RateLimitAnswerMessage,
  RateLimitCheckMessage,
  RateLimitCountsMessage,
} from "../ipc.js";
import { createLogger, type Logger, reopenLogFiles } from "../observability/logger.js";
import { aggregateMetrics, MasterMetrics, type MetricsJson } from "../observability/metrics.js";
import type {
  GenerationStatus,
  PeerHealth,
  PeerStatus,
  StatusDocument,
  UpstreamStatus,
  WorkerPeerStatus,
  WorkerStatus,
} from "../observability/status.js";
import { RateLimitService } from "../ratelimit/service.js";
import { prepareTls, type TlsMaterial } from "../tls/material.js";
import { TicketKeys } from "../tls/ticket-keys.js";
import { Discovery } from "../upstream/discovery.js";
import { HealthChecker } from "../upstream/health.js";
import { type PeerSpec, type PeerTable, serverLabel, upstreamPeers } from "../upstream/peer-table.js";
import { porticoVersion } from "../version.js";
import { type Admin, type ReloadResult, startAdmin } from "./admin.js";
import { Generation, listenHint } from "./generation.js";
import { removePidFile, writePidFile } from "./pid-file.js";

/** Longer than any worker's own shutdown timer: past this the master kills what is left. */
const KILL_GRACE_MS = 5_000;
/** How long a start or reload waits for new upstream names to resolve before forking anyway. */
const DNS_SETTLE_MS = 3_000;
/** How long a start or reload waits for the first health check of new peers. */
const HEALTH_SETTLE_MS = 3_000;

/** The SHA-256 of a config file as read now, and when. */
function configIdentity(file: string): { sha256: string; loadedAt: number } {
  let sha256 = "";
  try {
    sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    // Unreadable just after it was loaded: the status shows no hash rather than fail.
  }
  return { sha256, loadedAt: Date.now() };
}

/** How a new generation's start ended. */
type StartOutcome = { ok: true; bound: BoundAddress[] } | { ok: false; reason: string };

/** Start `generation` and wait until all its workers listen, one fails, or `timeoutMs` passes. */
function waitStarted(generation: Generation, timeoutMs: number): Promise<StartOutcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => done({ ok: false, reason: `not every worker was listening after ${timeoutMs} ms` }),
      timeoutMs,
    );
    const onReady = (bound: BoundAddress[]) => done({ ok: true, bound });
    const onFailed = (reason: string) => done({ ok: false, reason });
    const done = (outcome: StartOutcome) => {
      clearTimeout(timer);
      generation.off("ready", onReady);
      generation.off("start-failed", onFailed);
      resolve(outcome);
    };
    generation.once("ready", onReady);
    generation.once("start-failed", onFailed);
    generation.start();
  });
}

/** The running master. */
class Master {
  private config: Config;
  private log: Logger;
  private readonly configFile: string;
  private readonly instanceId = `portico-${randomBytes(4).toString("hex")}`;
  private current?: Generation;
  /** A generation being started (first start or reload), not serving yet. */
  private starting?: Generation;
  /** Generations draining after a reload. */
  private readonly retiring = new Set<Generation>();
  private nextNumber = 1;
  private reloading = false;
  /** A reload asked for while another ran (or before the first start finished). */
  private queued?: Deferred<ReloadResult>;
  /** The config file the serving generation was loaded from: its hash and when. */
  private loaded: { sha256: string; loadedAt: number };
  private stopping = false;
  private failedReloads = 0;
  private resolveExit?: (code: number) => void;
  /** DNS discovery of upstream peers: once per proxy instance, pushed to every worker. */
  private readonly discovery: Discovery;
  /** Active health checks of upstream peers: once per instance, the verdicts pushed to every worker. */
  private readonly health: HealthChecker;
  /** Passive ejections the workers reported, by `upstream peer pid` (the status page reads them). */
  private readonly ejections = new Map<
    string,
    { until: number; reason: string; upstream: string; peer: string }
  >();
  /** The configs discovery and health checks follow (live generations, and one starting). */
  private trackedConfigs: Config[] = [];
  /** TLS session ticket key shared by every worker of every generation. */
  private readonly ticketKeys = new TicketKeys();
  /** Rate-limit buckets, Redis stores and counters: one per instance, outliving reloads. */
  readonly rateLimits: RateLimitService;
  private readonly metrics = new MasterMetrics();
  /** The admin listener, and the settings it was opened with. */
  private admin?: Admin;
  private adminSettings = "";
  private scrapes = 0;

  constructor(configFile: string, config: Config) {
    this.configFile = configFile;
    this.config = config;
    this.loaded = configIdentity(configFile);
    this.log = createLogger(config.log.error, config.log.level, { role: "master" }, config.log.format);
    const m = this.metrics;
    this.discovery = new Discovery(config.dns, this.log, {
      query: (server, transport, rcode, ms) => {
        m.dnsQueries.labels(server, transport, rcode).inc();
        m.dnsDuration.labels(server, transport).observe(ms / 1000);
      },
      cache: (result) => m.dnsCache.labels(result).inc(),
    });
    this.health = new HealthChecker(this.log);
    this.rateLimits = new RateLimitService(this.log);
    this.discovery.on("upstream-change", (upstream: string) => m.peerSetChanges.labels(upstream).inc());
    this.health.on("checked", (upstream: string, passed: boolean) =>
      m.healthChecks.labels(upstream, passed ? "pass" : "fail").inc(),
    );
    m.watch({
      peers: () => this.peerCounts(),
      generation: () => this.current?.number ?? 0,
      rateLimits: () => this.rateLimits.stats(),
    });
    this.discovery.on("change", () => {
      // New or departed peers are checked (or forgotten) before workers hear of them.
      this.health.update(this.trackedConfigs, this.discovery.table);
      this.broadcastPeers();
    });
    this.health.on("change", () => this.broadcastPeers());
    this.ticketKeys.on("rotated", (key: string) => {
      for (const generation of [...this.generations(), ...(this.starting ? [this.starting] : [])]) {
        generation.broadcast({ type: "ticket-key", key });
      }
    });
  }

  /** Ejections still running, the longest per upstream and peer (for a new worker). */
  private runningEjections(): Record<string, Record<string, number>> {
    const now = Date.now();
    const out: Record<string, Record<string, number>> = {};
    for (const [key, { until, upstream, peer }] of this.ejections) {
      if (until <= now) {
        this.ejections.delete(key);
        continue;
      }
      const byPeer = out[upstream] ?? {};
      byPeer[peer] = Math.max(byPeer[peer] ?? 0, until);
      out[upstream] = byPeer;
    }
    return out;
  }

  /** What workers route on: DNS's peers, with the peers health checks took out. */
  private peerTable(): PeerTable {
    return { ...this.discovery.table, down: this.health.down() };
  }

  private broadcastPeers(): void {
    const table = this.peerTable();
    for (const generation of [...this.generations(), ...(this.starting ? [this.starting] : [])]) {
      generation.broadcast({ type: "peers", table });
    }
  }

  /** Point discovery and health checks at `configs`. */
  private track(configs: Config[]): void {
    this.trackedConfigs = configs;
    this.discovery.setConfigs(configs);
    this.health.update(configs, this.discovery.table);
    this.rateLimits.setConfigs(configs);
  }

  /**
   * Read and check the certificates of `config` (making `tls: auto` ones): the material for
   * its workers, or undefined (every problem logged, and on first start printed) when a
   * certificate cannot be used.
   */
  private async loadTls(config: Config, firstStart: boolean): Promise<TlsMaterial | undefined> {
    const { material, issues, auto } = await prepareTls(config, { generate: true });
    for (const issue of issues) {
      const line = formatIssue(issue);
      if (firstStart) process.stderr.write(`${line}\n`);
      if (issue.severity === "error") this.log.error(line);
      else this.log.warn(line);
    }
    for (const note of auto) {
      this.log.warn(
        { server: note.server, file: note.file, created: note.created },
        `tls: auto: ${note.server} serves a self-signed development certificate (${note.created ? "made now" : "reused"}: ${note.file}); clients do not trust it; use real certificates in production`,
      );
    }
    return issues.some((i) => i.severity === "error") ? undefined : material;
  }

  /**
   * Point discovery at the configs of every live generation (plus `next`, about to start),
   * then give new names a moment to resolve so the new workers start with their peers.
   * DNS never blocks for longer than DNS_SETTLE_MS, and never fails a start or reload.
   */
  private async discover(next?: Config): Promise<void> {
    const configs = this.generations().map((g) => g.config);
    if (next) configs.push(next);
    this.track(configs);
    if (!(await this.discovery.settled(DNS_SETTLE_MS))) {
      this.log.warn(
        `DNS: some upstream names are still resolving after ${DNS_SETTLE_MS} ms; starting workers anyway (those upstreams answer 503 until they resolve)`,
      );
    }
    // checked_first peers get their first check before the workers start routing to them.
    await this.health.settled(HEALTH_SETTLE_MS);
  }

  /** Start the first generation; resolves with the exit code once the master stops. */
  run(): Promise<number> {
    // Workers accept from the shared listen socket themselves (nginx's model): with
    // round-robin the master would accept every connection and pass it to a worker over
    // IPC, which costs ~250 µs of CPU per connection and puts the master in the data path.
    // The policy is frozen by the first setupPrimary, so it is set just before.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: fileURLToPath(new URL("../worker/main.js", import.meta.url)) });
    this.log.info(
      { config: this.config.file, workers: this.config.workers, instanceId: this.instanceId },
      "portico starting",
    );
    const exited = new Promise<number>((resolve) => {
      this.resolveExit = resolve;
    });
    for (const signal of ["SIGTERM", "SIGINT", "SIGQUIT"] as const)
      process.on(signal, () => this.stop(signal));
    process.on("SIGHUP", () => void this.reload("SIGHUP"));
    process.on("SIGUSR2", () => this.reopenLogs());
    void this.startFirst();
    return exited;
  }

  private async startFirst(): Promise<void> {
    const tls = await this.loadTls(this.config, true);
    if (!tls) {
      process.stderr.write(`portico: a certificate in ${this.configFile} cannot be used; nothing started\n`);
      this.log.error("start failed: a certificate cannot be used (problems above)");
      this.exit(1);
      return;
    }
    this.ticketKeys.start();
    await this.discover(this.config);
    if (this.stopping) return;
    const generation = this.newGeneration(this.config, tls);
    const outcome = await this.startGeneration(generation, this.config.timeouts.workerStart);
    if (this.stopping) return;
    if (!outcome.ok) {
      process.stderr.write(`portico: ${outcome.reason}\n`);
      this.log.error({ generation: generation.number }, `start failed: ${outcome.reason}`);
      generation.kill();
      this.exit(1);
      return;
    }
    this.current = generation;
    await this.applyAdmin(this.config);
    try {
      writePidFile(this.config.pidFile, process.pid);
    } catch (err) {
      this.log.error(
        { pidFile: this.config.pidFile, err },
        "cannot write the pid file; portico reload/stop will not find this master",
      );
    }
    this.log.info(
      {
        generation: generation.number,
        workers: generation.pids(),
        listening: outcome.bound,
        pidFile: this.config.pidFile,
        admin: this.admin?.address,
      },
      "portico ready",
    );
    this.runQueued("reload");
  }

  private async startGeneration(generation: Generation, timeoutMs: number): Promise<StartOutcome> {
    this.starting = generation;
    try {
      return await waitStarted(generation, timeoutMs);
    } finally {
      this.starting = undefined;
    }
  }

  private newGeneration(config: Config, tls: TlsMaterial): Generation {
    const generation = new Generation(
      this.nextNumber++,
      config,
      this.instanceId,
      this.log,
      () => this.peerTable(),
      { material: tls, ticketKey: () => this.ticketKeys.current },
      () => this.runningEjections(),
    );
    generation.on("respawn", () => this.metrics.workerRestarts.inc());
    generation.on("peer-ejected", (msg: PeerEjectedMessage, pid: number | undefined) => {
      if (this.ejections.size > 10_000) this.ejections.clear(); // bounded: peers x workers
      this.ejections.set(`${msg.upstream} ${msg.peer} ${pid}`, {
        until: Date.now() + msg.ms,
        reason: msg.reason,
        upstream: msg.upstream,
        peer: msg.peer,
      });
      this.log.debug(
        { upstream: msg.upstream, peer: msg.peer, workerPid: pid, ms: msg.ms },
        "a worker ejected a peer",
      );
    });
    generation.on(
      "rate-limit-check",
      (msg: RateLimitCheckMessage, reply: (answer: RateLimitAnswerMessage) => void) => {
        try {
          this.rateLimits.handle(msg, reply);
        } catch (err) {
          // Unanswered checks are decided by the worker after its bound: never a failed request.
          this.log.error({ err }, "rate limits: a worker's check could not be decided");
        }
      },
    );
    generation.on("rate-limit-counts", (msg: RateLimitCountsMessage) =>
      this.rateLimits.addCounts(msg.counts),
    );
    generation.on("listen-error", (err: ListenErrorMessage) =>
      this.log.error(
        { generation: generation.number, listen: err.listen },
        `a respawned worker cannot listen on ${err.listen}: ${listenHint(err)}`,
      ),
    );
    return generation;
  }

  /**
   * Reload: validate the file; start the next generation with it; once all its workers
   * listen, drain the current one. Any failure keeps the current generation serving.
   * Resolves with the outcome (SIGHUP ignores it; `POST /reload` answers with it). A reload
   * asked for while one runs is queued: several coalesce into one, all told its outcome.
   */
  reload(trigger: string): Promise<ReloadResult> {
    if (this.stopping) return Promise.resolve({ ok: false, reason: "portico is stopping", errors: [] });
    if (this.reloading || !this.current) {
      this.queued ??= deferred<ReloadResult>();
      return this.queued.promise;
    }
    return this.reloadNow(trigger, this.current);
  }

  /** Run the queued reload, if any (after a reload or the first start). */
  private runQueued(trigger: string): void {
    const queued = this.queued;
    if (!queued) return;
    this.queued = undefined;
    void this.reload(`${trigger} (queued)`).then(queued.resolve);
  }

  private async reloadNow(trigger: string, current: Generation): Promise<ReloadResult> {
    this.reloading = true;
    const begun = performance.now();
    try {
      const { config, issues } = loadConfig(this.configFile);
      for (const issue of issues) {
        const line = formatIssue(issue);
        if (issue.severity === "error") this.log.error(line);
        else this.log.warn(line);
      }
      const warnings = issues.filter((i) => i.severity === "warning");
      if (!config) {
        return this.reloadFailed(
          current,
          `${this.configFile} is invalid (${issues.filter((i) => i.severity === "error").length} error(s))`,
          issues,
        );
      }
      // Certificates are read again on every reload: a renewed file is served from now on.
      const tls = await this.loadTls(config, false);
      if (!tls) return this.reloadFailed(current, "a certificate cannot be used (problems above)");
      if (this.stopping) return { ok: false, reason: "portico is stopping", errors: [] };
      this.log.info(
        { trigger, generation: this.nextNumber },
        "reload: configuration valid; starting a new generation",
      );
      this.discovery.setDns(config.dns);
      await this.discover(config);
      const next = this.newGeneration(config, tls);
      const outcome = await this.startGeneration(next, config.timeouts.workerStart);
      if (this.stopping) {
        next.kill();
        return { ok: false, reason: "portico is stopping", errors: [] };
      }
      if (!outcome.ok) {
        // Its workers that did listen may already hold requests: drain them, never kill.
        this.discovery.setDns(current.config.dns);
        this.retire(next, "reload failed");
        return this.reloadFailed(current, `generation ${next.number} did not start: ${outcome.reason}`);
      }
      this.current = next;
      this.loaded = configIdentity(this.configFile);
      this.applyMasterConfig(config);
      this.metrics.reloads.labels("ok").inc();
      await this.applyAdmin(config);
      this.retire(current, "reload");
      this.log.info(
        {
          generation: next.number,
          workers: next.pids(),
          listening: outcome.bound,
          reloadMs: Math.round(performance.now() - begun),
          draining: current.number,
        },
        "reload complete",
      );
      return { ok: true, generation: next.number, warnings };
    } catch (err) {
      // Never a crashed master: the current generation keeps serving.
      return this.reloadFailed(current, `unexpected error: ${(err as Error).message}`);
    } finally {
      this.reloading = false;
      if (!this.stopping) this.runQueued(trigger);
    }
  }

  private reloadFailed(current: Generation, reason: string, issues: ConfigIssue[] = []): ReloadResult {
    this.failedReloads++;
    this.metrics.reloads.labels("failed").inc();
    const kept = `generation ${current.number} keeps serving with the previous configuration`;
    this.log.error(
      { generation: current.number, failedReloads: this.failedReloads },
      `reload failed: ${reason}; ${kept}`,
    );
    return {
      ok: false,
      reason: `${reason}; ${kept}`,
      errors: issues.filter((i) => i.severity === "error"),
    };
  }

  /**
   * Drain a generation that no longer serves (the old one after a reload, or a new one that
   * failed to start), log how long it took, and kill what is left after its shutdown timeout.
   */
  private retire(generation: Generation, reason: string): void {
    const begun = performance.now();
    this.retiring.add(generation);
    const killer = setTimeout(() => {
      this.log.error(
        { generation: generation.number },
        "generation did not drain within its shutdown timeout; killing it",
      );
      generation.kill();
    }, generation.config.timeouts.shutdown + KILL_GRACE_MS);
    killer.unref();
    generation.once("empty", () => {
      clearTimeout(killer);
      this.retiring.delete(generation);
      if (!this.stopping) this.track(this.generations().map((g) => g.config));
      this.log.info(
        { generation: generation.number, reason, drainMs: Math.round(performance.now() - begun) },
        "generation drained",
      );
    });
    generation.drain(reason);
  }

  /** Settings the master itself uses: its log and pid file follow a reload. */
  private applyMasterConfig(config: Config): void {
    const old = this.config;
    this.config = config;
    if (
      old.log.error !== config.log.error ||
      old.log.level !== config.log.level ||
      old.log.format !== config.log.format
    ) {
      this.log = createLogger(config.log.error, config.log.level, { role: "master" }, config.log.format);
      this.discovery.setLogger(this.log);
      this.health.setLogger(this.log);
      this.rateLimits.setLogger(this.log);
    }
    if (old.pidFile !== config.pidFile) {
      try {
        writePidFile(config.pidFile, process.pid);
        removePidFile(old.pidFile, process.pid);
      } catch (err) {
        this.log.error(
          { pidFile: config.pidFile, err },
          "cannot write the new pid file; keeping the old one",
        );
      }
    }
  }

  /** Open, move or close the admin listener to match `config` (a failure is logged, never fatal). */
  private async applyAdmin(config: Config): Promise<void> {
    const settings = JSON.stringify(config.admin ?? null);
    if (settings === this.adminSettings) return;
    this.adminSettings = settings;
    await this.admin?.close();
    this.admin = undefined;
    const admin = config.admin;
    if (!admin) return;
    try {
      this.admin = await startAdmin({
        ...admin,
        handlers: {
          metrics: () => this.scrape(),
          ready: () =>
            this.stopping
              ? { ready: false, why: "draining to stop" }
              : this.current
                ? { ready: true }
                : { ready: false, why: "starting" },
          status: () => this.status(),
          dns: (name, type, servers) => this.discovery.ask(name, type, servers),
          flush: (name) => {
            const flushed = this.discovery.flush(name);
            this.log.info({ name, flushed }, "admin: DNS cache entries flushed");
            return flushed;
          },
          reload: () => {
            this.log.info("admin: POST /reload");
            return this.reload("POST /reload");
          },
        },
      });
      this.log.info({ admin: this.admin.address }, "admin listener ready");
    } catch (err) {
      this.adminSettings = "";
      this.log.error(
        { host: admin.host, port: admin.port },
        `admin listener cannot listen on ${admin.host}:${admin.port}: ${(err as Error).message}; serving on without it`,
      );
    }
  }

  /** One scrape: every live worker's metrics (1 s each at most) summed with the master's. */
  private async scrape(): Promise<string> {
    const id = ++this.scrapes;
    const generations = [...this.generations(), ...(this.starting ? [this.starting] : [])];
    const answers = (await Promise.all(generations.map((g) => g.metrics(id, 1000)))).flat();
    const got = answers.filter((a): a is MetricsJson => a !== undefined);
    if (got.length < answers.length) this.metrics.scrapeWorkers.inc(answers.length - got.length);
    return aggregateMetrics(got, this.metrics.registry);
  }

  /** The serving generation's upstreams, each peer with its state as the master knows it. */
  private peerStates(): Array<{
    upstream: Upstream;
    peers: Array<PeerSpec & { state: PeerHealth; why?: string }>;
  }> {
    const upstreams = this.current?.config.upstreams ?? this.config.upstreams;
    const now = Date.now();
    const ejected = new Map<string, string>();
    for (const { until, upstream, peer, reason } of this.ejections.values())
      if (until > now) ejected.set(`${upstream} ${peer}`, reason);
    return Object.values(upstreams).map((upstream) => ({
      upstream,
      peers: upstreamPeers(upstream, this.discovery.table).peers.map((spec) => {
        const checked = this.health.state(upstream.name, spec.key);
        const reason = ejected.get(`${upstream.name} ${spec.key}`);
        if (checked?.up === false) return { ...spec, state: "unhealthy" as const, why: checked.last };
        if (checked && checked.up === undefined)
          return { ...spec, state: "unchecked" as const, why: "waiting for its first check" };
        if (reason !== undefined) return { ...spec, state: "ejected" as const, why: reason };
        return { ...spec, state: "healthy" as const };
      }),
    }));
  }

  /** `portico_upstream_peers`: peers by upstream and state (not checked yet counts as unhealthy). */
  private peerCounts(): Array<{ upstream: string; state: string; count: number }> {
    return this.peerStates().flatMap(({ upstream, peers }) => {
      const count = (state: string) => peers.filter((p) => p.state === state).length;
      return [
        { upstream: upstream.name, state: "healthy", count: count("healthy") },
        { upstream: upstream.name, state: "unhealthy", count: count("unhealthy") + count("unchecked") },
        { upstream: upstream.name, state: "ejected", count: count("ejected") },
        // Workers report their draining peers; max over them and this 0.
        { upstream: upstream.name, state: "draining", count: 0 },
      ];
    });
  }

  /** `/status`: the generations and what their workers report, joined with discovery and health. */
  private async status(): Promise<StatusDocument> {
    const id = ++this.scrapes;
    const live: Array<[Generation, GenerationStatus["state"]]> = [
      ...(this.current ? [[this.current, "serving"] as [Generation, "serving"]] : []),
      ...[...this.retiring].map((g) => [g, "draining"] as [Generation, "draining"]),
      ...(this.starting ? [[this.starting, "starting"] as [Generation, "starting"]] : []),
    ];
    const generations = await Promise.all(
      live.map(async ([g, state]): Promise<GenerationStatus> => {
        const reported = (await g.status(id, 1000)).filter((r): r is WorkerStatus => r !== undefined);
        return { number: g.number, state, workers: g.config.workers, pids: g.pids(), reported };
      }),
    );
    const workers = generations.flatMap((g) => g.reported);
    const upstreams: UpstreamStatus[] = this.peerStates().map(({ upstream, peers }) => {
      const sum = (peer: string, pick: (p: WorkerPeerStatus) => number) =>
        workers.reduce(
          (n, w) =>
            n +
            (w.peers[upstream.name]?.[peer] ? pick(w.peers[upstream.name]?.[peer] as WorkerPeerStatus) : 0),
          0,
        );
      const listed: PeerStatus[] = peers.map((p) => ({
        address: p.key,
        origin: p.origin ?? { kind: "address", name: p.key },
        weight: p.weight,
        priority: p.priority,
        health: p.state,
        ...(p.why !== undefined ? { why: p.why } : {}),
        inFlight: sum(p.key, (w) => w.inFlight),
        failures: sum(p.key, (w) => w.failures),
        ejections: sum(p.key, (w) => w.ejections),
        checks: this.health.state(upstream.name, p.key)?.sent ?? 0,
      }));
      // Peers DNS took away that some worker still finishes requests on.
      const known = new Set(listed.map((p) => p.address));
      for (const w of workers) {
        for (const [address, peer] of Object.entries(w.peers[upstream.name] ?? {})) {
          if (!peer.draining || known.has(address)) continue;
          known.add(address);
          listed.push({
            address,
            origin: { kind: "address", name: address },
            weight: 0,
            priority: 0,
            health: "draining",
            why: "left the upstream (DNS); finishing its requests in flight",
            inFlight: sum(address, (x) => x.inFlight),
            failures: 0,
            ejections: 0,
            checks: 0,
          });
        }
      }
      const traffic = (pick: (t: { requests: number; errors: number }) => number) =>
        workers.reduce((n, w) => n + pick(w.traffic[upstream.name] ?? { requests: 0, errors: 0 }), 0);
      return {
        name: upstream.name,
        balancer: upstream.balance,
        servers: upstream.servers.map(serverLabel),
        missing: upstreamPeers(upstream, this.discovery.table).missing,
        peers: listed,
        requests: traffic((t) => t.requests),
        errors: traffic((t) => t.errors),
      };
    });
    return {
      now: Date.now(),
      portico: {
        version: porticoVersion(),
        node: process.version,
        pid: process.pid,
        uptimeS: Math.round(process.uptime()),
        instanceId: this.instanceId,
      },
      config: { file: this.configFile, ...this.loaded },
      generations,
      upstreams,
      dns: { names: this.discovery.names() },
    };
  }

  private reopenLogs(): void {
    const files = reopenLogFiles();
    this.log.info({ files }, "SIGUSR2: reopening log files");
    for (const generation of this.generations()) generation.broadcast({ type: "reopen-logs" });
  }

  private generations(): Generation[] {
    return [...(this.current ? [this.current] : []), ...this.retiring];
  }

  /** First signal: drain every generation, then exit 0. Second: kill everything, exit 1. */
  private stop(signal: NodeJS.Signals): void {
    const all = this.generations();
    if (this.stopping) {
      this.log.warn({ signal }, "second stop signal: stopping now");
      for (const generation of all) generation.kill();
      this.exit(1);
      return;
    }
    this.stopping = true;
    this.queued?.resolve({ ok: false, reason: "portico is stopping", errors: [] });
    this.queued = undefined;
    this.starting?.kill();
    this.log.info(
      { signal, shutdownTimeoutMs: this.config.timeouts.shutdown },
      "graceful stop: draining workers",
    );
    const begun = Date.now();
    // A generation that was still starting is killed by the reload/start code once it sees
    // `stopping`; wait for every running one to empty.
    let left = all.length;
    const onEmpty = () => {
      if (--left > 0) return;
      this.log.info({ drainMs: Date.now() - begun }, "all workers exited");
      this.exit(0);
    };
    if (left === 0) {
      this.exit(0);
      return;
    }
    for (const generation of all) {
      generation.once("empty", onEmpty);
      generation.drain("shutdown");
    }
    setTimeout(() => {
      this.log.error("workers did not exit within the shutdown timeout; killing them");
      for (const generation of all) generation.kill();
      this.exit(0);
    }, this.config.timeouts.shutdown + KILL_GRACE_MS).unref();
  }

  private exit(code: number): void {
    void this.admin?.close();
    void this.discovery.stop();
    this.health.stop();
    this.ticketKeys.stop();
    void this.rateLimits.stop();
    removePidFile(this.config.pidFile, process.pid);
    this.log.info({ code }, "portico stopped");
    this.log.flush();
    this.resolveExit?.(code);
  }
}

/** Start the master on a config file. Resolves with the process exit code once stopped. */
export async function runMaster(configFile: string): Promise<number> {
  const { config, issues } = loadConfig(configFile);
  for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!config) {
    process.stderr.write(`portico: configuration in ${configFile} is invalid; nothing started\n`);
    return 1;
  }
  return new Master(configFile, config).run();
}
