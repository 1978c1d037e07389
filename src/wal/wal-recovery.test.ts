/**
 * Tests of crash recovery: a torn tail of the last segment is truncated, reported and appended
 * after; damage anywhere else stops start-up with WalError 'corrupt' naming the file and offset.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Wal, WalError } from './wal';
import { scanSegment } from './wal-segment';
import {
  CapturingLogger,
  makeEntries,
  makeTemporaryDirectory,
  removeDirectory,
  segmentPaths,
} from './wal-test-support';

const METADATA = Buffer.from('metadata');

/** Byte offsets of the records of a (healthy) segment file. */
function recordOffsets(file: string): number[] {
  return scanSegment(fs.readFileSync(file), file, true).records.map((record) => record.offset);
}

function flipByte(file: string, offset: number): void {
  const bytes = fs.readFileSync(file);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x40;
  fs.writeFileSync(file, bytes);
}

function isCorruptAt(file: string, offset: number): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof WalError, `expected a WalError, got ${String(error)}`);
    assert.equal(error.code, 'corrupt');
    assert.equal(error.file, file);
    assert.equal(error.offset, offset);
    assert.ok(error.message.includes(file) && error.message.includes(`byte offset ${offset}`), error.message);
    return true;
  };
}

describe('Wal recovery', () => {
  let root: string;
  let counter = 0;

  before(() => {
    root = makeTemporaryDirectory('wal-recovery');
  });
  after(() => {
    removeDirectory(root);
  });

  /** A WAL with entries 1..3 (one record) and 4..5 (the final record) in one segment. */
  async function twoBatchWal(): Promise<{ dir: string; file: string; lastRecordOffset: number }> {
    const dir = path.join(root, `wal-${counter++}`);
    const wal = await Wal.create(dir, { metadata: METADATA });
    await wal.save({ term: 1, vote: 0n, commit: 0 }, makeEntries(1, 3, 1), true);
    await wal.save(undefined, makeEntries(4, 5, 1), true);
    await wal.close();
    const file = segmentPaths(dir)[0] ?? assert.fail('no segment');
    const lastRecordOffset = recordOffsets(file).at(-1) ?? assert.fail('no records');
    return { dir, file, lastRecordOffset };
  }

  async function assertRepairedThenAppendable(dir: string, file: string, offset: number, bytesDropped: number): Promise<void> {
    const logger = new CapturingLogger();
    const opened = await Wal.open(dir, { logger });
    assert.deepEqual(opened.repairedTail, { file, offset, bytesDropped });
    assert.ok(logger.warnings().includes('truncating torn tail of the WAL'));
    assert.equal(fs.statSync(file).size, offset);
    const survivors = opened.entries.map((entry) => entry.index);
    const next = (survivors.at(-1) ?? 0) + 1;
    await opened.wal.save({ term: 2, vote: 0n, commit: next }, makeEntries(next, next, 2), true);
    await opened.wal.close();
    const reopened = await Wal.open(dir);
    assert.equal(reopened.repairedTail, undefined);
    assert.deepEqual(reopened.entries.map((entry) => entry.index), [...survivors, next]);
    assert.deepEqual(reopened.hardState, { term: 2, vote: 0n, commit: next });
    await reopened.wal.close();
  }

  it('truncates a record torn in its payload', async () => {
    const { dir, file, lastRecordOffset } = await twoBatchWal();
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 5);
    await assertRepairedThenAppendable(dir, file, lastRecordOffset, size - 5 - lastRecordOffset);
  });

  it('truncates a record torn in its header', async () => {
    const { dir, file, lastRecordOffset } = await twoBatchWal();
    fs.truncateSync(file, lastRecordOffset + 3);
    await assertRepairedThenAppendable(dir, file, lastRecordOffset, 3);
  });

  it('truncates a final record whose CRC does not match', async () => {
    const { dir, file, lastRecordOffset } = await twoBatchWal();
    const size = fs.statSync(file).size;
    flipByte(file, size - 10); // inside the last entry's data
    await assertRepairedThenAppendable(dir, file, lastRecordOffset, size - lastRecordOffset);
  });

  it('truncates zero-filled space after the last record', async () => {
    const { dir, file } = await twoBatchWal();
    const size = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.alloc(4096));
    await assertRepairedThenAppendable(dir, file, size, 4096);
  });

  it('truncates garbage after the last record', async () => {
    const { dir, file } = await twoBatchWal();
    const size = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.from('\x07\x00\x00\x00\x03garbage that is no record at all'));
    const garbageBytes = fs.statSync(file).size - size;
    await assertRepairedThenAppendable(dir, file, size, garbageBytes);
  });

  it('refuses a bad record that is followed by a valid one, naming file and offset', async () => {
    const { dir, file } = await twoBatchWal();
    const offsets = recordOffsets(file);
    const firstEntriesRecord = offsets[2] ?? assert.fail('missing record');
    flipByte(file, firstEntriesRecord + 20);
    const sizeBefore = fs.statSync(file).size;
    await assert.rejects(Wal.open(dir), isCorruptAt(file, firstEntriesRecord));
    assert.equal(fs.statSync(file).size, sizeBefore, 'nothing may be truncated');
    // The failed open released the lock: a second attempt fails the same way, not with 'locked'.
    await assert.rejects(Wal.open(dir), isCorruptAt(file, firstEntriesRecord));
  });

  it('refuses a corrupted length field in the middle of the log', async () => {
    const { dir, file } = await twoBatchWal();
    const target = recordOffsets(file)[2] ?? assert.fail('missing record');
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(0x00ff_ffff, target); // now "runs past the end of the file"
    fs.writeFileSync(file, bytes);
    await assert.rejects(Wal.open(dir), isCorruptAt(file, target));
  });

  describe('with several segments', () => {
    async function multiSegmentWal(): Promise<{ dir: string; files: string[] }> {
      const dir = path.join(root, `wal-${counter++}`);
      const wal = await Wal.create(dir, { metadata: METADATA, segmentBytes: 200 });
      for (let index = 1; index <= 12; index++) await wal.save(undefined, makeEntries(index, index, 1), true);
      await wal.close();
      const files = segmentPaths(dir);
      assert.ok(files.length >= 3, `expected several segments, got ${files.length}`);
      return { dir, files };
    }

    it('refuses damage at the tail of a segment that is not the last', async () => {
      const { dir, files } = await multiSegmentWal();
      const file = files[0] ?? assert.fail('no segment');
      const last = recordOffsets(file).at(-1) ?? assert.fail('no records');
      flipByte(file, fs.statSync(file).size - 2);
      await assert.rejects(Wal.open(dir), isCorruptAt(file, last));
    });

    it('refuses a truncated segment that is not the last', async () => {
      const { dir, files } = await multiSegmentWal();
      const file = files[1] ?? assert.fail('no segment');
      const last = recordOffsets(file).at(-1) ?? assert.fail('no records');
      fs.truncateSync(file, last + 4);
      await assert.rejects(Wal.open(dir), isCorruptAt(file, last));
    });

    it('refuses a missing segment in the middle', async () => {
      const { dir, files } = await multiSegmentWal();
      fs.unlinkSync(files[1] ?? assert.fail('no segment'));
      await assert.rejects(Wal.open(dir), (error: unknown) =>
        error instanceof WalError && error.code === 'corrupt' && /segments are missing/.test(error.message));
    });

    it('refuses a segment whose header disagrees with its name', async () => {
      const { dir, files } = await multiSegmentWal();
      const last = files.at(-1) ?? assert.fail('no segment');
      fs.renameSync(last, path.join(dir, path.basename(last).replace(/-[0-9a-f]{16}\.wal$/, '-00000000000000ff.wal')));
      await assert.rejects(Wal.open(dir), (error: unknown) =>
        error instanceof WalError && error.code === 'corrupt' && /file name disagrees/.test(error.message));
    });

    it('removes a segment left unfinished by a crash during a roll', async () => {
      const { dir, files } = await multiSegmentWal();
      const leftover = path.join(dir, '00000000000000ff-0000000000000100.wal.tmp');
      fs.writeFileSync(leftover, Buffer.from('half a segment'));
      const logger = new CapturingLogger();
      const opened = await Wal.open(dir, { logger });
      assert.equal(fs.existsSync(leftover), false);
      assert.ok(logger.warnings().includes('removing an unfinished WAL segment'));
      assert.deepEqual(segmentPaths(dir), files);
      assert.equal(opened.entries.length, 12);
      await opened.wal.close();
    });
  });
});
