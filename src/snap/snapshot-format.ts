/**
 * The snapshot file format, its file names, and the one error type of src/snap.
 *
 * ON-DISK FORMAT (version 1), little-endian:
 *
 *     offset 0      magic "raftkvsn" (8 bytes)
 *            8      version u32 (= 1)
 *            12     header length u32 (h)
 *            16     header: UTF-8 JSON of the SnapshotMetadata (h bytes), with node IDs as decimal
 *                   strings because they are 64-bit:
 *                   {"index":12,"term":3,"confState":{"voters":["1"],"learners":[],"removed":[]}}
 *            16+h   body: the state machine image, opaque (bodyBytes bytes)
 *     end - 56      trailer:
 *                     bodyBytes u64
 *                     SHA-256 of the body (32 bytes)
 *                     crc32 of bytes [0, 16+h) (magic, version, length, header) u32
 *                     crc32 of the 44 trailer bytes above u32
 *                     end magic "snapend1" (8 bytes)
 *
 * The body's size is only known after it has been streamed, so it lives in the trailer; the file
 * size must equal 16 + h + bodyBytes + 56. Reading the metadata costs two small reads (header and
 * trailer, both CRC-checked); verifying the body costs a full streaming SHA-256 pass.
 *
 * File names: `<term 16 hex>-<index 16 hex>.snap`; files being written are
 * `<term>-<index>.<random>.snap.tmp`; files found corrupt are renamed to `<name>.snap.broken`.
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import type { LogIndex, NodeId, SnapshotMetadata } from '../raft/types';

/**
 * Stable codes of {@link SnapError}.
 * - `corrupt`: a snapshot file fails its checks (magic, CRCs, size, body SHA-256).
 * - `checksum-mismatch`: a received body's SHA-256 differs from what the leader announced.
 * - `aborted`: the body's source (an iterable) failed while the snapshot was being written.
 * - `io`: the file system failed.
 */
export type SnapErrorCode = 'corrupt' | 'checksum-mismatch' | 'aborted' | 'io';

/** A failure of snapshot storage, with a stable `code`. */
export class SnapError extends Error {
  override readonly name = 'SnapError';
  readonly code: SnapErrorCode;
  /** The file concerned, if any. */
  readonly file?: string;

  constructor(code: SnapErrorCode, message: string, details: { file?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.file !== undefined) this.file = details.file;
  }
}

/** Suffix of complete snapshot files. */
export const SNAPSHOT_SUFFIX = '.snap';
/** Suffix of snapshot files being written. */
export const SNAPSHOT_TEMPORARY_SUFFIX = '.snap.tmp';
/** Suffix given to snapshot files found corrupt (kept for an operator to inspect). */
export const SNAPSHOT_BROKEN_SUFFIX = '.snap.broken';

/** Magic at the start of a snapshot file. */
export const SNAPSHOT_MAGIC = Buffer.from('raftkvsn', 'latin1');
/** Magic at the very end of a snapshot file. */
export const SNAPSHOT_END_MAGIC = Buffer.from('snapend1', 'latin1');
/** The format version written by this code. */
export const SNAPSHOT_FORMAT_VERSION = 1;
/** Bytes before the header JSON: magic, version, header length. */
export const PREFIX_BYTES = 16;
/** Bytes of the trailer. */
export const TRAILER_BYTES = 56;
/** Refuse headers larger than this (a damaged length field must not allocate gigabytes). */
export const HEADER_BYTES_MAX = 16 * 1024 * 1024;

const NAME_PATTERN = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** The file name of the snapshot with this metadata. */
export function snapshotFileName(metadata: Pick<SnapshotMetadata, 'term' | 'index'>): string {
  return `${hex16(metadata.term)}-${hex16(metadata.index)}${SNAPSHOT_SUFFIX}`;
}

/** Term and index from a snapshot file name; undefined if it is not one. */
export function parseSnapshotFileName(fileName: string): { term: number; index: LogIndex } | undefined {
  const match = NAME_PATTERN.exec(fileName);
  if (match === null) return undefined;
  const term = Number.parseInt(match[1] ?? '', 16);
  const index = Number.parseInt(match[2] ?? '', 16);
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(index)) return undefined;
  return { term, index };
}

function hex16(value: number): string {
  assert.ok(Number.isSafeInteger(value) && value >= 0, `not a non-negative safe integer: ${value}`);
  return value.toString(16).padStart(16, '0');
}

/** Encodes magic, version, header length and header JSON: the bytes before the body. */
export function encodePrefix(metadata: SnapshotMetadata): Buffer {
  assert.ok(Number.isSafeInteger(metadata.index) && metadata.index >= 0, `bad snapshot index ${metadata.index}`);
  assert.ok(Number.isSafeInteger(metadata.term) && metadata.term >= 0, `bad snapshot term ${metadata.term}`);
  const ids = (list: readonly NodeId[]): string[] => list.map((id) => {
    assert.ok(id >= 0n && id < 1n << 64n, `node id out of range: ${id}`);
    return id.toString();
  });
  const header = Buffer.from(JSON.stringify({
    index: metadata.index,
    term: metadata.term,
    confState: {
      voters: ids(metadata.confState.voters),
      learners: ids(metadata.confState.learners),
      removed: ids(metadata.confState.removed),
    },
  }), 'utf8');
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES + header.length);
  SNAPSHOT_MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
  prefix.writeUInt32LE(header.length, 12);
  header.copy(prefix, PREFIX_BYTES);
  return prefix;
}

/** Reads the header length from the first PREFIX_BYTES of a file; a reason string if invalid. */
export function decodePrefixStart(bytes: Buffer): number | string {
  if (bytes.length < PREFIX_BYTES) return 'file shorter than its prefix';
  if (!bytes.subarray(0, 8).equals(SNAPSHOT_MAGIC)) return 'bad magic';
  const version = bytes.readUInt32LE(8);
  if (version !== SNAPSHOT_FORMAT_VERSION) return `unsupported snapshot format version ${version}`;
  const headerBytes = bytes.readUInt32LE(12);
  if (headerBytes > HEADER_BYTES_MAX) return `header length ${headerBytes} is implausible`;
  return headerBytes;
}

/** Decodes and validates the header JSON. */
export function decodeHeader(header: Buffer): SnapshotMetadata | string {
  let value: unknown;
  try {
    value = JSON.parse(header.toString('utf8'));
  } catch {
    return 'header is not JSON';
  }
  if (typeof value !== 'object' || value === null) return 'header is not an object';
  const { index, term, confState } = value as { index?: unknown; term?: unknown; confState?: unknown };
  if (!isCount(index) || !isCount(term)) return 'header index or term is not a non-negative integer';
  if (typeof confState !== 'object' || confState === null) return 'header has no confState';
  const lists = confState as { voters?: unknown; learners?: unknown; removed?: unknown };
  const voters = decodeIds(lists.voters);
  const learners = decodeIds(lists.learners);
  const removed = decodeIds(lists.removed);
  if (voters === undefined || learners === undefined || removed === undefined) return 'header confState is malformed';
  return { index, term, confState: { voters, learners, removed } };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function decodeIds(value: unknown): NodeId[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const ids: NodeId[] = [];
  for (const item of value) {
    if (typeof item !== 'string' || !/^[0-9]{1,20}$/.test(item)) return undefined;
    const id = BigInt(item);
    if (id >= 1n << 64n) return undefined;
    ids.push(id);
  }
  return ids;
}

/** Encodes the trailer for a body of `bodyBytes` bytes with digest `sha256`, after `prefix`. */
export function encodeTrailer(prefix: Buffer, bodyBytes: number, sha256: Buffer): Buffer {
  assert.equal(sha256.length, 32, 'a SHA-256 digest has 32 bytes');
  const trailer = Buffer.allocUnsafe(TRAILER_BYTES);
  trailer.writeUInt32LE(bodyBytes % 2 ** 32, 0);
  trailer.writeUInt32LE(Math.floor(bodyBytes / 2 ** 32), 4);
  sha256.copy(trailer, 8);
  trailer.writeUInt32LE(crc32(prefix), 40);
  trailer.writeUInt32LE(crc32(trailer.subarray(0, 44)), 44);
  SNAPSHOT_END_MAGIC.copy(trailer, 48);
  return trailer;
}

/** What the trailer says. */
export interface Trailer {
  readonly bodyBytes: number;
  readonly sha256: string;
  readonly prefixCrc: number;
}

/** Decodes and checks a trailer (end magic and its own CRC); a reason string if invalid. */
export function decodeTrailer(trailer: Buffer): Trailer | string {
  if (trailer.length !== TRAILER_BYTES) return 'file shorter than its trailer';
  if (!trailer.subarray(48).equals(SNAPSHOT_END_MAGIC)) return 'bad end magic (incomplete file?)';
  if (trailer.readUInt32LE(44) !== crc32(trailer.subarray(0, 44))) return 'trailer CRC mismatch';
  const high = trailer.readUInt32LE(4);
  if (high > 0x1f_ffff) return 'body size exceeds 2^53';
  return {
    bodyBytes: high * 2 ** 32 + trailer.readUInt32LE(0),
    sha256: trailer.subarray(8, 40).toString('hex'),
    prefixCrc: trailer.readUInt32LE(40),
  };
}
