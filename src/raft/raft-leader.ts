/**
 * The leader's side of Raft: proposals, log replication with flow control (Raft §5.3),
 * commitment (Raft §5.4.2), heartbeats, check-quorum, snapshots to lagging followers (Raft §7),
 * leader transfer (thesis §3.10) and read-only queries (thesis §6.4).
 *
 * Functions over a {@link Raft} whose role is Leader. Replication per follower follows its
 * {@link Progress} state (Probe / Replicate / Snapshot; see progress.ts).
 */
import { checkConfChange, decodeConfChange } from './conf-change';
import { makeMessage, OK } from './message';
import type { Raft } from './raft';
import { decodeRound, encodeRound } from './read-only';
import {
  EntryType,
  MessageType,
  NONE,
  ProgressState,
  ReadOnlyOption,
  Role,
  type LogIndex,
  type Message,
  type NodeId,
  type RejectReason,
  type StepResult,
  type Term,
} from './types';
import { assert, EMPTY_BYTES, payloadSizeBytes } from './util';
import type { Progress } from './progress';

/** Leader's step function: handles one message in Leader role. */
export function stepLeader(r: Raft, m: Message): StepResult {
  switch (m.type) {
    case MessageType.MsgBeat:
      broadcastHeartbeat(r);
      return OK;
    case MessageType.MsgCheckQuorum:
      // Check-quorum (thesis §6.2): a leader that has not heard from a majority within an
      // election timeout may be partitioned away; it steps down so clients look elsewhere.
      if (!r.tracker.quorumActive(r.id)) {
        r.logger.warn('raft: leader lost contact with a quorum, stepping down', { id: r.id, term: r.term });
        r.becomeFollower(r.term, NONE);
      } else {
        r.tracker.resetRecentActive(r.id);
      }
      return OK;
    case MessageType.MsgProp:
      return handleProposal(r, m);
    case MessageType.MsgReadIndex:
      return handleReadIndex(r, m);
    case MessageType.MsgTransferLeader:
      handleTransferLeader(r, m);
      return OK;
    case MessageType.MsgPropReject:
      // A rejection of something we forwarded while we were a follower.
      if (m.reason !== undefined) r.rejectedProposals.push({ entries: m.entries, reason: m.reason });
      return OK;
    case MessageType.MsgReadIndexResp:
      r.readStates.push({ index: m.index, context: m.entries[0]?.data ?? EMPTY_BYTES });
      return OK;
    default:
      break;
  }
  const progress = r.tracker.progress.get(m.from);
  if (progress === undefined || m.from === r.id) return OK;
  switch (m.type) {
    case MessageType.MsgAppResp:
      handleAppendResponse(r, m, progress);
      break;
    case MessageType.MsgHeartbeatResp:
      handleHeartbeatResponse(r, m, progress);
      break;
    case MessageType.MsgSnapStatus:
      if (progress.state !== ProgressState.Snapshot) break;
      if (m.reject) progress.pendingSnapshot = 0;
      progress.becomeProbe();
      // Wait for a heartbeat response before probing again: the follower may still be
      // applying the snapshot.
      progress.msgAppFlowPaused = true;
      break;
    case MessageType.MsgUnreachable:
      // The optimistic pipeline may have lost messages: fall back to probing.
      if (progress.state === ProgressState.Replicate) progress.becomeProbe();
      break;
    default:
      break;
  }
  return OK;
}

function refuseProposal(r: Raft, m: Message, reason: RejectReason): StepResult {
  if (m.from !== NONE && m.from !== r.id) {
    r.send(makeMessage(MessageType.MsgPropReject, m.from, { entries: m.entries, reason }));
  }
  return { ok: false, reason };
}

/**
 * A proposal (local or forwarded): refused during a transfer, for a conf change while another is
 * pending or when invalid, and beyond the uncommitted cap; otherwise appended. Followers receive
 * the new entries when the next Ready is assembled (all proposals since the last Ready travel in
 * one MsgApp per follower).
 */
function handleProposal(r: Raft, m: Message): StepResult {
  assert(m.entries.length > 0, 'MsgProp without entries');
  if (!r.tracker.progress.has(r.id)) return refuseProposal(r, m, 'not-a-member');
  if (r.leadTransferee !== NONE) return refuseProposal(r, m, 'leader-transfer-in-progress');
  let confChangeOffset = -1;
  for (let i = 0; i < m.entries.length; i++) {
    const entry = m.entries[i]!;
    if (entry.type !== EntryType.ConfChange) continue;
    // One membership change at a time (thesis §4.1): the previous one, and the first entry of
    // this term, must have been applied.
    if (confChangeOffset >= 0 || r.pendingConfIndex > r.log.applied) return refuseProposal(r, m, 'conf-change-pending');
    const reason = checkConfChange(r.tracker.confState, decodeConfChange(entry.data));
    if (reason !== undefined) return refuseProposal(r, m, reason);
    confChangeOffset = i;
  }
  if (!appendLeaderEntries(r, m.entries)) return refuseProposal(r, m, 'uncommitted-size-exceeded');
  if (confChangeOffset >= 0) r.pendingConfIndex = r.log.lastIndex() - m.entries.length + 1 + confChangeOffset;
  r.appendsPending = true;
  return OK;
}

/**
 * Sends the appended proposals to every follower whose window allows (called by RawNode before
 * assembling a Ready). With `sendIfEmpty`, followers with nothing new get an empty MsgApp (carrying
 * the commit index).
 */
export function flushPendingAppends(r: Raft, sendIfEmpty = false): void {
  if (!r.appendsPending && !sendIfEmpty) return;
  r.appendsPending = false;
  if (r.role !== Role.Leader) return;
  broadcastAppend(r, sendIfEmpty);
}

/**
 * Sends MsgApp to every peer (empty ones too when `sendIfEmpty`), filling each pipeline window.
 * `emptyIsCommitOnly` (the commit broadcast) marks the empty ones to replicating followers
 * commit-only (see {@link maybeSendAppend}).
 */
export function broadcastAppend(r: Raft, sendIfEmpty: boolean, emptyIsCommitOnly = false): void {
  for (const id of r.tracker.progress.keys()) {
    if (id === r.id) continue;
    if (maybeSendAppend(r, id, sendIfEmpty, emptyIsCommitOnly)) while (maybeSendAppend(r, id, false));
  }
}

/**
 * Sends one MsgApp to `to` if its progress allows (Raft §5.3): the entries from `next`, bounded by
 * maxSizePerMsgBytes, preceded by (next-1, its term) for the consistency check. Falls back to a
 * snapshot if those entries were compacted. Returns true if a message was sent.
 *
 * With `emptyIsCommitOnly`, an empty MsgApp to a follower in Replicate state is commit-only: it
 * tells the follower the commit index, and a follower whose log matches does not answer it
 * (Message.commitOnly). Nothing is lost by the silence: in Replicate state everything up to
 * `next - 1` went out in MsgApps of their own, each answered. If one of them is lost, a
 * heartbeat response finds `match` behind and sends an empty MsgApp that is answered; a rejected
 * commit-only MsgApp is answered too. Only the commit broadcast asks for this: elsewhere an
 * empty MsgApp is sent to learn what the follower holds.
 */
export function maybeSendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean, emptyIsCommitOnly = false): boolean {
  const progress = r.tracker.progress.get(to);
  if (progress === undefined || progress.isPaused()) return false;
  const previousIndex = progress.next - 1;
  const previousTerm = r.log.term(previousIndex);
  if (typeof previousTerm !== 'number') return maybeSendSnapshot(r, to, progress);
  const entries = r.log.entriesFrom(progress.next, r.config.maxSizePerMsgBytes);
  if (typeof entries === 'string') return maybeSendSnapshot(r, to, progress);
  if (entries.length === 0 && !sendIfEmpty) return false;
  const message = makeMessage(MessageType.MsgApp, to, {
    index: previousIndex,
    logTerm: previousTerm,
    entries,
    commit: r.log.committed,
  });
  if (emptyIsCommitOnly && entries.length === 0 && progress.state === ProgressState.Replicate) message.commitOnly = true;
  r.send(message);
  const last = entries.length === 0 ? previousIndex : entries[entries.length - 1]!.index;
  progress.sentEntries(entries.length, last, entries.length === 0 ? 0 : payloadSizeBytes(entries));
  return true;
}

/**
 * The follower needs entries we compacted: send the latest snapshot (Raft §7) and wait in Snapshot
 * state. Only to a recently active follower (no point streaming to a dead one), and not while the
 * storage is still producing a snapshot (retry on a later heartbeat response).
 */
function maybeSendSnapshot(r: Raft, to: NodeId, progress: Progress): boolean {
  if (!progress.recentActive) return false;
  const snapshot = r.log.snapshot();
  if (snapshot === 'snapshot-temporarily-unavailable') {
    r.logger.debug('raft: snapshot temporarily unavailable', { id: r.id, to });
    return false;
  }
  assert(snapshot.metadata.index > 0, 'maybeSendSnapshot: entries compacted but the snapshot is empty');
  progress.becomeSnapshot(snapshot.metadata.index);
  r.send(makeMessage(MessageType.MsgSnap, to, { snapshot }));
  r.logger.info('raft: MsgSnap for a follower behind the log', { id: r.id, to, index: snapshot.metadata.index });
  return true;
}

/**
 * Raft §5.4.2: the leader commits the highest index replicated on a majority, but only if that
 * entry is of its current term (earlier-term entries are committed indirectly).
 * `testingKnobs.unsafeSkipCommitTermCheck` disables exactly the term check. Returns true if the
 * commit index moved.
 */
export function maybeCommit(r: Raft): boolean {
  const index = r.tracker.committedIndex();
  if (index <= r.log.committed) return false;
  if (r.config.testingKnobs?.unsafeSkipCommitTermCheck !== true && r.log.termOrZero(index) !== r.term) return false;
  r.log.commitTo(index);
  return true;
}

/** After the commit index moved: serve reads waiting for this term's first commit, and tell the followers. */
export function afterCommit(r: Raft): void {
  releasePendingReadIndexMessages(r);
  broadcastAppend(r, true, true);
}

function handleAppendResponse(r: Raft, m: Message, progress: Progress): void {
  progress.recentActive = true;
  if (m.reject) {
    // Fast back-off (Raft §5.3): the follower's hint names the largest index ≤ the probe whose
    // term is ≤ the probe's; looking that term up in our own log skips a whole term at once.
    let nextProbe = m.rejectHint;
    if (m.logTerm > 0) nextProbe = r.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
    if (progress.maybeDecrTo(m.index, nextProbe)) {
      if (progress.state === ProgressState.Replicate) progress.becomeProbe();
      maybeSendAppend(r, m.from, true);
    }
    return;
  }
  const wasPaused = progress.isPaused();
  // A probe that finds the follower already holding everything the leader knows it holds (an
  // empty probe at `match`) moves nothing, but proves the log matches there: replicate from now.
  const probeMatched = progress.state === ProgressState.Probe && m.index === progress.match;
  if (!progress.maybeUpdate(m.index) && !probeMatched) return;
  switch (progress.state) {
    case ProgressState.Probe:
      progress.becomeReplicate();
      break;
    case ProgressState.Snapshot:
      if (progress.match + 1 >= r.log.firstIndex()) {
        progress.becomeProbe();
        progress.becomeReplicate();
      }
      break;
    case ProgressState.Replicate:
      progress.inflights.freeLE(m.index);
      break;
  }
  if (maybeCommit(r)) afterCommit(r);
  else if (wasPaused) maybeSendAppend(r, m.from, true);
  while (maybeSendAppend(r, m.from, false));
  if (m.from === r.leadTransferee && progress.match === r.log.lastIndex()) {
    r.logger.info('raft: transferee caught up, sending MsgTimeoutNow', { id: r.id, transferee: m.from });
    sendTimeoutNow(r, m.from);
  }
}

function handleHeartbeatResponse(r: Raft, m: Message, progress: Progress): void {
  progress.recentActive = true;
  progress.msgAppFlowPaused = false;
  if (progress.state === ProgressState.Replicate && progress.inflights.full()) progress.inflights.freeFirstOne();
  if (progress.match < r.log.lastIndex() || progress.state === ProgressState.Probe) maybeSendAppend(r, m.from, true);
  const round = decodeRound(m.context);
  if (round === undefined || round <= progress.ackedRound || round > r.readOnly.lastSentRound) return;
  progress.ackedRound = round;
  const sentAt = r.readOnly.sendTickOf(round);
  if (sentAt > progress.ackedSendTick) progress.ackedSendTick = sentAt;
  const confirmed = r.tracker.quorumAckedRound(r.id, r.readOnly.lastSentRound);
  for (const request of r.readOnly.confirm(confirmed)) answerRead(r, request.from, request.index, request.context);
  if (r.readOnly.needsRound()) broadcastHeartbeat(r);
}

/** Starts a heartbeat round (read-only.ts) and sends it to every peer; commit is capped at each peer's match. */
export function broadcastHeartbeat(r: Raft): void {
  const round = r.readOnly.startRound(r.tickCount);
  const context = encodeRound(round);
  for (const [id, progress] of r.tracker.progress) {
    if (id === r.id) continue;
    r.send(makeMessage(MessageType.MsgHeartbeat, id, { commit: Math.min(progress.match, r.log.committed), context }));
  }
  // A single-voter leader confirms its own rounds at once.
  const confirmed = r.tracker.quorumAckedRound(r.id, round);
  for (const request of r.readOnly.confirm(confirmed)) answerRead(r, request.from, request.index, request.context);
}

/** Leader transfer (thesis §3.10), step 1: remember the transferee, catch it up, then MsgTimeoutNow. */
function handleTransferLeader(r: Raft, m: Message): void {
  const transferee = m.from;
  const progress = r.tracker.progress.get(transferee);
  if (transferee === r.id || progress === undefined || progress.isLearner || !r.tracker.isVoter(transferee)) {
    r.logger.debug('raft: ignored leader transfer to a non-voter or to self', { id: r.id, transferee });
    return;
  }
  if (r.leadTransferee !== NONE) {
    if (r.leadTransferee === transferee) return;
    r.abortLeaderTransfer('superseded');
  }
  r.leadTransferee = transferee;
  // The transfer must complete within one election timeout (the check in Raft.tickHeartbeat).
  r.electionElapsed = 0;
  r.logger.info('raft: starting leader transfer', { id: r.id, transferee, match: progress.match });
  if (progress.match === r.log.lastIndex()) sendTimeoutNow(r, transferee);
  else maybeSendAppend(r, transferee, true);
}

/** Tells `to` to campaign at once; from now on this leader's lease is not trusted. */
export function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.transferAttempted = true;
  r.send(makeMessage(MessageType.MsgTimeoutNow, to));
}

function committedEntryInCurrentTerm(r: Raft): boolean {
  return r.log.termOrZero(r.log.committed) === r.term;
}

/**
 * Read-only query (thesis §6.4). A leader that has not yet committed an entry of its term queues
 * it (step 1: it may not know the latest commit index yet). Otherwise the read index is the current
 * commit index, answered: at once in a single-voter cluster; at once while the lease holds
 * (lease-based mode); else once a heartbeat round sent after this request is acknowledged by a
 * quorum (steps 2-3), sharing the round with every request that arrived meanwhile.
 */
function handleReadIndex(r: Raft, m: Message): StepResult {
  if (!committedEntryInCurrentTerm(r)) {
    r.pendingReadIndexMessages.push(m);
    return OK;
  }
  const context = m.entries[0]?.data ?? EMPTY_BYTES;
  const index = r.log.committed;
  if (r.tracker.confState.voters.length === 1 && r.tracker.isVoter(r.id)) {
    answerRead(r, m.from, index, context);
    return OK;
  }
  if (leaseValid(r)) {
    answerRead(r, m.from, index, context);
    return OK;
  }
  if (r.readOnly.add(index, m.from, context)) broadcastHeartbeat(r);
  return OK;
}

function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0 || !committedEntryInCurrentTerm(r)) return;
  const waiting = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of waiting) handleReadIndex(r, m);
}

function answerRead(r: Raft, from: NodeId, index: LogIndex, context: Uint8Array): void {
  if (from === NONE || from === r.id) {
    r.readStates.push({ index, context });
  } else {
    r.send(
      makeMessage(MessageType.MsgReadIndexResp, from, {
        index,
        entries: [{ term: 0, index: 0, type: EntryType.Normal, data: context }],
      }),
    );
  }
}

/**
 * Lease-based reads (thesis §6.4.1). The lease starts at the latest tick T such that a quorum of
 * voters (the leader counting as "now") acknowledged a heartbeat round the leader SENT at tick T
 * or later. Each of those voters received it no earlier than T and, with checkQuorum, refuses
 * votes for electionTicks of its own ticks after receiving it, so no other leader can be elected
 * before T + electionTicks on their clocks. The leader trusts the lease while
 * `tickCount - T < electionTicks - leaseDriftMarginTicks`, which is safe as long as tick rates
 * drift by less than the margin allows (config.ts DEFAULT_LEASE_DRIFT_MARGIN_TICKS). Also
 * required: an entry of this term is committed, and no leader transfer was attempted in this term
 * (a transfer campaign bypasses the followers' lease check).
 */
export function leaseValid(r: Raft): boolean {
  if (!r.config.checkQuorum || r.config.readOnlyOption !== ReadOnlyOption.LeaseBased) return false;
  if (r.leadTransferee !== NONE || r.transferAttempted) return false;
  if (!committedEntryInCurrentTerm(r)) return false;
  const start = r.tracker.quorumAckedSendTick(r.id, r.tickCount);
  if (start < 0) return false;
  return r.tickCount - start < r.leaseTicks;
}

/**
 * Leader: stamps `entries` with this term and consecutive indexes and appends them, unless the
 * uncommitted-bytes cap refuses them (empty payloads are free; a cap is never enforced against an
 * empty uncommitted tail, so one oversized entry can still pass). The leader's own match index does
 * NOT move here; it moves when the runtime acknowledges persistence (Raft.onAdvance).
 */
export function appendLeaderEntries(r: Raft, entries: readonly { type: EntryType; data: Uint8Array }[]): boolean {
  let size = 0;
  for (let i = 0; i < entries.length; i++) size += entries[i]!.data.length;
  const cap = r.config.maxUncommittedEntriesBytes;
  if (cap > 0 && size > 0 && r.uncommittedSize > 0 && r.uncommittedSize + size > cap) return false;
  const lastIndex = r.log.lastIndex();
  const stamped = new Array<{ term: Term; index: number; type: EntryType; data: Uint8Array }>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    stamped[i] = { term: r.term, index: lastIndex + 1 + i, type: entry.type, data: entry.data };
  }
  r.log.append(stamped);
  r.uncommittedSize += size;
  return true;
}

