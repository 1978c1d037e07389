/**
 * The port between raftexample's HTTP API (http-api.ts) and the node runtime (src/node).
 *
 * The HTTP layer validates input, calls one of these methods and maps the outcome to HTTP; the
 * node runtime implements them on top of the Raft Ready loop. Nothing here knows about express.
 *
 * Error contract: every method that returns a promise REJECTS ONLY WITH a `RaftkvError`
 * (src/errors.ts). Anything else reaching the HTTP layer is treated as a bug and answered with
 * 500 'internal'. In particular a write that was proposed but whose outcome is unknown MUST
 * reject with 'timeout-maybe-applied', never with 'not-applied'.
 */
import type { LogIndex, NodeId, Role, Term } from '../../raft/types';

/** How a read is served. */
export type ReadConsistency =
  /** Linearizable (the default): sees every write acknowledged before the read started. */
  | 'linearizable'
  /** Served from this node's state machine as it is; may be stale. Never waits for Raft. */
  | 'serializable';

/**
 * How this node serves linearizable reads: ReadIndex (thesis §6.4), or leader leases
 * (thesis §6.4.1, relies on bounded clock drift). Mirrors the CLI's `--read-mode`.
 */
export type ReadMode = 'readindex' | 'lease';

/** One member of the cluster configuration as this node has applied it. */
export interface MemberStatus {
  readonly id: NodeId;
  readonly peerUrl: string;
  readonly isLearner: boolean;
}

/**
 * A point-in-time view of the node, for `GET /-/status`. All indexes are this node's own view.
 * Invariant: `appliedIndex <= commitIndex`.
 */
export interface NodeStatus {
  /** This node's member ID. */
  readonly id: NodeId;
  readonly role: Role;
  /** The leader this node knows of; NONE (0n) if none. */
  readonly leader: NodeId;
  readonly term: Term;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  /** The cluster configuration applied on this node (voters and learners). */
  readonly members: readonly MemberStatus[];
  readonly readMode: ReadMode;
  /** The cluster ID, once known. */
  readonly clusterId?: bigint;
  /** Index of the last entry in this node's log. */
  readonly lastIndex?: LogIndex;
  /** Index of the newest snapshot on disk. */
  readonly snapshotIndex?: LogIndex;
}

/** The result of `HttpBackend.health()`. `reason` explains an unhealthy node in one line. */
export interface HealthStatus {
  readonly ok: boolean;
  readonly reason?: string;
}

/**
 * What the HTTP API needs from the node runtime. Keys and values are opaque: the HTTP layer has
 * already chosen the key (see http-api.ts) and checked the body size.
 */
export interface HttpBackend {
  /**
   * Stores `value` under `key`. Resolves only once the entry is COMMITTED AND APPLIED on this
   * node, with the index at which it was applied.
   * Rejects with a RaftkvError: 'no-leader', 'not-applied', 'timeout-maybe-applied', 'stopped',
   * 'removed', 'request-too-large'.
   */
  put(key: string, value: Uint8Array): Promise<{ appliedIndex: LogIndex }>;

  /**
   * Reads `key`. 'linearizable' resolves once this node has applied at least the read index
   * confirmed by the leader; 'serializable' answers from the local state machine at once.
   * `value` is undefined when the key does not exist; `appliedIndex` is the index the answer
   * reflects. Rejects with a RaftkvError: 'no-leader', 'read-timeout', 'stopped', 'removed'.
   */
  get(key: string, consistency: ReadConsistency): Promise<{ value: Uint8Array | undefined; appliedIndex: LogIndex }>;

  /**
   * Adds voter `id` reachable at `peerUrl` (already validated and normalised by parsePeerUrl).
   * Resolves once the configuration change is APPLIED on this node.
   * Rejects with a RaftkvError: 'member-exists', 'member-id-removed', 'conf-change-pending',
   * 'no-leader', 'not-applied', 'timeout-maybe-applied', 'stopped', 'removed'.
   */
  addMember(id: NodeId, peerUrl: string): Promise<{ appliedIndex: LogIndex }>;

  /**
   * Removes member `id`. Resolves once the configuration change is APPLIED on this node.
   * Rejects with a RaftkvError: 'member-not-found', 'last-voter', 'conf-change-pending',
   * 'no-leader', 'not-applied', 'timeout-maybe-applied', 'stopped', 'removed'.
   */
  removeMember(id: NodeId): Promise<{ appliedIndex: LogIndex }>;

  /** The node's current status. Synchronous and cheap; called for every response header. */
  status(): NodeStatus;

  /** Whether this node can serve requests now (for `GET /-/health`). */
  health(): HealthStatus;
}
