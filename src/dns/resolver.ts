/**
 * The stub resolver: hosts file, then cache, then the nameservers (failover or rotate, with a
 * circuit breaker each), CNAME chains followed, negative answers cached (RFC 2308), stale
 * answers served when every nameserver fails (RFC 8767), one query in flight per name and
 * type, and a refresh fetched ahead when a hit lands in the last 10% of an entry's TTL.
 */
import type { BreakerOptions } from "./breaker.js";
import { type CacheCounters, type CacheEntry, DnsCache } from "./cache.js";
import {
  DnsError,
  type DnsErrorCode,
  describeFailures,
  SERVER_FAILURES,
  type ServerFailure,
} from "./errors.js";
import { HostsFile } from "./hosts.js";
import { answerRecords, canonicalName, negativeTtl, type Response } from "./message.js";
import { type DnsObserver, Nameserver, type NameserverStats, type TlsOptions } from "./nameserver.js";
import { readResolvConf } from "./resolv-conf.js";
import type {
  AnswerSource,
  CnameRecord,
  DnsAnswer,
  DnsRecord,
  QueryType,
  Question,
  TransportKind,
} from "./types.js";

/** Resolver settings. Durations in milliseconds, TTLs in seconds. */
export interface ResolverOptions {
  /** Nameserver URLs in order (`udp://IP:53`, `tcp://IP:53`, `tls://host:853`, `https://host/dns-query`). Default: those of `resolvConf`. */
  nameservers?: string[];
  /** resolv.conf to read when `nameservers` is not given. Default `/etc/resolv.conf`. */
  resolvConf?: string;
  /** Hosts file consulted first, or false for none. Default `/etc/hosts`. */
  hostsFile?: string | false;
  /** Per attempt. Default: resolv.conf's `timeout` (5 s), or 2000 ms with explicit nameservers. */
  timeoutMs?: number;
  /** Rounds over the nameservers. Default: resolv.conf's `attempts` (2). */
  attempts?: number;
  /** Start each query at the next nameserver instead of the first. Default: resolv.conf's `rotate`. */
  rotate?: boolean;
  /** Search domains for relative names (resolv.conf's with its nameservers; none with explicit ones). */
  search?: string[];
  /** A name with fewer dots than this is tried with the search domains first. Default 1. */
  ndots?: number;
  /** CA, client certificate and key for `tls://` and `https://` nameservers. */
  tls?: TlsOptions;
  breaker?: BreakerOptions;
  /** Most entries in the cache (LRU beyond). Default 10000. */
  maxEntries?: number;
  /** TTL clamp for answers (not for TTL 0), seconds; fractions allowed. Defaults 1 and 86400. */
  minTtl?: number;
  maxTtl?: number;
  /** Longest time a negative answer is cached, seconds. Default 3600. */
  maxNegativeTtl?: number;
  /** How long past expiry an entry may be served stale while every nameserver fails, ms. Default 1 day (RFC 8767 suggests 1 to 3 days). */
  staleMaxMs?: number;
  /** After a failed refresh, how long stale data is served before the nameservers are asked again, ms (RFC 8767 §5: 30 s). Also the TTL of a stale answer. */
  staleRetryMs?: number;
  /** TTL given to hosts-file answers, seconds. Default 5. */
  hostsTtl?: number;
  /** Longest CNAME chain followed. Default 8. */
  maxCnameChain?: number;
  /**
   * `udp://` nameservers: how many queries one socket (one random source port) carries, one at
   * a time, before it is closed and replaced by a socket on a new random port. 1 is a fresh
   * socket for every query; larger trades some port churn (RFC 5452 §9.2) for speed. Default 8.
   */
  udpQueriesPerSocket?: number;
  /**
   * Called when a nameserver whose last query failed gives an answer again (NOERROR or NXDOMAIN). Stale
   * entries are then asked again at once instead of after `staleRetryMs`; a caller that
   * retries failing names on its own schedule (discovery) re-asks them now.
   */
  onRecovered?: (server: string) => void;
  /** Told of every query and cache lookup (metrics). */
  observer?: DnsObserver;
}

/** The resolver's counters: cache and each nameserver. */
export interface ResolverStats {
  cache: CacheCounters & { size: number };
  nameservers: NameserverStats[];
}

/** A nameserver's response and who gave it, as `ask` returns it. */
interface Asked {
  response: Response;
  server: string;
  transport: TransportKind;
}

/**
 * An answer with TTL 0 is reported with TTL 0 but kept this long (seconds, or `minTtl` if
 * shorter), so concurrent askers still share it. TTL 0 means "do not cache" (RFC 1035 §3.2.1),
 * and a recursive resolver counting its cache in whole seconds gives it during the last second
 * before it refetches: a caller asking again soon after gets the fresh answer, not this one.
 */
const ZERO_TTL_KEEP_S = 0.25;

/** For the prefetch, whose failure only the cache counters show. */
function ignore(): void {}

export class Resolver {
  readonly nameservers: Nameserver[];
  readonly cache: DnsCache;
  private readonly hosts: HostsFile | undefined;
  private readonly inflight = new Map<string, Promise<DnsAnswer>>();
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly rotate: boolean;
  private readonly search: string[];
  private readonly ndots: number;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly maxNegativeTtl: number;
  private readonly staleRetryMs: number;
  private readonly hostsTtl: number;
  private readonly maxCnameChain: number;
  private readonly onRecovered: ((server: string) => void) | undefined;
  private readonly observer: DnsObserver | undefined;
  private nextServer = 0;
  /** Nameservers whose last query failed (no answer, or SERVFAIL/REFUSED). */
  private readonly failing = new Set<Nameserver>();

  constructor(options: ResolverOptions = {}) {
    const explicit = options.nameservers !== undefined;
    const conf = explicit ? undefined : readResolvConf(options.resolvConf);
    this.nameservers = (options.nameservers ?? conf?.nameservers ?? []).map(
      (url) =>
        new Nameserver(url, options.tls, options.breaker, options.udpQueriesPerSocket, options.observer),
    );
    this.timeoutMs = options.timeoutMs ?? (conf ? conf.timeout * 1000 : 2000);
    this.attempts = options.attempts ?? conf?.attempts ?? 2;
    this.rotate = options.rotate ?? conf?.rotate ?? false;
    this.search = (options.search ?? conf?.search ?? []).map(canonicalName);
    this.ndots = options.ndots ?? conf?.ndots ?? 1;
    this.minTtl = options.minTtl ?? 1;
    this.maxTtl = options.maxTtl ?? 86_400;
    this.maxNegativeTtl = options.maxNegativeTtl ?? 3600;
    this.staleRetryMs = options.staleRetryMs ?? 30_000;
    this.hostsTtl = options.hostsTtl ?? 5;
    this.maxCnameChain = options.maxCnameChain ?? 8;
    this.onRecovered = options.onRecovered;
    this.observer = options.observer;
    this.cache = new DnsCache(options.maxEntries ?? 10_000, options.staleMaxMs ?? 86_400_000);
    const hostsFile = options.hostsFile ?? "/etc/hosts";
    this.hosts = hostsFile === false ? undefined : new HostsFile(hostsFile);
  }

  /**
   * Resolve `name` to its `type` records. Rejects with a DnsError (NXDOMAIN, NODATA, SERVFAIL,
   * REFUSED, TIMEOUT, MALFORMED, NETWORK, CNAME_LOOP, BAD_NAME, NO_NAMESERVERS).
   */
  resolve(name: string, type: QueryType = "A"): Promise<DnsAnswer> {
    const canonical = canonicalName(name);
    if (this.search.length === 0 || name.endsWith(".")) return this.resolveExact(canonical, type, []);
    return this.resolveSearch(canonical, type);
  }

  /** resolv.conf(5) search: names with fewer than `ndots` dots try the search domains first. */
  private async resolveSearch(name: string, type: QueryType): Promise<DnsAnswer> {
    const expanded = this.search.map((domain) => `${name}.${domain}`);
    const dots = name.split(".").length - 1;
    const candidates = dots >= this.ndots ? [name, ...expanded] : [...expanded, name];
    let first: unknown;
    for (const candidate of candidates) {
      try {
        return await this.resolveExact(candidate, type, []);
      } catch (err) {
        if (!(err instanceof DnsError) || (err.code !== "NXDOMAIN" && err.code !== "NODATA")) throw err;
        first ??= candidate === name ? err : undefined;
        first ??= err;
      }
    }
    throw first;
  }

  /** One name, no search list: hosts, cache, then a (shared) query. `chain` holds the names already followed. */
  private resolveExact(name: string, type: QueryType, chain: string[]): Promise<DnsAnswer> {
    const now = Date.now();
    if (this.hosts && (type === "A" || type === "AAAA")) {
      const fromHosts = this.fromHosts(name, type, now);
      if (fromHosts) return Promise.resolve(fromHosts);
    }
    const key = `${type} ${name}`;
    const entry = this.cache.get(key, now);
    if (entry && now < entry.expiresAt) {
      this.cache.counters.hits++;
      this.observer?.cache?.("hit");
      // Prefetch: a hit in the last 10% of the TTL refreshes the entry before it expires.
      if (entry.expiresAt - now < entry.ttl * 100 && !this.inflight.has(key)) {
        this.cache.counters.prefetches++;
        this.share(key, name, type, chain, entry).catch(ignore);
      }
      return entry.answer
        ? Promise.resolve(fromCache(entry, entry.answer, now))
        : Promise.reject(negativeError(entry));
    }
    this.cache.counters.misses++;
    this.observer?.cache?.("miss");
    if (entry && now < entry.retryAfter) return this.serveStale(entry, now);
    return this.share(key, name, type, chain, entry);
  }

  /** Single flight: concurrent callers of one name and type share one query. */
  private share(
    key: string,
    name: string,
    type: QueryType,
    chain: string[],
    stale: CacheEntry | undefined,
  ): Promise<DnsAnswer> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const badName = nameError(name, type);
    if (badName) return Promise.reject(badName);
    // query() always awaits before it settles (and leaves `inflight` in its finally), so the
    // promise is registered here before it can be removed.
    const promise = this.query(key, name, type, chain, stale);
    this.inflight.set(key, promise);
    return promise;
  }

  private fromHosts(name: string, type: "A" | "AAAA", now: number): DnsAnswer | undefined {
    let addresses = this.hosts?.lookup(name, type, now);
    // RFC 6761 §6.3: localhost names are loopback, whatever the nameservers say.
    if (!addresses?.length && (name === "localhost" || name.endsWith(".localhost"))) {
      addresses = [type === "A" ? "127.0.0.1" : "::1"];
    }
    if (!addresses?.length) return undefined;
    const ttl = this.hostsTtl;
    return {
      name,
      type,
      records: addresses.map((address) => ({ type, name, ttl, address })),
      cnames: [],
      ttl,
      source: { kind: "hosts" },
      stale: false,
    };
  }

  /**
   * Ask the nameservers; on server failure fall back to the stale entry if there is one.
   * Removes `key` from `inflight` when done.
   */
  private async query(
    key: string,
    name: string,
    type: QueryType,
    chain: string[],
    stale: CacheEntry | undefined,
  ): Promise<DnsAnswer> {
    try {
      let asked: Asked;
      try {
        asked = await this.ask(name, type);
      } catch (err) {
        if (stale && err instanceof DnsError && SERVER_FAILURES.has(err.code)) {
          const now = Date.now();
          stale.retryAfter = now + this.staleRetryMs;
          stale.failure = err;
          return this.staleAnswer(stale, now);
        }
        throw err;
      }
      const answer = this.store(key, name, type, chain, asked);
      // Only a CNAME chain without its end needs another (awaited) lookup.
      return answer instanceof Promise ? await answer : answer;
    } finally {
      this.inflight.delete(key);
    }
  }

  private serveStale(entry: CacheEntry, now: number): Promise<DnsAnswer> {
    try {
      return Promise.resolve(this.staleAnswer(entry, now));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** An expired entry served per RFC 8767 (the retry interval as TTL), or its negative error thrown. */
  private staleAnswer(entry: CacheEntry, now: number): DnsAnswer {
    this.cache.counters.staleServed++;
    this.observer?.cache?.("stale");
    if (!entry.answer) throw negativeError(entry);
    const answer = fromCache(entry, entry.answer, now);
    answer.ttl = Math.max(1, Math.ceil(this.staleRetryMs / 1000));
    answer.stale = true;
    answer.staleForMs = Math.max(0, now - entry.expiresAt);
    if (entry.failure) answer.failure = entry.failure;
    return answer;
  }

  /** Failover across nameservers (or rotate), `attempts` rounds; open breakers are skipped unless all are open. */
  private async ask(name: string, type: QueryType): Promise<Asked> {
    const servers = this.nameservers;
    const count = servers.length;
    if (count === 0) {
      throw new DnsError(
        "NO_NAMESERVERS",
        `cannot resolve ${name}: no nameserver configured (and none in resolv.conf)`,
        { name, type },
      );
    }
    const start = this.rotate ? this.nextServer++ % count : 0;
    const question: Question = { name, type };
    const failures: ServerFailure[] = [];
    let lastCode: DnsErrorCode = "TIMEOUT";
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      // Every breaker is consulted once per round, before any is asked (allow() lets one probe
      // through); with one server it is asked whatever its breaker says.
      let ordered: readonly Nameserver[] = servers;
      if (count === 1) servers[0]?.breaker.allow();
      else {
        const rotated: Nameserver[] = [];
        const allowed: Nameserver[] = [];
        for (let i = 0; i < count; i++) {
          const ns = servers[(start + i) % count] as Nameserver;
          rotated.push(ns);
          if (ns.breaker.allow()) allowed.push(ns);
        }
        ordered = allowed.length > 0 ? allowed : rotated;
      }
      for (const ns of ordered) {
        try {
          const { response, transport } = await ns.query(question, this.timeoutMs);
          const rcode = response.rcode ?? "NOERROR";
          // SERVFAIL is often about the name, not the server: it answered, so the breaker stays closed.
          if (rcode === "NOERROR" || rcode === "NXDOMAIN" || rcode === "SERVFAIL") ns.breaker.success();
          else ns.breaker.failure();
          if (rcode === "NOERROR" || rcode === "NXDOMAIN") {
            this.answered(ns);
            return { response, server: ns.url, transport };
          }
          this.failing.add(ns);
          lastCode = rcode === "SERVFAIL" || rcode === "REFUSED" ? rcode : "SERVFAIL";
          addFailure(failures, ns.url, transport, lastCode, `rcode ${rcode}`);
        } catch (err) {
          ns.breaker.failure();
          this.failing.add(ns);
          const e = err instanceof DnsError ? err : new DnsError("NETWORK", String(err), { cause: err });
          lastCode = e.code;
          const detail = e.message.startsWith(`${ns.url}: `) ? e.message.slice(ns.url.length + 2) : e.message;
          addFailure(failures, ns.url, e.details.transport ?? ns.kind, e.code, detail);
        }
      }
    }
    const first = failures[0];
    throw new DnsError(lastCode, `${name} ${type}: ${describeFailures(failures)}`, {
      name,
      type,
      server: failures.length === 1 ? first?.server : undefined,
      transport: failures.length === 1 ? first?.transport : undefined,
      failures,
    });
  }

  /** A nameserver gave an answer (NOERROR or NXDOMAIN): if its last query failed, it is back. */
  private answered(ns: Nameserver): void {
    if (!this.failing.delete(ns)) return;
    this.cache.endRetryWaits();
    this.onRecovered?.(ns.url);
  }

  /**
   * Turn a response into an answer and cache it, or cache and throw the negative error. A CNAME
   * chain the server did not finish is followed through the cache: then the result is a promise.
   */
  private store(
    key: string,
    name: string,
    type: QueryType,
    chain: string[],
    { response, server, transport }: Asked,
  ): DnsAnswer | Promise<DnsAnswer> {
    const records = answerRecords(response);
    const source: AnswerSource = { kind: "nameserver", server, transport };
    const cnames: CnameRecord[] = [];
    let current = name;
    const matches: DnsRecord[] = [];
    // With NXDOMAIN too: the rcode is about the end of the chain (RFC 6604 §2.1).
    for (;;) {
      let cname: CnameRecord | undefined;
      for (const r of records) {
        if (r.name !== current) continue;
        if (r.type === type) matches.push(r);
        else if (r.type === "CNAME") cname ??= r;
      }
      if (matches.length > 0 || !cname) break;
      this.checkChain(name, cname.target, [...chain, ...cnames.map((c) => c.name)], cnames.length);
      cnames.push(cname);
      current = cname.target;
    }
    if (matches.length > 0) {
      let ttl = Number.POSITIVE_INFINITY;
      for (const r of matches) if (r.ttl < ttl) ttl = r.ttl;
      for (const r of cnames) if (r.ttl < ttl) ttl = r.ttl;
      ttl = this.clamp(ttl);
      // Usually every record matched: keep the one array (the answer stays in the cache).
      const kept = matches.length === records.length ? records : matches;
      const answer: DnsAnswer = { name, type, records: kept, cnames, ttl, source, stale: false };
      this.remember(key, ttl, answer, undefined);
      return answer;
    }
    if (cnames.length > 0 && response.rcode !== "NXDOMAIN") {
      return this.followChain(key, name, type, chain, cnames, current, source);
    }
    const code = response.rcode === "NXDOMAIN" ? "NXDOMAIN" : "NODATA";
    // A dangling alias: name the target that is missing, not the name asked.
    const alias = cnames.length > 0 ? `${name} is an alias (CNAME) of ${current}, which ` : `${name} `;
    const message =
      code === "NXDOMAIN"
        ? `${alias}does not exist (NXDOMAIN from ${server})`
        : `${alias}has no ${type} record (NODATA from ${server})`;
    const details = { name, type, server, transport, ...(cnames.length > 0 ? { target: current } : {}) };
    const negTtl = negativeTtl(response);
    // RFC 2308 §5: without an SOA the negative answer must not be cached.
    if (negTtl !== undefined)
      this.remember(key, Math.min(Math.max(negTtl, this.minTtl), this.maxNegativeTtl), undefined, {
        code,
        message,
        details,
      });
    throw new DnsError(code, message, details);
  }

  /** The server gave the chain but not its end: ask for the target (through the cache). */
  private async followChain(
    key: string,
    name: string,
    type: QueryType,
    chain: string[],
    cnames: CnameRecord[],
    target: string,
    source: AnswerSource,
  ): Promise<DnsAnswer> {
    let end: DnsAnswer;
    try {
      end = await this.resolveExact(target, type, [...chain, name, ...cnames.map((c) => c.name)]);
    } catch (err) {
      if (!(err instanceof DnsError) || (err.code !== "NXDOMAIN" && err.code !== "NODATA")) throw err;
      // A dangling alias: say which name of the chain is missing.
      throw new DnsError(err.code, `${name} is an alias (CNAME) of ${target}: ${err.message}`, {
        ...err.details,
        name,
        type,
        target: err.details.target ?? target,
      });
    }
    const ttl = this.clamp(Math.min(end.ttl, ...cnames.map((r) => r.ttl)));
    const answer: DnsAnswer = { ...end, name, cnames: [...cnames, ...end.cnames], ttl, source };
    if (!end.stale) this.remember(key, ttl, answer, undefined);
    return answer;
  }

  private checkChain(name: string, target: string, seen: string[], length: number): void {
    if (target === name || seen.includes(target)) {
      throw new DnsError(
        "CNAME_LOOP",
        `CNAME loop resolving ${name}: ${[...seen, name].join(" -> ")} -> ${target}`,
        { name },
      );
    }
    if (length + seen.length >= this.maxCnameChain) {
      throw new DnsError("CNAME_LOOP", `CNAME chain from ${name} is longer than ${this.maxCnameChain}`, {
        name,
      });
    }
  }

  private remember(
    key: string,
    ttl: number,
    answer: DnsAnswer | undefined,
    negative: CacheEntry["negative"],
  ): void {
    const now = Date.now();
    const keep = ttl === 0 ? Math.min(ZERO_TTL_KEEP_S, this.minTtl) : ttl;
    this.cache.set(key, {
      answer,
      negative,
      ttl,
      storedAt: now,
      expiresAt: now + keep * 1000,
      retryAfter: 0,
    });
  }

  /** TTL 0 stays 0 (see ZERO_TTL_KEEP_S); others are clamped to [minTtl, maxTtl]. */
  private clamp(ttl: number): number {
    if (ttl === 0) return 0;
    return Math.min(Math.max(ttl, this.minTtl), this.maxTtl);
  }

  /**
   * Drop the cached answers for `name` (canonical form: lower case, no trailing dot), of
   * `type` or of every type; returns how many entries went.
   */
  forget(name: string, type?: QueryType): number {
    const canonical = canonicalName(name);
    const types: QueryType[] = type ? [type] : ["A", "AAAA", "SRV", "CNAME"];
    let dropped = 0;
    for (const t of types) if (this.cache.delete(`${t} ${canonical}`)) dropped++;
    return dropped;
  }

  stats(): ResolverStats {
    return {
      cache: { ...this.cache.counters, size: this.cache.size },
      nameservers: this.nameservers.map((ns) => ns.stats()),
    };
  }

  /** Close every nameserver connection. */
  async close(): Promise<void> {
    await Promise.all(this.nameservers.map((ns) => ns.close()));
  }
}

/** Count one server's failure, merged with an identical one from an earlier round. */
function addFailure(
  failures: ServerFailure[],
  server: string,
  transport: TransportKind,
  code: DnsErrorCode,
  detail: string,
): void {
  const same = failures.find((f) => f.server === server && f.code === code && f.transport === transport);
  if (same) same.count++;
  else failures.push({ server, transport, code, detail, count: 1 });
}

/** A cached answer as returned: TTL counted down, source `cache` (keeping which server gave it). */
function fromCache(entry: CacheEntry, answer: DnsAnswer, now: number): DnsAnswer {
  return {
    name: answer.name,
    type: answer.type,
    records: answer.records,
    cnames: answer.cnames,
    ttl: Math.min(entry.ttl, Math.max(0, Math.ceil((entry.expiresAt - now) / 1000))),
    source: { kind: "cache", server: answer.source.server, transport: answer.source.transport },
    stale: false,
  };
}

function negativeError(entry: CacheEntry): DnsError {
  const negative = entry.negative ?? { code: "SERVFAIL" as const, message: "cache entry without answer" };
  return new DnsError(negative.code, `${negative.message} (cached)`, negative.details);
}

const DOT = 0x2e;
const HYPHEN = 0x2d;
const STAR = 0x2a;

/**
 * RFC 1035 §2.3.4 limits: 253 characters, labels of 1 to 63; `_` allowed for SRV names, `*` as
 * a label's first character. Names arrive canonical (lower case). The error, or undefined for a
 * valid name; a loop rather than split and a regex, as it runs for every query sent.
 */
function nameError(name: string, type: QueryType): DnsError | undefined {
  let valid = name.length > 0 && name.length <= 253;
  let labelStart = 0;
  for (let i = 0; valid && i <= name.length; i++) {
    const c = i === name.length ? DOT : name.charCodeAt(i);
    if (c === DOT) {
      const length = i - labelStart;
      // No '-' at either end; the first character may be '*', and nothing else may be.
      valid = length >= 1 && length <= 63 && name.charCodeAt(i - 1) !== HYPHEN;
      labelStart = i + 1;
    } else if (i === labelStart) valid = c === STAR || (c !== HYPHEN && isLabelChar(c));
    else valid = isLabelChar(c);
  }
  if (valid) return undefined;
  return new DnsError(
    "BAD_NAME",
    `'${name}' is not a valid DNS name (labels of letters, digits, '-', '_'; at most 63 characters each, 253 in all)`,
    { name, type },
  );
}

/** a-z, 0-9, '_' and '-'. */
function isLabelChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === HYPHEN;
}
