/**
 * A least-recently-used cache bounded by BYTES, with a per-entry expiry time.
 *
 * Accounting. An entry costs `Buffer.byteLength(key, 'utf8') + value.length` bytes; the sum of
 * the costs of the entries present is {@link ByteLru.bytes}, and it never exceeds `maxBytes`
 * after a call returns. Every way an entry leaves (delete, replacement, eviction, expiry,
 * clear) subtracts exactly what its insertion added, so deletes never leak budget (the unit
 * tests check `bytes` against a recomputation after every operation).
 *
 * Order. A JavaScript `Map` iterates in insertion order; a hit deletes and re-inserts the key,
 * so the first key in the map is always the least recently used one, and eviction takes keys
 * from the front until the new entry fits. A value larger than the whole budget is refused
 * (`set` returns false) rather than flushing the cache for nothing.
 *
 * Time. Expiry is compared with an injected clock (`nowMs`), so tests drive it with a fake
 * clock; an expired entry is removed when it is next looked up (lazily) and counts as an
 * expiry, not as an eviction.
 */

/** One cached value and what the coherence protocol needs to know about it. */
export interface CacheEntry {
  readonly value: Buffer;
  /** The store's mod_revision of `value`: a change with a higher revision supersedes it. */
  readonly modRevision: number;
  /** When the entry stops being served, in the injected clock's milliseconds. */
  readonly expiresAtMs: number;
}

/** Counters of one cache; monotonic. */
export interface LruCounters {
  /** Entries removed to make room for another. */
  evictions: number;
  /** Entries found past their expiry time (and removed). */
  expirations: number;
}

/** A byte-bounded LRU map from string keys to {@link CacheEntry}. Not thread-safe (no need in Node). */
export class ByteLru {
  private readonly entries = new Map<string, CacheEntry>();
  private usedBytes = 0;
  /** Eviction and expiry counters. */
  readonly counters: LruCounters = { evictions: 0, expirations: 0 };

  /**
   * @param maxBytes the budget (keys + values), at least 0; 0 makes a cache that holds nothing.
   * @param nowMs the clock, in milliseconds.
   */
  constructor(
    readonly maxBytes: number,
    private readonly nowMs: () => number,
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new Error(`ByteLru: maxBytes must be a non-negative integer, got ${maxBytes}`);
  }

  /** What an entry for `key` with `value` costs. */
  static costOf(key: string, value: Buffer): number {
    return Buffer.byteLength(key, 'utf8') + value.length;
  }

  /** Bytes in use (keys + values of the entries present). */
  get bytes(): number {
    return this.usedBytes;
  }

  /** Number of entries present (expired ones not yet looked up included). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The live entry for `key`, marking it most recently used; undefined if absent or expired
   * (an expired entry is removed).
   */
  get(key: string): CacheEntry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.nowMs()) {
      this.remove(key, entry);
      this.counters.expirations++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  /** The entry for `key` without touching its recency or its expiry. */
  peek(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  /**
   * Inserts or replaces `key`, evicting least recently used entries until it fits. Returns false
   * (and leaves the cache as it was, minus any old entry for `key`) when the entry alone is larger
   * than the budget.
   */
  set(key: string, entry: CacheEntry): boolean {
    const old = this.entries.get(key);
    if (old !== undefined) this.remove(key, old);
    const cost = ByteLru.costOf(key, entry.value);
    if (cost > this.maxBytes) return false;
    while (this.usedBytes + cost > this.maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done === true) break;
      const [oldestKey, oldestEntry] = oldest.value;
      this.remove(oldestKey, oldestEntry);
      this.counters.evictions++;
    }
    this.entries.set(key, entry);
    this.usedBytes += cost;
    return true;
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: string): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.remove(key, entry);
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.entries.clear();
    this.usedBytes = 0;
  }

  /** Keys from least to most recently used (for tests and diagnostics). */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  private remove(key: string, entry: CacheEntry): void {
    this.entries.delete(key);
    this.usedBytes -= ByteLru.costOf(key, entry.value);
    if (this.usedBytes < 0) throw new Error(`ByteLru accounting bug: bytes went negative removing ${JSON.stringify(key)}`);
  }
}

/**
 * The expiry time of an entry stored at `nowMs` with time-to-live `ttlMs` and jitter fraction
 * `jitter` in [0, 1): `nowMs + ttlMs * (1 - jitter * random())`. The jitter only SHORTENS the
 * lifetime, so `ttlMs` stays an upper bound, and entries loaded together do not all expire (and
 * reload) together. `random` returns a number in [0, 1).
 */
export function jitteredExpiryMs(nowMs: number, ttlMs: number, jitter: number, random: () => number): number {
  if (!(jitter >= 0 && jitter < 1)) throw new Error(`jitter must be in [0, 1), got ${jitter}`);
  return nowMs + Math.max(1, Math.round(ttlMs * (1 - jitter * random())));
}
