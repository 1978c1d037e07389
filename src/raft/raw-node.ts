/**
 * RawNode: the public face of the core (implements {@link RaftNode}). It wraps {@link Raft},
 * assembles Readys and applies the runtime's acknowledgements (etcd `rawnode.go`).
 *
 * The cycle is: inputs (tick, step, propose, ...) → `hasReady()` → `ready()` → the runtime
 * persists, sends and applies in the order documented on {@link Ready} (and in docs/RAFT.md) →
 * `advance()`. Exactly one Ready may be outstanding: calling `ready()` again before `advance()` is
 * a bug and throws.
 */
import { encodeConfChange } from './conf-change';
import { makeMessage, OK } from './message';
import { Raft } from './raft';
import { flushPendingAppends } from './raft-leader';
import {
  EntryType,
  MessageType,
  NONE,
  Role,
  type ConfChange,
  type ConfState,
  type Config,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type NodeId,
  type ProgressStatus,
  type RaftNode,
  type Ready,
  type SoftState,
  type StepResult,
  type Status,
  type Term,
} from './types';
import { assert, payloadSizeBytes } from './util';

/** What the outstanding Ready handed out, so that advance() can acknowledge exactly that. */
interface Outstanding {
  readonly lastEntryIndex: LogIndex;
  readonly lastEntryTerm: Term;
  readonly snapshotIndex: LogIndex;
  readonly lastCommittedIndex: LogIndex;
}

/** Message kinds that only the local runtime may step (never accepted from the network). */
const LOCAL_ONLY = new Set<MessageType>([
  MessageType.MsgHup,
  MessageType.MsgBeat,
  MessageType.MsgUnreachable,
  MessageType.MsgSnapStatus,
  MessageType.MsgCheckQuorum,
]);

/**
 * A Raft node without I/O. See the module overview and {@link Ready} for the caller's duties.
 *
 * Restart: construct it over a Storage holding the persisted state; term, vote and commit come
 * from `initialState().hardState`, the configuration from `initialState().confState`, and
 * `applied` from `config.applied` (default: the snapshot's index). Committed entries after
 * `applied` are handed out again in the first Readys.
 */
export class RawNode implements RaftNode {
  /** The state machine (exposed for tests and status; mutate only through this class). */
  readonly raft: Raft;
  private previousSoftState: SoftState;
  private previousHardState: HardState;
  private outstanding: Outstanding | undefined = undefined;

  /** Creates a node; throws RaftConfigError on an invalid configuration. */
  constructor(config: Config) {
    this.raft = new Raft(config);
    this.previousSoftState = { lead: this.raft.lead, role: this.raft.role };
    this.previousHardState = this.hardState();
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }

  /** See {@link RaftNode.tick}. */
  tick(): void {
    this.raft.tick();
  }

  /** See {@link RaftNode.campaign}: pre-vote first when configured. */
  campaign(): void {
    this.raft.step(makeMessage(MessageType.MsgHup, this.raft.id, { from: this.raft.id }));
  }

  /**
   * Proposes `data` as a Normal entry. Refusals: 'no-leader', 'proposal-forwarding-disabled'
   * (follower), 'leader-transfer-in-progress', 'uncommitted-size-exceeded' (leader),
   * 'not-a-member' (this node was removed). On a follower `ok` only means "forwarded": the leader
   * may still refuse, which then shows up in `Ready.rejectedProposals`.
   */
  propose(data: Uint8Array): StepResult {
    return this.proposeEntry(EntryType.Normal, data);
  }

  /**
   * Proposes a single-server membership change (thesis §4.1). Refusals as for propose(), plus
   * 'conf-change-pending' (a change or this term's first entry is not yet applied),
   * 'conf-change-invalid' and 'removed-node' (see conf-change.ts `checkConfChange`). A follower
   * forwards it to the leader, which validates it against the current configuration.
   */
  proposeConfChange(change: ConfChange): StepResult {
    if (change.nodeId === NONE) return { ok: false, reason: 'conf-change-invalid' };
    if (this.raft.tracker.isRemoved(change.nodeId)) return { ok: false, reason: 'removed-node' };
    return this.proposeEntry(EntryType.ConfChange, encodeConfChange(change));
  }

  private proposeEntry(type: EntryType, data: Uint8Array): StepResult {
    const entry: Entry = { term: 0, index: 0, type, data };
    return this.raft.step(makeMessage(MessageType.MsgProp, NONE, { from: this.raft.id, entries: [entry] }));
  }

  /**
   * Feeds a message from a peer. Local-only kinds (MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus,
   * MsgCheckQuorum) arriving from another node are ignored; use the dedicated methods.
   */
  step(message: Message): StepResult {
    if (LOCAL_ONLY.has(message.type) && message.from !== this.raft.id) return OK;
    return this.raft.step(message);
  }

  /**
   * Requests a linearizable read point (thesis §6.4). The answer is a ReadState with the same
   * `context` in a later Ready (possibly on this node after forwarding to the leader). Refused
   * with 'no-leader' when no leader is known. Requests pending when leadership changes are dropped
   * silently; the runtime must time them out and retry.
   */
  readIndex(context: Uint8Array): StepResult {
    const entry: Entry = { term: 0, index: 0, type: EntryType.Normal, data: context };
    return this.raft.step(makeMessage(MessageType.MsgReadIndex, NONE, { from: this.raft.id, entries: [entry] }));
  }

  /** Asks the leader (this node, or forwarded to it) to hand leadership to `transferee` (thesis §3.10). */
  transferLeader(transferee: NodeId): void {
    this.raft.step(makeMessage(MessageType.MsgTransferLeader, this.raft.id, { from: transferee }));
  }

  /**
   * Applies a committed ConfChange (call it when the entry is applied, in log order). Returns the
   * resulting configuration, which the runtime should store with its snapshot. An invalid change
   * returns the configuration unchanged.
   */
  applyConfChange(change: ConfChange): ConfState {
    return this.raft.applyConfChange(change);
  }

  /** See {@link RaftNode.reportUnreachable}. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(makeMessage(MessageType.MsgUnreachable, this.raft.id, { from: id }));
  }

  /** See {@link RaftNode.reportSnapshot}. */
  reportSnapshot(id: NodeId, outcome: 'finish' | 'failure'): void {
    this.raft.step(makeMessage(MessageType.MsgSnapStatus, this.raft.id, { from: id, reject: outcome === 'failure' }));
  }

  /**
   * True if `ready()` has something to hand out. Always false while a Ready is outstanding. Also
   * turns proposals appended since the last call into MsgApps (so it is not free of effects, but
   * calling it changes nothing a Ready would not).
   */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    flushPendingAppends(r);
    if (r.msgs.length > 0 || r.readStates.length > 0 || r.rejectedProposals.length > 0) return true;
    if (r.log.unstable.entries.length > 0 || r.log.unstable.snapshot !== undefined) return true;
    if (r.log.hasNextCommittedEntries()) return true;
    if (r.lead !== this.previousSoftState.lead || r.role !== this.previousSoftState.role) return true;
    const hs = this.previousHardState;
    return r.term !== hs.term || r.vote !== hs.vote || r.log.committed !== hs.commit;
  }

  /**
   * Everything the runtime must now persist, send and apply, in the order documented on
   * {@link Ready}. Throws if the previous Ready was not acknowledged with advance().
   */
  ready(): Ready {
    assert(this.outstanding === undefined, 'RawNode.ready() called before advance() acknowledged the previous Ready');
    const r = this.raft;
    flushPendingAppends(r);
    const entries = r.log.unstableEntries();
    const snapshot = r.log.unstable.snapshot;
    const committedEntries = r.log.nextCommittedEntries();
    const messages = r.msgs;
    r.msgs = [];
    const readStates = r.readStates;
    r.readStates = [];
    const rejectedProposals = r.rejectedProposals;
    r.rejectedProposals = [];

    let softState: SoftState | undefined;
    if (r.lead !== this.previousSoftState.lead || r.role !== this.previousSoftState.role) {
      softState = { lead: r.lead, role: r.role };
      this.previousSoftState = softState;
    }
    const previous = this.previousHardState;
    let hardState: HardState | undefined;
    if (r.term !== previous.term || r.vote !== previous.vote || r.log.committed !== previous.commit) {
      hardState = this.hardState();
    }
    const mustSync =
      entries.length > 0 || snapshot !== undefined || r.term !== previous.term || r.vote !== previous.vote;
    if (hardState !== undefined) this.previousHardState = hardState;
    if (committedEntries.length > 0) r.reduceUncommittedSize(payloadSizeBytes(committedEntries));

    const lastEntry = entries[entries.length - 1];
    this.outstanding = {
      lastEntryIndex: lastEntry?.index ?? 0,
      lastEntryTerm: lastEntry?.term ?? 0,
      snapshotIndex: snapshot?.metadata.index ?? 0,
      lastCommittedIndex: committedEntries[committedEntries.length - 1]?.index ?? 0,
    };
    const ready: {
      -readonly [K in keyof Ready]: Ready[K];
    } = { readStates, entries, committedEntries, messages, rejectedProposals, mustSync };
    if (softState !== undefined) ready.softState = softState;
    if (hardState !== undefined) ready.hardState = hardState;
    if (snapshot !== undefined) ready.snapshot = snapshot;
    return ready;
  }

  /**
   * Acknowledges the outstanding Ready: its entries and snapshot are persisted, its messages
   * sent, its committed entries applied. A leader now counts its own persisted entries toward
   * commitment (thesis §10.2.1), which may produce new messages and committed entries.
   */
  advance(): void {
    const done = this.outstanding;
    assert(done !== undefined, 'RawNode.advance() without an outstanding Ready');
    this.outstanding = undefined;
    const log = this.raft.log;
    if (done.lastEntryIndex > 0) log.unstable.stableTo(done.lastEntryIndex, done.lastEntryTerm);
    if (done.snapshotIndex > 0) {
      log.unstable.stableSnapTo(done.snapshotIndex);
      if (done.snapshotIndex > log.applied) log.applied = done.snapshotIndex;
    }
    if (done.lastCommittedIndex > 0) log.appliedTo(done.lastCommittedIndex);
    this.raft.onAdvance();
  }

  /** A snapshot of the node's state (see {@link Status}); progress only on the leader. */
  status(): Status {
    const r = this.raft;
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (r.role === Role.Leader) {
      progress = new Map();
      for (const [id, value] of r.tracker.progress) progress.set(id, value.toStatus());
    }
    const base = {
      id: r.id,
      hardState: this.hardState(),
      softState: { lead: r.lead, role: r.role },
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      confState: r.tracker.confState,
      leadTransferee: r.leadTransferee,
    };
    return progress === undefined ? base : { ...base, progress };
  }
}
