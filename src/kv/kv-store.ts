/**
 * KvStore: the raftexample state machine (raftexample's `kvstore.go`), kept in LevelDB through
 * `level`.
 *
 * What raftexample keeps in a Go map, raftkv keeps in one LevelDB directory, so the state machine
 * survives restarts without replaying the whole log. Three duties shape the design:
 *
 * 1. Idempotent apply. Every `applyEntries` call writes its data AND the new applied index in one
 *    atomic LevelDB batch. At restart the runtime replays committed entries from the WAL; entries
 *    at or below the durable applied index are skipped, so nothing is applied twice and nothing
 *    is lost (the contract's restart rule, docs/CONTRACTS.md).
 * 2. Membership beside the data. Members (ID → peer URL, learner flag) and removed IDs live under
 *    a separate key prefix, are changed in the same batch as the entry that changed them, travel
 *    in snapshots, and are cached in memory.
 * 3. Snapshots without holding the state in memory. `writeSnapshot` streams a point-in-time
 *    image (format: snapshot-image.ts) read through a LevelDB snapshot; `restoreSnapshot` builds
 *    the new state in a sibling directory and swaps it in with renames, crash-safely.
 *
 * Key layout inside LevelDB (binary keys, compared bytewise):
 * ```
 * 0x00 'f'                format version, u32 big-endian (1)
 * 0x00 'a'                applied index, u64 big-endian
 * 0x00 'c'                number of user keys, u64 big-endian (exact)
 * 0x00 'm' <id u64 BE>    member: flags u8 (bit 0 = learner) | peer URL (UTF-8)
 * 0x00 'r' <id u64 BE>    removed ID (empty value)
 * 0x01 <UTF-8 key>        user key → value bytes
 * ```
 * User keys all start with 0x01, so no user key can reach the metadata.
 *
 * Restore directories (`dir` is the store's directory):
 * - `<dir>.restore` holds an image being written; it becomes the store only once complete and
 *   fsynced.
 * - The swap is: close, rename `<dir>` → `<dir>.old`, rename `<dir>.restore` → `<dir>`, fsync
 *   the parent directory, delete `<dir>.old`, reopen.
 * - Recovery at open ({@link KvStore.open}): if `<dir>` is missing while `<dir>.old` exists, the
 *   crash fell between the two renames and `<dir>.restore` is complete, so the swap is completed;
 *   any other leftover `<dir>.restore` (partial, or complete but never swapped in) is deleted, and
 *   any leftover `<dir>.old` is deleted. Either way the store opens on a complete state, old or
 *   new. A deleted, never-swapped image is not lost: the runtime persisted the raft snapshot
 *   before applying it (Ready step 1), and at restart it MUST compare `appliedIndex()` with the
 *   newest snapshot's index and restore again when the store is behind.
 *
 * Reads have no cache of their own: LevelDB keeps recently read blocks in its block cache, and a
 * JavaScript cache would have to be invalidated on every apply and restore, which is where
 * correctness bugs hide. Measured on the two-core development machine (100-byte values, 50,000
 * keys): one awaited `get` takes about 26 microseconds end to end (mostly the hop to LevelDB's
 * worker thread), and 100 concurrent gets reach about 160,000 gets per second; applying puts in
 * batches of 100 entries reaches 70,000 puts per second. A cache can be added later behind `get`
 * if profiles of the HTTP path ask for it.
 */

import { rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger, LogIndex, NodeId } from '../raft/types';
import { NONE } from '../raft/types';
import type { Command } from './command';
import {
  APPLIED_KEY,
  DATA_END,
  DATA_START,
  KEY_COUNT_KEY,
  MEMBER_TAG,
  REMOVED_TAG,
  SNAPSHOT_READ_ENTRIES,
  dataKey,
  decodeMember,
  idKey,
  loadState,
  memberValue,
  openDatabase,
  prefixRange,
  readU64,
  u64,
  type BatchOperation,
  type Database,
  type LoadedState,
  type Member,
} from './kv-layout';
import { fsyncPath, recoverInterruptedRestore, stageImage } from './kv-restore';
import { SnapshotImageEncoder } from './snapshot-image';
import { makeWritesDurable, SCAN_HIGH_WATER_BYTES } from '../storage/level';

export { KV_STORE_FORMAT_VERSION, type Member } from './kv-layout';
export { SnapshotImageError } from './snapshot-image';

/**
 * A membership change, applied together with the entry that committed it.
 *
 * - `add`: the ID becomes a voter (a learner is promoted); `peerUrl` replaces the recorded URL
 *   when given.
 * - `add-learner`: the ID becomes a learner; `peerUrl` as for `add`.
 * - `promote`: the ID becomes a voter, keeping its URL unless `peerUrl` is given.
 * - `remove`: the ID leaves the members and joins the removed IDs forever.
 * A change naming an already removed ID is ignored (logged): a removed ID never rejoins. The raft
 * core decides which changes are valid; the store only records the outcome, deterministically.
 */
export interface MemberChange {
  readonly kind: 'add' | 'add-learner' | 'promote' | 'remove';
  readonly id: NodeId;
  readonly peerUrl?: string;
}

/**
 * One committed entry to apply: its index, the commands it carried (none for a no-op or a conf
 * change) and the membership changes it made. The runtime SHOULD pass every entry it applies,
 * even empty ones, so that `appliedIndex()` equals raft's applied index.
 */
export interface ApplyEntry {
  readonly index: LogIndex;
  readonly commands: readonly Command[];
  readonly members?: readonly MemberChange[];
}

/**
 * A snapshot image stream. It is a point-in-time image of the store as of `appliedIndex`, and it
 * may be iterated ONCE. The caller MUST iterate it to the end or stop it (`break` out of
 * `for await`), because it pins a LevelDB snapshot; an image never iterated is released when the
 * store closes.
 */
export interface SnapshotImageStream extends AsyncIterable<Uint8Array> {
  /** The applied index the image captures. */
  readonly appliedIndex: LogIndex;
}

/** Options of {@link KvStore.open}. */
export interface KvStoreOptions {
  readonly logger?: Logger;
  /**
   * Test-only crash simulation: `restoreSnapshot` stops dead at the named point, leaving the
   * directories exactly as a crash there would, and the store unusable. NEVER set in production.
   */
  readonly testingKnobs?: { readonly crashDuringRestore?: 'before-swap' | 'between-renames' };
}
/** Thrown by the test-only crash simulation; never seen in production. */
export class SimulatedCrashError extends Error {
  constructor(point: string) {
    super(`simulated crash during restore: ${point}`);
    this.name = 'SimulatedCrashError';
  }
}

/**
 * The raftexample state machine over LevelDB. See the module overview for the layout and the
 * crash-safety argument.
 *
 * Concurrency: `applyEntries` and `restoreSnapshot` are queued and run one at a time, in call
 * order. `get` may run at any time and observes every apply whose promise has resolved.
 */
export class KvStore {
  private db: Database;
  private state: LoadedState;
  private queue: Promise<void> = Promise.resolve();
  private writesPending = 0;
  private readsInFlight = 0;
  private readsDrained: (() => void) | undefined;
  private swapping: Promise<void> | undefined;
  private closed = false;
  /** The applied index LevelDB holds (state.applied may run ahead: see {@link flush}). */
  private durableApplied: LogIndex;

  private constructor(
    private readonly dir: string,
    db: Database,
    state: LoadedState,
    private readonly options: KvStoreOptions,
  ) {
    this.db = db;
    this.state = state;
    this.durableApplied = state.applied;
  }

  /**
   * Opens (creating if missing) the store in `dir`. FIRST recovers an interrupted restore (see the
   * module overview), then loads the applied index, key count and membership.
   */
  static async open(dir: string, options: KvStoreOptions = {}): Promise<KvStore> {
    await recoverInterruptedRestore(dir, options.logger);
    const db = await openDatabase(dir);
    try {
      return new KvStore(dir, db, await loadState(db), options);
    } catch (error) {
      await db.close();
      throw error;
    }
  }

  /** Closes the store after the queued applies and restores finish. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => undefined);
    this.closed = true;
    await this.queue;
    await this.db.close();
  }

  /**
   * Makes the applied index durable. Entries that change nothing here (most of them: this store
   * only holds membership and cluster metadata) advance the applied index in memory without a
   * LevelDB write; replaying them after a crash is a no-op, so a lagging durable index is safe.
   * Call before cutting a snapshot so that a restart never finds this store behind it.
   */
  flush(): Promise<void> {
    return this.enqueue(async () => {
      if (this.durableApplied === this.state.applied) return;
      await this.db.batch([{ type: 'put', key: APPLIED_KEY, value: u64(this.state.applied) }], { sync: false });
      this.durableApplied = this.state.applied;
    });
  }

  /**
   * Makes everything applied so far durable, fsynced ({@link flush} leaves that to the OS): what a
   * snapshot without an image relies on before the WAL entries it covers are released.
   */
  async persist(): Promise<void> {
    await this.flush();
    await this.enqueue(async () => {
      await makeWritesDurable(this.db);
    });
  }

  /** The applied index: the last entry index applied (durable once {@link flush} resolved). */
  appliedIndex(): LogIndex {
    return this.state.applied;
  }

  /** The exact number of user keys, as of the last applied batch. */
  keyCount(): number {
    return this.state.keyCount;
  }

  /** LevelDB's estimate of the disk space taken by user data, in bytes (lags recent writes). */
  async approximateBytes(): Promise<number> {
    while (this.swapping !== undefined) await this.swapping;
    this.assertOpen();
    const db = this.db as unknown as { approximateSize(start: Buffer, end: Buffer): Promise<number> };
    return db.approximateSize(DATA_START, DATA_END);
  }

  /** The members, as a fresh copy. */
  members(): Map<NodeId, Member> {
    return new Map(this.state.members);
  }

  /** The IDs removed from the cluster, as a fresh copy. They never rejoin. */
  removedIds(): Set<NodeId> {
    return new Set(this.state.removed);
  }

  /**
   * The value of `key` (a fresh Uint8Array owned by the caller), or undefined. Observes every
   * apply whose promise has resolved; waits while a restore swaps directories.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    while (this.swapping !== undefined) await this.swapping;
    this.assertOpen();
    this.readsInFlight += 1;
    try {
      const value = await this.db.get(dataKey(key));
      // LevelDB hands back a Buffer; answer a plain Uint8Array view of it (no copy) so callers get
      // Uint8Array semantics (`slice` copies) as the signature promises.
      return value === undefined ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    } finally {
      this.readsInFlight -= 1;
      if (this.readsInFlight === 0) this.readsDrained?.();
    }
  }

  /**
   * Applies committed entries, in order, in ONE LevelDB batch that also records the last index
   * as the applied index. Entries must have strictly increasing indexes (a violation is a bug and
   * throws); entries at or below the applied index are skipped, which makes replay after a crash
   * harmless. Membership changes are recorded in the same batch.
   *
   * The batch is written WITHOUT fsync: the raft WAL is the durable source of truth and holds
   * every committed entry above the last snapshot, so if a crash loses this batch, the store
   * reopens at an older applied index and the runtime replays the lost entries from the WAL.
   * (Losing it is the only failure: LevelDB's log makes each batch atomic, so a crash never
   * leaves half a batch.)
   */
  applyEntries(entries: readonly ApplyEntry[]): Promise<void> {
    let previous = -1;
    for (const entry of entries) {
      if (!Number.isSafeInteger(entry.index) || entry.index <= previous || entry.index < 1) {
        throw new Error(`KvStore.applyEntries: index ${entry.index} after ${previous} is not increasing`);
      }
      previous = entry.index;
    }
    return this.enqueue(() => this.applyNow(entries));
  }

  /**
   * Starts a point-in-time image of the whole state (data, applied index, members, removed IDs),
   * streamed in frames (format: snapshot-image.ts). The point in time is this call: later applies
   * are not in the image. MUST be called while no `applyEntries` or `restoreSnapshot` is pending
   * (a bug otherwise: the image's index would be ambiguous). A restore that swaps directories
   * while the image is still being read fails the stream (the database under it closes).
   */
  writeSnapshot(): SnapshotImageStream {
    this.assertOpen();
    if (this.writesPending > 0 || this.swapping !== undefined) {
      throw new Error('KvStore.writeSnapshot: called while an apply or restore is pending');
    }
    const snapshot = this.db.snapshot();
    const appliedIndex = this.state.applied;
    const db = this.db;
    let started = false;
    return {
      appliedIndex,
      [Symbol.asyncIterator]: () => {
        if (started) throw new Error('KvStore.writeSnapshot: an image stream can be iterated once');
        started = true;
        return streamImage(db, snapshot, appliedIndex);
      },
    };
  }

  /**
   * Replaces the whole state with an image (from `writeSnapshot`, possibly on another node) taken
   * at `index`. Crash-safe: the image is staged in `<dir>.restore` and swapped in by renames (see
   * the module overview). The image is validated completely BEFORE the swap; a bad image rejects
   * with {@link SnapshotImageError} and leaves the old state intact and open; the body stream is
   * stopped (`return()`) then. `index` may be below the current applied index (the caller
   * decides; the raft core only sends newer snapshots). Reads wait during
   * the swap itself. A failure during the swap is fatal: the store is closed and the runtime must
   * restart (open recovers).
   */
  restoreSnapshot(body: AsyncIterable<Uint8Array>, index: LogIndex): Promise<void> {
    if (!Number.isSafeInteger(index) || index < 0) throw new Error(`KvStore.restoreSnapshot: bad index ${index}`);
    return this.enqueue(() => this.restoreNow(body, index));
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.assertOpen();
    this.writesPending += 1;
    const run = this.queue.then(work).finally(() => {
      this.writesPending -= 1;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('KvStore: used after close');
  }

  private async applyNow(entries: readonly ApplyEntry[]): Promise<void> {
    const fresh = entries.filter((entry) => entry.index > this.state.applied);
    const last = fresh[fresh.length - 1];
    if (last === undefined) return;
    if (fresh.every((entry) => entry.commands.length === 0 && (entry.members ?? []).length === 0)) {
      this.state = { ...this.state, applied: last.index };
      return;
    }
    // The final operation per key: the batch is atomic, so earlier writes to a key are moot.
    const finalValues = new Map<string, Uint8Array | null>();
    const members = new Map(this.state.members);
    const removed = new Set(this.state.removed);
    const touchedIds = new Set<NodeId>();
    for (const entry of fresh) {
      for (const command of entry.commands) {
        finalValues.delete(command.key); // keep the map's order = order of the last write
        finalValues.set(command.key, command.op === 'put' ? command.value : null);
      }
      for (const change of entry.members ?? []) {
        this.applyMemberChange(change, entry.index, members, removed);
        touchedIds.add(change.id);
      }
    }
    const keys = [...finalValues.keys()].map(dataKey);
    const existed = keys.length === 0 ? [] : await this.db.hasMany(keys);
    const operations: BatchOperation[] = [];
    let keyCount = this.state.keyCount;
    let position = 0;
    for (const value of finalValues.values()) {
      const key = keys[position];
      const wasPresent = existed[position];
      if (key === undefined || wasPresent === undefined) throw new Error('KvStore: key bookkeeping broken');
      position += 1;
      if (value === null) {
        if (wasPresent) keyCount -= 1;
        operations.push({ type: 'del', key });
      } else {
        if (!wasPresent) keyCount += 1;
        operations.push({ type: 'put', key, value });
      }
    }
    for (const id of touchedIds) {
      const member = members.get(id);
      if (member === undefined) operations.push({ type: 'del', key: idKey(MEMBER_TAG, id) });
      else operations.push({ type: 'put', key: idKey(MEMBER_TAG, id), value: memberValue(member) });
      if (removed.has(id)) operations.push({ type: 'put', key: idKey(REMOVED_TAG, id), value: new Uint8Array(0) });
    }
    operations.push({ type: 'put', key: APPLIED_KEY, value: u64(last.index) });
    operations.push({ type: 'put', key: KEY_COUNT_KEY, value: u64(keyCount) });
    await this.db.batch(operations, { sync: false });
    this.state = { applied: last.index, keyCount, members, removed };
    this.durableApplied = last.index;
  }

  private applyMemberChange(change: MemberChange, index: LogIndex, members: Map<NodeId, Member>, removed: Set<NodeId>): void {
    if (change.id === NONE) throw new Error(`KvStore: membership change of ID 0 at index ${index}`);
    if (removed.has(change.id)) {
      this.options.logger?.warn('kv: ignoring a membership change of a removed ID', {
        index,
        id: change.id.toString(16),
        kind: change.kind,
      });
      return;
    }
    const existing = members.get(change.id);
    const peerUrl = change.peerUrl ?? existing?.peerUrl ?? '';
    switch (change.kind) {
      case 'add':
      case 'promote':
        members.set(change.id, { peerUrl, isLearner: false });
        return;
      case 'add-learner':
        members.set(change.id, { peerUrl, isLearner: true });
        return;
      case 'remove':
        members.delete(change.id);
        removed.add(change.id);
        return;
      default:
        throw new Error(`KvStore: unknown membership change kind ${String((change as { kind: unknown }).kind)}`);
    }
  }

  private async restoreNow(body: AsyncIterable<Uint8Array>, index: LogIndex): Promise<void> {
    const restoreDir = `${this.dir}.restore`;
    await rm(restoreDir, { recursive: true, force: true });
    const staged = await stageImage(restoreDir, body, index);
    const knob = this.options.testingKnobs?.crashDuringRestore;
    if (knob === 'before-swap') {
      this.closed = true;
      await this.db.close();
      throw new SimulatedCrashError(knob);
    }
    let release: () => void = () => undefined;
    this.swapping = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      if (this.readsInFlight > 0) {
        await new Promise<void>((resolve) => {
          this.readsDrained = resolve;
        });
        this.readsDrained = undefined;
      }
      await this.db.close();
      const oldDir = `${this.dir}.old`;
      await rename(this.dir, oldDir);
      await fsyncPath(dirname(this.dir));
      if (knob === 'between-renames') {
        this.closed = true;
        throw new SimulatedCrashError(knob);
      }
      await rename(restoreDir, this.dir);
      await fsyncPath(dirname(this.dir));
      await rm(oldDir, { recursive: true, force: true });
      this.db = await openDatabase(this.dir);
      const state = await loadState(this.db);
      if (state.applied !== index || state.keyCount !== staged.keyCount) {
        throw new Error('KvStore: restored store does not match the staged image');
      }
      this.state = state;
      this.durableApplied = state.applied;
      this.options.logger?.info('kv: restored snapshot', { index, keys: state.keyCount, members: state.members.size });
    } catch (error) {
      this.closed = true;
      throw error;
    } finally {
      this.swapping = undefined;
      release();
    }
  }
}

/** Streams the image of `db` as of `snapshot`, then releases the snapshot. */
async function* streamImage(
  db: Database,
  snapshot: ReturnType<Database['snapshot']>,
  appliedIndex: LogIndex,
): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    const appliedBytes = await db.get(APPLIED_KEY, { snapshot });
    if (appliedBytes === undefined || readU64(appliedBytes, 'applied index') !== appliedIndex) {
      throw new Error('KvStore: snapshot applied index differs from the cached one');
    }
    const encoder = new SnapshotImageEncoder(appliedIndex);
    yield encoder.header();
    for await (const [key, value] of db.iterator({ ...prefixRange(MEMBER_TAG), snapshot })) {
      const member = decodeMember(value);
      encoder.addMember(key.readBigUInt64BE(2), member.isLearner, member.peerUrl);
    }
    for await (const key of db.keys({ ...prefixRange(REMOVED_TAG), snapshot })) {
      encoder.addRemoved(key.readBigUInt64BE(2));
    }
    yield* encoder.drain();
    const iterator = db.iterator({ gte: DATA_START, lt: DATA_END, snapshot, highWaterMarkBytes: SCAN_HIGH_WATER_BYTES });
    try {
      for (;;) {
        const batch = await iterator.nextv(SNAPSHOT_READ_ENTRIES);
        if (batch.length === 0) break;
        for (const [key, value] of batch) encoder.addPair(key.subarray(1), value);
        yield* encoder.drain();
      }
    } finally {
      await iterator.close();
    }
    yield* encoder.finish();
  } finally {
    await snapshot.close();
  }
}
