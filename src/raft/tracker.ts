/**
 * ProgressTracker: the configuration (voters, learners, removed IDs) and, per member, its
 * {@link Progress}; plus the votes of the current election (etcd `tracker/tracker.go`).
 *
 * Every node keeps one (a follower needs the configuration to know whether it may campaign and
 * whom to ask for votes); only the leader's progress entries carry meaning. Iteration follows Map
 * insertion order, so every run of the same inputs visits peers in the same order.
 */
import { Progress } from './progress';
import { majorityValue, quorumSize, voteResult, type VoteResult } from './quorum';
import type { ConfState, LogIndex, NodeId } from './types';

/**
 * Configuration plus per-member progress.
 *
 * Invariants: `progress` has exactly one entry per voter and learner; `voters`, `learners` and
 * `removed` mirror `confState`.
 */
export class ProgressTracker {
  confState: ConfState = { voters: [], learners: [], removed: [] };
  readonly progress = new Map<NodeId, Progress>();
  /** Votes of the current (pre-)election: true = granted. */
  readonly votes = new Map<NodeId, boolean>();
  private readonly removedSet = new Set<NodeId>();
  private readonly scratch: number[] = [];

  constructor(
    private readonly maxInflightMessages: number,
    private readonly maxInflightBytes: number,
  ) {}

  /**
   * Installs a configuration. Members that are new get a Probe progress at `nextIndex` (marked
   * recently active, so the next check-quorum does not count them as silent before they had a
   * chance to answer); departed members lose theirs; learner flags follow the configuration.
   */
  setConfState(confState: ConfState, nextIndex: LogIndex): void {
    this.confState = confState;
    this.removedSet.clear();
    for (const id of confState.removed) this.removedSet.add(id);
    const members = new Set<NodeId>([...confState.voters, ...confState.learners]);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of confState.voters) this.ensure(id, nextIndex, false);
    for (const id of confState.learners) this.ensure(id, nextIndex, true);
  }

  private ensure(id: NodeId, nextIndex: LogIndex, isLearner: boolean): void {
    const existing = this.progress.get(id);
    if (existing !== undefined) {
      existing.isLearner = isLearner;
      return;
    }
    this.progress.set(id, new Progress(nextIndex, this.maxInflightMessages, this.maxInflightBytes, isLearner, true));
  }

  /** True if `id` is a voter. */
  isVoter(id: NodeId): boolean {
    return this.confState.voters.includes(id);
  }

  /** True if `id` was removed from the cluster (and may never rejoin). */
  isRemoved(id: NodeId): boolean {
    return this.removedSet.size > 0 && this.removedSet.has(id);
  }

  /** The highest index replicated on a majority of voters (Raft §5.3); 0 with no voters. */
  committedIndex(): LogIndex {
    const values = this.scratch;
    values.length = 0;
    for (const id of this.confState.voters) values.push(this.progress.get(id)?.match ?? 0);
    return majorityValue(values);
  }

  /** Check-quorum: true if a majority of voters (counting `self`) were recently active. */
  quorumActive(self: NodeId): boolean {
    let active = 0;
    for (const id of this.confState.voters) {
      if (id === self || this.progress.get(id)?.recentActive === true) active++;
    }
    return active >= quorumSize(this.confState.voters.length);
  }

  /** Starts a new check-quorum window: every peer but `self` counts as silent until heard from. */
  resetRecentActive(self: NodeId): void {
    for (const [id, progress] of this.progress) progress.recentActive = id === self;
  }

  /** Records `id`'s vote unless it already voted in this election. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** The election's outcome so far among the voters. */
  tallyVotes(): VoteResult {
    return voteResult(this.confState.voters, this.votes);
  }

  /** Forgets the votes (a new election or a role change). */
  resetVotes(): void {
    this.votes.clear();
  }

  /** The highest heartbeat round a majority of voters acknowledged; `self` counts as `selfRound`. */
  quorumAckedRound(self: NodeId, selfRound: number): number {
    const values = this.scratch;
    values.length = 0;
    for (const id of this.confState.voters) values.push(id === self ? selfRound : (this.progress.get(id)?.ackedRound ?? 0));
    return majorityValue(values);
  }

  /**
   * The lease start: the latest send tick such that a majority of voters acknowledged a heartbeat
   * sent at or after it (`self` counts as `currentTick`). -1 when no majority has acknowledged
   * anything in this leadership.
   */
  quorumAckedSendTick(self: NodeId, currentTick: number): number {
    const values = this.scratch;
    values.length = 0;
    for (const id of this.confState.voters) values.push(id === self ? currentTick : (this.progress.get(id)?.ackedSendTick ?? -1));
    return majorityValue(values);
  }
}
