/**
 * The write-ahead log: raft's durable entries, hard state and snapshot markers.
 *
 * The node runtime saves every Ready through `Wal.save` BEFORE it sends the Ready's messages
 * (Raft §5.1: persistent state is updated on stable storage before responding to RPCs), and
 * rebuilds its log from `Wal.open` after a restart. A failed write or fsync poisons the Wal: every
 * later call rejects, and the runtime crashes and recovers from disk.
 *
 * ON-DISK FORMAT (format version 1)
 *
 * A WAL is a directory of segment files plus a lock file (`raftkv.lock`, see dir-lock.ts):
 *
 *     <sequence 16 hex>-<firstIndex 16 hex>.wal      e.g. 0000000000000003-00000000000004d3.wal
 *
 * `sequence` counts segments from 0 with no gaps. `firstIndex` is the writer's last index + 1 at
 * the moment the segment was started (0 for the very first segment); because a new leader can
 * truncate the log, it is not monotonic across segments. A segment is created as
 * `<name>.wal.tmp`, filled with its preamble, fsynced, renamed, and the directory fsynced; leftover
 * `.wal.tmp` files are deleted at open.
 *
 * Each segment is a sequence of records, each framed as (little-endian):
 *
 *     offset 0            4        5                  5+n
 *            +------------+--------+------------------+----------------+
 *            | length u32 | type u8| payload (n bytes)| crc32 u32      |
 *            +------------+--------+------------------+----------------+
 *
 * `length` is n, the payload's byte count. The CRC is node:zlib crc32 (IEEE, as zlib and etcd)
 * over the length, type and payload bytes of THIS record only. CRCs are per record, not chained:
 * that is what lets recovery tell a torn final write (nothing valid follows the damage) from
 * corruption of acknowledged data (a valid record follows it). Records are not aligned or padded.
 *
 * Record types and payloads (u64 = unsigned 64-bit LE; terms and indexes must be < 2^53):
 *
 *     1 segment header  magic "raftkvwl" (8 bytes), version u32 (= 1), sequence u64, firstIndex u64
 *     2 metadata        the opaque bytes given to Wal.create (node ID, cluster ID, ...)
 *     3 entries         count u32 (>= 1), then count entries, indexes contiguous and >= 1:
 *                         term u64, index u64, type u8 (0 Normal, 1 ConfChange),
 *                         data length u32, data
 *     4 hard state      term u64, vote u64 (a NodeId), commit u64
 *     5 snapshot marker index u64, term u64
 *
 * Every segment starts with a segment header record (matching its file name) and a metadata
 * record (identical in all segments); a segment started by a roll then repeats the latest hard
 * state, so deleting old segments never loses the metadata or the hard state. After that come
 * entries, hard state and marker records in write order. One `save` writes its entries record
 * BEFORE its hard state record, so a commit index is never durable ahead of the entries it covers.
 *
 * Replay: records are applied in (sequence, offset) order. An entries batch starting at index i
 * replaces the surviving entry at i and every entry after it (Raft §5.3); the last hard state
 * wins; markers are reported in order. See wal-replay.ts for the gap rule that detects lost data.
 *
 * Recovery: damage at the very tail of the LAST segment with nothing valid after it (a partial
 * record, a CRC mismatch in the final record, zero-filled space) is a torn write: it is truncated,
 * logged and reported as `repairedTail`. Damage anywhere else rejects with WalError 'corrupt'
 * naming the file and byte offset. See wal-segment.ts.
 *
 * Rolling: after a write leaves the active segment at or beyond `segmentBytes`, the active segment
 * is fdatasynced and closed and a new one is started. A single large save can therefore make a
 * segment exceed `segmentBytes`; a batch is never split across segments.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import * as path from 'node:path';
import type { Entry, HardState, LogIndex, Logger } from '../raft/types';
import { DirLock } from './dir-lock';
import { describeCause, WalError } from './wal-error';
import {
  entriesPayloadBytes,
  HARD_STATE_PAYLOAD_BYTES,
  recordBytes,
  RecordType,
  SNAPSHOT_MARKER_PAYLOAD_BYTES,
  SEGMENT_HEADER_PAYLOAD_BYTES,
  type SnapshotMarker,
  writeEntriesRecord,
  writeHardStateRecord,
  writeRecord,
  writeSegmentHeaderRecord,
  writeSnapshotMarkerRecord,
} from './wal-record';
import { LogReplay, replaySegment, ZERO_HARD_STATE, type ReplaySegment } from './wal-replay';
import {
  formatSegmentName,
  ioError,
  listSegmentNames,
  openRealWalFile,
  scanSegment,
  SEGMENT_TEMPORARY_SUFFIX,
  syncDirectory,
  type WalFile,
  type WalFileOpener,
} from './wal-segment';

export { WalError, type WalErrorCode } from './wal-error';
export { decodeEntry, encodeEntry, type SnapshotMarker } from './wal-record';
export type { WalFile, WalFileOpener } from './wal-segment';

/** Default segment size: 64 MiB, as etcd. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/** Options shared by `Wal.create` and `Wal.open`. */
export interface WalOptions {
  /** Roll to a new segment once the active one reaches this size. Default 64 MiB. */
  readonly segmentBytes?: number;
  readonly logger?: Logger;
  /** How segment files are opened. Injection point for tests and the simulator's fake disk. */
  readonly openFile?: WalFileOpener;
}

/** Options of `Wal.create`. */
export interface WalCreateOptions extends WalOptions {
  /** Opaque bytes stored in every segment (node ID, cluster ID); returned by `Wal.open`. */
  readonly metadata: Uint8Array;
}

/** A torn tail that `Wal.open` truncated. */
export interface RepairedTail {
  /** The segment that was truncated. */
  readonly file: string;
  /** Its new length: where the valid records end. */
  readonly offset: number;
  readonly bytesDropped: number;
}

/** Everything `Wal.open` recovered. */
export interface WalOpenResult {
  /** The Wal, positioned to append after the last valid record. */
  readonly wal: Wal;
  readonly metadata: Uint8Array;
  /** The last hard state saved, or the zero hard state if none was. */
  readonly hardState: HardState;
  /**
   * Surviving entries of the retained segments, contiguous, in index order, after overwrites.
   * May include entries at or below the newest snapshot: the runtime skips those.
   */
  readonly entries: Entry[];
  /** Every snapshot marker in the retained segments, in write order. */
  readonly snapshotMarkers: SnapshotMarker[];
  /** Set when a torn tail was truncated. */
  readonly repairedTail: RepairedTail | undefined;
}

type Segment = ReplaySegment;

const SILENT_LOGGER: Logger = { debug() {}, info() {}, warn() {} };

/**
 * An open write-ahead log. Holds the directory lock until `close`.
 *
 * Calls run one at a time in call order (each waits for the previous one). Preconditions that
 * only a bug can break (non-contiguous entries, a gap after the last index) throw assertion
 * errors; every other failure rejects with {@link WalError}. After a failed write, fsync, rename
 * or unlink the Wal is poisoned: every later call rejects with code 'poisoned'.
 */
export class Wal {
  private active: WalFile | undefined;
  private activeOffset: number;
  private unsynced = false;
  private appendedBytes = 0;
  private failure: WalError | undefined;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly lock: DirLock,
    private readonly metadata: Buffer,
    private readonly segments: Segment[],
    private readonly segmentBytes: number,
    private readonly logger: Logger,
    private readonly openFile: WalFileOpener,
    /** The last entry index written, raised by markers (see wal-replay.ts, gap rule). */
    private lastIndex: LogIndex,
    private lastHardState: HardState | undefined,
    active: WalFile | undefined,
    activeOffset: number,
  ) {
    this.active = active;
    this.activeOffset = activeOffset;
  }

  /** Whether `dir` holds at least one segment file. */
  static exists(dir: string): boolean {
    return listSegmentNames(dir).length > 0;
  }

  /**
   * Creates a new WAL in `dir`: creates the directory if needed (fsyncing its parent), takes the
   * lock, writes the first segment (sequence 0, first index 0) and fsyncs the directory. Rejects
   * with 'exists' if `dir` already holds segments, 'locked' or 'io'.
   */
  static async create(dir: string, options: WalCreateOptions): Promise<Wal> {
    const logger = options.logger ?? SILENT_LOGGER;
    if (Wal.exists(dir)) throw new WalError('exists', `a WAL already exists in ${dir}`, { file: dir });
    await makeDirectory(dir);
    const lock = await DirLock.acquire(dir, logger);
    try {
      if (Wal.exists(dir)) throw new WalError('exists', `a WAL already exists in ${dir}`, { file: dir });
      await removeTemporarySegments(dir, logger);
      const wal = new Wal(dir, lock, Buffer.from(options.metadata), [], segmentBytesOption(options),
        logger, options.openFile ?? openRealWalFile, 0, undefined, undefined, 0);
      await wal.startSegment(0, 0);
      logger.info('created WAL', { dir });
      return wal;
    } catch (error) {
      await lock.release().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Opens the WAL in `dir`: takes the lock, reads every segment, repairs a torn tail of the last
   * one (truncate + fdatasync, logged) and positions the Wal to append after the last valid
   * record. Rejects with 'not-found', 'locked', 'corrupt' (file and offset in the message) or 'io'.
   */
  static async open(dir: string, options: WalOptions = {}): Promise<WalOpenResult> {
    const logger = options.logger ?? SILENT_LOGGER;
    const openFile = options.openFile ?? openRealWalFile;
    if (!Wal.exists(dir)) throw new WalError('not-found', `no WAL in ${dir}`, { file: dir });
    const lock = await DirLock.acquire(dir, logger);
    let active: WalFile | undefined;
    try {
      await removeTemporarySegments(dir, logger);
      const segments = checkSegmentChain(dir);
      const replay = new LogReplay(segments[0]?.firstIndex ?? 0);
      let metadata: Buffer | undefined;
      let repairedTail: RepairedTail | undefined;
      let activeOffset = 0;
      for (const [position, segment] of segments.entries()) {
        const isLast = position === segments.length - 1;
        let bytes: Buffer;
        try {
          bytes = await fsPromises.readFile(segment.path);
        } catch (cause) {
          throw ioError('reading segment', segment.path, cause);
        }
        const scan = scanSegment(bytes, segment.path, isLast);
        metadata = replaySegment(segment, scan.records, metadata, replay);
        if (isLast) {
          activeOffset = scan.validEndOffset;
          active = await openFile(segment.path, 'r+').catch((cause: unknown) => {
            throw ioError('opening segment', segment.path, cause);
          });
          if (scan.tornTail !== undefined) {
            const { offset, bytesDropped, reason } = scan.tornTail;
            logger.warn('truncating torn tail of the WAL', { file: segment.path, offset, bytesDropped, reason });
            try {
              await active.truncate(offset);
              await active.datasync();
            } catch (cause) {
              throw ioError('truncating torn tail', segment.path, cause);
            }
            repairedTail = { file: segment.path, offset, bytesDropped };
          }
        }
      }
      assert.ok(metadata !== undefined, 'a WAL with segments has metadata');
      const wal = new Wal(dir, lock, metadata, segments, segmentBytesOption(options), logger, openFile,
        replay.lastIndex, replay.hardState, active, activeOffset);
      logger.info('opened WAL', {
        dir, segments: segments.length, entries: replay.entries.length, lastIndex: replay.lastIndex,
      });
      return {
        wal,
        metadata: new Uint8Array(metadata),
        hardState: replay.hardState ?? ZERO_HARD_STATE,
        entries: replay.entries,
        snapshotMarkers: replay.snapshotMarkers,
        repairedTail,
      };
    } catch (error) {
      await active?.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      throw error;
    }
  }

  /** Bytes appended since this Wal was opened (read by the runtime's metrics). */
  get writtenBytes(): number {
    return this.appendedBytes;
  }

  /**
   * Appends `entries` (contiguous; the first at most the last index + 1, replacing any entries from
   * there on) and then `hardState`, in ONE write, followed when `sync` by ONE fdatasync: a whole
   * Ready is made durable together (group commit). Rolls to a new segment when the active one is
   * full. The caller MUST NOT send messages that depend on this state before it resolves with
   * `sync` true.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[], sync: boolean): Promise<void> {
    return this.run(async () => {
      checkBatch(entries, this.lastIndex);
      const entriesPayload = entries.length > 0 ? entriesPayloadBytes(entries) : 0;
      const totalBytes = (entries.length > 0 ? recordBytes(entriesPayload) : 0)
        + (hardState !== undefined ? recordBytes(HARD_STATE_PAYLOAD_BYTES) : 0);
      if (totalBytes === 0) {
        if (sync && this.unsynced) await this.syncActive();
        return;
      }
      const buffer = Buffer.allocUnsafe(totalBytes);
      let cursor = 0;
      if (entries.length > 0) cursor = writeEntriesRecord(buffer, cursor, entries, entriesPayload);
      if (hardState !== undefined) cursor = writeHardStateRecord(buffer, cursor, hardState);
      assert.equal(cursor, totalBytes, 'save buffer size mismatch');
      await this.append(buffer, sync);
      const last = entries[entries.length - 1];
      if (last !== undefined) this.lastIndex = last.index;
      if (hardState !== undefined) this.lastHardState = hardState;
      await this.rollIfFull();
    });
  }

  /**
   * Records that a snapshot at `{ index, term }` exists; written and fsynced. The runtime MUST save
   * the snapshot file BEFORE its marker (etcd-io/etcd#12691), so a marker always names a snapshot
   * that is on disk. Raises the last index to `index` if it is below it.
   */
  saveSnapshotMarker(marker: SnapshotMarker): Promise<void> {
    return this.run(async () => {
      const buffer = Buffer.allocUnsafe(recordBytes(SNAPSHOT_MARKER_PAYLOAD_BYTES));
      writeSnapshotMarkerRecord(buffer, 0, marker);
      await this.append(buffer, true);
      this.lastIndex = Math.max(this.lastIndex, marker.index);
      await this.rollIfFull();
    });
  }

  /**
   * Deletes the oldest segments whose surviving entries are all below `index`, oldest first, then
   * fsyncs the directory. Never deletes the segment holding `index` nor the active segment. Call it
   * only with an index at or below that of a snapshot already saved (file and marker).
   */
  releaseTo(index: LogIndex): Promise<void> {
    return this.run(async () => {
      // A segment's surviving entries are below the first index of every later segment.
      let releasable = 0;
      let laterFirstIndexMinimum = Number.POSITIVE_INFINITY;
      const minimumAfter: number[] = new Array<number>(this.segments.length);
      for (let position = this.segments.length - 1; position >= 0; position--) {
        minimumAfter[position] = laterFirstIndexMinimum;
        laterFirstIndexMinimum = Math.min(laterFirstIndexMinimum, this.segments[position]?.firstIndex ?? 0);
      }
      while (releasable < this.segments.length - 1 && (minimumAfter[releasable] ?? Infinity) <= index) releasable++;
      if (releasable === 0) return;
      for (const segment of this.segments.slice(0, releasable)) {
        try {
          await fsPromises.unlink(segment.path);
        } catch (cause) {
          throw this.poison(ioError('deleting segment', segment.path, cause));
        }
      }
      const released = this.segments.splice(0, releasable);
      try {
        await syncDirectory(this.dir);
      } catch (cause) {
        throw this.poison(ioError('fsync of directory', this.dir, cause));
      }
      this.logger.info('released WAL segments', { releasedTo: index, segments: released.map((s) => path.basename(s.path)) });
    });
  }

  /**
   * Makes any unsynced writes durable, closes the active segment and releases the lock. Closing a
   * closed Wal does nothing. Closing a poisoned Wal releases the lock and rejects with 'poisoned'.
   */
  close(): Promise<void> {
    const result = this.queue.then(async () => {
      if (this.closed) return;
      this.closed = true;
      let error: unknown;
      if (this.failure === undefined && this.unsynced) {
        try {
          await this.syncActive();
        } catch (cause) {
          error = cause;
        }
      }
      try {
        await this.active?.close();
      } catch (cause) {
        if (this.failure === undefined) error ??= ioError('closing segment', this.activePath(), cause);
      }
      this.active = undefined;
      try {
        await this.lock.release();
      } catch (cause) {
        error ??= cause;
      }
      if (this.failure !== undefined) throw this.poisonedError();
      if (error !== undefined) throw error;
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Runs `body` after every earlier call, unless the Wal is closed or poisoned. */
  private run<T>(body: () => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      if (this.failure !== undefined) throw this.poisonedError();
      if (this.closed) throw new WalError('closed', `the WAL in ${this.dir} is closed`, { file: this.dir });
      return body();
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private poisonedError(): WalError {
    return new WalError('poisoned', `the WAL in ${this.dir} is unusable after an earlier failure: ${this.failure?.message}`,
      { file: this.failure?.file ?? this.dir, cause: this.failure });
  }

  /** Marks the Wal failed for good and returns the error to throw. */
  private poison(error: WalError): WalError {
    this.failure ??= error;
    this.logger.warn('WAL failed; refusing all further writes', { error: error.message });
    return error;
  }

  private activePath(): string {
    return this.segments[this.segments.length - 1]?.path ?? this.dir;
  }

  /** Writes `buffer` at the end of the active segment; fdatasyncs when `sync`. */
  private async append(buffer: Buffer, sync: boolean): Promise<void> {
    const active = this.active;
    assert.ok(active !== undefined, 'an open Wal has an active segment');
    try {
      await writeFully(active, buffer, this.activeOffset);
    } catch (cause) {
      throw this.poison(ioError('write', this.activePath(), cause));
    }
    this.activeOffset += buffer.length;
    this.appendedBytes += buffer.length;
    this.unsynced = true;
    if (sync) await this.syncActive();
  }

  private async syncActive(): Promise<void> {
    try {
      await this.active?.datasync();
    } catch (cause) {
      throw this.poison(ioError('fdatasync', this.activePath(), cause));
    }
    this.unsynced = false;
  }

  private async rollIfFull(): Promise<void> {
    if (this.activeOffset < this.segmentBytes) return;
    const previous = this.segments[this.segments.length - 1];
    assert.ok(previous !== undefined && this.active !== undefined, 'an open Wal has an active segment');
    if (this.unsynced) await this.syncActive();
    try {
      await this.active.close();
    } catch (cause) {
      throw this.poison(ioError('closing segment', previous.path, cause));
    }
    this.active = undefined;
    await this.startSegment(previous.sequence + 1, this.lastIndex + 1);
  }

  /**
   * Creates segment (`sequence`, `firstIndex`) with its preamble (header, metadata, latest hard
   * state) as a temporary file, fsyncs it, renames it into place, fsyncs the directory, and makes
   * it the active segment.
   */
  private async startSegment(sequence: number, firstIndex: LogIndex): Promise<void> {
    const finalPath = path.join(this.dir, formatSegmentName({ sequence, firstIndex }));
    const temporaryPath = finalPath.slice(0, -'.wal'.length) + SEGMENT_TEMPORARY_SUFFIX;
    const hardState = this.lastHardState;
    const preamble = Buffer.allocUnsafe(recordBytes(SEGMENT_HEADER_PAYLOAD_BYTES) + recordBytes(this.metadata.length)
      + (hardState !== undefined ? recordBytes(HARD_STATE_PAYLOAD_BYTES) : 0));
    let cursor = writeSegmentHeaderRecord(preamble, 0, sequence, firstIndex);
    cursor = writeRecord(preamble, cursor, RecordType.Metadata, this.metadata);
    if (hardState !== undefined) cursor = writeHardStateRecord(preamble, cursor, hardState);
    assert.equal(cursor, preamble.length, 'segment preamble size mismatch');
    let file: WalFile | undefined;
    try {
      file = await this.openFile(temporaryPath, 'wx');
      await writeFully(file, preamble, 0);
      await file.sync();
      await fsPromises.rename(temporaryPath, finalPath);
      await syncDirectory(this.dir);
    } catch (cause) {
      await file?.close().catch(() => undefined);
      throw this.poison(ioError('creating segment', finalPath, cause));
    }
    this.segments.push({ sequence, firstIndex, path: finalPath });
    this.active = file;
    this.activeOffset = preamble.length;
    this.unsynced = false;
    this.logger.debug('started WAL segment', { file: finalPath });
  }
}

/** Asserts the save precondition: contiguous entries starting at most at lastIndex + 1. */
function checkBatch(entries: readonly Entry[], lastIndex: LogIndex): void {
  const first = entries[0];
  if (first === undefined) return;
  assert.ok(first.index >= 1 && first.index <= lastIndex + 1,
    `entries start at ${first.index} but the WAL's last index is ${lastIndex}: a gap`);
  for (let position = 1; position < entries.length; position++) {
    assert.equal(entries[position]?.index, first.index + position, 'entries of one save must be contiguous');
  }
}

/** Writes all of `buffer` at `position`, looping over short writes. */
async function writeFully(file: WalFile, buffer: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await file.write(buffer, written, buffer.length - written, position + written);
    if (bytesWritten <= 0) throw new Error(`write made no progress at byte ${position + written}`);
    written += bytesWritten;
  }
}

function segmentBytesOption(options: WalOptions): number {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  assert.ok(Number.isSafeInteger(segmentBytes) && segmentBytes > 0, `bad segmentBytes ${segmentBytes}`);
  return segmentBytes;
}

/** Creates `dir` (and missing parents), fsyncing the parent of every directory created. */
async function makeDirectory(dir: string): Promise<void> {
  const absolute = path.resolve(dir);
  try {
    const firstCreated = await fsPromises.mkdir(absolute, { recursive: true });
    if (firstCreated === undefined) return;
    for (let current = absolute; ; current = path.dirname(current)) {
      await syncDirectory(path.dirname(current));
      if (current === firstCreated || current === path.dirname(current)) break;
    }
  } catch (cause) {
    throw new WalError('io', `cannot create ${dir}: ${describeCause(cause)}`, { file: dir, cause });
  }
}

/** Deletes `*.wal.tmp` files: segments whose creation a crash interrupted before the rename. */
async function removeTemporarySegments(dir: string, logger: Logger): Promise<void> {
  for (const fileName of fs.readdirSync(dir)) {
    if (!fileName.endsWith(SEGMENT_TEMPORARY_SUFFIX)) continue;
    const file = path.join(dir, fileName);
    logger.warn('removing an unfinished WAL segment', { file });
    try {
      await fsPromises.unlink(file);
    } catch (cause) {
      throw ioError('removing unfinished segment', file, cause);
    }
  }
}

/** The segments of `dir` in order; their sequence numbers must have no gaps. */
function checkSegmentChain(dir: string): Segment[] {
  const names = listSegmentNames(dir);
  const segments: Segment[] = [];
  for (const name of names) {
    const previous = segments[segments.length - 1];
    const file = path.join(dir, name.fileName);
    if (previous !== undefined && name.sequence !== previous.sequence + 1) {
      throw new WalError('corrupt', `WAL segment ${file} follows sequence ${previous.sequence}: segments are missing`,
        { file, offset: 0 });
    }
    segments.push({ sequence: name.sequence, firstIndex: name.firstIndex, path: file });
  }
  if (segments.length === 0) throw new WalError('not-found', `no WAL in ${dir}`, { file: dir });
  return segments;
}
