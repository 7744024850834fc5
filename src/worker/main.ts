/**
 * A worker process: receives its config from the master, opens the shared listen sockets,
 * proxies requests, and drains when told to (stop accepting, let in-flight requests finish,
 * close idle connections, exit; everything left is closed after `timeouts.shutdown`).
 */
import type { Config } from "../config/types.js";
import { type ConfigMessage, isMessage, type MasterToWorker, type WorkerToMaster } from "../ipc.js";
import { createAccessLogger, createLogger, type Logger } from "../observability/logger.js";
import { UpstreamGroup } from "../upstream/upstream-group.js";
import { ListenError, type Listener, openListeners } from "./listeners.js";

function send(message: WorkerToMaster): void {
  process.send?.(message);
}

/** One running worker. */
class Worker {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly upstreams = new Map<string, UpstreamGroup>();
  private listeners: Listener[] = [];
  private inFlight = 0;
  private draining = false;

  constructor(msg: ConfigMessage) {
    this.config = msg.config;
    this.log = createLogger(msg.config.log.error, msg.config.log.level, {
      role: "worker",
      generation: msg.generation,
      slot: msg.slot,
    });
    for (const upstream of Object.values(this.config.upstreams)) {
      this.upstreams.set(upstream.name, new UpstreamGroup(upstream, this.config.timeouts, msg.slot));
    }
    this.via = `1.1 ${msg.instanceId}`;
  }

  private readonly via: string;

  async start(): Promise<void> {
    try {
      const { listeners, bound } = await openListeners(this.config, {
        via: this.via,
        upstreams: this.upstreams,
        accessLog: createAccessLogger(this.config.log.access),
        log: this.log,
        track: (delta) => {
          this.inFlight += delta;
          if (!this.draining || delta > 0) return;
          // A keep-alive connection whose last request just ended is idle now: close it.
          setImmediate(() => {
            for (const { server } of this.listeners) server.closeIdleConnections();
          });
          if (this.inFlight === 0) void this.exit();
        },
        isDraining: () => this.draining,
      });
      this.listeners = listeners;
      send({ type: "listening", addresses: bound });
    } catch (err) {
      if (err instanceof ListenError) {
        send({ type: "listen-error", listen: err.listen, code: err.code, message: err.message });
      } else {
        send({ type: "setup-error", message: err instanceof Error ? err.message : String(err) });
      }
      this.log.error({ err }, "worker setup failed");
      setTimeout(() => process.exit(1), 50);
    }
  }

  /** Stop accepting, close idle keep-alive connections, exit once in-flight requests are done. */
  drain(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    this.log.info({ reason, inFlight: this.inFlight }, "worker draining");
    for (const { server } of this.listeners) {
      server.close();
      server.closeIdleConnections();
    }
    const timer = setTimeout(() => {
      this.log.warn({ inFlight: this.inFlight }, "shutdown timeout: closing remaining connections");
      for (const { server } of this.listeners) server.closeAllConnections();
      void this.exit();
    }, this.config.timeouts.shutdown);
    timer.unref();
    if (this.inFlight === 0) void this.exit();
  }

  private exiting = false;

  private async exit(): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    for (const { server } of this.listeners) server.closeIdleConnections();
    await Promise.race([
      Promise.all([...this.upstreams.values()].map((u) => u.close())),
      new Promise((r) => setTimeout(r, 1000)),
    ]);
    this.log.info("worker exiting");
    process.exit(0);
  }
}

let worker: Worker | undefined;

process.on("message", (msg: unknown) => {
  if (!isMessage<MasterToWorker>(msg)) return;
  if (msg.type === "config" && !worker) {
    worker = new Worker(msg);
    void worker.start();
  } else if (msg.type === "drain") {
    if (worker) worker.drain(msg.reason);
    else process.exit(0);
  }
});

// The master decides when workers stop; a terminal's Ctrl-C reaches the whole process group.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => worker?.drain("SIGTERM") ?? process.exit(0));
// A master that is gone cannot send us traffic or orders any more.
process.on("disconnect", () => worker?.drain("master gone") ?? process.exit(0));

send({ type: "booted" });
