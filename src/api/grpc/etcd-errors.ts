/**
 * The ONE mapping table of the etcd gRPC API: every error that leaves src/api/grpc becomes a gRPC
 * status with etcd v3.4.23's exact code and message (etcdserver/api/v3rpc/rpctypes/error.go;
 * ETCD_WIRE_NOTES.md §3.6). Clients match on the message string, so the messages are interface
 * facts and must not be reworded.
 *
 * Three sources feed the table:
 * - MVCC outcomes ({ ok: false, error }): their code and message come from src/mvcc/errors.ts
 *   (`MVCC_ERRORS`), which is reused here, not duplicated;
 * - RaftkvErrors (src/errors.ts) rejected by the node runtime: mapped by {@link RAFTKV_TO_ETCD};
 * - anything else is a bug or an unexpected failure: `Unknown` with the error's message, as
 *   etcd's `togRPCError` does for errors outside its map.
 *
 * etcd sends ErrTimeout ("etcdserver: request timed out") with code Unavailable (rpctypes maps
 * ErrGRPCTimeout to codes.Unavailable), not DeadlineExceeded; so does this table.
 */
import * as grpc from '@grpc/grpc-js';
import { isRaftkvError, type ErrorCode } from '../../errors';
import { MVCC_ERRORS, type MvccErrorCode } from '../../mvcc/errors';

/** What a failed call sends: a gRPC status code and the etcd message (`grpc-message`). */
export interface EtcdStatus {
  readonly code: grpc.status;
  readonly details: string;
}

/** etcd's messages that are not MVCC outcomes. */
export const ETCD_MESSAGES = Object.freeze({
  noLeader: 'etcdserver: no leader',
  requestTimedOut: 'etcdserver: request timed out',
  serverStopped: 'etcdserver: server stopped',
  requestTooLarge: 'etcdserver: request is too large',
  watcherDuplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
  watcherRangeEmpty: 'mvcc: watcher range is empty',
});

/** Gateway failures detected in src/api/grpc itself (not by the store or the node). */
export type GatewayErrorCode = 'request-too-large' | 'hasleader-no-leader';

/**
 * RaftkvError codes → etcd status. A code missing here (a member-management code reaching the KV
 * API) is a bug and answers `Unknown`.
 */
export const RAFTKV_TO_ETCD: Readonly<Partial<Record<ErrorCode, EtcdStatus>>> = Object.freeze({
  'no-leader': { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.noLeader },
  'timeout-maybe-applied': { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.requestTimedOut },
  'read-timeout': { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.requestTimedOut },
  // etcd has no direct equivalent ("definitely not applied"); the message says it, and retrying is safe.
  'not-applied': { code: grpc.status.UNAVAILABLE, details: 'etcdserver: request was not applied; it is safe to retry' },
  stopped: { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.serverStopped },
  // A removed member stops its server: etcd answers its clients "server stopped".
  removed: { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.serverStopped },
  'request-too-large': { code: grpc.status.INVALID_ARGUMENT, details: ETCD_MESSAGES.requestTooLarge },
  // Cluster and Maintenance (etcd rpctypes/error.go; ETCD_WIRE_NOTES.md §3.6).
  'member-not-found': { code: grpc.status.NOT_FOUND, details: 'etcdserver: member not found' },
  'member-exists': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: member ID already exist' },
  'peer-url-exists': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: Peer URLs already exists' },
  // etcd answers a removed ID with membership.ErrIDRemoved, which has no gRPC mapping (Unknown).
  'member-id-removed': { code: grpc.status.FAILED_PRECONDITION, details: 'membership: ID removed' },
  'member-not-learner': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: can only promote a learner member' },
  'learner-not-ready': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: can only promote a learner member which is in sync with leader' },
  'last-voter': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: re-configuration failed due to not enough started members' },
  // etcd has no "another conf change is pending" error (it serialises them); transient, so Unavailable.
  'conf-change-pending': { code: grpc.status.UNAVAILABLE, details: 'etcdserver: another membership change is pending; retry' },
  'invalid-peer-url': { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: given member URLs are invalid' },
  'invalid-request': { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: invalid request' },
  'not-leader': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: not leader' },
  'bad-leader-transferee': { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: bad leader transferee' },
});

/** Gateway failures → etcd status. */
export const GATEWAY_TO_ETCD: Readonly<Record<GatewayErrorCode, EtcdStatus>> = Object.freeze({
  'request-too-large': { code: grpc.status.INVALID_ARGUMENT, details: ETCD_MESSAGES.requestTooLarge },
  'hasleader-no-leader': { code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.noLeader },
});

/** The status of an MVCC outcome error (the codes of mvcc/errors.ts are grpc's numbers). */
export function mvccErrorStatus(error: MvccErrorCode): EtcdStatus {
  const wire = MVCC_ERRORS[error];
  return { code: wire.grpcStatusCode as number as grpc.status, details: wire.message };
}

/** The status of a gateway failure. */
export function gatewayErrorStatus(error: GatewayErrorCode): EtcdStatus {
  return GATEWAY_TO_ETCD[error];
}

/** The status of a thrown or rejected error (RaftkvError or anything unexpected). */
export function thrownErrorStatus(error: unknown): EtcdStatus {
  if (isRaftkvError(error)) {
    const mapped = RAFTKV_TO_ETCD[error.code];
    if (mapped !== undefined) return mapped;
    return { code: grpc.status.UNKNOWN, details: error.message };
  }
  return { code: grpc.status.UNKNOWN, details: error instanceof Error ? error.message : String(error) };
}

/** The error object grpc-js sends as this status (for unary callbacks and `call.emit('error', ...)`). */
export function toServiceError(status: EtcdStatus): grpc.ServerErrorResponse {
  return Object.assign(new Error(status.details), { code: status.code, details: status.details });
}
