/**
 * Linearizable reads through ReadIndex (thesis §6.4), batched.
 *
 * Every read that arrives while no read-index round is outstanding starts one; reads that arrive
 * while a round is outstanding wait for the NEXT round (they must not ride on a round that began
 * before they arrived, or they could miss a write that completed in between). A round's answer is
 * an index: a read is linearizable once the local state machine has applied at least that index,
 * so the caller then waits for `applied >= index` and reads its own state — on followers too, which
 * is how read capacity grows with the cluster.
 *
 * A round that is never answered (the request or its answer was lost, the leader changed) is
 * retried with a fresh context after `retryMs`; callers give up at their own deadline.
 *
 * Contexts are unique across process incarnations (a random nonce per batcher), not only within
 * one: a leader may still answer a round that a previous incarnation of this node asked for,
 * with the read index of THAT time; if a restarted node reused the context, it would accept the
 * old index for a read that started later and serve a stale value. (Found by the fault-injection
 * soak, seed 205: a node killed and restarted served its pre-kill state.)
 */
import { randomBytes } from 'node:crypto';
import type { LogIndex, ReadState } from '../raft/types';

/** One caller waiting for a read index. */
interface ReadWaiter {
  resolve: (index: LogIndex) => void;
  reject: (error: Error) => void;
  settled: boolean;
  /** Date.now() after which the caller no longer waits; the waiter is then dropped. */
  deadlineMs: number;
}

/** What the batcher needs from the node: a way to start a round with a context. */
export interface ReadIndexIssuer {
  /** Starts a read-index round; returns an error to fail the whole batch with, or undefined. */
  issueReadIndex(context: Uint8Array): Error | undefined;
}

/** Batches ReadIndex requests into rounds. */
export class ReadBatcher {
  private waiting: ReadWaiter[] = [];
  private inflight: { context: string; waiters: ReadWaiter[]; timer: NodeJS.Timeout } | undefined;
  private sequence = 0;
  private readonly contextPrefix: string;

  /** `name` identifies the node in contexts (for logs); a random nonce makes them unique. */
  constructor(
    private readonly issuer: ReadIndexIssuer,
    private readonly retryMs: number,
    name: string,
  ) {
    this.contextPrefix = `${name}:${randomBytes(8).toString('hex')}`;
  }

  /**
   * Resolves with a read index that makes a read started now linearizable. A caller that will
   * stop waiting at `deadlineMs` (Date.now() time) passes it, so that the batcher drops its
   * waiter at the next retry instead of holding it through a long leaderless period.
   */
  readIndex(deadlineMs = Number.POSITIVE_INFINITY): Promise<LogIndex> {
    return new Promise<LogIndex>((resolve, reject) => {
      this.waiting.push({ resolve, reject, settled: false, deadlineMs });
      if (this.inflight === undefined) this.startRound();
    });
  }

  /** How many callers wait (for tests and metrics). */
  get waitingCount(): number {
    return this.waiting.length + (this.inflight?.waiters.length ?? 0);
  }

  /** Feeds a ReadState from a Ready. */
  onReadState(readState: ReadState): void {
    const round = this.inflight;
    if (round === undefined) return;
    if (Buffer.from(readState.context).toString('latin1') !== round.context) return;
    clearTimeout(round.timer);
    this.inflight = undefined;
    for (const waiter of round.waiters) settle(waiter, (w) => w.resolve(readState.index));
    if (this.waiting.length > 0) this.startRound();
  }

  /** Fails every pending read (shutdown). */
  failAll(error: Error): void {
    if (this.inflight !== undefined) {
      clearTimeout(this.inflight.timer);
      for (const waiter of this.inflight.waiters) settle(waiter, (w) => w.reject(error));
      this.inflight = undefined;
    }
    for (const waiter of this.waiting) settle(waiter, (w) => w.reject(error));
    this.waiting = [];
  }

  private startRound(): void {
    const waiters = this.waiting;
    this.waiting = [];
    const context = `${this.contextPrefix}:${++this.sequence}`;
    const error = this.issuer.issueReadIndex(Buffer.from(context, 'latin1'));
    if (error !== undefined) {
      for (const waiter of waiters) settle(waiter, (w) => w.reject(error));
      return;
    }
    const timer = setTimeout(() => this.retry(context), this.retryMs);
    this.inflight = { context, waiters, timer };
  }

  private retry(context: string): void {
    const round = this.inflight;
    if (round === undefined || round.context !== context) return;
    this.inflight = undefined;
    // Unanswered: re-issue for the same callers plus whoever queued meanwhile, dropping callers
    // that gave up (their deadline passed) so a long outage does not accumulate them.
    const now = Date.now();
    const expired = new Error('read-index wait abandoned: the caller\'s deadline passed');
    this.waiting = [...round.waiters, ...this.waiting].filter((waiter) => {
      if (waiter.settled) return false;
      if (waiter.deadlineMs > now) return true;
      settle(waiter, (w) => w.reject(expired));
      return false;
    });
    if (this.waiting.length > 0) this.startRound();
  }
}

function settle(waiter: ReadWaiter, action: (waiter: ReadWaiter) => void): void {
  if (waiter.settled) return;
  waiter.settled = true;
  action(waiter);
}

/** Callers waiting until the applied index reaches a target. */
export class AppliedWaiters {
  private waiters: Array<{ index: LogIndex; resolve: () => void }> = [];

  /** Resolves once `onApplied` reports an index ≥ `index` (at once if `applied` already is). */
  waitFor(index: LogIndex, applied: LogIndex): Promise<void> {
    if (applied >= index) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push({ index, resolve }));
  }

  /** Reports progress of the applied index. */
  onApplied(applied: LogIndex): void {
    if (this.waiters.length === 0) return;
    const still: Array<{ index: LogIndex; resolve: () => void }> = [];
    for (const waiter of this.waiters) {
      if (waiter.index <= applied) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }
}
