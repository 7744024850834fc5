/**
 * A generation: the set of workers running one config. Forks one worker per slot, tracks
 * which are listening, replaces a crashed worker in its own slot with exponential backoff,
 * and drains them all on request.
 */
import cluster, { type Worker } from "node:cluster";
import { EventEmitter } from "node:events";
import type { Config } from "../config/types.js";
import {
  type BoundAddress,
  isMessage,
  type ListenErrorMessage,
  type MasterToWorker,
  type WorkerToMaster,
} from "../ipc.js";
import type { Logger } from "../observability/logger.js";
import type { MetricsJson } from "../observability/metrics.js";
import type { WorkerStatus } from "../observability/status.js";
import type { TlsMaterial } from "../tls/material.js";
import type { PeerTable } from "../upstream/peer-table.js";

/** First respawn delay; doubled for every crash of the slot within `CRASH_WINDOW_MS`. */
const RESPAWN_BASE_MS = 100;
/** Longest respawn delay. */
const RESPAWN_MAX_MS = 10_000;
/** Crashes older than this no longer count towards a slot's backoff and crash limit. */
const CRASH_WINDOW_MS = 60_000;
/** A slot that crashes more often than this within `CRASH_WINDOW_MS` is not respawned again. */
const MAX_CRASHES = 5;

interface Slot {
  index: number;
  worker?: Worker;
  listening: boolean;
  crashes: number[];
  respawnTimer?: NodeJS.Timeout;
  /** Crashed too often: no longer respawned. */
  abandoned: boolean;
}

/**
 * Events: `ready` (every slot listening, with the bound addresses); `start-failed` (with a
 * reason: a worker could not listen or exited before the generation was ready; the caller
 * kills the generation); `listen-error` (a respawned worker could not listen); `empty`
 * (every worker exited after `drain` or `kill`); `peer-ejected` (a worker's passive health
 * ejected a peer: the message and the worker's pid); `rate-limit-check` (a worker's checks
 * and the function that sends it the answers); `rate-limit-counts` (the decisions a worker
 * applied).
 */
export class Generation extends EventEmitter {
  readonly number: number;
  readonly config: Config;
  private readonly instanceId: string;
  private readonly log: Logger;
  private readonly slots: Slot[];
  private draining = false;
  private readyEmitted = false;
  private bound: BoundAddress[] = [];

  /**
   * @param peers the current peer table, sent to each worker with its config (so a worker
   *   forked by a reload or a respawn serves every known peer at once).
   * @param tls the certificates of `config` and the current session ticket key.
   * @param ejected the passive ejections workers reported that are still running.
   */
  constructor(
    number: number,
    config: Config,
    instanceId: string,
    log: Logger,
    private readonly peers: () => PeerTable,
    private readonly tls: { material: TlsMaterial; ticketKey: () => string },
    private readonly ejected: () => Record<string, Record<string, number>> = () => ({}),
  ) {
    super();
    this.number = number;
    this.config = config;
    this.instanceId = instanceId;
    this.log = log;
    this.slots = Array.from({ length: config.workers }, (_, index) => ({
      index,
      listening: false,
      crashes: [],
      abandoned: false,
    }));
  }

  /** Fork every slot's worker. */
  start(): void {
    for (const slot of this.slots) this.fork(slot);
  }

  /** True once every slot has listened at least once. */
  get isReady(): boolean {
    return this.readyEmitted;
  }

  /** Workers alive now. */
  get liveWorkers(): number {
    return this.slots.filter((s) => s.worker).length;
  }

  /** Admin requests waiting for a worker's answer, by `kind:id:slot`. */
  private readonly waiters = new Map<string, (answer: unknown) => void>();

  /**
   * Every live worker's metrics for scrape `id`: undefined for one that did not answer within
   * `timeoutMs` (busy, or exiting), so a scrape always answers.
   */
  metrics(id: number, timeoutMs: number): Promise<Array<MetricsJson | undefined>> {
    return this.ask<MetricsJson>("metrics-request", id, timeoutMs);
  }

  /** Every live worker's part of `/status` (undefined for one that did not answer in time). */
  status(id: number, timeoutMs: number): Promise<Array<WorkerStatus | undefined>> {
    return this.ask<WorkerStatus>("status-request", id, timeoutMs);
  }

  private ask<T>(
    type: "metrics-request" | "status-request",
    id: number,
    timeoutMs: number,
  ): Promise<Array<T | undefined>> {
    return Promise.all(
      this.slots.map((slot) => {
        const worker = slot.worker;
        if (!worker?.isConnected() || !slot.listening) return Promise.resolve(undefined);
        const key = `${type}:${id}:${slot.index}`;
        return new Promise<T | undefined>((resolve) => {
          const done = (answer: unknown) => {
            clearTimeout(timer);
            this.waiters.delete(key);
            resolve(answer as T | undefined);
          };
          const timer = setTimeout(() => done(undefined), timeoutMs);
          this.waiters.set(key, done);
          worker.send({ type, id } satisfies MasterToWorker);
        });
      }),
    );
  }

  /** PIDs of the live workers, by slot. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid ? [s.worker.process.pid] : []));
  }

  private fork(slot: Slot): void {
    slot.respawnTimer = undefined;
    slot.listening = false;
    const worker = cluster.fork({
      PORTICO_GENERATION: String(this.number),
      PORTICO_SLOT: String(slot.index),
    });
    slot.worker = worker;
    const pid = worker.process.pid;
    this.log.info({ generation: this.number, slot: slot.index, workerPid: pid }, "worker started");
    worker.on("message", (msg: unknown) => {
      if (!isMessage<WorkerToMaster>(msg)) return;
      this.onWorkerMessage(slot, msg);
    });
    worker.on("error", (err) => this.log.warn({ err, workerPid: pid }, "worker IPC error"));
    worker.on("exit", (code, signal) => this.onWorkerExit(slot, worker, code, signal));
  }

  private onWorkerMessage(slot: Slot, msg: WorkerToMaster): void {
    if (msg.type === "booted") {
      // A drain sent before the worker's listener existed was lost: repeat it instead of the config.
      if (this.draining) {
        slot.worker?.send({
          type: "drain",
          reason: "generation retired during start",
        } satisfies MasterToWorker);
        return;
      }
      const config: MasterToWorker = {
        type: "config",
        generation: this.number,
        slot: slot.index,
        instanceId: this.instanceId,
        config: this.config,
        peers: this.peers(),
        tls: this.tls.material,
        ticketKey: this.tls.ticketKey(),
        ejected: this.ejected(),
      };
      slot.worker?.send(config);
    } else if (msg.type === "listening") {
      slot.listening = true;
      this.bound = msg.addresses;
      this.log.info(
        { generation: this.number, slot: slot.index, workerPid: slot.worker?.process.pid },
        "worker listening",
      );
      if (!this.readyEmitted && this.slots.every((s) => s.listening)) {
        this.readyEmitted = true;
        this.emit("ready", this.bound);
      }
    } else if (msg.type === "listen-error") {
      if (this.readyEmitted) this.emit("listen-error", msg satisfies ListenErrorMessage);
      else this.emit("start-failed", `cannot listen on ${msg.listen}: ${listenHint(msg)}`, msg);
    } else if (msg.type === "stopped-accepting") {
      slot.worker?.send({ type: "stopped-accepting-ack" } satisfies MasterToWorker);
    } else if (msg.type === "setup-error") {
      this.log.error({ generation: this.number, slot: slot.index }, `worker setup failed: ${msg.message}`);
    } else if (msg.type === "peer-ejected") {
      this.emit("peer-ejected", msg, slot.worker?.process.pid);
    } else if (msg.type === "rate-limit-check") {
      const worker = slot.worker;
      this.emit("rate-limit-check", msg, (answer: MasterToWorker) => {
        if (worker?.isConnected()) worker.send(answer);
      });
    } else if (msg.type === "metrics") {
      this.waiters.get(`metrics-request:${msg.id}:${slot.index}`)?.(msg.metrics);
    } else if (msg.type === "status") {
      this.waiters.get(`status-request:${msg.id}:${slot.index}`)?.(msg.status);
    } else if (msg.type === "rate-limit-counts") {
      this.emit("rate-limit-counts", msg);
    }
  }

  private onWorkerExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.listening = false;
    const pid = worker.process.pid;
    if (this.draining) {
      this.log.info(
        { generation: this.number, slot: slot.index, workerPid: pid, code, signal },
        "worker exited",
      );
      if (this.slots.every((s) => !s.worker)) this.emit("empty");
      return;
    }
    if (!this.readyEmitted) {
      this.emit(
        "start-failed",
        `worker ${pid} (slot ${slot.index}) exited during start (code ${code}, signal ${signal})`,
      );
      return;
    }
    const now = Date.now();
    slot.crashes = slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    slot.crashes.push(now);
    if (slot.crashes.length > MAX_CRASHES) {
      slot.abandoned = true;
      this.log.fatal(
        {
          generation: this.number,
          slot: slot.index,
          workerPid: pid,
          code,
          signal,
          crashes: slot.crashes.length,
          serving: this.liveWorkers,
        },
        `worker slot ${slot.index} crashed ${slot.crashes.length} times within ${CRASH_WINDOW_MS / 1000} s; no longer respawning it (the other workers keep serving; reload to try again)`,
      );
      return;
    }
    const delay = Math.min(RESPAWN_BASE_MS * 2 ** (slot.crashes.length - 1), RESPAWN_MAX_MS);
    this.log.error(
      { generation: this.number, slot: slot.index, workerPid: pid, code, signal, respawnInMs: delay },
      "worker died unexpectedly; replacing it",
    );
    slot.respawnTimer = setTimeout(() => this.fork(slot), delay);
    this.emit("respawn");
  }

  /** Tell every worker to drain; `empty` is emitted once all have exited. */
  drain(reason: string): void {
    this.draining = true;
    for (const slot of this.slots) {
      if (slot.respawnTimer) clearTimeout(slot.respawnTimer);
      slot.respawnTimer = undefined;
      const msg: MasterToWorker = { type: "drain", reason };
      if (slot.worker?.isConnected()) slot.worker.send(msg);
      else slot.worker?.process.kill("SIGTERM");
    }
    if (this.slots.every((s) => !s.worker)) setImmediate(() => this.emit("empty"));
  }

  /** Kill every worker at once (second stop signal, or a generation that failed to start). */
  kill(): void {
    this.draining = true;
    for (const slot of this.slots) {
      if (slot.respawnTimer) clearTimeout(slot.respawnTimer);
      slot.respawnTimer = undefined;
      slot.worker?.process.kill("SIGKILL");
    }
    if (this.slots.every((s) => !s.worker)) setImmediate(() => this.emit("empty"));
  }

  /** Send a message to every live worker. */
  broadcast(msg: MasterToWorker): void {
    for (const slot of this.slots) if (slot.worker?.isConnected()) slot.worker.send(msg);
  }
}

/** Plain-language explanations of the listen errors an operator meets. */
const LISTEN_HINTS: Record<string, string> = {
  EADDRINUSE: "address already in use: another process listens there; stop it or change 'listen'",
  EACCES:
    "permission denied: ports below 1024 need privileges; use a higher port or grant CAP_NET_BIND_SERVICE",
  EADDRNOTAVAIL: "address not available: this machine has no such IP; change 'listen'",
};

/** What a listen error means and what to do, followed by its code. */
export function listenHint(err: ListenErrorMessage): string {
  return `${LISTEN_HINTS[err.code] ?? err.message} (${err.code})`;
}
