/**
 * Binary codecs of the write-ahead log: the record frame and the payload of each record type.
 *
 * The format itself is documented once, at the top of wal.ts; this module implements it. All
 * integers are little-endian. 64-bit fields that hold a `Term` or `LogIndex` are JavaScript
 * numbers on the outside and are checked to be safe integers both when written (a bug otherwise)
 * and when read (corruption otherwise).
 *
 * Encoders write into a caller-provided Buffer at an offset so that `Wal.save` can size one
 * buffer for a whole Ready and fill it without intermediate copies. Decoders validate everything
 * (the WAL is a gateway: bytes from disk are untrusted) and report malformed input as values.
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { EntryType, type Entry, type HardState, type LogIndex, type Term } from '../raft/types';
import { WalError } from './wal-error';

/** The kinds of WAL record. The numbers are on disk: never renumber. */
export enum RecordType {
  /** First record of every segment: magic, format version, sequence number, first index. */
  SegmentHeader = 1,
  /** Second record of every segment: the opaque metadata given to `Wal.create`. */
  Metadata = 2,
  /** A batch of contiguous raft entries. */
  Entries = 3,
  /** A raft HardState. */
  HardState = 4,
  /** A snapshot marker: the index and term of a snapshot saved beside the WAL. */
  SnapshotMarker = 5,
}

/** Bytes a record adds around its payload: length (4), type (1), CRC (4). */
export const RECORD_OVERHEAD_BYTES = 9;
/** Bytes of an encoded entry before its data: term (8), index (8), type (1), data length (4). */
export const ENTRY_HEADER_BYTES = 21;
/** Bytes of a HardState payload: term (8), vote (8), commit (8). */
export const HARD_STATE_PAYLOAD_BYTES = 24;
/** Bytes of a snapshot marker payload: index (8), term (8). */
export const SNAPSHOT_MARKER_PAYLOAD_BYTES = 16;
/** Bytes of a segment header payload: magic (8), version (4), sequence (8), first index (8). */
export const SEGMENT_HEADER_PAYLOAD_BYTES = 28;
/** The magic that opens every segment header payload. */
export const SEGMENT_MAGIC = Buffer.from('raftkvwl', 'latin1');
/** The on-disk format version written by this code. */
export const WAL_FORMAT_VERSION = 1;

const TWO_TO_THE_32 = 2 ** 32;
/** The high word of Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

/** A snapshot marker as stored in the WAL. */
export interface SnapshotMarker {
  readonly index: LogIndex;
  readonly term: Term;
}

/** The decoded payload of a segment header record. */
export interface SegmentHeader {
  readonly version: number;
  readonly sequence: number;
  readonly firstIndex: LogIndex;
}

/** Writes a non-negative safe integer as an unsigned 64-bit little-endian value. */
export function writeUint64(target: Buffer, offset: number, value: number): number {
  assert.ok(Number.isSafeInteger(value) && value >= 0, `not a non-negative safe integer: ${value}`);
  target.writeUInt32LE(value % TWO_TO_THE_32, offset);
  target.writeUInt32LE(Math.floor(value / TWO_TO_THE_32), offset + 4);
  return offset + 8;
}

/** Reads an unsigned 64-bit little-endian value; undefined if it exceeds 2^53 - 1. */
export function readUint64(source: Buffer, offset: number): number | undefined {
  const low = source.readUInt32LE(offset);
  const high = source.readUInt32LE(offset + 4);
  if (high > MAX_SAFE_HIGH_WORD) return undefined;
  return high * TWO_TO_THE_32 + low;
}

// ---------------------------------------------------------------------------------------------
// Record frame: [payload length u32][type u8][payload][crc32 u32 over length, type and payload]
// ---------------------------------------------------------------------------------------------

/** Total bytes of a record whose payload has `payloadBytes` bytes. */
export function recordBytes(payloadBytes: number): number {
  return RECORD_OVERHEAD_BYTES + payloadBytes;
}

/**
 * Writes the frame head (length and type) of a record at `offset` and returns the offset where
 * the payload goes. The caller writes exactly `payloadBytes` bytes there and THEN calls
 * {@link sealRecord}, which computes the CRC over what was written.
 */
export function beginRecord(target: Buffer, offset: number, type: RecordType, payloadBytes: number): number {
  assert.ok(payloadBytes >= 0 && payloadBytes <= 0xffff_ffff, `record payload too large: ${payloadBytes} bytes`);
  target.writeUInt32LE(payloadBytes, offset);
  target.writeUInt8(type, offset + 4);
  return offset + 5;
}

/** Computes and writes the CRC of the record that starts at `offset`; returns its end offset. */
export function sealRecord(target: Buffer, offset: number, payloadBytes: number): number {
  const crcOffset = offset + 5 + payloadBytes;
  target.writeUInt32LE(crc32(target.subarray(offset, crcOffset)), crcOffset);
  return crcOffset + 4;
}

/** Writes a whole record with the given payload at `offset`; returns its end offset. */
export function writeRecord(target: Buffer, offset: number, type: RecordType, payload: Uint8Array): number {
  const payloadOffset = beginRecord(target, offset, type, payload.length);
  target.set(payload, payloadOffset);
  return sealRecord(target, offset, payload.length);
}

/** Outcome of decoding the record at some offset. */
export type RecordDecodeResult =
  | { readonly status: 'ok'; readonly type: RecordType; readonly payload: Buffer; readonly nextOffset: number }
  /** The bytes end before the record does (a partial length, header, payload or CRC). */
  | { readonly status: 'truncated'; readonly reason: string }
  /** The record is complete but its CRC or type is wrong. */
  | { readonly status: 'bad'; readonly reason: string };

/** Decodes the record framed at `offset` of `source`, validating length, CRC and type. */
export function decodeRecordAt(source: Buffer, offset: number): RecordDecodeResult {
  const available = source.length - offset;
  if (available < RECORD_OVERHEAD_BYTES) {
    return { status: 'truncated', reason: `partial record header (${available} bytes before end of file)` };
  }
  const payloadBytes = source.readUInt32LE(offset);
  if (payloadBytes > available - RECORD_OVERHEAD_BYTES) {
    return {
      status: 'truncated',
      reason: `record of ${payloadBytes} payload bytes runs past end of file (${available} bytes left)`,
    };
  }
  const crcOffset = offset + 5 + payloadBytes;
  const stored = source.readUInt32LE(crcOffset);
  const computed = crc32(source.subarray(offset, crcOffset));
  if (stored !== computed) {
    return { status: 'bad', reason: `CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})` };
  }
  const type = source.readUInt8(offset + 4);
  if (!isRecordType(type)) return { status: 'bad', reason: `unknown record type ${type}` };
  return { status: 'ok', type, payload: source.subarray(offset + 5, crcOffset), nextOffset: crcOffset + 4 };
}

function isRecordType(value: number): value is RecordType {
  return value >= RecordType.SegmentHeader && value <= RecordType.SnapshotMarker;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Entries: [term u64][index u64][type u8][data length u32][data]
// ---------------------------------------------------------------------------------------------

/** Bytes of `entry` once encoded by {@link writeEntry}. */
export function entryEncodedBytes(entry: Entry): number {
  return ENTRY_HEADER_BYTES + entry.data.length;
}

/** Writes `entry` at `offset` of `target`; returns the offset after it. */
export function writeEntry(target: Buffer, offset: number, entry: Entry): number {
  let cursor = writeUint64(target, offset, entry.term);
  cursor = writeUint64(target, cursor, entry.index);
  target.writeUInt8(entry.type, cursor);
  target.writeUInt32LE(entry.data.length, cursor + 1);
  target.set(entry.data, cursor + 5);
  return cursor + 5 + entry.data.length;
}

/** Outcome of reading one encoded entry. */
export type EntryReadResult =
  | { readonly ok: true; readonly entry: Entry; readonly nextOffset: number }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads the entry encoded at `offset` of `source` (at most up to `end`). The entry's data is a
 * copy, so it does not pin the (possibly large) source buffer in memory.
 */
export function readEntryAt(source: Buffer, offset: number, end: number = source.length): EntryReadResult {
  if (end - offset < ENTRY_HEADER_BYTES) return { ok: false, reason: 'entry header truncated' };
  const term = readUint64(source, offset);
  const index = readUint64(source, offset + 8);
  if (term === undefined || index === undefined) return { ok: false, reason: 'entry term or index exceeds 2^53' };
  const type = source.readUInt8(offset + 16);
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) {
    return { ok: false, reason: `unknown entry type ${type}` };
  }
  const dataBytes = source.readUInt32LE(offset + 17);
  const dataOffset = offset + ENTRY_HEADER_BYTES;
  if (dataBytes > end - dataOffset) return { ok: false, reason: 'entry data truncated' };
  const data = new Uint8Array(source.subarray(dataOffset, dataOffset + dataBytes));
  return { ok: true, entry: { term, index, type, data }, nextOffset: dataOffset + dataBytes };
}

/** Encodes one entry (term, index, type, data) into a new Buffer. Reusable outside the WAL. */
export function encodeEntry(entry: Entry): Buffer {
  const target = Buffer.allocUnsafe(entryEncodedBytes(entry));
  writeEntry(target, 0, entry);
  return target;
}

/**
 * Decodes one entry produced by {@link encodeEntry}. The bytes must hold exactly one entry;
 * anything else rejects with WalError code 'corrupt' (the caller is a gateway and should treat
 * this as bad input from outside, never as a bug).
 */
export function decodeEntry(bytes: Uint8Array): Entry {
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const result = readEntryAt(source, 0);
  if (!result.ok) throw new WalError('corrupt', `cannot decode entry: ${result.reason}`);
  if (result.nextOffset !== source.length) {
    throw new WalError('corrupt', `cannot decode entry: ${source.length - result.nextOffset} trailing bytes`);
  }
  return result.entry;
}

/** Payload bytes of an Entries record holding `entries`: a u32 count, then each entry. */
export function entriesPayloadBytes(entries: readonly Entry[]): number {
  let total = 4;
  for (const entry of entries) total += entryEncodedBytes(entry);
  return total;
}

/** Writes a complete Entries record at `offset`; returns its end offset. */
export function writeEntriesRecord(target: Buffer, offset: number, entries: readonly Entry[], payloadBytes: number): number {
  let cursor = beginRecord(target, offset, RecordType.Entries, payloadBytes);
  target.writeUInt32LE(entries.length, cursor);
  cursor += 4;
  for (const entry of entries) cursor = writeEntry(target, cursor, entry);
  assert.equal(cursor, offset + 5 + payloadBytes, 'entries payload size mismatch');
  return sealRecord(target, offset, payloadBytes);
}

/** Decodes an Entries payload: a non-empty batch of entries with contiguous indexes. */
export function decodeEntriesPayload(payload: Buffer): Entry[] | string {
  if (payload.length < 4) return 'entries payload shorter than its count';
  const count = payload.readUInt32LE(0);
  if (count === 0) return 'empty entries batch';
  const entries: Entry[] = [];
  let cursor = 4;
  for (let i = 0; i < count; i++) {
    const result = readEntryAt(payload, cursor);
    if (!result.ok) return `entry ${i} of ${count}: ${result.reason}`;
    const previous = entries[entries.length - 1];
    if (previous === undefined ? result.entry.index < 1 : result.entry.index !== previous.index + 1) {
      return `entry ${i} of ${count} has index ${result.entry.index}, not contiguous`;
    }
    entries.push(result.entry);
    cursor = result.nextOffset;
  }
  if (cursor !== payload.length) return `${payload.length - cursor} bytes after the last entry`;
  return entries;
}

// ---------------------------------------------------------------------------------------------
// HardState, snapshot marker, segment header
// ---------------------------------------------------------------------------------------------

/** Writes a complete HardState record at `offset`; returns its end offset. */
export function writeHardStateRecord(target: Buffer, offset: number, hardState: HardState): number {
  let cursor = beginRecord(target, offset, RecordType.HardState, HARD_STATE_PAYLOAD_BYTES);
  cursor = writeUint64(target, cursor, hardState.term);
  assert.ok(hardState.vote >= 0n && hardState.vote < 1n << 64n, `vote out of range: ${hardState.vote}`);
  target.writeBigUInt64LE(hardState.vote, cursor);
  writeUint64(target, cursor + 8, hardState.commit);
  return sealRecord(target, offset, HARD_STATE_PAYLOAD_BYTES);
}

/** Decodes a HardState payload. */
export function decodeHardStatePayload(payload: Buffer): HardState | string {
  if (payload.length !== HARD_STATE_PAYLOAD_BYTES) return `hard state payload of ${payload.length} bytes`;
  const term = readUint64(payload, 0);
  const commit = readUint64(payload, 16);
  if (term === undefined || commit === undefined) return 'hard state term or commit exceeds 2^53';
  return { term, vote: payload.readBigUInt64LE(8), commit };
}

/** Writes a complete snapshot marker record at `offset`; returns its end offset. */
export function writeSnapshotMarkerRecord(target: Buffer, offset: number, marker: SnapshotMarker): number {
  const cursor = beginRecord(target, offset, RecordType.SnapshotMarker, SNAPSHOT_MARKER_PAYLOAD_BYTES);
  writeUint64(target, writeUint64(target, cursor, marker.index), marker.term);
  return sealRecord(target, offset, SNAPSHOT_MARKER_PAYLOAD_BYTES);
}

/** Decodes a snapshot marker payload. */
export function decodeSnapshotMarkerPayload(payload: Buffer): SnapshotMarker | string {
  if (payload.length !== SNAPSHOT_MARKER_PAYLOAD_BYTES) return `snapshot marker payload of ${payload.length} bytes`;
  const index = readUint64(payload, 0);
  const term = readUint64(payload, 8);
  if (index === undefined || term === undefined) return 'snapshot marker index or term exceeds 2^53';
  return { index, term };
}

/** Writes a complete segment header record at `offset`; returns its end offset. */
export function writeSegmentHeaderRecord(target: Buffer, offset: number, sequence: number, firstIndex: LogIndex): number {
  let cursor = beginRecord(target, offset, RecordType.SegmentHeader, SEGMENT_HEADER_PAYLOAD_BYTES);
  target.set(SEGMENT_MAGIC, cursor);
  target.writeUInt32LE(WAL_FORMAT_VERSION, cursor + 8);
  cursor = writeUint64(target, cursor + 12, sequence);
  writeUint64(target, cursor, firstIndex);
  return sealRecord(target, offset, SEGMENT_HEADER_PAYLOAD_BYTES);
}

/** Decodes a segment header payload, checking magic and version. */
export function decodeSegmentHeaderPayload(payload: Buffer): SegmentHeader | string {
  if (payload.length !== SEGMENT_HEADER_PAYLOAD_BYTES) return `segment header payload of ${payload.length} bytes`;
  if (!payload.subarray(0, 8).equals(SEGMENT_MAGIC)) return 'bad segment magic';
  const version = payload.readUInt32LE(8);
  if (version !== WAL_FORMAT_VERSION) return `unsupported WAL format version ${version}`;
  const sequence = readUint64(payload, 12);
  const firstIndex = readUint64(payload, 20);
  if (sequence === undefined || firstIndex === undefined) return 'segment sequence or first index exceeds 2^53';
  return { version, sequence, firstIndex };
}
