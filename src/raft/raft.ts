/**
 * The Raft state machine (Raft §5, Ongaro's thesis): terms, roles, elections, and the follower
 * and candidate sides of replication. The leader's side lives in raft-leader.ts, which operates
 * on this class's state.
 *
 * Purely synchronous and deterministic: inputs are `tick()` and `step(message)` (plus the few
 * calls RawNode makes at `advance()` and for conf changes); outputs accumulate in `msgs`,
 * `readStates` and `rejectedProposals`, and in the log's unstable part, for RawNode to hand out
 * in the next Ready. Randomness comes only from `config.random`.
 *
 * Term handling follows etcd's `Step`: a message from a higher term makes us follow that term,
 * except (a) vote requests while we are within a leader's lease (checkQuorum, thesis §4.2.3 and
 * §9.6) are ignored outright, and (b) pre-votes and granted pre-vote responses never change our
 * term (thesis §9.6). Messages from lower terms are ignored, except that a stale leader's
 * MsgApp/MsgHeartbeat is answered (so it learns the newer term) and a stale pre-vote is rejected.
 */
import { applyToConfState } from './conf-change';
import { effectiveLeaseDriftMarginTicks, SILENT_LOGGER, validateConfig } from './config';
import { RaftLog } from './log';
import { makeMessage, OK } from './message';
import {
  afterCommit,
  appendLeaderEntries,
  flushPendingAppends,
  maybeCommit,
  maybeSendAppend,
  sendTimeoutNow,
  stepLeader,
} from './raft-leader';
import { ReadOnly } from './read-only';
import { ProgressTracker } from './tracker';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  ReadOnlyOption,
  Role,
  type ConfChange,
  type ConfState,
  type Config,
  type Entry,
  type Logger,
  type Message,
  type NodeId,
  type ReadState,
  type RejectedProposal,
  type Snapshot,
  type StepResult,
  type Term,
} from './types';
import { assert, bytesEqual, EMPTY_BYTES, payloadSizeBytes, TRANSFER_CONTEXT } from './util';

/** The kind of an election: pre-vote phase, a real election, or one forced by leader transfer. */
export type CampaignKind = 'pre-election' | 'election' | 'transfer';

/**
 * One node's Raft state. Used through RawNode; fields are public for raft-leader.ts, RawNode
 * and tests, and must only be changed by the methods here and in raft-leader.ts.
 *
 * Invariants: `vote` is NONE or a node voted for in `term`; `lead === id` iff role is Leader;
 * `leadTransferee !== NONE` only on a leader; `pendingConfIndex` is 0 unless leader.
 */
export class Raft {
  readonly id: NodeId;
  readonly config: Config;
  readonly logger: Logger;
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;
  readonly readOnly = new ReadOnly();

  term: Term = 0;
  vote: NodeId = NONE;
  role: Role = Role.Follower;
  lead: NodeId = NONE;
  /** Leader transfer in progress to this node (thesis §3.10), else NONE. */
  leadTransferee: NodeId = NONE;
  /** Set once this leader sent MsgTimeoutNow in its term: its lease can no longer be trusted. */
  transferAttempted = false;
  /** Leader: index of the last conf change appended (or of its first entry as leader). */
  pendingConfIndex = 0;
  /** Leader: payload bytes of appended but not yet committed entries. */
  uncommittedSize = 0;
  /** Leader: MsgReadIndex waiting for the first commit of this term (thesis §6.4 step 1). */
  pendingReadIndexMessages: Message[] = [];
  /** Leader: proposals were appended and the followers have not been sent them yet. */
  appendsPending = false;

  /** Ticks since the last reset (follower/candidate: since hearing from a leader; leader: check-quorum window). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Ticks since this node started: the leader's lease clock. Never reset. */
  tickCount = 0;
  /**
   * Lease-based reads only: right after a (re)start the node refuses votes for one election
   * timeout even without a known leader, because it cannot remember a lease it acknowledged
   * before it crashed.
   */
  startupLeaseGuard: boolean;

  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly leaseTicks: number;

  msgs: Message[] = [];
  /** The MsgProp forward that later proposals may still join while it is the last of `msgs`. */
  private openForward: Message | undefined;
  private openForwardBytes = 0;
  readStates: ReadState[] = [];
  rejectedProposals: RejectedProposal[] = [];

  constructor(config: Config) {
    validateConfig(config);
    this.config = config;
    this.id = config.id;
    this.logger = config.logger ?? SILENT_LOGGER;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.leaseTicks = config.electionTicks - effectiveLeaseDriftMarginTicks(config);
    this.log = new RaftLog(config.storage, config.maxCommittedSizePerReadyBytes);
    this.tracker = new ProgressTracker(config.maxInflightMessages, config.maxInflightBytes);
    const { hardState, confState } = config.storage.initialState();
    this.tracker.setConfState(confState, this.log.lastIndex() + 1);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      // A snapshot covers only committed entries, so a persisted commit BELOW the snapshot index
      // is stale, not corrupt: a crash between persisting a Ready's snapshot and its HardState
      // leaves exactly that (found by the simulator, seed 499; etcd-io/etcd#10219). Keep the
      // larger. A commit beyond the log is real damage and stays an assertion.
      const commit = Math.max(hardState.commit, this.log.committed);
      assert(commit <= this.log.lastIndex(), `Raft: persisted commit ${hardState.commit} beyond the last index ${this.log.lastIndex()}`);
      this.term = hardState.term;
      this.vote = hardState.vote;
      this.log.committed = commit;
    }
    if (config.applied !== undefined && config.applied > this.log.applied) this.log.appliedTo(config.applied);
    this.startupLeaseGuard = config.checkQuorum && config.readOnlyOption === ReadOnlyOption.LeaseBased;
    this.becomeFollower(this.term, NONE);
    this.logger.info('raft: started', {
      id: this.id,
      term: this.term,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      voters: confState.voters,
    });
  }

  // ----- outputs -----

  /**
   * Queues a message for the next Ready. Sets `from`, and `term` for every kind except the
   * term-less forwards (MsgProp, MsgReadIndex, MsgPropReject) and votes, whose term the caller
   * sets (a pre-vote is sent at a future term).
   */
  send(message: Message): void {
    if (message.from === NONE) message.from = this.id;
    const type = message.type;
    if (
      type === MessageType.MsgVote ||
      type === MessageType.MsgVoteResp ||
      type === MessageType.MsgPreVote ||
      type === MessageType.MsgPreVoteResp
    ) {
      assert(message.term !== 0, `Raft.send: ${MessageType[type]} without a term`);
    } else if (type !== MessageType.MsgProp && type !== MessageType.MsgReadIndex && type !== MessageType.MsgPropReject) {
      message.term = this.term;
    }
    this.msgs.push(message);
  }

  // ----- role transitions -----

  private resetRandomizedElectionTimeout(): void {
    const extra = this.config.random(this.electionTicks);
    assert(Number.isInteger(extra) && extra >= 0 && extra < this.electionTicks, `config.random returned ${extra}`);
    this.randomizedElectionTimeout = this.electionTicks + extra;
  }

  /** Common to every role change (etcd `reset`): new term clears the vote; timers and leader state reset. */
  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.transferAttempted = false;
    this.tracker.resetVotes();
    const next = this.log.lastIndex() + 1;
    for (const [id, progress] of this.tracker.progress) {
      progress.resetForTerm(next, id === this.id ? this.log.stableLastIndex() : 0, id === this.id);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
    this.appendsPending = false;
  }

  /** Becomes a follower of `lead` (or of nobody) in `term`. */
  becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.role = Role.Follower;
    this.lead = lead;
    this.logger.debug('raft: became follower', { id: this.id, term, lead });
  }

  /** Enters the pre-vote phase (thesis §9.6): neither the term nor the vote changes. */
  becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'becomePreCandidate on a leader');
    this.tracker.resetVotes();
    this.role = Role.PreCandidate;
    this.lead = NONE;
    this.logger.info('raft: became pre-candidate', { id: this.id, term: this.term });
  }

  /** Starts an election (Raft §5.2): increments the term and votes for itself. */
  becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'becomeCandidate on a leader');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.logger.info('raft: became candidate', { id: this.id, term: this.term });
  }

  /**
   * Becomes leader of the current term (Raft §5.2) and appends an empty entry of its term, which
   * commits every earlier entry (Raft §5.4.2) and lets read-only requests be served (thesis §6.4).
   * `pendingConfIndex` is set to that entry, so no conf change is accepted until an entry of this
   * term is applied (the single-server change fix, Ongaro 2015).
   */
  becomeLeader(): void {
    assert(this.role !== Role.Follower, 'becomeLeader from follower');
    this.reset(this.term);
    this.role = Role.Leader;
    this.lead = this.id;
    const self = this.tracker.progress.get(this.id);
    assert(self !== undefined, 'becomeLeader: leader not in the configuration');
    self.becomeReplicate();
    const appended = appendLeaderEntries(this, [{ type: EntryType.Normal, data: EMPTY_BYTES }]);
    assert(appended, 'becomeLeader: the empty entry was refused');
    this.pendingConfIndex = this.log.lastIndex();
    this.logger.info('raft: became leader', { id: this.id, term: this.term, lastIndex: this.log.lastIndex() });
  }

  // ----- time -----

  /** One logical tick: election timeout on followers/candidates, heartbeats and check-quorum on the leader. */
  tick(): void {
    this.tickCount++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) this.startupLeaseGuard = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage(MessageType.MsgHup, this.id, { from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.step(makeMessage(MessageType.MsgCheckQuorum, this.id, { from: this.id }));
      // A transfer that did not complete within an election timeout is abandoned (thesis §3.10).
      if (this.role === Role.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer('timed out');
    }
    if (this.role !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage(MessageType.MsgBeat, this.id, { from: this.id }));
    }
  }

  /** Abandons a leader transfer (the leader accepts proposals again). */
  abortLeaderTransfer(why: string): void {
    if (this.leadTransferee === NONE) return;
    this.logger.info('raft: leader transfer aborted', { id: this.id, transferee: this.leadTransferee, why });
    this.leadTransferee = NONE;
  }

  /** True if this node may campaign: a voter with no snapshot waiting to be persisted. */
  promotable(): boolean {
    return this.tracker.isVoter(this.id) && this.log.unstable.snapshot === undefined;
  }

  /**
   * The lease check of thesis §4.2.3 / §9.6: with checkQuorum, a node that heard from a leader
   * less than an election timeout ago (or that just started, under lease-based reads) disregards
   * vote requests.
   */
  inLease(): boolean {
    return (
      this.config.checkQuorum &&
      this.electionElapsed < this.electionTicks &&
      (this.lead !== NONE || this.startupLeaseGuard)
    );
  }

  // ----- input -----

  /** Processes one message (from a peer, or a local kind). See the module overview for term rules. */
  step(m: Message): StepResult {
    if (m.from !== NONE && m.from !== this.id && this.tracker.isRemoved(m.from)) {
      this.logger.debug('raft: ignored a message from a removed node', { id: this.id, from: m.from, type: MessageType[m.type] });
      return OK;
    }
    if (m.term > this.term && m.term !== 0) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = bytesEqual(m.context, TRANSFER_CONTEXT);
        if (!force && this.inLease()) {
          this.logger.debug('raft: ignored a vote request within the leader lease', { id: this.id, from: m.from, term: m.term });
          return OK;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a pre-vote (thesis §9.6).
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term we asked about; we bump it only on a quorum.
      } else if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term && m.term !== 0) {
      if ((this.config.checkQuorum || this.config.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A leader of an older term: tell it our term so that it steps down. Without this a node
        // whose term advanced during a partition could never rejoin, as we do not bump terms on
        // vote requests within a lease (etcd's "stuck candidate" case).
        this.send(makeMessage(MessageType.MsgAppResp, m.from));
      } else if (m.type === MessageType.MsgPreVote) {
        this.send(makeMessage(MessageType.MsgPreVoteResp, m.from, { term: this.term, reject: true }));
      }
      return OK;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(bytesEqual(m.context, TRANSFER_CONTEXT) ? 'transfer' : 'election');
        return OK;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVoteRequest(m);
        return OK;
      default:
        break;
    }
    if (m.type === MessageType.MsgProp && m.from === this.id && this.tracker.isRemoved(this.id)) {
      return { ok: false, reason: 'not-a-member' };
    }
    switch (this.role) {
      case Role.Leader:
        return stepLeader(this, m);
      case Role.Candidate:
      case Role.PreCandidate:
        return this.stepCandidate(m);
      case Role.Follower:
        return this.stepFollower(m);
    }
  }

  /** MsgHup: campaign unless leader, not promotable, or conf changes wait to be applied. */
  private hup(kind: 'election' | 'transfer'): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) {
      this.logger.debug('raft: not promotable, not campaigning', { id: this.id });
      return;
    }
    // A committed but unapplied conf change means our view of the configuration is stale; wait
    // for it (as etcd does). A transfer campaign may go ahead: single-server changes keep every
    // majority of the old and new configurations overlapping (thesis §4.1), and the leader that
    // sent MsgTimeoutNow has just committed (possibly its own removal).
    if (kind !== 'transfer' && this.hasUnappliedConfChanges()) {
      this.logger.info('raft: not campaigning while conf changes are committed but unapplied', { id: this.id });
      return;
    }
    this.campaign(kind === 'transfer' ? 'transfer' : this.config.preVote ? 'pre-election' : 'election');
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const from = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (from > this.log.committed) return false;
    const entries = this.log.slice(from, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    if (typeof entries === 'string') return false;
    return entries.some((entry) => entry.type === EntryType.ConfChange);
  }

  /** Runs a (pre-)election (Raft §5.2, thesis §9.6): vote for ourselves, ask every other voter. */
  campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: Term;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteType = MessageType.MsgPreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = MessageType.MsgVote;
      term = this.term;
    }
    this.tracker.recordVote(this.id, true);
    if (this.tracker.tallyVotes() === 'won') {
      // A single-voter cluster wins at once.
      if (kind === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    const context = kind === 'transfer' ? TRANSFER_CONTEXT : EMPTY_BYTES;
    for (const voter of this.tracker.confState.voters) {
      if (voter === this.id) continue;
      this.send(makeMessage(voteType, voter, { term, index: lastIndex, logTerm: lastTerm, context }));
    }
  }

  /**
   * RequestVote / pre-vote receiver (Raft §5.2, §5.4.1; thesis §9.6). Grants if we have not voted
   * for someone else in this term and know no leader (or it is a pre-vote for a later term), and
   * the candidate's log is at least as up to date as ours. A real vote is recorded (and must be
   * persisted before the response is sent — the Ready contract ensures it) and resets our
   * election timer.
   */
  private handleVoteRequest(m: Message): void {
    const responseType = m.type === MessageType.MsgVote ? MessageType.MsgVoteResp : MessageType.MsgPreVoteResp;
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.MsgPreVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(makeMessage(responseType, m.from, { term: m.term }));
      if (m.type === MessageType.MsgVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(makeMessage(responseType, m.from, { term: this.term, reject: true }));
    }
  }

  private stepFollower(m: Message): StepResult {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === NONE) return { ok: false, reason: 'no-leader' };
        if (this.config.disableProposalForwarding) return { ok: false, reason: 'proposal-forwarding-disabled' };
        this.forwardProposal(m);
        return OK;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return OK;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return OK;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return OK;
      case MessageType.MsgTransferLeader:
        if (this.lead === NONE) return { ok: false, reason: 'no-leader' };
        this.send({ ...m, to: this.lead, term: 0 });
        return OK;
      case MessageType.MsgTimeoutNow:
        this.logger.info('raft: received MsgTimeoutNow, campaigning for leader transfer', { id: this.id, from: m.from });
        // Leader transfer (thesis §3.10): campaign at once, skipping pre-vote and leases.
        this.hup('transfer');
        return OK;
      case MessageType.MsgReadIndex:
        if (this.lead === NONE) return { ok: false, reason: 'no-leader' };
        this.send({ ...m, to: this.lead });
        return OK;
      case MessageType.MsgReadIndexResp:
        this.acceptReadIndexResponse(m);
        return OK;
      case MessageType.MsgPropReject:
        this.acceptProposalRejection(m);
        return OK;
      default:
        return OK;
    }
  }

  /**
   * Forwards a proposal to the leader. Proposals of Normal entries made since the last Ready travel
   * in ONE MsgProp (up to `maxSizePerMsgBytes`): when the last queued message is such a forward
   * to the same leader, the entries join it. Only the last message is extended, so the order of
   * everything this node sends is unchanged, and a message already handed out in a Ready is never
   * touched; only proposals of the same origin are joined (a refusal goes back to `from`). Conf
   * changes always travel alone, so the leader's all-or-nothing refusal of a MsgProp
   * (handleProposal) never takes a write down with a refused conf change; writes joined in one
   * forward are accepted or refused together (as the uncommitted-size cap refuses a whole MsgProp
   * in etcd). One message per forwarded write was most of the Raft messages under 64 concurrent
   * writers.
   */
  private forwardProposal(m: Message): void {
    const bytes = payloadSizeBytes(m.entries);
    const last = this.msgs[this.msgs.length - 1];
    if (
      last !== undefined &&
      last === this.openForward &&
      last.to === this.lead &&
      last.from === m.from &&
      onlyNormalEntries(m.entries) &&
      this.openForwardBytes + bytes <= this.config.maxSizePerMsgBytes
    ) {
      last.entries.push(...m.entries);
      this.openForwardBytes += bytes;
      return;
    }
    // A copy of the entry array: later forwards may extend it.
    const forward: Message = { ...m, to: this.lead, entries: m.entries.slice() };
    this.send(forward);
    this.openForward = onlyNormalEntries(m.entries) ? forward : undefined;
    this.openForwardBytes = bytes;
  }

  private stepCandidate(m: Message): StepResult {
    switch (m.type) {
      case MessageType.MsgProp:
      case MessageType.MsgReadIndex:
      case MessageType.MsgTransferLeader:
        return { ok: false, reason: 'no-leader' };
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return OK;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return OK;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return OK;
      case MessageType.MsgVoteResp:
      case MessageType.MsgPreVoteResp:
        this.handleVoteResponse(m);
        return OK;
      case MessageType.MsgReadIndexResp:
        this.acceptReadIndexResponse(m);
        return OK;
      case MessageType.MsgPropReject:
        this.acceptProposalRejection(m);
        return OK;
      default:
        return OK;
    }
  }

  private handleVoteResponse(m: Message): void {
    const preCandidate = this.role === Role.PreCandidate;
    const expected = preCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    if (m.type !== expected) return;
    // A grant must be for the term we asked about; stale grants from earlier rounds do not count.
    if (!m.reject && m.term !== (preCandidate ? this.term + 1 : this.term)) return;
    this.tracker.recordVote(m.from, !m.reject);
    const result = this.tracker.tallyVotes();
    if (result === 'won') {
      if (preCandidate) this.campaign('election');
      else {
        this.becomeLeader();
        flushPendingAppends(this, true);
      }
    } else if (result === 'lost') {
      this.becomeFollower(this.term, NONE);
    }
  }

  private acceptReadIndexResponse(m: Message): void {
    const context = m.entries[0]?.data ?? EMPTY_BYTES;
    this.readStates.push({ index: m.index, context });
  }

  private acceptProposalRejection(m: Message): void {
    assert(m.reason !== undefined, 'MsgPropReject without a reason');
    this.rejectedProposals.push({ entries: m.entries, reason: m.reason });
  }

  /** AppendEntries receiver (Raft §5.3), with the fast back-off hint on rejection. */
  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(makeMessage(MessageType.MsgAppResp, m.from, { index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      // Our answers to the MsgApps that carried the entries up to `index` tell the leader (see Message.commitOnly).
      if (m.commitOnly === true && m.entries.length === 0) return;
      this.send(makeMessage(MessageType.MsgAppResp, m.from, { index: lastNew }));
      return;
    }
    // Fast back-off: point the leader at the largest index ≤ the probed one whose term is ≤ the
    // probe's term; everything after it in our log is of a term the leader's log does not have
    // at those positions, so the leader may skip the whole term at once.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      makeMessage(MessageType.MsgAppResp, m.from, { index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(makeMessage(MessageType.MsgHeartbeatResp, m.from, { context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    assert(m.snapshot !== undefined, 'MsgSnap without a snapshot');
    if (this.restore(m.snapshot)) {
      this.logger.info('raft: restored snapshot', { id: this.id, index: m.snapshot.metadata.index, term: m.snapshot.metadata.term });
      this.send(makeMessage(MessageType.MsgAppResp, m.from, { index: this.log.lastIndex() }));
    } else {
      this.send(makeMessage(MessageType.MsgAppResp, m.from, { index: this.log.committed }));
    }
  }

  /**
   * InstallSnapshot receiver (Raft §7). Returns true if the snapshot replaced the log (it will be
   * in the next Ready); false if it was not newer than our commit index, or if our log already has
   * its last entry (then only the commit index moves forward). Restoring also installs the
   * snapshot's configuration.
   */
  restore(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    assert(this.role === Role.Follower, 'restore on a non-follower');
    if (this.log.matchTerm(index, term)) {
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.tracker.setConfState(snapshot.metadata.confState, this.log.lastIndex() + 1);
    return true;
  }

  // ----- calls from RawNode -----

  /**
   * Applies a committed conf change (thesis §4.1; effective when applied, as in etcd). Invalid
   * changes leave the configuration unchanged on every node alike. On the leader, a quorum change
   * may commit entries; removal of the leader itself makes it step down, after handing leadership
   * to the most up-to-date remaining voter if one is fully caught up (thesis §4.2.2).
   */
  applyConfChange(change: ConfChange): ConfState {
    const outcome = applyToConfState(this.tracker.confState, change);
    if (!outcome.ok) {
      this.logger.warn('raft: ignored an invalid conf change at apply time', {
        id: this.id,
        type: ConfChangeType[change.type],
        nodeId: change.nodeId,
        reason: outcome.reason,
      });
      return outcome.confState;
    }
    const wasMember = this.tracker.progress.has(change.nodeId);
    this.tracker.setConfState(outcome.confState, this.log.lastIndex() + 1);
    this.logger.info('raft: applied conf change', {
      id: this.id,
      type: ConfChangeType[change.type],
      nodeId: change.nodeId,
      voters: outcome.confState.voters,
      learners: outcome.confState.learners,
    });
    if (this.role !== Role.Leader) return outcome.confState;
    if (change.type === ConfChangeType.RemoveNode && change.nodeId === this.id) {
      this.stepDownAfterRemoval();
      return outcome.confState;
    }
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer('transferee removed');
    if (maybeCommit(this)) afterCommit(this);
    else if (!wasMember && this.tracker.progress.has(change.nodeId)) maybeSendAppend(this, change.nodeId, true);
    return outcome.confState;
  }

  private stepDownAfterRemoval(): void {
    let best: NodeId = NONE;
    let bestMatch = -1;
    for (const voter of this.tracker.confState.voters) {
      const match = this.tracker.progress.get(voter)?.match ?? 0;
      if (match > bestMatch) {
        best = voter;
        bestMatch = match;
      }
    }
    if (best !== NONE && bestMatch === this.log.lastIndex()) sendTimeoutNow(this, best);
    this.logger.info('raft: leader removed from the configuration, stepping down', { id: this.id, successor: best });
    this.becomeFollower(this.term, NONE);
  }

  /** Leader: committed entries left via a Ready; their payload no longer counts as uncommitted. */
  reduceUncommittedSize(bytes: number): void {
    if (this.role !== Role.Leader) return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - bytes);
  }

  /**
   * The runtime acknowledged a Ready (RawNode.advance). A leader now counts its own persisted
   * entries toward commitment (thesis §10.2.1: it may replicate before its own fsync completes,
   * but only a durable copy may count toward a quorum).
   */
  onAdvance(): void {
    if (this.role !== Role.Leader) return;
    const self = this.tracker.progress.get(this.id);
    if (self === undefined) return;
    if (self.maybeUpdate(this.log.stableLastIndex()) && maybeCommit(this)) afterCommit(this);
  }
}

function onlyNormalEntries(entries: readonly Entry[]): boolean {
  for (const entry of entries) if (entry.type !== EntryType.Normal) return false;
  return true;
}
