/**
 * MvccStore: revision and version rules, reads in the past, compaction, every Range option,
 * Put/DeleteRange options and errors, idempotent apply across reopen (etcd v3.4.23 semantics,
 * ETCD_WIRE_NOTES.md §3.2–§3.6).
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MVCC_ERRORS, GrpcStatusCode } from './errors';
import { prefixRangeEnd, resolveRange } from './key-range';
import { MvccStore } from './mvcc-store';
import { bytes, TestStore, unwrap } from './test-support';
import { EventType, SortOrder, SortTarget, type KeyValue } from './types';

let t: TestStore;
beforeEach(async () => {
  t = await TestStore.create();
});
afterEach(async () => {
  await t.destroy();
});

const ZERO = Buffer.from([0]);

function summary(kv: KeyValue): string {
  return `${kv.key.toString()}=${kv.value.toString()} c${kv.createRevision} m${kv.modRevision} v${kv.version}`;
}

describe('revisions and versions', () => {
  test('each put bumps the revision by one; create/mod/version follow etcd', async () => {
    assert.equal(t.store.currentRevision(), 1, 'an empty store is at revision 1, as etcd');
    assert.equal((await t.put('a', '1')).revision, 2);
    assert.equal((await t.put('b', '1')).revision, 3);
    assert.equal((await t.put('a', '2')).revision, 4);
    const response = await t.get({ key: bytes('a') });
    assert.deepEqual(response.kvs.map(summary), ['a=2 c2 m4 v2']);
    assert.equal(response.revision, 4);
    assert.equal(response.count, 1);
  });

  test('delete resets version; a re-created key starts a new generation', async () => {
    await t.put('a', '1');
    await t.put('a', '2');
    const deleted = await t.del('a');
    assert.deepEqual([deleted.deleted, deleted.revision], [1, 4]);
    assert.equal((await t.get({ key: bytes('a') })).count, 0);
    await t.put('a', '3');
    assert.deepEqual((await t.get({ key: bytes('a') })).kvs.map(summary), ['a=3 c5 m5 v1']);
  });

  test('values keep every byte value, at the current revision, in the past and after a reopen', async () => {
    const value = Buffer.from(Array.from({ length: 512 }, (_, index) => (index * 7) % 256));
    const check = async (what: string) => {
      for (const revision of [0, 2]) {
        const kvs = (await t.get({ key: bytes('bin'), revision })).kvs;
        assert.equal(kvs.length, 1, what);
        assert.ok(kvs[0]!.value.equals(value), `${what}, revision ${revision}`);
      }
      const put = unwrap(await t.write({ kind: 'put', request: { key: bytes('bin'), value: Buffer.alloc(0), ignoreValue: true, prevKv: true } }), 'put') as { prevKv?: KeyValue };
      assert.ok(put.prevKv?.value.equals(value), `${what}: prev_kv of an ignore_value put`);
      assert.ok((await t.get({ key: bytes('bin') })).kvs[0]!.value.equals(value), `${what}: the value an ignore_value put kept`);
    };
    await t.write({ kind: 'put', request: { key: bytes('bin'), value } });
    await check('applied');
    await t.reopen();
    await check('reopened');
  });

  test('deleting a missing key does not bump the revision', async () => {
    await t.put('a', '1');
    const deleted = await t.del('zzz');
    assert.deepEqual([deleted.deleted, deleted.revision], [0, 2]);
    assert.equal(t.store.currentRevision(), 2);
  });

  test('a delete range is one revision with one event per key, in key order', async () => {
    await t.put('a1', 'x');
    await t.put('a2', 'y');
    await t.put('b', 'z');
    t.index += 1;
    const result = await t.store.apply(t.index, { kind: 'deleteRange', request: { key: bytes('a'), rangeEnd: prefixRangeEnd(bytes('a')), prevKv: true } });
    assert.ok(!result.skipped);
    const response = unwrap(result.outcome!, 'deleteRange');
    assert.deepEqual([response.deleted, response.revision], [2, 5]);
    assert.deepEqual(response.prevKvs.map(summary), ['a1=x c2 m2 v1', 'a2=y c3 m3 v1']);
    assert.deepEqual(
      result.events.map((event) => [event.type, event.kv.key.toString(), event.kv.modRevision, event.kv.version, event.prevKv?.value.toString()]),
      [
        [EventType.Delete, 'a1', 5, 0, 'x'],
        [EventType.Delete, 'a2', 5, 0, 'y'],
      ],
    );
  });

  test('put events carry prev_kv and the new kv', async () => {
    await t.put('k', 'v1', { lease: 7n });
    t.index += 1;
    const result = await t.store.apply(t.index, { kind: 'put', request: { key: bytes('k'), value: bytes('v2') } });
    assert.ok(!result.skipped);
    assert.equal(result.events.length, 1);
    assert.equal(summary(result.events[0]!.kv), 'k=v2 c2 m3 v2');
    assert.equal(result.events[0]!.kv.lease, 0n);
    assert.equal(summary(result.events[0]!.prevKv!), 'k=v1 c2 m2 v1');
    assert.equal(result.events[0]!.prevKv!.lease, 7n);
  });
});

describe('put options', () => {
  test('prev_kv returns the previous version; absent for a new key', async () => {
    assert.equal((await t.put('k', 'a', { prevKv: true })).prevKv, undefined);
    assert.equal(summary((await t.put('k', 'b', { prevKv: true })).prevKv!), 'k=a c2 m2 v1');
  });

  test('ignore_value keeps the value, ignore_lease keeps the lease', async () => {
    await t.put('k', 'keep', { lease: 5n });
    await t.put('k', '', { ignoreValue: true, lease: 6n });
    let kv = (await t.get({ key: bytes('k') })).kvs[0]!;
    assert.deepEqual([kv.value.toString(), kv.lease, kv.version], ['keep', 6n, 2]);
    await t.put('k', 'new', { ignoreLease: true });
    kv = (await t.get({ key: bytes('k') })).kvs[0]!;
    assert.deepEqual([kv.value.toString(), kv.lease, kv.version], ['new', 6n, 3]);
  });

  test('errors: empty key, value/lease provided, key not found, lease not found', async () => {
    const errorOf = async (request: Parameters<TestStore['putRaw']>[0]) => {
      const outcome = await t.putRaw(request);
      return outcome.ok ? 'ok' : outcome.error;
    };
    assert.equal(await errorOf({ key: Buffer.alloc(0), value: bytes('v') }), 'empty-key');
    assert.equal(await errorOf({ key: bytes('k'), value: bytes('v'), ignoreValue: true }), 'value-provided');
    assert.equal(await errorOf({ key: bytes('k'), lease: 3n, ignoreLease: true }), 'lease-provided');
    assert.equal(await errorOf({ key: bytes('missing'), ignoreValue: true }), 'key-not-found');
    assert.equal(await errorOf({ key: bytes('missing'), ignoreLease: true }), 'key-not-found');
    assert.equal(t.store.currentRevision(), 1, 'failed puts do not bump the revision');
    const leased = await TestStore.create({ leaseExists: (lease) => lease === 1n });
    try {
      const outcome = await leased.putRaw({ key: bytes('k'), value: bytes('v'), lease: 2n });
      assert.deepEqual(outcome, { ok: false, error: 'lease-not-found' });
      assert.ok((await leased.putRaw({ key: bytes('k'), value: bytes('v'), lease: 1n })).ok);
    } finally {
      await leased.destroy();
    }
  });

  test('the error table carries etcd messages and gRPC codes', () => {
    assert.deepEqual(MVCC_ERRORS.compacted, { message: 'etcdserver: mvcc: required revision has been compacted', grpcStatusCode: GrpcStatusCode.OutOfRange });
    assert.equal(MVCC_ERRORS['future-revision'].message, 'etcdserver: mvcc: required revision is a future revision');
    assert.equal(MVCC_ERRORS['key-not-found'].message, 'etcdserver: key not found');
    assert.equal(MVCC_ERRORS['duplicate-key'].grpcStatusCode, 3);
    assert.equal(MVCC_ERRORS['lease-not-found'].grpcStatusCode, 5);
  });
});

describe('range', () => {
  beforeEach(async () => {
    // revisions 2..6 (the first write of an etcd store is revision 2): a, b, c, d, then b modified.
    await t.put('a', '5');
    await t.put('b', '2');
    await t.put('c', '3');
    await t.put('d', '1');
    await t.put('b', '4');
  });

  test('single key, prefix, from-key and all-keys ranges with "\\0"', async () => {
    await t.put('ab', 'x');
    assert.deepEqual(await t.keys({ key: bytes('a') }), ['a']);
    assert.deepEqual(await t.keys({ key: bytes('a'), rangeEnd: prefixRangeEnd(bytes('a')) }), ['a', 'ab']);
    assert.deepEqual(await t.keys({ key: bytes('b'), rangeEnd: ZERO }), ['b', 'c', 'd']);
    assert.deepEqual(await t.keys({ key: ZERO, rangeEnd: ZERO }), ['a', 'ab', 'b', 'c', 'd']);
    assert.deepEqual(await t.keys({ key: bytes('b'), rangeEnd: bytes('d') }), ['b', 'c']);
    assert.deepEqual(await t.keys({ key: bytes('d'), rangeEnd: bytes('b') }), [], 'range_end before key is empty');
    assert.deepEqual(prefixRangeEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
    assert.deepEqual(prefixRangeEnd(Buffer.from([0xff])), ZERO);
  });

  test('an empty key is refused', async () => {
    assert.deepEqual(await t.store.range({ key: Buffer.alloc(0) }), { ok: false, error: 'empty-key' });
  });

  test('binary keys order by unsigned bytes', async () => {
    await t.put('\u00ff', 'high'); // UTF-8 c3 bf
    await t.putRaw({ key: Buffer.from([0x80]), value: bytes('x') });
    const keys = (await t.get({ key: ZERO, rangeEnd: ZERO })).kvs.map((kv) => kv.key.toString('hex'));
    assert.deepEqual(keys, ['61', '62', '63', '64', '80', 'c3bf']);
  });

  test('limit sets more; count is the whole range', async () => {
    const response = await t.get({ key: ZERO, rangeEnd: ZERO, limit: 2 });
    assert.deepEqual(response.kvs.map((kv) => kv.key.toString()), ['a', 'b']);
    assert.equal(response.more, true);
    assert.equal(response.count, 4);
    const exact = await t.get({ key: ZERO, rangeEnd: ZERO, limit: 4 });
    assert.deepEqual([exact.kvs.length, exact.more, exact.count], [4, false, 4]);
  });

  test('sort targets and orders, with the NONE→ASCEND rule for non-KEY targets', async () => {
    const all = { key: ZERO, rangeEnd: ZERO };
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Key, sortOrder: SortOrder.Descend }), ['d', 'c', 'b', 'a']);
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Key, sortOrder: SortOrder.None }), ['a', 'b', 'c', 'd']);
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Mod }), ['a', 'c', 'd', 'b'], 'MOD with NONE sorts ascending');
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Mod, sortOrder: SortOrder.Descend }), ['b', 'd', 'c', 'a']);
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Create, sortOrder: SortOrder.Descend }), ['d', 'c', 'b', 'a']);
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Value }), ['d', 'c', 'b', 'a']);
    assert.deepEqual(await t.keys({ ...all, sortTarget: SortTarget.Version, sortOrder: SortOrder.Descend }), ['b', 'a', 'c', 'd'], 'ties keep key order');
    const limited = await t.get({ ...all, sortTarget: SortTarget.Create, sortOrder: SortOrder.Descend, limit: 1 });
    assert.deepEqual([limited.kvs.map((kv) => kv.key.toString()), limited.more, limited.count], [['d'], true, 4]);
  });

  test('min/max mod/create filters prune after counting', async () => {
    const all = { key: ZERO, rangeEnd: ZERO };
    let response = await t.get({ ...all, maxCreateRevision: 3 });
    assert.deepEqual([response.kvs.map((kv) => kv.key.toString()), response.count], [['a', 'b'], 4]);
    response = await t.get({ ...all, minCreateRevision: 4 });
    assert.deepEqual(response.kvs.map((kv) => kv.key.toString()), ['c', 'd']);
    response = await t.get({ ...all, minModRevision: 5 });
    assert.deepEqual(response.kvs.map((kv) => kv.key.toString()), ['b', 'd']);
    response = await t.get({ ...all, maxModRevision: 4 });
    assert.deepEqual(response.kvs.map((kv) => kv.key.toString()), ['a', 'c']);
    response = await t.get({ ...all, maxCreateRevision: 3, limit: 1 });
    assert.deepEqual([response.kvs.map((kv) => kv.key.toString()), response.more, response.count], [['a'], true, 4]);
    response = await t.get({ key: bytes('a'), rangeEnd: bytes('c'), maxCreateRevision: 2, minCreateRevision: 2, minModRevision: 3 });
    assert.deepEqual([response.kvs.length, response.count], [0, 2], 'count before filters (etcd: count 2 with 0 kvs)');
  });

  test('keys_only clears values; count_only returns only the count', async () => {
    const keysOnly = await t.get({ key: ZERO, rangeEnd: ZERO, keysOnly: true });
    assert.ok(keysOnly.kvs.every((kv) => kv.value.length === 0));
    assert.equal(keysOnly.kvs[1]!.version, 2);
    const countOnly = await t.get({ key: ZERO, rangeEnd: ZERO, countOnly: true, limit: 1 });
    assert.deepEqual([countOnly.kvs.length, countOnly.count, countOnly.more], [0, 4, false]);
  });

  test('reads at a past revision; header revision stays current', async () => {
    await t.del('c');
    const past = await t.get({ key: ZERO, rangeEnd: ZERO, revision: 3 });
    assert.deepEqual(past.kvs.map(summary), ['a=5 c2 m2 v1', 'b=2 c3 m3 v1']);
    assert.equal(past.revision, 7);
    const beforeDelete = await t.get({ key: bytes('c'), revision: 6 });
    assert.deepEqual(beforeDelete.kvs.map(summary), ['c=3 c4 m4 v1']);
    assert.equal((await t.get({ key: bytes('c') })).count, 0);
    assert.deepEqual(await t.store.range({ key: bytes('a'), revision: 8 }), { ok: false, error: 'future-revision' });
  });
});

describe('compaction', () => {
  test('reads below the compact revision fail; the latest version alive at R survives', async () => {
    await t.put('a', '1'); // 2
    await t.put('a', '2'); // 3
    await t.put('b', '1'); // 4
    await t.del('b'); // 5
    await t.put('c', '1'); // 6
    await t.put('a', '3'); // 7
    const compacted = await t.compact(6);
    assert.ok(compacted.ok);
    assert.equal(compacted.value.revision, 7, 'compaction does not bump the revision');
    await compacted.value.physicallyDone;
    assert.equal(t.store.currentRevision(), 7);
    assert.equal(t.store.compactRevision(), 6);
    assert.deepEqual(await t.store.range({ key: bytes('a'), revision: 5 }), { ok: false, error: 'compacted' });
    const atCompact = await t.get({ key: ZERO, rangeEnd: ZERO, revision: 6 });
    assert.deepEqual(atCompact.kvs.map(summary), ['a=2 c2 m3 v2', 'c=1 c6 m6 v1']);
    assert.deepEqual((await t.get({ key: ZERO, rangeEnd: ZERO })).kvs.map(summary), ['a=3 c2 m7 v3', 'c=1 c6 m6 v1']);
    assert.equal(t.store.indexedKeyCount(), 2, 'b (deleted at 5) left the index');
    assert.deepEqual(await t.compact(6), { ok: false, error: 'compacted' });
    assert.deepEqual(await t.compact(5), { ok: false, error: 'compacted' });
    assert.deepEqual(await t.compact(8), { ok: false, error: 'future-revision' });
    // The same after a reopen (index rebuilt from what is left on disk).
    await t.reopen();
    assert.deepEqual((await t.get({ key: ZERO, rangeEnd: ZERO, revision: 6 })).kvs.map(summary), ['a=2 c2 m3 v2', 'c=1 c6 m6 v1']);
    assert.equal(t.store.compactRevision(), 6);
    assert.equal(t.store.currentRevision(), 7);
  });

  test('an empty store can be compacted at its current revision 1, once (etcd)', async () => {
    const compacted = await t.compact(1);
    assert.ok(compacted.ok);
    assert.equal(compacted.value.revision, 1, 'compaction does not bump the revision');
    await compacted.value.physicallyDone;
    assert.equal(t.store.compactRevision(), 1);
    assert.deepEqual(await t.compact(1), { ok: false, error: 'compacted' });
    assert.deepEqual(await t.compact(2), { ok: false, error: 'future-revision' });
    assert.equal((await t.get({ key: bytes('a'), revision: 1 })).count, 0, 'a read at the compact revision is allowed');
    assert.equal((await t.put('a', '1')).revision, 2);
    await t.reopen();
    assert.equal(t.store.compactRevision(), 1);
    assert.equal(t.store.currentRevision(), 2);
  });

  test('compacting everything away keeps the current revision', async () => {
    await t.put('a', '1');
    await t.del('a');
    const compacted = await t.compact(3);
    assert.ok(compacted.ok);
    await compacted.value.physicallyDone;
    await t.reopen();
    assert.equal(t.store.currentRevision(), 3);
    assert.equal(t.store.indexedKeyCount(), 0);
    assert.equal((await t.put('a', 'again')).revision, 4);
  });
});

describe('rebuilding the key index at open', () => {
  test('a worker-thread scan rebuilds the same store as a scan on the calling thread', async () => {
    // Puts, overwrites, a Txn, deletes, leases and a compaction: every kind of record the scan reads.
    for (let i = 0; i < 300; i++) await t.put(`key-${String(i).padStart(3, '0')}`, `value-${i}`, i % 50 === 0 ? { lease: BigInt(1 + (i % 3)) } : {});
    for (let i = 0; i < 300; i += 7) await t.put(`key-${String(i).padStart(3, '0')}`, `second-${i}`);
    await t.txn({ success: [{ kind: 'put', request: { key: bytes('txn-a'), value: bytes('1') } }, { kind: 'deleteRange', request: { key: bytes('key-010'), rangeEnd: bytes('key-020') } }] });
    const middle = t.store.currentRevision();
    await t.compact(150);
    for (let i = 0; i < 300; i += 11) await t.del(`key-${String(i).padStart(3, '0')}`);
    await t.store.close();

    const describeStore = async (levelThread: 'worker' | 'caller') => {
      const store = await MvccStore.open(t.directory, { levelThread });
      try {
        const at = async (revision: number) => {
          const outcome = await store.range({ key: ZERO, rangeEnd: ZERO, revision });
          assert.ok(outcome.ok);
          return outcome.value.kvs.map((kv) => `${summary(kv)} l${kv.lease}`);
        };
        return {
          revision: store.currentRevision(),
          compacted: store.compactRevision(),
          keys: store.indexedKeyCount(),
          now: await at(0),
          middle: await at(middle),
          compactedAt: await at(150),
          leases: [1n, 2n, 3n].map((lease) => store.leaseKeys(lease).map(String)),
        };
      } finally {
        await store.close();
      }
    };
    const byCaller = await describeStore('caller');
    const byWorker = await describeStore('worker');
    assert.deepEqual(byWorker, byCaller);
    // The comparison covers something: live and deleted keys, history, and leased keys.
    assert.equal(byCaller.now.length, 300 - 10 - Math.ceil(300 / 11) + 1 + 1);
    assert.ok(byCaller.middle.length > byCaller.now.length);
    assert.deepEqual(byCaller.leases.map((keys) => keys.length), [1, 2, 2]);
    t.store = await MvccStore.open(t.directory);
  });
});

describe('applying through Raft', () => {
  test('entries at or below the applied index are skipped, also after reopen', async () => {
    await t.put('a', '1'); // index 1
    await t.put('a', '2'); // index 2
    await t.reopen();
    assert.equal(t.store.appliedIndex(), 2);
    const replay = await t.store.applyBatch([
      { index: 1, request: { kind: 'put', request: { key: bytes('a'), value: bytes('1') } } },
      { index: 2, request: { kind: 'put', request: { key: bytes('a'), value: bytes('2') } } },
      { index: 3, request: { kind: 'put', request: { key: bytes('a'), value: bytes('3') } } },
      { index: 4 },
    ]);
    assert.deepEqual(replay.map((result) => result.skipped), [true, true, false, false]);
    assert.deepEqual((await t.get({ key: bytes('a') })).kvs.map(summary), ['a=3 c2 m4 v3']);
    assert.equal(t.store.appliedIndex(), 4);
    await t.reopen();
    assert.equal(t.store.appliedIndex(), 4);
    assert.equal(t.store.currentRevision(), 4);
  });

  test('a batch applies many revisions with one write and notifies listeners in order', async () => {
    const seen: Array<[number, string[]]> = [];
    t.store.subscribe((revision, events) => seen.push([revision, events.map((event) => event.kv.key.toString())]));
    await t.store.applyBatch([
      { index: 1, request: { kind: 'put', request: { key: bytes('x'), value: bytes('1') } } },
      { index: 2, request: { kind: 'deleteRange', request: { key: bytes('nothing') } } },
      { index: 3, request: { kind: 'txn', request: { success: [{ kind: 'put', request: { key: bytes('y'), value: bytes('2') } }, { kind: 'put', request: { key: bytes('z'), value: bytes('3') } }] } } },
    ]);
    assert.deepEqual(seen, [
      [2, ['x']],
      [3, ['y', 'z']],
    ]);
  });

  test('an apply while another is in progress is a bug', async () => {
    const first = t.store.apply(1, { kind: 'put', request: { key: bytes('a'), value: bytes('1') } });
    await assert.rejects(t.store.apply(2, { kind: 'put', request: { key: bytes('b'), value: bytes('1') } }), /another apply/);
    await first;
  });

  test('100k keys: index memory and reopen time', async () => {
    const keyCount = 100_000;
    const value = Buffer.alloc(100, 0x61);
    const before = process.memoryUsage().heapUsed;
    for (let start = 0; start < keyCount; start += 5_000) {
      const inputs = [];
      for (let offset = 0; offset < 5_000; offset += 1) {
        const number = start + offset;
        inputs.push({ index: number + 1, request: { kind: 'put' as const, request: { key: bytes(`key/${String(number).padStart(6, '0')}`), value } } });
      }
      await t.store.applyBatch(inputs);
    }
    const after = process.memoryUsage().heapUsed;
    const started = process.hrtime.bigint();
    await t.reopen();
    const reopenMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(t.store.currentRevision(), keyCount + 1);
    assert.equal((await t.get({ key: bytes('key/'), rangeEnd: prefixRangeEnd(bytes('key/')), countOnly: true })).count, keyCount);
    const middle = await t.get({ key: bytes('key/050000') });
    assert.equal(middle.kvs[0]!.modRevision, 50_002);
    // Informational figures (heap includes garbage; an upper bound for the index + value cache).
    console.log(`# 100k keys x 100-byte values: heap growth ~${((after - before) / 1024 / 1024).toFixed(1)} MiB, reopen ${reopenMs.toFixed(0)} ms`);
  });
});

describe('write-behind (level writes follow the apply in the background)', () => {
  /** Holds every level batch of the store until released; returns the release. */
  function gateLevelWrites(store: object): { release: () => void; held: () => number } {
    const db = (store as { db: { batch: (operations: unknown[]) => Promise<void> } }).db;
    const original = db.batch.bind(db);
    const waiting: Array<() => void> = [];
    let open = false;
    db.batch = async (operations: unknown[]) => {
      if (!open) await new Promise<void>((resolve) => waiting.push(resolve));
      return original(operations);
    };
    return {
      release: () => {
        open = true;
        for (const resume of waiting.splice(0)) resume();
      },
      held: () => waiting.length,
    };
  }

  test('reads in the past, history and a reopen see applies that level does not hold yet', async () => {
    const gate = gateLevelWrites(t.store);
    for (let i = 1; i <= 20; i++) await t.put(`k${i % 3}`, `v${i}`);
    assert.equal(gate.held(), 0, 'the writer hands its first batch to level only in the check phase, after the applies');
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(gate.held(), 1, 'the writer is blocked on its first batch');
    for (let i = 21; i <= 22; i++) await t.put(`k${i % 3}`, `v${i}`);
    assert.equal(gate.held(), 1, 'later applies queue behind it');
    assert.equal(t.store.currentRevision(), 23, 'applies are visible at once');
    // Every past version of k1 (revisions 2, 5, 8, ..., 23) comes from memory, not level.
    for (let revision = 2; revision <= 23; revision += 3) {
      const [kv] = (await t.get({ key: bytes('k1'), revision })).kvs;
      assert.equal(kv?.value.toString(), `v${revision - 1}`);
    }
    // Reads that iterate level wait for the writer instead of missing records.
    let historyDone = false;
    const history = t.store.history(resolveRange(bytes('k'), prefixRangeEnd(bytes('k'))), 2, 1000, false).then((outcome) => {
      historyDone = true;
      return outcome;
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(historyDone, false, 'history waits for the writer');
    gate.release();
    const outcome = await history;
    assert.ok(outcome.ok);
    assert.equal(outcome.value.events.length, 22);
    await t.reopen();
    assert.equal(t.store.appliedIndex(), 22);
    assert.equal(t.store.currentRevision(), 23);
    assert.equal((await t.get({ key: bytes('k2'), revision: 3 })).kvs[0]?.value.toString(), 'v2');
  });

  test('a writer far behind makes applies wait (bounded memory), and they resume once it catches up', async () => {
    const gate = gateLevelWrites(t.store);
    let applied = 0;
    const writer = (async () => {
      for (let i = 1; i <= 200; i++) {
        await t.put('k', `v${i}`);
        applied = i;
      }
    })();
    for (let turn = 0; turn < 50; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.ok(applied < 200 && applied >= 64, `applies stopped at the backpressure bound (applied ${applied})`);
    gate.release();
    await writer;
    await t.store.flush();
    await t.reopen();
    assert.equal(t.store.appliedIndex(), 200);
    assert.equal((await t.get({ key: bytes('k') })).kvs[0]?.value.toString(), 'v200');
  });

  test('writeSnapshot refuses to pin an image before flush', async () => {
    const gate = gateLevelWrites(t.store);
    await t.put('a', '1');
    assert.throws(() => t.store.writeSnapshot(), /flush\(\) first/);
    gate.release();
    await t.store.flush();
    assert.doesNotThrow(() => t.store.writeSnapshot());
  });
});
