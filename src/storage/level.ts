/**
 * How raftkv's level stores (src/mvcc, src/kv) use classic-level beyond its defaults: how much a
 * scanning iterator reads per thread-pool round trip, and how a store makes everything it has
 * written durable before the Raft log that covers those writes is discarded.
 */
import { readdir } from 'node:fs/promises';

/**
 * Bytes a level iterator may read per round trip to the thread pool, for iterators that scan a
 * whole range (pass it as the iterator's `highWaterMarkBytes`). classic-level's default, 16 KiB,
 * ends a `nextv` after about fifty 300-byte records whatever size was asked for: at a million
 * records that is 20,000 thread-pool round trips, and rebuilding the key index took 7.6 s instead
 * of 4.4 s (iteration alone 5.7 s instead of 2.4 s).
 */
export const SCAN_HIGH_WATER_BYTES = 1 << 20;

/** The part of a classic-level database {@link makeWritesDurable} uses. */
export interface DurableLevel {
  /** The database's directory. */
  readonly location: string;
  put(key: Buffer, value: Buffer, options: { sync: boolean }): Promise<void>;
}

/** classic-level's compactRange, which `level`'s typings hide. */
interface CompactableLevel {
  compactRange(start: Buffer, end: Buffer): Promise<void>;
}

/** Compacts level's keys in [start, end] (classic-level's compactRange, hidden by `level`'s typings). */
export function compactRange(db: unknown, start: Buffer, end: Buffer): Promise<void> {
  return (db as CompactableLevel).compactRange(start, end);
}

/**
 * Keys neither store uses for data (both stores' keys start with a tag byte below 0xff): a range
 * that holds no key, and the key of the synchronous write that follows its compaction.
 */
const EMPTY_RANGE_START = Buffer.from([0xff, 0xff, 0xff, 0xfe]);
const EMPTY_RANGE_END = Buffer.from([0xff, 0xff, 0xff, 0xff]);
const SYNC_PROBE_KEY = Buffer.from([0xff, 0xff, 0xff, 0xfd]);

/**
 * Makes every write the database accepted before the call durable. The stores write without
 * fsync (the Raft WAL is what is durable), so this is what a snapshot without an image relies on
 * before the WAL entries it covers are released.
 *
 * A synchronous write fsyncs level's current log file, and only that one. A log file that level
 * switched away from (when a memtable filled) is never fsynced: it is deleted once its memtable
 * has been written out as a table, and that table and the MANIFEST naming it are fsynced first.
 * So after a synchronous write, a directory holding a single log file means every earlier write
 * is durable: the older logs' records are in fsynced tables, the rest in the log just fsynced (or,
 * if level switched again meanwhile, in a table too). Checking after the write, not before, is
 * what makes a switch racing with the call harmless.
 *
 * Otherwise an older log's memtable is still being written out, and this waits for it: it
 * compacts a range that holds no key (LevelDB's CompactRange writes the memtables out as tables,
 * fsynced, then the MANIFEST, then deletes the old logs, and finds nothing else to compact), then
 * writes synchronously again, since CompactRange drops the status of that memtable write and level
 * refuses every write after a background error. Forcing that table at every snapshot made
 * snapshots cost 4-8 % of write throughput at `--snapshot-count` 10,000; under steady writes a
 * log switch has nearly always finished its table by the next snapshot.
 *
 * Returns whether the memtable had to be written out.
 */
export async function makeWritesDurable(db: DurableLevel, listDirectory: (dir: string) => Promise<string[]> = readdir): Promise<'synced' | 'flushed'> {
  await db.put(SYNC_PROBE_KEY, Buffer.alloc(0), { sync: true });
  const logFiles = (await listDirectory(db.location)).filter((name) => LOG_FILE_NAME.test(name));
  if (logFiles.length === 1) return 'synced';
  await compactRange(db, EMPTY_RANGE_START, EMPTY_RANGE_END);
  await db.put(SYNC_PROBE_KEY, Buffer.alloc(0), { sync: true });
  return 'flushed';
}

/** LevelDB's write-ahead log files (`000123.log`; its info log is `LOG`). */
const LOG_FILE_NAME = /^[0-9]+\.log$/;
