/**
 * The node runtime: the one place where the pure Raft core meets the world.
 *
 * `RaftServer` owns a RawNode and drives it:
 * - a clock calls `tick()` every tick interval;
 * - the transport delivers peer messages to `step()`;
 * - callers propose writes, membership changes and read-index requests;
 * - the Ready loop persists, sends, applies and advances, strictly in the order the core's
 *   contract demands (src/raft/types.ts `Ready`):
 *     1. a received snapshot: its file is already durable (the transport's sink verified and saved
 *        it); write its WAL marker;
 *     2. WAL append of hard state + entries, ONE fsync for the whole Ready (group commit);
 *     3. send messages — a leader whose term and vote did not change sends BEFORE its own fsync
 *        (thesis §10.2.1); the core counts the leader's own entries only after `advance()`;
 *     4. restore the state machine from the snapshot, apply committed entries in one batch;
 *     5. `advance()`.
 * Any WAL failure is fatal: the process crashes and recovers from disk, never continuing past a
 * failed fsync.
 *
 * Snapshots of the state machine are cut in the background every `snapshotCount` applied entries
 * (the level iterator pins a consistent view at the applied index), saved BEFORE their WAL marker
 * (etcd-io/etcd#12691), after which the in-memory log is compacted and old WAL segments and
 * snapshot files are released.
 */
import { EventEmitter } from 'node:events';
import { RawNode } from '../raft/raw-node';
import { makeMessage } from '../raft/message';
import { MemoryStorage } from '../raft/storage';
import { decodeConfChange } from '../raft/conf-change';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  ReadOnlyOption,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type NodeId,
  type Ready,
  type RejectReason,
  type Snapshot,
  type StepResult,
} from '../raft/types';
import {
  RaftkvError,
  lastVoterError,
  memberExistsError,
  memberIdRemovedError,
  memberNotFoundError,
  notAppliedError,
  readTimeoutError,
  timeoutMaybeAppliedError,
} from '../errors';
import type { MemberChange } from '../kv/kv-store';
import { decodeMvccWrite, encodeMvccWrite } from '../mvcc/write-codec';
import { decodeSnapshotDescriptor, hasImage, STREAMED_SNAPSHOT_DATA } from './snapshots';
import type { MvccOutcome } from '../mvcc/errors';
import type { MvccWriteRequest, MvccWriteResponse } from '../mvcc/types';
import type { ApplyResult } from '../mvcc/mvcc-store';
import type { StateMachineEntry } from './state-machine';
import { AppliedWaiters, ReadBatcher } from './read-batcher';
import { RequestIdGenerator } from './request-id';
import { Waiters } from './waiters';
import { decodeMemberContext, encodeMemberContext } from './member-context';
import { decodeClusterOperation, encodeClusterOperation, isClusterEntry, type ClusterOperation } from './cluster-entry';
import type { NodeStatus } from '../api/http/backend';
import type { Metrics } from '../observability/metrics';

/** The WAL as the runtime uses it (src/wal `Wal`). */
export interface WalPort {
  /** Bytes appended since the WAL was opened (for metrics). */
  readonly writtenBytes?: number;
  save(hardState: HardState | undefined, entries: readonly Entry[], sync: boolean): Promise<void>;
  saveSnapshotMarker(marker: { index: LogIndex; term: number }): Promise<void>;
  releaseTo(index: LogIndex): Promise<void>;
  close(): Promise<void>;
}

/** The state machine as the runtime uses it (state-machine.ts `NodeStateMachine`). */
export interface StateMachinePort {
  appliedIndex(): LogIndex;
  get(key: string): Promise<Uint8Array | undefined>;
  applyEntries(entries: readonly StateMachineEntry[]): Promise<Map<LogIndex, ApplyResult>>;
  /** Makes every apply so far durable in the state machine's own storage (before a snapshot). */
  flush(): Promise<void>;
  members(): Map<NodeId, { peerUrl: string; isLearner: boolean }>;
  removedIds(): Set<NodeId>;
}

/** What a proposer learns once its entry is applied. */
export interface WriteResult {
  readonly appliedIndex: LogIndex;
  /** The MVCC outcome (for MVCC writes; undefined for membership changes). */
  readonly outcome?: MvccOutcome<MvccWriteResponse>;
}

/** Snapshot files and state machine images as the runtime uses them (src/node/snapshots.ts). */
export interface SnapshotPort {
  /**
   * Cuts a snapshot at `index` and saves it durably; returns Snapshot.data. With `withImage` it
   * holds an image of the state machine (pinned at the call); without, the state machine's stores
   * are made durable instead (src/node/snapshots.ts).
   */
  create(index: LogIndex, term: number, confState: ConfState, withImage: boolean): Promise<Uint8Array>;
  /** Replaces the state machine with the (already durable, verified) snapshot `snapshot`. */
  restore(snapshot: Snapshot): Promise<void>;
  /** Deletes snapshot files older than the one at `keepIndex`. */
  release(keepIndex: LogIndex): Promise<void>;
}

/** The transport as the runtime uses it (src/transport `Transport`). */
export interface TransportPort {
  send(messages: readonly Message[]): void;
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
}

/** Options of one running node. */
export interface RaftServerOptions {
  readonly id: NodeId;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotCount: number;
  /** Entries kept in memory behind a snapshot so slightly lagging followers avoid a snapshot. */
  readonly snapshotCatchUpEntries: number;
  readonly requestTimeoutMs: number;
  readonly readMode: 'readindex' | 'lease';
  /** URLs from `--cluster` (position k = node k+1); they win over URLs learned from the log. */
  readonly flagPeerUrls: ReadonlyMap<NodeId, string>;
}

/** Everything a RaftServer is built from; see run-node.ts for the real wiring. */
export interface RaftServerDeps {
  readonly options: RaftServerOptions;
  readonly storage: MemoryStorage;
  /** The HardState already durable in the WAL at start-up. */
  readonly persistedHardState: HardState;
  /** The snapshot index the storage starts from (the core's `applied` at start-up). */
  readonly snapshotIndex: LogIndex;
  readonly wal: WalPort;
  readonly stateMachine: StateMachinePort;
  readonly snapshots: SnapshotPort;
  readonly transport: TransportPort;
  readonly logger: RuntimeLogger;
  readonly metrics?: Metrics;
  /** Randomness for the core's election timeouts. */
  readonly random?: (n: number) => number;
}

/** The structured logger the runtime writes to (pino-compatible). */
export interface RuntimeLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  fatal(fields: object, message: string): void;
}

/**
 * How many --snapshot-count intervals a snapshot with an image, cut for a follower, is kept from
 * being replaced by one without before a MsgSnap has carried it (see RaftServer.send).
 */
const IMAGE_SNAPSHOT_KEPT_CUTS = 4;

/** Committed batches the apply queue may hold before the Ready loop waits for it. */
const APPLY_BATCHES_IN_FLIGHT_MAX = 4;

/** Refusal reasons that mean "no leader right now" (worth waiting for one). */
const WAIT_FOR_LEADER_REASONS: ReadonlySet<RejectReason> = new Set<RejectReason>(['no-leader', 'leader-transfer-in-progress']);

/**
 * A running Raft member: Ready loop, proposals, linearizable reads and membership.
 * Emits 'removed' once this node applied its own removal, and 'fatal' (with the error) when the
 * WAL fails — the owner MUST then exit the process.
 */
export class RaftServer extends EventEmitter {
  readonly id: NodeId;
  private readonly options: RaftServerOptions;
  private readonly raft: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: WalPort;
  private readonly stateMachine: StateMachinePort;
  private readonly snapshots: SnapshotPort;
  private readonly transport: TransportPort;
  private readonly logger: RuntimeLogger;
  private readonly metrics: Metrics | undefined;

  private readonly requestIds: RequestIdGenerator;
  private readonly writes = new Waiters<WriteResult>();
  private readonly reads: ReadBatcher;
  private readonly applied = new AppliedWaiters();
  private readonly leaderWaiters = new Set<() => void>();

  private ticker: NodeJS.Timeout | undefined;
  /** Called after every timer tick (see {@link onTick}). */
  private readonly tickListeners = new Set<() => void>();
  /** Monotonic time (ms) up to which ticks have been delivered to the core. */
  private tickedUntilMs = 0;
  private readyScheduled = false;
  private processing = false;
  private stopped = false;
  private removed = false;

  private persistedHardState: HardState;
  /** A commit-only HardState not yet written: it goes out with the next WAL save. */
  private unsavedCommitState: HardState | undefined;
  private appliedIndex: LogIndex;
  private snapshotIndex: LogIndex;
  private snapshotInFlight: Promise<void> | undefined;
  /**
   * Followers sent a snapshot since the last compaction, and that snapshot's index. The next
   * compaction keeps the entries after it: the follower needs them once it has installed the
   * snapshot, which takes a while with a large state machine (with a million keys, compacting them
   * meanwhile forced a second, newer snapshot on a joining member: 200 MB, then 300 MB). Cleared at
   * each compaction, so a follower that never catches up holds the log back by one cycle at most.
   */
  private readonly snapshotsSentSince = new Map<NodeId, LogIndex>();
  /**
   * Followers that need a snapshot while the newest one has no state machine image (see
   * {@link send}): the next cut carries one, and once it is in the log storage they are reported
   * as failed snapshots, so the core sends them the new one at once. Until then the core holds
   * them in its snapshot state and sends them nothing.
   */
  private readonly followersAwaitingImage = new Set<NodeId>();
  /**
   * The image being cut while followers receive it (see {@link sendImageWhileCut}), and who was
   * sent it: a follower that needs an image meanwhile joins that transfer (the transport reads
   * the snapshot file from its first byte) instead of waiting for a cut of its own. Cleared once
   * the image is in the log storage.
   */
  private imageInFlight: { readonly index: LogIndex; readonly term: number; readonly confState: ConfState; readonly recipients: Set<NodeId> } | undefined;
  /**
   * A snapshot with an image was cut for a follower and no MsgSnap has carried it yet: cuts
   * without an image wait (up to {@link IMAGE_SNAPSHOT_KEPT_CUTS} snapshot counts), so they do not
   * replace it before the core sends it.
   */
  private snapshotImageUnsent = false;
  /** The tail of the apply queue (see enqueueApply) and how many batches it holds. */
  private applyChain: Promise<void> = Promise.resolve();
  private appliesInFlight = 0;
  private confState: ConfState;
  private leader: NodeId = NONE;
  private role: Role = Role.Follower;
  private term = 0;
  private commitIndex = 0;

  constructor(deps: RaftServerDeps) {
    super();
    this.options = deps.options;
    this.id = deps.options.id;
    this.storage = deps.storage;
    this.wal = deps.wal;
    this.stateMachine = deps.stateMachine;
    this.snapshots = deps.snapshots;
    this.transport = deps.transport;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.persistedHardState = deps.persistedHardState;
    this.appliedIndex = deps.snapshotIndex;
    this.snapshotIndex = deps.snapshotIndex;
    this.confState = this.storage.initialState().confState;
    this.term = deps.persistedHardState.term;
    this.commitIndex = deps.persistedHardState.commit;
    this.requestIds = new RequestIdGenerator(this.id);
    const random = deps.random ?? ((n: number) => Math.floor(Math.random() * n));
    const coreLogger = {
      debug: (message: string, fields?: Record<string, unknown>) => this.logger.debug(fields ?? {}, message),
      info: (message: string, fields?: Record<string, unknown>) => this.logger.info(fields ?? {}, message),
      warn: (message: string, fields?: Record<string, unknown>) => this.logger.warn(fields ?? {}, message),
    };
    this.raft = new RawNode({
      id: this.id,
      electionTicks: this.options.electionTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      storage: this.storage,
      applied: deps.snapshotIndex,
      maxSizePerMsgBytes: 1024 * 1024,
      maxInflightMessages: 256,
      maxInflightBytes: 64 * 1024 * 1024,
      maxUncommittedEntriesBytes: 64 * 1024 * 1024,
      maxCommittedSizePerReadyBytes: 16 * 1024 * 1024,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: this.options.readMode === 'lease' ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe,
      random,
      logger: coreLogger,
    });
    this.reads = new ReadBatcher(
      {
        issueReadIndex: (context) => {
          this.catchUpTicks();
          const result = this.raft.readIndex(context);
          this.scheduleReady();
          return result.ok ? undefined : refusalError(result.reason);
        },
      },
      Math.max(this.options.tickMs * this.options.electionTicks, 50),
      `r${this.id}`,
    );
  }

  /** Starts the clock and processes whatever the restarted core has ready. */
  start(): void {
    this.tickedUntilMs = performance.now();
    this.ticker = setInterval(() => this.tick(), this.options.tickMs);
    this.ticker.unref?.();
    this.scheduleReady();
  }

  /** Stops ticking and fails every pending caller. Does not close the WAL (the owner does). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    const stoppedError = () => new RaftkvError('stopped');
    this.writes.rejectAll(stoppedError);
    this.reads.failAll(stoppedError());
    for (const wake of this.leaderWaiters) wake();
    // Let an in-progress Ready finish its I/O so the WAL is not closed under it.
    const deadline = Date.now() + 5000;
    while ((this.processing || this.appliesInFlight > 0 || this.snapshotInFlight !== undefined) && Date.now() < deadline) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.snapshotInFlight !== undefined) await this.snapshotInFlight.catch(() => undefined);
    }
    // The commit index no save carried yet (see saveCommitStateIfIdle), so a clean restart knows it.
    const hardState = this.unsavedCommitState;
    if (hardState !== undefined && !this.processing) {
      this.unsavedCommitState = undefined;
      await this.wal.save(hardState, [], false).catch(() => undefined);
    }
  }

  /** Feeds a message from a peer. */
  step(message: Message): void {
    if (this.stopped) return;
    this.raft.step(message);
    this.scheduleReady();
  }

  /** The transport could not reach `id`. */
  reportUnreachable(id: NodeId): void {
    if (this.stopped) return;
    this.raft.reportUnreachable(id);
    this.metrics?.peerSendFailures.inc({ peer: id.toString() });
  }

  /**
   * Peer `id` refused this node's stream because it applied this node's removal (committed): stop
   * as if this node had applied it (see TransportHandler.reportRemoved).
   */
  reportRemovedByPeer(id: NodeId): void {
    if (this.stopped || this.removed) return;
    this.logger.warn({ peer: id.toString() }, 'a peer reports that this node was removed from the cluster');
    this.onRemoved();
  }

  /** The transport finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, outcome: 'finish' | 'failure'): void {
    if (this.stopped) return;
    this.raft.reportSnapshot(id, outcome);
    this.scheduleReady();
  }

  // ---------------------------------------------------------------------------------------------
  // The backend of the HTTP API (and later the etcd API)

  /** Writes `key` = `value`; resolves once the write is committed AND applied on this node. */
  async put(key: string, value: Uint8Array): Promise<{ appliedIndex: LogIndex }> {
    const result = await this.proposeWrite({ kind: 'put', request: { key: Buffer.from(key, 'utf8'), value } });
    if (result.outcome !== undefined && !result.outcome.ok) throw notAppliedError(result.outcome.error);
    return { appliedIndex: result.appliedIndex };
  }

  /**
   * Proposes an MVCC write through the log; resolves once it is committed AND applied on this
   * node, with the outcome computed at apply time.
   */
  async proposeWrite(write: MvccWriteRequest): Promise<WriteResult> {
    const requestId = this.requestIds.next();
    const data = encodeMvccWrite(requestId, write);
    return this.proposeUntilAccepted(requestId, () => this.raft.propose(data), 'write');
  }

  /** Reads `key`: linearizable (ReadIndex or lease, then wait for apply) or serializable (local). */
  async get(key: string, consistency: 'linearizable' | 'serializable'): Promise<{ value: Uint8Array | undefined; appliedIndex: LogIndex }> {
    if (consistency === 'linearizable') await this.linearizableBarrier();
    const appliedIndex = this.appliedIndex;
    const value = await this.stateMachine.get(key);
    return { value, appliedIndex };
  }

  /**
   * Waits until this node's state machine reflects every write that completed before the call
   * (ReadIndex, thesis §6.4). Rejects with 'no-leader' or 'read-timeout'.
   */
  async linearizableBarrier(): Promise<void> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    for (;;) {
      this.assertRunning();
      try {
        const index = await withDeadline(this.reads.readIndex(deadline), deadline, () => readTimeoutError(this.options.requestTimeoutMs));
        const started = Date.now();
        await withDeadline(this.applied.waitFor(index, this.appliedIndex), deadline, () => readTimeoutError(this.options.requestTimeoutMs));
        this.metrics?.readIndexSeconds.observe((Date.now() - started) / 1000);
        return;
      } catch (error) {
        if (error instanceof RaftkvError && error.code === 'no-leader' && Date.now() < deadline) {
          await this.waitForLeader(deadline);
          continue;
        }
        throw error;
      }
    }
  }

  /** Adds member `id` reachable at `peerUrl` (a voter, or a learner). Resolves once applied. */
  async addMember(id: NodeId, peerUrl: string, options: { learner?: boolean } = {}): Promise<{ appliedIndex: LogIndex }> {
    if (this.stateMachine.removedIds().has(id)) throw memberIdRemovedError(id);
    const existing = this.stateMachine.members().get(id);
    if (existing !== undefined && !(existing.isLearner && options.learner !== true)) {
      throw memberExistsError(id);
    }
    if (existing === undefined && [...this.stateMachine.members().values()].some((member) => member.peerUrl === peerUrl)) {
      throw new RaftkvError('peer-url-exists', { details: { peerUrl } });
    }
    const type = options.learner === true ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode;
    return this.proposeMembership({ type, nodeId: id, context: new Uint8Array(0) }, peerUrl);
  }

  /** Removes member `id`. Resolves once applied (on the removed node itself it then shuts down). */
  async removeMember(id: NodeId): Promise<{ appliedIndex: LogIndex }> {
    if (this.stateMachine.removedIds().has(id)) throw memberNotFoundError(id);
    const member = this.stateMachine.members().get(id);
    if (member === undefined) throw memberNotFoundError(id);
    const voters = [...this.stateMachine.members().values()].filter((m) => !m.isLearner).length;
    if (!member.isLearner && voters <= 1) throw lastVoterError(id);
    return this.proposeMembership({ type: ConfChangeType.RemoveNode, nodeId: id, context: new Uint8Array(0) }, member.peerUrl);
  }

  /** Hands leadership to `transferee` (thesis §3.10). Resolves once it leads or the deadline passes. */
  async transferLeadership(transferee: NodeId): Promise<void> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    this.raft.transferLeader(transferee);
    this.scheduleReady();
    while (this.leader !== transferee) {
      if (Date.now() >= deadline) throw timeoutMaybeAppliedError(this.options.requestTimeoutMs);
      await this.waitForLeaderChange(deadline);
    }
  }

  /** A point-in-time view for /-/status and metrics. */
  status(): NodeStatus {
    const members = [...this.stateMachine.members()].map(([id, member]) => ({
      id,
      peerUrl: member.peerUrl,
      isLearner: member.isLearner,
    }));
    return {
      id: this.id,
      role: this.role,
      leader: this.leader,
      lastIndex: this.storage.lastIndex(),
      term: this.term,
      commitIndex: this.commitIndex,
      appliedIndex: this.appliedIndex,
      snapshotIndex: this.snapshotIndex,
      members,
      readMode: this.options.readMode,
    };
  }

  /** Healthy when a leader is known and this node has not been removed or stopped. */
  health(): { ok: boolean; reason?: string } {
    if (this.removed) return { ok: false, reason: 'this node was removed from the cluster' };
    if (this.stopped) return { ok: false, reason: 'stopped' };
    if (this.leader === NONE) return { ok: false, reason: 'no leader' };
    return { ok: true };
  }

  /** The current term as this node knows it. */
  currentTerm(): number {
    return this.term;
  }

  /** True while this node is the leader (as far as it knows). */
  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  /**
   * Resolves once a leader is known (at once if one is) — or, with `mustChange`, once the leader
   * changes — or when `deadline` (ms since the epoch) passes. Never rejects.
   */
  awaitLeader(deadline: number, mustChange = false): Promise<void> {
    return this.waitForLeader(deadline, mustChange);
  }

  /** The leader this node knows of, or NONE. */
  leaderId(): NodeId {
    return this.leader;
  }

  /** The index of the last entry applied to the state machine. */
  getAppliedIndex(): LogIndex {
    return this.appliedIndex;
  }

  /** The member IDs of the current configuration (voters and learners). */
  currentConfState(): ConfState {
    return this.confState;
  }

  // ---------------------------------------------------------------------------------------------
  // Cluster and Maintenance support (etcd v3 API, part 2; see src/node/cluster-backend.ts)

  /**
   * Proposes a cluster metadata operation (cluster-entry.ts) through the log; resolves once it
   * is applied on this node.
   */
  async proposeClusterOperation(operation: ClusterOperation): Promise<{ appliedIndex: LogIndex }> {
    const requestId = this.requestIds.next();
    const data = encodeClusterOperation(requestId, operation);
    const result = await this.proposeUntilAccepted(requestId, () => this.raft.propose(data), 'write');
    return { appliedIndex: result.appliedIndex };
  }

  /** The leader's view of every member's replication progress; undefined unless this node leads. */
  leaderProgress(): ReadonlyMap<NodeId, { readonly match: LogIndex; readonly isLearner: boolean }> | undefined {
    return this.raft.status().progress;
  }

  /**
   * Runs `pin` between two Readies (no apply in progress), so it may pin a point-in-time image of
   * the state machine (NodeStateMachine.writeSnapshot); resolves with its result and the applied
   * index the image reflects.
   */
  betweenApplies<T>(pin: () => T): Promise<{ value: T; appliedIndex: LogIndex; term: number }> {
    return this.onApplyQueue(async () => {
      await this.stateMachine.flush();
      return { value: pin(), appliedIndex: this.appliedIndex, term: this.term };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals

  private async proposeMembership(change: ConfChange, peerUrl: string): Promise<{ appliedIndex: LogIndex }> {
    const requestId = this.requestIds.next();
    const withContext: ConfChange = { ...change, context: encodeMemberContext({ peerUrl, requestId }) };
    const result = await this.proposeUntilAccepted(requestId, () => this.raft.proposeConfChange(withContext), 'membership');
    return { appliedIndex: result.appliedIndex };
  }

  /**
   * Proposes through `propose`, waiting for a leader when there is none (until the request
   * deadline), then waits for the entry to be applied. A refusal is 'not-applied' (the write
   * will never happen); a deadline passed after the proposal was accepted is
   * 'timeout-maybe-applied' (it may still happen).
   */
  private async proposeUntilAccepted(requestId: bigint, propose: () => StepResult, kind: 'write' | 'membership'): Promise<WriteResult> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    for (;;) {
      this.assertRunning();
      const result = propose();
      if (result.ok) break;
      if (WAIT_FOR_LEADER_REASONS.has(result.reason) && Date.now() < deadline) {
        await this.waitForLeader(deadline, result.reason === 'leader-transfer-in-progress');
        continue;
      }
      if (result.reason === 'conf-change-pending' && kind === 'membership' && Date.now() < deadline) {
        await this.waitForApply(deadline);
        continue;
      }
      this.metrics?.proposals.inc({ outcome: 'not-applied' });
      throw refusalError(result.reason);
    }
    this.scheduleReady();
    const remainingMs = Math.max(1, deadline - Date.now());
    const result = await this.writes.wait(requestId, remainingMs, () => {
      this.metrics?.proposals.inc({ outcome: 'timeout' });
      return timeoutMaybeAppliedError(this.options.requestTimeoutMs);
    });
    this.metrics?.proposals.inc({ outcome: 'applied' });
    return result;
  }

  /** Waits until a leader is known (or changes, if `mustChange`), or the deadline passes. */
  private waitForLeader(deadline: number, mustChange = false): Promise<void> {
    if (!mustChange && this.leader !== NONE) return Promise.resolve();
    return this.waitForLeaderChange(deadline);
  }

  private waitForLeaderChange(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.leaderWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(1, deadline - Date.now()));
      this.leaderWaiters.add(wake);
    });
  }

  private waitForApply(deadline: number): Promise<void> {
    return withDeadline(this.applied.waitFor(this.appliedIndex + 1, this.appliedIndex), deadline, () => new RaftkvError('conf-change-pending')).catch(() => undefined);
  }

  private assertRunning(): void {
    if (this.removed) throw new RaftkvError('removed');
    if (this.stopped) throw new RaftkvError('stopped');
  }

  // ---------------------------------------------------------------------------------------------
  // The Ready loop

  private tick(): void {
    if (this.stopped) return;
    this.saveCommitStateIfIdle();
    this.catchUpTicks();
    this.scheduleReady();
    for (const listener of this.tickListeners) listener();
  }

  /**
   * Calls `listener` after every tick of the clock (every `tickMs` while running), so periodic
   * work shares the tick's wake-up instead of waking the process with a timer of its own.
   * Returns the function that removes it.
   */
  onTick(listener: () => void): () => void {
    this.tickListeners.add(listener);
    return () => this.tickListeners.delete(listener);
  }

  /**
   * Delivers to the core one tick per `tickMs` of monotonic time elapsed since the last delivered
   * tick. Timers do not fire while the process is paused (SIGSTOP, a long GC, a VM freeze), and
   * after such a pause an incoming read may run before the timer does; catching up here — on
   * every timer AND before every linearizable read — means a leader's lease (counted in ticks)
   * is bounded by real elapsed time, so a leader that slept through its lease cannot serve a
   * lease read from it (thesis §6.4.1). Capped so a very long pause costs a bounded burst.
   */
  private catchUpTicks(): void {
    const now = performance.now();
    const due = Math.floor((now - this.tickedUntilMs) / this.options.tickMs);
    if (due <= 0) return;
    const ticks = Math.min(due, 4 * this.options.electionTicks);
    for (let i = 0; i < ticks; i++) this.raft.tick();
    this.tickedUntilMs += due * this.options.tickMs;
  }

  private scheduleReady(): void {
    if (this.readyScheduled || this.processing || this.stopped) return;
    this.readyScheduled = true;
    setImmediate(() => {
      this.readyScheduled = false;
      void this.processReadies();
    });
  }

  private async processReadies(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (!this.stopped && this.raft.hasReady()) {
        const ready = this.raft.ready();
        await this.handleReady(ready);
        this.raft.advance();
      }
    } catch (error) {
      this.processing = false;
      this.fail(error);
      return;
    }
    this.processing = false;
    if (!this.stopped && this.raft.hasReady()) this.scheduleReady();
  }

  /**
   * On a tick with the Ready loop idle: writes the commit index that rode along with no save, so
   * a restart after a crash knows it without asking the leader (queued, not awaited; the WAL
   * keeps call order). Written when the loop went idle instead, it cost a thread-pool write
   * after nearly every burst of commits; a tick bounds how far the durable commit index lags.
   */
  private saveCommitStateIfIdle(): void {
    if (this.stopped || this.processing || this.readyScheduled || this.unsavedCommitState === undefined) return;
    const hardState = this.unsavedCommitState;
    this.unsavedCommitState = undefined;
    this.wal.save(hardState, [], false).catch((error: unknown) => this.fail(error));
  }

  private onPeerUrlsUpdated(id: NodeId): void {
    const member = this.stateMachine.members().get(id);
    if (member === undefined || id === this.id) return;
    this.transport.addPeer(id, this.options.flagPeerUrls.get(id) ?? member.peerUrl);
  }

  private async handleReady(ready: Ready): Promise<void> {
    if (ready.softState !== undefined) this.onSoftState(ready.softState.lead, ready.softState.role);
    if (ready.hardState !== undefined) {
      if (ready.hardState.term !== this.term) this.metrics?.term.set(ready.hardState.term);
      this.term = ready.hardState.term;
      this.commitIndex = ready.hardState.commit;
    }

    // A leader whose term and vote are already durable may send before its own fsync.
    const sendEarly =
      this.role === Role.Leader &&
      (ready.hardState === undefined ||
        (ready.hardState.term === this.persistedHardState.term && ready.hardState.vote === this.persistedHardState.vote));
    if (sendEarly) this.send(ready.messages);

    // Committed entries that are already in the durable log go to the apply queue before this
    // Ready's save, as etcd hands them to its apply loop before its WAL save: under load nearly
    // every Ready carries new entries and commits older ones, and those commits (and the clients
    // waiting on them) would otherwise wait a whole fsync for entries they do not need. Only the
    // entries below this Ready's first new one qualify: everything before it was saved by an
    // earlier Ready (the loop saves one Ready at a time) and committed entries are never
    // replaced, so the applied index stays within the durable log. A Ready with a snapshot
    // keeps the order below (the snapshot is installed first).
    let committedEntries = ready.committedEntries;
    if (ready.snapshot === undefined && committedEntries.length > 0) {
      const durable = durablePrefixLength(committedEntries, ready.entries);
      if (durable > 0) {
        await this.applyCommitted(durable === committedEntries.length ? committedEntries : committedEntries.slice(0, durable));
        committedEntries = committedEntries.slice(durable);
      }
    }

    if (ready.snapshot !== undefined) {
      // The snapshot file was saved and verified on receipt; its marker follows it (etcd#12691).
      await this.wal.saveSnapshotMarker({ index: ready.snapshot.metadata.index, term: ready.snapshot.metadata.term });
    }
    if (ready.entries.length === 0 && ready.snapshot === undefined && !ready.mustSync) {
      // Only the commit index changed. It needs no fsync, and a persisted commit that lags is
      // safe (the leader re-sends it; the core raises a stale one to the snapshot index), so it
      // is not written on its own: it rides along with the next save, or is written on a tick
      // that finds the Ready loop idle (saveCommitStateIfIdle). Writing it at once cost a WAL
      // write per commit that the next Ready's entries then queued behind.
      if (ready.hardState !== undefined) this.unsavedCommitState = ready.hardState;
    } else if (ready.hardState !== undefined || ready.entries.length > 0) {
      const started = process.hrtime.bigint();
      const writtenBefore = this.wal.writtenBytes ?? 0;
      await this.wal.save(ready.hardState ?? this.unsavedCommitState, ready.entries, ready.mustSync);
      this.unsavedCommitState = undefined;
      if (this.metrics !== undefined) {
        this.metrics.walWrittenBytes.inc((this.wal.writtenBytes ?? 0) - writtenBefore);
        if (ready.mustSync) {
          this.metrics.fsyncSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
          this.metrics.walSaveEntries.observe(ready.entries.length);
        }
      }
    }
    if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
    if (ready.hardState !== undefined) {
      this.storage.setHardState(ready.hardState);
      this.persistedHardState = ready.hardState;
    }
    if (ready.entries.length > 0) this.storage.append(ready.entries);

    if (!sendEarly) this.send(ready.messages);

    if (ready.snapshot !== undefined) {
      const snapshot = ready.snapshot;
      await this.onApplyQueue(() => this.installSnapshot(snapshot));
    }
    for (const readState of ready.readStates) this.reads.onReadState(readState);
    for (const rejected of ready.rejectedProposals) this.onRejectedProposals(rejected.entries, rejected.reason);
    if (committedEntries.length > 0) await this.applyCommitted(committedEntries);
  }

  private async applyCommitted(entries: readonly Entry[]): Promise<void> {
    this.metrics?.committedEntries.inc(entries.length);
    this.metrics?.applyBatchEntries.observe(entries.length);
    await this.enqueueApply(entries);
  }

  /**
   * Hands committed entries to the apply queue and returns WITHOUT waiting for them to be
   * applied (as etcd's server does), so the next Ready's fsync overlaps this apply. Entries are
   * applied strictly in log order, one batch at a time; conf changes reach the core in that
   * order too (RawNode.applyConfChange may be called at any time). Backpressure: when
   * `APPLY_BATCHES_IN_FLIGHT_MAX` batches are queued, the Ready loop waits for the oldest, so a
   * slow state machine cannot make the queue grow without bound.
   */
  private async enqueueApply(entries: readonly Entry[]): Promise<void> {
    if (this.appliesInFlight >= APPLY_BATCHES_IN_FLIGHT_MAX) await this.drainApplies();
    this.appliesInFlight++;
    this.applyChain = this.applyChain
      .then(async () => {
        if (this.stopped) return;
        await this.applyEntries(entries);
        if (this.snapshotDue()) {
          // The image is pinned from the state machine's storage: it must hold every apply.
          await this.stateMachine.flush();
          this.maybeSnapshot();
        }
      })
      .catch((error: unknown) => this.fail(error))
      .finally(() => {
        this.appliesInFlight--;
      });
  }

  /** Resolves once every queued apply has finished. */
  private async drainApplies(): Promise<void> {
    while (this.appliesInFlight > 0) await this.applyChain;
  }

  /**
   * Runs `work` on the apply queue, after every apply queued before it and before any queued
   * after it: the one place where the state machine may be read as of an applied index or
   * replaced (snapshot installation). Its failure is returned to the caller, not fatal here.
   */
  private onApplyQueue<T>(work: () => T | Promise<T>): Promise<T> {
    const result = this.applyChain.then(work);
    this.applyChain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    let outgoing = messages;
    for (const message of messages) {
      if (message.type !== MessageType.MsgSnap || message.snapshot === undefined) continue;
      const descriptor = decodeSnapshotDescriptor(message.snapshot.data);
      if (descriptor !== undefined && !hasImage(descriptor)) {
        // The newest snapshot is one log compaction cut without an image: instead of sending it,
        // cut one with an image (at the applied index); the follower waits for it.
        outgoing = outgoing.filter((other) => other !== message);
        this.requestSnapshotImage(message.to, message.snapshot.metadata.index);
        continue;
      }
      this.snapshotsSentSince.set(message.to, message.snapshot.metadata.index);
      this.snapshotImageUnsent = false;
    }
    if (outgoing.length === 0) return;
    this.metrics?.peerMessagesSent.inc(outgoing.length);
    this.transport.send(outgoing);
  }

  /**
   * Follower `to` needs a snapshot and the newest (at `index`) has no image: it joins the image
   * being cut, if one is being sent, or has the apply queue cut one with an image. The core keeps
   * the follower in its snapshot state (no report yet) until the transfer's outcome, or until
   * {@link releaseFollowersAwaitingImage}.
   */
  private requestSnapshotImage(to: NodeId, index: LogIndex): void {
    if (this.imageInFlight !== undefined && this.role === Role.Leader) {
      this.streamImage(this.imageInFlight, [to], 'joining the snapshot image being cut');
      return;
    }
    if (this.followersAwaitingImage.size === 0) {
      this.logger.info({ to: to.toString(), index, applied: this.appliedIndex }, 'a follower needs a snapshot; cutting one with a state machine image');
    }
    this.followersAwaitingImage.add(to);
    this.snapshotOnApplyQueue();
  }

  /** Has the apply queue cut a snapshot if one is due (after the state machine's flush). */
  private snapshotOnApplyQueue(): void {
    void this.onApplyQueue(async () => {
      if (!this.snapshotDue()) return;
      await this.stateMachine.flush();
      this.maybeSnapshot();
    }).catch((error: unknown) => this.fail(error));
  }

  /**
   * A snapshot with an image is in the log storage: the followers waiting for one are reported as
   * failed snapshots, so the core probes them again and sends them the newest snapshot, this one.
   */
  private releaseFollowersAwaitingImage(waiting: readonly NodeId[]): void {
    for (const id of waiting) {
      this.followersAwaitingImage.delete(id);
      queueMicrotask(() => this.reportSnapshot(id, 'failure'));
    }
  }

  private onSoftState(lead: NodeId, role: Role): void {
    const leaderChanged = lead !== this.leader;
    if (leaderChanged) {
      this.logger.info({ leader: lead.toString(), term: this.term, role }, lead === NONE ? 'lost the leader' : 'leader elected');
      this.metrics?.leaderChanges.inc();
    }
    if (role !== this.role) this.logger.info({ from: this.role, to: role }, 'role changed');
    this.leader = lead;
    this.role = role;
    // Only a leader sends snapshots: a former leader's followers will ask the new one.
    if (role !== Role.Leader) this.followersAwaitingImage.clear();
    this.metrics?.isLeader.set(role === Role.Leader ? 1 : 0);
    if (leaderChanged) {
      for (const wake of [...this.leaderWaiters]) wake();
    }
  }

  private onRejectedProposals(entries: readonly Entry[], reason: RejectReason): void {
    for (const entry of entries) {
      const requestId = this.requestIdOf(entry);
      if (requestId !== undefined) this.writes.reject(requestId, refusalError(reason));
    }
  }

  private requestIdOf(entry: Entry): bigint | undefined {
    if (entry.type === EntryType.ConfChange) {
      return decodeMemberContext(decodeConfChange(entry.data).context)?.requestId;
    }
    if (entry.data.length === 0) return undefined;
    if (isClusterEntry(entry.data)) {
      const cluster = decodeClusterOperation(entry.data);
      return cluster.ok ? cluster.value.requestId : undefined;
    }
    const decoded = decodeMvccWrite(entry.data);
    return decoded.ok ? decoded.value.requestId : undefined;
  }

  private async installSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.snapshotInFlight !== undefined) await this.snapshotInFlight.catch(() => undefined);
    this.logger.info({ index: snapshot.metadata.index, term: snapshot.metadata.term }, 'restoring state machine from snapshot');
    const started = Date.now();
    await this.snapshots.restore(snapshot);
    this.logger.info({ index: snapshot.metadata.index, durationMs: Date.now() - started }, 'state machine restored from snapshot');
    this.confState = snapshot.metadata.confState;
    this.syncPeersWithMembers();
    this.appliedIndex = snapshot.metadata.index;
    this.snapshotIndex = snapshot.metadata.index;
    this.applied.onApplied(this.appliedIndex);
    this.metrics?.snapshots.inc({ event: 'received' });
  }

  /**
   * Applies committed entries: conf changes go to the core at once (in log order), everything
   * goes to the state machine in one batch per store with the new applied index. Entries a store
   * already holds (at or below its durable applied index, replayed after a restart) are skipped
   * by that store, but conf changes still reach the core.
   */
  private async applyEntries(entries: readonly Entry[]): Promise<void> {
    const batch: StateMachineEntry[] = [];
    const writers: Array<[bigint, LogIndex]> = [];
    const resolved: Array<[bigint, LogIndex]> = [];
    const refused: Array<[bigint, LogIndex]> = [];
    const peerChanges: Array<() => void> = [];
    let removedSelf = false;
    // Entries the state machine already holds (replayed from the WAL after a restart) are skipped
    // by it; not decoding their writes saves seconds when a restart replays thousands of them.
    const stateMachineApplied = this.stateMachine.appliedIndex();

    for (const entry of entries) {
      if (entry.type === EntryType.ConfChange) {
        const change = decodeConfChange(entry.data);
        const context = decodeMemberContext(change.context);
        const before = this.confState;
        const after = this.raft.applyConfChange(change);
        this.confState = after;
        const tookEffect = !sameConfState(before, after);
        const memberChange = tookEffect ? this.memberChangeFor(change, context?.peerUrl) : undefined;
        batch.push({ index: entry.index, members: memberChange ? [memberChange] : [] });
        if (memberChange !== undefined) {
          peerChanges.push(() => this.applyPeerChange(memberChange));
          if (memberChange.kind === 'remove' && memberChange.id === this.id) removedSelf = true;
        }
        if (context !== undefined) (tookEffect ? resolved : refused).push([context.requestId, entry.index]);
        this.logger.info({ index: entry.index, change: ConfChangeType[change.type], node: change.nodeId.toString(), tookEffect }, 'membership change applied');
      } else if (entry.data.length === 0 || (entry.index <= stateMachineApplied && !isClusterEntry(entry.data))) {
        batch.push({ index: entry.index });
      } else if (isClusterEntry(entry.data)) {
        // Cluster metadata (member attributes, peer URL update, alarm): cluster-entry.ts.
        const decoded = decodeClusterOperation(entry.data);
        if (!decoded.ok) throw new Error(`assertion failed: undecodable cluster operation at index ${entry.index} (${decoded.reason})`);
        const operation = decoded.value.operation;
        batch.push({ index: entry.index, cluster: operation });
        resolved.push([decoded.value.requestId, entry.index]);
        if (operation.kind === 'update-peer-urls') peerChanges.push(() => this.onPeerUrlsUpdated(operation.memberId));
      } else {
        const decoded = decodeMvccWrite(entry.data);
        if (!decoded.ok) throw new Error(`assertion failed: undecodable write at index ${entry.index} (${decoded.reason})`);
        batch.push({ index: entry.index, write: decoded.value.write });
        writers.push([decoded.value.requestId, entry.index]);
      }
    }

    const results = await this.stateMachine.applyEntries(batch);
    const last = entries[entries.length - 1];
    if (last !== undefined) this.appliedIndex = last.index;
    this.metrics?.appliedIndex.set(this.appliedIndex);
    for (const change of peerChanges) change();
    for (const [requestId, index] of writers) {
      const result = results.get(index);
      const outcome = result !== undefined && !result.skipped ? result.outcome : undefined;
      this.writes.resolve(requestId, outcome === undefined ? { appliedIndex: index } : { appliedIndex: index, outcome });
    }
    for (const [requestId, index] of resolved) this.writes.resolve(requestId, { appliedIndex: index });
    for (const [requestId] of refused) this.writes.reject(requestId, notAppliedError('conf-change-invalid'));
    this.applied.onApplied(this.appliedIndex);
    if (removedSelf) this.onRemoved();
  }

  private memberChangeFor(change: ConfChange, peerUrl: string | undefined): MemberChange {
    const url = this.options.flagPeerUrls.get(change.nodeId) ?? peerUrl ?? this.stateMachine.members().get(change.nodeId)?.peerUrl ?? '';
    switch (change.type) {
      case ConfChangeType.AddNode:
        return this.stateMachine.members().get(change.nodeId)?.isLearner === true
          ? { kind: 'promote', id: change.nodeId, peerUrl: url }
          : { kind: 'add', id: change.nodeId, peerUrl: url };
      case ConfChangeType.AddLearnerNode:
        return { kind: 'add-learner', id: change.nodeId, peerUrl: url };
      case ConfChangeType.RemoveNode:
        return { kind: 'remove', id: change.nodeId };
    }
  }

  private applyPeerChange(change: MemberChange): void {
    if (change.id === this.id) return;
    if (change.kind === 'remove') {
      this.followersAwaitingImage.delete(change.id);
      this.transport.removePeer(change.id);
    } else if (change.peerUrl !== undefined && change.peerUrl !== '') this.transport.addPeer(change.id, change.peerUrl);
  }

  /** Makes the transport know every current member (after a snapshot replaced the membership). */
  syncPeersWithMembers(): void {
    for (const [id, member] of this.stateMachine.members()) {
      if (id === this.id) continue;
      const url = this.options.flagPeerUrls.get(id) ?? member.peerUrl;
      if (url !== '') this.transport.addPeer(id, url);
    }
    for (const id of this.stateMachine.removedIds()) this.transport.removePeer(id);
  }

  private onRemoved(): void {
    if (this.removed) return;
    this.removed = true;
    this.logger.warn({}, 'this node was removed from the cluster; shutting down');
    this.writes.rejectAll(() => new RaftkvError('removed'));
    this.reads.failAll(new RaftkvError('removed'));
    this.emit('removed');
  }

  private snapshotDue(): boolean {
    if (this.snapshotInFlight !== undefined || this.stopped) return false;
    if (this.followersAwaitingImage.size > 0) return true;
    const behind = this.appliedIndex - this.snapshotIndex;
    if (this.snapshotImageUnsent && behind < IMAGE_SNAPSHOT_KEPT_CUTS * this.options.snapshotCount) return false;
    return behind >= this.options.snapshotCount;
  }

  /**
   * Cuts a snapshot at the applied index; call on the apply queue, after the state machine's
   * flush. It carries a state machine image only when a follower asked for one (see send).
   */
  private maybeSnapshot(): void {
    if (!this.snapshotDue()) return;
    const index = this.appliedIndex;
    const term = this.storage.term(index);
    if (typeof term !== 'number') return;
    const confState = this.confState;
    const waiting = [...this.followersAwaitingImage];
    const withImage = waiting.length > 0;
    if (withImage && index === this.snapshotIndex) {
      this.snapshotInFlight = this.replaceWithImage(index, term, confState, waiting);
      return;
    }
    this.snapshotInFlight = (async () => {
      const started = Date.now();
      // With an image, it is pinned at `index` synchronously inside create(), and the followers
      // waiting for it get it while it is cut.
      const creating = this.snapshots.create(index, term, confState, withImage);
      const sent = withImage && this.sendImageWhileCut(index, term, confState, waiting);
      const data = await creating;
      // An image nobody got yet is kept as the newest snapshot for a while (see snapshotDue).
      this.snapshotImageUnsent = withImage && !sent;
      await this.wal.saveSnapshotMarker({ index, term });
      const created = this.storage.createSnapshot(index, confState, data);
      const recipients = this.endImageInFlight();
      // With the image in the log storage, the core sends it to whoever still waits for one (it
      // was not streamed to them) rather than a second cut being made for them.
      const released = withImage ? [...this.followersAwaitingImage] : [];
      if (typeof created === 'string') {
        this.logger.warn({ index, outcome: created }, 'snapshot not installed in the log storage');
        this.releaseFollowersAwaitingImage(released);
        return;
      }
      this.snapshotIndex = index;
      this.releaseFollowersAwaitingImage(released);
      const compactIndex = Math.max(1, Math.min(index - this.options.snapshotCatchUpEntries, ...this.snapshotsSentSince.values()));
      if (this.snapshotsSentSince.size > 0) {
        this.logger.info({ index, compactIndex, sentTo: [...this.snapshotsSentSince.keys()].map(String) }, 'log kept from the snapshot last sent to a follower');
      }
      this.snapshotsSentSince.clear();
      // Followers installing the image sent while it was cut need the entries after it from the
      // next compaction on, as after any snapshot sent (see send).
      for (const id of recipients) this.snapshotsSentSince.set(id, index);
      if (compactIndex > this.storage.firstIndex()) this.storage.compact(compactIndex);
      await this.wal.releaseTo(index);
      await this.snapshots.release(index);
      this.metrics?.snapshots.inc({ event: 'created' });
      this.logger.info({ index, term, withImage, durationMs: Date.now() - started }, 'snapshot saved; log compacted');
    })()
      .catch((error: unknown) => this.fail(error))
      .finally(() => this.snapshotSettled());
  }

  /**
   * Sends the image being cut at `index` to the followers `waiting` for it while it is cut (the
   * transport follows the snapshot file as it is written and sends the body's size and digest
   * after it; the follower checks them before its core sees the MsgSnap), instead of after the
   * cut: the two stages took about the same time, one after the other. The MsgSnap is built here,
   * not by the core, whose newest snapshot is still the one without an image; the core keeps
   * each follower in its snapshot state until the transfer's outcome is reported, and the
   * follower's acknowledgement of `index` moves it on. Followers that need an image before the
   * cut is in the log storage join it ({@link imageInFlight}). Returns whether it was sent (not
   * when this node no longer leads); the caller keeps the log after `index` for every follower
   * it was sent to (snapshotsSentSince) once its own compaction is done.
   */
  private sendImageWhileCut(index: LogIndex, term: number, confState: ConfState, waiting: readonly NodeId[]): boolean {
    if (this.role !== Role.Leader || waiting.length === 0) return false;
    this.imageInFlight = { index, term, confState, recipients: new Set() };
    this.streamImage(this.imageInFlight, waiting, 'sending the snapshot image while it is cut');
    return true;
  }

  /** Sends followers `to` a MsgSnap for `image`, which is being cut (see {@link sendImageWhileCut}). */
  private streamImage(image: NonNullable<RaftServer['imageInFlight']>, to: readonly NodeId[], logMessage: string): void {
    const { index, term, confState } = image;
    const messages = to.map((id) =>
      makeMessage(MessageType.MsgSnap, id, {
        from: this.id,
        term: this.term,
        snapshot: { metadata: { index, term, confState }, data: STREAMED_SNAPSHOT_DATA },
      }),
    );
    for (const id of to) {
      this.followersAwaitingImage.delete(id);
      image.recipients.add(id);
    }
    this.logger.info({ to: to.map(String), index }, logMessage);
    this.metrics?.peerMessagesSent.inc(messages.length);
    this.transport.send(messages);
  }

  /** The image being cut is in the log storage: who was sent it while it was cut. */
  private endImageInFlight(): NodeId[] {
    const recipients = [...(this.imageInFlight?.recipients ?? [])];
    this.imageInFlight = undefined;
    return recipients;
  }

  /**
   * A cut finished: followers that asked for an image during a cut without one (none was being
   * sent for them to join) get the next cut.
   */
  private snapshotSettled(): void {
    this.snapshotInFlight = undefined;
    if (this.followersAwaitingImage.size > 0 && !this.stopped) this.snapshotOnApplyQueue();
  }

  /**
   * The newest snapshot (at `index`, the applied index) has no image and a follower needs one:
   * cuts one at the same index and puts it in that snapshot's place (same file name, same WAL
   * marker, nothing more to compact).
   */
  private replaceWithImage(index: LogIndex, term: number, confState: ConfState, waiting: readonly NodeId[]): Promise<void> {
    return (async () => {
      const started = Date.now();
      const creating = this.snapshots.create(index, term, confState, true);
      const sent = this.sendImageWhileCut(index, term, confState, waiting);
      const data = await creating;
      const current = this.storage.snapshot();
      if (typeof current === 'string' || current.metadata.index !== index) {
        throw new Error(`assertion failed: the snapshot at ${index} to replace is no longer the newest`);
      }
      this.snapshotImageUnsent = !sent;
      this.storage.replaceSnapshotData(data);
      for (const id of this.endImageInFlight()) this.snapshotsSentSince.set(id, index);
      this.releaseFollowersAwaitingImage([...this.followersAwaitingImage]);
      this.metrics?.snapshots.inc({ event: 'created' });
      this.logger.info({ index, term, withImage: true, durationMs: Date.now() - started }, 'snapshot saved in place of the one without an image');
    })()
      .catch((error: unknown) => this.fail(error))
      .finally(() => this.snapshotSettled());
  }

  private fail(error: unknown): void {
    if (this.stopped) return;
    this.logger.fatal({ err: error }, 'fatal error in the Ready loop (WAL, snapshot or apply); the process must restart and recover from disk');
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.emit('fatal', error);
  }
}

function refusalError(reason: RejectReason): RaftkvError {
  switch (reason) {
    case 'no-leader':
    case 'leader-transfer-in-progress':
      return new RaftkvError('no-leader', { details: { reason } });
    case 'conf-change-pending':
      return new RaftkvError('conf-change-pending');
    case 'removed-node':
      return new RaftkvError('member-id-removed');
    default:
      return notAppliedError(reason);
  }
}

function withDeadline<T>(promise: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), Math.max(1, deadline - Date.now()));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function sameConfState(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly NodeId[], y: readonly NodeId[]) => x.length === y.length && x.every((id) => y.includes(id));
  return same(a.voters, b.voters) && same(a.learners, b.learners) && same(a.removed, b.removed);
}

/**
 * How many of a Ready's committed entries (ascending) lie below its first new entry, so were
 * saved by an earlier Ready. All of them when the Ready has no new entries.
 */
export function durablePrefixLength(committed: readonly Entry[], newEntries: readonly Entry[]): number {
  const firstNew = newEntries[0]?.index;
  if (firstNew === undefined) return committed.length;
  let count = 0;
  while (count < committed.length && committed[count]!.index < firstNew) count++;
  return count;
}
