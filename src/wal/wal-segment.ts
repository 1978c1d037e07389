/**
 * WAL segment files: their names, the file port the Wal writes through, directory fsync, and the
 * scan that splits one segment's bytes into records and classifies any damage.
 *
 * Damage classification (the heart of crash recovery):
 * - A record that is truncated, fails its CRC, or has an unknown type, in the LAST segment, with
 *   no valid record anywhere after it, is a torn tail: the process died (or the machine lost
 *   power) in the middle of the final write. It was never acknowledged (the fdatasync had not
 *   returned), so dropping it is safe. Zero-filled space is the same case.
 * - The same damage followed by any valid record, or anywhere in an earlier segment, cannot be
 *   explained by a crash: acknowledged data is damaged. That is 'corrupt', never a silent
 *   truncation.
 * "Followed by any valid record" is decided by trying every later byte offset as a record start
 * (length in range, known type, CRC matches). Per-record CRCs make that possible; a CRC chained
 * over all earlier records would make everything after the first bad record unverifiable.
 */
import * as fs from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { decodeRecordAt, RECORD_OVERHEAD_BYTES, RecordType } from './wal-record';
import { crc32 } from 'node:zlib';
import { describeCause, WalError } from './wal-error';

/** Suffix of segment files. */
export const SEGMENT_SUFFIX = '.wal';
/** Suffix of a segment being created (renamed to SEGMENT_SUFFIX once complete and fsynced). */
export const SEGMENT_TEMPORARY_SUFFIX = '.wal.tmp';

const SEGMENT_NAME_PATTERN = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** A segment's identity, parsed from (and always equal to) its file name. */
export interface SegmentName {
  /** Position in the chain of segments: 0, 1, 2, ... with no gaps. */
  readonly sequence: number;
  /** The writer's last index + 1 when the segment was started (0 for the very first segment). */
  readonly firstIndex: number;
}

/** `<sequence 16 hex>-<firstIndex 16 hex>.wal` */
export function formatSegmentName(name: SegmentName): string {
  return `${hex16(name.sequence)}-${hex16(name.firstIndex)}${SEGMENT_SUFFIX}`;
}

/** Parses a segment file name; undefined for anything that is not one. */
export function parseSegmentName(fileName: string): SegmentName | undefined {
  const match = SEGMENT_NAME_PATTERN.exec(fileName);
  if (match === null) return undefined;
  const sequence = Number.parseInt(match[1] ?? '', 16);
  const firstIndex = Number.parseInt(match[2] ?? '', 16);
  if (!Number.isSafeInteger(sequence) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { sequence, firstIndex };
}

function hex16(value: number): string {
  return value.toString(16).padStart(16, '0');
}

/** Segment file names in `dir`, sorted by sequence (synchronous; `dir` may be missing). */
export function listSegmentNames(dir: string): Array<SegmentName & { readonly fileName: string }> {
  if (!fs.existsSync(dir)) return [];
  const segments: Array<SegmentName & { fileName: string }> = [];
  for (const fileName of fs.readdirSync(dir)) {
    const name = parseSegmentName(fileName);
    if (name !== undefined) segments.push({ ...name, fileName });
  }
  return segments.sort((a, b) => a.sequence - b.sequence);
}

/**
 * The file operations the Wal performs on a segment ({@link SegmentFile} on disk); tests
 * and the simulator's fake disk inject their own to fail writes or fsyncs on demand.
 */
export interface WalFile {
  /** Writes `length` bytes of `buffer` from `offset` at file `position` (never appends blindly). */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  /** fdatasync: data and the metadata needed to read it back (the file size). */
  datasync(): Promise<void>;
  /** fsync: data and all metadata. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens a segment: 'r+' an existing one for writing, 'wx' a new one that must not exist. */
export type WalFileOpener = (path: string, flags: 'r+' | 'wx') => Promise<WalFile>;

/**
 * A segment on disk: a FileHandle whose writes are synchronous. A record lands in the page cache
 * in microseconds (etcd's WAL writes the same way), while handing the write to the thread pool
 * cost the main thread 100-200 µs per save on the development VM (waking an idle worker), on top
 * of the same cost for the fdatasync. The fsyncs, which wait for the disk, stay on the thread pool.
 */
class SegmentFile implements WalFile {
  constructor(private readonly handle: fsPromises.FileHandle) {}

  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    try {
      return Promise.resolve({ bytesWritten: fs.writeSync(this.handle.fd, buffer, offset, length, position) });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** The real opener: a {@link SegmentFile}. */
export const openRealWalFile: WalFileOpener = async (path, flags) => new SegmentFile(await fsPromises.open(path, flags, 0o600));

/**
 * Makes a directory's entries durable (created, renamed or deleted files). REQUIRED after creating
 * a file whose existence matters, after a rename, and after deletions that must not come back.
 */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsPromises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** One record found in a segment, with its byte offset. */
export interface ScannedRecord {
  readonly type: RecordType;
  readonly payload: Buffer;
  readonly offset: number;
}

/** A torn tail found (not yet removed) at the end of the last segment. */
export interface TornTail {
  /** Where the valid records end; the file is truncated to this many bytes. */
  readonly offset: number;
  readonly bytesDropped: number;
  readonly reason: string;
}

/** The records of one segment, and the torn tail if there is one. */
export interface SegmentScan {
  readonly records: readonly ScannedRecord[];
  /** Byte offset just past the last valid record. */
  readonly validEndOffset: number;
  readonly tornTail?: TornTail;
}

/**
 * Splits a segment's bytes into records. `isLastSegment` allows a torn tail (see the module
 * overview); any other damage throws WalError 'corrupt' naming `file` and the byte offset.
 */
export function scanSegment(bytes: Buffer, file: string, isLastSegment: boolean): SegmentScan {
  const records: ScannedRecord[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const result = decodeRecordAt(bytes, offset);
    if (result.status === 'ok') {
      records.push({ type: result.type, payload: result.payload, offset });
      offset = result.nextOffset;
      continue;
    }
    const reason = isZeroFilled(bytes, offset) ? 'zero-filled space' : result.reason;
    if (!isLastSegment) {
      throw corruptRecord(file, offset, `${reason} in a segment that is not the last one`);
    }
    const followingRecordOffset = findValidRecord(bytes, offset + 1);
    if (followingRecordOffset !== undefined) {
      throw corruptRecord(file, offset, `${reason}, followed by a valid record at offset ${followingRecordOffset}`);
    }
    return { records, validEndOffset: offset, tornTail: { offset, bytesDropped: bytes.length - offset, reason } };
  }
  return { records, validEndOffset: offset };
}

/** The WalError for a bad record: names the file and byte offset in the message. */
export function corruptRecord(file: string, offset: number, reason: string): WalError {
  return new WalError('corrupt', `corrupt WAL record in ${file} at byte offset ${offset}: ${reason}`, { file, offset });
}

function isZeroFilled(bytes: Buffer, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The first offset at or after `from` where a complete, CRC-valid record of a known type starts. */
function findValidRecord(bytes: Buffer, from: number): number | undefined {
  for (let offset = from; offset + RECORD_OVERHEAD_BYTES <= bytes.length; offset++) {
    const payloadBytes = bytes.readUInt32LE(offset);
    if (payloadBytes > bytes.length - offset - RECORD_OVERHEAD_BYTES) continue;
    const type = bytes.readUInt8(offset + 4);
    if (type < RecordType.SegmentHeader || type > RecordType.SnapshotMarker) continue;
    const crcOffset = offset + 5 + payloadBytes;
    if (bytes.readUInt32LE(crcOffset) === crc32(bytes.subarray(offset, crcOffset))) return offset;
  }
  return undefined;
}

/** Wraps a failed file-system call into WalError 'io'. */
export function ioError(what: string, file: string, cause: unknown): WalError {
  return new WalError('io', `${what} failed for ${file}: ${describeCause(cause)}`, { file, cause });
}
