/**
 * Level scans and batch writes on a worker thread or the calling thread (level-worker.ts): both
 * threads deliver the same records, in key order, within the range, and write every record of
 * every batch; a damaged batch is refused; a scan stopped early leaves nothing open; a worker
 * that cannot open the store fails the scan or the writes with the reason.
 */
import { afterEach, beforeEach, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Level } from 'level';
import { forEachPacked, openBatchWriter, packRecords, scanPacked, type PackedRecords, type RecordBatch, type LevelThread } from './level-worker';

let directory: string;
let db: Level<Buffer, Buffer>;

beforeEach(async () => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'level-scan-test-'));
  db = new Level<Buffer, Buffer>(directory, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open({ multithreading: true } as object);
});

afterEach(async () => {
  await db.close();
  fs.rmSync(directory, { recursive: true, force: true });
});

/** Keys 0x01|u32 (3,000 of them, over several batches) with values of varying length, plus keys outside the scanned range. */
async function fill(): Promise<Array<[string, string]>> {
  const inside: Array<[string, string]> = [];
  const operations: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];
  for (let i = 0; i < 3000; i++) {
    const key = Buffer.alloc(5);
    key[0] = 0x01;
    key.writeUInt32BE(i * 7, 1);
    const value = Buffer.alloc(i % 300, i % 251);
    operations.push({ type: 'put', key, value });
    inside.push([key.toString('hex'), value.toString('hex')]);
  }
  operations.push({ type: 'put', key: Buffer.from([0x00, 1]), value: Buffer.from('before') });
  operations.push({ type: 'put', key: Buffer.from([0x02]), value: Buffer.from('after') });
  await db.batch(operations);
  return inside;
}

async function collect(thread: LevelThread): Promise<Array<[string, string]>> {
  const records: Array<[string, string]> = [];
  for await (const batch of scanPacked(db, { gte: Buffer.from([0x01]), lt: Buffer.from([0x02]) }, thread)) {
    forEachPacked(batch, (bytes, keyStart, keyEnd, valueStart, valueEnd) => {
      records.push([bytes.toString('hex', keyStart, keyEnd), bytes.toString('hex', valueStart, valueEnd)]);
    });
  }
  return records;
}

test('the worker and the calling thread deliver the same records of the range, in key order', async () => {
  const inside = await fill();
  const byWorker = await collect('worker');
  const byCaller = await collect('caller');
  assert.equal(byWorker.length, 3000);
  assert.deepEqual(byWorker, inside);
  assert.deepEqual(byCaller, inside);
  // 'auto' takes the calling thread for a store this small; the result is the same.
  assert.deepEqual(await collect('auto'), inside);
});

test('an empty range yields no batch, on either thread', async () => {
  assert.deepEqual(await collect('worker'), []);
  assert.deepEqual(await collect('caller'), []);
});

test('a batch whose lengths do not add up is refused', () => {
  const good = packRecords([
    [Buffer.from('a'), Buffer.from('1')],
    [Buffer.from('bb'), Buffer.from('22')],
  ]);
  const seen: string[] = [];
  forEachPacked({ bytes: good, count: 2 }, (bytes, keyStart, keyEnd) => seen.push(bytes.toString('latin1', keyStart, keyEnd)));
  assert.deepEqual(seen, ['a', 'bb']);
  const truncated: PackedRecords = { bytes: good.subarray(0, good.length - 1), count: 2 };
  assert.throws(() => forEachPacked(truncated, () => undefined), /ends at/);
  const padded: PackedRecords = { bytes: Buffer.concat([good, Buffer.alloc(3)]), count: 2 };
  assert.throws(() => forEachPacked(padded, () => undefined), /packed batch of 25 bytes ends at 22/);
});

test('a worker scan stopped after its first batch leaves the store usable: it closes and reopens', async () => {
  await fill();
  let batches = 0;
  for await (const batch of scanPacked(db, { gte: Buffer.from([0x01]), lt: Buffer.from([0x02]) }, 'worker')) {
    assert.ok(batch.count > 0);
    batches++;
    break;
  }
  assert.equal(batches, 1);
  // The worker has released its handle: the store really closes, and a plain (exclusive) open works.
  await db.close();
  const again = new Level<Buffer, Buffer>(directory, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await again.open();
  assert.equal((await again.get(Buffer.from([0x02])))?.toString(), 'after');
  await again.close();
  await db.open({ multithreading: true } as object);
});

test('a worker that cannot open the store fails the scan with the reason', async () => {
  await fill();
  // Opened without multithreading, the store is locked against the worker's open.
  await db.close();
  await db.open();
  await assert.rejects(collect('worker'), /level worker failed: LEVEL_DATABASE_NOT_OPEN Database failed to open: .*lock/i);
});

/** `count` batches of 100 records (keys 0x01|u32, values of varying length) laid out as a snapshot frame would be: u16 key length, key, u32 value length, value. */
function recordBatches(count: number): { batches: RecordBatch[]; expected: Array<[string, string]> } {
  const batches: RecordBatch[] = [];
  const expected: Array<[string, string]> = [];
  for (let n = 0; n < count; n++) {
    const parts: Buffer[] = [];
    const bounds: number[] = [];
    let offset = 0;
    for (let i = 0; i < 100; i++) {
      const key = Buffer.alloc(5);
      key[0] = 0x01;
      key.writeUInt32BE(n * 100 + i, 1);
      const value = Buffer.alloc((n + i) % 200, n % 251);
      const keyLength = Buffer.alloc(2);
      keyLength.writeUInt16BE(key.length);
      const valueLength = Buffer.alloc(4);
      valueLength.writeUInt32BE(value.length);
      parts.push(keyLength, key, valueLength, value);
      bounds.push(offset + 2, offset + 2 + key.length, offset + 6 + key.length, offset + 6 + key.length + value.length);
      offset += 6 + key.length + value.length;
      expected.push([key.toString('hex'), value.toString('hex')]);
    }
    // A view into a larger buffer, as a frame's payload is.
    const payload = Buffer.concat([Buffer.from('lead'), ...parts]).subarray(4);
    batches.push({ bytes: payload, bounds: Uint32Array.from(bounds) });
  }
  return { batches, expected };
}

for (const thread of ['worker', 'caller'] as const) {
  test(`a batch writer on the ${thread} thread writes every record of every batch`, async () => {
    const { batches, expected } = recordBatches(40); // several times the writer's window
    const writer = openBatchWriter(db, thread);
    for (const batch of batches) await writer.put(batch);
    await writer.close();
    assert.deepEqual(await collect('caller'), expected);
  });
}

// The batches above are about 10 KiB each: gathered whole into one level batch by default, one
// by one (each larger than the gather size, the window filling up), or a few at a time with a
// remainder written at close.
for (const gatherBytes of [1, 25_000]) {
  test(`a worker batch writer gathering ${gatherBytes} bytes per level batch writes every record, even when the caller reuses its buffers`, async () => {
    const { batches, expected } = recordBatches(40);
    const writer = openBatchWriter(db, 'worker', gatherBytes);
    const scratch = Buffer.alloc(20_000);
    for (const batch of batches) {
      // The caller's bytes are overwritten as soon as put returns: the writer must have copied them.
      batch.bytes.copy(scratch);
      const reused = { bytes: scratch.subarray(0, batch.bytes.length), bounds: batch.bounds };
      await writer.put(reused);
      scratch.fill(0xee);
    }
    await writer.close();
    assert.deepEqual(await collect('caller'), expected);
  });
}

test('a worker writer that cannot open the store rejects with the reason', async () => {
  await db.close();
  await db.open(); // without multithreading: the worker's open finds the store locked
  const writer = openBatchWriter(db, 'worker');
  await assert.rejects(
    (async () => {
      for (const batch of recordBatches(20).batches) await writer.put(batch);
      await writer.close();
    })(),
    /level worker failed: LEVEL_DATABASE_NOT_OPEN Database failed to open: .*lock/i,
  );
  await writer.close().catch(() => undefined);
  assert.deepEqual(await collect('caller'), []);
});
