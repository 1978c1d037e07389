/**
 * Waiters: callers waiting for something the Ready loop will eventually report.
 *
 * A proposal is identified by the request ID encoded in its entry; when the entry is applied the
 * loop resolves the waiter with the applied index, when the leader refuses it the loop rejects it,
 * and when the deadline passes first the waiter is rejected with a timeout error chosen by the
 * caller (a write that timed out may still be applied later; the error says so).
 */

/** A pending caller. */
interface Pending<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A registry of pending callers keyed by a bigint request ID, each with its own deadline. */
export class Waiters<T> {
  private readonly pending = new Map<bigint, Pending<T>>();

  /**
   * Registers `id` and returns a promise settled by `resolve`/`reject`, or rejected with
   * `onTimeout()` after `timeoutMs`. An ID must not be registered twice.
   */
  wait(id: bigint, timeoutMs: number, onTimeout: () => Error): Promise<T> {
    if (this.pending.has(id)) throw new Error(`assertion failed: request ${id} registered twice`);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(onTimeout());
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** True if someone waits for `id`. */
  has(id: bigint): boolean {
    return this.pending.has(id);
  }

  /** Settles the waiter for `id` (if any) with `value`. */
  resolve(id: bigint, value: T): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    entry.resolve(value);
  }

  /** Rejects the waiter for `id` (if any). */
  reject(id: bigint, error: Error): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    entry.reject(error);
  }

  /** Rejects every waiter (on shutdown). */
  rejectAll(makeError: () => Error): void {
    for (const id of [...this.pending.keys()]) this.reject(id, makeError());
  }

  get size(): number {
    return this.pending.size;
  }
}
