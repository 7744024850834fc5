/**
 * The resolver's cache: key = name + type, positive and negative entries, each with its
 * expiry; expired entries are kept for serve-stale (RFC 8767) until `staleMaxMs` past expiry.
 * Bounded: the least recently used entry is evicted past `maxEntries` (a Map keeps insertion
 * order; a hit re-inserts its key).
 */
import type { DnsErrorCode } from "./errors.js";
import type { DnsAnswer } from "./types.js";

/** A cached answer, or a cached negative result (NXDOMAIN/NODATA). */
export interface CacheEntry {
  answer?: DnsAnswer;
  negative?: { code: DnsErrorCode; message: string };
  /** Seconds the entry was stored for (after clamping). */
  ttl: number;
  /** Epoch ms when it was stored and when it expires. */
  storedAt: number;
  expiresAt: number;
  /** While stale: epoch ms before which the nameservers are not asked again (RFC 8767 §5 failure recheck). */
  retryAfter: number;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  staleServed: number;
  prefetches: number;
  evictions: number;
}

export class DnsCache {
  private readonly entries = new Map<string, CacheEntry>();
  readonly counters: CacheCounters = { hits: 0, misses: 0, staleServed: 0, prefetches: 0, evictions: 0 };

  constructor(
    private readonly maxEntries: number,
    private readonly staleMaxMs: number,
  ) {}

  /** The entry for `key`, fresh or stale-but-servable, marking it recently used. */
  get(key: string, now: number): CacheEntry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (now >= entry.expiresAt + this.staleMaxMs) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  set(key: string, entry: CacheEntry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.counters.evictions++;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry, for a status page: key, seconds left (negative when stale), and whether negative. */
  list(now = Date.now()): Array<{ key: string; ttlLeft: number; negative: boolean }> {
    return [...this.entries].map(([key, e]) => ({
      key,
      ttlLeft: Math.round((e.expiresAt - now) / 1000),
      negative: e.negative !== undefined,
    }));
  }

  clear(): void {
    this.entries.clear();
  }
}
