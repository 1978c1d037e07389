/**
 * The MVCC key-value store: etcd's mvcc "kvstore" semantics, persistent in level, designed as the
 * node's state machine for the etcd v3 API (see docs/MVCC.md).
 *
 * Data model: one global main revision, +1 per write transaction that changes something (a Put, a
 * DeleteRange that deletes at least one key, a Txn with such writes); inside a transaction every
 * write gets the next sub-revision, so events of one transaction are ordered. Each key has
 * create_revision, mod_revision, version (reset by deletion) and lease. History is kept until
 * compaction; reads at a past revision see the store as it was.
 *
 * Applying (through Raft, like src/kv's KvStore): {@link MvccStore.applyBatch} applies committed
 * entries in log order. Every level batch carries the Raft applied index in the SAME batch as the
 * data, and entries at or below the durable applied index are skipped, so re-applying after a
 * crash is idempotent. THE CALLER MUST NOT start an apply (or a snapshot restore) before the
 * previous one settled; reads may run at any time.
 *
 * Write-behind (as etcd's backend, which commits its batch transaction every 100 ms): an apply
 * changes memory (index, value cache, revision) and publishes the new revision to readers and
 * subscribers AT ONCE, and hands its level writes to a background writer that merges whatever
 * has queued into one level batch. This is safe because only COMMITTED entries are applied: the
 * Raft WAL holds them, fsynced on a quorum, until a snapshot covers them, so a crash that loses
 * queued level writes reopens the store at an older applied index and the runtime replays the
 * entries from the WAL — a reader can never see a write that a crash could lose. Records not yet
 * in level are served from `pending`; reads that iterate level (history, hashKv) wait for the
 * writer first; a snapshot image requires {@link MvccStore.flush} first; backpressure bounds the
 * queue. A failed background write is fatal (the process crashes, as for physical compaction).
 *
 * Storage: records keyed by revision (record-codec.ts) hold every version; the key index
 * (key-index.ts) maps keys to their revisions and caches each live key's current value, so reads
 * at the current revision never touch the disk and reads in the past fetch records by revision.
 *
 * Failures: expected outcomes are {@link MvccOutcome} values with etcd's errors (errors.ts). A
 * level failure is fatal: the promise rejects and the caller must crash and recover from disk.
 */
import { crc32 } from 'node:zlib';
import { Level } from 'level';
import type { LogIndex } from '../raft/types';
import { assert, failure, success, type MvccOutcome } from './errors';
import { KeyIndex, pointerAt, pointerBefore, type CurrentValue, type KeyEntry, type RevisionPointer } from './key-index';
import { fromKeyString, rangeContains, resolveRange, toKeyString, type KeyRange, type KeyString } from './key-range';
import {
  decodeLeaseRecord,
  decodeRecord,
  decodeRecordForIndex,
  decodeRecordKey,
  decodeUint64,
  encodeLeaseValue,
  encodeUint64,
  leaseKey,
  LEASE_PREFIX,
  metaKey,
  recordKey,
  recordKeyLowerBound,
  RECORD_PREFIX,
  type IndexedRecordSink,
  type MetaName,
} from './record-codec';
import { evaluateCompare, fetchLimit, finishRange } from './range-rules';
import {
  EventType,
  NO_LEASE,
  type CompactionResponse,
  type Compare,
  type KeyValue,
  type LeaseCheckpointRequest,
  type LeaseGrantRequest,
  type LeaseId,
  type LeaseRevokeRequest,
  type LeaseState,
  type MvccEvent,
  type MvccWriteRequest,
  type MvccWriteResponse,
  type PutRequest,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type Revision,
  type TxnRequest,
  type TxnResponse,
} from './types';
import { currentKeyValue, deleteEvent, WriteTransaction, type TransactionTarget } from './write-transaction';
import { MAX_TXN_OPERATIONS_DEFAULT, validateDeleteRangeRequest, validatePutRequest, validateRangeRequest, validateTxnRequest } from './validate';
import { readSnapshotImage, writeSnapshotImage, type SnapshotImageHeader } from './mvcc-snapshot-image';
import { compactRange, makeWritesDurable, SCAN_HIGH_WATER_BYTES } from '../storage/level';
import { chooseThread, forEachPacked, openBatchWriter, pinnedScan, scanPacked, type PinnedScan, type LevelThread } from '../storage/level-worker';

/** Options of {@link MvccStore.open}. */
export interface MvccStoreOptions {
  /** etcd --max-txn-ops (default 128); MUST be equal on every replica. */
  readonly maxTxnOperations?: number;
  /**
   * Whether a lease exists (an external lessor's lookup). Puts with an unknown lease fail with
   * 'lease-not-found'. Ignored when `enforceLeases` is set.
   */
  readonly leaseExists?: (lease: LeaseId) => boolean;
  /**
   * Check Puts against the store's OWN replicated lease table (LeaseGrant/LeaseRevoke entries):
   * a Put with a lease that was not granted (or was revoked) fails with 'lease-not-found'. The
   * node sets it; without it (and without `leaseExists`) every lease ID is accepted, which only
   * the MVCC unit tests rely on.
   */
  readonly enforceLeases?: boolean;
  /** Records deleted per level batch by physical compaction (default 10,000). */
  readonly compactionBatchRecords?: number;
  /**
   * Which thread reads level's records to rebuild the key index at open, and writes a snapshot
   * image's records into level (src/storage/level-worker.ts): 'auto' (the default) uses a worker
   * thread for large stores and for every restore; tests force either.
   */
  readonly levelThread?: LevelThread;
}

/** One committed Raft entry to apply; `request` undefined = an entry with no MVCC effect. */
export interface ApplyInput {
  readonly index: LogIndex;
  readonly request?: MvccWriteRequest;
}

/** What applying one entry produced. */
export type ApplyResult =
  /** The entry was at or below the durable applied index: already applied before a restart. */
  | { readonly index: LogIndex; readonly skipped: true }
  | {
      readonly index: LogIndex;
      readonly skipped: false;
      /** undefined for an entry without a request. */
      readonly outcome: MvccOutcome<MvccWriteResponse> | undefined;
      /** Events of this entry, in (revision, sub-revision) order; empty if nothing changed. */
      readonly events: readonly MvccEvent[];
    };

/** Called once per revision that changed something, in revision order, after it is durable. */
export type RevisionListener = (revision: Revision, events: readonly MvccEvent[]) => void;

/** A chunk of history read by {@link MvccStore.history}. */
export interface HistoryChunk {
  /** Events with revision in [fromRevision, throughRevision], in order. */
  readonly events: readonly MvccEvent[];
  /** The last revision fully covered by `events` (>= fromRevision - 1). */
  readonly throughRevision: Revision;
}

/** A pointer to a version of a key, found in the index. */
interface Located {
  readonly entry: KeyEntry;
  readonly pointer: RevisionPointer;
}

const DEFAULT_COMPACTION_BATCH_RECORDS = 10_000;
/** Keys from which a snapshot image reads level on a worker thread (about 16 MB at 300-byte records). */
const WORKER_SCAN_MIN_KEYS = 50_000;
/** Applies the background writer may lag behind before an apply waits for it. */
const UNWRITTEN_APPLIES_MAX = 64;
/** The revision of a store that has never been written (etcd starts at 1). */
const EMPTY_STORE_REVISION = 1;

/** A level write of an apply batch. */
type LevelOperation = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** The MVCC store. Create with {@link MvccStore.open}. */
export class MvccStore implements TransactionTarget {
  private readonly index = new KeyIndex();
  /** Raft applied index (in memory; level holds it once the background writer caught up). */
  private applied: LogIndex = 0;
  /** Latest applied revision (may run ahead of `visible` during an apply). */
  private revision: Revision = 0;
  /** Latest published revision: what readers see. */
  private visible: Revision = 0;
  private compacted: Revision = 0;
  private compactionFinished: Revision = 0;
  private applying = false;
  private closed = false;
  /** Records applied but not yet written to level, by record key (hex). */
  private readonly pending = new Map<string, Buffer>();
  /** Level writes of applies, queued for the background writer (see the module overview). */
  private writeQueue: LevelOperation[] = [];
  private writeQueueKeys: string[] = [];
  /** Applies queued for level so far, and how many of them level holds (a sequence). */
  private writesQueued = 0;
  private writesDone = 0;
  private writer: Promise<void> | undefined;
  private writeFailure: Error | undefined;
  private readonly writeWaiters: Array<{ readonly through: number; readonly resolve: () => void; readonly reject: (error: Error) => void }> = [];
  /** Bumped by snapshot restore; a reader that straddles one answers 'compacted'. */
  private generation = 0;
  private physicalCompaction: Promise<void> = Promise.resolve();
  /** Scans of snapshot images not yet read to the end (see {@link writeSnapshot}). */
  private readonly imageScans = new Set<PinnedScan>();
  private readonly listeners = new Set<RevisionListener>();
  private readonly restoreListeners = new Set<() => void>();
  /** The replicated lease table (etcd's lessor state, without expiry times: those are the leader's). */
  private readonly leaseTable = new Map<LeaseId, LeaseState>();
  /** Live keys attached to each lease, derived from the keys' `lease` fields. */
  private readonly leaseKeySets = new Map<LeaseId, Set<KeyString>>();
  /** Whether a record indexed by the last load or restore had a lease (else no key can be attached). */
  private loadedLeasedRecord = false;
  private readonly maxTxnOperations: number;
  private readonly compactionBatchRecords: number;
  private readonly levelThread: LevelThread;

  private constructor(
    private readonly db: Level<Buffer, Buffer>,
    private readonly options: MvccStoreOptions,
  ) {
    this.maxTxnOperations = options.maxTxnOperations ?? MAX_TXN_OPERATIONS_DEFAULT;
    this.compactionBatchRecords = options.compactionBatchRecords ?? DEFAULT_COMPACTION_BATCH_RECORDS;
    this.levelThread = options.levelThread ?? 'auto';
  }

  /**
   * Opens (or creates) the store in `directory` and rebuilds the key index from level. An
   * interrupted snapshot restore leaves an empty store (applied index 0), so the runtime restores
   * the snapshot again; an interrupted physical compaction is resumed in the background.
   */
  static async open(directory: string, options: MvccStoreOptions = {}): Promise<MvccStore> {
    const db = new Level<Buffer, Buffer>(directory, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    // Shared with the worker thread that reads the records at open (src/storage/level-worker.ts).
    // The node's data directory lock (src/wal/dir-lock.ts) keeps other processes out.
    await db.open({ multithreading: true } as object);
    const store = new MvccStore(db, options);
    await store.load();
    return store;
  }

  /** The Raft index of the last applied entry (durable once {@link flush} resolved). */
  appliedIndex(): LogIndex {
    return this.applied;
  }

  /** The current revision, as readers see it. */
  currentRevision(): Revision {
    return this.visible;
  }

  /** The compact revision: reads below it answer 'compacted'. */
  compactRevision(): Revision {
    return this.compacted;
  }

  /** Number of keys with kept history (for metrics). */
  indexedKeyCount(): number {
    return this.index.size;
  }

  /** The lease `id` as the replicated state holds it, or undefined if not granted (or revoked). */
  lease(id: LeaseId): LeaseState | undefined {
    return this.leaseTable.get(id);
  }

  /** Every granted lease, in ascending ID order. */
  leases(): LeaseState[] {
    return [...this.leaseTable.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The live keys attached to lease `id`, in ascending byte order. */
  leaseKeys(id: LeaseId): Buffer[] {
    return [...(this.leaseKeySets.get(id) ?? [])].sort().map((key) => fromKeyString(key));
  }

  /** Registers a listener for applied revisions; returns its removal. */
  subscribe(listener: RevisionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Registers a listener called after a snapshot restore replaced the whole store (history may
   * have jumped); returns its removal.
   */
  subscribeRestore(listener: () => void): () => void {
    this.restoreListeners.add(listener);
    return () => this.restoreListeners.delete(listener);
  }

  // -------------------------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------------------------

  /**
   * etcd Range at `request.revision` (<= 0: current). The response revision is the CURRENT
   * revision. Validates the request (empty key).
   */
  async range(request: RangeRequest): Promise<MvccOutcome<RangeResponse>> {
    const invalid = validateRangeRequest(request);
    if (invalid !== undefined) return failure(invalid);
    const current = this.visible;
    let revision = request.revision ?? 0;
    if (revision > current) return failure('future-revision');
    if (revision <= 0) revision = current;
    if (revision < this.compacted) return failure('compacted');
    const result = await this.rangeAt(request, revision, current);
    if (result === undefined) return failure('compacted');
    return success({ ...result, revision: current });
  }

  /**
   * etcd's HashKV: a CRC-32 over every history record (level key and value) with a main revision
   * in (compact revision, `revision`] (<= 0: the current revision), with the compact revision
   * (-1 if never compacted, as etcd).
   * Members that applied the same log have the same hash at the same revision; records at or
   * below the compact revision are left out because physical compaction removes them at a
   * different moment on each member.
   */
  async hashKv(revision: Revision): Promise<MvccOutcome<{ hash: number; compactRevision: Revision; revision: Revision }>> {
    const current = this.visible;
    if (revision > current) return failure('future-revision');
    const through = revision <= 0 ? current : revision;
    const compactRevision = this.compacted;
    // As etcd's hashByRev: a revision at or below the compact revision is compacted.
    if (revision > 0 && compactRevision > 0 && revision <= compactRevision) return failure('compacted');
    await this.flush();
    let hash = crc32(encodeUint64(compactRevision));
    for await (const [key, value] of this.db.iterator({ gte: recordKeyLowerBound(compactRevision + 1), lt: recordKeyLowerBound(through + 1), highWaterMarkBytes: SCAN_HIGH_WATER_BYTES })) {
      hash = crc32(value, crc32(key, hash));
    }
    if (this.compacted > compactRevision) return failure('compacted');
    // etcd reports -1 when the store was never compacted.
    return success({ hash, compactRevision: compactRevision === 0 ? -1 : compactRevision, revision: current });
  }

  /** etcd's Defragment: compacts level's whole key range, reclaiming space of deleted records. */
  async defragment(): Promise<void> {
    await compactRange(this.db, Buffer.from([0x00]), Buffer.from([0xff]));
  }

  /**
   * Reads the events of keys in [key, rangeEnd) with revisions from `fromRevision` on, up to the
   * current revision, stopping at a revision boundary once at least `eventsMax` events are
   * collected. With `withPrevKv`, each event carries the key's previous version if still kept.
   * `fromRevision` below the compact revision (or a compaction during the read) answers
   * 'compacted' — as etcd, a start revision EQUAL to the compact revision is accepted.
   */
  async history(range: KeyRange, fromRevision: Revision, eventsMax: number, withPrevKv: boolean): Promise<MvccOutcome<HistoryChunk>> {
    assert(fromRevision >= 1 && eventsMax >= 1, `history(${fromRevision}, ${eventsMax})`);
    if (fromRevision < this.compacted) return failure('compacted');
    const through = this.visible;
    if (fromRevision > through) return success({ events: [], throughRevision: through });
    const generation = this.generation;
    const events: MvccEvent[] = [];
    const needPrevious: Array<{ position: number; located: Located }> = [];
    let lastMain = fromRevision - 1;
    let stoppedEarly = false;
    // The iterator reads a snapshot taken once every record <= `through` is in level.
    await this.flush();
    if (generation !== this.generation) return failure('compacted');
    const iterator = this.db.iterator({ gte: recordKeyLowerBound(fromRevision), lt: recordKeyLowerBound(through + 1) });
    try {
      for await (const [key, value] of iterator) {
        const { main, sub } = decodeRecordKey(key);
        // Stop only between two revisions, so a revision's events are never split.
        if (main !== lastMain && events.length >= eventsMax) {
          stoppedEarly = true;
          break;
        }
        lastMain = main;
        const record = decodeRecord(value, main);
        const keyString = toKeyString(record.kv.key);
        if (!rangeContains(range, keyString)) continue;
        events.push(record.tombstone ? deleteEvent(record.kv.key, main) : { type: EventType.Put, kv: record.kv });
        if (withPrevKv) {
          const entry = this.index.get(keyString);
          const previous = entry === undefined ? undefined : pointerBefore(entry, { main, sub });
          if (entry !== undefined && previous !== undefined && !previous.tombstone) {
            needPrevious.push({ position: events.length - 1, located: { entry, pointer: previous } });
          }
        }
      }
    } finally {
      await iterator.close();
    }
    const covered = stoppedEarly ? lastMain : through;
    if (needPrevious.length > 0) {
      const previous = await this.materialize(needPrevious.map((item) => item.located), through);
      if (previous === undefined) return failure('compacted');
      needPrevious.forEach((item, position) => {
        const event = events[item.position]!;
        events[item.position] = { ...event, prevKv: previous[position]! };
      });
    }
    if (fromRevision < this.compacted || generation !== this.generation) return failure('compacted');
    return success({ events, throughRevision: covered });
  }

  // -------------------------------------------------------------------------------------------
  // Applying
  // -------------------------------------------------------------------------------------------

  /** Applies one entry; see {@link applyBatch}. */
  async apply(index: LogIndex, request: MvccWriteRequest | undefined): Promise<ApplyResult> {
    const [result] = await this.applyBatch([{ index, request }]);
    return result!;
  }

  /**
   * Applies committed entries IN LOG ORDER with ONE level batch. Entries at or below the durable
   * applied index are skipped (idempotent replay after a crash); the others must have strictly
   * increasing indexes. Resolves once memory reflects the entries and listeners were told; the
   * level writes follow in the background (see the module overview). Rejects only after a disk
   * failure (fatal).
   */
  async applyBatch(inputs: readonly ApplyInput[]): Promise<ApplyResult[]> {
    assert(!this.closed, 'apply on a closed store');
    assert(!this.applying, 'applyBatch while another apply is in progress');
    if (this.writeFailure !== undefined) throw this.writeFailure;
    // Backpressure: a writer far behind makes the apply wait, so `pending` stays bounded.
    if (this.writesQueued - this.writesDone >= UNWRITTEN_APPLIES_MAX) await this.flushThrough(this.writesQueued - UNWRITTEN_APPLIES_MAX / 2);
    this.applying = true;
    try {
      const operations: LevelOperation[] = [];
      const results: ApplyResult[] = [];
      const published: Array<{ revision: Revision; events: MvccEvent[] }> = [];
      const compactions: Revision[] = [];
      let lastIndex = this.applied;
      for (const input of inputs) {
        if (input.index <= this.applied) {
          results.push({ index: input.index, skipped: true });
          continue;
        }
        assert(input.index > lastIndex, `apply out of order: ${input.index} after ${lastIndex}`);
        lastIndex = input.index;
        if (input.request === undefined) {
          results.push({ index: input.index, skipped: false, outcome: undefined, events: [] });
          continue;
        }
        const transaction = new WriteTransaction(this, this.revision);
        const outcome = await this.applyRequest(input.request, transaction, compactions, operations);
        const events = transaction.events;
        if (events.length > 0) {
          this.revision = transaction.main;
          operations.push(...transaction.records);
          published.push({ revision: transaction.main, events });
        }
        results.push({ index: input.index, skipped: false, outcome, events });
      }
      if (lastIndex === this.applied) return results;
      operations.push({ type: 'put', key: metaKey('applied'), value: encodeUint64(lastIndex) });
      operations.push({ type: 'put', key: metaKey('revision'), value: encodeUint64(this.revision) });
      if (compactions.length > 0) operations.push({ type: 'put', key: metaKey('compact'), value: encodeUint64(this.compacted) });
      this.queueWrite(operations);
      this.applied = lastIndex;
      this.visible = this.revision;
      for (const revision of compactions) this.schedulePhysicalCompaction(revision);
      for (const { revision, events } of published) for (const listener of this.listeners) listener(revision, events);
      return results;
    } finally {
      this.applying = false;
    }
  }

  private async applyRequest(request: MvccWriteRequest, transaction: WriteTransaction, compactions: Revision[], operations: LevelOperation[]): Promise<MvccOutcome<MvccWriteResponse>> {
    switch (request.kind) {
      case 'put': {
        const invalid = validatePutRequest(request.request) ?? this.checkPut(request.request);
        if (invalid !== undefined) return failure(invalid);
        return success({ kind: 'put', response: transaction.put(request.request) });
      }
      case 'deleteRange': {
        const invalid = validateDeleteRangeRequest(request.request);
        if (invalid !== undefined) return failure(invalid);
        return success({ kind: 'deleteRange', response: transaction.deleteRange(request.request) });
      }
      case 'txn': {
        const outcome = await this.applyTxn(request.request, transaction);
        return outcome.ok ? success({ kind: 'txn', response: outcome.value }) : outcome;
      }
      case 'compact': {
        const revision = request.request.revision;
        if (revision <= this.compacted) return failure('compacted');
        if (revision > this.revision) return failure('future-revision');
        this.compacted = revision;
        this.index.compact(revision);
        compactions.push(revision);
        const response: CompactionResponse = { revision: this.revision, physicallyDone: this.physicalCompactionPromise(revision) };
        return success({ kind: 'compact', response });
      }
      case 'leaseGrant':
        return this.applyLeaseGrant(request.request, operations);
      case 'leaseRevoke':
        return this.applyLeaseRevoke(request.request, transaction, operations);
      case 'leaseCheckpoint':
        this.applyLeaseCheckpoint(request.request, operations);
        return success({ kind: 'leaseCheckpoint', response: { revision: this.revision } });
    }
  }

  /** etcd lessor.Grant at apply time: the ID and TTL were fixed by the proposer. */
  private applyLeaseGrant(request: LeaseGrantRequest, operations: LevelOperation[]): MvccOutcome<MvccWriteResponse> {
    if (request.id === NO_LEASE) return failure('lease-not-found');
    if (this.leaseTable.has(request.id)) return failure('lease-exists');
    const lease: LeaseState = { id: request.id, ttlSeconds: request.ttlSeconds, remainingMs: 0 };
    this.leaseTable.set(lease.id, lease);
    operations.push({ type: 'put', key: leaseKey(lease.id), value: encodeLeaseValue(lease) });
    return success({ kind: 'leaseGrant', response: { id: lease.id, ttlSeconds: lease.ttlSeconds, revision: this.revision } });
  }

  /**
   * etcd lessor.Revoke: deletes every attached key (in ascending key order, as etcd sorts them)
   * in ONE transaction, hence one revision; no key attached → the revision does not move.
   */
  private applyLeaseRevoke(request: LeaseRevokeRequest, transaction: WriteTransaction, operations: LevelOperation[]): MvccOutcome<MvccWriteResponse> {
    if (!this.leaseTable.has(request.id)) return failure('lease-not-found');
    for (const key of [...(this.leaseKeySets.get(request.id) ?? [])].sort()) transaction.deleteRange({ key: fromKeyString(key) });
    assert((this.leaseKeySets.get(request.id)?.size ?? 0) === 0, 'revoked lease still holds keys');
    this.leaseTable.delete(request.id);
    this.leaseKeySets.delete(request.id);
    operations.push({ type: 'del', key: leaseKey(request.id) });
    return success({ kind: 'leaseRevoke', response: { revision: transaction.viewRevision() } });
  }

  /** Records the remaining TTLs the leader checkpointed; leases revoked meanwhile are skipped. */
  private applyLeaseCheckpoint(request: LeaseCheckpointRequest, operations: LevelOperation[]): void {
    for (const checkpoint of request.checkpoints) {
      const lease = this.leaseTable.get(checkpoint.id);
      if (lease === undefined) continue;
      const updated: LeaseState = { ...lease, remainingMs: checkpoint.remainingMs };
      this.leaseTable.set(lease.id, updated);
      operations.push({ type: 'put', key: leaseKey(lease.id), value: encodeLeaseValue(updated) });
    }
  }

  /** Moves `key` from the key set of lease `from` to that of lease `to` (NO_LEASE = none). */
  private reattach(key: KeyString, from: LeaseId, to: LeaseId): void {
    if (from === to) return;
    if (from !== NO_LEASE) {
      const keys = this.leaseKeySets.get(from);
      keys?.delete(key);
      if (keys !== undefined && keys.size === 0) this.leaseKeySets.delete(from);
    }
    if (to !== NO_LEASE) {
      let keys = this.leaseKeySets.get(to);
      if (keys === undefined) this.leaseKeySets.set(to, (keys = new Set()));
      keys.add(key);
    }
  }

  /** etcd checkPut against the state before the transaction: ignore_* need the key; the lease must exist. */
  private checkPut(request: PutRequest): 'key-not-found' | 'lease-not-found' | undefined {
    if (request.ignoreValue === true || request.ignoreLease === true) {
      if (this.index.get(toKeyString(request.key))?.live !== true) return 'key-not-found';
    }
    const lease = request.lease ?? NO_LEASE;
    if (lease === NO_LEASE) return undefined;
    if (this.options.enforceLeases === true) return this.leaseTable.has(lease) ? undefined : 'lease-not-found';
    if (this.options.leaseExists !== undefined && !this.options.leaseExists(lease)) return 'lease-not-found';
    return undefined;
  }

  /**
   * etcd applierV3backend.Txn: validate; evaluate EVERY compare of the chosen path (nested ones
   * too) against the state before the txn; check puts and ranges of that path; then execute.
   */
  private async applyTxn(request: TxnRequest, transaction: WriteTransaction): Promise<MvccOutcome<TxnResponse>> {
    const invalid = validateTxnRequest(request, this.maxTxnOperations);
    if (invalid !== undefined) return failure(invalid);
    const path: boolean[] = [];
    this.comparePath(request, path);
    const checked = this.checkPath(request, path.slice());
    if (checked !== undefined) return failure(checked);
    const response = await this.executeTxn(request, path, transaction, true);
    return success({ ...response, revision: transaction.events.length > 0 ? transaction.main : transaction.beginRevision });
  }

  private comparePath(request: TxnRequest, path: boolean[]): void {
    const succeeded = (request.compare ?? []).every((compare) => this.evaluateCurrent(compare));
    path.push(succeeded);
    for (const operation of (succeeded ? request.success : request.failure) ?? []) {
      if (operation.kind === 'txn') this.comparePath(operation.request, path);
    }
  }

  private evaluateCurrent(compare: Compare): boolean {
    const kvs: KeyValue[] = [];
    this.index.visit(resolveRange(compare.key, compare.rangeEnd), (entry) => {
      const current = entry.current;
      if (current !== undefined) kvs.push(currentKeyValue(entry.key, current));
      return true;
    });
    return evaluateCompare(compare, kvs);
  }

  private checkPath(request: TxnRequest, path: boolean[]): 'key-not-found' | 'lease-not-found' | 'compacted' | 'future-revision' | undefined {
    const succeeded = path.shift();
    assert(succeeded !== undefined, 'txn path exhausted');
    for (const operation of (succeeded ? request.success : request.failure) ?? []) {
      let error: ReturnType<MvccStore['checkPath']>;
      if (operation.kind === 'put') error = this.checkPut(operation.request);
      else if (operation.kind === 'range') {
        const revision = operation.request.revision ?? 0;
        if (revision > this.revision) error = 'future-revision';
        // etcd compares with its compactMainRev, which is -1 until the first compaction.
        else if (revision !== 0 && revision < (this.compacted === 0 ? -1 : this.compacted)) error = 'compacted';
      } else if (operation.kind === 'txn') error = this.checkPath(operation.request, path);
      if (error !== undefined) return error;
    }
    return undefined;
  }

  private async executeTxn(request: TxnRequest, path: boolean[], transaction: WriteTransaction, outermost: boolean): Promise<TxnResponse> {
    const succeeded = path.shift();
    assert(succeeded !== undefined, 'txn path exhausted');
    const responses: ResponseOp[] = [];
    for (const operation of (succeeded ? request.success : request.failure) ?? []) {
      responses.push(await this.executeOperation(operation, path, transaction));
    }
    return { revision: outermost ? transaction.beginRevision : 0, succeeded, responses };
  }

  private async executeOperation(operation: RequestOp, path: boolean[], transaction: WriteTransaction): Promise<ResponseOp> {
    switch (operation.kind) {
      case 'range': {
        const view = transaction.viewRevision();
        const requested = operation.request.revision ?? 0;
        const result = await this.rangeAt(operation.request, requested > 0 ? requested : view, view);
        assert(result !== undefined, 'history vanished during a txn');
        return { kind: 'range', response: { ...result, revision: view } };
      }
      case 'put':
        return { kind: 'put', response: transaction.put(operation.request) };
      case 'deleteRange':
        return { kind: 'deleteRange', response: transaction.deleteRange(operation.request) };
      case 'txn':
        return { kind: 'txn', response: await this.executeTxn(operation.request, path, transaction, false) };
      case 'empty':
        throw new Error('assertion failed: empty RequestOp passed validation');
    }
  }

  /**
   * The range algorithm at `revision` (already checked against the compact revision); `latest` is
   * the newest revision the caller may see. Undefined if history vanished meanwhile.
   */
  private async rangeAt(request: RangeRequest, revision: Revision, latest: Revision): Promise<Omit<RangeResponse, 'revision'> | undefined> {
    const limit = fetchLimit(request);
    const located: Located[] = [];
    let count = 0;
    this.index.visit(resolveRange(request.key, request.rangeEnd), (entry) => {
      const pointer = pointerAt(entry, revision);
      if (pointer === undefined || pointer.tombstone) return true;
      count += 1;
      if (request.countOnly !== true && (limit === undefined || located.length < limit)) located.push({ entry, pointer });
      return true;
    });
    if (request.countOnly === true) return { kvs: [], more: false, count };
    const fetched = await this.materialize(located, latest);
    if (fetched === undefined) return undefined;
    const { kvs, more } = finishRange(request, fetched);
    return { kvs, more, count };
  }

  /**
   * The KeyValues at the given pointers, in order: from the current-value cache when the pointer is
   * the key's newest and visible to the caller, else from the pending batch or level.
   */
  private async materialize(located: readonly Located[], latest: Revision): Promise<KeyValue[] | undefined> {
    const result: Array<KeyValue | undefined> = new Array(located.length);
    const missing: number[] = [];
    located.forEach(({ entry, pointer }, position) => {
      const current = pointer.main <= latest && entry.isNewest(pointer) ? entry.current : undefined;
      if (current !== undefined) {
        result[position] = currentKeyValue(entry.key, current);
        return;
      }
      const staged = this.pending.get(recordKey(pointer.main, pointer.sub).toString('hex'));
      if (staged !== undefined) result[position] = decodeRecord(staged, pointer.main).kv;
      else missing.push(position);
    });
    if (missing.length > 0) {
      const generation = this.generation;
      const values = await this.db.getMany(missing.map((position) => recordKey(located[position]!.pointer.main, located[position]!.pointer.sub)));
      for (let item = 0; item < missing.length; item += 1) {
        const value = values[item];
        // A compaction or restore removed it after the index lookup: the caller answers 'compacted'.
        if (value === undefined) return undefined;
        const position = missing[item]!;
        result[position] = decodeRecord(value, located[position]!.pointer.main).kv;
      }
      if (generation !== this.generation) return undefined;
    }
    return result as KeyValue[];
  }

  // -------------------------------------------------------------------------------------------
  // Internal hooks used by WriteTransaction
  // -------------------------------------------------------------------------------------------

  /** @internal Stages a record write and updates the index. */
  stageWrite(key: KeyString, main: Revision, sub: number, tombstone: boolean, record: Buffer, current: CurrentValue | undefined): { type: 'put'; key: Buffer; value: Buffer } {
    // Attach, re-attach or detach: a put moves the key to its new lease, a delete frees it.
    this.reattach(key, this.index.get(key)?.currentLease ?? NO_LEASE, current?.lease ?? NO_LEASE);
    this.index.append(key, { main, sub, tombstone }, current);
    const levelKey = recordKey(main, sub);
    this.pending.set(levelKey.toString('hex'), record);
    return { type: 'put', key: levelKey, value: record };
  }

  /** @internal The index (read by WriteTransaction). */
  keyIndex(): KeyIndex {
    return this.index;
  }

  // -------------------------------------------------------------------------------------------
  // The background writer
  // -------------------------------------------------------------------------------------------

  /**
   * Resolves once level holds every apply made before the call (its records and applied index);
   * rejects if a background write failed (fatal: the process is crashing).
   */
  flush(): Promise<void> {
    return this.flushThrough(this.writesQueued);
  }

  /**
   * Makes every apply made before the call durable, fsynced ({@link flush} only hands it to level,
   * which writes without fsync): what a snapshot without an image relies on before the WAL
   * entries it covers are released.
   */
  async persist(): Promise<void> {
    await this.flush();
    await makeWritesDurable(this.db);
  }

  private flushThrough(through: number): Promise<void> {
    if (this.writeFailure !== undefined) return Promise.reject(this.writeFailure);
    if (this.writesDone >= through) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.writeWaiters.push({ through, resolve, reject }));
  }

  /** Queues one apply's level writes; its records stay in `pending` until they are written. */
  private queueWrite(operations: LevelOperation[]): void {
    for (const operation of operations) {
      this.writeQueue.push(operation);
      if (operation.type === 'put' && operation.key[0] === RECORD_PREFIX) this.writeQueueKeys.push(operation.key.toString('hex'));
    }
    this.writesQueued += 1;
    this.writer ??= this.runWriter();
  }

  /**
   * Writes queued applies, all that queued meanwhile in ONE level batch, until none is left. The
   * first batch waits for the event loop's check phase: handing a batch to level costs the calling
   * thread ~0.15 ms on the development VM (the write batch is built and a thread-pool thread woken),
   * which the apply that queued it would otherwise pay before its waiters (and the client's
   * response) run.
   */
  private async runWriter(): Promise<void> {
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.writeQueue.length > 0) {
        const operations = this.writeQueue;
        const keys = this.writeQueueKeys;
        const through = this.writesQueued;
        this.writeQueue = [];
        this.writeQueueKeys = [];
        await this.db.batch(operations);
        for (const key of keys) this.pending.delete(key);
        this.writesDone = through;
        while (this.writeWaiters.length > 0 && this.writeWaiters[0]!.through <= through) this.writeWaiters.shift()!.resolve();
      }
    } catch (cause) {
      const error = cause instanceof Error ? cause : new Error(String(cause));
      this.writeFailure = error;
      for (const waiter of this.writeWaiters.splice(0)) waiter.reject(error);
      // A lost state machine write is a disk failure: fatal, as the house rules demand.
      process.nextTick(() => {
        throw error;
      });
    } finally {
      this.writer = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Compaction
  // -------------------------------------------------------------------------------------------

  /** Resolvers of `physicallyDone` promises, by compact revision, until the deletion is scheduled. */
  private readonly physicalWaiters = new Map<Revision, () => void>();

  private physicalCompactionPromise(revision: Revision): Promise<void> {
    return new Promise<void>((resolve) => this.physicalWaiters.set(revision, resolve));
  }

  private schedulePhysicalCompaction(revision: Revision): void {
    const resolve = this.physicalWaiters.get(revision);
    this.physicalWaiters.delete(revision);
    // Every record at or below `revision` must be in level before the deletion scans it.
    const written = this.flush();
    this.physicalCompaction = this.physicalCompaction.then(async () => {
      await written;
      await this.deleteCompactedRecords(revision);
      resolve?.();
    });
    // A failed delete is a disk failure: fatal, as the house rules demand.
    this.physicalCompaction.catch((error: unknown) => {
      process.nextTick(() => {
        throw error;
      });
    });
  }

  /**
   * Deletes, in ascending revision order, every record with main <= `revision` that the index no
   * longer holds. Ascending order matters for crash safety: a key's tombstone is deleted only after
   * everything before it, so a rebuild after a crash never resurrects a deleted key.
   */
  private async deleteCompactedRecords(revision: Revision): Promise<void> {
    if (this.closed || revision <= this.compactionFinished) return;
    const generation = this.generation;
    let batch: Buffer[] = [];
    const iterator = this.db.iterator({ gte: recordKeyLowerBound(0), lt: recordKeyLowerBound(revision + 1), highWaterMarkBytes: SCAN_HIGH_WATER_BYTES });
    try {
      for await (const [key, value] of iterator) {
        if (generation !== this.generation) return;
        const { main, sub } = decodeRecordKey(key);
        const entry = this.index.get(toKeyString(decodeRecord(value, main).kv.key));
        const pointer = entry === undefined ? undefined : pointerAt(entry, main);
        const kept = pointer !== undefined && pointer.main === main && pointer.sub === sub;
        if (!kept) batch.push(key);
        if (batch.length >= this.compactionBatchRecords) {
          await this.db.batch(batch.map((item) => ({ type: 'del' as const, key: item })));
          batch = [];
        }
      }
    } finally {
      await iterator.close();
    }
    if (generation !== this.generation) return;
    const operations: Array<{ type: 'del'; key: Buffer } | { type: 'put'; key: Buffer; value: Buffer }> = batch.map((item) => ({ type: 'del' as const, key: item }));
    operations.push({ type: 'put', key: metaKey('compact-finished'), value: encodeUint64(revision) });
    await this.db.batch(operations);
    this.compactionFinished = revision;
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots
  // -------------------------------------------------------------------------------------------

  /**
   * Streams the whole store (meta, every kept record) as a snapshot image (mvcc-snapshot-image.ts).
   * The image is pinned SYNCHRONOUSLY at the call: THE CALLER MUST call it between applies, after
   * {@link flush} resolved (level must hold every applied record).
   */
  writeSnapshot(): AsyncIterable<Uint8Array> {
    assert(!this.applying, 'writeSnapshot during an apply');
    assert(this.writesDone === this.writesQueued, 'writeSnapshot with applies not yet in level: flush() first');
    const header: SnapshotImageHeader = { appliedIndex: this.applied, revision: this.revision, compactRevision: this.compacted };
    const leases = [...this.leaseTable.values()].map((lease) => [leaseKey(lease.id), encodeLeaseValue(lease)] as const);
    // A large store is read on a worker thread (src/storage/level-worker.ts), whose view of level
    // is fixed only once it has created its iterator. Until then nothing may change the records
    // the image takes: applies after this call write records above `revision` (outside the
    // range), and physical compaction, the only deleter, waits for the pin.
    const range = { gte: Buffer.from([RECORD_PREFIX]), lt: recordKeyLowerBound(header.revision + 1) };
    const scan = pinnedScan(this.db, range, chooseThread(this.levelThread, this.index.size >= WORKER_SCAN_MIN_KEYS));
    const held = this.physicalCompaction.then(() => scan.pinned.catch(() => undefined));
    held.catch(() => undefined);
    this.physicalCompaction = held;
    this.imageScans.add(scan);
    const scans = this.imageScans;
    return (async function* () {
      try {
        yield* writeSnapshotImage(header, scan.batches, leases);
      } finally {
        scans.delete(scan);
      }
    })();
  }

  /**
   * Replaces the whole store with the image in `chunks`, which must have been cut at Raft index
   * `index`. Rejects with a SnapshotImageError on a bad image (the store is then left empty with
   * applied index 0, so restoring again is the way forward).
   */
  async restoreSnapshot(chunks: AsyncIterable<Uint8Array>, index: LogIndex, options: { readonly rebase?: boolean } = {}): Promise<void> {
    assert(!this.applying, 'restoreSnapshot during an apply');
    this.applying = true;
    try {
      await this.flush();
      this.generation += 1;
      await this.physicalCompaction.catch(() => undefined);
      await this.db.put(metaKey('restoring'), encodeUint64(1));
      await this.db.clear({ gte: Buffer.from([RECORD_PREFIX]), lt: Buffer.from([LEASE_PREFIX + 1]) });
      await this.db.batch((['applied', 'revision', 'compact', 'compact-finished'] as MetaName[]).map((name) => ({ type: 'del' as const, key: metaKey(name) })));
      this.resetMemory();
      // The key index is built from the records as they stream in, not by reading them all back
      // from level afterwards (a million records took seconds twice).
      this.index.beginBulkLoad();
      let image: SnapshotImageHeader;
      try {
        // Level writes each frame on a worker thread while this thread builds the index from the
        // same frame and reads the next ones (several frames in flight; the index keeps strings,
        // never views of a frame).
        const writer = openBatchWriter(this.db, this.levelThread);
        try {
          image = await readSnapshotImage(chunks, options.rebase === true ? 'any' : index, async (frame) => {
            const room = writer.put(frame);
            room.catch(() => undefined); // observed below, after the frame is indexed
            if (!frame.leases) {
              const { bytes, bounds } = frame;
              for (let b = 0; b < bounds.length; b += 4) this.indexRecord(bytes, bounds[b]!, bounds[b + 1]!, bounds[b + 2]!, bounds[b + 3]!);
            }
            await room;
          });
        } catch (error) {
          await writer.close().catch(() => undefined);
          throw error;
        }
        await writer.close();
      } catch (error) {
        this.resetMemory();
        throw error;
      }
      // `rebase` (a new cluster seeded from a snapshot file): the history is kept, the Raft
      // index it belongs to becomes `index`.
      const header = options.rebase === true ? { ...image, appliedIndex: index } : image;
      await this.db.batch([
        { type: 'put', key: metaKey('applied'), value: encodeUint64(header.appliedIndex) },
        { type: 'put', key: metaKey('revision'), value: encodeUint64(header.revision) },
        { type: 'put', key: metaKey('compact'), value: encodeUint64(header.compactRevision) },
        { type: 'del', key: metaKey('restoring') },
      ]);
      await this.loadMeta();
      this.index.endBulkLoad();
      await this.loadLeasesAndCompaction();
    } finally {
      this.applying = false;
    }
    for (const listener of this.restoreListeners) listener();
  }

  /** Writes what the background writer still holds, waits for background compaction, closes level. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush().catch(() => undefined);
    // An image nobody finished reading would keep a worker's handle on the store open.
    for (const scan of this.imageScans) await scan.stop();
    await this.physicalCompaction.catch(() => undefined);
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Loading
  // -------------------------------------------------------------------------------------------

  private resetMemory(): void {
    this.index.clear();
    this.applied = 0;
    this.revision = EMPTY_STORE_REVISION;
    this.visible = EMPTY_STORE_REVISION;
    this.compacted = 0;
    this.compactionFinished = 0;
    this.pending.clear();
    this.leaseTable.clear();
    this.leaseKeySets.clear();
    this.loadedLeasedRecord = false;
  }

  private async readMeta(name: MetaName): Promise<number> {
    const value = await this.db.get(metaKey(name));
    return value === undefined ? 0 : decodeUint64(value);
  }

  /** Rebuilds the in-memory state from level (see {@link open}). */
  private async load(): Promise<void> {
    this.resetMemory();
    if ((await this.db.get(metaKey('restoring'))) !== undefined) {
      // A restore was interrupted: the store holds a partial image. Start empty.
      await this.db.clear();
      return;
    }
    await this.loadMeta();
    this.index.beginBulkLoad();
    const records = { gte: Buffer.from([RECORD_PREFIX]), lt: Buffer.from([RECORD_PREFIX + 1]) };
    const indexRecord = (bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): void => {
      const main = this.indexRecord(bytes, keyStart, keyEnd, valueStart, valueEnd);
      assert(main <= this.revision, `record at ${main} beyond the store revision ${this.revision}`);
    };
    for await (const batch of scanPacked(this.db, records, this.levelThread)) forEachPacked(batch, indexRecord);
    this.index.endBulkLoad();
    await this.loadLeasesAndCompaction();
  }

  /** Reads the applied index, revision and compaction marks from level. */
  private async loadMeta(): Promise<void> {
    this.applied = await this.readMeta('applied');
    // An empty store is at revision 1, as etcd's: its first write is revision 2.
    this.revision = Math.max(EMPTY_STORE_REVISION, await this.readMeta('revision'));
    this.visible = this.revision;
    this.compacted = await this.readMeta('compact');
    this.compactionFinished = await this.readMeta('compact-finished');
  }

  /**
   * Adds one history record to the key index, which keeps no view of it (the record key is
   * `bytes[keyStart, keyEnd)`, its value `bytes[valueStart, valueEnd)`); returns its main revision.
   */
  private indexRecord(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): Revision {
    return decodeRecordForIndex(bytes, keyStart, keyEnd, valueStart, valueEnd, this.indexFields);
  }

  private readonly indexFields: IndexedRecordSink = (key, main, sub, tombstone, createRevision, version, valueLatin1, lease) => {
    this.index.appendFields(key, main, sub, tombstone, createRevision, version, valueLatin1, lease);
    if (lease !== NO_LEASE) this.loadedLeasedRecord = true;
  };

  /** After the index is built: the lease table, lease attachments and compaction left to do. */
  private async loadLeasesAndCompaction(): Promise<void> {
    const leaseIterator = this.db.iterator({ gte: Buffer.from([LEASE_PREFIX]), lt: Buffer.from([LEASE_PREFIX + 1]) });
    try {
      for await (const [key, value] of leaseIterator) {
        const lease = decodeLeaseRecord(key, value);
        this.leaseTable.set(lease.id, lease);
      }
    } finally {
      await leaseIterator.close();
    }
    // Visiting every key (a million: 0.3–0.5 s) is needed only if some record had a lease.
    if (this.loadedLeasedRecord) {
      const everything = Buffer.from([0]);
      this.index.visit(resolveRange(everything, everything), (entry) => {
        if (entry.live) this.reattach(entry.key, NO_LEASE, entry.currentLease);
        return true;
      });
    }
    // Records a crash left behind an unfinished physical compaction are dropped from the index
    // again (idempotent) and deleted in the background.
    if (this.compacted > 0) this.index.compact(this.compacted);
    if (this.compactionFinished < this.compacted) this.schedulePhysicalCompaction(this.compacted);
  }
}
