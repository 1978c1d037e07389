/**
 * Tests of the write-ahead log's normal operation: round trips across close/open, overwrite
 * resolution, snapshot markers and log gaps, segment rollover and release, group commit, the
 * poisoning rule, and the exported entry codec.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EntryType } from '../raft/types';
import { decodeEntry, encodeEntry, Wal, WalError } from './wal';
import { parseSegmentName } from './wal-segment';
import {
  describeEntries,
  InstrumentedFiles,
  makeEntries,
  makeTemporaryDirectory,
  removeDirectory,
  segmentPaths,
} from './wal-test-support';

const METADATA = Buffer.from('{"nodeId":"1","clusterId":"42"}');

describe('Wal', () => {
  let root: string;
  let counter = 0;
  const freshDir = (): string => path.join(root, `wal-${counter++}`);

  before(() => {
    root = makeTemporaryDirectory('wal');
  });
  after(() => {
    removeDirectory(root);
  });

  it('round-trips metadata, hard states, entries and markers across close and open', async () => {
    const dir = freshDir();
    assert.equal(Wal.exists(dir), false);
    const wal = await Wal.create(dir, { metadata: METADATA });
    assert.equal(Wal.exists(dir), true);
    await wal.save({ term: 1, vote: 0n, commit: 0 }, makeEntries(1, 3, 1), true);
    await wal.save({ term: 2, vote: 0xffff_ffff_ffff_fff1n, commit: 3 }, [], true);
    await wal.saveSnapshotMarker({ index: 2, term: 1 });
    await wal.save(undefined, makeEntries(4, 5, 2), false);
    await wal.close();

    const opened = await Wal.open(dir);
    assert.deepEqual(Buffer.from(opened.metadata), METADATA);
    assert.deepEqual(opened.hardState, { term: 2, vote: 0xffff_ffff_ffff_fff1n, commit: 3 });
    assert.deepEqual(describeEntries(opened.entries), describeEntries([...makeEntries(1, 3, 1), ...makeEntries(4, 5, 2)]));
    assert.deepEqual(opened.snapshotMarkers, [{ index: 2, term: 1 }]);
    assert.equal(opened.repairedTail, undefined);

    // Appending continues at the end.
    await opened.wal.save({ term: 2, vote: 1n, commit: 5 }, makeEntries(6, 6, 2), true);
    await opened.wal.close();
    const reopened = await Wal.open(dir);
    assert.deepEqual(reopened.entries.map((entry) => entry.index), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(reopened.hardState, { term: 2, vote: 1n, commit: 5 });
    await reopened.wal.close();
  });

  it('reports the zero hard state and no entries for a fresh WAL', async () => {
    const dir = freshDir();
    await (await Wal.create(dir, { metadata: new Uint8Array(0) })).close();
    const opened = await Wal.open(dir);
    assert.deepEqual(opened.hardState, { term: 0, vote: 0n, commit: 0 });
    assert.deepEqual(opened.entries, []);
    assert.deepEqual(opened.snapshotMarkers, []);
    assert.equal(opened.metadata.length, 0);
    await opened.wal.close();
  });

  it('refuses to create over an existing WAL and to open a missing one', async () => {
    const dir = freshDir();
    await assert.rejects(Wal.open(dir), (error: unknown) => error instanceof WalError && error.code === 'not-found');
    const wal = await Wal.create(dir, { metadata: METADATA });
    await wal.close();
    await assert.rejects(Wal.create(dir, { metadata: METADATA }), (error: unknown) => error instanceof WalError && error.code === 'exists');
  });

  it('resolves overwrites: a later batch at index i replaces i and everything after it (Raft §5.3)', async () => {
    const dir = freshDir();
    const wal = await Wal.create(dir, { metadata: METADATA });
    await wal.save(undefined, makeEntries(1, 5, 1), false);
    await wal.save(undefined, makeEntries(3, 4, 2), false); // a new leader truncated 3..5
    await wal.save(undefined, makeEntries(5, 6, 2), false);
    await wal.save(undefined, makeEntries(2, 2, 3), true); // and another one truncated 2..6
    await wal.close();
    const opened = await Wal.open(dir);
    assert.deepEqual(describeEntries(opened.entries), describeEntries([...makeEntries(1, 1, 1), ...makeEntries(2, 2, 3)]));
    await opened.wal.close();
  });

  it('lets a snapshot marker cover a jump in the log, and refuses a jump without one', async () => {
    const dir = freshDir();
    const wal = await Wal.create(dir, { metadata: METADATA });
    await wal.save(undefined, makeEntries(1, 3, 1), true);
    // A gap is a bug in the caller: an assertion, not a WalError, and the Wal stays usable.
    await assert.rejects(wal.save(undefined, makeEntries(5, 6, 1), true), (error: unknown) => error instanceof assert.AssertionError);
    await assert.rejects(wal.save(undefined, [...makeEntries(4, 4, 1), ...makeEntries(6, 6, 1)], true),
      (error: unknown) => error instanceof assert.AssertionError);
    // Installing a leader's snapshot at 10: marker first, then the log continues at 11.
    await wal.saveSnapshotMarker({ index: 10, term: 2 });
    await wal.save({ term: 2, vote: 0n, commit: 11 }, makeEntries(11, 12, 2), true);
    await wal.close();
    const opened = await Wal.open(dir);
    assert.deepEqual(opened.entries.map((entry) => entry.index), [11, 12]);
    assert.deepEqual(opened.snapshotMarkers, [{ index: 10, term: 2 }]);
    await opened.wal.close();
  });

  it('rolls segments when full and releases the ones wholly below an index', async () => {
    const dir = freshDir();
    const wal = await Wal.create(dir, { metadata: METADATA, segmentBytes: 256 });
    for (let index = 1; index <= 40; index++) {
      await wal.save({ term: 1, vote: 1n, commit: index - 1 }, makeEntries(index, index, 1), index % 5 === 0);
    }
    const before = segmentPaths(dir);
    assert.ok(before.length >= 5, `expected several segments, got ${before.length}`);
    const names = before.map((file) => parseSegmentName(path.basename(file)));
    assert.deepEqual(names.map((name) => name?.sequence), names.map((_, position) => position));
    for (const file of before.slice(0, -1)) assert.ok(fs.statSync(file).size >= 256);

    // The segment holding index 20 is the last one whose first index is <= 20.
    const holder = names.filter((name) => name !== undefined && name.firstIndex <= 20).length - 1;
    await wal.releaseTo(20);
    const after = segmentPaths(dir);
    assert.deepEqual(after, before.slice(holder));
    await wal.releaseTo(1_000_000); // never the active segment
    assert.deepEqual(segmentPaths(dir), before.slice(-1));
    await wal.close();

    const opened = await Wal.open(dir);
    // Metadata and the latest hard state were copied into the surviving segment.
    assert.deepEqual(Buffer.from(opened.metadata), METADATA);
    assert.deepEqual(opened.hardState, { term: 1, vote: 1n, commit: 39 });
    const lastName = parseSegmentName(path.basename(before[before.length - 1] ?? ''));
    assert.ok(lastName !== undefined);
    assert.deepEqual(opened.entries.map((entry) => entry.index),
      Array.from({ length: 40 - lastName.firstIndex + 1 }, (_, offset) => lastName.firstIndex + offset));
    await opened.wal.close();
  });

  it('keeps the segment holding the release index, and its entries survive a reopen', async () => {
    const dir = freshDir();
    const wal = await Wal.create(dir, { metadata: METADATA, segmentBytes: 300 });
    for (let index = 1; index <= 30; index += 3) await wal.save(undefined, makeEntries(index, index + 2, 1), true);
    await wal.releaseTo(17);
    await wal.close();
    const opened = await Wal.open(dir);
    const indexes = opened.entries.map((entry) => entry.index);
    assert.ok(indexes.includes(17), `entry 17 must survive, got ${indexes.join(',')}`);
    assert.ok((indexes[0] ?? Infinity) > 1, 'older segments were released');
    assert.equal(indexes[indexes.length - 1], 30);
    await opened.wal.close();
  });

  it('is a group commit: one save is one write and, when synced, one fdatasync', async () => {
    const dir = freshDir();
    const files = new InstrumentedFiles();
    const wal = await Wal.create(dir, { metadata: METADATA, openFile: files.open });
    files.resetCounts();
    await wal.save({ term: 1, vote: 1n, commit: 0 }, makeEntries(1, 100, 1), true);
    assert.deepEqual([files.writeCalls, files.datasyncCalls], [1, 1]);
    await wal.save({ term: 1, vote: 1n, commit: 100 }, makeEntries(101, 150, 1), false);
    assert.deepEqual([files.writeCalls, files.datasyncCalls], [2, 1]);
    await wal.save(undefined, [], true); // flushes the unsynced save
    assert.deepEqual([files.writeCalls, files.datasyncCalls], [2, 2]);
    await wal.close();
  });

  it('is poisoned by a failed write: every later call rejects, and close releases the lock', async () => {
    const dir = freshDir();
    const files = new InstrumentedFiles();
    const wal = await Wal.create(dir, { metadata: METADATA, openFile: files.open });
    await wal.save({ term: 1, vote: 0n, commit: 0 }, makeEntries(1, 2, 1), true);
    files.failWrites = true;
    await assert.rejects(wal.save(undefined, makeEntries(3, 3, 1), true),
      (error: unknown) => error instanceof WalError && error.code === 'io' && /injected write failure/.test(error.message));
    files.failWrites = false; // the disk "recovers": the Wal must still refuse
    for (const call of [() => wal.save(undefined, makeEntries(3, 3, 1), true),
      () => wal.saveSnapshotMarker({ index: 1, term: 1 }), () => wal.releaseTo(1)]) {
      await assert.rejects(call(), (error: unknown) => error instanceof WalError && error.code === 'poisoned');
    }
    await assert.rejects(wal.close(), (error: unknown) => error instanceof WalError && error.code === 'poisoned');
    const opened = await Wal.open(dir);
    assert.deepEqual(opened.entries.map((entry) => entry.index), [1, 2]);
    await opened.wal.close();
  });

  it('is poisoned by a failed fdatasync, and never retries it', async () => {
    const dir = freshDir();
    const files = new InstrumentedFiles();
    const wal = await Wal.create(dir, { metadata: METADATA, openFile: files.open });
    files.failDatasyncs = true;
    await assert.rejects(wal.save(undefined, makeEntries(1, 1, 1), true),
      (error: unknown) => error instanceof WalError && error.code === 'io' && /fdatasync/.test(error.message));
    files.failDatasyncs = false;
    files.resetCounts();
    await assert.rejects(wal.save(undefined, [], true), (error: unknown) => error instanceof WalError && error.code === 'poisoned');
    await assert.rejects(wal.close(), (error: unknown) => error instanceof WalError && error.code === 'poisoned');
    assert.equal(files.datasyncCalls, 0, 'a failed fsync must not be retried');
  });

  it('rejects calls after close with code closed', async () => {
    const wal = await Wal.create(freshDir(), { metadata: METADATA });
    await wal.close();
    await wal.close(); // idempotent
    await assert.rejects(wal.save(undefined, makeEntries(1, 1, 1), true),
      (error: unknown) => error instanceof WalError && error.code === 'closed');
  });
});

describe('encodeEntry / decodeEntry', () => {
  it('round-trips term, index, type and data', () => {
    const entry = { term: 2 ** 40 + 3, index: 2 ** 52, type: EntryType.ConfChange, data: Buffer.from([0, 1, 2, 255]) };
    const decoded = decodeEntry(encodeEntry(entry));
    assert.deepEqual({ ...decoded, data: Buffer.from(decoded.data) }, entry);
    const empty = decodeEntry(encodeEntry({ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array(0) }));
    assert.equal(empty.data.length, 0);
  });

  it('rejects truncated, oversized and malformed input with WalError corrupt', () => {
    const bytes = encodeEntry({ term: 1, index: 7, type: EntryType.Normal, data: Buffer.from('hello') });
    assert.throws(() => decodeEntry(bytes.subarray(0, bytes.length - 1)), (error: unknown) => error instanceof WalError && error.code === 'corrupt');
    assert.throws(() => decodeEntry(Buffer.concat([bytes, Buffer.from([0])])), (error: unknown) => error instanceof WalError && error.code === 'corrupt');
    const badType = Buffer.from(bytes);
    badType[16] = 9;
    assert.throws(() => decodeEntry(badType), /unknown entry type 9/);
    const hugeTerm = Buffer.from(bytes);
    hugeTerm.writeUInt32LE(0xffff_ffff, 4);
    assert.throws(() => decodeEntry(hugeTerm), /exceeds 2\^53/);
  });
});
