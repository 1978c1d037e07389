/**
 * The worker thread of a level scan (see level-scan.ts): opens the store the main thread holds
 * open (classic-level's `multithreading` mode shares the one LevelDB handle), reads the range in
 * batches and transfers each one packed, at most `window` batches ahead of the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Level } from 'level';
import { packRecords, type WorkerReply, type WorkerTask } from './level-scan';

async function run(port: NonNullable<typeof parentPort>, task: WorkerTask): Promise<void> {
  let credits = task.window;
  let stopped = false;
  let wake: (() => void) | undefined;
  port.on('message', (message: string) => {
    if (message === 'stop') stopped = true;
    else credits++;
    const resume = wake;
    wake = undefined;
    resume?.();
  });
  const send = (reply: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);
  const db = new Level<Buffer, Buffer>(task.location, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: false, multithreading: true } as object);
  try {
    await db.open();
    const iterator = db.iterator({ gte: Buffer.from(task.gte), lt: Buffer.from(task.lt), highWaterMarkBytes: task.highWaterMarkBytes });
    let next = iterator.nextv(task.batchRecords);
    try {
      for (let entries = await next; entries.length > 0 && !stopped; entries = await next) {
        next = iterator.nextv(task.batchRecords);
        const bytes = packRecords(entries);
        while (credits === 0 && !stopped) await new Promise<void>((resolve) => (wake = resolve));
        if (stopped) break;
        credits--;
        const buffer = bytes.buffer as ArrayBuffer;
        send({ kind: 'batch', bytes: buffer, count: entries.length }, [buffer]);
      }
    } finally {
      await next.catch(() => undefined);
      await iterator.close();
    }
    if (!stopped) send({ kind: 'end' });
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

if (parentPort === null) throw new Error('level-scan-worker.ts runs only as a worker thread (see level-scan.ts)');
void run(parentPort, workerData as WorkerTask);
