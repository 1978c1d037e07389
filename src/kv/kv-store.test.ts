/**
 * Tests of KvStore against real LevelDB directories: apply and read, idempotent replay across
 * reopen, membership, streamed snapshots of 100,000 keys, rejection of damaged images, and the
 * crash points of a restore.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Level } from 'level';
import type { Command } from './command';
import { KvStore, SimulatedCrashError, type ApplyEntry, type KvStoreOptions } from './kv-store';
import { SnapshotImageError } from './snapshot-image';
import { APPLIED_KEY, readU64 } from './kv-layout';

let root = '';
let counter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'raftkv-kv-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function freshDir(): string {
  counter += 1;
  return join(root, `store-${counter}`);
}

const text = (value: string): Uint8Array => Buffer.from(value, 'utf8');
const put = (key: string, value: string, requestId = 1n): Command => ({ requestId, op: 'put', key, value: text(value) });
const del = (key: string, requestId = 1n): Command => ({ requestId, op: 'delete', key });

async function getText(store: KvStore, key: string): Promise<string | undefined> {
  const value = await store.get(key);
  return value === undefined ? undefined : Buffer.from(value).toString('utf8');
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(Uint8Array.from(chunk));
  return chunks;
}

async function* replay(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

async function* rechunk(chunks: readonly Uint8Array[], size: number): AsyncGenerator<Uint8Array> {
  const whole = Buffer.concat(chunks);
  for (let offset = 0; offset < whole.length; offset += size) yield whole.subarray(offset, offset + size);
}

/** Fills a store with `count` keys in applies of 1,000 entries (one put each), from index 1. */
async function fill(store: KvStore, count: number, valueOf: (index: number) => string): Promise<void> {
  let index = store.appliedIndex();
  for (let start = 0; start < count; start += 1000) {
    const batch: ApplyEntry[] = [];
    for (let n = start; n < Math.min(count, start + 1000); n += 1) {
      index += 1;
      batch.push({ index, commands: [put(`key/${n.toString().padStart(7, '0')}`, valueOf(n))] });
    }
    await store.applyEntries(batch);
  }
}

/** Compares two closed store directories entry by entry (all keys, metadata included). */
async function assertSameDatabase(dirA: string, dirB: string): Promise<number> {
  const a = new Level<Buffer, Buffer>(dirA, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const b = new Level<Buffer, Buffer>(dirB, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const iteratorA = a.iterator();
  const iteratorB = b.iterator();
  let compared = 0;
  try {
    for (;;) {
      const [batchA, batchB] = await Promise.all([iteratorA.nextv(1000), iteratorB.nextv(1000)]);
      assert.equal(batchA.length, batchB.length, `databases differ in length after ${compared} entries`);
      if (batchA.length === 0) return compared;
      for (let index = 0; index < batchA.length; index += 1) {
        const [keyA, valueA] = batchA[index]!;
        const [keyB, valueB] = batchB[index]!;
        assert.equal(keyA.toString('hex'), keyB.toString('hex'));
        assert.equal(Buffer.compare(valueA, valueB), 0, `value of ${keyA.toString('hex')} differs`);
        compared += 1;
      }
    }
  } finally {
    await iteratorA.close();
    await iteratorB.close();
    await a.close();
    await b.close();
  }
}

async function openWithState(options: KvStoreOptions = {}): Promise<{ dir: string; store: KvStore }> {
  const dir = freshDir();
  const store = await KvStore.open(dir, options);
  await store.applyEntries([
    { index: 1, commands: [], members: [{ kind: 'add', id: 1n, peerUrl: 'http://old-1' }] },
    { index: 2, commands: [put('old', 'state'), put('shared', 'old')] },
  ]);
  return { dir, store };
}

/** An image of a store holding `keys` keys (new/<n>), members 7 and 8, removed 9; at index `index`. */
async function imageOf(keys: number): Promise<{ chunks: Uint8Array[]; index: number }> {
  const dir = freshDir();
  const store = await KvStore.open(dir);
  await store.applyEntries([
    {
      index: 1,
      commands: [put('shared', 'new')],
      members: [
        { kind: 'add', id: 7n, peerUrl: 'http://seven' },
        { kind: 'add-learner', id: 8n, peerUrl: 'http://eight' },
        { kind: 'add', id: 9n },
        { kind: 'remove', id: 9n },
      ],
    },
  ]);
  await fill(store, keys, (n) => `value-${n}`);
  const stream = store.writeSnapshot();
  const chunks = await collect(stream);
  const index = stream.appliedIndex;
  await store.close();
  return { chunks, index };
}

describe('KvStore apply and read', () => {
  it('starts empty at applied index 0', async () => {
    const store = await KvStore.open(freshDir());
    assert.equal(store.appliedIndex(), 0);
    assert.equal(store.keyCount(), 0);
    assert.equal(store.members().size, 0);
    assert.equal(store.removedIds().size, 0);
    assert.equal(await store.get('anything'), undefined);
    await store.close();
  });

  it('puts, overwrites and deletes through applyEntries, counting keys exactly', async () => {
    const store = await KvStore.open(freshDir());
    await store.applyEntries([
      { index: 1, commands: [put('a', '1'), put('b', '2')] },
      { index: 2, commands: [] },
      { index: 3, commands: [put('a', '1b'), del('missing')] },
    ]);
    assert.equal(await getText(store, 'a'), '1b');
    assert.equal(await getText(store, 'b'), '2');
    assert.equal(store.keyCount(), 2);
    assert.equal(store.appliedIndex(), 3);
    await store.applyEntries([{ index: 4, commands: [del('a'), put('c', 'x'), del('c'), put('', 'empty key'), put('d', '')] }]);
    assert.equal(await store.get('a'), undefined);
    assert.equal(await store.get('c'), undefined);
    assert.equal(await getText(store, ''), 'empty key');
    assert.deepEqual(await store.get('d'), new Uint8Array(0));
    assert.equal(store.keyCount(), 3);
    assert.ok((await store.approximateBytes()) >= 0);
    await store.close();
  });

  it('skips entries at or below the applied index and keeps state across reopen', async () => {
    const dir = freshDir();
    const store = await KvStore.open(dir);
    await store.applyEntries([{ index: 5, commands: [put('k', 'first')] }]);
    await store.applyEntries([
      { index: 4, commands: [put('k', 'stale'), put('z', 'stale')] },
      { index: 5, commands: [put('k', 'replayed')] },
    ]);
    assert.equal(await getText(store, 'k'), 'first');
    assert.equal(await store.get('z'), undefined);
    await store.applyEntries([
      { index: 5, commands: [put('k', 'replayed')] },
      { index: 6, commands: [put('k', 'second')] },
    ]);
    assert.equal(await getText(store, 'k'), 'second');
    await store.close();

    const reopened = await KvStore.open(dir);
    assert.equal(reopened.appliedIndex(), 6);
    assert.equal(reopened.keyCount(), 1);
    assert.equal(await getText(reopened, 'k'), 'second');
    await reopened.applyEntries([{ index: 6, commands: [del('k')] }]);
    assert.equal(await getText(reopened, 'k'), 'second');
    await reopened.close();
  });

  it('throws when indexes within a call do not increase', async () => {
    const store = await KvStore.open(freshDir());
    assert.throws(() => store.applyEntries([{ index: 2, commands: [] }, { index: 2, commands: [] }]));
    assert.throws(() => store.applyEntries([{ index: 3, commands: [] }, { index: 1, commands: [] }]));
    assert.throws(() => store.applyEntries([{ index: 0, commands: [] }]));
    assert.equal(store.appliedIndex(), 0);
    await store.close();
  });

  it('queues concurrent applies in call order', async () => {
    const store = await KvStore.open(freshDir());
    const pending = [1, 2, 3, 4].map((index) => store.applyEntries([{ index, commands: [put('k', `v${index}`)] }]));
    await Promise.all(pending);
    assert.equal(await getText(store, 'k'), 'v4');
    assert.equal(store.appliedIndex(), 4);
    await store.close();
  });
});

describe('KvStore applied index without effects', () => {
  it('entries that change nothing advance the applied index in memory only; flush makes it durable', async () => {
    const dir = freshDir();
    const store = await KvStore.open(dir);
    await store.applyEntries([{ index: 1, commands: [put('a', '1')] }]);
    await store.applyEntries([{ index: 2, commands: [] }, { index: 3, commands: [] }]);
    assert.equal(store.appliedIndex(), 3);
    // A crash now (simulated by reading LevelDB directly) finds index 1: replaying 2 and 3 is a no-op.
    const db = (store as unknown as { db: Level<Buffer, Buffer> }).db;
    const durable = async () => readU64((await db.get(Buffer.from(APPLIED_KEY)))!, 'applied');
    assert.equal(await durable(), 1);
    await store.flush();
    assert.equal(await durable(), 3);
    await store.close();
    const reopened = await KvStore.open(dir);
    assert.equal(reopened.appliedIndex(), 3);
    assert.equal(await getText(reopened, 'a'), '1');
    await reopened.close();
  });
});

describe('KvStore membership', () => {
  it('records members and removed IDs beside the data and reloads them at open', async () => {
    const dir = freshDir();
    const store = await KvStore.open(dir);
    const big = (1n << 64n) - 2n;
    await store.applyEntries([
      { index: 1, commands: [], members: [{ kind: 'add', id: 1n, peerUrl: 'http://one' }] },
      { index: 2, commands: [put('user', 'data')], members: [{ kind: 'add-learner', id: big, peerUrl: 'http://big' }] },
      { index: 3, commands: [], members: [{ kind: 'add', id: 3n }, { kind: 'promote', id: big }] },
      { index: 4, commands: [], members: [{ kind: 'remove', id: 3n }] },
      { index: 5, commands: [], members: [{ kind: 'add', id: 3n, peerUrl: 'http://rejoin' }] },
    ]);
    const expectState = (subject: KvStore): void => {
      assert.deepEqual(
        subject.members(),
        new Map([
          [1n, { peerUrl: 'http://one', isLearner: false }],
          [big, { peerUrl: 'http://big', isLearner: false }],
        ]),
      );
      assert.deepEqual(subject.removedIds(), new Set([3n]));
      assert.equal(subject.keyCount(), 1, 'membership is not visible as user keys');
      assert.equal(subject.appliedIndex(), 5);
    };
    expectState(store);
    store.members().clear();
    expectState(store);
    await store.close();
    const reopened = await KvStore.open(dir);
    expectState(reopened);
    await reopened.applyEntries([{ index: 6, commands: [], members: [{ kind: 'add-learner', id: 1n }] }]);
    assert.deepEqual(reopened.members().get(1n), { peerUrl: 'http://one', isLearner: true });
    await reopened.close();
  });
});

describe('KvStore snapshots', () => {
  it('streams 100,000 keys in frames and restores them into another store identically', async () => {
    const sourceDir = freshDir();
    const source = await KvStore.open(sourceDir);
    await source.applyEntries([
      { index: 1, commands: [], members: [{ kind: 'add', id: 11n, peerUrl: 'http://a' }, { kind: 'add', id: 12n, peerUrl: 'http://b' }] },
      { index: 2, commands: [], members: [{ kind: 'remove', id: 12n }, { kind: 'add-learner', id: 13n, peerUrl: 'http://c' }] },
    ]);
    await fill(source, 100_000, (n) => `value-${n}-${'x'.repeat(n % 50)}`);
    const stream = source.writeSnapshot();
    assert.equal(stream.appliedIndex, 100_002);
    let chunks = 0;
    let largestChunkBytes = 0;
    async function* observed(): AsyncGenerator<Uint8Array> {
      for await (const chunk of stream) {
        chunks += 1;
        largestChunkBytes = Math.max(largestChunkBytes, chunk.byteLength);
        yield chunk;
      }
    }
    const targetDir = freshDir();
    const target = await KvStore.open(targetDir);
    await target.applyEntries([{ index: 1, commands: [put('doomed', 'gone after restore')] }]);
    await target.restoreSnapshot(observed(), 100_002);
    assert.ok(chunks > 50, `image came in ${chunks} chunks`);
    assert.ok(largestChunkBytes <= 64 * 1024 + 8, `largest chunk ${largestChunkBytes} bytes`);
    assert.equal(target.appliedIndex(), 100_002);
    assert.equal(target.keyCount(), 100_000);
    assert.equal(await target.get('doomed'), undefined);
    assert.equal(await getText(target, 'key/0099999'), `value-99999-${'x'.repeat(99_999 % 50)}`);
    assert.deepEqual(target.members(), source.members());
    assert.deepEqual(target.removedIds(), new Set([12n]));
    await source.close();
    await target.close();
    assert.equal(existsSync(`${targetDir}.restore`) || existsSync(`${targetDir}.old`), false);
    const compared = await assertSameDatabase(sourceDir, targetDir);
    assert.equal(compared, 100_000 + 3 + 2 + 1);
  });

  it('captures the state at the call, not at the time of reading', async () => {
    const store = await KvStore.open(freshDir());
    await store.applyEntries([{ index: 1, commands: [put('before', 'yes'), put('changed', 'old')] }]);
    const stream = store.writeSnapshot();
    await store.applyEntries([{ index: 2, commands: [put('after', 'yes'), put('changed', 'new'), del('before')] }]);
    const chunks = await collect(stream);
    const target = await KvStore.open(freshDir());
    await target.restoreSnapshot(replay(chunks), 1);
    assert.equal(await getText(target, 'before'), 'yes');
    assert.equal(await getText(target, 'changed'), 'old');
    assert.equal(await target.get('after'), undefined);
    assert.equal(target.appliedIndex(), 1);
    assert.throws(() => stream[Symbol.asyncIterator](), /once/);
    await store.close();
    await target.close();
  });

  it('refuses to cut an image while an apply is pending', async () => {
    const store = await KvStore.open(freshDir());
    const pending = store.applyEntries([{ index: 1, commands: [put('k', 'v')] }]);
    assert.throws(() => store.writeSnapshot(), /pending/);
    await pending;
    const chunks = await collect(store.writeSnapshot());
    assert.ok(chunks.length >= 2);
    await store.close();
  });

  it('restores an image delivered in arbitrary chunk sizes', async () => {
    const image = await imageOf(3000);
    for (const size of [1, 7, 4096, 1 << 20]) {
      const { store } = await openWithState();
      await store.restoreSnapshot(rechunk(image.chunks, size), image.index);
      assert.equal(store.keyCount(), 3001);
      assert.equal(await getText(store, 'shared'), 'new');
      assert.equal(await store.get('old'), undefined);
      assert.deepEqual(store.members(), new Map([
        [7n, { peerUrl: 'http://seven', isLearner: false }],
        [8n, { peerUrl: 'http://eight', isLearner: true }],
      ]));
      assert.deepEqual(store.removedIds(), new Set([9n]));
      await store.close();
    }
  });

  it('keeps serving reads while a restore runs and swaps', async () => {
    const image = await imageOf(20_000);
    const { store } = await openWithState();
    let done = false;
    const restore = store.restoreSnapshot(replay(image.chunks), image.index).finally(() => {
      done = true;
    });
    const seen = new Set<string | undefined>();
    let reads = 0;
    while (!done) {
      seen.add(await getText(store, 'shared'));
      reads += 1;
    }
    await restore;
    seen.add(await getText(store, 'shared'));
    assert.ok(reads > 1, `only ${reads} reads overlapped the restore`);
    assert.ok([...seen].every((value) => value === 'old' || value === 'new'), [...seen].join(','));
    assert.equal(await getText(store, 'shared'), 'new');
    await store.close();
  });

  it('rejects damaged images and keeps the old state', async () => {
    const image = await imageOf(3000);
    const whole = Buffer.concat(image.chunks);
    const flipped = Buffer.from(whole);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
    const badMagic = Buffer.from(whole);
    badMagic[0] = 0x00;
    // A frame whose payload was altered and whose CRC was recomputed: only the digest notices.
    const forgedChunks = image.chunks.map((chunk) => Buffer.from(chunk));
    const forgedFrame = forgedChunks[2]!;
    const valueAt = forgedFrame.indexOf('value-', 8);
    assert.ok(valueAt > 0);
    forgedFrame[valueAt] = 'V'.charCodeAt(0);
    forgedFrame.writeUInt32BE(crc32(forgedFrame.subarray(8)), 4);
    const cases: Array<{ name: string; body: () => AsyncIterable<Uint8Array>; index: number; reason: string }> = [
      { name: 'flipped byte', body: () => replay([flipped]), index: image.index, reason: 'checksum-mismatch' },
      { name: 'truncated', body: () => replay([whole.subarray(0, whole.length - 10)]), index: image.index, reason: 'truncated' },
      { name: 'frame dropped', body: () => replay(image.chunks.filter((_, n) => n !== 2)), index: image.index, reason: 'count-mismatch' },
      { name: 'frames swapped', body: () => replay([image.chunks[0]!, image.chunks[2]!, image.chunks[1]!, ...image.chunks.slice(3)]), index: image.index, reason: 'out-of-order' },
      { name: 'forged frame', body: () => replay(forgedChunks), index: image.index, reason: 'digest-mismatch' },
      { name: 'trailing bytes', body: () => replay([whole, Buffer.from([0])]), index: image.index, reason: 'trailing-bytes' },
      { name: 'not an image', body: () => replay([badMagic]), index: image.index, reason: 'bad-magic' },
      { name: 'empty stream', body: () => replay([]), index: image.index, reason: 'truncated' },
      { name: 'wrong index', body: () => replay(image.chunks), index: image.index + 1, reason: 'index-mismatch' },
    ];
    for (const testCase of cases) {
      const { dir, store } = await openWithState();
      await assert.rejects(store.restoreSnapshot(testCase.body(), testCase.index), (error: unknown) => {
        assert.ok(error instanceof SnapshotImageError, `${testCase.name}: ${String(error)}`);
        assert.equal(error.reason, testCase.reason, testCase.name);
        return true;
      });
      assert.equal(store.appliedIndex(), 2, testCase.name);
      assert.equal(await getText(store, 'old'), 'state', testCase.name);
      assert.equal(await getText(store, 'shared'), 'old', testCase.name);
      assert.deepEqual(store.members(), new Map([[1n, { peerUrl: 'http://old-1', isLearner: false }]]));
      assert.equal(existsSync(`${dir}.restore`), false, testCase.name);
      await store.applyEntries([{ index: 3, commands: [put('still', 'writable')] }]);
      assert.equal(await getText(store, 'still'), 'writable');
      await store.close();
    }
  });
});

describe('KvStore restore of a rejected image', () => {
  it('stops the body stream instead of reading it to the end', async () => {
    const image = await imageOf(20_000);
    const damaged = Buffer.concat(image.chunks);
    damaged[100]! ^= 0xff;
    let yielded = 0;
    let stopped = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (let offset = 0; offset < damaged.length; offset += 1024) {
          yielded += 1;
          yield damaged.subarray(offset, offset + 1024);
        }
      } finally {
        stopped = true;
      }
    }
    const { store } = await openWithState();
    await assert.rejects(store.restoreSnapshot(source(), image.index), SnapshotImageError);
    assert.equal(stopped, true);
    // The damage is in the first frame (64 KiB): reading stops right after it.
    assert.ok(yielded <= 66 && yielded < damaged.length / 1024 / 4, `read ${yielded} chunks`);
    await store.close();
  });
});

describe('KvStore restore crash recovery', () => {
  it('deletes a half-written restore directory at open and keeps the old state', async () => {
    const { dir, store } = await openWithState();
    await store.close();
    const half = new Level<string, string>(`${dir}.restore`);
    await half.open();
    await half.put('partial', 'garbage');
    await half.close();
    await writeFile(join(`${dir}.restore`, 'junk'), 'torn');
    const reopened = await KvStore.open(dir);
    assert.equal(existsSync(`${dir}.restore`), false);
    assert.equal(reopened.appliedIndex(), 2);
    assert.equal(await getText(reopened, 'old'), 'state');
    await reopened.close();
  });

  it('recovers the old state after a crash before the swap', async () => {
    const image = await imageOf(500);
    const { dir, store } = await openWithState({ testingKnobs: { crashDuringRestore: 'before-swap' } });
    await assert.rejects(store.restoreSnapshot(replay(image.chunks), image.index), SimulatedCrashError);
    assert.equal(existsSync(`${dir}.restore`), true, 'the staged image is left behind as a crash would');
    const reopened = await KvStore.open(dir);
    assert.equal(existsSync(`${dir}.restore`), false);
    assert.equal(reopened.appliedIndex(), 2);
    assert.equal(await getText(reopened, 'shared'), 'old');
    assert.equal(reopened.keyCount(), 2);
    await reopened.close();
  });

  it('completes the swap after a crash between the renames', async () => {
    const image = await imageOf(500);
    const { dir, store } = await openWithState({ testingKnobs: { crashDuringRestore: 'between-renames' } });
    await assert.rejects(store.restoreSnapshot(replay(image.chunks), image.index), SimulatedCrashError);
    assert.equal(existsSync(dir), false);
    assert.equal(existsSync(`${dir}.old`), true);
    const reopened = await KvStore.open(dir);
    assert.equal(existsSync(`${dir}.restore`) || existsSync(`${dir}.old`), false);
    assert.equal(reopened.appliedIndex(), image.index);
    assert.equal(reopened.keyCount(), 501);
    assert.equal(await getText(reopened, 'shared'), 'new');
    assert.equal(await reopened.get('old'), undefined);
    assert.deepEqual(reopened.removedIds(), new Set([9n]));
    await reopened.close();
  });

  it('deletes a leftover old directory after a crash at the end of the swap', async () => {
    const { dir, store } = await openWithState();
    await store.close();
    await mkdir(`${dir}.old`);
    await writeFile(join(`${dir}.old`, 'LOG'), 'stale');
    const reopened = await KvStore.open(dir);
    assert.equal(existsSync(`${dir}.old`), false);
    assert.equal(await getText(reopened, 'old'), 'state');
    await reopened.close();
  });
});
