/**
 * Whole-range scans of a level store, delivered as packed batches of records, read either on the
 * calling thread or on a worker thread.
 *
 * Why a worker: classic-level hands every key and every value to JavaScript as a Buffer of its
 * own, made by a native call on the thread that iterates. Rebuilding the MVCC key index from a
 * million records spent about 40 % of the main thread making those Buffers, and the main thread
 * was the limit of a restart. A worker opens the same LevelDB (classic-level's `multithreading`
 * mode shares one handle between threads), makes those Buffers on its own thread, copies each
 * batch into one ArrayBuffer and transfers it: the main thread decodes records from offsets in it.
 *
 * A batch holds records as `u32le key length | key | u32le value length | value`, in key order.
 * {@link forEachPacked} walks one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SCAN_HIGH_WATER_BYTES } from './level';

/** Records read from level, packed (see the module comment). */
export interface PackedRecords {
  readonly bytes: Buffer;
  readonly count: number;
}

/** The key range of a scan: `gte` <= key < `lt`. */
export interface ScanRange {
  readonly gte: Buffer;
  readonly lt: Buffer;
}

/** Where a scan reads: 'auto' picks the worker for ranges of at least {@link WORKER_SCAN_MIN_BYTES}. */
export type ScanThread = 'auto' | 'worker' | 'caller';

/**
 * Below this approximate size a scan runs on the calling thread: starting a worker and loading
 * classic-level into it costs tens of milliseconds, more than the scan of a small store.
 */
export const WORKER_SCAN_MIN_BYTES = 16 << 20;

/** Records per batch (each batch is one level `nextv` and one message from the worker). */
const BATCH_RECORDS = 1024;

/** Batches the worker may have sent that the caller has not yet taken (bounds memory: ~1 MiB each at 300-byte records). */
const WORKER_WINDOW = 4;

/** What a scan needs of the classic-level database it reads. */
export interface ScannableLevel {
  readonly location: string;
  iterator(options: { gte: Buffer; lt: Buffer; highWaterMarkBytes: number }): {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
    close(): Promise<void>;
  };
}

/** Messages from the worker (src/storage/level-scan-worker.ts). */
export type WorkerReply =
  | { readonly kind: 'batch'; readonly bytes: ArrayBuffer; readonly count: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'error'; readonly message: string };

/** What the worker is started with. */
export interface WorkerTask {
  readonly location: string;
  readonly gte: Uint8Array;
  readonly lt: Uint8Array;
  readonly batchRecords: number;
  readonly highWaterMarkBytes: number;
  readonly window: number;
}

/**
 * Scans [range.gte, range.lt) of `db` in key order, in packed batches. With the worker, `db` must
 * have been opened with `multithreading: true` (so the worker can open the same store), and
 * writes made after the call may or may not be seen; callers scan stores nobody writes to.
 */
export async function* scanPacked(db: ScannableLevel, range: ScanRange, thread: ScanThread = 'auto'): AsyncGenerator<PackedRecords> {
  const useWorker = thread === 'worker' || (thread === 'auto' && workerAvailable() && (await approximateSize(db, range)) >= WORKER_SCAN_MIN_BYTES);
  if (useWorker) yield* scanInWorker(db.location, range);
  else yield* scanInCaller(db, range);
}

/**
 * Calls `visit` for each record of `batch` with the batch's bytes and the record's key and value
 * bounds in them (no copy, no Buffer per record).
 */
export function forEachPacked(batch: PackedRecords, visit: (bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void): void {
  const bytes = batch.bytes;
  let offset = 0;
  for (let i = 0; i < batch.count; i++) {
    const keyStart = offset + 4;
    const keyEnd = keyStart + bytes.readUInt32LE(offset);
    const valueStart = keyEnd + 4;
    const valueEnd = valueStart + bytes.readUInt32LE(keyEnd);
    visit(bytes, keyStart, keyEnd, valueStart, valueEnd);
    offset = valueEnd;
  }
  if (offset !== bytes.length) throw new Error(`level scan: packed batch of ${bytes.length} bytes ends at ${offset}`);
}

/** Packs level entries into one buffer (the worker's and the caller's scans share the format). */
export function packRecords(entries: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Buffer {
  let size = 0;
  for (const [key, value] of entries) size += 8 + key.length + value.length;
  // Not from the pool: the worker transfers this buffer's whole ArrayBuffer.
  const bytes = Buffer.allocUnsafeSlow(size);
  let offset = 0;
  for (const [key, value] of entries) {
    offset = bytes.writeUInt32LE(key.length, offset);
    bytes.set(key, offset);
    offset += key.length;
    offset = bytes.writeUInt32LE(value.length, offset);
    bytes.set(value, offset);
    offset += value.length;
  }
  return bytes;
}

const WORKER_FILE = join(__dirname, 'level-scan-worker.js');

/** The worker needs its compiled file (absent when this module runs from TypeScript sources). */
function workerAvailable(): boolean {
  return existsSync(WORKER_FILE);
}

/** classic-level's approximateSize, which `level`'s typings hide; 0 if the database has none. */
async function approximateSize(db: ScannableLevel, range: ScanRange): Promise<number> {
  const sized = db as unknown as { approximateSize?: (start: Buffer, end: Buffer) => Promise<number> };
  return typeof sized.approximateSize === 'function' ? sized.approximateSize(range.gte, range.lt) : 0;
}

async function* scanInCaller(db: ScannableLevel, range: ScanRange): AsyncGenerator<PackedRecords> {
  const iterator = db.iterator({ gte: range.gte, lt: range.lt, highWaterMarkBytes: SCAN_HIGH_WATER_BYTES });
  // The next batch is read on the thread pool while the caller works on this one.
  let next = iterator.nextv(BATCH_RECORDS);
  try {
    for (let entries = await next; entries.length > 0; entries = await next) {
      next = iterator.nextv(BATCH_RECORDS);
      yield { bytes: packRecords(entries), count: entries.length };
    }
  } finally {
    // A caller that stops early must not close the iterator under a read still in flight.
    await next.catch(() => undefined);
    await iterator.close();
  }
}

async function* scanInWorker(location: string, range: ScanRange): AsyncGenerator<PackedRecords> {
  const task: WorkerTask = { location, gte: range.gte, lt: range.lt, batchRecords: BATCH_RECORDS, highWaterMarkBytes: SCAN_HIGH_WATER_BYTES, window: WORKER_WINDOW };
  const worker = new Worker(WORKER_FILE, { workerData: task });
  const replies: WorkerReply[] = [];
  let failed: Error | undefined;
  let exited = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  worker.on('message', (reply: WorkerReply) => {
    replies.push(reply);
    notify();
  });
  worker.on('error', (error: Error) => {
    failed ??= new Error(`level scan worker failed: ${error.message}`);
    notify();
  });
  worker.on('exit', (code) => {
    exited = true;
    if (code !== 0) failed ??= new Error(`level scan worker exited with code ${code}`);
    notify();
  });
  let finished = false;
  try {
    for (;;) {
      const reply = replies.shift();
      if (reply === undefined) {
        if (failed !== undefined) throw failed;
        if (exited) throw new Error('level scan worker exited before the end of the scan');
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      if (reply.kind === 'error') throw new Error(`level scan worker failed: ${reply.message}`);
      if (reply.kind === 'end') {
        finished = true;
        return;
      }
      worker.postMessage('more');
      yield { bytes: Buffer.from(reply.bytes), count: reply.count };
    }
  } finally {
    if (!finished) worker.postMessage('stop');
    // The worker closes its iterator and its handle on the store before it exits: the caller may
    // close the store as soon as this returns.
    if (!exited) await new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  }
}
