/**
 * Read a prefix, then follow it with a watch that starts at the NEXT revision: no change is
 * missed between the read and the watch, and none is seen twice.
 *
 * `start()` reads the prefix (values if `readValues`, else just the revision, with a one-key
 * Range), hands the snapshot to `onSnapshot`, then opens a watch from `header.revision + 1`;
 * it resolves once the watch is created, so a caller that waits for it knows every later change
 * will be delivered. Changes are handed to `onChange` in revision order.
 *
 * If etcd cancels the watch (e.g. its start revision was compacted after a long disconnect), the
 * whole cycle runs again: `onSnapshot` is called with a fresh read, so the caller can rebuild
 * (the cache groups drop everything). Reconnects of the underlying stream are handled by the
 * etcd3 client, which resumes from the last revision it saw.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';

/** One change under the prefix. */
export interface PrefixChange {
  readonly type: 'put' | 'delete';
  /** The full store key. */
  readonly key: string;
  readonly value: Buffer;
  readonly modRevision: number;
}

/** Callbacks of a {@link PrefixWatch}. */
export interface PrefixWatchHandlers {
  /** The prefix's content at `revision` (empty unless `readValues`). Called again after a reset. */
  onSnapshot(kvs: ReadonlyArray<{ key: string; value: Buffer }>, revision: number): void;
  onChange(change: PrefixChange): void;
  /** A failure worth logging (the watch is being re-established). */
  onError?(error: unknown): void;
}

/** A prefix followed by read + watch. */
export class PrefixWatch {
  private watcher: Watcher | undefined;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
    private readonly readValues: boolean,
    private readonly handlers: PrefixWatchHandlers,
  ) {}

  /** Reads, then watches from the next revision; resolves once the watch is created. */
  async start(): Promise<void> {
    const range = this.client.getAll().prefix(this.prefix);
    const response = this.readValues ? await range.exec() : await range.limit(1).exec();
    const revision = Number(response.header.revision);
    this.handlers.onSnapshot(
      this.readValues ? response.kvs.map((kv: IKeyValue) => ({ key: kv.key.toString(), value: Buffer.from(kv.value) })) : [],
      revision,
    );
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(String(revision + 1)).create();
    if (this.stopped) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    watcher.on('data', (response) => {
      for (const event of response.events) {
        this.handlers.onChange({
          type: event.type === 'Delete' ? 'delete' : 'put',
          key: event.kv.key.toString(),
          value: Buffer.from(event.kv.value ?? Buffer.alloc(0)),
          modRevision: Number(event.kv.mod_revision),
        });
      }
    });
    watcher.on('error', (error) => {
      this.handlers.onError?.(error);
      if (this.watcher === watcher) this.watcher = undefined;
      void this.startRetrying();
    });
  }

  /** Cancels the watch. */
  async stop(): Promise<void> {
    this.stopped = true;
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher !== undefined) await watcher.cancel().catch(() => undefined);
  }

  /** {@link start}, retried every 500 ms until it succeeds or {@link stop} is called. */
  async startRetrying(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.start();
        return;
      } catch (error) {
        this.handlers.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}
