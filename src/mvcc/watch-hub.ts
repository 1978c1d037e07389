/**
 * The watch hub (etcd's watchableStore): delivers the store's events to watchers on key ranges,
 * from a start revision, in revision order, with none lost or repeated, and with bounded memory.
 *
 * Every watcher is in one of two groups (etcd's synced/unsynced):
 * - synced: it has everything up to the current revision queued or delivered. Each applied
 *   revision's events (MvccStore.subscribe) are filtered and queued for it directly.
 * - unsynced: it started in the past, or it fell behind: when a revision's events would push its
 *   queue past `bufferedEventsMax`, nothing is queued and it is moved here instead. It catches up
 *   from history (MvccStore.history) in chunks of about `catchUpEventsMax` events, one chunk at a
 *   time and only when its consumer has drained the queue, then rejoins the synced group the
 *   moment its history read reaches the current revision.
 * So a slow consumer costs at most one queue of events plus one chunk, never an unbounded queue.
 * History chunks are read for the WHOLE keyspace and shared (a few recent chunks are kept): when
 * a burst leaves hundreds of watchers behind at the same revision, as a fan-out does, they catch
 * up from one read instead of one each (etcd syncs its unsynced group with one read per round),
 * and each watcher filters the chunk by its own range.
 *
 * Each watcher tracks `nextRevision`, the first revision not yet queued: a live revision below it
 * is ignored (a future start revision), history is read from it. Both paths advance it, and the
 * switch from unsynced to synced happens synchronously after checking the store's revision, so
 * every revision is seen exactly once.
 *
 * Consumers pull: {@link Watcher.next} resolves with the next delivery. A start revision below the
 * compact revision (or a compaction that overtakes a catching-up watcher) ends the watcher with a
 * 'compacted' delivery carrying the store's compact revision, as etcd does. A snapshot restore
 * moves every watcher to unsynced, since history may have jumped.
 */
import { assert } from './errors';
import { rangeContains, resolveRange, toKeyString, type KeyRange, type KeyString } from './key-range';
import type { MvccOutcome } from './errors';
import type { HistoryChunk, MvccStore } from './mvcc-store';
import { cachedPerObject } from './per-object-cache';
import { EventType, type MvccEvent, type Revision } from './types';

/** What a watcher watches (etcd WatchCreateRequest, minus the stream-level fields). */
export interface WatchOptions {
  /** First key (the API layer turns an empty key into "\0", as etcd does). */
  readonly key: Uint8Array;
  /** RangeRequest conventions: absent = the single key; "\0" = every key >= key. */
  readonly rangeEnd?: Uint8Array;
  /** First revision to deliver; 0 or absent = the next revision. May be in the future. */
  readonly startRevision?: Revision;
  /** Filter NOPUT: drop PUT events. */
  readonly noPut?: boolean;
  /** Filter NODELETE: drop DELETE events. */
  readonly noDelete?: boolean;
  /** Attach each event's previous key-value (when it existed and is still kept). */
  readonly prevKv?: boolean;
}

/** One delivery to a watcher. 'compacted' and 'canceled' are final. */
export type WatchDelivery =
  /** Events of one or more whole revisions, in order (never empty). */
  | { readonly kind: 'events'; readonly events: readonly MvccEvent[] }
  /** The start revision (or the catch-up point) was compacted; etcd's compact_revision. */
  | { readonly kind: 'compacted'; readonly compactRevision: Revision }
  /** {@link Watcher.cancel} or {@link WatchHub.close} was called. */
  | { readonly kind: 'canceled' };

/** Tuning of a {@link WatchHub}. */
export interface WatchHubOptions {
  /** Events a watcher may have queued before it is moved to unsynced (default 1,024). */
  readonly bufferedEventsMax?: number;
  /** Events read from history per catch-up step (default 1,000; whole revisions). */
  readonly catchUpEventsMax?: number;
}

type WatcherState = 'synced' | 'unsynced' | 'done';

/** Every key (etcd: key "\0" with range_end "\0"). */
const EVERY_KEY: KeyRange = resolveRange(Buffer.from([0]), Buffer.from([0]));
/** Shared history chunks kept by a hub. */
const HISTORY_CHUNKS_KEPT = 8;

/** The most events {@link Watcher.next} merges from queued deliveries into one. */
const MERGED_EVENTS_MAX = 1000;

/** One watcher. Create with {@link WatchHub.watch}. */
export class Watcher {
  /** The first revision not yet queued. */
  nextRevision: Revision;
  /** @internal */
  state: WatcherState;
  /**
   * Event lists queued for the consumer, whole deliveries in order. Each list is shared with other
   * watchers (never mutated) and queued as it is, with no wrapper object per watcher and revision.
   */
  private readonly queue: Array<readonly MvccEvent[]> = [];
  private queuedEvents = 0;
  /** A final delivery ('compacted' or 'canceled'), answered to every call once the queue is empty. */
  private final: WatchDelivery | undefined;
  /** A microtask will answer the waiting consumer (see deliverEvents). */
  private answerQueued = false;
  private waiter: ((delivery: WatchDelivery) => void) | undefined;
  private catchingUp = false;
  /** @internal */
  readonly range: KeyRange;
  /** @internal Watchers with equal keys select the same events from a revision (see notify). */
  readonly selectionKey: string;

  /** @internal Use {@link WatchHub.watch}. */
  constructor(
    private readonly hub: WatchHub,
    readonly options: WatchOptions,
    startRevision: Revision,
    currentRevision: Revision,
  ) {
    this.range = resolveRange(options.key, options.rangeEnd);
    this.selectionKey = `${this.range.start}\u0000${String(this.range.end)}\u0000${options.noPut === true}${options.noDelete === true}${options.prevKv === true}`;
    this.nextRevision = startRevision;
    this.state = startRevision > currentRevision ? 'synced' : 'unsynced';
  }

  /** True while the watcher is in the synced group (for tests and metrics). */
  isSynced(): boolean {
    return this.state === 'synced';
  }

  /** Events currently queued (bounded by the hub's bufferedEventsMax plus one batch). */
  queuedEventCount(): number {
    return this.queuedEvents;
  }

  /**
   * The next delivery. THE CALLER MUST NOT call again before the previous promise settled. After
   * a final delivery, every call answers it again.
   */
  next(): Promise<WatchDelivery> {
    assert(this.waiter === undefined, 'Watcher.next called while a previous call is pending');
    const queued = this.takeQueued();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.final !== undefined) return Promise.resolve(this.final); // final deliveries stay
    return new Promise((resolve) => {
      this.waiter = resolve;
      if (this.state === 'unsynced') this.catchUp();
    });
  }

  /**
   * Everything queued, as one delivery (whole deliveries, in order, up to a bound), as etcd
   * batches a watcher that fell behind: one response instead of one per revision.
   */
  private takeQueued(): WatchDelivery | undefined {
    const queue = this.queue;
    const first = queue[0];
    if (first === undefined) return undefined;
    if (queue.length === 1) {
      // The shared list itself: the watch service encodes a list once, by identity.
      queue.length = 0;
      this.queuedEvents = 0;
      return { kind: 'events', events: first };
    }
    let taken = 1;
    let eventCount = first.length;
    while (taken < queue.length && eventCount + queue[taken]!.length <= MERGED_EVENTS_MAX) {
      eventCount += queue[taken]!.length;
      taken += 1;
    }
    const events: MvccEvent[] = new Array<MvccEvent>(eventCount);
    let at = 0;
    for (let index = 0; index < taken; index++) {
      for (const event of queue[index]!) events[at++] = event;
    }
    if (taken === queue.length) queue.length = 0;
    else queue.splice(0, taken);
    this.queuedEvents -= eventCount;
    return { kind: 'events', events };
  }

  /** Stops the watcher; a pending or later {@link next} answers 'canceled'. Idempotent. */
  cancel(): void {
    if (this.state === 'done') return;
    this.finish({ kind: 'canceled' });
  }

  /** @internal Queues a live revision's events (already known to be >= nextRevision). */
  offer(revision: Revision, selected: readonly MvccEvent[], bufferedEventsMax: number): void {
    if (selected.length > 0 && this.waiter === undefined && this.queue.length > 0 && this.queuedEvents + selected.length > bufferedEventsMax) {
      // Falls behind: keep nothing of this revision; catch up from history when drained.
      this.state = 'unsynced';
      this.nextRevision = revision;
      return;
    }
    this.nextRevision = revision + 1;
    if (selected.length > 0) this.deliverEvents(selected);
  }

  /** @internal Moves a synced watcher to unsynced (after a snapshot restore). */
  desync(): void {
    if (this.state !== 'synced') return;
    this.state = 'unsynced';
    if (this.waiter !== undefined) this.catchUp();
  }

  /** @internal */
  finish(delivery: WatchDelivery): void {
    this.state = 'done';
    this.hub.forget(this);
    this.queue.length = 0;
    this.queuedEvents = 0;
    this.final = delivery;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(delivery);
  }

  /** @internal This watcher's events of a revision (never mutated afterwards: watchers share it). */
  select(events: readonly MvccEvent[]): MvccEvent[] {
    const selected: MvccEvent[] = [];
    for (const event of events) {
      if (event.type === EventType.Put && this.options.noPut === true) continue;
      if (event.type === EventType.Delete && this.options.noDelete === true) continue;
      if (!rangeContains(this.range, keyStringOf(event))) continue;
      if (this.options.prevKv !== true && event.prevKv !== undefined) selected.push(withoutPreviousKv(event));
      else selected.push(event);
    }
    return selected;
  }

  /**
   * Queues `events` for the consumer. A waiting consumer is answered from a microtask, not at
   * once: the store publishes every revision of an apply batch in one synchronous loop, so the
   * consumer then gets the whole batch in one delivery (one response) instead of the first
   * revision alone and the rest in a second. Catch-up deliveries (`now`) answer at once, so the
   * catch-up loop stops reading history as soon as its consumer has something.
   */
  private deliverEvents(events: readonly MvccEvent[], now = false): void {
    this.queue.push(events);
    this.queuedEvents += events.length;
    if (this.waiter === undefined) return;
    if (now) this.answerWaiter();
    else if (!this.answerQueued) {
      this.answerQueued = true;
      queueMicrotask(this.answerWaiter);
    }
  }

  private readonly answerWaiter = (): void => {
    this.answerQueued = false;
    const waiter = this.waiter;
    if (waiter === undefined) return;
    const delivery = this.takeQueued();
    if (delivery === undefined) return;
    this.waiter = undefined;
    waiter(delivery);
  };

  /** Reads history chunks until something is delivered or the watcher is synced again. */
  private catchUp(): void {
    if (this.catchingUp) return;
    this.catchingUp = true;
    void this.catchUpLoop().finally(() => {
      this.catchingUp = false;
    });
  }

  private async catchUpLoop(): Promise<void> {
    const store = this.hub.store;
    while (this.state === 'unsynced' && this.waiter !== undefined) {
      const from = this.nextRevision;
      const epoch = this.hub.restoreEpoch;
      const outcome = await this.hub.historyChunk(from, this.options.prevKv === true);
      if (this.state !== 'unsynced' || this.nextRevision !== from) return; // canceled meanwhile
      if (epoch !== this.hub.restoreEpoch) continue; // the store was replaced under the read: retry
      if (!outcome.ok) {
        this.finish({ kind: 'compacted', compactRevision: store.compactRevision() });
        return;
      }
      const selected = this.select(outcome.value.events);
      this.nextRevision = outcome.value.throughRevision + 1;
      // Synchronously with the check: no revision can slip between history and live delivery.
      if (this.nextRevision > store.currentRevision()) this.state = 'synced';
      if (selected.length > 0) this.deliverEvents(selected, true);
    }
  }
}

/** The hub: one per store. */
export class WatchHub {
  /** @internal */
  readonly catchUpEventsMax: number;
  private readonly bufferedEventsMax: number;
  private readonly watchers = new Set<Watcher>();
  private readonly historyChunks = new Map<string, Promise<MvccOutcome<HistoryChunk>>>();
  /** @internal Bumped by every snapshot restore; a history read that straddles one is retried. */
  restoreEpoch = 0;
  private readonly unsubscribe: Array<() => void>;

  constructor(
    readonly store: MvccStore,
    options: WatchHubOptions = {},
  ) {
    this.bufferedEventsMax = options.bufferedEventsMax ?? 1024;
    this.catchUpEventsMax = options.catchUpEventsMax ?? 1000;
    assert(this.bufferedEventsMax >= 1 && this.catchUpEventsMax >= 1, 'watch hub limits must be positive');
    this.unsubscribe = [
      store.subscribe((revision, events) => this.notify(revision, events)),
      store.subscribeRestore(() => {
        this.restoreEpoch += 1;
        for (const watcher of this.watchers) watcher.desync();
      }),
    ];
  }

  /**
   * Starts a watcher. With start revision 0 it sees revisions after the current one; a start at or
   * below the current revision replays history first (or ends 'compacted').
   */
  watch(options: WatchOptions): Watcher {
    const current = this.store.currentRevision();
    const requested = options.startRevision ?? 0;
    const watcher = new Watcher(this, options, requested > 0 ? requested : current + 1, current);
    this.watchers.add(watcher);
    return watcher;
  }

  /** Watchers in the synced and unsynced groups (metrics, tests). */
  counts(): { synced: number; unsynced: number } {
    let synced = 0;
    for (const watcher of this.watchers) if (watcher.isSynced()) synced += 1;
    return { synced, unsynced: this.watchers.size - synced };
  }

  /** Cancels every watcher and detaches from the store. */
  close(): void {
    for (const watcher of [...this.watchers]) watcher.cancel();
    for (const unsubscribe of this.unsubscribe) unsubscribe();
  }

  /** @internal */
  forget(watcher: Watcher): void {
    this.watchers.delete(watcher);
  }

  /**
   * @internal The history of EVERY key from revision `from` (about catchUpEventsMax events),
   * shared by every watcher that catches up from the same revision (see the module overview).
   */
  historyChunk(from: Revision, withPrevKv: boolean): Promise<MvccOutcome<HistoryChunk>> {
    // A revision compacted since a chunk was read must answer 'compacted', as the store does.
    if (from < this.store.compactRevision()) return this.store.history(EVERY_KEY, from, this.catchUpEventsMax, withPrevKv);
    const key = `${this.restoreEpoch}/${from}/${withPrevKv}`;
    let chunk = this.historyChunks.get(key);
    if (chunk === undefined) {
      chunk = this.store.history(EVERY_KEY, from, this.catchUpEventsMax, withPrevKv);
      this.historyChunks.set(key, chunk);
      // Keep the newest few: a Map iterates in insertion order, so the first key is the oldest.
      if (this.historyChunks.size > HISTORY_CHUNKS_KEPT) this.historyChunks.delete(this.historyChunks.keys().next().value!);
    }
    return chunk;
  }

  private notify(revision: Revision, events: readonly MvccEvent[]): void {
    // One selection per distinct (range, filters): a thousand watchers of one prefix share one
    // array, which the watch service then encodes once.
    const selections = new Map<string, MvccEvent[]>();
    for (const watcher of this.watchers) {
      if (watcher.state !== 'synced' || revision < watcher.nextRevision) continue;
      assert(revision === watcher.nextRevision, `watch hub: revision ${revision} offered to a watcher expecting ${watcher.nextRevision}`);
      let selected = selections.get(watcher.selectionKey);
      if (selected === undefined) {
        selected = watcher.select(events);
        selections.set(watcher.selectionKey, selected);
      }
      watcher.offer(revision, selected, this.bufferedEventsMax);
    }
  }
}

/**
 * `event` without its previous KeyValue, the SAME object for every watcher that asked for none:
 * the watch service encodes each event object once (by identity) however many watchers get it.
 */
const eventsWithoutPreviousKv = new WeakMap<MvccEvent, MvccEvent>();
function withoutPreviousKv(event: MvccEvent): MvccEvent {
  return cachedPerObject(eventsWithoutPreviousKv, event, () => ({ type: event.type, kv: event.kv }));
}

/** The event's key as a KeyString, computed once per event however many watchers test it. */
const eventKeyStrings = new WeakMap<MvccEvent, KeyString>();
function keyStringOf(event: MvccEvent): KeyString {
  return cachedPerObject(eventKeyStrings, event, () => toKeyString(event.kv.key));
}
