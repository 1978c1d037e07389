/**
 * The snapshot image of the MVCC store: its whole durable state (meta, every kept history record)
 * as a stream of checksummed frames, produced by `MvccStore.writeSnapshot` and consumed by
 * `MvccStore.restoreSnapshot`. The key index is not in the image: it is rebuilt from the records,
 * exactly as at open.
 *
 * Format, version 2 (all integers big-endian; version 1 is the same without lease frames and is
 * still read):
 * ```
 * image   = header frame* end-frame
 * header  = magic "raftkvmv" (8 bytes) | version u32 (1) | applied index u64 | revision u64
 *         | compact revision u64
 * frame   = kind u8 | payload length u32 | CRC-32 of payload u32 | payload
 *   kind 1, records: (record key length u16 | record key | record length u32 | record)+
 *           record key and record exactly as stored in level (record-codec.ts)
 *   kind 3, leases:  (lease key length u16 | lease key | lease value length u32 | lease value)+
 *           exactly as stored in level (record-codec.ts); after every records frame
 *   kind 2, end:     record + lease count u64 | SHA-256 (32 bytes) of every image byte before this frame
 * ```
 * Records appear in strictly ascending record-key (revision) order, leases in ascending key order. The CRC catches a damaged
 * frame as soon as it arrives; the count and digest catch lost, repeated or reordered frames and
 * truncation. Nothing may follow the end frame. Every violation is a {@link MvccSnapshotImageError}.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { LogIndex } from '../raft/types';
import { checkRecord, decodeLeaseRecord } from './record-codec';
import { forEachPacked, type PackedRecords, type RecordBatch } from '../storage/level-worker';
import type { Revision } from './types';

/** Current image format version. */
export const MVCC_SNAPSHOT_IMAGE_VERSION = 2;
const MAGIC = Buffer.from('raftkvmv', 'ascii');
const HEADER_BYTES = 8 + 4 + 8 + 8 + 8;
const FRAME_HEADER_BYTES = 1 + 4 + 4;
const FRAME_TARGET_BYTES = 64 * 1024;
const FRAME_PAYLOAD_MAX_BYTES = 256 * 1024 * 1024;
const KIND_RECORDS = 1;
const KIND_END = 2;
const KIND_LEASES = 3;
const END_PAYLOAD_BYTES = 8 + 32;

/** The meta values carried by the image header. */
export interface SnapshotImageHeader {
  readonly appliedIndex: LogIndex;
  readonly revision: Revision;
  readonly compactRevision: Revision;
}

/** Why an image was refused. Stable strings. */
export type MvccSnapshotImageErrorReason =
  | 'bad-magic'
  | 'unknown-version'
  | 'truncated'
  | 'frame-too-large'
  | 'checksum-mismatch'
  | 'malformed-record'
  | 'out-of-order'
  | 'count-mismatch'
  | 'digest-mismatch'
  | 'trailing-bytes'
  | 'index-mismatch';

/** An image failed validation; `reason` is stable. */
export class MvccSnapshotImageError extends Error {
  /** Stable code of the failure. */
  readonly reason: MvccSnapshotImageErrorReason;

  constructor(reason: MvccSnapshotImageErrorReason, detail: string) {
    super(`mvcc snapshot image rejected (${reason}): ${detail}`);
    this.name = 'MvccSnapshotImageError';
    this.reason = reason;
  }
}

/**
 * Encodes an image from `header` and the store's records (level record keys and values, in
 * ascending key order, in packed batches: src/storage/level-worker.ts) and its lease records
 * (level keys and values, pinned by the caller). The record source is consumed lazily.
 */
export async function* writeSnapshotImage(
  header: SnapshotImageHeader,
  records: AsyncIterable<PackedRecords>,
  leases: ReadonlyArray<readonly [Buffer, Buffer]> = [],
): AsyncGenerator<Uint8Array> {
  const digest = createHash('sha256');
  const emit = (bytes: Buffer): Buffer => {
    digest.update(bytes);
    return bytes;
  };
  const head = Buffer.allocUnsafe(HEADER_BYTES);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(MVCC_SNAPSHOT_IMAGE_VERSION, 8);
  head.writeBigUInt64BE(BigInt(header.appliedIndex), 12);
  head.writeBigUInt64BE(BigInt(header.revision), 20);
  head.writeBigUInt64BE(BigInt(header.compactRevision), 28);
  yield emit(head);
  // Records are copied straight from level's packed batches into the frame being built (one
  // allocation per frame, none per record).
  const frames = new RecordFrameBuilder();
  let count = 0n;
  let recordCount = 0;
  const taken: Buffer[] = [];
  const add = (bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): void => {
    frames.add(bytes, keyStart, keyEnd, valueStart, valueEnd);
    recordCount += 1;
    if (frames.payloadBytes() >= FRAME_TARGET_BYTES) taken.push(frames.take());
  };
  for await (const batch of records) {
    forEachPacked(batch, add);
    for (const frameBytes of taken.splice(0)) yield emit(frameBytes);
  }
  count = BigInt(recordCount);
  if (frames.payloadBytes() > 0) yield emit(frames.take());
  const sortedLeases = [...leases].sort(([a], [b]) => Buffer.compare(a, b));
  for (let start = 0; start < sortedLeases.length; start += 4096) {
    const leaseParts: Buffer[] = [];
    for (const [key, value] of sortedLeases.slice(start, start + 4096)) {
      const prefix = Buffer.allocUnsafe(2);
      prefix.writeUInt16BE(key.length);
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(value.length);
      leaseParts.push(prefix, key, length, value);
      count += 1n;
    }
    yield emit(frame(KIND_LEASES, Buffer.concat(leaseParts)));
  }
  const end = Buffer.allocUnsafe(END_PAYLOAD_BYTES);
  end.writeBigUInt64BE(count, 0);
  digest.digest().copy(end, 8);
  yield frame(KIND_END, end);
}

/**
 * Builds KIND_RECORDS frames in place: the frame header, then `u16 key length | key | u32 value
 * length | value` per record, exactly as `frame(KIND_RECORDS, payload)` would lay them out.
 */
class RecordFrameBuilder {
  private buffer = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 2 * FRAME_TARGET_BYTES);
  private used = FRAME_HEADER_BYTES;

  payloadBytes(): number {
    return this.used - FRAME_HEADER_BYTES;
  }

  /** Adds the record whose level key is `bytes[keyStart, keyEnd)` and value `bytes[valueStart, valueEnd)`. */
  add(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): void {
    const size = 2 + (keyEnd - keyStart) + 4 + (valueEnd - valueStart);
    if (this.used + size > this.buffer.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.used + size));
      this.buffer.copy(bigger, 0, 0, this.used);
      this.buffer = bigger;
    }
    let at = this.used;
    at = this.buffer.writeUInt16BE(keyEnd - keyStart, at);
    at += bytes.copy(this.buffer, at, keyStart, keyEnd);
    at = this.buffer.writeUInt32BE(valueEnd - valueStart, at);
    at += bytes.copy(this.buffer, at, valueStart, valueEnd);
    this.used = at;
  }

  /** The frame built so far (a buffer of its own); the builder starts a new one. */
  take(): Buffer {
    const payload = this.buffer.subarray(FRAME_HEADER_BYTES, this.used);
    this.buffer[0] = KIND_RECORDS;
    this.buffer.writeUInt32BE(payload.length, 1);
    this.buffer.writeUInt32BE(crc32(payload), 5);
    const out = this.buffer.subarray(0, this.used);
    this.buffer = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 2 * FRAME_TARGET_BYTES);
    this.used = FRAME_HEADER_BYTES;
    return out;
  }
}

function frame(kind: number, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  head[0] = kind;
  head.writeUInt32BE(payload.length, 1);
  head.writeUInt32BE(crc32(payload), 5);
  return Buffer.concat([head, payload]);
}

/** Accumulates chunks and hands out exact byte counts. */
class ByteReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly `count` bytes, or undefined at a clean end of stream before the first byte. */
  async read(count: number): Promise<Buffer | undefined> {
    while (this.bufferedBytes < count && !this.done) {
      const next = await this.source.next();
      if (next.done === true) this.done = true;
      else {
        const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
        this.buffered.push(chunk);
        this.bufferedBytes += chunk.length;
      }
    }
    if (this.bufferedBytes === 0 && count > 0) return undefined;
    if (this.bufferedBytes < count) throw new MvccSnapshotImageError('truncated', `wanted ${count} bytes, stream ended after ${this.bufferedBytes}`);
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedBytes);
    const result = all.subarray(0, count);
    const rest = all.subarray(count);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return result;
  }
}

/** The records of one frame of an image, handed to {@link readSnapshotImage}'s `write`. */
export interface ImageFrame extends RecordBatch {
  /** Lease records (level lease keys and values), not history records. */
  readonly leases: boolean;
}

/**
 * Decodes and validates an image, handing the records of each frame (level keys and values, as
 * bounds in the frame: no copy per record) to `write` in order as they arrive, lease records too
 * (validated as leases), and returns the header once the end frame checked out. `expectedIndex`
 * must equal the image's applied index ('any': not checked, for seeding a new cluster).
 */
export async function readSnapshotImage(
  chunks: AsyncIterable<Uint8Array>,
  expectedIndex: LogIndex | 'any',
  write: (frame: ImageFrame) => Promise<void>,
): Promise<SnapshotImageHeader> {
  const reader = new ByteReader(chunks[Symbol.asyncIterator]());
  const digest = createHash('sha256');
  const head = await reader.read(HEADER_BYTES);
  if (head === undefined) throw new MvccSnapshotImageError('truncated', 'empty image');
  if (!head.subarray(0, 8).equals(MAGIC)) throw new MvccSnapshotImageError('bad-magic', 'not an MVCC snapshot image');
  const version = head.readUInt32BE(8);
  if (version !== MVCC_SNAPSHOT_IMAGE_VERSION && version !== 1) throw new MvccSnapshotImageError('unknown-version', `version ${version}`);
  const header: SnapshotImageHeader = {
    appliedIndex: Number(head.readBigUInt64BE(12)),
    revision: Number(head.readBigUInt64BE(20)),
    compactRevision: Number(head.readBigUInt64BE(28)),
  };
  if (expectedIndex !== 'any' && header.appliedIndex !== expectedIndex) {
    throw new MvccSnapshotImageError('index-mismatch', `image applied index ${header.appliedIndex}, expected ${expectedIndex}`);
  }
  digest.update(head);
  let count = 0n;
  // The last key of each kind, as bounds in the payload that holds it (payloads are never reused).
  const last: Record<'records' | 'leases', { bytes: Buffer; start: number; end: number }> = {
    records: { bytes: EMPTY, start: 0, end: 0 },
    leases: { bytes: EMPTY, start: 0, end: 0 },
  };
  for (;;) {
    const frameHead = await reader.read(FRAME_HEADER_BYTES);
    if (frameHead === undefined) throw new MvccSnapshotImageError('truncated', 'no end frame');
    const kind = frameHead[0]!;
    const length = frameHead.readUInt32BE(1);
    if (length > FRAME_PAYLOAD_MAX_BYTES) throw new MvccSnapshotImageError('frame-too-large', `${length} bytes`);
    const payload = length === 0 ? Buffer.alloc(0) : await reader.read(length);
    if (payload === undefined) throw new MvccSnapshotImageError('truncated', 'frame payload missing');
    if (crc32(payload) !== frameHead.readUInt32BE(5)) throw new MvccSnapshotImageError('checksum-mismatch', 'frame CRC');
    if (kind === KIND_END) {
      if (payload.length !== END_PAYLOAD_BYTES) throw new MvccSnapshotImageError('malformed-record', 'end frame size');
      if (payload.readBigUInt64BE(0) !== count) throw new MvccSnapshotImageError('count-mismatch', `${count} records, end frame says ${payload.readBigUInt64BE(0)}`);
      if (!payload.subarray(8).equals(digest.digest())) throw new MvccSnapshotImageError('digest-mismatch', 'image digest');
      if ((await reader.read(1)) !== undefined) throw new MvccSnapshotImageError('trailing-bytes', 'bytes after the end frame');
      return header;
    }
    const isLeases = kind === KIND_LEASES && version >= 2;
    if (kind !== KIND_RECORDS && !isLeases) throw new MvccSnapshotImageError('malformed-record', `frame kind ${kind}`);
    digest.update(frameHead);
    digest.update(payload);
    const previous = isLeases ? last.leases : last.records;
    const bounds: number[] = [];
    let offset = 0;
    while (offset < payload.length) {
      if (offset + 2 > payload.length) throw new MvccSnapshotImageError('malformed-record', 'key length');
      const keyStart = offset + 2;
      const keyEnd = keyStart + payload.readUInt16BE(offset);
      if (keyEnd + 4 > payload.length) throw new MvccSnapshotImageError('malformed-record', 'key');
      const valueStart = keyEnd + 4;
      const valueEnd = valueStart + payload.readUInt32BE(keyEnd);
      if (valueEnd > payload.length) throw new MvccSnapshotImageError('malformed-record', 'value');
      try {
        if (isLeases) decodeLeaseRecord(payload.subarray(keyStart, keyEnd), payload.subarray(valueStart, valueEnd));
        else {
          const main = checkRecord(payload, keyStart, keyEnd, valueStart, valueEnd);
          if (main > header.revision) throw new Error(`record at ${main} beyond revision ${header.revision}`);
        }
      } catch (error) {
        throw new MvccSnapshotImageError('malformed-record', (error as Error).message);
      }
      if (previous.bytes !== EMPTY && payload.compare(previous.bytes, previous.start, previous.end, keyStart, keyEnd) <= 0) {
        throw new MvccSnapshotImageError('out-of-order', 'keys not ascending');
      }
      previous.bytes = payload;
      previous.start = keyStart;
      previous.end = keyEnd;
      bounds.push(keyStart, keyEnd, valueStart, valueEnd);
      offset = valueEnd;
      count += 1n;
    }
    await write({ leases: isLeases, bytes: payload, bounds: Uint32Array.from(bounds) });
  }
}

const EMPTY: Buffer = Buffer.alloc(0);
