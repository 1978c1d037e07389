/**
 * RaftLog: one view over the persisted log (Storage) and the unstable tail (Unstable), with the
 * commit and apply cursors (Raft §5.3, etcd `log.go`).
 *
 * Invariant: `applied <= committed <= lastIndex()` and `firstIndex() - 1 <= applied` (nothing
 * compacted is unapplied). Entries are never removed at or below `committed` (a committed entry
 * is never overwritten, Raft §5.4 "Leader Completeness").
 */
import { Unstable } from './log-unstable';
import type { Entry, LogIndex, Snapshot, Storage, StorageError, Term } from './types';
import { assert, countWithinLimit, entrySizeBytes } from './util';

/** The log of one node. See the module overview for its invariants. */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known committed. */
  committed: LogIndex;
  /** Highest index the state machine has applied (moves at advance()). */
  applied: LogIndex;
  /** Byte limit of the committed entries handed out in one Ready. */
  readonly maxCommittedSizePerReadyBytes: number;

  constructor(storage: Storage, maxCommittedSizePerReadyBytes: number) {
    this.storage = storage;
    this.maxCommittedSizePerReadyBytes = maxCommittedSizePerReadyBytes;
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  /** First index still available (after the latest snapshot). */
  firstIndex(): LogIndex {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  /** Index of the last entry (or of the snapshot if the log is empty after it). */
  lastIndex(): LogIndex {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /**
   * The last index the runtime has persisted (everything below the unstable offset), excluding
   * stale storage entries that the unstable tail supersedes. The leader counts itself toward
   * commitment only up to here (thesis §10.2.1).
   */
  stableLastIndex(): LogIndex {
    return this.unstable.snapshot === undefined ? this.unstable.offset - 1 : this.storage.lastIndex();
  }

  /** Term at `index`; 'compacted' below firstIndex()-1, 'unavailable' past lastIndex(). */
  term(index: LogIndex): Term | StorageError {
    const known = this.unstable.maybeTerm(index);
    if (known !== undefined) return known;
    const dummy = this.firstIndex() - 1;
    if (index < dummy) return 'compacted';
    if (index > this.lastIndex()) return 'unavailable';
    return this.storage.term(index);
  }

  /** Term of the last entry. */
  lastTerm(): Term {
    const term = this.term(this.lastIndex());
    assert(typeof term === 'number', `RaftLog.lastTerm: ${String(term)}`);
    return term;
  }

  /** Term at `index`, or 0 when it is compacted or absent (for hints and messages). */
  termOrZero(index: LogIndex): Term {
    const term = this.term(index);
    return typeof term === 'number' ? term : 0;
  }

  /** True if the entry at `index` exists with `term` (the consistency check of Raft §5.3). */
  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term;
  }

  /**
   * Raft §5.4.1 "up to date": a log ending at (`lastIndex`, `lastTerm`) is at least as up to date
   * as ours if its last term is higher, or equal with an index at least ours.
   */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The index of the first entry in `entries` that is absent from our log or conflicts with it
   * (same index, different term); 0 if all of them are already present.
   */
  findConflict(entries: readonly Entry[]): LogIndex {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * Fast back-off (Raft §5.3, the optimisation at its end): the largest index ≤ `index` whose
   * term is ≤ `term`, and that term. Stops at the first unknown (compacted) index.
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    let at = Math.min(index, this.lastIndex());
    for (;;) {
      const found = this.term(at);
      if (typeof found !== 'number') return { index: at, term: 0 };
      if (found <= term) return { index: at, term: found };
      at--;
    }
  }

  /**
   * AppendEntries receiver (Raft §5.3 Figure 2): if our entry at `index` has `logTerm`, append
   * `entries` (deleting a conflicting suffix, never a committed entry), commit up to
   * min(`leaderCommit`, last new index) and return the last new index; otherwise return undefined.
   */
  maybeAppend(index: LogIndex, logTerm: Term, leaderCommit: LogIndex, entries: readonly Entry[]): LogIndex | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `RaftLog.maybeAppend: conflict at ${conflict} ≤ committed ${this.committed}`);
      const from = conflict - (index + 1);
      this.unstable.truncateAndAppend(from === 0 ? entries : entries.slice(from));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Appends entries after a committed prefix (leader path). Returns the new last index. */
  append(entries: readonly Entry[]): LogIndex {
    if (entries.length === 0) return this.lastIndex();
    assert(entries[0]!.index - 1 >= this.committed, `RaftLog.append: would overwrite committed ${this.committed}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /** Moves the commit index forward to `index` (never backwards). Asserts it is within the log. */
  commitTo(index: LogIndex): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `RaftLog.commitTo: ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** The state machine applied up to `index`. */
  appliedTo(index: LogIndex): void {
    if (index === 0) return;
    assert(
      index <= this.committed && index >= this.applied,
      `RaftLog.appliedTo: ${index} not in [applied ${this.applied}, committed ${this.committed}]`,
    );
    this.applied = index;
  }

  /** True if committed entries wait to be applied (none while a snapshot is pending). */
  hasNextCommittedEntries(): boolean {
    const from = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > from;
  }

  /** The committed entries to apply next, bounded by `maxCommittedSizePerReadyBytes`. */
  nextCommittedEntries(): Entry[] {
    const from = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= from) return [];
    const entries = this.slice(from, this.committed + 1, this.maxCommittedSizePerReadyBytes);
    assert(typeof entries !== 'string', `RaftLog.nextCommittedEntries: ${String(entries)}`);
    return entries;
  }

  /** A copy of the unstable entries (what the next Ready must persist). */
  unstableEntries(): Entry[] {
    return this.unstable.entries.length === 0 ? [] : this.unstable.entries.slice();
  }

  /** Entries from `index` to the end, bounded by `maxBytes` (at least one if any). */
  entriesFrom(index: LogIndex, maxBytes: number): Entry[] | StorageError {
    const last = this.lastIndex();
    if (index > last) return [];
    return this.slice(index, last + 1, maxBytes);
  }

  /**
   * Entries in [lo, hi), bounded by `maxBytes` (at least one if the range is non-empty).
   * 'compacted' if lo is below firstIndex().
   */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] | StorageError {
    assert(lo <= hi, `RaftLog.slice: lo ${lo} > hi ${hi}`);
    if (lo < this.firstIndex()) return 'compacted';
    assert(hi <= this.lastIndex() + 1, `RaftLog.slice: hi ${hi} beyond last ${this.lastIndex()}`);
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    let result: Entry[] = [];
    if (lo < offset) {
      const stored = this.storage.entries(lo, Math.min(hi, offset), maxBytes);
      if (typeof stored === 'string') return stored;
      if (stored.length < Math.min(hi, offset) - lo) return stored; // byte limit reached
      result = stored;
    }
    if (hi > offset) {
      const start = Math.max(lo, offset);
      const held = this.unstable.entries;
      if (result.length === 0) {
        const count = countWithinLimit(held, start - offset, hi - offset, maxBytes);
        return held.slice(start - offset, start - offset + count);
      }
      let size = 0;
      for (let i = 0; i < result.length; i++) size += entrySizeBytes(result[i]!);
      for (let at = start; at < hi; at++) {
        const entry = held[at - offset]!;
        size += entrySizeBytes(entry);
        if (size > maxBytes) break;
        result.push(entry);
      }
    }
    return result;
  }

  /** The latest snapshot: the pending one, else the stored one. */
  snapshot(): Snapshot | 'snapshot-temporarily-unavailable' {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Restores from a snapshot (Raft §7): the log becomes empty after it and it counts as committed. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }
}
