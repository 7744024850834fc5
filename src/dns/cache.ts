/**
 * The resolver's cache: key = name + type, positive and negative entries, each with its
 * expiry; expired entries are kept for serve-stale (RFC 8767) until `staleMaxMs` past expiry.
 * Bounded: the least recently used entry is evicted past `maxEntries` (a linked list in order of
 * use; a hit moves its entry to the newest end).
 */
import type { DnsError, DnsErrorCode } from "./errors.js";
import type { DnsAnswer } from "./types.js";

/** A cached answer, or a cached negative result (NXDOMAIN/NODATA). */
export interface CacheEntry {
  answer?: DnsAnswer;
  negative?: { code: DnsErrorCode; message: string; details?: DnsError["details"] };
  /** Seconds the entry was stored for (after clamping). */
  ttl: number;
  /** Epoch ms when it was stored and when it expires. */
  storedAt: number;
  expiresAt: number;
  /** While stale: epoch ms before which the nameservers are not asked again (RFC 8767 §5 failure recheck). */
  retryAfter: number;
  /** While stale: why the last refresh failed (every nameserver's failure). */
  failure?: DnsError;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  staleServed: number;
  prefetches: number;
  evictions: number;
}

/** A cache entry in the recency list, oldest to newest. */
interface LruNode {
  key: string;
  entry: CacheEntry;
  older: LruNode | undefined;
  newer: LruNode | undefined;
}

export class DnsCache {
  /**
   * Key -> node of a doubly linked list in order of use. Not the Map's own insertion order:
   * evicting through `keys().next()` walks over the holes that deletes leave at the front of a
   * V8 Map until it is rehashed, which made every insertion into a full cache cost thousands
   * of steps.
   */
  private readonly nodes = new Map<string, LruNode>();
  private oldest: LruNode | undefined;
  private newest: LruNode | undefined;
  readonly counters: CacheCounters = { hits: 0, misses: 0, staleServed: 0, prefetches: 0, evictions: 0 };

  constructor(
    private readonly maxEntries: number,
    private readonly staleMaxMs: number,
  ) {}

  /** The entry for `key`, fresh or stale-but-servable, marking it recently used. */
  get(key: string, now: number): CacheEntry | undefined {
    const node = this.nodes.get(key);
    if (!node) return undefined;
    if (now >= node.entry.expiresAt + this.staleMaxMs) {
      this.remove(node);
      return undefined;
    }
    this.touch(node);
    return node.entry;
  }

  set(key: string, entry: CacheEntry): void {
    const existing = this.nodes.get(key);
    if (existing) {
      existing.entry = entry;
      this.touch(existing);
      return;
    }
    const node: LruNode = { key, entry, older: this.newest, newer: undefined };
    if (this.newest) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
    this.nodes.set(key, node);
    while (this.nodes.size > this.maxEntries && this.oldest) {
      this.remove(this.oldest);
      this.counters.evictions++;
    }
  }

  get size(): number {
    return this.nodes.size;
  }

  /** Every entry, least recently used first, for a status page: key, seconds left (negative when stale), and whether negative. */
  list(now = Date.now()): Array<{ key: string; ttlLeft: number; negative: boolean }> {
    const out: Array<{ key: string; ttlLeft: number; negative: boolean }> = [];
    for (let node = this.oldest; node; node = node.newer) {
      out.push({
        key: node.key,
        ttlLeft: Math.round((node.entry.expiresAt - now) / 1000),
        negative: node.entry.negative !== undefined,
      });
    }
    return out;
  }

  /** A nameserver answers again: every stale entry may be asked again at once. */
  endRetryWaits(): void {
    for (let node = this.oldest; node; node = node.newer) node.entry.retryAfter = 0;
  }

  /** Drop the entry of `key`; true when there was one. */
  delete(key: string): boolean {
    const node = this.nodes.get(key);
    if (!node) return false;
    this.remove(node);
    return true;
  }

  clear(): void {
    this.nodes.clear();
    this.oldest = undefined;
    this.newest = undefined;
  }

  /** Move `node` to the newest end. */
  private touch(node: LruNode): void {
    if (node === this.newest) return;
    this.unlink(node);
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
  }

  private remove(node: LruNode): void {
    this.unlink(node);
    this.nodes.delete(node.key);
  }

  private unlink(node: LruNode): void {
    if (node.older) node.older.newer = node.newer;
    else this.oldest = node.newer;
    if (node.newer) node.newer.older = node.older;
    else this.newest = node.older;
    node.older = undefined;
    node.newer = undefined;
  }
}
