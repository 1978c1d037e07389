/**
 * Snapshot image round trip (MvccStore.writeSnapshot → restoreSnapshot) with 100k keys and history,
 * plus the image decoder's refusals (damaged frame, wrong index, truncation, records out of order,
 * malformed or beyond the image's revision), and what an
 * interrupted, refused or empty restore leaves: an empty store at revision 1, as etcd's.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MvccSnapshotImageError, writeSnapshotImage } from './mvcc-snapshot-image';
import { encodeRecord, recordKey } from './record-codec';
import { packRecords } from '../storage/level-worker';
import { bytes, TestStore } from './test-support';
import { WatchHub } from './watch-hub';

const ZERO = Buffer.from([0]);
let source: TestStore;
let image: Buffer[];

async function* chunksOf(parts: readonly Buffer[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part;
}

before(async () => {
  source = await TestStore.create();
  const value = Buffer.alloc(64, 0x62);
  for (let start = 0; start < 100_000; start += 10_000) {
    const inputs = [];
    for (let offset = 0; offset < 10_000; offset += 1) {
      source.index += 1;
      inputs.push({ index: source.index, request: { kind: 'put' as const, request: { key: bytes(`key/${String(start + offset).padStart(6, '0')}`), value } } });
    }
    await source.store.applyBatch(inputs);
  }
  // The 100k puts are revisions 2..100001 (an etcd store starts at revision 1).
  await source.put('key/000001', 'updated'); // 100002
  await source.del('key/000002'); // 100003
  await source.put('key/000003', 'later'); // 100004
  const compacted = await source.compact(100_002);
  assert.ok(compacted.ok);
  await compacted.value.physicallyDone;
  image = [];
  await source.store.flush();
  for await (const chunk of source.store.writeSnapshot()) image.push(Buffer.from(chunk));
});

after(async () => {
  await source.destroy();
});

test('a 100k-key store survives a snapshot round trip, history and all', async () => {
  const target = await TestStore.create();
  try {
    await target.put('stale', 'x');
    const hub = new WatchHub(target.store);
    const watcher = hub.watch({ key: bytes('key/000003') });
    await target.store.restoreSnapshot(chunksOf(image), source.store.appliedIndex());
    assert.equal(target.store.appliedIndex(), source.store.appliedIndex());
    assert.equal(target.store.currentRevision(), 100_004);
    assert.equal(target.store.compactRevision(), 100_002);
    assert.deepEqual(await target.keys({ key: bytes('stale') }), []);
    const all = await target.get({ key: ZERO, rangeEnd: ZERO, countOnly: true });
    assert.equal(all.count, 99_999);
    const sourcePast = await source.get({ key: bytes('key/00000'), rangeEnd: bytes('key/00001'), revision: 100_003 });
    const targetPast = await target.get({ key: bytes('key/00000'), rangeEnd: bytes('key/00001'), revision: 100_003 });
    assert.deepEqual(targetPast, sourcePast);
    assert.deepEqual(await target.store.range({ key: bytes('key/000001'), revision: 100_001 }), { ok: false, error: 'compacted' });
    // A watcher of the replaced store is desynced; its next revision (3) is below the restored
    // compact revision, so it ends 'compacted' instead of silently skipping history.
    assert.deepEqual(await watcher.next(), { kind: 'compacted', compactRevision: 100_002 });
    hub.close();
    // Reopen: the restored store is durable.
    await target.reopen();
    assert.equal(target.store.currentRevision(), 100_004);
    assert.equal((await target.get({ key: bytes('key/000001') })).kvs[0]!.value.toString(), 'updated');
    assert.equal((await target.put('key/000001', 'next')).revision, 100_005);
  } finally {
    await target.destroy();
  }
});

test('a damaged, truncated or misplaced image is refused with a reason', async () => {
  const target = await TestStore.create();
  try {
    const reasonOf = async (parts: Buffer[], index: number): Promise<string> => {
      try {
        await target.store.restoreSnapshot(chunksOf(parts), index);
        return 'ok';
      } catch (error) {
        assert.ok(error instanceof MvccSnapshotImageError);
        return error.reason;
      }
    };
    const whole = Buffer.concat(image);
    const damaged = Buffer.from(whole);
    damaged[whole.length >> 1] = damaged[whole.length >> 1]! ^ 0xff;
    assert.equal(await reasonOf([damaged], source.store.appliedIndex()), 'checksum-mismatch');
    assert.equal(await reasonOf([whole.subarray(0, whole.length - 10)], source.store.appliedIndex()), 'truncated');
    assert.equal(await reasonOf([whole], source.store.appliedIndex() + 1), 'index-mismatch');
    assert.equal(await reasonOf([Buffer.concat([whole, Buffer.from([1])])], source.store.appliedIndex()), 'trailing-bytes');
    // Odd chunk boundaries are fine.
    const pieces: Buffer[] = [];
    for (let offset = 0; offset < whole.length; offset += 7_777) pieces.push(whole.subarray(offset, offset + 7_777));
    assert.equal(await reasonOf(pieces, source.store.appliedIndex()), 'ok');
    assert.equal(target.store.currentRevision(), 100_004);
  } finally {
    await target.destroy();
  }
});

test('records out of order (also across frames), repeated, malformed or beyond the revision are refused', async () => {
  const target = await TestStore.create();
  try {
    // 400 records of about 300 bytes: the image holds two 64 KiB frames and more.
    const record = (main: number): [Buffer, Buffer] => [
      recordKey(main, 0),
      encodeRecord(false, { key: bytes(`k${main}`), createRevision: main, version: 1, lease: 0n, value: Buffer.alloc(260, 0x61) }),
    ];
    const ascending = Array.from({ length: 400 }, (_, i) => record(i + 2));
    const reasonOf = async (records: Array<[Buffer, Buffer]>, revision = 1_000): Promise<string> => {
      const parts: Buffer[] = [];
      const source = (async function* () {
        yield { bytes: packRecords(records), count: records.length };
      })();
      for await (const chunk of writeSnapshotImage({ appliedIndex: 7, revision, compactRevision: 0 }, source)) parts.push(Buffer.from(chunk));
      try {
        await target.store.restoreSnapshot(chunksOf(parts), 7);
        return 'ok';
      } catch (error) {
        assert.ok(error instanceof MvccSnapshotImageError, String(error));
        return error.reason;
      }
    };
    assert.equal(await reasonOf(ascending), 'ok');
    assert.equal(target.store.currentRevision(), 1_000);
    assert.equal((await target.get({ key: bytes('k401') })).kvs[0]!.value.length, 260);
    assert.equal(await reasonOf([...ascending, record(5)]), 'out-of-order'); // behind a key of the first frame
    assert.equal(await reasonOf([...ascending.slice(0, 10), ascending[9]!, ...ascending.slice(10)]), 'out-of-order'); // repeated
    assert.equal(await reasonOf([...ascending, [Buffer.concat([recordKey(999, 0), Buffer.from([0])]), record(999)[1]]]), 'malformed-record'); // key length
    const badFormat = Buffer.from(record(999)[1]);
    badFormat[0] = 9;
    assert.equal(await reasonOf([...ascending, [recordKey(999, 0), badFormat]]), 'malformed-record');
    assert.equal(await reasonOf(ascending, 300), 'malformed-record'); // records at revisions up to 401
    assert.deepEqual([target.store.appliedIndex(), target.store.currentRevision()], [0, 1]);
  } finally {
    await target.destroy();
  }
});

for (const levelThread of ['worker', 'caller'] as const) {
  test(`an image read on the ${levelThread} thread is the store at the call, though writes and a physical compaction follow at once`, async () => {
    const store = await TestStore.create({ levelThread });
    const target = await TestStore.create();
    try {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 200; i++) await store.put(`k${String(i).padStart(3, '0')}`, `round-${round}`);
      }
      await store.store.flush();
      const pinnedAt = store.store.currentRevision();
      const everything = { key: ZERO, rangeEnd: ZERO };
      const expectedNow = await store.get(everything);
      const expectedPast = await store.get({ ...everything, revision: 250 });
      const image = store.store.writeSnapshot();
      // Right after the call: new revisions, then a compaction that deletes the first two
      // rounds' records from level, waited for.
      for (let i = 0; i < 50; i++) await store.put(`k${String(i).padStart(3, '0')}`, 'after');
      await store.put('new-key', 'after');
      const compaction = await store.compact(store.store.currentRevision());
      assert.ok(compaction.ok);
      await compaction.value.physicallyDone;
      const parts: Buffer[] = [];
      for await (const chunk of image) parts.push(Buffer.from(chunk));
      await target.store.restoreSnapshot(chunksOf(parts), store.store.appliedIndex() - 52);
      assert.equal(target.store.currentRevision(), pinnedAt);
      assert.deepEqual(await target.get(everything), expectedNow);
      assert.deepEqual(await target.get({ ...everything, revision: 250 }), expectedPast);
      assert.equal(expectedPast.kvs.length, 200);
    } finally {
      await store.destroy();
      await target.destroy();
    }
  });
}

test('an interrupted or refused restore leaves an empty store at revision 1', async () => {
  const target = await TestStore.create();
  try {
    await target.put('stale', 'x');
    const whole = Buffer.concat(image);
    await assert.rejects(target.store.restoreSnapshot(chunksOf([whole.subarray(0, whole.length >> 1)]), source.store.appliedIndex()), MvccSnapshotImageError);
    assert.deepEqual([target.store.appliedIndex(), target.store.currentRevision()], [0, 1]);
    // Reopen: load() finds the restore unfinished and starts empty, still at revision 1.
    await target.reopen();
    assert.deepEqual([target.store.appliedIndex(), target.store.currentRevision(), target.store.compactRevision()], [0, 1, 0]);
    assert.equal((await target.get({ key: ZERO, rangeEnd: ZERO, countOnly: true })).count, 0);
    assert.equal((await target.put('fresh', 'y')).revision, 2);
  } finally {
    await target.destroy();
  }
});

test('an empty image, also one with revision 0 in its header, restores to revision 1', async () => {
  const empty = await TestStore.create();
  const target = await TestStore.create();
  try {
    const emptyImage: Buffer[] = [];
    for await (const chunk of empty.store.writeSnapshot()) emptyImage.push(Buffer.from(chunk));
    await target.put('stale', 'x');
    await target.store.restoreSnapshot(chunksOf(emptyImage), 0);
    assert.deepEqual([target.store.appliedIndex(), target.store.currentRevision()], [0, 1]);
    assert.deepEqual(await target.keys({ key: bytes('stale') }), []);
    // An image written when an empty store was at revision 0 (before etcd's numbering).
    const noRecords = (async function* () {})();
    const oldImage: Buffer[] = [];
    for await (const chunk of writeSnapshotImage({ appliedIndex: 0, revision: 0, compactRevision: 0 }, noRecords)) oldImage.push(Buffer.from(chunk));
    await target.put('stale', 'x');
    await target.store.restoreSnapshot(chunksOf(oldImage), 0);
    assert.equal(target.store.currentRevision(), 1);
    assert.equal((await target.put('fresh', 'y')).revision, 2);
    await target.reopen();
    assert.equal(target.store.currentRevision(), 2);
  } finally {
    await empty.destroy();
    await target.destroy();
  }
});
