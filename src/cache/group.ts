/**
 * A cache group: a named namespace with its own byte budget, its own loader (a slice of the
 * store's keyspace) and its own counters. This is where the cache's rules live; sockets, etcd
 * and timers are injected (ports below), so the rules are unit-tested with fakes.
 *
 * Reading a key (`get`):
 * 1. a hit in the main cache (keys this node loaded or was handed) or the hot cache (copies of
 *    other owners' keys) is answered at once;
 * 2. otherwise concurrent misses for the key share ONE flight (singleflight);
 * 3. the flight asks the ring for the key's owner. If that is this node, it loads the key from
 *    the store with a linearizable read and keeps it in the main cache. If it is a peer, the
 *    peer is asked (`CachePeer.Get`, with a deadline); with probability `hotFraction` the answer
 *    is kept in the bounded hot cache. If the peer fails (dead, hanging past the deadline,
 *    answering garbage), the node loads the key locally instead.
 *
 * Writing a key (`set`) writes through to the store first; only an acknowledged write reaches
 * any cache: the owner is handed the value (`CachePeer.Set`), or keeps it itself.
 *
 * Coherence. Every node watches the group's store prefix and feeds each change to
 * {@link CacheGroup.applyChange}: a delete drops the cached copy, a put replaces a cached copy
 * whose revision is older. So once a change has reached a node's watch, that node serves no
 * older value. Three races are closed explicitly:
 * - a load that overlaps a change to its key: changes seen while a flight for the key is in the
 *   air are recorded, and the flight's result is not cached if a recorded change is newer than
 *   the loaded value (the result is still returned: it was linearizable when read);
 * - a peer that answers from a cache whose watch lags ours: the answer carries the peer's
 *   watched revision and we keep a hot copy only if the peer has seen at least every change we
 *   had seen when we asked;
 * - a write handed to a cache after newer changes were applied: a written value is cached only
 *   if the watch has not yet passed its revision (the watch then brings every later change).
 * Not-found answers are never cached. Expiry (TTL with jitter) is only a backstop.
 */
import { ByteLru, jitteredExpiryMs, type CacheEntry } from './lru';
import { Singleflight } from './singleflight';
import { CacheError } from './cache-errors';
import type { PeerGetResponse, PeerSetRequest, PeerSetResponse } from './cache-proto';

/** A value read from the store; `modRevision` is 0 when not found. */
export interface LoadedValue {
  readonly found: boolean;
  readonly value: Buffer;
  readonly modRevision: number;
}

/** The store slice behind a group (port; src/cache/etcd-store.ts implements it over etcd). */
export interface GroupStore {
  /** Linearizable read of the group key `key`. Rejects when the store cannot answer. */
  load(key: string): Promise<LoadedValue>;
  /** Writes `value` under the group key `key`; resolves with the store revision of the write. */
  write(key: string, value: Buffer): Promise<number>;
}

/** A remote cache node (port; src/cache/peer-client.ts implements it over gRPC). */
export interface PeerClient {
  /** The peer's `host:port`. */
  readonly address: string;
  get(group: string, key: string): Promise<PeerGetResponse>;
  set(request: PeerSetRequest): Promise<PeerSetResponse>;
}

/** Who owns a key: this node, or a peer. */
export type OwnerChoice = { readonly self: true } | { readonly self: false; readonly peer: PeerClient };

/** Picks the owner of a key (the node's ring). */
export interface PeerPicker {
  pick(key: string): OwnerChoice;
}

/** A change of one group key, as delivered by the store's watch. */
export interface StoreChange {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** The new value (empty for a delete). */
  readonly value: Buffer;
  /** The revision of the change. */
  readonly modRevision: number;
}

/** How a group is configured. */
export interface CacheGroupOptions {
  readonly name: string;
  /** Budget of the main cache, bytes (keys + values). */
  readonly maxBytes: number;
  /** Budget of the hot cache, bytes. */
  readonly hotMaxBytes: number;
  /** Time-to-live of a cached entry, ms (an upper bound; see {@link jitteredExpiryMs}). */
  readonly ttlMs: number;
  /** Jitter fraction in [0, 1): entries live ttl × (1 − jitter × random). */
  readonly ttlJitter: number;
  /** Probability of keeping a peer's answer in the hot cache (0.1 by default in the CLI). */
  readonly hotFraction: number;
  /** Largest value accepted by `set`, bytes. */
  readonly maxValueBytes: number;
  readonly store: GroupStore;
  readonly picker: PeerPicker;
  /** Clock in ms; default Date.now. */
  readonly nowMs?: () => number;
  /** Uniform [0, 1); default Math.random. */
  readonly random?: () => number;
  /** Called when a peer call fails (for logging). */
  readonly onPeerError?: (address: string, error: unknown) => void;
}

/** Counters of one group (monotonic) and its current sizes. */
export interface GroupStats {
  hits: number;
  hotHits: number;
  misses: number;
  /** Store reads made by this node. */
  loads: number;
  loadErrors: number;
  /** Values obtained from a peer. */
  peerLoads: number;
  peerErrors: number;
  /** Misses served by a local load because the owner failed. */
  localFallbacks: number;
  /** Write-throughs accepted by `set`. */
  sets: number;
  /** Cached copies replaced or dropped by the watch. */
  invalidations: number;
  evictions: number;
  expirations: number;
  bytes: number;
  hotBytes: number;
  entries: number;
  hotEntries: number;
  /** Highest store revision delivered by this group's watch. */
  watchedRevision: number;
}

/** Longest accepted key, bytes (etcd keys are bounded by the request size anyway). */
export const MAX_KEY_BYTES = 4096;

/** Changes seen while flights for a key were in the air. */
interface PendingRecord {
  flights: number;
  newestChangeRevision: number;
}

/** One group of one cache node. */
export class CacheGroup {
  readonly name: string;
  private readonly main: ByteLru;
  private readonly hot: ByteLru;
  private readonly flights = new Singleflight<LoadedValue>();
  private readonly localLoads = new Singleflight<LoadedValue>();
  private readonly pending = new Map<string, PendingRecord>();
  private readonly nowMs: () => number;
  private readonly random: () => number;
  private watched = 0;
  private readonly counters = {
    hits: 0,
    hotHits: 0,
    misses: 0,
    loads: 0,
    loadErrors: 0,
    peerLoads: 0,
    peerErrors: 0,
    localFallbacks: 0,
    sets: 0,
    invalidations: 0,
  };

  constructor(private readonly options: CacheGroupOptions) {
    this.name = options.name;
    this.nowMs = options.nowMs ?? Date.now;
    this.random = options.random ?? Math.random;
    this.main = new ByteLru(options.maxBytes, this.nowMs);
    this.hot = new ByteLru(options.hotMaxBytes, this.nowMs);
  }

  /** The highest store revision this group's watch has delivered. */
  get watchedRevision(): number {
    return this.watched;
  }

  /** Reads `key` through the cache (see the module overview). Rejects with a CacheError. */
  async get(key: string): Promise<LoadedValue> {
    validateKey(key);
    const cached = this.lookup(key);
    if (cached !== undefined) return cached;
    this.counters.misses++;
    return this.flights.do(key, () => this.fetch(key));
  }

  /**
   * Answers a peer's `CachePeer.Get`: from this node's caches, else by a local load (never by
   * asking yet another peer, so rings that briefly disagree cannot bounce a request around).
   */
  async serveForPeer(key: string): Promise<PeerGetResponse> {
    validateKey(key);
    const watchedRevision = this.watched;
    const cached = this.lookup(key);
    if (cached !== undefined) return { ...cached, watchedRevision };
    this.counters.misses++;
    const loaded = await this.loadLocally(key);
    return { ...loaded, watchedRevision };
  }

  /** Writes `value` through to the store, then hands it to the owner. Rejects with a CacheError. */
  async set(key: string, value: Buffer): Promise<number> {
    validateKey(key);
    if (value.length > this.options.maxValueBytes) {
      throw new CacheError('value-too-large', `value of ${value.length} bytes is over the limit of ${this.options.maxValueBytes} bytes`);
    }
    let revision: number;
    try {
      revision = await this.options.store.write(key, value);
    } catch (error) {
      throw new CacheError('store-unavailable', `store write failed: ${errorMessage(error)}`);
    }
    this.counters.sets++;
    const owner = this.options.picker.pick(key);
    if (owner.self) {
      this.cacheWritten(this.main, key, value, revision, 0);
    } else {
      try {
        await owner.peer.set({ group: this.name, key, value, expire: 0, isHot: false, modRevision: revision });
      } catch (error) {
        this.counters.peerErrors++;
        this.options.onPeerError?.(owner.peer.address, error);
      }
      if (this.random() < this.options.hotFraction) this.cacheWritten(this.hot, key, value, revision, 0);
    }
    return revision;
  }

  /** Applies a peer's `CachePeer.Set`: caches the value unless the watch has already passed it. */
  acceptFromPeer(request: PeerSetRequest): boolean {
    validateKey(request.key);
    if (request.value.length > this.options.maxValueBytes) return false;
    return this.cacheWritten(request.isHot ? this.hot : this.main, request.key, request.value, request.modRevision, request.expire);
  }

  /**
   * Applies one change delivered by the store's watch, IN REVISION ORDER: drops (delete) or
   * replaces (put, if newer) every cached copy of the key, and records it for flights in the air.
   */
  applyChange(change: StoreChange): void {
    if (change.modRevision > this.watched) this.watched = change.modRevision;
    const record = this.pending.get(change.key);
    if (record !== undefined && change.modRevision > record.newestChangeRevision) record.newestChangeRevision = change.modRevision;
    for (const cache of [this.main, this.hot]) {
      const entry = cache.peek(change.key);
      if (entry === undefined) continue;
      if (change.type === 'delete') {
        cache.delete(change.key);
        this.counters.invalidations++;
      } else if (change.modRevision > entry.modRevision) {
        cache.set(change.key, { value: change.value, modRevision: change.modRevision, expiresAtMs: entry.expiresAtMs });
        this.counters.invalidations++;
      }
    }
  }

  /** Drops every cached value (after a gap in the watch, e.g. a compacted revision). */
  clear(): void {
    this.main.clear();
    this.hot.clear();
    for (const record of this.pending.values()) record.newestChangeRevision = Number.MAX_SAFE_INTEGER;
  }

  /** Current counters and sizes. */
  stats(): GroupStats {
    return {
      ...this.counters,
      evictions: this.main.counters.evictions + this.hot.counters.evictions,
      expirations: this.main.counters.expirations + this.hot.counters.expirations,
      bytes: this.main.bytes,
      hotBytes: this.hot.bytes,
      entries: this.main.size,
      hotEntries: this.hot.size,
      watchedRevision: this.watched,
    };
  }

  private lookup(key: string): LoadedValue | undefined {
    const entry = this.main.get(key);
    if (entry !== undefined) {
      this.counters.hits++;
      return { found: true, value: entry.value, modRevision: entry.modRevision };
    }
    const hotEntry = this.hot.get(key);
    if (hotEntry !== undefined) {
      this.counters.hits++;
      this.counters.hotHits++;
      return { found: true, value: hotEntry.value, modRevision: hotEntry.modRevision };
    }
    return undefined;
  }

  /** The flight of a miss: the owner's copy, or a local load. */
  private async fetch(key: string): Promise<LoadedValue> {
    const owner = this.options.picker.pick(key);
    if (owner.self) return this.loadLocally(key);
    const watchedAtStart = this.watched;
    const record = this.track(key);
    let answer: PeerGetResponse;
    try {
      answer = await owner.peer.get(this.name, key);
    } catch (error) {
      this.counters.peerErrors++;
      this.options.onPeerError?.(owner.peer.address, error);
      this.counters.localFallbacks++;
      this.untrack(key, record);
      return this.loadLocally(key);
    }
    try {
      this.counters.peerLoads++;
      if (
        answer.found &&
        answer.watchedRevision >= watchedAtStart &&
        record.newestChangeRevision <= answer.modRevision &&
        this.random() < this.options.hotFraction
      ) {
        this.hot.set(key, this.entry(answer.value, answer.modRevision, 0));
      }
      return { found: answer.found, value: answer.value, modRevision: answer.modRevision };
    } finally {
      this.untrack(key, record);
    }
  }

  /** Loads `key` from the store (one load per key at a time) and keeps it in the main cache. */
  private loadLocally(key: string): Promise<LoadedValue> {
    return this.localLoads.do(key, async () => {
      const record = this.track(key);
      try {
        this.counters.loads++;
        let loaded: LoadedValue;
        try {
          loaded = await this.options.store.load(key);
        } catch (error) {
          this.counters.loadErrors++;
          throw new CacheError('store-unavailable', `store read failed: ${errorMessage(error)}`);
        }
        if (loaded.found && record.newestChangeRevision <= loaded.modRevision) {
          this.main.set(key, this.entry(loaded.value, loaded.modRevision, 0));
        }
        return loaded;
      } finally {
        this.untrack(key, record);
      }
    });
  }

  private cacheWritten(cache: ByteLru, key: string, value: Buffer, revision: number, expireUnixMs: number): boolean {
    // If the watch has passed `revision`, the change at `revision` was already applied and later
    // ones may have been too: caching the written value could resurrect an overwritten one.
    if (this.watched >= revision) return false;
    const existing = cache.peek(key);
    if (existing !== undefined && existing.modRevision >= revision) return false;
    return cache.set(key, this.entry(value, revision, expireUnixMs));
  }

  private entry(value: Buffer, modRevision: number, expireUnixMs: number): CacheEntry {
    const now = this.nowMs();
    const jittered = jitteredExpiryMs(now, this.options.ttlMs, this.options.ttlJitter, this.random);
    const expiresAtMs = expireUnixMs > 0 ? Math.min(jittered, now + Math.max(0, expireUnixMs - Date.now())) : jittered;
    return { value, modRevision, expiresAtMs };
  }

  private track(key: string): PendingRecord {
    let record = this.pending.get(key);
    if (record === undefined) {
      record = { flights: 0, newestChangeRevision: 0 };
      this.pending.set(key, record);
    }
    record.flights++;
    return record;
  }

  private untrack(key: string, record: PendingRecord): void {
    record.flights--;
    if (record.flights === 0 && this.pending.get(key) === record) this.pending.delete(key);
  }
}

/** Refuses an empty or oversized key (400 at the HTTP front). */
export function validateKey(key: string): void {
  if (key.length === 0) throw new CacheError('empty-key', 'the key is empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new CacheError('invalid-key', `the key is longer than ${MAX_KEY_BYTES} bytes`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
