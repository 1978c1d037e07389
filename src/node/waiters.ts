/**
 * Waiters: callers waiting for something the Ready loop will eventually report.
 *
 * A proposal is identified by the request ID encoded in its entry; when the entry is applied the
 * loop resolves the waiter with the applied index, when the leader refuses it the loop rejects it,
 * and when the deadline passes first the waiter is rejected with a timeout error chosen by the
 * caller (a write that timed out may still be applied later; the error says so).
 *
 * Deadlines share ONE timer, armed for the earliest deadline, instead of a timer per waiter: a
 * write creates and clears no timer on its path (it was a setTimeout and a clearTimeout per Put).
 * When the timer fires, every expired waiter is rejected and the timer is re-armed for the
 * earliest deadline left, so a waiter is never rejected early, and late only by the timer's own
 * lateness. The timer keeps the process alive only while someone waits.
 */

/** A pending caller. */
interface Pending<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  /** When it times out, in `now()` milliseconds. */
  readonly deadline: number;
  readonly onTimeout: () => Error;
}

/** A registry of pending callers keyed by a bigint request ID, each with its own deadline. */
export class Waiters<T> {
  private readonly pending = new Map<bigint, Pending<T>>();
  private timer: NodeJS.Timeout | undefined;
  /** The deadline the timer is armed for (Infinity when it is not armed). */
  private armedDeadline = Number.POSITIVE_INFINITY;

  /**
   * `now`: milliseconds on a monotonic clock (a wall-clock step must not time writes out early).
   */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Registers `id` and returns a promise settled by `resolve`/`reject`, or rejected with
   * `onTimeout()` once `timeoutMs` have passed. An ID must not be registered twice.
   */
  wait(id: bigint, timeoutMs: number, onTimeout: () => Error): Promise<T> {
    if (this.pending.has(id)) throw new Error(`assertion failed: request ${id} registered twice`);
    const deadline = this.now() + timeoutMs;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadline, onTimeout });
      if (deadline < this.armedDeadline) this.arm(deadline);
      else if (this.pending.size === 1) this.timer?.ref();
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
    this.disarmIfEmpty();
    entry.resolve(value);
  }

  /** Rejects the waiter for `id` (if any). */
  reject(id: bigint, error: Error): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    this.disarmIfEmpty();
    entry.reject(error);
  }

  /** Rejects every waiter (on shutdown). */
  rejectAll(makeError: () => Error): void {
    for (const id of [...this.pending.keys()]) this.reject(id, makeError());
  }

  get size(): number {
    return this.pending.size;
  }

  /** Arms the one timer for `deadline` (replacing a later one). */
  private arm(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedDeadline = deadline;
    this.timer = setTimeout(() => this.expire(), Math.max(1, deadline - this.now()));
  }

  /**
   * With no waiter left the timer stays armed (so the next write does not arm one again) but no
   * longer keeps the process alive; it fires once, finds nothing, and is not re-armed.
   */
  private disarmIfEmpty(): void {
    if (this.pending.size === 0) this.timer?.unref();
  }

  /** Rejects every waiter whose deadline has passed, then re-arms for the earliest one left. */
  private expire(): void {
    this.timer = undefined;
    this.armedDeadline = Number.POSITIVE_INFINITY;
    const now = this.now();
    const expired: Array<[bigint, Pending<T>]> = [];
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.pending) {
      if (entry[1].deadline <= now) expired.push(entry);
      else if (entry[1].deadline < earliest) earliest = entry[1].deadline;
    }
    for (const [id] of expired) this.pending.delete(id);
    if (earliest !== Number.POSITIVE_INFINITY) this.arm(earliest);
    for (const [, pending] of expired) pending.reject(pending.onTimeout());
  }
}
