/**
 * How raftkv's level stores (src/mvcc, src/kv) use classic-level beyond its defaults: how much a
 * scanning iterator reads per thread-pool round trip, and how a store makes everything it has
 * written durable before the Raft log that covers those writes is discarded.
 */

/**
 * Bytes a level iterator may read per round trip to the thread pool, for iterators that scan a
 * whole range (pass it as the iterator's `highWaterMarkBytes`). classic-level's default, 16 KiB,
 * ends a `nextv` after about fifty 300-byte records whatever size was asked for: at a million
 * records that is 20,000 thread-pool round trips, and rebuilding the key index took 7.6 s instead
 * of 4.4 s (iteration alone 5.7 s instead of 2.4 s).
 */
export const SCAN_HIGH_WATER_BYTES = 1 << 20;

/** The part of a classic-level database {@link makeWritesDurable} uses. */
interface DurableLevel {
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
 * A synchronous write alone is not enough: it fsyncs level's current log file only, and a log
 * file that level switched away from is not fsynced until its memtable is written as a table.
 * So this first compacts a range that holds no key: LevelDB's CompactRange writes the memtable out
 * as a table (fsynced, then the MANIFEST fsynced, then the old logs deleted), waits for that, and
 * finds nothing else to compact. CompactRange drops the status of that memtable write, so a
 * synchronous write follows: level refuses every write after a background error.
 */
export async function makeWritesDurable(db: DurableLevel): Promise<void> {
  await compactRange(db, EMPTY_RANGE_START, EMPTY_RANGE_END);
  await db.put(SYNC_PROBE_KEY, Buffer.alloc(0), { sync: true });
}
