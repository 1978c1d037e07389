/**
 * The unstable part of the Raft log: entries (and at most one incoming snapshot) that this node
 * holds in memory but the runtime has not yet persisted. They leave through `Ready.entries` /
 * `Ready.snapshot` and become stable at `advance()` (etcd `log_unstable.go`).
 *
 * The entries array is owned exclusively by this object (callers only ever get copies), so
 * appends push in place and the common case allocates nothing but array growth.
 */
import type { Entry, LogIndex, Snapshot, Term } from './types';
import { assert } from './util';

/**
 * Entries and snapshot not yet persisted.
 *
 * Invariants: `entries[k].index === offset + k`; if `snapshot` is set then
 * `offset === snapshot.metadata.index + 1`. Everything below `offset` is in Storage (or in the
 * pending snapshot); entries of Storage at or above `offset` are stale and will be overwritten.
 */
export class Unstable {
  /** A snapshot received from the leader and not yet persisted. */
  snapshot: Snapshot | undefined = undefined;
  /** Entries not yet persisted; `entries[0]` has index `offset`. */
  entries: Entry[] = [];
  /** Index of `entries[0]` (or where the next entry goes). */
  offset: LogIndex;

  constructor(offset: LogIndex) {
    this.offset = offset;
  }

  /** The first log index if a snapshot is pending (snapshot index + 1), else undefined. */
  maybeFirstIndex(): LogIndex | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  /** The last index held here (entries, else the pending snapshot), else undefined. */
  maybeLastIndex(): LogIndex | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index;
  }

  /** The term at `index` if this object knows it, else undefined. */
  maybeTerm(index: LogIndex): Term | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return undefined;
    }
    const position = index - this.offset;
    if (position >= this.entries.length) return undefined;
    return this.entries[position]!.term;
  }

  /**
   * The runtime persisted entries up to `index`, whose term was `term`. Drops them, unless the
   * entry at `index` has since been replaced (term differs) or was already dropped.
   */
  stableTo(index: LogIndex, term: Term): void {
    const known = this.maybeTerm(index);
    if (known === undefined || known !== term || index < this.offset) return;
    const count = index + 1 - this.offset;
    this.entries = count >= this.entries.length ? [] : this.entries.slice(count);
    this.offset = index + 1;
  }

  /** The runtime persisted the snapshot at `index`: forget it. */
  stableSnapTo(index: LogIndex): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) this.snapshot = undefined;
  }

  /** Replaces everything with an incoming snapshot (Raft §7). */
  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.entries = [];
    this.snapshot = snapshot;
  }

  /**
   * Appends `entries` (contiguous), first discarding any held entry at or after
   * `entries[0].index` (a conflicting suffix, Raft §5.3). If they start below `offset`, the
   * offset moves down: the stable entries from there on are superseded.
   */
  truncateAndAppend(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    const end = this.offset + this.entries.length;
    if (after === end) {
      for (let i = 0; i < entries.length; i++) this.entries.push(entries[i]!);
    } else if (after <= this.offset) {
      this.offset = after;
      this.entries = entries.slice();
    } else {
      assert(after < end, `Unstable.truncateAndAppend: gap at ${after}, end ${end}`);
      this.entries.length = after - this.offset;
      for (let i = 0; i < entries.length; i++) this.entries.push(entries[i]!);
    }
  }

  /** A copy of the entries in [lo, hi); both must lie within [offset, offset + entries.length]. */
  slice(lo: LogIndex, hi: LogIndex): Entry[] {
    assert(
      lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi,
      `Unstable.slice: [${lo}, ${hi}) outside [${this.offset}, ${this.offset + this.entries.length})`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
