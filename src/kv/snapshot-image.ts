/**
 * The snapshot image: the byte format of a whole state machine, as streamed by
 * `KvStore.writeSnapshot` and consumed by `KvStore.restoreSnapshot` (src/snap stores these bytes
 * as a snapshot body and src/transport ships them to lagging followers).
 *
 * The image is produced and consumed as a stream of frames, so neither side ever holds the whole
 * state in memory: a store may hold millions of keys.
 *
 * Format, version 1 (all integers big-endian):
 * ```
 * image   = header frame* end-frame
 * header  = magic "raftkvsm" (8 bytes) | version u32 (1) | applied index u64
 * frame   = payload length u32 | CRC-32 of payload u32 | payload
 * payload = record+            (a record never spans two frames)
 * record  = 0x01 member   : id u64 | is-learner u8 (0 or 1) | URL length u32 | peer URL (UTF-8)
 *         | 0x02 removed  : id u64
 *         | 0x03 pair     : key length u32 | key (UTF-8) | value length u32 | value
 * end-frame payload = exactly one end record:
 *           0x04 end      : member count u32 | removed count u32 | pair count u64
 *                           | SHA-256 (32 bytes) of every image byte before the end frame
 * ```
 * Records appear in this order: members by ascending ID, then removed IDs ascending, then pairs by
 * strictly ascending key bytes (no duplicates). The CRC catches a damaged frame as soon as it
 * arrives; the counts and the digest in the end frame catch a lost, repeated or reordered frame
 * and a truncated stream. Nothing may follow the end frame.
 *
 * The decoder is a gateway: every violation is reported as a {@link SnapshotImageError} with a
 * stable reason, never as a crash.
 */

import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { LogIndex, NodeId } from '../raft/types';

/** The current image format version (header field). */
export const SNAPSHOT_IMAGE_VERSION = 1;

const MAGIC = Buffer.from('raftkvsm', 'ascii');
const HEADER_BYTES = 20;
const FRAME_HEADER_BYTES = 8;
/** Frames are cut at about this payload size; a single larger record gets a frame of its own. */
const FRAME_TARGET_BYTES = 64 * 1024;
/** The largest frame a decoder accepts, so a damaged length field cannot demand unbounded memory. */
export const FRAME_PAYLOAD_MAX_BYTES = 256 * 1024 * 1024;
const TAG_MEMBER = 1;
const TAG_REMOVED = 2;
const TAG_PAIR = 3;
const TAG_END = 4;
const END_RECORD_BYTES = 1 + 4 + 4 + 8 + 32;
const UINT64_MAX = (1n << 64n) - 1n;

/** Why an image was rejected. Stable strings. */
export type SnapshotImageErrorReason =
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
  /** The image's applied index differs from the index it is restored at. */
  | 'index-mismatch'
  /** The membership in the image is inconsistent (an ID both member and removed, or ID 0). */
  | 'invalid-membership';

/** An image failed validation. `reason` is stable; the message adds detail for humans. */
export class SnapshotImageError extends Error {
  /** Stable code of the failure. */
  readonly reason: SnapshotImageErrorReason;

  constructor(reason: SnapshotImageErrorReason, detail: string) {
    super(`snapshot image rejected (${reason}): ${detail}`);
    this.name = 'SnapshotImageError';
    this.reason = reason;
  }
}

/** One decoded record. Byte fields are views into the frame they came from. */
export type ImageRecord =
  | { readonly kind: 'member'; readonly id: NodeId; readonly isLearner: boolean; readonly peerUrl: string }
  | { readonly kind: 'removed'; readonly id: NodeId }
  /** `key` is the user key's UTF-8 bytes (validated). */
  | { readonly kind: 'pair'; readonly key: Uint8Array; readonly value: Uint8Array };

/**
 * Builds an image incrementally. Call {@link header} first, then add records in the documented
 * order, then {@link finish}. After every `add*` call, {@link drain} returns the frames completed so
 * far; the caller streams them out and MUST NOT reuse a frame after passing it on. The encoder
 * trusts its input (it comes from the store itself) and asserts the ordering rules.
 */
export class SnapshotImageEncoder {
  private readonly digest: Hash = createHash('sha256');
  private readonly completed: Uint8Array[] = [];
  private frame: Buffer = Buffer.allocUnsafe(FRAME_HEADER_BYTES + FRAME_TARGET_BYTES);
  private used = FRAME_HEADER_BYTES;
  private memberCount = 0;
  private removedCount = 0;
  private pairCount = 0n;
  private stage = 0;
  private lastId = -1n;
  private lastKey: Buffer | undefined;
  private finished = false;

  constructor(private readonly appliedIndex: LogIndex) {
    if (!Number.isSafeInteger(appliedIndex) || appliedIndex < 0) {
      throw new Error(`SnapshotImageEncoder: invalid applied index ${appliedIndex}`);
    }
  }

  /** The image header; emit it before any frame. */
  header(): Uint8Array {
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32BE(SNAPSHOT_IMAGE_VERSION, 8);
    header.writeBigUInt64BE(BigInt(this.appliedIndex), 12);
    this.digest.update(header);
    return header;
  }

  /** Adds a member record. Members come first, by ascending ID. */
  addMember(id: NodeId, isLearner: boolean, peerUrl: string): void {
    this.enterStage(1, id);
    const urlBytes = Buffer.byteLength(peerUrl, 'utf8');
    const frame = this.reserve(1 + 8 + 1 + 4 + urlBytes);
    let offset = this.used;
    frame[offset++] = TAG_MEMBER;
    frame.writeBigUInt64BE(id, offset);
    offset += 8;
    frame[offset++] = isLearner ? 1 : 0;
    frame.writeUInt32BE(urlBytes, offset);
    offset += 4;
    offset += frame.write(peerUrl, offset, urlBytes, 'utf8');
    this.used = offset;
    this.memberCount += 1;
  }

  /** Adds a removed-ID record. Removed IDs follow the members, by ascending ID. */
  addRemoved(id: NodeId): void {
    this.enterStage(2, id);
    const frame = this.reserve(1 + 8);
    frame[this.used] = TAG_REMOVED;
    frame.writeBigUInt64BE(id, this.used + 1);
    this.used += 9;
    this.removedCount += 1;
  }

  /** Adds a key-value pair (key as UTF-8 bytes). Pairs come last, by strictly ascending key. */
  addPair(key: Buffer, value: Uint8Array): void {
    if (this.stage > 3) throw new Error('SnapshotImageEncoder: record after finish');
    this.stage = 3;
    if (this.lastKey !== undefined && Buffer.compare(this.lastKey, key) >= 0) {
      throw new Error('SnapshotImageEncoder: pairs out of order');
    }
    this.lastKey = key;
    const frame = this.reserve(1 + 4 + key.byteLength + 4 + value.byteLength);
    let offset = this.used;
    frame[offset++] = TAG_PAIR;
    frame.writeUInt32BE(key.byteLength, offset);
    offset += 4;
    offset += key.copy(frame, offset);
    frame.writeUInt32BE(value.byteLength, offset);
    offset += 4;
    frame.set(value, offset);
    this.used = offset + value.byteLength;
    this.pairCount += 1n;
  }

  /** Frames completed since the last call, in order. */
  drain(): Uint8Array[] {
    return this.completed.splice(0, this.completed.length);
  }

  /** Closes the last data frame and appends the end frame; returns every remaining frame. */
  finish(): Uint8Array[] {
    if (this.finished) throw new Error('SnapshotImageEncoder: finish called twice');
    this.finished = true;
    this.stage = 4;
    this.closeFrame();
    const end = Buffer.allocUnsafe(FRAME_HEADER_BYTES + END_RECORD_BYTES);
    let offset = FRAME_HEADER_BYTES;
    end[offset++] = TAG_END;
    end.writeUInt32BE(this.memberCount, offset);
    offset += 4;
    end.writeUInt32BE(this.removedCount, offset);
    offset += 4;
    end.writeBigUInt64BE(this.pairCount, offset);
    offset += 8;
    this.digest.digest().copy(end, offset);
    const payload = end.subarray(FRAME_HEADER_BYTES);
    end.writeUInt32BE(payload.byteLength, 0);
    end.writeUInt32BE(crc32(payload), 4);
    this.completed.push(end);
    return this.drain();
  }

  private enterStage(stage: 1 | 2, id: NodeId): void {
    if (this.stage > stage) throw new Error('SnapshotImageEncoder: membership record after later records');
    if (this.stage < stage) this.lastId = -1n;
    this.stage = stage;
    if (id <= this.lastId || id <= 0n || id > UINT64_MAX) {
      throw new Error(`SnapshotImageEncoder: member or removed ID ${id} out of order or out of range`);
    }
    this.lastId = id;
  }

  /** Returns the current frame with room for `bytes` more, cutting a new frame when needed. */
  private reserve(bytes: number): Buffer {
    if (bytes > FRAME_PAYLOAD_MAX_BYTES) {
      throw new Error(`SnapshotImageEncoder: record of ${bytes} bytes exceeds the frame limit`);
    }
    if (this.used + bytes <= this.frame.byteLength) return this.frame;
    this.closeFrame();
    this.frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + Math.max(FRAME_TARGET_BYTES, bytes));
    this.used = FRAME_HEADER_BYTES;
    return this.frame;
  }

  private closeFrame(): void {
    if (this.used === FRAME_HEADER_BYTES) return;
    const frame = this.frame.subarray(0, this.used);
    const payload = frame.subarray(FRAME_HEADER_BYTES);
    frame.writeUInt32BE(payload.byteLength, 0);
    frame.writeUInt32BE(crc32(payload), 4);
    this.digest.update(frame);
    this.completed.push(frame);
    this.frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + FRAME_TARGET_BYTES);
    this.used = FRAME_HEADER_BYTES;
  }
}

/**
 * Reads exact byte counts from a stream of chunks, copying only when a read spans chunks.
 * Chunks must not be reused by their producer once yielded.
 */
class ChunkReader {
  private readonly chunks: Uint8Array[] = [];
  private offset = 0;
  private available = 0;
  private ended = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly `count` bytes, or `undefined` when the stream ended before them. */
  async read(count: number): Promise<Uint8Array | undefined> {
    while (this.available < count) {
      if (this.ended) return undefined;
      const next = await this.source.next();
      if (next.done === true) {
        this.ended = true;
      } else if (next.value.byteLength > 0) {
        this.chunks.push(next.value);
        this.available += next.value.byteLength;
      }
    }
    return this.take(count);
  }

  /** True when no byte is left (pulls from the source to find out). */
  async atEnd(): Promise<boolean> {
    if (this.available > 0) return false;
    return (await this.read(1)) === undefined;
  }

  /** Stops the source early (for example after a validation failure). Idempotent. */
  async cancel(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.source.return !== undefined) await this.source.return();
  }

  private take(count: number): Uint8Array {
    const first = this.chunks[0];
    if (first === undefined) return new Uint8Array(0);
    if (first.byteLength - this.offset >= count) {
      const view = first.subarray(this.offset, this.offset + count);
      this.advance(count);
      return view;
    }
    const out = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0];
      if (chunk === undefined) throw new Error('ChunkReader: accounting broken');
      const piece = Math.min(count - filled, chunk.byteLength - this.offset);
      out.set(chunk.subarray(this.offset, this.offset + piece), filled);
      filled += piece;
      this.advance(piece);
    }
    return out;
  }

  private advance(count: number): void {
    this.available -= count;
    this.offset += count;
    const first = this.chunks[0];
    if (first !== undefined && this.offset === first.byteLength) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes and validates an image stream.
 *
 * Call {@link readHeader} first; then iterate {@link frames}, which yields the records of one frame
 * at a time and, after the last data frame, checks the end frame (counts, digest, nothing after
 * it). Any violation rejects with a {@link SnapshotImageError}; the caller MUST treat the records
 * it already received as garbage unless the iteration completed.
 */
export class SnapshotImageDecoder {
  private readonly reader: ChunkReader;
  private readonly digest: Hash = createHash('sha256');
  private headerRead = false;

  constructor(body: AsyncIterable<Uint8Array>) {
    this.reader = new ChunkReader(body[Symbol.asyncIterator]());
  }

  /** Reads and checks the header; answers the image's applied index. */
  async readHeader(): Promise<LogIndex> {
    if (this.headerRead) throw new Error('SnapshotImageDecoder: header already read');
    this.headerRead = true;
    const header = await this.reader.read(HEADER_BYTES);
    if (header === undefined) throw new SnapshotImageError('truncated', 'stream ended inside the header');
    if (Buffer.compare(header.subarray(0, 8), MAGIC) !== 0) {
      throw new SnapshotImageError('bad-magic', 'not a raftkv state machine image');
    }
    const view = dataView(header);
    const version = view.getUint32(8, false);
    if (version !== SNAPSHOT_IMAGE_VERSION) {
      throw new SnapshotImageError('unknown-version', `image format version ${version}`);
    }
    const applied = view.getBigUint64(12, false);
    if (applied > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new SnapshotImageError('malformed-record', `applied index ${applied} out of range`);
    }
    this.digest.update(header);
    return Number(applied);
  }

  /** Yields the records of each data frame in order; validates the end frame last. */
  async *frames(): AsyncGenerator<ImageRecord[], void, undefined> {
    if (!this.headerRead) throw new Error('SnapshotImageDecoder: read the header first');
    const state = { stage: 0, lastId: 0n, lastKey: undefined as Uint8Array | undefined, members: 0, removed: 0, pairs: 0n };
    let completed = false;
    try {
      for (;;) {
        const frameHeader = await this.reader.read(FRAME_HEADER_BYTES);
        if (frameHeader === undefined) throw new SnapshotImageError('truncated', 'stream ended before the end frame');
        const view = dataView(frameHeader);
        const length = view.getUint32(0, false);
        const checksum = view.getUint32(4, false);
        if (length === 0 || length > FRAME_PAYLOAD_MAX_BYTES) {
          throw new SnapshotImageError('frame-too-large', `frame payload length ${length}`);
        }
        const payload = await this.reader.read(length);
        if (payload === undefined) throw new SnapshotImageError('truncated', 'stream ended inside a frame');
        if (crc32(payload) !== checksum) throw new SnapshotImageError('checksum-mismatch', 'frame CRC-32 differs');
        if (payload[0] === TAG_END) {
          this.checkEnd(payload, state);
          if (!(await this.reader.atEnd())) throw new SnapshotImageError('trailing-bytes', 'bytes after the end frame');
          completed = true;
          return;
        }
        this.digest.update(frameHeader);
        this.digest.update(payload);
        yield parseRecords(payload, state);
      }
    } finally {
      // On a validation failure, or when the consumer stops early, release the source (for
      // example a file stream) instead of leaving it open until garbage collection.
      if (!completed) await this.cancel();
    }
  }

  /** Stops the source stream early. Safe to call at any time and more than once. */
  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private checkEnd(payload: Uint8Array, state: ParseState): void {
    if (payload.byteLength !== END_RECORD_BYTES) throw new SnapshotImageError('malformed-record', 'end record length');
    const view = dataView(payload);
    const members = view.getUint32(1, false);
    const removed = view.getUint32(5, false);
    const pairs = view.getBigUint64(9, false);
    if (members !== state.members || removed !== state.removed || pairs !== state.pairs) {
      throw new SnapshotImageError(
        'count-mismatch',
        `end record counts ${members}/${removed}/${pairs}, received ${state.members}/${state.removed}/${state.pairs}`,
      );
    }
    const expected = payload.subarray(17, 17 + 32);
    if (Buffer.compare(this.digest.digest(), expected) !== 0) {
      throw new SnapshotImageError('digest-mismatch', 'SHA-256 of the image differs from the end record');
    }
  }
}

interface ParseState {
  stage: number;
  lastId: bigint;
  lastKey: Uint8Array | undefined;
  members: number;
  removed: number;
  pairs: bigint;
}

function parseRecords(payload: Uint8Array, state: ParseState): ImageRecord[] {
  const view = dataView(payload);
  const records: ImageRecord[] = [];
  let offset = 0;
  const need = (bytes: number): void => {
    if (offset + bytes > payload.byteLength) throw new SnapshotImageError('malformed-record', 'record overruns its frame');
  };
  const enter = (stage: number): void => {
    if (stage < state.stage) throw new SnapshotImageError('out-of-order', 'record kinds out of order');
    if (stage > state.stage) state.lastId = 0n;
    state.stage = stage;
  };
  const readId = (): NodeId => {
    need(8);
    const id = view.getBigUint64(offset, false);
    offset += 8;
    if (id <= state.lastId) throw new SnapshotImageError('out-of-order', `ID ${id} not ascending (or zero)`);
    state.lastId = id;
    return id;
  };
  while (offset < payload.byteLength) {
    const tag = view.getUint8(offset);
    offset += 1;
    if (tag === TAG_MEMBER) {
      enter(1);
      const id = readId();
      need(5);
      const learnerByte = view.getUint8(offset);
      const urlLength = view.getUint32(offset + 1, false);
      offset += 5;
      if (learnerByte > 1) throw new SnapshotImageError('malformed-record', 'learner flag');
      need(urlLength);
      const url = payload.subarray(offset, offset + urlLength);
      offset += urlLength;
      if (!isUtf8(url)) throw new SnapshotImageError('malformed-record', 'peer URL is not UTF-8');
      records.push({ kind: 'member', id, isLearner: learnerByte === 1, peerUrl: Buffer.from(url).toString('utf8') });
      state.members += 1;
    } else if (tag === TAG_REMOVED) {
      enter(2);
      records.push({ kind: 'removed', id: readId() });
      state.removed += 1;
    } else if (tag === TAG_PAIR) {
      enter(3);
      need(4);
      const keyLength = view.getUint32(offset, false);
      offset += 4;
      need(keyLength + 4);
      const key = payload.subarray(offset, offset + keyLength);
      offset += keyLength;
      const valueLength = view.getUint32(offset, false);
      offset += 4;
      need(valueLength);
      const value = payload.subarray(offset, offset + valueLength);
      offset += valueLength;
      if (!isUtf8(key)) throw new SnapshotImageError('malformed-record', 'key is not UTF-8');
      if (state.lastKey !== undefined && Buffer.compare(state.lastKey, key) >= 0) {
        throw new SnapshotImageError('out-of-order', 'keys not strictly ascending');
      }
      state.lastKey = key;
      records.push({ kind: 'pair', key, value });
      state.pairs += 1n;
    } else {
      throw new SnapshotImageError('malformed-record', `unknown record tag ${tag}`);
    }
  }
  return records;
}
