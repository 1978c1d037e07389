/**
 * The port between etcd's Cluster and Maintenance services (cluster-service.ts,
 * maintenance-service.ts) and the node runtime (src/node/cluster-backend.ts implements it over
 * Raft; tests use a fake).
 *
 * Error contract: as backend.ts — expected etcd errors are MVCC outcomes (HashKV's 'compacted'
 * / 'future-revision'), and rejected promises carry a RaftkvError ('member-not-found',
 * 'peer-url-exists', 'learner-not-ready', 'not-leader', ...), which etcd-errors.ts maps to
 * etcd's exact codes and messages.
 */
import type { MvccOutcome } from '../../mvcc/errors';
import type { Revision } from '../../mvcc/types';
import type { HeaderFields } from './backend';

/** One member as MemberList shows it (etcdserverpb.Member). */
export interface ClusterMember {
  readonly id: bigint;
  /** Empty until the member has published its attributes ("unstarted" in etcdctl). */
  readonly name: string;
  readonly peerUrls: readonly string[];
  /** As the member advertised them (see run-node: scheme-less by default). */
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

/** Maintenance/Status as this node sees itself. */
export interface MaintenanceStatus {
  readonly version: string;
  readonly dbSizeBytes: number;
  readonly dbSizeInUseBytes: number;
  /** 0n without a leader. */
  readonly leader: bigint;
  readonly raftIndex: number;
  readonly raftTerm: number;
  readonly raftAppliedIndex: number;
  readonly errors: readonly string[];
  readonly isLearner: boolean;
}

/** A consistent point-in-time copy to stream (Maintenance/Snapshot). */
export interface SnapshotStream {
  /** Total bytes of `body`; a multiple of 512 (so that body + 32-byte SHA-256 satisfies etcdctl). */
  readonly sizeBytes: number;
  readonly body: AsyncIterable<Uint8Array>;
  /** Releases what the copy pinned (temporary files); called once the stream ends or fails. */
  release(): Promise<void>;
}

/** One raised alarm (etcdserverpb.AlarmMember); `alarm` uses etcd's AlarmType numbers. */
export interface AlarmEntry {
  readonly memberId: bigint;
  readonly alarm: number;
}

/** What etcd's Cluster and Maintenance services need from the node. */
export interface EtcdClusterBackend {
  /** Fields for a ResponseHeader, read now. */
  header(): HeaderFields;
  /** The current members, ascending by ID. */
  members(): Promise<ClusterMember[]>;
  /** Adds a member with a new random ID; resolves once the change is applied on this node. */
  addMember(peerUrls: readonly string[], isLearner: boolean): Promise<ClusterMember>;
  removeMember(id: bigint): Promise<void>;
  updateMember(id: bigint, peerUrls: readonly string[]): Promise<void>;
  /** Promotes a learner once it is in sync with the leader (forwarded to the leader if needed). */
  promoteMember(id: bigint): Promise<void>;
  status(): Promise<MaintenanceStatus>;
  snapshot(): Promise<SnapshotStream>;
  /** The raised alarms. */
  alarms(): readonly AlarmEntry[];
  /** Raises or clears an alarm through the log; resolves with the alarms affected. */
  changeAlarm(action: 'activate' | 'deactivate', alarm: AlarmEntry): Promise<AlarmEntry[]>;
  /** Hash of the MVCC history up to `revision` (0 = current). */
  hashKv(revision: Revision): Promise<MvccOutcome<{ hash: number; compactRevision: Revision; revision: Revision }>>;
  /** Transfers leadership to `target`; rejects 'not-leader' on a follower. */
  moveLeader(target: bigint): Promise<void>;
  /** Compacts the storage of this member. */
  defragment(): Promise<void>;
}
