/**
 * The worker thread of level-worker.ts. It opens the store the main thread holds open
 * (classic-level's `multithreading` mode shares the one LevelDB handle) and runs one task:
 * - 'scan': creates its iterator (answering 'ready': its view of the store is fixed from then on),
 *   reads the key range in batches and transfers each one packed, at most `window` batches ahead
 *   of the main thread ('more' grants one more; 'stop' ends the scan early);
 * - 'write': puts each batch of records it is sent as it arrives (several may be in flight),
 *   answering 'written' for each ('close' waits for all of them and ends the task).
 * Either way it closes its handle on the store before it exits, and reports a failure as an
 * 'error' reply.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Level } from 'level';
import { batchOperations, MessageQueue, packRecords, type WorkerReply, type WorkerTask, type WriterRequest } from './level-worker';

type Database = Level<Buffer, Buffer>;

/** Messages from the main thread, in order. */
function messagesFrom<T>(port: MessagePort): MessageQueue<T> {
  const queue = new MessageQueue<T>();
  port.on('message', (message: T) => queue.push(message));
  return queue;
}

async function scan(db: Database, task: Extract<WorkerTask, { kind: 'scan' }>, inbox: MessageQueue<string>, send: (reply: WorkerReply, transfer?: ArrayBuffer[]) => void): Promise<void> {
  let credits = task.window;
  let stopped = false;
  const take = (message: string | undefined): void => {
    if (message === 'stop') stopped = true;
    else if (message === 'more') credits++;
  };
  const iterator = db.iterator({ gte: Buffer.from(task.gte), lt: Buffer.from(task.lt), highWaterMarkBytes: task.highWaterMarkBytes });
  // The iterator holds LevelDB's snapshot from here on: the main thread may let writes go on.
  send({ kind: 'ready' });
  let next = iterator.nextv(task.batchRecords);
  try {
    for (let entries = await next; entries.length > 0; entries = await next) {
      next = iterator.nextv(task.batchRecords);
      const bytes = packRecords(entries);
      while (inbox.size > 0) take(inbox.take());
      while (credits === 0 && !stopped) take(await inbox.next());
      if (stopped) return;
      credits--;
      const buffer = bytes.buffer as ArrayBuffer;
      send({ kind: 'batch', bytes: buffer, count: entries.length }, [buffer]);
    }
    send({ kind: 'end' });
  } finally {
    await next.catch(() => undefined);
    await iterator.close();
  }
}

async function write(db: Database, inbox: MessageQueue<WriterRequest>, send: (reply: WorkerReply) => void): Promise<void> {
  // Every batch goes to level at once (the main thread bounds how many are queued); each is
  // answered when written. A failure rejects the task.
  const writing = new Set<Promise<void>>();
  let failure: unknown;
  for (let request = await inbox.next(); request.kind === 'put'; request = await inbox.next()) {
    if (failure !== undefined) throw failure;
    const done: Promise<void> = db.batch(batchOperations({ bytes: Buffer.from(request.bytes), bounds: new Uint32Array(request.bounds) })).then(
      () => {
        writing.delete(done);
        send({ kind: 'written' });
      },
      (error: unknown) => {
        writing.delete(done);
        failure ??= error;
        send({ kind: 'error', message: describe(error) });
      },
    );
    writing.add(done);
  }
  await Promise.all(writing);
  if (failure !== undefined) throw failure;
}

async function run(port: MessagePort, task: WorkerTask): Promise<void> {
  const send = (reply: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);
  const db: Database = new Level<Buffer, Buffer>(task.location, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: false, multithreading: true } as object);
  try {
    await db.open();
    if (task.kind === 'scan') await scan(db, task, messagesFrom<string>(port), send);
    else await write(db, messagesFrom<WriterRequest>(port), send);
  } catch (error) {
    send({ kind: 'error', message: describe(error) });
  } finally {
    await db.close();
    port.close();
  }
}

/** An error with level's code and its cause ("Database failed to open" alone does not say why). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${typeof code === 'string' ? `${code} ` : ''}${error.message}${cause}`;
}

if (parentPort === null) throw new Error('level-worker-thread.ts runs only as a worker thread (see level-worker.ts)');
void run(parentPort, workerData as WorkerTask);
