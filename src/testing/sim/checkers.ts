/**
 * Invariant checkers for the simulator: Raft's safety properties, checked on every step.
 *
 * The checkers see the cluster only through observations the simulator feeds them (a leader
 * appeared, a node durably wrote entries, a node applied an entry, a read index came back...),
 * plus read-only views of each node's durable log. That keeps them independent of the core's
 * internals, and lets unit tests feed them hand-built broken histories.
 *
 * Properties (Raft §5.2–§5.4, Figure 3; thesis §6.4 for reads):
 * - Election safety: at most one leader per term, across the whole history.
 * - Log matching: two logs holding an entry with the same index and term hold the same entry and
 *   the same preceding term. By induction they are identical up to there. Checked on every
 *   durable write: each (index, term) is bound to one (data hash, type, preceding term).
 * - Leader completeness: an entry committed in term U is in the log (or snapshot) of every leader
 *   of a term above U. The simulator cannot see U directly, so each committed index carries an
 *   upper bound (the highest term any node had when the entry was first applied); the check is
 *   made for leaders above that bound, which is sound.
 * - State machine safety: every node applies the same entry at each index, and reaches the same
 *   state-machine digest there; a snapshot restored at an index carries that index's digest.
 * - Committed entries are never lost: no durable write replaces or discards a committed entry,
 *   and the durable state of every quorum of the latest committed configuration holds the newest
 *   committed entry (the set of holders intersects every quorum).
 * - Configuration agreement: every node reaches the same configuration at a given index; voters,
 *   learners and removed IDs stay disjoint; a removed ID never becomes a member again.
 * - Linearizable read index: a read index is never below an index whose commit completed (was
 *   applied anywhere) before the read was requested.
 * - Proposal outcomes: a proposal that was refused, or reported rejected by the leader, never
 *   commits (unless the network duplicated it, which legitimately lets one copy through).
 * A broken property throws {@link InvariantViolation}: it is a bug, not an expected outcome.
 */
import type { ConfState, Entry, NodeId, Term } from '../../raft/types';
import { hashBytes } from './digest';

/** The names of the checked properties, as printed in reports. */
export type InvariantName =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'committed-entry-lost'
  | 'configuration'
  | 'read-index'
  | 'proposal-outcome'
  /** The core broke the Ready contract of types.ts (for example committed entries not durable). */
  | 'ready-contract'
  /** After healing, the cluster did not elect a leader and commit a proposal in time. */
  | 'liveness';

/** A broken safety property. Thrown; the simulator adds its recent events and the replay command. */
export class InvariantViolation extends Error {
  constructor(readonly invariant: InvariantName, detail: string) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

/**
 * A read-only view of one node's durable log (its snapshot plus the entries after it).
 * `termAt(index)` answers for indices in [snapshotIndex(), lastIndex()] and undefined elsewhere.
 */
export interface DurableLogView {
  snapshotIndex(): number;
  lastIndex(): number;
  termAt(index: number): Term | undefined;
}

/** What the checkers remember about one committed (applied somewhere) index. */
export interface CommittedRecord {
  readonly index: number;
  readonly term: Term;
  readonly entryHash: string;
  /** State-machine digest after applying this index. */
  readonly digest: string;
  /** Upper bound on the term in which the entry was committed (see the module overview). */
  readonly commitTermBound: Term;
  readonly firstAppliedBy: NodeId;
}

interface ProposalRecord {
  refused?: string;
  rejected?: string;
  committedAt?: number;
  duplicatedInNetwork: boolean;
}

/** The hash that identifies an entry's content (type and data). */
export function entryHash(entry: Entry): string {
  return `${entry.type}:${hashBytes(entry.data)}`;
}

function sameMembers(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

function formatConfState(confState: ConfState): string {
  return `voters=[${confState.voters.join(',')}] learners=[${confState.learners.join(',')}] removed=[${confState.removed.join(',')}]`;
}

/** All checkers with their history. One instance per simulated run. */
export class Checkers {
  /** term → the node that led it. */
  readonly leaders = new Map<Term, NodeId>();
  /** index → what was committed (applied first) there. */
  readonly committed = new Map<number, CommittedRecord>();
  /** Highest index applied by any node. */
  maxCommittedIndex = 0;
  private readonly logBindings = new Map<string, string>();
  private readonly configurations = new Map<number, ConfState>();
  private latestConfigurationIndex = -1;
  private latestConfiguration: ConfState | undefined;
  private readonly removedEver = new Set<NodeId>();
  private readonly reads = new Map<string, number>();
  private readonly proposals = new Map<string, ProposalRecord>();
  /** Number of checks made, for reports. */
  checks = 0;

  /** Election safety: `node` is leader of `term`. */
  observeLeader(node: NodeId, term: Term): void {
    this.checks++;
    const previous = this.leaders.get(term);
    if (previous !== undefined && previous !== node) {
      throw new InvariantViolation('election-safety', `two leaders in term ${term}: node ${previous} and node ${node}`);
    }
    this.leaders.set(term, node);
  }

  /**
   * Log matching and durability of committed entries, on a durable append by `node`.
   * `log` is the node's durable log BEFORE the write; `entries` are contiguous.
   */
  observeDurableAppend(node: NodeId, log: DurableLogView, entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    this.checks++;
    // Entries replaced by this write: a committed one must not be replaced by a different one.
    const last = log.lastIndex();
    for (const entry of entries) {
      if (entry.index > last) break;
      const record = this.committed.get(entry.index);
      const oldTerm = log.termAt(entry.index);
      if (record !== undefined && oldTerm === record.term && entry.term !== record.term) {
        throw new InvariantViolation(
          'committed-entry-lost',
          `node ${node} overwrote committed entry ${entry.index} (term ${record.term}) with an entry of term ${entry.term}`,
        );
      }
    }
    // The storage drops everything after the appended range as well (a conflicting suffix).
    const lastNew = first.index + entries.length - 1;
    for (let index = Math.max(lastNew + 1, log.snapshotIndex() + 1); index <= last; index++) {
      const record = this.committed.get(index);
      if (record !== undefined && log.termAt(index) === record.term) {
        throw new InvariantViolation(
          'committed-entry-lost',
          `node ${node} appended entries ${first.index}..${lastNew}, truncating committed entry ${index} (term ${record.term})`,
        );
      }
    }
    let previousTerm = log.termAt(first.index - 1);
    for (const entry of entries) {
      const key = `${entry.index}:${entry.term}`;
      const binding = `${entryHash(entry)}<${previousTerm === undefined ? '?' : previousTerm}`;
      const existing = this.logBindings.get(key);
      if (existing === undefined) {
        this.logBindings.set(key, binding);
      } else if (existing !== binding) {
        const [existingHash, existingPrevious] = existing.split('<');
        const [newHash, newPrevious] = binding.split('<');
        // An unknown preceding term (the node's log starts here) cannot contradict.
        const previousDiffers = existingPrevious !== '?' && newPrevious !== '?' && existingPrevious !== newPrevious;
        if (existingHash !== newHash || previousDiffers) {
          throw new InvariantViolation(
            'log-matching',
            `node ${node} holds entry (index ${entry.index}, term ${entry.term}) as ${binding} but another log holds it as ${existing} (content<preceding term)`,
          );
        }
        if (existingPrevious === '?') this.logBindings.set(key, binding);
      }
      previousTerm = entry.term;
    }
  }

  /**
   * Durability of committed entries, on a snapshot install by `node` that discards its log.
   * `log` is the durable log BEFORE the install.
   */
  observeSnapshotInstall(node: NodeId, log: DurableLogView, snapshotIndex: number): void {
    this.checks++;
    for (let index = Math.max(snapshotIndex + 1, log.snapshotIndex() + 1); index <= log.lastIndex(); index++) {
      const record = this.committed.get(index);
      if (record !== undefined && log.termAt(index) === record.term) {
        throw new InvariantViolation(
          'committed-entry-lost',
          `node ${node} installed a snapshot at ${snapshotIndex} and discarded committed entry ${index} (term ${record.term})`,
        );
      }
    }
  }

  /**
   * State machine safety: `node` applied `entry`, reaching `digest`. `maxTerm` is the highest term
   * any node has right now (the commit-term bound for a first application).
   */
  observeApplied(node: NodeId, entry: Entry, digest: string, maxTerm: Term): void {
    this.checks++;
    const hash = entryHash(entry);
    const record = this.committed.get(entry.index);
    if (record === undefined) {
      this.committed.set(entry.index, {
        index: entry.index, term: entry.term, entryHash: hash, digest, commitTermBound: maxTerm, firstAppliedBy: node,
      });
      if (entry.index > this.maxCommittedIndex) this.maxCommittedIndex = entry.index;
      return;
    }
    if (record.term !== entry.term || record.entryHash !== hash) {
      throw new InvariantViolation(
        'state-machine-safety',
        `node ${node} applied (term ${entry.term}, ${hash}) at index ${entry.index}, but node ${record.firstAppliedBy} applied (term ${record.term}, ${record.entryHash})`,
      );
    }
    if (record.digest !== digest) {
      throw new InvariantViolation(
        'state-machine-safety',
        `node ${node} reached state digest ${digest} at index ${entry.index}, but node ${record.firstAppliedBy} reached ${record.digest}`,
      );
    }
  }

  /** State machine safety for snapshots: `node` restored a state-machine image taken at `index`. */
  observeSnapshotRestore(node: NodeId, index: number, term: Term, digest: string): void {
    this.checks++;
    if (index === 0) return;
    const record = this.committed.get(index);
    if (record === undefined) {
      throw new InvariantViolation('state-machine-safety', `node ${node} restored a snapshot at ${index}, an index nobody applied`);
    }
    if (record.term !== term || record.digest !== digest) {
      throw new InvariantViolation(
        'state-machine-safety',
        `node ${node} restored snapshot (index ${index}, term ${term}, digest ${digest}) but the committed state there is (term ${record.term}, digest ${record.digest})`,
      );
    }
  }

  /**
   * Leader completeness: `node` leads `term` and its log (persisted plus unstable) is `log`.
   * Every entry committed with a commit-term bound below `term` must be in it.
   */
  observeLeaderLog(node: NodeId, term: Term, log: DurableLogView): void {
    this.checks++;
    const snapshotIndex = log.snapshotIndex();
    for (let index = snapshotIndex + 1; index <= this.maxCommittedIndex; index++) {
      const record = this.committed.get(index);
      if (record === undefined || record.commitTermBound >= term) continue;
      const held = log.termAt(index);
      if (held !== record.term) {
        throw new InvariantViolation(
          'leader-completeness',
          `node ${node} became leader of term ${term} without committed entry ${index} (term ${record.term}, committed by term ${record.commitTermBound}); its log has ${held === undefined ? 'nothing' : `term ${held}`} there`,
        );
      }
    }
  }

  /**
   * Configuration agreement and invariants: a node reached `confState` by applying index `index`
   * (or restoring a snapshot at it).
   */
  observeConfState(node: NodeId, index: number, confState: ConfState): void {
    this.checks++;
    const voters = new Set(confState.voters);
    const learners = new Set(confState.learners);
    for (const id of confState.learners) {
      if (voters.has(id)) throw new InvariantViolation('configuration', `node ${node} at ${index}: ${id} is both voter and learner (${formatConfState(confState)})`);
    }
    for (const id of confState.removed) {
      if (voters.has(id) || learners.has(id)) {
        throw new InvariantViolation('configuration', `node ${node} at ${index}: removed ID ${id} is a member (${formatConfState(confState)})`);
      }
    }
    const existing = this.configurations.get(index);
    if (existing !== undefined) {
      if (!sameMembers(existing.voters, confState.voters) || !sameMembers(existing.learners, confState.learners) || !sameMembers(existing.removed, confState.removed)) {
        throw new InvariantViolation(
          'configuration',
          `node ${node} reached ${formatConfState(confState)} at index ${index}, another node reached ${formatConfState(existing)}`,
        );
      }
      return;
    }
    this.configurations.set(index, confState);
    if (index > this.latestConfigurationIndex) {
      for (const id of this.removedEver) {
        if (voters.has(id) || learners.has(id)) {
          throw new InvariantViolation('configuration', `removed ID ${id} is a member again at index ${index} (${formatConfState(confState)})`);
        }
      }
      for (const id of confState.removed) this.removedEver.add(id);
      this.latestConfigurationIndex = index;
      this.latestConfiguration = confState;
    }
  }

  /** The configuration at the highest index any node applied, if known. */
  get committedConfiguration(): ConfState | undefined {
    return this.latestConfiguration;
  }

  /**
   * No committed entry lost: the nodes whose durable state holds the newest committed entry
   * intersect every quorum of the latest committed configuration. (Log matching extends this to
   * every earlier committed entry.) `views` are the durable logs of every node, live or crashed.
   */
  checkCommittedDurability(views: ReadonlyMap<NodeId, DurableLogView>): void {
    const configuration = this.latestConfiguration;
    const record = this.committed.get(this.maxCommittedIndex);
    if (configuration === undefined || record === undefined || configuration.voters.length === 0) return;
    this.checks++;
    let holders = 0;
    const holderIds: NodeId[] = [];
    for (const voter of configuration.voters) {
      const view = views.get(voter);
      if (view === undefined) continue;
      if (view.snapshotIndex() >= record.index || view.termAt(record.index) === record.term) {
        holders++;
        holderIds.push(voter);
      }
    }
    const needed = Math.ceil(configuration.voters.length / 2);
    if (holders < needed) {
      throw new InvariantViolation(
        'committed-entry-lost',
        `committed entry ${record.index} (term ${record.term}) is durable only on [${holderIds.join(',')}] of voters [${configuration.voters.join(',')}]; a quorum without it exists`,
      );
    }
  }

  /** A read-index request with `context` was issued; `floor` = highest index committed by then. */
  observeReadRequest(context: string, floor: number): void {
    this.reads.set(context, floor);
  }

  /** A read index came back for `context` on `node`. */
  observeReadState(node: NodeId, context: string, index: number): void {
    this.checks++;
    const floor = this.reads.get(context);
    if (floor === undefined) throw new InvariantViolation('read-index', `node ${node} got a read state for unknown context ${context}`);
    if (index < floor) {
      throw new InvariantViolation('read-index', `node ${node} answered read ${context} at index ${index}, below ${floor}, which was committed before the read was issued`);
    }
  }

  /** A proposal of `value` was refused synchronously by `propose`. */
  observeProposalRefused(value: string, reason: string): void {
    const record = this.proposal(value);
    record.refused = reason;
    this.checkProposal(value, record);
  }

  /** The leader reported the proposal of `value` rejected (Ready.rejectedProposals). */
  observeProposalRejected(value: string, reason: string): void {
    const record = this.proposal(value);
    record.rejected = reason;
    this.checkProposal(value, record);
  }

  /** The network duplicated a forwarded proposal carrying `value`. */
  observeProposalDuplicated(value: string): void {
    this.proposal(value).duplicatedInNetwork = true;
  }

  /** `value` was applied at `index` (called for each application; first one counts). */
  observeValueCommitted(value: string, index: number): void {
    const record = this.proposal(value);
    if (record.committedAt === undefined) record.committedAt = index;
    this.checkProposal(value, record);
  }

  private proposal(value: string): ProposalRecord {
    let record = this.proposals.get(value);
    if (record === undefined) {
      record = { duplicatedInNetwork: false };
      this.proposals.set(value, record);
    }
    return record;
  }

  private checkProposal(value: string, record: ProposalRecord): void {
    this.checks++;
    if (record.committedAt === undefined) return;
    if (record.refused !== undefined) {
      throw new InvariantViolation('proposal-outcome', `proposal ${value} was refused (${record.refused}) but committed at ${record.committedAt}`);
    }
    if (record.rejected !== undefined && !record.duplicatedInNetwork) {
      throw new InvariantViolation('proposal-outcome', `proposal ${value} was reported rejected (${record.rejected}) but committed at ${record.committedAt}`);
    }
  }
}
