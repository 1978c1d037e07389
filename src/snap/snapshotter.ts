/**
 * Snapshot files: durable, checksummed images of the state machine with their raft metadata.
 *
 * A snapshot body may be hundreds of megabytes, so it is never required in memory: `save` and
 * `receive` stream it from an async iterable into a temporary file, and `openBody` streams it back
 * out. Every snapshot is written ATOMICALLY: temporary file, fsync, rename, directory fsync. A
 * snapshot received from the leader is verified against the announced SHA-256 BEFORE the rename,
 * so a damaged transfer never becomes a snapshot file.
 *
 * ORDERING DUTY of the caller (etcd-io/etcd#12691): save the snapshot file BEFORE writing its
 * marker to the WAL, so every marker names a snapshot that is on disk. A snapshot file without a
 * marker is harmless: `loadNewest(isUsable)` lets the caller skip it.
 *
 * The file format is documented in snapshot-format.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { LogIndex, Logger, SnapshotMetadata } from '../raft/types';
import {
  decodeHeader,
  decodePrefixStart,
  decodeTrailer,
  encodePrefix,
  encodeTrailer,
  parseSnapshotFileName,
  PREFIX_BYTES,
  SNAPSHOT_BROKEN_SUFFIX,
  SNAPSHOT_SUFFIX,
  SNAPSHOT_TEMPORARY_SUFFIX,
  SnapError,
  snapshotFileName,
  TRAILER_BYTES,
} from './snapshot-format';

export { SnapError, type SnapErrorCode } from './snapshot-format';

/** A complete snapshot file, as described by its header and trailer. */
export interface SnapshotFile {
  readonly path: string;
  readonly metadata: SnapshotMetadata;
  /** Size of the body (the state machine image) in bytes. */
  readonly bodyBytes: number;
  /** SHA-256 of the body, lowercase hex. */
  readonly sha256: string;
}

/** Options of {@link Snapshotter}. */
export interface SnapshotterOptions {
  readonly logger?: Logger;
}

const SILENT_LOGGER: Logger = { debug() {}, info() {}, warn() {} };
/** Read size when streaming a body back out. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** Bytes of body gathered into one write when a snapshot is stored. */
const WRITE_GATHER_BYTES = 1024 * 1024;

/** The body of a snapshot that {@link Snapshotter.save} is still writing, followed as it grows. */
export interface FollowedBody {
  /** The body from its first byte; throws if the save fails. Iterated at most once. */
  readonly body: AsyncIterable<Uint8Array>;
  /** The body's size and digest, once the save has completed (the file is durable). */
  readonly digest: Promise<BodyDigest>;
}

/** A body's size and SHA-256, as a complete file's trailer has them. */
type BodyDigest = Pick<SnapshotFile, 'bodyBytes' | 'sha256'>;

type SaveOutcome = { readonly file: SnapshotFile } | { readonly error: Error };

/** A save that shares its body while it writes it (see {@link Snapshotter.followSave}). */
interface SharedSave {
  readonly temporaryPath: string;
  readonly bodyOffset: number;
  /** The temporary file exists. */
  created: boolean;
  /** Body bytes written to the file so far (in order: writes complete one after another). */
  writtenBodyBytes: number;
  outcome: SaveOutcome | undefined;
  readonly digest: Promise<BodyDigest>;
  /** Sets the outcome and settles the digest with it. */
  settle(outcome: SaveOutcome): void;
  /** Woken (and dropped) at every change of the fields above. */
  wakers: (() => void)[];
}

/** A file that failed its metadata checks. */
interface BrokenFile {
  readonly path: string;
  readonly reason: string;
}

/**
 * The snapshot files of one directory. The directory is created on the first save. Several
 * operations may run at once; a temporary file being written by this instance is never mistaken
 * for a leftover. Only one process may use a directory (the WAL's lock guards the data dir).
 */
export class Snapshotter {
  private readonly logger: Logger;
  /** Temporary files this instance is writing right now. */
  private readonly inFlight = new Set<string>();
  /** Saves whose body may be followed while they write it, by snapshot file name. */
  private readonly shared = new Map<string, SharedSave>();

  constructor(private readonly dir: string, options: SnapshotterOptions = {}) {
    this.logger = options.logger ?? SILENT_LOGGER;
  }

  /**
   * Writes a snapshot atomically (temporary file, fsync, rename, directory fsync) and returns it.
   * A snapshot with the same term and index is replaced. Rejects with SnapError 'io', or 'aborted'
   * if iterating `body` fails; in both cases no file is left behind. Chunks of `body` are held
   * until written, after later chunks were taken: their producer must not reuse them.
   */
  save(metadata: SnapshotMetadata, body: Uint8Array | AsyncIterable<Uint8Array>, options: { readonly share?: boolean } = {}): Promise<SnapshotFile> {
    return this.write(metadata, body instanceof Uint8Array ? [body] : body, undefined, options.share === true);
  }

  /**
   * Stores a snapshot arriving from the leader: streams `chunks` into a temporary file and checks
   * the body's SHA-256 against `expectedSha256` (hex) BEFORE the rename. On a mismatch rejects
   * with SnapError 'checksum-mismatch' and leaves nothing behind. A function is called once
   * `chunks` has been read to its end (a streamed transfer learns the digest after the body).
   */
  receive(metadata: SnapshotMetadata, chunks: AsyncIterable<Uint8Array>, expectedSha256: string | (() => string)): Promise<SnapshotFile> {
    return this.write(metadata, chunks, expectedSha256, false);
  }

  /**
   * Follows the body of the snapshot `metadata` names while a {@link save} called with `share`
   * is still writing it, from its first byte, as the bytes reach the file: how a leader sends an
   * image to a follower while it is cutting it. Undefined when no such save is in progress (the
   * complete file is then read with {@link openBody}). The bytes are read back from the file, so
   * a slow reader never holds the save up.
   */
  followSave(metadata: SnapshotMetadata): FollowedBody | undefined {
    const save = this.shared.get(snapshotFileName(metadata));
    if (save === undefined) return undefined;
    return { body: followBody(save), digest: save.digest };
  }

  /**
   * The complete snapshot files, newest (highest index, then term) first, read from their headers
   * and trailers (CRC-checked; the body is NOT verified here). Files that fail those checks are
   * logged and left out. Leftover temporary files (from a crash mid-write) are deleted.
   */
  async list(): Promise<SnapshotFile[]> {
    const { files, broken } = await this.scan();
    for (const file of broken) this.logger.warn('ignoring a corrupt snapshot file', { file: file.path, reason: file.reason });
    return files;
  }

  /**
   * The newest snapshot that `isUsable` accepts (default: any) and whose checksums verify, or
   * undefined. Corrupt files met on the way (bad header, trailer or body) are logged and renamed
   * to `*.snap.broken`, so they are not tried again and stay available for inspection.
   * `verifyBody` (default: always) says whether a file's body must be read and hashed now; a
   * body that is not verified here is still verified whenever it is read ({@link openBody}).
   */
  async loadNewest(
    isUsable: (metadata: SnapshotMetadata) => boolean = () => true,
    verifyBody: (metadata: SnapshotMetadata) => boolean = () => true,
  ): Promise<SnapshotFile | undefined> {
    const { files, broken } = await this.scan();
    for (const file of broken) await this.quarantine(file.path, file.reason);
    for (const file of files) {
      if (!isUsable(file.metadata)) {
        this.logger.debug('skipping a snapshot the caller cannot use', { file: file.path });
        continue;
      }
      if (!verifyBody(file.metadata)) return file;
      const problem = await this.verifyBody(file);
      if (problem === undefined) return file;
      await this.quarantine(file.path, problem);
    }
    return undefined;
  }

  /**
   * Streams the body of `file`, hashing it on the way: if the bytes do not match the trailer's
   * SHA-256 (or size), the iteration throws SnapError 'corrupt' at its end, after the last chunk.
   * Consumers that must not act on a corrupt body should stage what they read until it completes.
   * `verify: false` skips the hash (the size is still checked), for a consumer whose body format
   * carries its own digest and fails on a damaged body anyway (the state machine image does).
   */
  async *openBody(file: SnapshotFile, options: { readonly verify?: boolean } = {}): AsyncIterable<Uint8Array> {
    const bodyOffset = await this.bodyOffset(file);
    const hash = options.verify === false ? undefined : createHash('sha256');
    let bytesRead = 0;
    if (file.bodyBytes > 0) {
      const stream = fs.createReadStream(file.path, {
        start: bodyOffset, end: bodyOffset + file.bodyBytes - 1, highWaterMark: READ_CHUNK_BYTES,
      });
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          hash?.update(chunk);
          bytesRead += chunk.length;
          yield chunk;
        }
      } catch (cause) {
        if (cause instanceof SnapError) throw cause;
        throw new SnapError('io', `cannot read snapshot ${file.path}: ${describe(cause)}`, { file: file.path, cause });
      } finally {
        stream.destroy();
      }
    }
    const sha256 = hash === undefined ? file.sha256 : hash.digest('hex');
    if (bytesRead !== file.bodyBytes || sha256 !== file.sha256) {
      throw new SnapError('corrupt', `snapshot ${file.path}: body does not match its trailer (read ${bytesRead} of ${file.bodyBytes} bytes, SHA-256 ${sha256})`,
        { file: file.path });
    }
  }

  /** The whole body of `file` in memory (verified). For small snapshots and tests. */
  async readBody(file: SnapshotFile): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.openBody(file)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /**
   * Deletes snapshot files older than the one at `keepIndex` (index below it), keeping that one,
   * every newer one, and in any case the newest file; then fsyncs the directory.
   */
  async release(keepIndex: LogIndex): Promise<void> {
    const files = await this.list();
    const doomed = files.slice(1).filter((file) => file.metadata.index < keepIndex);
    if (doomed.length === 0) return;
    for (const file of doomed) {
      await fsPromises.unlink(file.path).catch((cause: unknown) => {
        throw new SnapError('io', `cannot delete snapshot ${file.path}: ${describe(cause)}`, { file: file.path, cause });
      });
    }
    await this.syncDirectory();
    this.logger.info('released snapshots', { keepIndex, deleted: doomed.map((file) => path.basename(file.path)) });
  }

  private async write(metadata: SnapshotMetadata, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    expectedSha256: string | (() => string) | undefined, share: boolean): Promise<SnapshotFile> {
    const prefix = encodePrefix(metadata);
    const finalName = snapshotFileName(metadata);
    const finalPath = path.join(this.dir, finalName);
    const temporaryPath = path.join(this.dir,
      `${finalName.slice(0, -SNAPSHOT_SUFFIX.length)}.${randomBytes(4).toString('hex')}${SNAPSHOT_TEMPORARY_SUFFIX}`);
    this.inFlight.add(temporaryPath);
    // Registered before the first await: a caller may follow the body as soon as save() returns.
    const shared = share ? sharedSave(temporaryPath, prefix.length) : undefined;
    if (shared !== undefined) this.shared.set(finalName, shared);
    const progress = (change: (save: SharedSave) => void): void => {
      if (shared === undefined) return;
      change(shared);
      for (const wake of shared.wakers.splice(0)) wake();
    };
    let handle: fsPromises.FileHandle | undefined;
    try {
      await this.io(finalPath, 'create the snapshot directory', () => fsPromises.mkdir(this.dir, { recursive: true }));
      handle = await this.io(temporaryPath, 'create', () => fsPromises.open(temporaryPath, 'wx', 0o600));
      const file = handle;
      await this.io(temporaryPath, 'write', () => writeFully(file, prefix, 0));
      progress((save) => (save.created = true));
      let position = prefix.length;
      const hash = createHash('sha256');
      // Chunks are gathered into writes of about a megabyte, and the next ones are received while
      // a write is in flight: one awaited write per 64 KiB chunk held the transfer to ~50 MB/s
      // (the sender waits while the receiver does not read).
      let gathered: Uint8Array[] = [];
      let gatheredBytes = 0;
      let writing: Promise<void> = Promise.resolve();
      const writeGathered = async (): Promise<void> => {
        const pieces = gathered;
        const at = position;
        const end = (position += gatheredBytes);
        gathered = [];
        gatheredBytes = 0;
        await writing;
        writing = this.io(temporaryPath, 'write', () => writeAllFully(file, pieces, at)).then(() =>
          progress((save) => (save.writtenBodyBytes = end - prefix.length)));
        writing.catch(() => undefined); // observed at the next write or after the last chunk
      };
      try {
        for await (const chunk of chunks) {
          hash.update(chunk);
          gathered.push(chunk);
          gatheredBytes += chunk.length;
          if (gatheredBytes >= WRITE_GATHER_BYTES) await writeGathered();
        }
        if (gatheredBytes > 0) await writeGathered();
      } catch (cause) {
        await writing.catch(() => undefined);
        if (cause instanceof SnapError) throw cause;
        throw new SnapError('aborted', `snapshot body source failed while writing ${finalPath}: ${describe(cause)}`, { file: finalPath, cause });
      }
      await writing;
      const digest = hash.digest();
      const sha256 = digest.toString('hex');
      const expected = typeof expectedSha256 === 'function' ? expectedSha256() : expectedSha256;
      if (expected !== undefined && sha256 !== expected.toLowerCase()) {
        throw new SnapError('checksum-mismatch',
          `received snapshot ${finalName} has SHA-256 ${sha256}, the leader announced ${expected}`, { file: finalPath });
      }
      const bodyBytes = position - prefix.length;
      await this.io(temporaryPath, 'write', () => writeFully(file, encodeTrailer(prefix, bodyBytes, digest), position));
      await this.io(temporaryPath, 'fsync', () => file.sync());
      handle = undefined;
      await this.io(temporaryPath, 'close', () => file.close());
      await this.io(finalPath, 'rename', () => fsPromises.rename(temporaryPath, finalPath));
      await this.syncDirectory();
      this.logger.info('saved snapshot', { file: finalPath, index: metadata.index, term: metadata.term, bodyBytes });
      const saved: SnapshotFile = { path: finalPath, metadata, bodyBytes, sha256 };
      progress((save) => save.settle({ file: saved }));
      return saved;
    } catch (error) {
      progress((save) => save.settle({ error: error instanceof Error ? error : new Error(String(error)) }));
      throw error;
    } finally {
      if (shared !== undefined && this.shared.get(finalName) === shared) this.shared.delete(finalName);
      await handle?.close().catch(() => undefined);
      await fsPromises.rm(temporaryPath, { force: true }).catch(() => undefined);
      this.inFlight.delete(temporaryPath);
    }
  }

  /** Reads every snapshot file's header and trailer; removes leftover temporary files. */
  private async scan(): Promise<{ files: SnapshotFile[]; broken: BrokenFile[] }> {
    let names: string[];
    try {
      names = await fsPromises.readdir(this.dir);
    } catch (cause) {
      if ((cause as { code?: unknown }).code === 'ENOENT') return { files: [], broken: [] };
      throw new SnapError('io', `cannot list ${this.dir}: ${describe(cause)}`, { file: this.dir, cause });
    }
    const files: SnapshotFile[] = [];
    const broken: BrokenFile[] = [];
    for (const name of names) {
      const filePath = path.join(this.dir, name);
      if (name.endsWith(SNAPSHOT_TEMPORARY_SUFFIX)) {
        if (this.inFlight.has(filePath)) continue;
        this.logger.warn('removing an unfinished snapshot file', { file: filePath });
        await fsPromises.rm(filePath, { force: true });
        continue;
      }
      const named = parseSnapshotFileName(name);
      if (named === undefined) continue;
      const read = await this.readDescription(filePath);
      if (typeof read === 'string') {
        broken.push({ path: filePath, reason: read });
      } else if (read.metadata.index !== named.index || read.metadata.term !== named.term) {
        broken.push({ path: filePath, reason: `header says term ${read.metadata.term} index ${read.metadata.index}` });
      } else {
        files.push(read);
      }
    }
    files.sort((a, b) => b.metadata.index - a.metadata.index || b.metadata.term - a.metadata.term);
    return { files, broken };
  }

  /** Reads and checks a file's prefix, header and trailer; a reason string if they are bad. */
  private async readDescription(filePath: string): Promise<SnapshotFile | string> {
    let handle: fsPromises.FileHandle | undefined;
    try {
      handle = await fsPromises.open(filePath, 'r');
      const size = (await handle.stat()).size;
      const start = await readExactly(handle, 0, Math.min(PREFIX_BYTES, size));
      const headerBytes = decodePrefixStart(start);
      if (typeof headerBytes === 'string') return headerBytes;
      if (size < PREFIX_BYTES + headerBytes + TRAILER_BYTES) return `file of ${size} bytes is too short`;
      const prefix = Buffer.concat([start, await readExactly(handle, PREFIX_BYTES, headerBytes)]);
      const trailer = decodeTrailer(await readExactly(handle, size - TRAILER_BYTES, TRAILER_BYTES));
      if (typeof trailer === 'string') return trailer;
      if (crc32(prefix) !== trailer.prefixCrc) return 'header CRC mismatch';
      if (PREFIX_BYTES + headerBytes + trailer.bodyBytes + TRAILER_BYTES !== size) {
        return `file size ${size} disagrees with a body of ${trailer.bodyBytes} bytes`;
      }
      const metadata = decodeHeader(prefix.subarray(PREFIX_BYTES));
      if (typeof metadata === 'string') return metadata;
      return { path: filePath, metadata, bodyBytes: trailer.bodyBytes, sha256: trailer.sha256 };
    } catch (cause) {
      throw new SnapError('io', `cannot read snapshot ${filePath}: ${describe(cause)}`, { file: filePath, cause });
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /** Where the body of `file` starts (re-read, so a replaced file is noticed). */
  private async bodyOffset(file: SnapshotFile): Promise<number> {
    const description = await this.readDescription(file.path);
    if (typeof description === 'string' || description.sha256 !== file.sha256 || description.bodyBytes !== file.bodyBytes) {
      throw new SnapError('corrupt', `snapshot ${file.path} changed or is corrupt: ${typeof description === 'string' ? description : 'trailer differs'}`,
        { file: file.path });
    }
    const size = (await fsPromises.stat(file.path)).size;
    return size - TRAILER_BYTES - file.bodyBytes;
  }

  /** Hashes the body of `file`; a reason string if it does not match the trailer. */
  private async verifyBody(file: SnapshotFile): Promise<string | undefined> {
    try {
      for await (const chunk of this.openBody(file)) void chunk;
      return undefined;
    } catch (cause) {
      if (cause instanceof SnapError && cause.code === 'corrupt') return cause.message;
      throw cause;
    }
  }

  /** Renames a corrupt snapshot to `*.snap.broken`, logging why. */
  private async quarantine(filePath: string, reason: string): Promise<void> {
    const brokenPath = filePath.slice(0, -SNAPSHOT_SUFFIX.length) + SNAPSHOT_BROKEN_SUFFIX;
    this.logger.warn('snapshot file is corrupt; renaming it aside', { file: filePath, renamedTo: brokenPath, reason });
    await this.io(filePath, 'rename', () => fsPromises.rename(filePath, brokenPath));
    await this.syncDirectory();
  }

  private async syncDirectory(): Promise<void> {
    await this.io(this.dir, 'fsync of directory', async () => {
      const handle = await fsPromises.open(this.dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  /** Runs a file-system call, wrapping its failure into SnapError 'io'. */
  private async io<T>(file: string, what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (cause) {
      if (cause instanceof SnapError) throw cause;
      throw new SnapError('io', `${what} failed for ${file}: ${describe(cause)}`, { file, cause });
    }
  }
}

function sharedSave(temporaryPath: string, bodyOffset: number): SharedSave {
  let resolve: (digest: BodyDigest) => void = () => {};
  let reject: (error: Error) => void = () => {};
  const digest = new Promise<BodyDigest>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  digest.catch(() => undefined); // a save nobody follows must not leave an unhandled rejection
  const save: SharedSave = {
    temporaryPath, bodyOffset, created: false, writtenBodyBytes: 0, outcome: undefined, digest, wakers: [],
    settle(outcome) {
      save.outcome = outcome;
      if ('file' in outcome) resolve({ bodyBytes: outcome.file.bodyBytes, sha256: outcome.file.sha256 });
      else reject(outcome.error);
    },
  };
  return save;
}

/**
 * The body of a shared save, read back from its file as it is written. The file is opened by its
 * temporary name, or by its final name if the save completed meanwhile (the body sits at the same
 * offset in both); an open descriptor stays valid across the rename.
 */
async function* followBody(save: SharedSave): AsyncGenerator<Uint8Array> {
  const changed = (): Promise<void> => new Promise((resolve) => save.wakers.push(resolve));
  const failed = (): Error | undefined => (save.outcome !== undefined && 'error' in save.outcome ? save.outcome.error : undefined);
  while (!save.created && save.outcome === undefined) await changed();
  let handle: fsPromises.FileHandle | undefined;
  try {
    try {
      handle = await fsPromises.open(save.temporaryPath, 'r');
    } catch (cause) {
      const outcome = save.outcome;
      if (outcome === undefined || !('file' in outcome)) throw failed() ?? cause;
      handle = await fsPromises.open(outcome.file.path, 'r');
    }
    let offset = 0;
    for (;;) {
      const error = failed();
      if (error !== undefined) throw error;
      const outcome = save.outcome;
      const available = outcome !== undefined && 'file' in outcome ? outcome.file.bodyBytes : save.writtenBodyBytes;
      if (offset < available) {
        const piece = await readExactly(handle, save.bodyOffset + offset, Math.min(READ_CHUNK_BYTES, available - offset));
        if (piece.length === 0) throw new SnapError('io', `snapshot file ${save.temporaryPath} is shorter than what was written to it`, { file: save.temporaryPath });
        offset += piece.length;
        yield piece;
      } else if (outcome !== undefined) {
        return;
      } else {
        await changed();
      }
    }
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function writeFully(handle: fsPromises.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, position + written);
    assert.ok(bytesWritten > 0, 'write made no progress');
    written += bytesWritten;
  }
}

/** Writes `pieces` back to back from `position` (one writev where the kernel takes it all). */
async function writeAllFully(handle: fsPromises.FileHandle, pieces: readonly Uint8Array[], position: number): Promise<void> {
  if (pieces.length === 1) return writeFully(handle, pieces[0]!, position);
  const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
  const { bytesWritten } = await handle.writev(pieces as Uint8Array[], position);
  if (bytesWritten >= total) return;
  // A short writev: the rest one piece at a time.
  let offset = 0;
  for (const piece of pieces) {
    const end = offset + piece.length;
    if (end > bytesWritten) {
      const from = Math.max(0, bytesWritten - offset);
      await writeFully(handle, piece.subarray(from), position + offset + from);
    }
    offset = end;
  }
}

async function readExactly(handle: fsPromises.FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
