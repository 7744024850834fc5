/**
 * Upstream discovery, run by the master once per proxy instance (never by workers, never in
 * the request path). Every upstream server given by name (`address: name:port`) or by SRV
 * (`service: _http._tcp.name`) becomes a target that is resolved through Portico's DNS layer
 * at start, refreshed when its TTL runs out, and backed off on failure. What it learns is
 * published as a versioned PeerTable that the master pushes to every worker.
 *
 * Stale-safe: while the nameservers fail, the last known addresses are kept (up to
 * `stale_max`); an NXDOMAIN or empty answer removes them only once it has lasted
 * `remove_after`; DNS never fails a start or a reload (an unresolved name is an upstream
 * with no peers, answered with 503, until it resolves).
 */
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import type { AddressFamily, Config, DnsConfig } from "../config/types.js";
import {
  DnsError,
  type DnsObserver,
  isNoService,
  type LookupResult,
  lookupEach,
  NO_SERVICE,
  type QueryType,
  Resolver,
  type ResolverOptions,
  type SrvRecord,
} from "../dns/index.js";
import type { Logger } from "../observability/logger.js";
import type { DnsNameStatus } from "../observability/status.js";
import { explainDnsError, failureSignature, seconds } from "./dns-reports.js";
import {
  nameKey,
  type PeerTable,
  type ServicePeer,
  serverLabel,
  serviceKey,
  upstreamPeers,
} from "./peer-table.js";

/** Backoff after a failed lookup: 1 s, doubling, at most `dns.retry_max` (jittered below it). */
const BACKOFF_MIN_MS = 1000;
/** When a nameserver answers again, the failing names are asked again spread over this long at most. */
const RECOVERY_SPREAD_MS = 1000;
/**
 * After a TTL-0 answer that followed a positive TTL, the next ask (the resolver keeps it 250 ms),
 * up to 4 times: a recursive resolver counting in whole seconds gives TTL 0 for up to 1 s.
 */
const ZERO_TTL_RECHECK_MS = 300;
const ZERO_TTL_RECHECKS = 4;
/** While a name keeps failing, its warning is repeated this often (with how long it has lasted). */
const REPEAT_WARNING_MS = 60_000;

/** The result of one lookup of one record set. */
type Outcome =
  | {
      kind: "answer";
      ttl: number;
      addresses: string[];
      records: SrvRecord[];
      server?: string;
      transport?: string;
    }
  | { kind: "negative"; reason: string; ttl?: number }
  | { kind: "failure"; reason: string; signature: string };

/** What is known of one record set (A, AAAA or SRV of one name), kept across failures. */
interface RecordSet {
  /** Undefined until the first answer or negative answer. */
  addresses?: string[];
  records?: SrvRecord[];
  ttl: number;
  negativeSince?: number;
  failingSince?: number;
  /** Quick re-asks made since the TTL counted down to 0. */
  zeroRechecks?: number;
  reason?: string;
  /** For the status page: epoch ms of the last lookup, of the last change of the records, and when the TTL runs out. */
  lastLookup?: number;
  lastChange?: number;
  expiresAt?: number;
  /** Who gave the last answer (`hosts` for the hosts file). */
  server?: string;
  transport?: string;
}

interface Target {
  key: string;
  kind: "name" | "service";
  name: string;
  family: AddressFamily;
  sets: Map<"A" | "AAAA" | "SRV", RecordSet>;
  /** Longest `remove_after` among the upstreams using it (the most patient one wins). */
  removeAfter: number;
  failures: number;
  /** Epoch ms of the first failure of the current outage, and of its last warning. */
  failingSince: number;
  warnedAt: number;
  /** What the last warning said failed (codes and servers): a change is warned at once. */
  warned: string;
  timer?: NodeJS.Timeout;
  /** At least one lookup round finished. */
  settled: boolean;
  /** Round in progress. */
  busy: boolean;
}

/** The address record types a family asks for. */
export const typesFor = (family: AddressFamily): Array<"A" | "AAAA"> =>
  family === "ipv4" ? ["A"] : family === "ipv6" ? ["AAAA"] : ["A", "AAAA"];

/** What a config asks discovery to resolve, by table key. */
interface TargetSpec {
  kind: "name" | "service";
  name: string;
  family: AddressFamily;
  /** The longest `remove_after` of the upstreams naming it. */
  removeAfter: number;
}

/** Every name and SRV name the configs' upstream servers resolve (IP literals excluded). */
function configuredTargets(configs: readonly Config[]): Map<string, TargetSpec> {
  const wanted = new Map<string, TargetSpec>();
  for (const config of configs) {
    for (const upstream of Object.values(config.upstreams)) {
      const { family, removeAfter } = upstream.dns;
      for (const server of upstream.servers) {
        if (server.kind === "address" && server.fixed) continue;
        const [kind, name, key] =
          server.kind === "address"
            ? (["name", server.host, nameKey(server.host, family)] as const)
            : (["service", server.service, serviceKey(server.service, family)] as const);
        const longest = Math.max(removeAfter, wanted.get(key)?.removeAfter ?? 0);
        wanted.set(key, { kind, name, family, removeAfter: longest });
      }
    }
  }
  return wanted;
}

/**
 * Events: `change` (PeerTable) whenever the table changes; `upstream-change` (upstream name)
 * for each upstream of the newest config whose peers changed with it.
 */
export class Discovery extends EventEmitter {
  private resolver: Resolver;
  private dnsSettings: string;
  private readonly targets = new Map<string, Target>();
  private configs: Config[] = [];
  private current: PeerTable = { version: 0, names: {}, services: {} };
  private published = "";
  private stopped = false;
  /** The options of the current resolver (the `dns` section), for one-off lookups. */
  private options: ResolverOptions = {};

  /** @param observer told of every query and cache lookup of discovery's resolver (metrics). */
  constructor(
    dns: DnsConfig,
    private log: Logger,
    private readonly observer?: DnsObserver,
  ) {
    super();
    this.dnsSettings = JSON.stringify(dns);
    this.resolver = this.createResolver(dns);
  }

  /** The latest table (sent to every new worker). */
  get table(): PeerTable {
    return this.current;
  }

  /** Counters of the resolver behind discovery. */
  stats() {
    return this.resolver.stats();
  }

  /** Every record set discovery follows, for the status page. */
  names(): DnsNameStatus[] {
    const out: DnsNameStatus[] = [];
    for (const target of this.targets.values()) {
      for (const [type, set] of target.sets) {
        out.push({
          name: target.name,
          type,
          records: setRecords(set),
          ttl: set.ttl,
          expiresAt: set.expiresAt ?? 0,
          lastChange: set.lastChange ?? 0,
          lastLookup: set.lastLookup ?? 0,
          ...(set.reason ? { lastError: set.reason } : {}),
          stale: set.failingSince !== undefined && (set.addresses?.length ?? 0) > 0,
          ...(set.server ? { server: set.server } : {}),
          ...(set.transport ? { transport: set.transport } : {}),
        });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
  }

  /**
   * Ask `name` of each of `servers` (an undefined entry: discovery's own resolver, with its
   * cache and configured nameservers; a URL: that server alone, once, with the configured
   * CA and client certificate).
   */
  ask(name: string, type: QueryType, servers: Array<string | undefined>): Promise<LookupResult[]> {
    return lookupEach(name, type, servers, this.options, this.resolver);
  }

  /**
   * Drop the cached answers of `name` (every type), and ask again now for the targets of that
   * name: the next lookup goes to the nameservers. Returns how many cache entries went.
   */
  flush(name: string): number {
    const dropped = this.resolver.forget(name);
    const canonical = name.toLowerCase().replace(/\.$/, "");
    for (const target of this.targets.values()) {
      if (target.name === canonical && !target.busy) this.schedule(target, 0);
    }
    return dropped;
  }

  /** The logger follows a reload of the master's config. */
  setLogger(log: Logger): void {
    this.log = log;
  }

  /** Apply a reloaded `dns` section; the cache is kept unless the settings changed. */
  setDns(dns: DnsConfig): void {
    const settings = JSON.stringify(dns);
    if (settings === this.dnsSettings) return;
    this.dnsSettings = settings;
    const old = this.resolver;
    this.resolver = this.createResolver(dns);
    void old.close();
  }

  /**
   * The configs of every live generation: targets they name are kept (with what they
   * learned: a reload costs no query for a name already known), new ones are resolved now,
   * and the ones no config uses any more are stopped.
   */
  setConfigs(configs: Config[]): void {
    this.configs = configs;
    const wanted = configuredTargets(configs);
    for (const [key, want] of wanted) {
      const target = this.targets.get(key);
      if (target) target.removeAfter = want.removeAfter;
      else this.addTarget(key, want.kind, want.name, want.family, want.removeAfter);
    }
    this.collect(new Set(wanted.keys()));
    this.publish(undefined);
  }

  /** The master's resolver, from the `dns` section; a nameserver answering again re-asks the failing names. */
  private createResolver(dns: DnsConfig): Resolver {
    this.options = resolverOptions(dns, (file, err) =>
      this.log.error({ file }, `DNS: cannot read ${file}: ${err.message}`),
    );
    return new Resolver({
      ...this.options,
      observer: this.observer,
      onRecovered: (server) => this.recovered(server),
    });
  }

  /** Resolves once every current target has finished a first lookup, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ([...this.targets.values()].every((t) => t.settled)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /** Stop every refresh and close the resolver. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const target of this.targets.values()) clearTimeout(target.timer);
    this.targets.clear();
    await this.resolver.close();
  }

  private addTarget(
    key: string,
    kind: "name" | "service",
    name: string,
    family: AddressFamily,
    removeAfter: number,
  ): Target {
    const target: Target = {
      key,
      kind,
      name,
      family,
      sets: new Map(),
      removeAfter,
      failures: 0,
      failingSince: 0,
      warnedAt: 0,
      warned: "",
      settled: false,
      busy: false,
    };
    this.targets.set(key, target);
    void this.refresh(target);
    return target;
  }

  /** Drop targets that no config names and no SRV service points at. */
  private collect(configured: Set<string>): void {
    const referenced = new Set(configured);
    for (const target of this.targets.values()) {
      if (target.kind !== "service" || !configured.has(target.key)) continue;
      for (const record of target.sets.get("SRV")?.records ?? [])
        referenced.add(nameKey(record.target, target.family));
    }
    for (const [key, target] of this.targets) {
      if (referenced.has(key)) continue;
      clearTimeout(target.timer);
      this.targets.delete(key);
    }
  }

  /** One lookup round for a target, then schedule the next. Never throws. */
  private async refresh(target: Target): Promise<void> {
    if (this.stopped || target.busy) return;
    target.busy = true;
    clearTimeout(target.timer);
    const types = target.kind === "service" ? (["SRV"] as const) : typesFor(target.family);
    const outcomes = await Promise.all(types.map((type) => this.lookup(target.name, type)));
    target.busy = false;
    if (this.stopped || this.targets.get(target.key) !== target) return;
    const now = Date.now();
    const staleMax = this.configs.at(-1)?.dns.staleMax ?? 86_400_000;
    // A TTL 0 right after a positive one: a recursive resolver's cache counting down its last
    // second; its fresh answer comes soon, so ask again soon rather than after min_ttl.
    let countdownEnded = false;
    outcomes.forEach((outcome, i) => {
      const type = types[i] as "A" | "AAAA" | "SRV";
      const set = target.sets.get(type) ?? { ttl: 0 };
      target.sets.set(type, set);
      if (outcome.kind === "answer" && outcome.ttl === 0) {
        // Rechecked a few times (the last second of the countdown), then min_ttl as for any TTL 0.
        if (set.ttl > 0) set.zeroRechecks = 0;
        if ((set.zeroRechecks ?? ZERO_TTL_RECHECKS) < ZERO_TTL_RECHECKS) {
          set.zeroRechecks = (set.zeroRechecks ?? 0) + 1;
          countdownEnded = true;
        }
      }
      applyOutcome(set, outcome, now, target.removeAfter, staleMax);
    });
    if (!target.settled) target.settled = true;
    if (target.kind === "service") this.followTargets(target);

    const failed = outcomes.filter((o) => o.kind === "failure");
    let delay: number;
    if (failed.length > 0) {
      target.failures++;
      if (target.failures === 1) target.failingSince = now;
      const retryMax = this.retryMaxMs();
      const base = Math.min(retryMax, BACKOFF_MIN_MS * 2 ** (target.failures - 1));
      // Jitter below the bound, so names failing together spread out and the bound holds.
      delay = base * (0.8 + Math.random() * 0.2);
      const signature = failed.map((f) => (f.kind === "failure" ? f.signature : "")).join(" ");
      if (
        target.failures === 1 ||
        signature !== target.warned ||
        now - target.warnedAt >= REPEAT_WARNING_MS
      ) {
        target.warnedAt = now;
        target.warned = signature;
        const kept = this.peerCount(target);
        const lasting = target.failures === 1 ? "" : ` (failing for ${seconds(now - target.failingSince)})`;
        this.log.warn(
          { target: target.name, failures: target.failures },
          `DNS: ${target.name}${lasting}: ${failed.map((f) => f.reason).join("; ")}; ${kept > 0 ? `keeping the ${kept} known address(es)` : "no address known yet"}, retrying within ${seconds(retryMax)}`,
        );
      }
    } else {
      if (target.failures > 0)
        this.log.info(
          { target: target.name, failures: target.failures },
          `DNS: ${target.name} answers again after ${seconds(now - target.failingSince)} of failures`,
        );
      target.failures = 0;
      // Refresh when the TTL runs out (the resolver's cache entry has expired by then, so this
      // is a real query), plus up to 5% (at most 500 ms) of jitter so names spread out.
      const ttls = outcomes.flatMap((o) => (o.kind !== "failure" && o.ttl !== undefined ? [o.ttl] : []));
      const ttlMs = ttls.length > 0 ? Math.min(...ttls) * 1000 : undefined;
      const minTtl = this.configs.at(-1)?.dns.minTtl ?? 1000;
      // TTL 0 is raised to min_ttl, except right after a countdown (see above).
      if (ttlMs === 0) delay = countdownEnded ? Math.min(ZERO_TTL_RECHECK_MS, minTtl) : minTtl;
      else if (ttlMs === undefined) delay = this.negativeRetryMs();
      else delay = ttlMs + 10 + Math.random() * Math.min(ttlMs * 0.05, 500);
    }
    this.schedule(target, delay);
    this.publish(target);
  }

  private schedule(target: Target, delay: number): void {
    clearTimeout(target.timer);
    target.timer = setTimeout(() => void this.refresh(target), delay);
    target.timer.unref();
  }

  /**
   * A nameserver answers again after failing: every name still failing is asked again now
   * rather than at the end of its backoff, spread out (at most 1 s, 20 ms apart on average) so
   * the recovering server is not hit by every name at once.
   */
  private recovered(server: string): void {
    if (this.stopped) return;
    const failing = [...this.targets.values()].filter((t) => t.failures > 0 && !t.busy);
    if (failing.length === 0) return;
    this.log.info(
      { server, names: failing.length },
      `DNS: nameserver ${server} answers again; asking the ${failing.length} failing name(s) again now`,
    );
    const spread = Math.min(RECOVERY_SPREAD_MS, 20 * failing.length);
    for (const target of failing) this.schedule(target, Math.random() * spread);
  }

  private retryMaxMs(): number {
    return Math.max(BACKOFF_MIN_MS, this.configs.at(-1)?.dns.retryMax ?? 5000);
  }

  /** Retry interval while a name is NXDOMAIN/empty: `min_ttl`, at least 1 s. */
  private negativeRetryMs(): number {
    return Math.max(1000, this.configs.at(-1)?.dns.minTtl ?? 1000);
  }

  /** SRV: make sure every target name is being resolved (shared with `address` servers). */
  private followTargets(service: Target): void {
    for (const record of service.sets.get("SRV")?.records ?? []) {
      const key = nameKey(record.target, service.family);
      const existing = this.targets.get(key);
      if (existing) existing.removeAfter = Math.max(existing.removeAfter, service.removeAfter);
      else this.addTarget(key, "name", record.target, service.family, service.removeAfter);
    }
    this.collect(new Set(configuredTargets(this.configs).keys()));
  }

  private async lookup(name: string, type: "A" | "AAAA" | "SRV"): Promise<Outcome> {
    try {
      const answer = await this.resolver.resolve(name, type);
      if (answer.stale) {
        const why = answer.failure ? explainDnsError(answer.failure) : "every nameserver failed";
        return {
          kind: "failure",
          reason: `${type} lookup failed: ${why}; only a stale answer is left (expired ${seconds(answer.staleForMs ?? 0)} ago)`,
          signature: `${type} ${answer.failure ? failureSignature(answer.failure) : "stale"}`,
        };
      }
      const addresses = answer.records.flatMap((r) =>
        r.type === "A" || r.type === "AAAA" ? [r.address] : [],
      );
      if (isNoService(answer.records)) {
        return {
          kind: "negative",
          reason: `${NO_SERVICE} (SRV target '.' from ${answer.source.server ?? "the nameserver"})`,
          ttl: answer.ttl,
        };
      }
      const records = answer.records.filter((r): r is SrvRecord => r.type === "SRV" && r.target !== "");
      const server = answer.source.kind === "hosts" ? "hosts file" : answer.source.server;
      return {
        kind: "answer",
        ttl: answer.ttl,
        addresses,
        records,
        server,
        transport: answer.source.transport,
      };
    } catch (err) {
      if (err instanceof DnsError && (err.code === "NXDOMAIN" || err.code === "NODATA")) {
        return { kind: "negative", reason: `${type}: ${explainDnsError(err)}` };
      }
      const reason = err instanceof DnsError ? explainDnsError(err) : String(err);
      const signature = `${type} ${err instanceof DnsError ? failureSignature(err) : "error"}`;
      return { kind: "failure", reason: `${type} lookup failed: ${reason}`, signature };
    }
  }

  private peerCount(target: Target): number {
    if (target.kind === "service") return this.current.services[target.key]?.peers.length ?? 0;
    return this.current.names[target.key]?.addresses.length ?? 0;
  }

  /** Rebuild the table; if it changed, log every upstream's diff and emit `change`. */
  private publish(cause: Target | undefined): void {
    const names: PeerTable["names"] = {};
    const services: PeerTable["services"] = {};
    for (const target of this.targets.values()) {
      if (target.kind === "name") names[target.key] = nameView(target);
    }
    for (const target of this.targets.values()) {
      if (target.kind !== "service") continue;
      const srv = target.sets.get("SRV");
      const peers: ServicePeer[] = [];
      let ttl = srv?.ttl ?? 0;
      for (const record of srv?.records ?? []) {
        const resolved = names[nameKey(record.target, target.family)];
        if (resolved?.addresses.length) ttl = Math.min(ttl, resolved.ttl);
        for (const address of resolved?.addresses ?? []) {
          peers.push({
            address,
            port: record.port,
            weight: record.weight,
            priority: record.priority,
            target: record.target,
          });
        }
      }
      const reason =
        peers.length > 0
          ? undefined
          : (srv?.reason ?? (srv?.records?.length ? "its SRV targets do not resolve" : "not resolved yet"));
      services[target.key] = { peers, ttl, ...(reason ? { reason } : {}) };
    }
    const serialized = JSON.stringify({ names, services });
    if (serialized === this.published) return;
    this.published = serialized;
    const previous = this.current;
    this.current = { version: previous.version + 1, names, services };
    this.logChanges(previous, this.current, cause);
    this.emit("change", this.current);
  }

  /** `upstream api: +10.0.0.3:8080 -10.0.0.2:8080 (api.internal, ttl 30s)`, for the newest config's upstreams. */
  private logChanges(before: PeerTable, after: PeerTable, cause: Target | undefined): void {
    const config = this.configs.at(-1);
    if (!config) return;
    for (const upstream of Object.values(config.upstreams)) {
      if (upstream.servers.every((s) => s.kind === "address" && s.fixed)) continue;
      const old = new Set(upstreamPeers(upstream, before).peers.map((p) => p.key));
      const now = upstreamPeers(upstream, after);
      const added = now.peers.filter((p) => !old.has(p.key)).map((p) => `+${p.key}`);
      const kept = new Set(now.peers.map((p) => p.key));
      const removed = [...old].filter((k) => !kept.has(k)).map((k) => `-${k}`);
      if (added.length === 0 && removed.length === 0) continue;
      this.emit("upstream-change", upstream.name);
      const why = cause ? causeText(cause, after) : upstream.servers.map(serverLabel).join(", ");
      const line = `upstream ${upstream.name}: ${[...added, ...removed].join(" ")} (${why})`;
      if (now.peers.length === 0)
        this.log.warn(
          { upstream: upstream.name, missing: now.missing },
          `${line}; no peer left: requests get 503`,
        );
      else this.log.info({ upstream: upstream.name, peers: now.peers.length, version: after.version }, line);
    }
  }
}

/** Fold one lookup outcome into what is known of a record set. */
function applyOutcome(
  set: RecordSet,
  outcome: Outcome,
  now: number,
  removeAfter: number,
  staleMax: number,
): void {
  set.lastLookup = now;
  const before = describeSet(set);
  applyOutcomeTo(set, outcome, now, removeAfter, staleMax);
  if (describeSet(set) !== before) set.lastChange = now;
  if (outcome.kind === "answer") {
    set.expiresAt = now + outcome.ttl * 1000;
    set.server = outcome.server;
    set.transport = outcome.transport;
  }
}

/** What a record set holds, as the status page lists it. */
export function setRecords(set: RecordSet): string[] {
  if (set.records?.length) return set.records.map((r) => `${r.priority} ${r.weight} ${r.port} ${r.target}`);
  return set.addresses ?? [];
}

function describeSet(set: RecordSet): string {
  return set.addresses === undefined ? "" : setRecords(set).join(",");
}

function applyOutcomeTo(
  set: RecordSet,
  outcome: Outcome,
  now: number,
  removeAfter: number,
  staleMax: number,
): void {
  if (outcome.kind === "answer") {
    set.addresses = outcome.addresses;
    set.records = outcome.records;
    set.ttl = outcome.ttl;
    set.negativeSince = undefined;
    set.failingSince = undefined;
    set.reason = undefined;
    return;
  }
  set.reason = outcome.reason;
  if (outcome.kind === "negative") {
    set.failingSince = undefined;
    set.negativeSince ??= now;
    // One NXDOMAIN is not enough to drop working peers: only one that lasts `remove_after`.
    if (set.addresses === undefined || now - set.negativeSince >= removeAfter) {
      set.addresses = [];
      set.records = [];
    }
    return;
  }
  set.failingSince ??= now;
  // Nameservers failing: keep the last known answer, up to `stale_max`.
  if (set.addresses !== undefined && now - set.failingSince >= staleMax) {
    set.addresses = [];
    set.records = [];
    set.reason = `${outcome.reason} (for longer than stale_max)`;
  }
}

/** A name's addresses under its family policy. */
function nameView(target: Target): { addresses: string[]; ttl: number; reason?: string } {
  const a = target.sets.get("A");
  const aaaa = target.sets.get("AAAA");
  const v4 = a?.addresses ?? [];
  const v6 = aaaa?.addresses ?? [];
  let addresses: string[];
  let used: Array<RecordSet | undefined>;
  switch (target.family) {
    case "ipv4":
      [addresses, used] = [v4, [a]];
      break;
    case "ipv6":
      [addresses, used] = [v6, [aaaa]];
      break;
    case "prefer_ipv4":
      [addresses, used] = v4.length > 0 ? [v4, [a]] : [v6, [aaaa]];
      break;
    case "prefer_ipv6":
      [addresses, used] = v6.length > 0 ? [v6, [aaaa]] : [v4, [a]];
      break;
    default:
      [addresses, used] = [
        [...v4, ...v6],
        [a, aaaa],
      ];
  }
  const ttls = used.filter((s): s is RecordSet => !!s?.addresses?.length).map((s) => s.ttl);
  const ttl = ttls.length > 0 ? Math.min(...ttls) : 0;
  if (addresses.length > 0) return { addresses, ttl };
  const reasons = [a, aaaa].map((s) => s?.reason).filter((r): r is string => !!r);
  return {
    addresses,
    ttl,
    reason: reasons.length > 0 ? `${target.name}: ${reasons.join("; ")}` : "not resolved yet",
  };
}

function causeText(target: Target, table: PeerTable): string {
  const view = target.kind === "name" ? table.names[target.key] : table.services[target.key];
  if (view?.reason) return `${target.name}, ${view.reason}`;
  return `${target.name}, ttl ${view?.ttl ?? 0}s`;
}

/** Resolver options from the `dns` section; `onReadError` hears of a CA/cert/key file that cannot be read. */
export function resolverOptions(
  dns: DnsConfig,
  onReadError: (file: string, err: Error) => void,
): ResolverOptions {
  const read = (file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      onReadError(file, err as Error);
      return undefined;
    }
  };
  return {
    nameservers: dns.nameservers,
    timeoutMs: dns.timeout,
    attempts: dns.attempts,
    minTtl: dns.minTtl / 1000,
    maxTtl: dns.maxTtl / 1000,
    staleMaxMs: dns.staleMax,
    // Discovery backs off on its own; the resolver must not hide a recovered server for 30 s.
    staleRetryMs: 1000,
    tls: { ca: read(dns.ca), cert: read(dns.cert), key: read(dns.key) },
  };
}
