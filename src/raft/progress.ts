/**
 * Progress: the leader's view of one follower's log (Raft §5.3 nextIndex/matchIndex, and etcd's
 * flow-control states in `tracker/progress.go`).
 *
 * States:
 * - Probe: the leader does not know where the follower's log matches; it sends one MsgApp and
 *   waits (paused) until a response or the next heartbeat response, so a lagging follower is
 *   probed once per heartbeat interval.
 * - Replicate: the follower is known to match up to `match`; the leader pipelines MsgApps
 *   optimistically (advancing `next` on send) within the {@link Inflights} window.
 * - Snapshot: the follower needs a snapshot; nothing is sent until the runtime reports the
 *   snapshot's fate (reportSnapshot) or the follower answers.
 */
import { Inflights } from './inflights';
import { ProgressState, type LogIndex, type ProgressStatus } from './types';
import { assert } from './util';

/**
 * Replication progress of one peer.
 *
 * Invariants: `match < next`; in Snapshot state `pendingSnapshot > 0`; `inflights` is empty
 * outside Replicate state.
 */
export class Progress {
  /** Highest index known to be replicated on the peer. */
  match: LogIndex;
  /** Index of the next entry to send. */
  next: LogIndex;
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot state: index of the snapshot being sent. */
  pendingSnapshot: LogIndex = 0;
  /** True if the peer was heard from since the last check-quorum round. */
  recentActive: boolean;
  /** Probe state: a MsgApp was sent and no answer came yet. */
  msgAppFlowPaused = false;
  isLearner: boolean;
  readonly inflights: Inflights;
  /** Highest heartbeat round (read-only.ts) this peer acknowledged in the current leadership. */
  ackedRound = 0;
  /** Leader tick at which that round was sent; the lease clock of {@link ReadOnlyOption.LeaseBased}. -1 = none. */
  ackedSendTick = -1;

  constructor(next: LogIndex, maxInflightMessages: number, maxInflightBytes: number, isLearner: boolean, recentActive: boolean) {
    this.match = 0;
    this.next = next;
    this.isLearner = isLearner;
    this.recentActive = recentActive;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /**
   * Starts a new term's view of this peer (etcd `reset`): Probe at `next` with `match` known,
   * nothing in flight, no heartbeat round acknowledged.
   */
  resetForTerm(next: LogIndex, match: LogIndex, recentActive: boolean): void {
    this.resetState(ProgressState.Probe);
    this.match = match;
    this.next = Math.max(next, match + 1);
    this.recentActive = recentActive;
    this.ackedRound = 0;
    this.ackedSendTick = -1;
  }

  /** Enters Probe: next resumes after the snapshot (if one was just sent) or after match. */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  /** Enters Replicate: next = match + 1 and the window opens. */
  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  /** Enters Snapshot state waiting for the snapshot at `snapshotIndex`. */
  becomeSnapshot(snapshotIndex: LogIndex): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /**
   * The peer acknowledged up to `index`. Returns true if `match` moved. Also unpauses probing
   * (any acknowledgement does).
   */
  maybeUpdate(index: LogIndex): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The peer rejected a MsgApp whose preceding index was `rejected`; `matchHint` is where the
   * leader thinks the logs may match (fast back-off). Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === ProgressState.Replicate) {
      // In Replicate state next is optimistic; only a rejection above match is news.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe: only the answer to the probe just sent (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * Bookkeeping after a MsgApp with `entryCount` entries ending at `lastIndex` and carrying
   * `payloadBytes`: Replicate advances next and fills the window; Probe pauses.
   */
  sentEntries(entryCount: number, lastIndex: LogIndex, payloadBytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entryCount > 0) {
        assert(lastIndex >= this.next, 'Progress.sentEntries: not contiguous');
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, payloadBytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.msgAppFlowPaused = true;
    } else {
      assert(false, 'Progress.sentEntries in Snapshot state');
    }
  }

  /** True if the leader must not send MsgApp with entries now (see the states above). */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.msgAppFlowPaused;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  /** A read-only copy for Status. */
  toStatus(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      isLearner: this.isLearner,
      recentActive: this.recentActive,
      inflightMessages: this.inflights.count(),
      pendingSnapshot: this.pendingSnapshot,
    };
  }
}
