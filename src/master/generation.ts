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

/** First respawn delay; doubled for every crash of the slot within `CRASH_WINDOW_MS`. */
const RESPAWN_BASE_MS = 100;
/** Longest respawn delay. */
const RESPAWN_MAX_MS = 10_000;
/** Crashes older than this no longer count towards a slot's backoff. */
const CRASH_WINDOW_MS = 60_000;

interface Slot {
  index: number;
  worker?: Worker;
  listening: boolean;
  crashes: number[];
  respawnTimer?: NodeJS.Timeout;
}

/**
 * Events: `ready` (every slot listening, with the bound addresses), `listen-error`
 * (a worker could not open a socket), `empty` (every worker exited after `drain`).
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

  constructor(number: number, config: Config, instanceId: string, log: Logger) {
    super();
    this.number = number;
    this.config = config;
    this.instanceId = instanceId;
    this.log = log;
    this.slots = Array.from({ length: config.workers }, (_, index) => ({
      index,
      listening: false,
      crashes: [],
    }));
  }

  /** Fork every slot's worker. */
  start(): void {
    for (const slot of this.slots) this.fork(slot);
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
      const config: MasterToWorker = {
        type: "config",
        generation: this.number,
        slot: slot.index,
        instanceId: this.instanceId,
        config: this.config,
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
      this.emit("listen-error", msg satisfies ListenErrorMessage);
    } else if (msg.type === "setup-error") {
      this.log.error({ generation: this.number, slot: slot.index }, `worker setup failed: ${msg.message}`);
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
    const now = Date.now();
    slot.crashes = slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    slot.crashes.push(now);
    const delay = Math.min(RESPAWN_BASE_MS * 2 ** (slot.crashes.length - 1), RESPAWN_MAX_MS);
    this.log.error(
      { generation: this.number, slot: slot.index, workerPid: pid, code, signal, respawnInMs: delay },
      "worker died unexpectedly; replacing it",
    );
    slot.respawnTimer = setTimeout(() => this.fork(slot), delay);
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
      slot.worker?.process.kill("SIGKILL");
    }
  }
}
