/**
 * The one place that defines the messages between the master and its workers.
 * Master and worker never import each other: they meet here. Every message is plain JSON
 * (node:cluster serializes with JSON), tagged by `type`.
 */
import type { Config, RateLimit } from "./config/types.js";
import type { MetricsJson } from "./observability/metrics.js";
import type { WorkerStatus } from "./observability/status.js";
import type { TlsMaterial } from "./tls/material.js";
import type { PeerTable } from "./upstream/peer-table.js";

/** Master -> worker: the configuration to run. Sent once, right after the fork. */
export interface ConfigMessage {
  type: "config";
  /** Config generation this worker belongs to (1 for the first, +1 per reload). */
  generation: number;
  /** Worker slot within its generation (0-based), stable across respawns. */
  slot: number;
  /** Random token of this proxy instance; added to `Via` so a request looping back is refused. */
  instanceId: string;
  config: Config;
  /** The peers discovered so far: a new worker (start, reload, respawn) serves them at once. */
  peers: PeerTable;
  /** The certificates of `config`'s servers, read and checked by the master. */
  tls: TlsMaterial;
  /** The current TLS session ticket key (base64, 48 bytes), the same in every worker. */
  ticketKey: string;
  /**
   * Peers the workers of earlier generations ejected (passive health) and until when (epoch
   * ms), by upstream name then `ip:port`: a reload does not give them traffic again early.
   */
  ejected: Record<string, Record<string, number>>;
}

/** Master -> worker: the session ticket key was rotated. */
export interface TicketKeyMessage {
  type: "ticket-key";
  key: string;
}

/**
 * Master -> worker: a new snapshot of the discovered peers (DNS changed). Workers diff it
 * against what they have: new peers get pools; departed peers get no new requests, finish
 * what is in flight and close their idle connections.
 */
export interface PeersMessage {
  type: "peers";
  table: PeerTable;
}

/** Master -> worker: stop accepting, finish in-flight requests, exit. */
export interface DrainMessage {
  type: "drain";
  /** Why, for the worker's log line (`shutdown`, `reload`). */
  reason: string;
}

/** Master -> worker: reopen log files (SIGUSR2, log rotation). */
export interface ReopenLogsMessage {
  type: "reopen-logs";
}

/**
 * Master -> worker: answer to `stopped-accepting`. The channel is ordered, so the master has
 * processed the worker's `close` of its shared listen handles before this. Workers accept
 * their own connections (SCHED_NONE), so none is in transit; under round-robin, every
 * connection handed over before the close would have arrived (and been sent back) first.
 */
export interface StoppedAcceptingAckMessage {
  type: "stopped-accepting-ack";
}

/**
 * Master -> worker: decisions for checks of a `rate-limit-check` (those that went to Redis
 * may come in a later message). Tuples, not objects: this is on the path of every limited
 * request, and JSON of arrays is smaller and quicker.
 */
export interface RateLimitAnswerMessage {
  type: "rate-limit-answer";
  /**
   * `waitMs` is 0 for a request let through, else the ms until the key's bucket has a token
   * again: until then the worker refuses that key by itself (tokens only come back with time,
   * so the master would refuse it too), and a flood of refused requests costs no IPC.
   */
  answers: Array<[seq: number, waitMs: number]>;
}

/** Master -> worker: send your metrics registry (a scrape of the admin listener). */
export interface MetricsRequestMessage {
  type: "metrics-request";
  id: number;
}

/** Worker -> master: a worker's metrics registry as JSON, for scrape `id`. */
export interface MetricsMessage {
  type: "metrics";
  id: number;
  metrics: MetricsJson;
}

/** Master -> worker: send your part of `/status` (the admin listener). */
export interface StatusRequestMessage {
  type: "status-request";
  id: number;
}

/** Worker -> master: a worker's part of `/status`, for request `id`. */
export interface StatusMessage {
  type: "status";
  id: number;
  status: WorkerStatus;
}

/** Every message the master sends. */
export type MasterToWorker =
  | MetricsRequestMessage
  | StatusRequestMessage
  | ConfigMessage
  | PeersMessage
  | DrainMessage
  | ReopenLogsMessage
  | StoppedAcceptingAckMessage
  | TicketKeyMessage
  | RateLimitAnswerMessage;

/** One socket a worker listens on, as bound (port 0 resolved). */
export interface BoundAddress {
  /** The `listen` entry as written in the config. */
  listen: string;
  address: string;
  port: number;
}

/**
 * Worker -> master: the worker's message listener is installed; send the config now.
 * (cluster's `online` comes too early: an ESM worker drops messages sent before its module ran.)
 */
export interface BootedMessage {
  type: "booted";
}

/** Worker -> master: every listen socket is open; the worker takes traffic. */
export interface ListeningMessage {
  type: "listening";
  addresses: BoundAddress[];
}

/** Worker -> master: a listen socket could not be opened. The worker exits after sending it. */
export interface ListenErrorMessage {
  type: "listen-error";
  listen: string;
  /** Node error code, e.g. `EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`. */
  code: string;
  message: string;
}

/** Worker -> master: the worker hit a fatal error while setting up and will exit. */
export interface SetupErrorMessage {
  type: "setup-error";
  message: string;
}

/**
 * Worker -> master: the worker closed its copies of the listen sockets (sent after
 * node:cluster's own `close`). The master answers `stopped-accepting-ack`; the worker does
 * not exit before it, so the master's view of who listens is current when it exits.
 */
export interface StoppedAcceptingMessage {
  type: "stopped-accepting";
}

/** Worker -> master: passive health ejected a peer in this worker (for the status page and metrics). */
export interface PeerEjectedMessage {
  type: "peer-ejected";
  upstream: string;
  peer: string;
  ms: number;
  reason: string;
}

/**
 * Worker -> master: the rate-limit checks of one event-loop turn of a worker (the master owns
 * the buckets, so a limit holds for the whole instance). Each check asks whether one more
 * request under `limits[limit]` with bucket key `key` may pass; `seq` (per worker) matches
 * it to its answer in `rate-limit-answer`.
 */
export interface RateLimitCheckMessage {
  type: "rate-limit-check";
  /**
   * Epoch ms after which the worker decides these checks alone: a master that reads the
   * message later (it was stalled) skips them, so no token goes to a request decided already.
   */
  deadline: number;
  limits: RateLimit[];
  /** `limit` indexes `limits`; `key` is the bucket key (long keys hashed by the worker). */
  checks: Array<[seq: number, limit: number, key: string]>;
}

/**
 * Worker -> master: the rate-limit decisions this worker applied since its last report, by
 * limit id (sent at most once a second, and on exit): requests let through, refused, and of
 * those, decided with the worker's own share because the master did not answer in time.
 */
export interface RateLimitCountsMessage {
  type: "rate-limit-counts";
  counts: Record<string, { allowed: number; limited: number; alone: number }>;
}

/** Every message a worker sends. */
export type WorkerToMaster =
  | MetricsMessage
  | StatusMessage
  | BootedMessage
  | ListeningMessage
  | ListenErrorMessage
  | SetupErrorMessage
  | StoppedAcceptingMessage
  | PeerEjectedMessage
  | RateLimitCheckMessage
  | RateLimitCountsMessage;

/** True when `value` looks like a message of this protocol (cluster also carries its own internal messages). */
export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return (
    typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string"
  );
}
