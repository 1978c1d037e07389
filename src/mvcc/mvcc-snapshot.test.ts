/**
 * Snapshot image round trip (MvccStore.writeSnapshot → restoreSnapshot) with 100k keys and history,
 * plus the image decoder's refusals (damaged frame, wrong index, truncation).
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MvccSnapshotImageError } from './mvcc-snapshot-image';
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
  await source.put('key/000001', 'updated'); // 100001
  await source.del('key/000002'); // 100002
  await source.put('key/000003', 'later'); // 100003
  const compacted = await source.compact(100_001);
  assert.ok(compacted.ok);
  await compacted.value.physicallyDone;
  image = [];
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
    assert.equal(target.store.currentRevision(), 100_003);
    assert.equal(target.store.compactRevision(), 100_001);
    assert.deepEqual(await target.keys({ key: bytes('stale') }), []);
    const all = await target.get({ key: ZERO, rangeEnd: ZERO, countOnly: true });
    assert.equal(all.count, 99_999);
    const sourcePast = await source.get({ key: bytes('key/00000'), rangeEnd: bytes('key/00001'), revision: 100_002 });
    const targetPast = await target.get({ key: bytes('key/00000'), rangeEnd: bytes('key/00001'), revision: 100_002 });
    assert.deepEqual(targetPast, sourcePast);
    assert.deepEqual(await target.store.range({ key: bytes('key/000001'), revision: 100_000 }), { ok: false, error: 'compacted' });
    // A watcher of the replaced store is desynced; its next revision (2) is below the restored
    // compact revision, so it ends 'compacted' instead of silently skipping history.
    assert.deepEqual(await watcher.next(), { kind: 'compacted', compactRevision: 100_001 });
    hub.close();
    // Reopen: the restored store is durable.
    await target.reopen();
    assert.equal(target.store.currentRevision(), 100_003);
    assert.equal((await target.get({ key: bytes('key/000001') })).kvs[0]!.value.toString(), 'updated');
    assert.equal((await target.put('key/000001', 'next')).revision, 100_004);
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
    assert.equal(target.store.currentRevision(), 100_003);
  } finally {
    await target.destroy();
  }
});
