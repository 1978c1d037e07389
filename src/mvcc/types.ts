/**
 * The vocabulary of the MVCC state machine: revisions, key-values, events, and the request and
 * response shapes of etcd's KV API (etcdserverpb.RangeRequest, PutRequest, DeleteRangeRequest,
 * TxnRequest, CompactionRequest) in TypeScript form.
 *
 * These mirror proto/etcd/rpc.proto and proto/etcd/kv.proto field for field, camelCased; the gRPC
 * layer converts between the two. Header fields that only the server knows (cluster ID, member ID,
 * Raft term) are not here: responses carry only the store's `revision` for the header.
 *
 * Numbers:
 * - `Revision` is a JavaScript number: it grows by one per write transaction, so 2^53 is out of
 *   reach. Revision 0 means "none" (no revision yet, or "the current one" in a request).
 * - `LeaseId` is a `bigint`: etcd lease IDs are 64-bit and routinely exceed 2^53. `0n` = no lease.
 * - Keys and values are bytes (`Buffer`). Keys are compared as unsigned bytes, as etcd does.
 */

/** A main revision of the store: +1 per write transaction (etcd `revision.main`). */
export type Revision = number;
/** A lease ID (etcd `lease.LeaseID`, int64). `NO_LEASE` (0n) means none. */
export type LeaseId = bigint;
/** "No lease attached". */
export const NO_LEASE: LeaseId = 0n;

/**
 * One version of one key (mvccpb.KeyValue).
 *
 * Invariant for a live key: `createRevision <= modRevision`, `version >= 1`. The `kv` of a DELETE
 * event carries only `key` and `modRevision` (the deletion's revision); its other numbers are 0.
 */
export interface KeyValue {
  readonly key: Buffer;
  readonly createRevision: Revision;
  readonly modRevision: Revision;
  /** 1 at creation, +1 per modification; reset by deletion. */
  readonly version: number;
  readonly value: Buffer;
  readonly lease: LeaseId;
}

/** mvccpb.Event.EventType, with etcd's numbers. */
export enum EventType {
  Put = 0,
  Delete = 1,
}

/** One change of one key (mvccpb.Event). */
export interface MvccEvent {
  readonly type: EventType;
  readonly kv: KeyValue;
  /** The key's value before this change, when it existed (and was not compacted away). */
  readonly prevKv?: KeyValue;
}

/** RangeRequest.SortOrder, with etcd's numbers. */
export enum SortOrder {
  None = 0,
  Ascend = 1,
  Descend = 2,
}

/** RangeRequest.SortTarget, with etcd's numbers. */
export enum SortTarget {
  Key = 0,
  Version = 1,
  Create = 2,
  Mod = 3,
  Value = 4,
}

/**
 * etcdserverpb.RangeRequest (without `serializable`, which only the API layer interprets).
 * `rangeEnd`: absent or empty = the single key `key`; `"\0"` = every key >= `key`; otherwise the
 * half-open range [key, rangeEnd).
 */
export interface RangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  /** 0 or absent = no limit. */
  readonly limit?: number;
  /** <= 0 or absent = the current revision. */
  readonly revision?: Revision;
  readonly sortOrder?: SortOrder;
  readonly sortTarget?: SortTarget;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  /** 0 or absent = no bound; likewise for the other three. */
  readonly minModRevision?: Revision;
  readonly maxModRevision?: Revision;
  readonly minCreateRevision?: Revision;
  readonly maxCreateRevision?: Revision;
}

/** etcdserverpb.RangeResponse; `revision` is the header's revision (the CURRENT store revision). */
export interface RangeResponse {
  readonly revision: Revision;
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  /** Keys in the range at the read revision, counted BEFORE the min/max revision filters. */
  readonly count: number;
}

/** etcdserverpb.PutRequest. */
export interface PutRequest {
  readonly key: Uint8Array;
  readonly value?: Uint8Array;
  readonly lease?: LeaseId;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

/** etcdserverpb.PutResponse; `revision` is the header's revision. */
export interface PutResponse {
  readonly revision: Revision;
  readonly prevKv?: KeyValue;
}

/** etcdserverpb.DeleteRangeRequest (same `rangeEnd` conventions as {@link RangeRequest}). */
export interface DeleteRangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  readonly prevKv?: boolean;
}

/** etcdserverpb.DeleteRangeResponse. */
export interface DeleteRangeResponse {
  readonly revision: Revision;
  readonly deleted: number;
  /** Filled only when `prevKv` was requested. */
  readonly prevKvs: readonly KeyValue[];
}

/** Compare.CompareResult, with etcd's numbers. */
export enum CompareResult {
  Equal = 0,
  Greater = 1,
  Less = 2,
  NotEqual = 3,
}

/** Compare.CompareTarget, with etcd's numbers. */
export enum CompareTarget {
  Version = 0,
  Create = 1,
  Mod = 2,
  Value = 3,
  Lease = 4,
}

/**
 * etcdserverpb.Compare. Only the field matching `target` is read; when it is absent the constant
 * is 0 (or the empty value), exactly as etcd treats a missing `target_union`.
 */
export interface Compare {
  readonly result: CompareResult;
  readonly target: CompareTarget;
  readonly key: Uint8Array;
  /** Compare every key of [key, rangeEnd) (RangeRequest conventions). */
  readonly rangeEnd?: Uint8Array;
  readonly version?: number;
  readonly createRevision?: Revision;
  readonly modRevision?: Revision;
  readonly value?: Uint8Array;
  readonly lease?: LeaseId;
}

/** etcdserverpb.RequestOp. `empty` stands for a RequestOp with no member set (etcd rejects it). */
export type RequestOp =
  | { readonly kind: 'range'; readonly request: RangeRequest }
  | { readonly kind: 'put'; readonly request: PutRequest }
  | { readonly kind: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly kind: 'txn'; readonly request: TxnRequest }
  | { readonly kind: 'empty' };

/** etcdserverpb.ResponseOp, at the position of its RequestOp. */
export type ResponseOp =
  | { readonly kind: 'range'; readonly response: RangeResponse }
  | { readonly kind: 'put'; readonly response: PutResponse }
  | { readonly kind: 'deleteRange'; readonly response: DeleteRangeResponse }
  | { readonly kind: 'txn'; readonly response: TxnResponse };

/** etcdserverpb.TxnRequest. */
export interface TxnRequest {
  readonly compare?: readonly Compare[];
  readonly success?: readonly RequestOp[];
  readonly failure?: readonly RequestOp[];
}

/**
 * etcdserverpb.TxnResponse. For the outermost txn `revision` is the header revision; for a nested
 * txn it is 0 (etcd leaves nested txn headers empty), while nested range/put/delete responses
 * carry the revision of the txn's view as etcd does.
 */
export interface TxnResponse {
  readonly revision: Revision;
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}

/** etcdserverpb.CompactionRequest. */
export interface CompactionRequest {
  readonly revision: Revision;
  /** The caller wants to wait for {@link CompactionResponse.physicallyDone}. */
  readonly physical?: boolean;
}

/** etcdserverpb.CompactionResponse plus a handle on the background deletion. */
export interface CompactionResponse {
  /** The current revision (compaction does not bump it). */
  readonly revision: Revision;
  /**
   * Settles when the compacted history is gone from disk. Reads below the compact revision are
   * refused at once; the bytes are reclaimed in the background. Never rejects (a failed delete is
   * fatal and crashes the process, see MvccStore).
   */
  readonly physicallyDone: Promise<void>;
}

/**
 * LeaseGrant as it travels through the log: the PROPOSER has already chosen the ID (never 0) and
 * raised the TTL to the minimum, so every replica applies exactly the same grant.
 */
export interface LeaseGrantRequest {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
}

/** The applied grant: the lease's ID and granted TTL; `revision` is the header revision. */
export interface LeaseGrantResponse {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  readonly revision: Revision;
}

/** LeaseRevoke: deletes the lease and, in ONE revision, every key attached to it. */
export interface LeaseRevokeRequest {
  readonly id: LeaseId;
}

/** The applied revoke; `revision` is the header revision (unchanged if no key was attached). */
export interface LeaseRevokeResponse {
  readonly revision: Revision;
}

/**
 * LeaseCheckpoint (etcd-io/etcd#9888): the leader persists the remaining TTL of leases so a new
 * leader resumes their countdown instead of restarting it. `remainingMs` 0 means "the whole
 * granted TTL". Unknown lease IDs are ignored at apply time (the lease was revoked meanwhile).
 */
export interface LeaseCheckpointRequest {
  readonly checkpoints: ReadonlyArray<{ readonly id: LeaseId; readonly remainingMs: number }>;
}

/** A write that goes through Raft and is applied by {@link MvccStore.applyBatch}. */
export type MvccWriteRequest =
  | { readonly kind: 'put'; readonly request: PutRequest }
  | { readonly kind: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly kind: 'txn'; readonly request: TxnRequest }
  | { readonly kind: 'compact'; readonly request: CompactionRequest }
  | { readonly kind: 'leaseGrant'; readonly request: LeaseGrantRequest }
  | { readonly kind: 'leaseRevoke'; readonly request: LeaseRevokeRequest }
  | { readonly kind: 'leaseCheckpoint'; readonly request: LeaseCheckpointRequest };

/** The response to an {@link MvccWriteRequest}, of the same kind. */
export type MvccWriteResponse =
  | { readonly kind: 'put'; readonly response: PutResponse }
  | { readonly kind: 'deleteRange'; readonly response: DeleteRangeResponse }
  | { readonly kind: 'txn'; readonly response: TxnResponse }
  | { readonly kind: 'compact'; readonly response: CompactionResponse }
  | { readonly kind: 'leaseGrant'; readonly response: LeaseGrantResponse }
  | { readonly kind: 'leaseRevoke'; readonly response: LeaseRevokeResponse }
  | { readonly kind: 'leaseCheckpoint'; readonly response: { readonly revision: Revision } };

/**
 * A lease as the replicated state machine holds it. `remainingMs` is the last checkpointed
 * remaining TTL (0 = none since the grant or the last renewal: the whole TTL).
 */
export interface LeaseState {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  readonly remainingMs: number;
}
