/**
 * MemoryStorage: the in-memory implementation of the {@link Storage} port (etcd `storage.go`).
 *
 * The core only reads through the port; the runtime writes here as it handles each Ready
 * (see docs/RAFT.md): `applySnapshot` for `Ready.snapshot`, `append` for `Ready.entries`,
 * `setHardState` for `Ready.hardState`; and `createSnapshot` + `compact` when the state machine
 * takes a snapshot. A durable runtime keeps a MemoryStorage as the cache of its WAL, so every read
 * the core makes is answered synchronously.
 *
 * Layout: `entries[0]` is a placeholder standing for the last compacted entry (the snapshot's
 * index and term); real entries follow contiguously. Appending in order is amortised O(1)
 * (Array.push); only compaction and truncation of a conflicting suffix touch more than the new
 * entries.
 */
import {
  EMPTY_SNAPSHOT,
  EntryType,
  NONE,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type LogIndex,
  type Snapshot,
  type Storage,
  type StorageError,
  type Term,
} from './types';
import { assert, countWithinLimit, EMPTY_BYTES } from './util';

/**
 * In-memory Storage with writers.
 *
 * Invariants: `entries[0]` is a placeholder whose index/term equal the snapshot's; every
 * `entries[k]` has index `entries[0].index + k` (contiguous); the snapshot never goes backwards.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  private snapshotValue: Snapshot = EMPTY_SNAPSHOT;
  private entriesValue: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }];
  private snapshotUnavailable = false;

  /** Returns the persisted HardState and the configuration of the latest snapshot. */
  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snapshotValue.metadata.confState };
  }

  /** Records the HardState (the runtime calls this with `Ready.hardState`). */
  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /** See {@link Storage.entries}: 'compacted' below firstIndex, 'unavailable' past lastIndex + 1. */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] | StorageError {
    const offset = this.entriesValue[0]!.index;
    if (lo <= offset) return 'compacted';
    if (hi > this.lastIndex() + 1) return 'unavailable';
    assert(lo <= hi, `MemoryStorage.entries: lo ${lo} > hi ${hi}`);
    const from = lo - offset;
    const to = hi - offset;
    const count = countWithinLimit(this.entriesValue, from, to, maxBytes);
    return this.entriesValue.slice(from, from + count);
  }

  /** See {@link Storage.term}. */
  term(index: LogIndex): Term | StorageError {
    const offset = this.entriesValue[0]!.index;
    if (index < offset) return 'compacted';
    if (index - offset >= this.entriesValue.length) return 'unavailable';
    return this.entriesValue[index - offset]!.term;
  }

  /** See {@link Storage.firstIndex}. */
  firstIndex(): LogIndex {
    return this.entriesValue[0]!.index + 1;
  }

  /** See {@link Storage.lastIndex}. */
  lastIndex(): LogIndex {
    return this.entriesValue[0]!.index + this.entriesValue.length - 1;
  }

  /** See {@link Storage.snapshot}. */
  snapshot(): Snapshot | 'snapshot-temporarily-unavailable' {
    if (this.snapshotUnavailable) return 'snapshot-temporarily-unavailable';
    return this.snapshotValue;
  }

  /**
   * Makes `snapshot()` answer 'snapshot-temporarily-unavailable' while `unavailable` is true
   * (a runtime producing a snapshot asynchronously, or a test).
   */
  setSnapshotUnavailable(unavailable: boolean): void {
    this.snapshotUnavailable = unavailable;
  }

  /**
   * Replaces the whole contents with a snapshot received from the leader (`Ready.snapshot`):
   * the log becomes empty after `snapshot.metadata.index`. Returns 'snapshot-out-of-date' (and
   * changes nothing) if the stored snapshot is already at least as new.
   */
  applySnapshot(snapshot: Snapshot): 'ok' | 'snapshot-out-of-date' {
    if (snapshot.metadata.index <= this.snapshotValue.metadata.index) return 'snapshot-out-of-date';
    this.snapshotValue = snapshot;
    this.entriesValue = [
      { term: snapshot.metadata.term, index: snapshot.metadata.index, type: EntryType.Normal, data: EMPTY_BYTES },
    ];
    return 'ok';
  }

  /**
   * Records a snapshot of the state machine at `index` (which must be ≤ lastIndex), to be served
   * to lagging followers. Does not compact; call {@link compact} afterwards if wanted.
   * Returns 'snapshot-out-of-date' if `index` is not newer than the stored snapshot, and
   * 'unavailable' if `index` is past the last entry.
   */
  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Snapshot | 'snapshot-out-of-date' | 'unavailable' {
    if (index <= this.snapshotValue.metadata.index) return 'snapshot-out-of-date';
    if (index > this.lastIndex()) return 'unavailable';
    const term = this.term(index);
    assert(typeof term === 'number', `MemoryStorage.createSnapshot: no term at ${index}`);
    this.snapshotValue = { metadata: { index, term, confState }, data };
    return this.snapshotValue;
  }

  /**
   * Replaces the data of the current snapshot, keeping its index, term and membership (the
   * runtime swapped what stands behind it, e.g. a snapshot file for one with a state machine image
   * at the same index). Returns the new snapshot.
   */
  replaceSnapshotData(data: Uint8Array): Snapshot {
    this.snapshotValue = { metadata: this.snapshotValue.metadata, data };
    return this.snapshotValue;
  }

  /**
   * Discards entries up to and including `index` (which becomes the placeholder). The caller must
   * only compact what it has applied (and normally snapshotted). Returns 'compacted' if `index` is
   * already compacted, 'unavailable' if it is past the last entry.
   */
  compact(index: LogIndex): 'ok' | 'compacted' | 'unavailable' {
    const offset = this.entriesValue[0]!.index;
    if (index <= offset) return 'compacted';
    if (index > this.lastIndex()) return 'unavailable';
    const keep = this.entriesValue.slice(index - offset);
    const head = keep[0]!;
    keep[0] = { term: head.term, index: head.index, type: EntryType.Normal, data: EMPTY_BYTES };
    this.entriesValue = keep;
    return 'ok';
  }

  /**
   * Appends `entries` (contiguous, ascending). An entry at an index already stored replaces it and
   * everything after it (a conflicting suffix, Raft §5.3). Entries at or below the compaction point
   * are skipped. Asserts that the new entries leave no gap after the current last index.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const lastNew = entries[0]!.index + entries.length - 1;
    if (lastNew < first) return;
    let from = 0;
    if (first > entries[0]!.index) from = first - entries[0]!.index;
    const startIndex = entries[from]!.index;
    const position = startIndex - this.entriesValue[0]!.index;
    assert(
      position <= this.entriesValue.length,
      `MemoryStorage.append: gap (last index ${this.lastIndex()}, appending at ${startIndex})`,
    );
    if (position < this.entriesValue.length) this.entriesValue.length = position;
    for (let i = from; i < entries.length; i++) {
      const entry = entries[i]!;
      assert(entry.index === startIndex + i - from, 'MemoryStorage.append: entries not contiguous');
      this.entriesValue.push(entry);
    }
  }
}
