/**
 * The MVCC store's layout in level (all integers big-endian, so level's byte order is numeric
 * order):
 * ```
 * meta key   = 0x00 | name (ASCII)            value = u64
 *   names: "applied" (Raft applied index), "revision" (current main revision),
 *          "compact" (compact revision), "compact-finished" (history <= this is physically gone),
 *          "restoring" (present only while a snapshot restore is in progress)
 * record key = 0x01 | main u64 | sub u32       value = record
 * record     = format u8 (1) | flags u8 (bit 0: tombstone) | create_revision u64 | version u64
 *            | lease i64 | key length u32 | key | value (the rest)
 * lease key  = 0x02 | lease ID i64              value = format u8 (1) | granted TTL seconds f64
 *            | checkpointed remaining TTL ms f64 (0 = none: the whole TTL)
 * ```
 * Lease records are the lessor's replicated state (src/lease): written in the same level batch as
 * the applied index, like everything else. Which keys a lease holds is not stored: it is the
 * `lease` field of each live key, rebuilt from the key index at open.
 * Records are keyed by revision (as etcd's bbolt "key" bucket is), so history is read in revision
 * order with one iterator and a version is fetched by its (main, sub) revision. A record is
 * immutable once written; only compaction deletes records. A tombstone record carries the key and
 * zeroes elsewhere.
 */
import { NO_LEASE, type KeyValue, type LeaseId, type LeaseState, type Revision } from './types';

/** Prefix of meta keys. */
export const META_PREFIX = 0x00;
/** Prefix of record keys. */
export const RECORD_PREFIX = 0x01;
const RECORD_FORMAT = 1;
const RECORD_KEY_BYTES = 1 + 8 + 4;
const RECORD_HEADER_BYTES = 1 + 1 + 8 + 8 + 8 + 4;

/** Prefix of lease keys. */
export const LEASE_PREFIX = 0x02;
const LEASE_FORMAT = 1;
const LEASE_KEY_BYTES = 1 + 8;
const LEASE_VALUE_BYTES = 1 + 8 + 8;

/** The level key of lease `id`. */
export function leaseKey(id: LeaseId): Buffer {
  const buffer = Buffer.allocUnsafe(LEASE_KEY_BYTES);
  buffer[0] = LEASE_PREFIX;
  buffer.writeBigInt64BE(id, 1);
  return buffer;
}

/** Encodes a lease record's value. */
export function encodeLeaseValue(lease: LeaseState): Buffer {
  const buffer = Buffer.allocUnsafe(LEASE_VALUE_BYTES);
  buffer[0] = LEASE_FORMAT;
  buffer.writeDoubleBE(lease.ttlSeconds, 1);
  buffer.writeDoubleBE(lease.remainingMs, 9);
  return buffer;
}

/** Decodes a lease record (level key and value); throws on damage. */
export function decodeLeaseRecord(key: Uint8Array, value: Uint8Array): LeaseState {
  if (key.length !== LEASE_KEY_BYTES || key[0] !== LEASE_PREFIX) throw new Error('mvcc store damaged: bad lease key');
  if (value.length !== LEASE_VALUE_BYTES || value[0] !== LEASE_FORMAT) throw new Error('mvcc store damaged: bad lease record');
  const keyBuffer = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const valueBuffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const ttlSeconds = valueBuffer.readDoubleBE(1);
  const remainingMs = valueBuffer.readDoubleBE(9);
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || !(remainingMs >= 0)) throw new Error('mvcc store damaged: bad lease TTL');
  return { id: keyBuffer.readBigInt64BE(1), ttlSeconds, remainingMs };
}

/** Names of the meta values. */
export type MetaName = 'applied' | 'revision' | 'compact' | 'compact-finished' | 'restoring';

/** The level key of a meta value. */
export function metaKey(name: MetaName): Buffer {
  return Buffer.concat([Buffer.from([META_PREFIX]), Buffer.from(name, 'ascii')]);
}

/** Encodes a u64 meta value. */
export function encodeUint64(value: number): Buffer {
  const buffer = Buffer.allocUnsafe(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}

/** Decodes a u64 meta value; throws on damage (a corrupt store is fatal). */
export function decodeUint64(buffer: Uint8Array): number {
  if (buffer.length !== 8) throw new Error(`mvcc store damaged: meta value of ${buffer.length} bytes`);
  const value = Buffer.from(buffer.buffer, buffer.byteOffset, 8).readBigUInt64BE();
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('mvcc store damaged: meta value above 2^53');
  return Number(value);
}

/** The level key of the record at (main, sub). */
export function recordKey(main: Revision, sub: number): Buffer {
  const buffer = Buffer.allocUnsafe(RECORD_KEY_BYTES);
  buffer[0] = RECORD_PREFIX;
  buffer.writeBigUInt64BE(BigInt(main), 1);
  buffer.writeUInt32BE(sub, 9);
  return buffer;
}

/** The lower bound (inclusive) of record keys with main >= `main`. */
export function recordKeyLowerBound(main: Revision): Buffer {
  return recordKey(main, 0);
}

/** Decodes a record key into (main, sub); throws on damage. */
export function decodeRecordKey(key: Uint8Array): { main: Revision; sub: number } {
  const buffer = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return { main: recordKeyMain(buffer, 0, buffer.length), sub: buffer.readUInt32BE(9) };
}

/** The main revision of the record key `bytes[keyStart, keyEnd)`; throws on damage. */
function recordKeyMain(bytes: Buffer, keyStart: number, keyEnd: number): Revision {
  if (keyEnd - keyStart !== RECORD_KEY_BYTES || bytes[keyStart] !== RECORD_PREFIX) throw new Error('mvcc store damaged: bad record key');
  return readUint64Number(bytes, keyStart + 1);
}

/**
 * A big-endian u64 as a number, without a BigInt (a restart decodes millions of them). Every
 * u64 stored here (revisions, versions) is below 2^53.
 */
function readUint64Number(buffer: Buffer, offset: number): number {
  const high = buffer.readUInt32BE(offset);
  // The common case returns the low word as it is: a small integer, not a heap number (a product
  // is a double, and objects holding doubles box them: 16 bytes each, four per key at open).
  return high === 0 ? buffer.readUInt32BE(offset + 4) : high * 0x1_0000_0000 + buffer.readUInt32BE(offset + 4);
}

/** A decoded record: the full KeyValue (mod_revision from the record key) and its tombstone flag. */
export interface StoredRecord {
  readonly tombstone: boolean;
  readonly kv: KeyValue;
}

/** Encodes a record (the KeyValue's mod_revision is implied by the record key, not stored). */
export function encodeRecord(tombstone: boolean, kv: { key: Uint8Array; createRevision: Revision; version: number; lease: LeaseId; value: Uint8Array }): Buffer {
  const buffer = Buffer.allocUnsafe(RECORD_HEADER_BYTES + kv.key.length + kv.value.length);
  buffer[0] = RECORD_FORMAT;
  buffer[1] = tombstone ? 1 : 0;
  buffer.writeBigUInt64BE(BigInt(kv.createRevision), 2);
  buffer.writeBigUInt64BE(BigInt(kv.version), 10);
  buffer.writeBigInt64BE(kv.lease, 18);
  buffer.writeUInt32BE(kv.key.length, 26);
  buffer.set(kv.key, RECORD_HEADER_BYTES);
  buffer.set(kv.value, RECORD_HEADER_BYTES + kv.key.length);
  return buffer;
}

/** Checks the framing of the record held in `buffer` from `start` to `end`; returns its key length. Throws on damage. */
function recordKeyLength(buffer: Buffer, start = 0, end = buffer.length): number {
  if (end - start < RECORD_HEADER_BYTES || buffer[start] !== RECORD_FORMAT) throw new Error('mvcc store damaged: bad record');
  const keyLength = buffer.readUInt32BE(start + 26);
  if (RECORD_HEADER_BYTES + keyLength > end - start) throw new Error('mvcc store damaged: record key overflows');
  return keyLength;
}

/**
 * Checks a record key (`bytes[keyStart, keyEnd)`) and the framing of its record
 * (`bytes[valueStart, valueEnd)`) without decoding either; returns the main revision. Throws on
 * damage.
 */
export function checkRecord(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): Revision {
  const main = recordKeyMain(bytes, keyStart, keyEnd);
  recordKeyLength(bytes, valueStart, valueEnd);
  return main;
}

/** The lease field: no BigInt per record for the usual "no lease" (a million cached values each held one). */
function recordLease(buffer: Buffer, start = 0): LeaseId {
  return buffer.readUInt32BE(start + 18) === 0 && buffer.readUInt32BE(start + 22) === 0 ? NO_LEASE : buffer.readBigInt64BE(start + 18);
}

/** Decodes a record stored at main revision `modRevision`; throws on damage. */
export function decodeRecord(bytes: Uint8Array, modRevision: Revision): StoredRecord {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const keyLength = recordKeyLength(buffer);
  return {
    tombstone: (buffer[1]! & 1) === 1,
    kv: {
      key: Buffer.from(buffer.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + keyLength)),
      createRevision: readUint64Number(buffer, 2),
      modRevision,
      version: readUint64Number(buffer, 10),
      value: Buffer.from(buffer.subarray(RECORD_HEADER_BYTES + keyLength)),
      lease: recordLease(buffer),
    },
  };
}

/** Receives what the key index needs of one record (see {@link decodeRecordForIndex}); `valueLatin1` is undefined for a tombstone. */
export type IndexedRecordSink = (
  key: string,
  main: Revision,
  sub: number,
  tombstone: boolean,
  createRevision: Revision,
  version: number,
  valueLatin1: string | undefined,
  lease: LeaseId,
) => void;

/**
 * Decodes what the key index needs of a record when it is rebuilt (at open, or from a snapshot
 * image) and hands it to `sink` as arguments, with no object per record (a restart decodes a
 * million): the key as a KeyString (latin1, one code unit per byte), the revision, the tombstone
 * flag and, for a live key, its current value (the value copied into a latin1 string, see
 * CurrentValue). The record key is `bytes[keyStart, keyEnd)` and its value
 * `bytes[valueStart, valueEnd)`, as in a packed scan batch or an image frame, which hold many
 * records in one buffer. Returns the main revision; throws on damage.
 */
export function decodeRecordForIndex(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, sink: IndexedRecordSink): Revision {
  const main = recordKeyMain(bytes, keyStart, keyEnd);
  const sub = bytes.readUInt32BE(keyStart + 9);
  const keyLength = recordKeyLength(bytes, valueStart, valueEnd);
  const userKeyStart = valueStart + RECORD_HEADER_BYTES;
  const key = bytes.toString('latin1', userKeyStart, userKeyStart + keyLength);
  if ((bytes[valueStart + 1]! & 1) === 1) sink(key, main, sub, true, 0, 0, undefined, NO_LEASE);
  else {
    sink(
      key,
      main,
      sub,
      false,
      readUint64Number(bytes, valueStart + 2),
      readUint64Number(bytes, valueStart + 10),
      bytes.toString('latin1', userKeyStart + keyLength, valueEnd),
      recordLease(bytes, valueStart),
    );
  }
  return main;
}
