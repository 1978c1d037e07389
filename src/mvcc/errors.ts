/**
 * Every expected failure of the MVCC state machine and of etcd's KV request validation, with the
 * exact message etcd v3.4.23 sends and the gRPC status code it is sent with — ONE table
 * (ETCD_WIRE_NOTES.md §3.6; etcd's rpctypes/error.go). Clients match on the message string, so
 * the messages are interface facts: never reword them.
 *
 * Inside the store these are values ({@link MvccOutcome}); only the gRPC layer turns them into
 * status responses, with {@link MVCC_ERRORS}.
 */

/** gRPC status codes used by the table (the numbers of grpc's `status` enum). */
export enum GrpcStatusCode {
  InvalidArgument = 3,
  NotFound = 5,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  OutOfRange = 11,
}

/** Stable codes of the MVCC layer's expected failures. */
export type MvccErrorCode =
  /** A read or compaction below the compact revision (or history that a compaction removed). */
  | 'compacted'
  /** A read or compaction above the current revision. */
  | 'future-revision'
  /** An empty key in Range, Put, DeleteRange or a Compare. */
  | 'empty-key'
  /** Put with ignore_value/ignore_lease on a missing key; also an empty RequestOp in a txn. */
  | 'key-not-found'
  /** Put with ignore_value and a non-empty value. */
  | 'value-provided'
  /** Put with ignore_lease and a non-zero lease. */
  | 'lease-provided'
  /** A txn branch writes one key twice (put/put or put inside a deleted range). */
  | 'duplicate-key'
  /** A txn with more compares or operations than allowed (etcd --max-txn-ops, 128). */
  | 'too-many-operations'
  /** Put with a lease the lessor does not know; LeaseRevoke of an unknown lease. */
  | 'lease-not-found'
  /** LeaseGrant with a client-chosen ID that is already granted. */
  | 'lease-exists'
  /** LeaseGrant with a TTL above 9,000,000,000 seconds (etcd's MaxLeaseTTL). */
  | 'lease-ttl-too-large'
  /** A write that needs space while the NOSPACE alarm is raised (etcd's capped applier). */
  | 'no-space';

/** The wire form of one error: the exact etcd message and its gRPC status code. */
export interface MvccErrorWire {
  readonly message: string;
  readonly grpcStatusCode: GrpcStatusCode;
}

/** The one mapping table: error code → etcd's message and gRPC status. */
export const MVCC_ERRORS: Readonly<Record<MvccErrorCode, MvccErrorWire>> = Object.freeze({
  compacted: { message: 'etcdserver: mvcc: required revision has been compacted', grpcStatusCode: GrpcStatusCode.OutOfRange },
  'future-revision': { message: 'etcdserver: mvcc: required revision is a future revision', grpcStatusCode: GrpcStatusCode.OutOfRange },
  'empty-key': { message: 'etcdserver: key is not provided', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'key-not-found': { message: 'etcdserver: key not found', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'value-provided': { message: 'etcdserver: value is provided', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'lease-provided': { message: 'etcdserver: lease is provided', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'duplicate-key': { message: 'etcdserver: duplicate key given in txn request', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'too-many-operations': { message: 'etcdserver: too many operations in txn request', grpcStatusCode: GrpcStatusCode.InvalidArgument },
  'lease-not-found': { message: 'etcdserver: requested lease not found', grpcStatusCode: GrpcStatusCode.NotFound },
  'lease-exists': { message: 'etcdserver: lease already exists', grpcStatusCode: GrpcStatusCode.FailedPrecondition },
  'lease-ttl-too-large': { message: 'etcdserver: too large lease TTL', grpcStatusCode: GrpcStatusCode.OutOfRange },
  'no-space': { message: 'etcdserver: mvcc: database space exceeded', grpcStatusCode: GrpcStatusCode.ResourceExhausted },
});

/** An expected outcome: a value, or one of the catalogued errors. */
export type MvccOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: MvccErrorCode };

/** Wraps a value as a successful outcome. */
export function success<T>(value: T): MvccOutcome<T> {
  return { ok: true, value };
}

/** Wraps an error code as a failed outcome. */
export function failure<T>(error: MvccErrorCode): MvccOutcome<T> {
  return { ok: false, error };
}

/** Throws: a broken invariant is a bug and must crash (house style "bugs crash"). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
