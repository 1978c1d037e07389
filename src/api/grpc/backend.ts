/**
 * The port between the etcd v3 gRPC API (src/api/grpc) and the node runtime (src/node).
 *
 * The gRPC layer decodes and validates requests, calls these methods, and encodes the outcome
 * with etcd's exact codes and messages. The node runtime implements them on top of Raft and the
 * MVCC store: writes are proposed through the log and answered with the result computed when the
 * entry was applied; linearizable reads wait for a ReadIndex barrier first.
 *
 * Error contract: MVCC outcomes ({ ok: false, error }) are etcd errors the client must see
 * (mvcc/errors.ts has their gRPC codes and messages); a rejected promise carries a RaftkvError
 * (src/errors.ts) for cluster-level failures — 'no-leader', 'timeout-maybe-applied',
 * 'read-timeout', 'not-applied', 'stopped', 'removed' — which the gRPC layer maps to etcd's
 * Unavailable / DeadlineExceeded messages ("etcdserver: no leader", "etcdserver: request timed
 * out", ...).
 */
import type { MvccOutcome } from '../../mvcc/errors';
import type { LeaseGrantResponse, LeaseId, LeaseRevokeResponse, RangeRequest, RangeResponse, MvccWriteRequest, MvccWriteResponse, Revision } from '../../mvcc/types';
import type { WatchHub } from '../../mvcc/watch-hub';

/** What every ResponseHeader carries (etcd v3rpc/header.go). */
export interface HeaderFields {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
  /** The store's current revision at the time the header is made. */
  readonly revision: Revision;
}

/** What the etcd KV and Watch services need from the node. */
export interface EtcdBackend {
  /** Fields for a ResponseHeader, read now. */
  header(): HeaderFields;
  /** True when this node knows a leader (for `hasleader` metadata). */
  hasLeader(): boolean;
  /**
   * Serves a Range. Linearizable unless `request.serializable`: then it first waits for a
   * ReadIndex barrier (so it sees every write acknowledged before the call).
   */
  range(request: RangeRequest & { readonly serializable?: boolean }): Promise<MvccOutcome<RangeResponse>>;
  /**
   * Proposes a write (Put, DeleteRange, Txn with writes, Compact) through Raft and resolves with
   * the outcome computed when it was APPLIED on this node. A Txn whose branches turn out to be
   * read-only still goes through the log (simple and correct).
   */
  write(request: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>>;
  /** The watch hub of this node's MVCC store (watches are served locally, on any member). */
  watchHub(): WatchHub;
  /** `--max-request-bytes` (default 1.5 MiB). */
  readonly maxRequestBytes: number;
  /** `--max-txn-ops` (default 128). */
  readonly maxTxnOperations: number;
}

/** LeaseTimeToLive's answer for a lease that exists. */
export interface LeaseTimeToLive {
  /** Remaining seconds (truncated, as etcd does). */
  readonly remainingSeconds: number;
  readonly grantedTtlSeconds: number;
  /** The attached keys, when asked for; else empty. */
  readonly keys: readonly Buffer[];
}

/**
 * What the etcd Lease service needs from the node (etcd v3.4.23 etcdserver/v3_server.go Lease*).
 * Same error contract as {@link EtcdBackend}: MVCC outcomes for etcd errors, rejected
 * RaftkvErrors for cluster-level failures.
 */
export interface LeaseBackend {
  header(): HeaderFields;
  hasLeader(): boolean;
  /**
   * Grants a lease through Raft. `id` 0 = let the server choose. Errors: 'lease-ttl-too-large',
   * 'lease-exists'. The TTL is raised to the minimum TTL.
   */
  leaseGrant(ttlSeconds: number, id: LeaseId): Promise<MvccOutcome<LeaseGrantResponse>>;
  /** Revokes a lease (and deletes its keys in one revision) through Raft. Error: 'lease-not-found'. */
  leaseRevoke(id: LeaseId): Promise<MvccOutcome<LeaseRevokeResponse>>;
  /**
   * Renews a lease on the leader (forwarded there from a follower); resolves with the GRANTED TTL,
   * or 0 when the lease is unknown or expired. Not a Raft entry.
   */
  leaseRenew(id: LeaseId): Promise<number>;
  /** Remaining and granted TTL as the leader sees them (and keys if asked); undefined if unknown. */
  leaseTimeToLive(id: LeaseId, withKeys: boolean): Promise<LeaseTimeToLive | undefined>;
  /** The IDs of every granted lease. */
  leaseLeases(): Promise<LeaseId[]>;
}
