/**
 * Request validation as etcd's gRPC gateway does it BEFORE proposing (etcd v3.4.23
 * etcdserver/api/v3rpc/key.go: checkRangeRequest, checkPutRequest, checkDeleteRequest,
 * checkTxnRequest, checkIntervals). The API layer calls these; the store calls them again when
 * applying, so a malformed entry that reached the log is refused identically on every replica.
 *
 * Txn rules, faithfully:
 * - too many operations: max(compares, success ops, failure ops) > maxTxnOps; a nested txn is
 *   checked against maxTxnOps minus its parent's count;
 * - every compare and operation key must be non-empty; an empty RequestOp is "key not found";
 * - duplicate keys, per branch: two puts of one key, or a put of a key inside a range deleted in
 *   the same branch (including deletes and puts of nested txns; a nested txn's success and
 *   failure puts may repeat each other since only one branch runs). As in etcd, a delete whose
 *   range_end is "\0" is compared as the literal interval [key, "\0"), which is empty, so it never
 *   conflicts.
 */
import type { MvccErrorCode } from './errors';
import { toKeyString, type KeyString } from './key-range';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types';
import { NO_LEASE } from './types';

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPERATIONS_DEFAULT = 128;

/** Checks a Range request (etcd checkRangeRequest). */
export function validateRangeRequest(request: RangeRequest): MvccErrorCode | undefined {
  return request.key.length === 0 ? 'empty-key' : undefined;
}

/** Checks a Put request (etcd checkPutRequest). */
export function validatePutRequest(request: PutRequest): MvccErrorCode | undefined {
  if (request.key.length === 0) return 'empty-key';
  if (request.ignoreValue === true && request.value !== undefined && request.value.length !== 0) return 'value-provided';
  if (request.ignoreLease === true && request.lease !== undefined && request.lease !== NO_LEASE) return 'lease-provided';
  return undefined;
}

/** Checks a DeleteRange request (etcd checkDeleteRequest). */
export function validateDeleteRangeRequest(request: DeleteRangeRequest): MvccErrorCode | undefined {
  return request.key.length === 0 ? 'empty-key' : undefined;
}

/** Checks a Txn request: operation counts, keys, then duplicate keys per branch (etcd order). */
export function validateTxnRequest(request: TxnRequest, maxTxnOperations: number = MAX_TXN_OPERATIONS_DEFAULT): MvccErrorCode | undefined {
  const structural = checkTxn(request, maxTxnOperations);
  if (structural !== undefined) return structural;
  if (checkIntervals(request.success ?? []) === 'duplicate') return 'duplicate-key';
  if (checkIntervals(request.failure ?? []) === 'duplicate') return 'duplicate-key';
  return undefined;
}

function checkTxn(request: TxnRequest, maxTxnOperations: number): MvccErrorCode | undefined {
  const compares = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const operationCount = Math.max(compares.length, success.length, failure.length);
  if (operationCount > maxTxnOperations) return 'too-many-operations';
  for (const compare of compares) if (compare.key.length === 0) return 'empty-key';
  for (const operation of [...success, ...failure]) {
    const error = checkOperation(operation, maxTxnOperations - operationCount);
    if (error !== undefined) return error;
  }
  return undefined;
}

function checkOperation(operation: RequestOp, maxTxnOperations: number): MvccErrorCode | undefined {
  switch (operation.kind) {
    case 'range':
      return validateRangeRequest(operation.request);
    case 'put':
      return validatePutRequest(operation.request);
    case 'deleteRange':
      return validateDeleteRangeRequest(operation.request);
    case 'txn':
      return checkTxn(operation.request, maxTxnOperations);
    case 'empty':
      return 'key-not-found';
  }
}

/** A deleted interval [start, end); `end === ''` means unbounded (etcd's affine infinity). */
interface Interval {
  readonly start: KeyString;
  readonly end: KeyString;
}

function intersectsPoint(intervals: readonly Interval[], key: KeyString): boolean {
  return intervals.some((interval) => interval.start <= key && (interval.end === '' || key < interval.end));
}

/** etcd checkIntervals: the puts and deleted intervals of one branch, or 'duplicate'. */
function checkIntervals(operations: readonly RequestOp[]): { puts: Set<KeyString>; deletes: Interval[] } | 'duplicate' {
  const deletes: Interval[] = [];
  for (const operation of operations) {
    if (operation.kind !== 'deleteRange') continue;
    const key = toKeyString(operation.request.key);
    const rangeEnd = operation.request.rangeEnd;
    // A point is [key, key + "\0"); a range is [key, range_end) compared literally.
    deletes.push({ start: key, end: rangeEnd !== undefined && rangeEnd.length > 0 ? toKeyString(rangeEnd) : `${key}\0` });
  }
  const puts = new Set<KeyString>();
  for (const operation of operations) {
    if (operation.kind !== 'txn') continue;
    const then = checkIntervals(operation.request.success ?? []);
    if (then === 'duplicate') return 'duplicate';
    const otherwise = checkIntervals(operation.request.failure ?? []);
    if (otherwise === 'duplicate') return 'duplicate';
    for (const key of then.puts) {
      if (puts.has(key) || intersectsPoint(deletes, key)) return 'duplicate';
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) return 'duplicate';
      if (intersectsPoint(deletes, key)) return 'duplicate';
      puts.add(key);
    }
    deletes.push(...then.deletes, ...otherwise.deletes);
  }
  for (const operation of operations) {
    if (operation.kind !== 'put') continue;
    const key = toKeyString(operation.request.key);
    if (puts.has(key) || intersectsPoint(deletes, key)) return 'duplicate';
    puts.add(key);
  }
  return { puts, deletes };
}
