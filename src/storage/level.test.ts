/**
 * makeWritesDurable (level.ts): after its synchronous write, a store whose directory holds a
 * single LevelDB log needs nothing more; one that still holds an older log (a memtable not yet
 * written out as a table) gets its memtables written out as tables, and the caller is told which
 * happened. Durability itself (a power cut) cannot be shown from a test; what is shown is that
 * the expensive path runs exactly when an older log is present, and that it does write a table.
 */
import { afterEach, beforeEach, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Level } from 'level';
import { makeWritesDurable } from './level';

let directory: string;
let db: Level<Buffer, Buffer>;

beforeEach(async () => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'level-durable-test-'));
  db = new Level<Buffer, Buffer>(directory, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
});

afterEach(async () => {
  await db.close();
  fs.rmSync(directory, { recursive: true, force: true });
});

const filesEndingWith = (suffix: string): string[] => fs.readdirSync(directory).filter((name) => name.endsWith(suffix));

async function writeRecords(count: number): Promise<void> {
  const operations = Array.from({ length: count }, (_, i) => ({ type: 'put' as const, key: Buffer.from(`key-${i}`), value: Buffer.alloc(100, i % 251) }));
  await db.batch(operations, { sync: false });
}

test('makeWritesDurable: a single log is fsynced by the synchronous write alone, no table is written', async () => {
  await writeRecords(500);
  assert.equal(filesEndingWith('.log').length, 1, 'a fresh store has one log');
  const tablesBefore = filesEndingWith('.ldb');
  assert.equal(await makeWritesDurable(db), 'synced');
  assert.deepEqual(filesEndingWith('.ldb'), tablesBefore, 'no memtable was written out');
  assert.deepEqual(await db.get(Buffer.from('key-499')), Buffer.alloc(100, 499 % 251));
});

test('makeWritesDurable: an older log still present makes it write the memtable out as a table', async () => {
  await writeRecords(500);
  assert.equal(filesEndingWith('.ldb').length, 0, 'nothing written out yet (the memtable holds 4 MiB)');
  // The directory as it looks while a switched-away-from log waits for its table.
  const listed: string[] = [];
  const listWithOlderLog = async (dir: string): Promise<string[]> => {
    listed.push(dir);
    return ['000003.log', '000005.log', 'LOG', 'MANIFEST-000002', 'CURRENT'];
  };
  assert.equal(await makeWritesDurable(db, listWithOlderLog), 'flushed');
  assert.deepEqual(listed, [directory], 'the store directory is listed once, after the synchronous write');
  assert.ok(filesEndingWith('.ldb').length >= 1, 'the memtable was written out as a table');
  assert.equal(filesEndingWith('.log').length, 1, 'and the log it replaced is gone');
  assert.deepEqual(await db.get(Buffer.from('key-0')), Buffer.alloc(100, 0));
});

test("makeWritesDurable: level's own info log (LOG, LOG.old) is not mistaken for a write-ahead log", async () => {
  await writeRecords(10);
  const listing = async (): Promise<string[]> => ['000007.log', 'LOG', 'LOG.old', '000004.ldb', 'MANIFEST-000006'];
  assert.equal(await makeWritesDurable(db, listing), 'synced');
});
