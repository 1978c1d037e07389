/**
 * The Raft core's vocabulary: the values that cross its boundary.
 *
 * Everything here is plain data. The core (raft.ts, raw-node.ts) consumes and produces these
 * values and nothing else; the node runtime (src/node) persists them (src/wal, src/snap) and
 * ships them between processes (src/transport). Names follow the Raft paper and etcd-io/raft so
 * a reader who knows either feels at home.
 *
 * Numbers:
 * - `Term` and `LogIndex` are JavaScript numbers. They only ever grow by one at a time, so 2^53
 *   is out of reach for any real cluster.
 * - `NodeId` is a `bigint`, because etcd member IDs are random 64-bit values. `0n` means "none"
 *   (no leader, no vote), exactly as in etcd.
 */

/** A Raft term (Raft §5.1). Monotonic per node; persisted in HardState. */
export type Term = number;
/** A position in the replicated log, starting at 1. Index 0 is the empty log's sentinel. */
export type LogIndex = number;
/** A member's ID. 64-bit; `NONE` (0n) means no node. */
export type NodeId = bigint;

/** "No node": no leader known, no vote cast. */
export const NONE: NodeId = 0n;

/** What an entry carries. Only the core interprets `ConfChange` entries. */
export enum EntryType {
  /** Opaque application data (may be empty: a new leader's no-op). */
  Normal = 0,
  /** `data` is an encoded {@link ConfChange} (see conf-change.ts `encodeConfChange`). */
  ConfChange = 1,
}

/** One log entry. Immutable once created; the core shares entry objects freely. */
export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/**
 * The state every node MUST persist before it sends any message that depends on it
 * (Raft §5.1 Figure 2 "Persistent state on all servers", plus the commit index, which etcd
 * also persists so a restart need not re-learn it).
 */
export interface HardState {
  readonly term: Term;
  /** The candidate voted for in `term`, or NONE. */
  readonly vote: NodeId;
  /** Highest index known to be committed. Never persisted ahead of the persisted log. */
  readonly commit: LogIndex;
}

/**
 * The cluster configuration as of some log index.
 *
 * Invariant: `voters` and `learners` are disjoint; `removed` is disjoint from both and only
 * grows. A removed ID can never become a member again (Raft core issue: "a removed ID can never
 * rejoin"), so the set is carried in snapshots with the rest of the configuration.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly removed: readonly NodeId[];
}

/** Kinds of single-server membership change (thesis §4.1 / §4.2.1). */
export enum ConfChangeType {
  /** Add a voter, or promote an existing learner to voter. */
  AddNode = 0,
  /** Remove a voter or learner. Removing the leader itself is allowed. */
  RemoveNode = 1,
  /** Add a non-voting learner (thesis §4.2.1 "catching up new servers"). */
  AddLearnerNode = 2,
}

/** A single-server configuration change, proposed through the log. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to the core; the runtime puts the member's peer URL (and name) here. */
  readonly context: Uint8Array;
}

/** Metadata of a snapshot: the last index and term it covers and the configuration at it. */
export interface SnapshotMetadata {
  readonly index: LogIndex;
  readonly term: Term;
  readonly confState: ConfState;
}

/**
 * A point-in-time image of the state machine. `data` is opaque to the core; the runtime may put a
 * small descriptor there (for example a file name and checksum) and stream the real image itself.
 */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/** The snapshot of an empty, never-compacted log. */
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: Object.freeze({ voters: [], learners: [], removed: [] }) }),
  data: new Uint8Array(0),
});

/**
 * Message kinds. "Local" kinds are only ever stepped into the node by its own runtime and are
 * never sent over the wire.
 */
export enum MessageType {
  /** Local: start an election (campaign). */
  MsgHup = 0,
  /** Local: leader should broadcast a heartbeat. */
  MsgBeat = 1,
  /** A proposal: `entries` to append. Forwarded from followers to the leader. */
  MsgProp = 2,
  /** AppendEntries (Raft §5.3): `index`/`logTerm` identify the preceding entry. */
  MsgApp = 3,
  /** AppendEntries response; on reject `rejectHint`/`logTerm` carry the fast back-off hint. */
  MsgAppResp = 4,
  /** RequestVote (Raft §5.2): `index`/`logTerm` describe the candidate's last entry. */
  MsgVote = 5,
  MsgVoteResp = 6,
  /** InstallSnapshot (Raft §7). */
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  /** Local: the runtime could not deliver to `from`. */
  MsgUnreachable = 10,
  /** Local: the runtime reports the outcome of sending a snapshot to `from` (`reject` = failed). */
  MsgSnapStatus = 11,
  /** Local: leader checks it still hears from a quorum (check-quorum). */
  MsgCheckQuorum = 12,
  /** Ask the leader to hand leadership to `from` (thesis §3.10). */
  MsgTransferLeader = 13,
  /** Leader tells the transferee to campaign at once, bypassing timeouts and leases. */
  MsgTimeoutNow = 14,
  /** ReadIndex request (thesis §6.4); `entries[0].data` carries the request context. */
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  /** Pre-vote (thesis §9.6): like MsgVote but does not bump anyone's term. */
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
  /**
   * The leader refused proposals forwarded to it (`entries` are the refused entries, `reason`
   * why), so the forwarding follower can tell its callers instead of letting them time out.
   */
  MsgPropReject = 19,
}

/** Why the core refused a proposal, read-index request or transfer. Stable strings. */
export type RejectReason =
  | 'no-leader'
  | 'proposal-forwarding-disabled'
  | 'uncommitted-size-exceeded'
  | 'leader-transfer-in-progress'
  | 'conf-change-pending'
  | 'conf-change-invalid'
  | 'removed-node'
  | 'not-a-member'
  | 'not-leader';

/**
 * A Raft message. One flat shape for every kind (as etcd's raftpb.Message) so the transport can
 * encode it with one protobuf message; fields a kind does not use keep their zero values.
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: Term;
  /** MsgApp: term of the entry at `index`. Votes: term of the candidate's last entry. Rejected MsgAppResp: term of the follower's entry at `rejectHint` (fast back-off). */
  logTerm: Term;
  /** MsgApp: index preceding `entries`. Votes: candidate's last index. MsgAppResp: last matched index. */
  index: LogIndex;
  entries: Entry[];
  /** Sender's commit index (MsgApp, MsgHeartbeat: capped at what the receiver is known to hold). */
  commit: LogIndex;
  snapshot?: Snapshot;
  reject: boolean;
  /** Rejected MsgAppResp: the follower's hint for where to resume (fast back-off). */
  rejectHint: LogIndex;
  /** Heartbeats: ReadIndex round context. MsgHup/MsgVote from leader transfer: 'transfer'. */
  context: Uint8Array;
  /** MsgPropReject: why the proposals were refused. */
  reason?: RejectReason;
  /**
   * MsgApp of the commit broadcast: no entries, only the commit index, to a replicating follower
   * that was sent every entry up to `index` in MsgApps it answers. A follower whose log matches
   * at `index` takes the commit index and does not answer (the answer would tell the leader
   * nothing new, and costs it a wake-up per follower and commit); a mismatch is answered.
   */
  commitOnly?: boolean;
}

/** A node's role. Pre-candidate is the pre-vote phase (thesis §9.6). */
export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** Volatile state that the runtime may want to observe; never persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

/**
 * A completed read-index request: reads started before `readIndex(context)` was called are
 * linearizable once the state machine has applied at least `index`.
 */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: Uint8Array;
}

/** Proposals (from this node or forwarded to it) that the leader refused, with the reason. */
export interface RejectedProposal {
  readonly entries: readonly Entry[];
  readonly reason: RejectReason;
}

/**
 * Everything the caller must act on, produced by `RawNode.ready()`.
 *
 * THE CALLER MUST, IN THIS ORDER:
 * 1. If `snapshot` is set, persist it (before anything else in this Ready).
 * 2. Persist `entries` (appended after any snapshot; an entry at an index already in storage
 *    REPLACES that entry and every entry after it) and `hardState` if set. If `mustSync`,
 *    make all of that durable (fsync) BEFORE step 3.
 * 3. Send `messages`. (Exception, thesis §10.2.1: while this node is leader and `hardState`
 *    changes no term or vote, the caller MAY send messages before or while persisting; the core
 *    counts the leader's own entries toward commitment only after `advance()`.)
 * 4. Apply `snapshot` (if set) and then `committedEntries` to the state machine, in order. For a
 *    ConfChange entry, call `applyConfChange` with the decoded change.
 * 5. Call `advance()`.
 * Only then call `ready()` again. `readStates` and `rejectedProposals` are informational and may
 * be handled at any point.
 */
export interface Ready {
  /** Set when leader or role changed since the last Ready. */
  readonly softState?: SoftState;
  /** Set when term, vote or commit changed since the last Ready. */
  readonly hardState?: HardState;
  readonly readStates: readonly ReadState[];
  /** Entries to persist (not yet durable). */
  readonly entries: readonly Entry[];
  /** A snapshot to persist and apply (received from the leader). */
  readonly snapshot?: Snapshot;
  /** Committed entries to apply, all of them already durable on this node. */
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly rejectedProposals: readonly RejectedProposal[];
  /** True when term, vote or entries changed: persistence must be fsynced before sending. */
  readonly mustSync: boolean;
}

/** Errors a Storage reports as values. */
export type StorageError =
  /** The requested index is at or below the first index (it was compacted away). */
  | 'compacted'
  /** The requested index is beyond the last index. */
  | 'unavailable';

/** The initial state a node reads at start-up. */
export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/**
 * The storage port: the core's read-only view of durable state (etcd `storage.go`).
 *
 * The core never writes through it; the runtime writes (appending entries, saving the hard state,
 * applying snapshots, compacting) according to each Ready. Every method is synchronous: an
 * implementation keeps what the core may ask for in memory (as etcd's MemoryStorage does) or
 * answers 'unavailable' / 'snapshot-temporarily-unavailable'.
 *
 * Invariant: entries in [firstIndex(), lastIndex()] are all available; term(firstIndex() - 1) is
 * the term of the last compacted entry (or snapshot) and is always answerable.
 */
export interface Storage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at least one if any exist, then up to `maxBytes` in total. */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] | StorageError;
  /** Term of entry `index`; index firstIndex()-1 answers the snapshot's term. */
  term(index: LogIndex): Term | StorageError;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): LogIndex;
  lastIndex(): LogIndex;
  /** The latest snapshot; 'snapshot-temporarily-unavailable' if one is being produced. */
  snapshot(): Snapshot | 'snapshot-temporarily-unavailable';
}

/** Log output, injected. The core logs sparingly (elections, role changes, conf changes). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** How read-index requests are answered. */
export enum ReadOnlyOption {
  /** ReadIndex (thesis §6.4): one heartbeat round confirms leadership. Always safe. */
  Safe = 'safe',
  /**
   * Lease reads (thesis §6.4.1): answered at once while the leader's lease holds, which assumes
   * clocks (tick rates) on different nodes drift by less than `leaseDriftMarginTicks` per
   * election timeout. Requires checkQuorum. Falls back to Safe when the lease has lapsed.
   */
  LeaseBased = 'lease-based',
}

/** Configuration of one node's core. All durations are in ticks. */
export interface Config {
  /** This node's ID; never NONE. */
  id: NodeId;
  /** Followers start an election after a random timeout in [electionTicks, 2*electionTicks). */
  electionTicks: number;
  /** The leader sends heartbeats every `heartbeatTicks`; must be < electionTicks. */
  heartbeatTicks: number;
  storage: Storage;
  /** The last applied index at start-up (the state machine's durable applied index). */
  applied?: LogIndex;
  /** Byte limit for the entries of one MsgApp (at least one entry is always sent). */
  maxSizePerMsgBytes: number;
  /** Pipelining window per follower: MsgApps in flight. */
  maxInflightMessages: number;
  /** Pipelining window per follower: bytes of entries in flight (0 = no byte limit). */
  maxInflightBytes: number;
  /** Cap on bytes of proposed-but-uncommitted entries on the leader (0 = no cap). */
  maxUncommittedEntriesBytes: number;
  /** Byte limit of `committedEntries` per Ready (at least one entry is always returned). */
  maxCommittedSizePerReadyBytes: number;
  checkQuorum: boolean;
  preVote: boolean;
  readOnlyOption: ReadOnlyOption;
  /** Lease reads: how many ticks short of electionTicks the lease ends (clock-drift margin). */
  leaseDriftMarginTicks?: number;
  /** If true, followers refuse proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Injected randomness: returns an integer in [0, n). The core has no random source of its own. */
  random: (n: number) => number;
  logger?: Logger;
  /**
   * Deliberate bugs, for showing that the simulator's checkers catch them. NEVER set in
   * production.
   */
  testingKnobs?: {
    /** Commit entries of earlier terms by counting replicas (violates Raft §5.4.2). */
    unsafeSkipCommitTermCheck?: boolean;
  };
}

/** The outcome of a proposal, read-index request or transfer: accepted, or refused with a reason. */
export type StepResult = { readonly ok: true } | { readonly ok: false; readonly reason: RejectReason };

/** Per-follower replication state (etcd `tracker.StateType`). */
export enum ProgressState {
  Probe = 'probe',
  Replicate = 'replicate',
  Snapshot = 'snapshot',
}

/** A read-only view of one peer's progress, as the leader sees it. */
export interface ProgressStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  readonly inflightMessages: number;
  readonly pendingSnapshot: LogIndex;
}

/** A snapshot of the node's state for status pages and tests. */
export interface Status {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: LogIndex;
  readonly lastIndex: LogIndex;
  readonly confState: ConfState;
  /** Only on the leader. */
  readonly progress?: ReadonlyMap<NodeId, ProgressStatus>;
  readonly leadTransferee: NodeId;
}

/**
 * The public face of the core (implemented by `RawNode` in raw-node.ts). Everything is
 * synchronous; nothing here reads a clock, starts a timer or does I/O.
 */
export interface RaftNode {
  /** Advance logical time by one tick (election and heartbeat timeouts are counted in ticks). */
  tick(): void;
  /** Start an election now (subject to pre-vote). */
  campaign(): void;
  /** Propose application data. Refused with a reason when it cannot be accepted. */
  propose(data: Uint8Array): StepResult;
  /** Propose a membership change; one may be pending at a time. */
  proposeConfChange(change: ConfChange): StepResult;
  /** Feed a message received from a peer (or a local kind from the runtime). */
  step(message: Message): StepResult;
  /** Request a read index; the answer comes as a ReadState with the same context. */
  readIndex(context: Uint8Array): StepResult;
  /** Ask the leader to transfer leadership to `transferee`. */
  transferLeader(transferee: NodeId): void;
  /** Apply a committed ConfChange entry; returns the new configuration. */
  applyConfChange(change: ConfChange): ConfState;
  /** The runtime could not reach `id`. */
  reportUnreachable(id: NodeId): void;
  /** The runtime finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, outcome: 'finish' | 'failure'): void;
  hasReady(): boolean;
  ready(): Ready;
  /** Acknowledge the last Ready: everything in it was persisted, sent and applied. */
  advance(): void;
  status(): Status;
}
