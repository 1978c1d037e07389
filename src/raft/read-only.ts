/**
 * Read-only queries (thesis §6.4): pending ReadIndex requests and the heartbeat rounds that
 * confirm them.
 *
 * Every heartbeat broadcast by a leader is a numbered *round*; the round number travels in the
 * heartbeat's `context` and the follower echoes it in MsgHeartbeatResp. A read request that
 * arrives while round R is the latest sent needs round R + 1 (a round sent AFTER it arrived, so
 * the acknowledgements prove leadership at a time after the request; thesis §6.4 step 3). When a
 * majority has acknowledged round Q, every request needing a round ≤ Q is released at once, so
 * any number of requests arriving during one round share the next round (batching).
 *
 * The send tick of each round is remembered too: it is the lease clock of lease-based reads (a
 * voter that acknowledged round R heard from the leader no earlier than R's send tick).
 */
import type { LogIndex, NodeId } from './types';

/** One pending read: answered with `index` once round `requiredRound` has a quorum. */
export interface ReadRequest {
  readonly index: LogIndex;
  /** The requester: this node or a follower that forwarded MsgReadIndex. */
  readonly from: NodeId;
  readonly context: Uint8Array;
  readonly requiredRound: number;
}

const ROUND_RING = 64;

/**
 * Pending reads and round bookkeeping of one leader.
 *
 * Invariants: `confirmedRound <= lastSentRound`; pending requests are ordered by
 * `requiredRound`, and each `requiredRound <= lastSentRound + 1`.
 */
export class ReadOnly {
  private pending: ReadRequest[] = [];
  /** Number of the latest round sent (monotonic for the node's lifetime). */
  lastSentRound = 0;
  /** Highest round acknowledged by a quorum in the current leadership. */
  confirmedRound = 0;
  private readonly ringRounds = new Float64Array(ROUND_RING).fill(-1);
  private readonly ringTicks = new Float64Array(ROUND_RING);

  /**
   * Queues a read at `index`. Returns true if the caller must start a round now (none is in
   * flight); otherwise the request rides on the round that follows the one in flight.
   */
  add(index: LogIndex, from: NodeId, context: Uint8Array): boolean {
    this.pending.push({ index, from, context, requiredRound: this.lastSentRound + 1 });
    return this.confirmedRound >= this.lastSentRound;
  }

  /** Starts a new round sent at leader tick `tick`; returns its number. */
  startRound(tick: number): number {
    const round = ++this.lastSentRound;
    const slot = round % ROUND_RING;
    this.ringRounds[slot] = round;
    this.ringTicks[slot] = tick;
    return round;
  }

  /** The tick at which `round` was sent, or -1 if it is too old to remember or unknown. */
  sendTickOf(round: number): number {
    const slot = round % ROUND_RING;
    return this.ringRounds[slot] === round ? this.ringTicks[slot]! : -1;
  }

  /**
   * A quorum acknowledged `round`: returns the requests it releases (in arrival order) and
   * removes them.
   */
  confirm(round: number): ReadRequest[] {
    if (round <= this.confirmedRound) return [];
    this.confirmedRound = round;
    let count = 0;
    while (count < this.pending.length && this.pending[count]!.requiredRound <= round) count++;
    if (count === 0) return [];
    const released = this.pending.slice(0, count);
    this.pending = count === this.pending.length ? [] : this.pending.slice(count);
    return released;
  }

  /** True if some pending request needs a round that has not been sent yet. */
  needsRound(): boolean {
    const last = this.pending[this.pending.length - 1];
    return last !== undefined && last.requiredRound > this.lastSentRound;
  }

  /** Number of pending requests. */
  pendingCount(): number {
    return this.pending.length;
  }

  /** Drops every pending request (the leadership ended). Round numbers keep growing. */
  reset(): void {
    this.pending = [];
    this.confirmedRound = this.lastSentRound;
  }
}

/** Encodes a round number as a heartbeat context (decimal ASCII). */
export function encodeRound(round: number): Uint8Array {
  const text = String(round);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Decodes a heartbeat context into a round number; undefined if it is not one. */
export function decodeRound(bytes: Uint8Array): number | undefined {
  if (bytes.length === 0 || bytes.length > 15) return undefined;
  let round = 0;
  for (let i = 0; i < bytes.length; i++) {
    const digit = bytes[i]! - 48;
    if (digit < 0 || digit > 9) return undefined;
    round = round * 10 + digit;
  }
  return round;
}
