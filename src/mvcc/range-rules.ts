/**
 * The pure parts of etcd's Range and Compare semantics (etcd v3.4.23 etcdserver/apply.go `Range`,
 * `applyCompare`, `compareKV`), kept apart from the store so they can be read against etcd line by
 * line:
 *
 * Range, after the store has fetched the key-values of the range at the read revision:
 * 1. If any sort order or min/max revision filter is set, the fetch ignores `limit`; otherwise it
 *    fetches `limit + 1` to learn whether there are more.
 * 2. Filters prune: max_mod, min_mod, max_create, min_create (0 = unset).
 * 3. A non-KEY sort target with order NONE sorts ASCEND. KEY/NONE keeps the key order.
 * 4. `limit` truncates and sets `more`.
 * 5. `keys_only` clears values. `count` is the number of keys in the range before step 2.
 *
 * Sorting is stable (ties keep ascending key order in both directions); etcd's Go sort leaves
 * ties unspecified.
 */
import { CompareResult, CompareTarget, SortOrder, SortTarget, type Compare, type KeyValue, type RangeRequest } from './types';

/** How many key-values the fetch must produce: undefined = all of them (step 1). */
export function fetchLimit(request: RangeRequest): number | undefined {
  const limit = request.limit ?? 0;
  const needsAll =
    (request.sortOrder ?? SortOrder.None) !== SortOrder.None ||
    (request.minModRevision ?? 0) !== 0 ||
    (request.maxModRevision ?? 0) !== 0 ||
    (request.minCreateRevision ?? 0) !== 0 ||
    (request.maxCreateRevision ?? 0) !== 0;
  if (needsAll || limit <= 0) return undefined;
  return limit + 1;
}

/** Steps 2–5 on fetched key-values (in ascending key order). Returns the kvs and `more`. */
export function finishRange(request: RangeRequest, fetched: readonly KeyValue[]): { kvs: KeyValue[]; more: boolean } {
  let kvs = fetched.slice();
  const maxMod = request.maxModRevision ?? 0;
  const minMod = request.minModRevision ?? 0;
  const maxCreate = request.maxCreateRevision ?? 0;
  const minCreate = request.minCreateRevision ?? 0;
  if (maxMod !== 0) kvs = kvs.filter((kv) => kv.modRevision <= maxMod);
  if (minMod !== 0) kvs = kvs.filter((kv) => kv.modRevision >= minMod);
  if (maxCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision <= maxCreate);
  if (minCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision >= minCreate);

  const target = request.sortTarget ?? SortTarget.Key;
  let order = request.sortOrder ?? SortOrder.None;
  if (target !== SortTarget.Key && order === SortOrder.None) order = SortOrder.Ascend;
  if (order !== SortOrder.None) {
    const compareTarget = sortComparator(target);
    const direction = order === SortOrder.Descend ? -1 : 1;
    // Array.prototype.sort is stable; ties keep ascending key order.
    kvs.sort((a, b) => direction * compareTarget(a, b));
  }
  const limit = request.limit ?? 0;
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  if (request.keysOnly === true) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY_VALUE }));
  return { kvs, more };
}

const EMPTY_VALUE = Buffer.alloc(0);

function sortComparator(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.Key:
      return (a, b) => Buffer.compare(a.key, b.key);
    case SortTarget.Version:
      return (a, b) => a.version - b.version;
    case SortTarget.Create:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.Mod:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.Value:
      return (a, b) => Buffer.compare(a.value, b.value);
  }
}

/** The zero KeyValue that a compare on a missing key is evaluated against (etcd semantics). */
const ZERO_KEY_VALUE: KeyValue = Object.freeze({
  key: Buffer.alloc(0),
  createRevision: 0,
  modRevision: 0,
  version: 0,
  value: Buffer.alloc(0),
  lease: 0n,
});

/**
 * One compare against the live key-values of its range (etcd applyCompare): with no key in the
 * range, a VALUE compare fails and any other target compares against zero; otherwise every key
 * must satisfy it.
 */
export function evaluateCompare(compare: Compare, kvs: readonly KeyValue[]): boolean {
  if (kvs.length === 0) {
    if (compare.target === CompareTarget.Value) return false;
    return compareKeyValue(compare, ZERO_KEY_VALUE);
  }
  return kvs.every((kv) => compareKeyValue(compare, kv));
}

/** etcd compareKV: compares the targeted field of `kv` with the compare's constant. */
export function compareKeyValue(compare: Compare, kv: KeyValue): boolean {
  let result: number;
  switch (compare.target) {
    case CompareTarget.Value:
      result = Buffer.compare(kv.value, compare.value ?? EMPTY_VALUE);
      break;
    case CompareTarget.Create:
      result = Math.sign(kv.createRevision - (compare.createRevision ?? 0));
      break;
    case CompareTarget.Mod:
      result = Math.sign(kv.modRevision - (compare.modRevision ?? 0));
      break;
    case CompareTarget.Version:
      result = Math.sign(kv.version - (compare.version ?? 0));
      break;
    case CompareTarget.Lease: {
      const constant = compare.lease ?? 0n;
      result = kv.lease === constant ? 0 : kv.lease > constant ? 1 : -1;
      break;
    }
  }
  switch (compare.result) {
    case CompareResult.Equal:
      return result === 0;
    case CompareResult.NotEqual:
      return result !== 0;
    case CompareResult.Greater:
      return result > 0;
    case CompareResult.Less:
      return result < 0;
  }
}
