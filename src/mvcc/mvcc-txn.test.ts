/**
 * Txn semantics (etcd v3.4.23 apply.go Txn, v3rpc/key.go checks): compares of every target and
 * result, compare ranges, success/failure branches, nested txns, read-your-writes, duplicate-key
 * and ops-limit checks, revision rules for read-only and empty txns.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { prefixRangeEnd } from './key-range';
import { bytes, TestStore } from './test-support';
import { validateTxnRequest } from './validate';
import { CompareResult, CompareTarget, SortOrder, SortTarget, type Compare, type RequestOp, type TxnRequest } from './types';

let t: TestStore;
beforeEach(async () => {
  t = await TestStore.create();
  // An etcd store starts at revision 1: its first write is revision 2.
  await t.put('k', 'v', { lease: 9n }); // rev 2: k c2 m2 v1
  await t.put('k', 'w', { lease: 9n }); // rev 3: k c2 m3 v2
  await t.put('other', 'o'); // rev 4
});
afterEach(async () => {
  await t.destroy();
});

const put = (key: string, value: string): RequestOp => ({ kind: 'put', request: { key: bytes(key), value: bytes(value) } });
const get = (key: string, extra: object = {}): RequestOp => ({ kind: 'range', request: { key: bytes(key), ...extra } });
const del = (key: string, rangeEnd?: Buffer): RequestOp => ({ kind: 'deleteRange', request: { key: bytes(key), ...(rangeEnd === undefined ? {} : { rangeEnd }) } });

async function succeeds(compare: Compare): Promise<boolean> {
  const outcome = await t.txn({ compare: [compare] });
  assert.ok(outcome.ok);
  return outcome.value.succeeded;
}

describe('compares', () => {
  test('each target with each result', async () => {
    const key = bytes('k');
    const cases: Array<[Compare, boolean]> = [
      [{ key, target: CompareTarget.Version, result: CompareResult.Equal, version: 2 }, true],
      [{ key, target: CompareTarget.Version, result: CompareResult.NotEqual, version: 2 }, false],
      [{ key, target: CompareTarget.Version, result: CompareResult.Greater, version: 1 }, true],
      [{ key, target: CompareTarget.Version, result: CompareResult.Less, version: 2 }, false],
      [{ key, target: CompareTarget.Create, result: CompareResult.Equal, createRevision: 2 }, true],
      [{ key, target: CompareTarget.Create, result: CompareResult.Less, createRevision: 3 }, true],
      [{ key, target: CompareTarget.Mod, result: CompareResult.Equal, modRevision: 3 }, true],
      [{ key, target: CompareTarget.Mod, result: CompareResult.Greater, modRevision: 3 }, false],
      [{ key, target: CompareTarget.Mod, result: CompareResult.Greater }, true, ],
      [{ key, target: CompareTarget.Value, result: CompareResult.Equal, value: bytes('w') }, true],
      [{ key, target: CompareTarget.Value, result: CompareResult.Greater, value: bytes('v') }, true],
      [{ key, target: CompareTarget.Value, result: CompareResult.Less, value: bytes('v') }, false],
      [{ key, target: CompareTarget.Value, result: CompareResult.NotEqual, value: bytes('w') }, false],
      [{ key, target: CompareTarget.Lease, result: CompareResult.Equal, lease: 9n }, true],
      [{ key, target: CompareTarget.Lease, result: CompareResult.NotEqual, lease: 0n }, true],
      [{ key, target: CompareTarget.Lease, result: CompareResult.Less, lease: 10n }, true],
    ];
    for (const [compare, expected] of cases) assert.equal(await succeeds(compare), expected, JSON.stringify(compare, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  });

  test('a missing key compares as zero, except VALUE which always fails', async () => {
    const key = bytes('missing');
    assert.equal(await succeeds({ key, target: CompareTarget.Create, result: CompareResult.Equal, createRevision: 0 }), true, 'lock recipe: CREATE == 0');
    assert.equal(await succeeds({ key, target: CompareTarget.Version, result: CompareResult.Equal }), true);
    assert.equal(await succeeds({ key, target: CompareTarget.Value, result: CompareResult.Equal, value: Buffer.alloc(0) }), false);
    assert.equal(await succeeds({ key, target: CompareTarget.Value, result: CompareResult.NotEqual, value: bytes('x') }), false);
  });

  test('compare range_end: every key in the range must satisfy it', async () => {
    await t.put('p/1', 'a'); // 5
    await t.put('p/2', 'b'); // 6
    const prefix = { key: bytes('p/'), rangeEnd: prefixRangeEnd(bytes('p/')) };
    assert.equal(await succeeds({ ...prefix, target: CompareTarget.Mod, result: CompareResult.Greater, modRevision: 4 }), true);
    assert.equal(await succeeds({ ...prefix, target: CompareTarget.Mod, result: CompareResult.Greater, modRevision: 5 }), false);
    assert.equal(await succeeds({ key: bytes('q'), rangeEnd: bytes('r'), target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }), true, 'empty range compares as zero');
  });
});

describe('branches and revisions', () => {
  test('success and failure branches run the right ops; writes are one revision', async () => {
    const request = (version: number): TxnRequest => ({
      compare: [{ key: bytes('k'), target: CompareTarget.Version, result: CompareResult.Equal, version }],
      success: [put('s1', 'x'), put('s2', 'y')],
      failure: [get('k')],
    });
    const yes = await t.txn(request(2));
    assert.ok(yes.ok);
    assert.deepEqual([yes.value.succeeded, yes.value.revision], [true, 5]);
    assert.deepEqual(yes.value.responses.map((response) => [response.kind, response.kind === 'put' ? response.response.revision : -1]), [['put', 5], ['put', 5]]);
    assert.deepEqual((await t.get({ key: bytes('s2') })).kvs.map((kv) => [kv.createRevision, kv.modRevision]), [[5, 5]]);
    const no = await t.txn(request(5));
    assert.ok(no.ok);
    assert.equal(no.value.succeeded, false);
    assert.equal(no.value.revision, 5, 'a read-only txn does not bump the revision');
    const [rangeResponse] = no.value.responses;
    assert.ok(rangeResponse?.kind === 'range');
    assert.deepEqual([rangeResponse.response.revision, rangeResponse.response.kvs[0]!.value.toString()], [5, 'w']);
  });

  test('an empty txn succeeds and does not bump the revision', async () => {
    const outcome = await t.txn({});
    assert.deepEqual(outcome.ok && [outcome.value.succeeded, outcome.value.revision, outcome.value.responses.length], [true, 4, 0]);
    assert.equal(t.store.currentRevision(), 4);
  });

  test('read-your-writes inside a txn, with sub-revision ordered events', async () => {
    t.index += 1;
    const result = await t.store.apply(t.index, {
      kind: 'txn',
      request: { success: [get('new'), put('new', '1'), get('new'), del('other'), get('other'), { kind: 'range', request: { key: bytes('k'), revision: 2 } }] },
    });
    assert.ok(!result.skipped && result.outcome?.ok && result.outcome.value.kind === 'txn');
    const responses = result.outcome.value.response.responses;
    const ranges = responses.filter((response) => response.kind === 'range').map((response) => (response.kind === 'range' ? [response.response.revision, response.response.kvs.map((kv) => kv.value.toString())] : []));
    assert.deepEqual(ranges, [
      [4, []],
      [5, ['1']],
      [5, []],
      [5, ['v']],
    ]);
    const deleteResponse = responses[3];
    assert.ok(deleteResponse?.kind === 'deleteRange');
    assert.deepEqual([deleteResponse.response.deleted, deleteResponse.response.revision], [1, 5]);
    assert.deepEqual(result.events.map((event) => `${event.type}:${event.kv.key.toString()}@${event.kv.modRevision}`), ['0:new@5', '1:other@5']);
  });

  test('nested txns: compares are evaluated before any op runs; nested headers are empty', async () => {
    const outcome = await t.txn({
      success: [
        put('k', 'changed'),
        {
          kind: 'txn',
          request: {
            // Evaluated against the state before the outer txn: k is still "w".
            compare: [{ key: bytes('k'), target: CompareTarget.Value, result: CompareResult.Equal, value: bytes('w') }],
            success: [put('inner', 'yes'), get('k')],
            failure: [put('inner', 'no')],
          },
        },
      ],
    });
    assert.ok(outcome.ok);
    const nested = outcome.value.responses[1];
    assert.ok(nested?.kind === 'txn');
    assert.equal(nested.response.succeeded, true);
    assert.equal(nested.response.revision, 0);
    const innerRange = nested.response.responses[1];
    assert.ok(innerRange?.kind === 'range');
    assert.equal(innerRange.response.kvs[0]!.value.toString(), 'changed', 'but reads see the earlier write');
    assert.deepEqual(await t.keys({ key: bytes('inner') }), ['inner']);
    assert.equal((await t.get({ key: bytes('inner') })).kvs[0]!.value.toString(), 'yes');
  });

  test('a lock-style txn: CREATE == 0 then put + sorted range', async () => {
    const lock = (owner: string): TxnRequest => ({
      compare: [{ key: bytes(`lock/${owner}`), target: CompareTarget.Create, result: CompareResult.Equal, createRevision: 0 }],
      success: [put(`lock/${owner}`, ''), get('lock/', { rangeEnd: prefixRangeEnd(bytes('lock/')), limit: 1, sortOrder: SortOrder.Ascend, sortTarget: SortTarget.Create })],
      failure: [get(`lock/${owner}`)],
    });
    const first = await t.txn(lock('a'));
    const second = await t.txn(lock('b'));
    assert.ok(first.ok && second.ok);
    const owner = second.value.responses[1];
    assert.ok(owner?.kind === 'range');
    assert.equal(owner.response.kvs[0]!.key.toString(), 'lock/a');
    assert.equal(owner.response.count, 2);
    const again = await t.txn(lock('a'));
    assert.ok(again.ok && !again.value.succeeded);
  });

  test('apply-time errors leave no change: ignore_value on a missing key, future/compacted ranges', async () => {
    const before = t.store.currentRevision();
    assert.deepEqual(await t.txn({ success: [put('a', '1'), { kind: 'put', request: { key: bytes('nope'), ignoreValue: true } }] }), { ok: false, error: 'key-not-found' });
    assert.deepEqual(await t.txn({ success: [put('a', '1'), get('k', { revision: 99 })] }), { ok: false, error: 'future-revision' });
    const compacted = await t.compact(3);
    assert.ok(compacted.ok);
    assert.deepEqual(await t.txn({ success: [put('a', '1'), get('k', { revision: 2 })] }), { ok: false, error: 'compacted' });
    assert.equal(t.store.currentRevision(), before);
    assert.deepEqual(await t.keys({ key: bytes('a') }), []);
  });
});

describe('validation', () => {
  test('duplicate keys per etcd checkIntervals', () => {
    const check = (request: TxnRequest) => validateTxnRequest(request) ?? 'ok';
    assert.equal(check({ success: [put('a', '1'), put('a', '2')] }), 'duplicate-key');
    assert.equal(check({ success: [put('a', '1')], failure: [put('a', '2')] }), 'ok', 'different branches');
    assert.equal(check({ success: [del('a', bytes('c')), put('b', '1')] }), 'duplicate-key', 'put inside a deleted range');
    assert.equal(check({ success: [del('a'), put('a', '1')] }), 'duplicate-key', 'put of a deleted key');
    assert.equal(check({ success: [del('a', bytes('c')), del('b', bytes('d'))] }), 'ok', 'overlapping deletes are allowed');
    assert.equal(check({ success: [del('a', Buffer.from([0])), put('b', '1')] }), 'ok', 'etcd quirk: a "\\0" range_end never conflicts');
    const nested = (success: RequestOp[], failure: RequestOp[] = []): RequestOp => ({ kind: 'txn', request: { success, failure } });
    assert.equal(check({ success: [put('a', '1'), nested([put('a', '2')])] }), 'duplicate-key', 'nested put vs outer put');
    assert.equal(check({ success: [nested([put('a', '1')], [put('a', '2')])] }), 'ok', 'then/else of one nested txn');
    assert.equal(check({ success: [nested([put('a', '1')]), nested([put('a', '2')])] }), 'duplicate-key', 'two nested txns');
    assert.equal(check({ success: [del('a', bytes('z')), nested([put('b', '1')])] }), 'duplicate-key', 'nested put inside an outer delete');
    assert.equal(check({ success: [nested([del('a', bytes('z'))]), put('b', '1')] }), 'duplicate-key', 'outer put inside a nested delete');
  });

  test('operation limits, empty keys and empty ops', () => {
    const many = Array.from({ length: 129 }, (_unused, index) => put(`k${index}`, 'v'));
    assert.equal(validateTxnRequest({ success: many }), 'too-many-operations');
    assert.equal(validateTxnRequest({ success: many.slice(0, 128) }), undefined);
    assert.equal(validateTxnRequest({ success: many.slice(0, 3) }, 2), 'too-many-operations');
    assert.equal(validateTxnRequest({ compare: [{ key: Buffer.alloc(0), target: CompareTarget.Version, result: CompareResult.Equal }] }), 'empty-key');
    assert.equal(validateTxnRequest({ failure: [{ kind: 'put', request: { key: Buffer.alloc(0) } }] }), 'empty-key');
    assert.equal(validateTxnRequest({ success: [{ kind: 'empty' }] }), 'key-not-found');
  });

  test('the store refuses an invalid txn at apply time too', async () => {
    assert.deepEqual(await t.txn({ success: [put('a', '1'), put('a', '2')] }), { ok: false, error: 'duplicate-key' });
    assert.equal(t.store.currentRevision(), 4);
  });
});
