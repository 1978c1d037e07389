/**
 * Level work moved off the calling thread: whole-range scans delivered as packed batches of
 * records, and batches of records written into level, each on a worker thread or on the caller.
 *
 * Why a worker: classic-level hands every key and every value to JavaScript as a Buffer of its
 * own, made by a native call on the thread that iterates, and converts every key and value of a
 * batch write the same way. Rebuilding the MVCC key index from a million records spent about
 * 40 % of the main thread making those Buffers, and the main thread was the limit of a restart.
 * A worker opens the same LevelDB (classic-level's `multithreading` mode shares one handle
 * between threads), makes those Buffers on its own thread, copies each batch into one
 * ArrayBuffer and transfers it: the main thread decodes records from offsets in it. Writes go
 * the other way: the caller transfers a copy of the bytes and the records' bounds.
 *
 * A scan batch holds records as `u32le key length | key | u32le value length | value`, in key
 * order. {@link forEachPacked} walks one.
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

/** Which thread does the level work: 'auto' picks the worker for large work (see {@link chooseThread}). */
export type LevelThread = 'auto' | 'worker' | 'caller';

/**
 * Below this approximate size a scan runs on the calling thread: starting a worker and loading
 * classic-level into it costs tens of milliseconds, more than the scan of a small store.
 */
const WORKER_SCAN_MIN_BYTES = 16 << 20;

/** Records per batch (each batch is one level `nextv` and one message from the worker). */
const BATCH_RECORDS = 1024;

/** Batches the worker may have sent that the caller has not yet taken (bounds memory: ~300 KiB each at 300-byte records). */
const WORKER_WINDOW = 4;

/** What a scan needs of the classic-level database it reads. */
export interface ScannableLevel {
  readonly location: string;
  iterator(options: { gte: Buffer; lt: Buffer; highWaterMarkBytes: number }): {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
    close(): Promise<void>;
  };
}

/** Messages from the worker thread (src/storage/level-worker-thread.ts). */
export type WorkerReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'batch'; readonly bytes: ArrayBuffer; readonly count: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'written' }
  | { readonly kind: 'error'; readonly message: string };

/** What the worker thread is started with: a scan, or a batch writer. */
export type WorkerTask =
  | {
      readonly kind: 'scan';
      readonly location: string;
      readonly gte: Uint8Array;
      readonly lt: Uint8Array;
      readonly batchRecords: number;
      readonly highWaterMarkBytes: number;
      readonly window: number;
    }
  | { readonly kind: 'write'; readonly location: string };

/** Messages to a batch-writing worker: records to put (see {@link RecordBatch}), or the end. */
export type WriterRequest = { readonly kind: 'put'; readonly bytes: ArrayBuffer; readonly bounds: ArrayBuffer } | { readonly kind: 'close' };

/**
 * Scans [range.gte, range.lt) of `db` in key order, in packed batches. With the worker, `db` must
 * have been opened with `multithreading: true` (so the worker can open the same store), and
 * writes made after the call may or may not be seen; callers scan stores nobody writes to.
 */
export async function* scanPacked(db: ScannableLevel, range: ScanRange, thread: LevelThread = 'auto'): AsyncGenerator<PackedRecords> {
  const large = thread === 'auto' && (await approximateSize(db, range)) >= WORKER_SCAN_MIN_BYTES;
  yield* pinnedScan(db, range, chooseThread(thread, large)).batches;
}

/** The thread `thread` means for a scan or writer: 'auto' is the worker for `large` work, if the worker's compiled file exists. */
export function chooseThread(thread: LevelThread, large: boolean): 'worker' | 'caller' {
  if (thread !== 'auto') return thread;
  return large && workerAvailable() ? 'worker' : 'caller';
}

/** A scan whose view of the store is fixed once {@link pinned} resolves (see {@link pinnedScan}). */
export interface PinnedScan {
  /**
   * Resolves once the scan's view of the store is fixed (LevelDB's iterator snapshot): writes
   * and deletes after that are not seen. Rejects if the scan could not start.
   */
  readonly pinned: Promise<void>;
  /** The records, in key order, in packed batches; iterate once. Ending the iteration ends the scan. */
  readonly batches: AsyncGenerator<PackedRecords>;
  /** Ends the scan whether or not its batches were iterated (resolves once it released the store). */
  stop(): Promise<void>;
}

/**
 * Starts a scan of [range.gte, range.lt) of `db` on `thread`. On the caller, the view is fixed at
 * the call; on the worker, once the worker has opened the store and created its iterator (tens
 * of milliseconds): a caller that needs a point-in-time view keeps whatever could change the
 * range's records from happening until {@link PinnedScan.pinned} resolves.
 */
export function pinnedScan(db: ScannableLevel, range: ScanRange, thread: 'worker' | 'caller'): PinnedScan {
  if (thread === 'caller') {
    const iterator = db.iterator({ gte: range.gte, lt: range.lt, highWaterMarkBytes: SCAN_HIGH_WATER_BYTES });
    const batches = scanInCaller(iterator);
    let started = false;
    return {
      pinned: Promise.resolve(),
      batches: (async function* () {
        started = true;
        yield* batches;
      })(),
      stop: async () => {
        if (!started) await iterator.close();
      },
    };
  }
  const worker = new LevelWorker({
    kind: 'scan',
    location: db.location,
    gte: range.gte,
    lt: range.lt,
    batchRecords: BATCH_RECORDS,
    highWaterMarkBytes: SCAN_HIGH_WATER_BYTES,
    window: WORKER_WINDOW,
  });
  const pinned = worker.next().then((reply) => {
    if (reply.kind !== 'ready') throw new Error(`level worker: scan started with '${reply.kind}'`);
  });
  pinned.catch(() => undefined); // observed by the caller, or by the first batch
  return {
    pinned,
    batches: scanInWorker(worker, pinned),
    stop: async () => {
      worker.post('stop');
      await worker.exit();
    },
  };
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

const WORKER_FILE = join(__dirname, 'level-worker-thread.js');

/** The worker needs its compiled file (absent when this module runs from TypeScript sources). */
function workerAvailable(): boolean {
  return existsSync(WORKER_FILE);
}

/** classic-level's approximateSize, which `level`'s typings hide; 0 if the database has none. */
async function approximateSize(db: ScannableLevel, range: ScanRange): Promise<number> {
  const sized = db as unknown as { approximateSize?: (start: Buffer, end: Buffer) => Promise<number> };
  return typeof sized.approximateSize === 'function' ? sized.approximateSize(range.gte, range.lt) : 0;
}

async function* scanInCaller(iterator: ReturnType<ScannableLevel['iterator']>): AsyncGenerator<PackedRecords> {
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

/**
 * Messages between the two threads, delivered in order to whoever waits for the next one. A
 * failure is thrown by the next wait at once; an end only once every message was taken.
 */
export class MessageQueue<T> {
  private readonly messages: T[] = [];
  private failure: Error | undefined;
  private ending: Error | undefined;
  private wake: (() => void) | undefined;

  push(message: T): void {
    this.messages.push(message);
    this.notify();
  }

  /** Fails every wait from now on (the first failure is kept). */
  fail(error: Error): void {
    this.failure ??= error;
    this.notify();
  }

  /** No message will follow: a wait on the empty queue throws `error`. */
  end(error: Error): void {
    this.ending ??= error;
    this.notify();
  }

  /** Messages received and not yet taken. */
  get size(): number {
    return this.messages.length;
  }

  take(): T | undefined {
    return this.messages.shift();
  }

  async next(): Promise<T> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const message = this.messages.shift();
      if (message !== undefined) return message;
      if (this.ending !== undefined) throw this.ending;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const resume = this.wake;
    this.wake = undefined;
    resume?.();
  }
}

/**
 * A worker thread running one task, seen from the calling thread: its replies in order, and its
 * failure (an error reply, an uncaught exception, or an exit before the task said it was done).
 */
class LevelWorker {
  private readonly worker: Worker;
  private readonly replies = new MessageQueue<WorkerReply>();
  private exited = false;

  constructor(task: WorkerTask) {
    this.worker = new Worker(WORKER_FILE, { workerData: task });
    this.worker.on('message', (reply: WorkerReply) => {
      if (reply.kind === 'error') this.replies.fail(new Error(`level worker failed: ${reply.message}`));
      else this.replies.push(reply);
    });
    this.worker.on('error', (error: Error) => this.replies.fail(new Error(`level worker failed: ${error.message}`)));
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (code !== 0) this.replies.fail(new Error(`level worker exited with code ${code}`));
      else this.replies.end(new Error('level worker exited before its task was done'));
    });
  }

  /** The next reply; rejects once the worker failed, or exited with no reply left. */
  next(): Promise<WorkerReply> {
    return this.replies.next();
  }

  post(message: string | WriterRequest, transfer: ArrayBuffer[] = []): void {
    if (!this.exited) this.worker.postMessage(message, transfer);
  }

  /** Resolves when the thread has exited (it closes its handle on the store first). */
  async exit(): Promise<void> {
    if (!this.exited) await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
  }
}

async function* scanInWorker(worker: LevelWorker, pinned: Promise<void>): AsyncGenerator<PackedRecords> {
  let finished = false;
  try {
    await pinned;
    for (;;) {
      const reply = await worker.next();
      if (reply.kind === 'end') {
        finished = true;
        return;
      }
      if (reply.kind !== 'batch') throw new Error(`level worker: unexpected '${reply.kind}' reply to a scan`);
      worker.post('more');
      yield { bytes: Buffer.from(reply.bytes), count: reply.count };
    }
  } finally {
    if (!finished) worker.post('stop');
    // The caller may close the store as soon as this returns.
    await worker.exit();
  }
}

/**
 * Records to put into level: `bounds` holds keyStart, keyEnd, valueStart, valueEnd of each
 * record in `bytes`.
 */
export interface RecordBatch {
  readonly bytes: Buffer;
  readonly bounds: Uint32Array;
}

/** What a batch writer needs of the classic-level database it writes. */
export interface BatchWritableLevel {
  readonly location: string;
  batch(operations: Array<{ type: 'put'; key: Buffer; value: Buffer }>): Promise<void>;
}

/**
 * Puts batches of records into level, several at a time (see {@link openBatchWriter}). Batches
 * may be written in any order relative to each other: they must not share keys.
 */
export interface BatchWriter {
  /** Queues the records; resolves once the writer can take more. Rejects if a write failed. */
  put(batch: RecordBatch): Promise<void>;
  /** Resolves once every queued batch is written, or rejects if one failed; then releases the writer. */
  close(): Promise<void>;
}

/** Batches a writer may have queued and not yet written before `put` waits. */
const WRITE_WINDOW = 8;

/** The level put operations of a record batch (views into its bytes). */
export function batchOperations(batch: RecordBatch): Array<{ type: 'put'; key: Buffer; value: Buffer }> {
  const { bytes, bounds } = batch;
  const operations = new Array<{ type: 'put'; key: Buffer; value: Buffer }>(bounds.length / 4);
  for (let i = 0, b = 0; b < bounds.length; i++, b += 4) {
    operations[i] = { type: 'put', key: bytes.subarray(bounds[b], bounds[b + 1]), value: bytes.subarray(bounds[b + 2], bounds[b + 3]) };
  }
  return operations;
}

/**
 * Bytes a worker writer gathers from the caller's batches before handing them to LevelDB as one
 * batch. A restore's image frames are about 64 KiB each; gathered into 1 MiB batches, a
 * 1M-record restore took 4.72–5.34 s instead of 5.55–5.97 s (four alternating pairs): fewer,
 * larger level writes and fewer hand-offs to the worker.
 */
export const WRITE_GATHER_BYTES = 1 << 20;

/**
 * Copies the caller's record batches into one buffer of its own (the caller's bytes may be views
 * into larger buffers, and may be reused once `add` returns), rebasing their bounds.
 */
class BatchGatherer {
  private buffer: Buffer | undefined;
  private used = 0;
  private bounds: number[] = [];

  constructor(private readonly capacityBytes: number) {}

  /** Bytes gathered so far. */
  get bytes(): number {
    return this.used;
  }

  /** Whether `batch` fits beside what is gathered (anything fits an empty gatherer). */
  fits(batch: RecordBatch): boolean {
    return this.used === 0 || this.used + batch.bytes.length <= this.buffer!.length;
  }

  /** Copies `batch` in; it MUST fit. */
  add(batch: RecordBatch): void {
    if (this.buffer === undefined) this.buffer = Buffer.allocUnsafeSlow(Math.max(this.capacityBytes, batch.bytes.length));
    const at = this.used;
    this.used += batch.bytes.copy(this.buffer, at);
    for (const bound of batch.bounds) this.bounds.push(bound + at);
  }

  /** The gathered records as transferable buffers; the gatherer starts empty again. */
  take(): { bytes: ArrayBuffer; bounds: ArrayBuffer } {
    // A buffer from allocUnsafeSlow is not pooled: its ArrayBuffer holds exactly these bytes
    // (plus the unused tail, which the bounds never reach).
    const bytes = this.buffer!.buffer as ArrayBuffer;
    const bounds = Uint32Array.from(this.bounds).buffer;
    this.buffer = undefined;
    this.used = 0;
    this.bounds = [];
    return { bytes, bounds };
  }
}

/**
 * A writer of record batches into `db`, up to {@link WRITE_WINDOW} batches at a time (LevelDB
 * merges concurrent writes into one: with one batch at a time, a restore of a million records
 * waited 3.6 s of 7.6 for level). On the worker ('worker', or 'auto'), the caller's batches are
 * gathered into batches of about `gatherBytes` ({@link WRITE_GATHER_BYTES} by default), converted
 * into level's operations and handed to LevelDB on that thread (classic-level's batch call is a
 * fifth of a restore's main thread otherwise). `db` must have been opened with
 * `multithreading: true` for the worker.
 */
export function openBatchWriter(db: BatchWritableLevel, thread: LevelThread = 'auto', gatherBytes = WRITE_GATHER_BYTES): BatchWriter {
  if (chooseThread(thread, true) === 'caller') return callerBatchWriter(db);
  const worker = new LevelWorker({ kind: 'write', location: db.location });
  const gathered = new BatchGatherer(gatherBytes);
  let queued = 0;
  const written = async (): Promise<void> => {
    const reply = await worker.next();
    if (reply.kind !== 'written') throw new Error(`level worker: unexpected '${reply.kind}' reply to a put`);
    queued--;
  };
  const post = (): void => {
    const { bytes, bounds } = gathered.take();
    worker.post({ kind: 'put', bytes, bounds }, [bytes, bounds]);
    queued++;
  };
  return {
    async put(batch: RecordBatch): Promise<void> {
      if (!gathered.fits(batch)) post();
      gathered.add(batch);
      if (gathered.bytes >= gatherBytes) post();
      while (queued >= WRITE_WINDOW) await written();
    },
    async close(): Promise<void> {
      try {
        if (gathered.bytes > 0) post();
        while (queued > 0) await written();
      } finally {
        worker.post({ kind: 'close' });
        await worker.exit();
      }
    },
  };
}

/** {@link openBatchWriter} on the calling thread. */
function callerBatchWriter(db: BatchWritableLevel): BatchWriter {
  const queued = new Set<Promise<void>>();
  let failure: unknown;
  const settled = async (): Promise<void> => {
    await Promise.race(queued);
    if (failure !== undefined) throw failure;
  };
  return {
    async put(batch: RecordBatch): Promise<void> {
      if (failure !== undefined) throw failure;
      const write: Promise<void> = db.batch(batchOperations(batch)).then(
        () => void queued.delete(write),
        (error: unknown) => {
          queued.delete(write);
          failure ??= error;
        },
      );
      queued.add(write);
      while (queued.size >= WRITE_WINDOW) await settled();
    },
    async close(): Promise<void> {
      while (queued.size > 0) await settled();
      if (failure !== undefined) throw failure;
    },
  };
}
