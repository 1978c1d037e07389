/**
 * The gateway between etcd's KV wire messages (decoded by etcd-proto.ts) and the MVCC types
 * (src/mvcc/types.ts): decode requests into typed values, encode typed responses with etcd's
 * ResponseHeader.
 *
 * Decoding only picks defaults and converts representations (64-bit strings → numbers or exact
 * bigints; oneofs → discriminated unions). Semantic checks (empty key, txn limits, duplicate keys)
 * are src/mvcc/validate.ts's job and run right after, in kv-service.ts. Enum values outside the
 * proto's enums are read as the enum's zero value (etcd keeps them as unknown numbers and, for an
 * unknown sort target, panics; a gateway must not pass them on).
 *
 * Encoding leaves out zero values (Go's proto3 encoder does the same), so a header without a
 * revision really has none on the wire.
 *
 * Headers (etcd v3rpc/header.go, ETCD_WIRE_NOTES.md §3.2): top-level responses carry cluster_id,
 * member_id, raft_term and the response's revision; responses nested in a Txn carry a header with
 * ONLY `revision` (range, put, delete) or an empty header (a nested txn), as etcd's applyTxn
 * leaves them (checked against a real etcd 3.4.23 in etcd-differential.test.ts).
 */
import type { HeaderFields } from './backend';
import {
  boolField,
  bytesField,
  int32Field,
  int64BigIntField,
  int64NumberField,
  messageField,
  oneofCase,
  repeatedMessageField,
  type ProtoObject,
} from './etcd-proto';
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type CompactionRequest,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type Revision,
  type TxnRequest,
  type TxnResponse,
} from '../../mvcc/types';

/** A Range request with the flag only the API layer reads. */
export type GatewayRangeRequest = RangeRequest & { readonly serializable: boolean };

/** A number as an enum member when it is one, else `fallback`. */
function enumValue<T extends number>(value: number, members: readonly T[], fallback: T): T {
  return (members as readonly number[]).includes(value) ? (value as T) : fallback;
}

const SORT_ORDERS = [SortOrder.None, SortOrder.Ascend, SortOrder.Descend] as const;
const SORT_TARGETS = [SortTarget.Key, SortTarget.Version, SortTarget.Create, SortTarget.Mod, SortTarget.Value] as const;
const COMPARE_RESULTS = [CompareResult.Equal, CompareResult.Greater, CompareResult.Less, CompareResult.NotEqual] as const;
const COMPARE_TARGETS = [CompareTarget.Version, CompareTarget.Create, CompareTarget.Mod, CompareTarget.Value, CompareTarget.Lease] as const;

/** Decodes etcdserverpb.RangeRequest. */
export function decodeRangeRequest(message: ProtoObject): GatewayRangeRequest {
  return {
    key: bytesField(message, 'key'),
    rangeEnd: bytesField(message, 'range_end'),
    limit: int64NumberField(message, 'limit'),
    revision: int64NumberField(message, 'revision'),
    sortOrder: enumValue(int32Field(message, 'sort_order'), SORT_ORDERS, SortOrder.None),
    sortTarget: enumValue(int32Field(message, 'sort_target'), SORT_TARGETS, SortTarget.Key),
    serializable: boolField(message, 'serializable'),
    keysOnly: boolField(message, 'keys_only'),
    countOnly: boolField(message, 'count_only'),
    minModRevision: int64NumberField(message, 'min_mod_revision'),
    maxModRevision: int64NumberField(message, 'max_mod_revision'),
    minCreateRevision: int64NumberField(message, 'min_create_revision'),
    maxCreateRevision: int64NumberField(message, 'max_create_revision'),
  };
}

/** Decodes etcdserverpb.PutRequest. */
export function decodePutRequest(message: ProtoObject): PutRequest {
  return {
    key: bytesField(message, 'key'),
    value: bytesField(message, 'value'),
    lease: int64BigIntField(message, 'lease'),
    prevKv: boolField(message, 'prev_kv'),
    ignoreValue: boolField(message, 'ignore_value'),
    ignoreLease: boolField(message, 'ignore_lease'),
  };
}

/** Decodes etcdserverpb.DeleteRangeRequest. */
export function decodeDeleteRangeRequest(message: ProtoObject): DeleteRangeRequest {
  return { key: bytesField(message, 'key'), rangeEnd: bytesField(message, 'range_end'), prevKv: boolField(message, 'prev_kv') };
}

/**
 * Decodes etcdserverpb.Compare. Only the `target_union` member that was actually set is kept, and
 * only when it matches `target` (etcd's compareKV reads the union with a type assertion, so a
 * mismatched or absent member compares against 0 / the empty value).
 */
export function decodeCompare(message: ProtoObject): Compare {
  const target = enumValue(int32Field(message, 'target'), COMPARE_TARGETS, CompareTarget.Version);
  const base = {
    result: enumValue(int32Field(message, 'result'), COMPARE_RESULTS, CompareResult.Equal),
    target,
    key: bytesField(message, 'key'),
    rangeEnd: bytesField(message, 'range_end'),
  };
  const member = oneofCase(message, 'target_union');
  switch (target) {
    case CompareTarget.Version:
      return member === 'version' ? { ...base, version: int64NumberField(message, 'version') } : base;
    case CompareTarget.Create:
      return member === 'create_revision' ? { ...base, createRevision: int64NumberField(message, 'create_revision') } : base;
    case CompareTarget.Mod:
      return member === 'mod_revision' ? { ...base, modRevision: int64NumberField(message, 'mod_revision') } : base;
    case CompareTarget.Value:
      return member === 'value' ? { ...base, value: bytesField(message, 'value') } : base;
    case CompareTarget.Lease:
      return member === 'lease' ? { ...base, lease: int64BigIntField(message, 'lease') } : base;
  }
}

/** Decodes etcdserverpb.RequestOp; a RequestOp with no member set is `{ kind: 'empty' }`. */
export function decodeRequestOp(message: ProtoObject): RequestOp {
  const member = oneofCase(message, 'request');
  const inner = member === undefined ? undefined : messageField(message, member);
  if (inner === undefined) return { kind: 'empty' };
  switch (member) {
    case 'request_range': {
      const { serializable: _serializable, ...request } = decodeRangeRequest(inner);
      return { kind: 'range', request };
    }
    case 'request_put':
      return { kind: 'put', request: decodePutRequest(inner) };
    case 'request_delete_range':
      return { kind: 'deleteRange', request: decodeDeleteRangeRequest(inner) };
    case 'request_txn':
      return { kind: 'txn', request: decodeTxnRequest(inner) };
    default:
      return { kind: 'empty' };
  }
}

/** Decodes etcdserverpb.TxnRequest (nested txns included). */
export function decodeTxnRequest(message: ProtoObject): TxnRequest {
  return {
    compare: repeatedMessageField(message, 'compare').map(decodeCompare),
    success: repeatedMessageField(message, 'success').map(decodeRequestOp),
    failure: repeatedMessageField(message, 'failure').map(decodeRequestOp),
  };
}

/** Decodes etcdserverpb.CompactionRequest. */
export function decodeCompactionRequest(message: ProtoObject): CompactionRequest {
  return { revision: int64NumberField(message, 'revision'), physical: boolField(message, 'physical') };
}

/** True when a txn only reads (etcd isTxnReadonly: every op of both branches is a Range). */
export function isTxnReadOnly(request: TxnRequest): boolean {
  return [...(request.success ?? []), ...(request.failure ?? [])].every((operation) => operation.kind === 'range');
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/** Copies the entries of `fields` whose value is not a zero value (0, 0n, false, '', empty bytes or list). */
function nonZero(fields: ProtoObject): ProtoObject {
  const result: ProtoObject = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === 0 || value === 0n || value === false || value === '') continue;
    if ((value instanceof Uint8Array || Array.isArray(value)) && value.length === 0) continue;
    result[name] = value;
  }
  return result;
}

/** A full ResponseHeader: the node's fields with `revision` (omitted when 0, as etcd's fill leaves it). */
export function encodeHeader(fields: HeaderFields, revision: Revision): ProtoObject {
  return nonZero({ cluster_id: fields.clusterId, member_id: fields.memberId, revision, raft_term: fields.raftTerm });
}

/** A ResponseHeader with only `revision`: what etcd puts in responses nested in a Txn. */
function revisionOnlyHeader(revision: Revision): ProtoObject {
  return nonZero({ revision });
}

/** Encodes mvccpb.KeyValue (a DELETE event's kv has only key and mod_revision set). */
export function encodeKeyValue(kv: KeyValue): ProtoObject {
  return nonZero({
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease,
  });
}

function rangeBody(response: RangeResponse): ProtoObject {
  return nonZero({ kvs: response.kvs.map(encodeKeyValue), more: response.more, count: response.count });
}

function putBody(response: PutResponse): ProtoObject {
  return response.prevKv === undefined ? {} : { prev_kv: encodeKeyValue(response.prevKv) };
}

function deleteRangeBody(response: DeleteRangeResponse): ProtoObject {
  return nonZero({ deleted: response.deleted, prev_kvs: response.prevKvs.map(encodeKeyValue) });
}

function responseOp(operation: ResponseOp): ProtoObject {
  switch (operation.kind) {
    case 'range':
      return { response_range: { header: revisionOnlyHeader(operation.response.revision), ...rangeBody(operation.response) } };
    case 'put':
      return { response_put: { header: revisionOnlyHeader(operation.response.revision), ...putBody(operation.response) } };
    case 'deleteRange':
      return { response_delete_range: { header: revisionOnlyHeader(operation.response.revision), ...deleteRangeBody(operation.response) } };
    case 'txn':
      // etcd's newTxnResp gives a nested txn an EMPTY header (present, no fields).
      return { response_txn: { header: {}, ...txnBody(operation.response) } };
  }
}

function txnBody(response: TxnResponse): ProtoObject {
  return nonZero({ succeeded: response.succeeded, responses: response.responses.map(responseOp) });
}

/** Encodes etcdserverpb.RangeResponse; header.revision is the CURRENT revision, even for past reads. */
export function encodeRangeResponse(fields: HeaderFields, response: RangeResponse): ProtoObject {
  return { header: encodeHeader(fields, response.revision), ...rangeBody(response) };
}

/** Encodes etcdserverpb.PutResponse. */
export function encodePutResponse(fields: HeaderFields, response: PutResponse): ProtoObject {
  return { header: encodeHeader(fields, response.revision), ...putBody(response) };
}

/** Encodes etcdserverpb.DeleteRangeResponse. */
export function encodeDeleteRangeResponse(fields: HeaderFields, response: DeleteRangeResponse): ProtoObject {
  return { header: encodeHeader(fields, response.revision), ...deleteRangeBody(response) };
}

/** Encodes etcdserverpb.TxnResponse (nested responses with etcd's partial headers). */
export function encodeTxnResponse(fields: HeaderFields, response: TxnResponse): ProtoObject {
  return { header: encodeHeader(fields, response.revision), ...txnBody(response) };
}

/** Encodes etcdserverpb.CompactionResponse (header.revision = current revision). */
export function encodeCompactionResponse(fields: HeaderFields, revision: Revision): ProtoObject {
  return { header: encodeHeader(fields, revision) };
}
