/**
 * The file that `etcdctl snapshot save` writes against raftkv (Maintenance/Snapshot), and that
 * `raftkv snapshot restore` reads.
 *
 * Format, version 1 (integers big-endian):
 * ```
 * offset  size  field
 * 0       16    magic "RAFTKVSNAPSHOT01"
 * 16      4     header length H
 * 20      H     header, UTF-8 JSON: { format: 1, memberId, clusterId (decimal strings),
 *               appliedIndex, term, revision, imageBytes, createdAt (ISO 8601) }
 * 20+H    I     the node's state machine image (state-machine.ts: "raftkvs2" | membership
 *               image | MVCC image), I = imageBytes
 * ...     P     zero padding so that everything so far is a multiple of 512 bytes
 * end-32  32    SHA-256 of every byte before it (sent by the Snapshot RPC as its last message)
 * ```
 * Why the padding: etcdctl 3.4 accepts a snapshot only if its size is 32 bytes more than a
 * multiple of 512 (it expects a bbolt file, whose pages are multiples of 512, plus the SHA-256
 * trailer; clientv3/snapshot/v3_snapshot.go `hasChecksum`), so the body is padded with zeroes.
 *
 * etcdctl's own `snapshot status` and `snapshot restore` parse the file as etcd's bbolt database
 * and cannot read this format; use `raftkv snapshot restore` instead.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { LogIndex, NodeId } from '../raft/types';

/** The file's magic bytes. */
export const SNAPSHOT_FILE_MAGIC = Buffer.from('RAFTKVSNAPSHOT01', 'ascii');
/** Body sizes are padded to a multiple of this (see the module overview). */
export const SNAPSHOT_FILE_ALIGNMENT_BYTES = 512;
/** Length of the SHA-256 trailer. */
export const SNAPSHOT_FILE_TRAILER_BYTES = 32;

/** The JSON header of a snapshot file. */
export interface SnapshotFileHeader {
  readonly format: 1;
  readonly memberId: string;
  readonly clusterId: string;
  readonly appliedIndex: LogIndex;
  readonly term: number;
  readonly revision: number;
  readonly imageBytes: number;
  readonly createdAt: string;
}

/** A snapshot body ready to stream: its size (a multiple of 512) and its bytes. */
export interface SpooledSnapshot {
  readonly sizeBytes: number;
  readonly body: AsyncIterable<Uint8Array>;
  release(): Promise<void>;
}

/**
 * Spools a pinned state machine image to a temporary file in `tmpDir` (so its size is known
 * before the first byte is sent: every Snapshot message carries `remaining_bytes`), then returns
 * the padded body: magic | header | image | padding. The SHA-256 trailer is the caller's.
 */
export async function spoolSnapshot(
  tmpDir: string,
  image: AsyncIterable<Uint8Array>,
  meta: { memberId: NodeId; clusterId: bigint; appliedIndex: LogIndex; term: number; revision: number },
): Promise<SpooledSnapshot> {
  fs.mkdirSync(tmpDir, { recursive: true });
  const imagePath = path.join(tmpDir, `snapshot-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.image`);
  try {
    await pipeline(Readable.from(image), fs.createWriteStream(imagePath));
  } catch (error) {
    await fs.promises.rm(imagePath, { force: true });
    throw error;
  }
  const imageBytes = (await fs.promises.stat(imagePath)).size;
  const header: SnapshotFileHeader = {
    format: 1,
    memberId: meta.memberId.toString(),
    clusterId: meta.clusterId.toString(),
    appliedIndex: meta.appliedIndex,
    term: meta.term,
    revision: meta.revision,
    imageBytes,
    createdAt: new Date().toISOString(),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(SNAPSHOT_FILE_MAGIC.length + 4);
  SNAPSHOT_FILE_MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(headerBytes.length, SNAPSHOT_FILE_MAGIC.length);
  const unpadded = prefix.length + headerBytes.length + imageBytes;
  const padding = (SNAPSHOT_FILE_ALIGNMENT_BYTES - (unpadded % SNAPSHOT_FILE_ALIGNMENT_BYTES)) % SNAPSHOT_FILE_ALIGNMENT_BYTES;
  return {
    sizeBytes: unpadded + padding,
    body: (async function* () {
      yield prefix;
      yield headerBytes;
      for await (const chunk of fs.createReadStream(imagePath, { highWaterMark: 64 * 1024 })) yield chunk as Buffer;
      if (padding > 0) yield Buffer.alloc(padding);
    })(),
    release: () => fs.promises.rm(imagePath, { force: true }),
  };
}

/** Why a snapshot file was refused. */
export class SnapshotFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFileError';
  }
}

/** Progress callback: bytes processed so far of `totalBytes`. */
export type ProgressCallback = (phase: 'verify' | 'restore', doneBytes: number, totalBytes: number) => void;

/**
 * Verifies a snapshot file: the size rule (total % 512 == 32), the SHA-256 trailer over
 * everything before it, the magic and the header. Reads the file once. Throws SnapshotFileError.
 */
export async function verifySnapshotFile(file: string, onProgress?: ProgressCallback): Promise<{ header: SnapshotFileHeader; imageOffset: number }> {
  const size = (await fs.promises.stat(file)).size;
  if (size % SNAPSHOT_FILE_ALIGNMENT_BYTES !== SNAPSHOT_FILE_TRAILER_BYTES) {
    throw new SnapshotFileError(`${file}: size ${size} is not a multiple of 512 plus 32 (no SHA-256 trailer: not a complete etcdctl snapshot)`);
  }
  const dataBytes = size - SNAPSHOT_FILE_TRAILER_BYTES;
  const digest = createHash('sha256');
  let done = 0;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: dataBytes - 1, highWaterMark: 256 * 1024 })) {
    digest.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onProgress?.('verify', done, dataBytes);
  }
  const handle = await fs.promises.open(file, 'r');
  try {
    const trailer = Buffer.alloc(SNAPSHOT_FILE_TRAILER_BYTES);
    await handle.read(trailer, 0, trailer.length, dataBytes);
    if (!trailer.equals(digest.digest())) throw new SnapshotFileError(`${file}: SHA-256 mismatch (the file is damaged or truncated)`);
    const prefix = Buffer.alloc(SNAPSHOT_FILE_MAGIC.length + 4);
    await handle.read(prefix, 0, prefix.length, 0);
    if (!prefix.subarray(0, SNAPSHOT_FILE_MAGIC.length).equals(SNAPSHOT_FILE_MAGIC)) {
      throw new SnapshotFileError(`${file}: not a raftkv snapshot (an etcd bbolt snapshot must be restored with etcdctl, not raftkv)`);
    }
    const headerLength = prefix.readUInt32BE(SNAPSHOT_FILE_MAGIC.length);
    if (prefix.length + headerLength > dataBytes) throw new SnapshotFileError(`${file}: header length ${headerLength} beyond the data`);
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, prefix.length);
    const header = parseHeader(headerBytes);
    const imageOffset = prefix.length + headerLength;
    if (imageOffset + header.imageBytes > dataBytes) throw new SnapshotFileError(`${file}: image of ${header.imageBytes} bytes beyond the data`);
    return { header, imageOffset };
  } finally {
    await handle.close();
  }
}

function parseHeader(bytes: Buffer): SnapshotFileHeader {
  let value: Partial<SnapshotFileHeader>;
  try {
    value = JSON.parse(bytes.toString('utf8')) as Partial<SnapshotFileHeader>;
  } catch {
    throw new SnapshotFileError('snapshot header is not JSON');
  }
  const integer = (field: unknown) => typeof field === 'number' && Number.isSafeInteger(field) && field >= 0;
  if (value.format !== 1) throw new SnapshotFileError(`unknown snapshot format ${String(value.format)}`);
  if (!integer(value.imageBytes) || !integer(value.appliedIndex) || !integer(value.revision) || !integer(value.term)) {
    throw new SnapshotFileError('snapshot header fields are missing or invalid');
  }
  return value as SnapshotFileHeader;
}
