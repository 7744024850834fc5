/**
 * A worker process: receives its config from the master, opens the shared listen sockets,
 * proxies requests, and drains when told to: stop accepting, answer what arrives with
 * `Connection: close`, close connections idle for `drain_grace`, let in-flight requests
 * finish, exit; whatever is left is closed after `timeouts.shutdown`.
 */
import net from "node:net";
import type { Config } from "../config/types.js";
import { deferred } from "../deferred.js";
import { type ConfigMessage, isMessage, type MasterToWorker, type WorkerToMaster } from "../ipc.js";
import {
  createAccessLogger,
  createLogger,
  flushLogFiles,
  type Logger,
  reopenLogFiles,
} from "../observability/logger.js";
import { WorkerMetrics } from "../observability/metrics.js";
import type { WorkerPeerStatus, WorkerStatus } from "../observability/status.js";
import type { Peer } from "../upstream/peer.js";
import type { PeerTable } from "../upstream/peer-table.js";
import { UpstreamGroup } from "../upstream/upstream-group.js";
import { ConnectionTracker } from "./connections.js";
import { TrustedProxies } from "./forwarded.js";
import { ListenError, type Listener, openListeners } from "./listeners.js";
import { MasterRateLimits } from "./rate-limit.js";
import { RetryBudget } from "./retry-budget.js";

function send(message: WorkerToMaster): void {
  process.send?.(message);
}

/** One running worker. */
class Worker {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly via: string;
  private readonly upstreams = new Map<string, UpstreamGroup>();
  private readonly connections = new ConnectionTracker();
  private readonly listeners: Listener[] = [];
  private readonly tls: ConfigMessage["tls"];
  private ticketKey: string;
  private draining = false;
  private exiting = false;
  private readonly generation: number;
  private readonly slot: number;
  /** Settled by the master's `stopped-accepting-ack`. */
  private readonly acceptingStopped = deferred();
  /** Rate limits: decided by the master (instance-wide), by this worker's share when it is slow. */
  readonly rateLimits: MasterRateLimits;

  constructor(msg: ConfigMessage) {
    this.config = msg.config;
    this.log = createLogger(
      msg.config.log.error,
      msg.config.log.level,
      { role: "worker", generation: msg.generation, slot: msg.slot },
      msg.config.log.format,
    );
    for (const upstream of Object.values(this.config.upstreams)) {
      this.upstreams.set(
        upstream.name,
        new UpstreamGroup(
          upstream,
          this.config.timeouts,
          msg.peers,
          msg.slot,
          (m) => this.log.warn(m),
          metrics.connectTimer(upstream.name),
        ),
      );
      // Ejections by the workers before a reload keep running in this one.
      const ejected = msg.ejected?.[upstream.name] ?? {};
      for (const peer of this.upstreams.get(upstream.name)?.peers ?? []) {
        const until = ejected[peer.address];
        if (until !== undefined && until > Date.now()) peer.markFailed(until - Date.now());
      }
    }
    this.via = `1.1 ${msg.instanceId}`;
    const connections = this.connections;
    metrics.watchConnections(
      () => ({
        open: connections.open,
        inFlight: connections.inFlight,
        tunnels: connections.tunnels,
        refused: connections.dropped,
      }),
      () => connections.bytes(),
      () => {
        const out: Record<string, number> = {};
        for (const [name, group] of this.upstreams) out[name] = group.departing.size;
        return out;
      },
    );
    this.generation = msg.generation;
    this.slot = msg.slot;
    this.rateLimits = new MasterRateLimits({
      // With a callback, a channel that closed meanwhile is an error passed to it, not thrown.
      send: (m) => process.send?.(m, undefined, {}, () => {}) ?? false,
      connected: () => process.connected === true,
      workers: msg.config.workers,
      log: this.log,
    });
    this.tls = msg.tls;
    this.ticketKey = msg.ticketKey;
  }

  async start(): Promise<void> {
    try {
      // `this.listeners` fills as sockets open, so a drain during start stops them too.
      const { bound } = await openListeners(
        this.config,
        {
          via: this.via,
          upstreams: this.upstreams,
          accessLog: createAccessLogger(this.config.log.access),
          log: this.log,
          connections: this.connections,
          isDraining: () => this.draining,
          timeouts: this.config.timeouts,
          retries: new RetryBudget(),
          ejected: (upstream, peer, ms, reason) => send({ type: "peer-ejected", upstream, peer, ms, reason }),
          rateLimits: this.rateLimits,
          metrics,
          trusted:
            this.config.trustedProxies.length > 0
              ? new TrustedProxies(this.config.trustedProxies)
              : undefined,
        },
        { tls: this.tls, ticketKey: this.ticketKey },
        this.listeners,
      );
      if (this.draining) {
        this.stopAccepting();
        return;
      }
      send({ type: "listening", addresses: bound });
    } catch (err) {
      // Sockets opened before the failure may already carry requests: do not exit here,
      // the master answers with a drain (reload rolled back) or a kill (first start).
      if (err instanceof ListenError) {
        send({ type: "listen-error", listen: err.listen, code: err.code, message: err.message });
      } else {
        send({ type: "setup-error", message: err instanceof Error ? err.message : String(err) });
      }
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, "worker setup failed");
    }
  }

  /** This worker's part of `/status`. */
  async status(): Promise<WorkerStatus> {
    const traffic = await metrics.traffic();
    const peers: WorkerStatus["peers"] = {};
    for (const [name, group] of this.upstreams) {
      const byPeer: Record<string, WorkerPeerStatus> = {};
      const add = (peer: Peer, draining: boolean) => {
        byPeer[peer.address] = {
          inFlight: peer.inFlight,
          failures: peer.failures,
          ejections: peer.ejections,
          ejectedUntil: peer.failedUntil > Date.now() ? peer.failedUntil : 0,
          draining,
        };
      };
      for (const peer of group.peers) add(peer, false);
      for (const peer of group.departing) if (!byPeer[peer.address]) add(peer, true);
      peers[name] = byPeer;
    }
    return {
      pid: process.pid,
      generation: this.generation,
      slot: this.slot,
      uptimeS: Math.round(process.uptime()),
      rssBytes: process.memoryUsage.rss(),
      connections: this.connections.open,
      inFlight: this.connections.inFlight,
      requests: traffic.total,
      peers,
      traffic: traffic.upstreams,
    };
  }

  /** Stop accepting, answer with `Connection: close`, exit once no connection is left. */
  drain(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    const begun = performance.now();
    this.log.info(
      { reason, inFlight: this.connections.inFlight, connections: this.connections.open },
      "worker draining",
    );
    this.stopAccepting();
    this.connections.drain(this.config.timeouts.drainGrace, () => {
      this.log.info({ drainMs: Math.round(performance.now() - begun) }, "worker drained");
      void this.exit();
    });
    setTimeout(() => {
      this.log.warn(
        { inFlight: this.connections.inFlight, connections: this.connections.open },
        "shutdown timeout: closing the remaining connections",
      );
      void this.connections.closeAll().then(() => this.exit());
    }, this.config.timeouts.shutdown).unref();
  }

  private stopAccepting(): void {
    // net.Server's close, not http.Server's: the latter also closes every idle keep-alive
    // connection at once (Node >= 19), the reset race this drain exists to avoid. This closes
    // the worker's own copy of the shared listen socket: connections waiting in the kernel's
    // accept queue stay there for the workers still listening (the next generation's).
    for (const { server } of this.listeners) net.Server.prototype.close.call(server);
    send({ type: "stopped-accepting" });
  }

  /** The master acknowledged `stopped-accepting`. */
  onAcceptingStopped(): void {
    this.acceptingStopped.resolve();
  }

  /** A new peer table from the master's discovery: apply it to every upstream as a diff. */
  applyPeers(table: PeerTable): void {
    for (const group of this.upstreams.values()) {
      const { added, removed } = group.apply(table);
      if (added.length > 0 || removed.length > 0) {
        this.log.debug(
          { upstream: group.name, added, removed, version: table.version },
          "upstream peers updated",
        );
      }
    }
  }

  /** The master rotated the TLS session ticket key: every worker switches to the same one. */
  setTicketKey(key: string): void {
    this.ticketKey = key;
    const buffer = Buffer.from(key, "base64");
    for (const listener of this.listeners) listener.tls?.setTicketKeys(buffer);
  }

  reopenLogs(): void {
    const files = reopenLogFiles();
    this.log.info({ files }, "log files reopened");
  }

  private async exit(): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    // The ack tells us the master has processed our `close` of the shared handles (the channel
    // is ordered). Workers accept for themselves (SCHED_NONE), so no connection is in transit
    // over IPC; the wait also keeps exits safe if the scheduling policy is ever round-robin.
    await Promise.race([this.acceptingStopped.promise, new Promise((r) => setTimeout(r, 2000))]);
    await Promise.race([
      Promise.all([...this.upstreams.values()].map((u) => u.close())),
      new Promise((r) => setTimeout(r, 1000)),
    ]);
    this.rateLimits.report();
    this.log.info("worker exiting");
    await Promise.race([flushLogFiles(), new Promise((r) => setTimeout(r, 500))]);
    process.exit(0);
  }
}

let worker: Worker | undefined;
/** This process's metrics: one registry for its whole life (a reload forks new workers). */
const metrics = new WorkerMetrics();

process.on("message", (msg: unknown) => {
  if (!isMessage<MasterToWorker>(msg)) return;
  if (msg.type === "config" && !worker) {
    worker = new Worker(msg);
    void worker.start();
  } else if (msg.type === "drain") {
    if (worker) worker.drain(msg.reason);
    else process.exit(0);
  } else if (msg.type === "peers") {
    worker?.applyPeers(msg.table);
  } else if (msg.type === "stopped-accepting-ack") {
    worker?.onAcceptingStopped();
  } else if (msg.type === "ticket-key") {
    worker?.setTicketKey(msg.key);
  } else if (msg.type === "reopen-logs") {
    worker?.reopenLogs();
  } else if (msg.type === "rate-limit-answer") {
    worker?.rateLimits.onAnswer(msg);
  } else if (msg.type === "metrics-request") {
    const id = msg.id;
    void metrics.snapshot().then((snapshot) => send({ type: "metrics", id, metrics: snapshot }));
  } else if (msg.type === "status-request") {
    const id = msg.id;
    void worker?.status().then((status) => send({ type: "status", id, status }));
  }
});

// The master decides when workers stop; a terminal's Ctrl-C reaches the whole process group.
process.on("SIGINT", () => {});
process.on("SIGUSR2", () => {});
process.on("SIGHUP", () => {});
process.on("SIGTERM", () => worker?.drain("SIGTERM") ?? process.exit(0));
// A master that is gone cannot send us traffic or orders any more.
process.on("disconnect", () => worker?.drain("master gone") ?? process.exit(0));

send({ type: "booted" });
