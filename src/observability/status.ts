/**
 * The admin listener's `/status` document (JSON), and the part of it each worker reports
 * (ipc.ts `status-request` / `status`). The master joins the workers' reports with what it
 * knows itself: discovery (where each peer came from, the DNS names), active health checks,
 * the generations. The status page (status-page.ts) renders exactly this document.
 */

/** A peer as one worker sees it. */
export interface WorkerPeerStatus {
  inFlight: number;
  /** Failures of real traffic in a row (passive health). */
  failures: number;
  /** Ejections in a row. */
  ejections: number;
  /** Epoch ms until which this worker skips the peer (0: not skipped). */
  ejectedUntil: number;
  /** The peer left the upstream (DNS) and finishes its requests in flight. */
  draining: boolean;
}

/** What one worker reports for `/status`. */
export interface WorkerStatus {
  pid: number;
  generation: number;
  slot: number;
  uptimeS: number;
  rssBytes: number;
  connections: number;
  inFlight: number;
  /** Requests answered since the worker started. */
  requests: number;
  /** By upstream name, then peer `ip:port`. */
  peers: Record<string, Record<string, WorkerPeerStatus>>;
  /** Requests answered by each upstream since the worker started, and those answered 5xx. */
  traffic: Record<string, { requests: number; errors: number }>;
}

/** The health of a peer, as the status page colours it. */
export type PeerHealth = "healthy" | "unhealthy" | "ejected" | "draining" | "unchecked";

/** One peer of an upstream, the workers' views joined. */
export interface PeerStatus {
  /** `ip:port` (`[ip]:port` for IPv6). */
  address: string;
  /** Where it came from: the configured address, a DNS name, or an SRV record. */
  origin: { kind: "address" | "name" | "service"; name: string; record?: string };
  weight: number;
  priority: number;
  health: PeerHealth;
  /** Why it is not healthy (the last failed check, the ejection's cause). */
  why?: string;
  /** Summed over the workers. */
  inFlight: number;
  failures: number;
  ejections: number;
  /** Active health checks sent to it (0 without `health`). */
  checks: number;
}

export interface UpstreamStatus {
  name: string;
  balancer: string;
  /** The `servers` as written. */
  servers: string[];
  /** Why servers contribute no peer now (a name that does not resolve, say). */
  missing: string[];
  peers: PeerStatus[];
  /** Requests answered through it (every live worker, since each started), and those 5xx. */
  requests: number;
  errors: number;
}

/** A DNS name discovery follows (one record type of one name). */
export interface DnsNameStatus {
  name: string;
  type: "A" | "AAAA" | "SRV";
  /** The addresses (A/AAAA) or `priority weight port target` (SRV) last learned. */
  records: string[];
  /** TTL of the last answer, seconds, and when it runs out (epoch ms). */
  ttl: number;
  expiresAt: number;
  /** Epoch ms of the last change of `records` (0: never learned). */
  lastChange: number;
  /** Epoch ms of the last lookup. */
  lastLookup: number;
  /** Why the last lookup failed or was negative; absent after a good answer. */
  lastError?: string;
  /** The nameservers fail and the last known records are kept. */
  stale: boolean;
  /** Who gave the last answer. */
  server?: string;
  transport?: string;
}

export interface GenerationStatus {
  number: number;
  state: "serving" | "draining" | "starting";
  /** Configured workers, and each worker that answered (a busy or exiting one may not). */
  workers: number;
  pids: number[];
  reported: WorkerStatus[];
}

/** The `/status` document. */
export interface StatusDocument {
  /** Epoch ms when it was made. */
  now: number;
  portico: { version: string; node: string; pid: number; uptimeS: number; instanceId: string };
  config: { file: string; sha256: string; loadedAt: number };
  generations: GenerationStatus[];
  upstreams: UpstreamStatus[];
  dns: { names: DnsNameStatus[] };
}
