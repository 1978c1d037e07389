/**
 * Singleflight: concurrent requests for one key share one execution.
 *
 * The first caller of {@link Singleflight.do} for a key starts `work`; every caller that arrives
 * before it settles gets the same promise (the same value, or the same rejection). Once it has
 * settled the key is forgotten, so a later call starts a new execution: this deduplicates
 * concurrent misses, it is not a cache (groupcache's singleflight package).
 */
export class Singleflight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Runs `work` for `key` unless a run for `key` is already in flight, whose result is shared. */
  do(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing !== undefined) return existing;
    const started = (async () => work())();
    const tracked = started.finally(() => {
      if (this.inflight.get(key) === tracked) this.inflight.delete(key);
    });
    this.inflight.set(key, tracked);
    return tracked;
  }

  /** Whether a run for `key` is in flight. */
  has(key: string): boolean {
    return this.inflight.has(key);
  }

  /** Number of keys in flight. */
  get size(): number {
    return this.inflight.size;
  }
}
