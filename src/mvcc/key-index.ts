/**
 * The in-memory key index (etcd's treeIndex/keyIndex, flattened): for every key that has history,
 * the ascending list of revisions at which it was written or deleted, plus a cache of its current
 * value. Values of past revisions live only in level (see record-codec.ts) and are fetched by
 * revision.
 *
 * Ordered scans use {@link SortedKeys} (sorted blocks: an insertion moves one block, not the
 * whole key list — with a million keys a single sorted array made every new key move megabytes).
 * Keys are {@link KeyString}s, so string comparison is byte comparison. A bulk load sorts once.
 *
 * Invariants (per {@link KeyEntry}):
 * - its pointers are strictly ascending by (main, sub) and never empty while the entry is indexed;
 * - `current` is defined exactly when the last revision is not a tombstone, and then describes the
 *   record at that last revision;
 * - generations are implicit: a tombstone ends one; the next put starts a new one (version 1).
 *
 * Compaction at revision R (etcd keyIndex.compact): per key, the largest revision <= R is kept
 * with everything after it — unless it is a tombstone, in which case it and everything before it
 * go. A key left with no revisions leaves the index.
 */
import type { KeyRange, KeyString } from './key-range';
import { SortedKeys } from './sorted-keys';
import { NO_LEASE, type LeaseId, type Revision } from './types';

/** Where one version of a key lives: (main, sub) revision; a tombstone marks a deletion. */
export interface RevisionPointer {
  readonly main: Revision;
  /** Position of the write inside its transaction (etcd `revision.sub`), from 0. */
  readonly sub: number;
  readonly tombstone: boolean;
}

/**
 * The cached latest version of a live key (everything of a KeyValue but the key). The value is
 * held as a latin1 string (one code unit per byte, see {@link valueString}): a string is one
 * object on the V8 heap, a Buffer is two objects plus a slice of an 8 KiB pool slab that keeps
 * the whole slab alive while any of its slices lives (a million 256-byte values held about
 * 750 MiB of slabs that way).
 */
export interface CurrentValue {
  readonly createRevision: Revision;
  readonly modRevision: Revision;
  readonly version: number;
  /** The value's bytes as a latin1 string; {@link valueBytes} turns it back into bytes. */
  readonly valueLatin1: string;
  readonly lease: LeaseId;
}

/** The latin1 string holding `bytes` (a copy) for {@link CurrentValue.valueLatin1}. */
export function valueString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** The bytes of a {@link CurrentValue.valueLatin1} (a fresh Buffer). */
export function valueBytes(valueLatin1: string): Buffer {
  return Buffer.from(valueLatin1, 'latin1');
}

/**
 * All the index knows about one key. See the invariants in the module overview. One object per
 * key: the newest pointer and the current value live in the entry's own fields, older pointers
 * (only a key written again since the last compaction has any) in one flat array of small
 * integers. A key written once costs one object, where a pointer array, a pointer and a current
 * value object cost four (about 150 bytes more per key).
 */
export class KeyEntry {
  /** Main revision of the newest pointer. */
  private newestMain: Revision;
  /** Sub revision of the newest pointer, bitwise-complemented (negative) for a tombstone. */
  private newestSub: number;
  /** Older pointers, oldest first, as pairs (main, sub encoded as {@link newestSub}); undefined: none. */
  private older: number[] | undefined = undefined;
  /** The current value's fields (see {@link CurrentValue}); its modRevision is {@link newestMain}. */
  private createRevision: Revision = 0;
  private version = 0;
  /** Undefined exactly when there is no current value (the newest pointer is a tombstone). */
  private valueLatin1: string | undefined = undefined;
  private lease: LeaseId = NO_LEASE;

  /** An entry whose only pointer is (main, sub encoded as {@link newestSub}), with no current value yet. */
  constructor(
    readonly key: KeyString,
    main: Revision,
    encodedSub: number,
  ) {
    this.newestMain = main;
    this.newestSub = encodedSub;
  }

  /** Whether the key is live (has a current value). */
  get live(): boolean {
    return this.valueLatin1 !== undefined;
  }

  /** The live key's lease, NO_LEASE if none or not live. */
  get currentLease(): LeaseId {
    return this.lease;
  }

  /** The current value (a fresh object), undefined if the key is not live. */
  get current(): CurrentValue | undefined {
    if (this.valueLatin1 === undefined) return undefined;
    return { createRevision: this.createRevision, modRevision: this.newestMain, version: this.version, valueLatin1: this.valueLatin1, lease: this.lease };
  }

  /** Sets the current value; its modRevision MUST be the newest pointer's main revision. */
  setCurrent(current: CurrentValue | undefined): void {
    if (current === undefined) {
      this.setCurrentFields(0, 0, undefined, NO_LEASE);
      return;
    }
    if (current.modRevision !== this.newestMain) {
      throw new Error(`assertion failed: current value at ${current.modRevision}, newest pointer at ${this.newestMain}`);
    }
    this.setCurrentFields(current.createRevision, current.version, current.valueLatin1, current.lease);
  }

  /** {@link setCurrent} with the value's fields (modRevision is the newest pointer's); `valueLatin1` undefined: no current value. */
  setCurrentFields(createRevision: Revision, version: number, valueLatin1: string | undefined, lease: LeaseId): void {
    this.createRevision = createRevision;
    this.version = version;
    this.valueLatin1 = valueLatin1;
    // No lease is the one shared constant, not a 0n decoded per request (16 bytes per key).
    this.lease = lease === NO_LEASE ? NO_LEASE : lease;
  }

  /** Number of pointers kept (at least one while the entry is indexed). */
  get pointerCount(): number {
    return this.older === undefined ? 1 : this.older.length / 2 + 1;
  }

  /** Main revision of pointer `position` (0: the oldest kept). */
  mainAt(position: number): Revision {
    return position === this.pointerCount - 1 ? this.newestMain : this.older![position * 2]!;
  }

  /** Pointer `position` (0: the oldest kept), as a fresh object. */
  pointerAt(position: number): RevisionPointer {
    return position === this.pointerCount - 1 ? decodePointer(this.newestMain, this.newestSub) : decodePointer(this.older![position * 2]!, this.older![position * 2 + 1]!);
  }

  /** Whether `pointer` is this key's newest. */
  isNewest(pointer: { main: Revision; sub: number }): boolean {
    return pointer.main === this.newestMain && pointer.sub === decodeSub(this.newestSub);
  }

  /** Appends the pointer (main, sub encoded as {@link newestSub}), which MUST be newer than every pointer kept. */
  pushEncoded(main: Revision, encodedSub: number): void {
    const newestSub = decodeSub(this.newestSub);
    if (this.newestMain > main || (this.newestMain === main && newestSub >= decodeSub(encodedSub))) {
      throw new Error(`assertion failed: key index append out of order at ${main}.${decodeSub(encodedSub)}`);
    }
    if (this.older === undefined) this.older = [this.newestMain, this.newestSub];
    else this.older.push(this.newestMain, this.newestSub);
    this.newestMain = main;
    this.newestSub = encodedSub;
  }

  /** Drops the `count` oldest pointers; `count` MUST be below {@link pointerCount}. */
  dropOldest(count: number): void {
    if (count <= 0) return;
    const remaining = this.older!.slice(count * 2);
    this.older = remaining.length === 0 ? undefined : remaining;
  }
}

function encodeSub(pointer: RevisionPointer): number {
  return pointer.tombstone ? ~pointer.sub : pointer.sub;
}

function decodeSub(encoded: number): number {
  return encoded < 0 ? ~encoded : encoded;
}

function decodePointer(main: Revision, encodedSub: number): RevisionPointer {
  return { main, sub: decodeSub(encodedSub), tombstone: encodedSub < 0 };
}

/** Compares two pointers by (main, sub). */
export function compareRevisions(a: { main: Revision; sub: number }, b: { main: Revision; sub: number }): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

/** The last pointer of `entry` with main <= `revision`, or undefined. Binary search. */
export function pointerAt(entry: KeyEntry, revision: Revision): RevisionPointer | undefined {
  let low = 0;
  let high = entry.pointerCount;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (entry.mainAt(middle) <= revision) low = middle + 1;
    else high = middle;
  }
  return low === 0 ? undefined : entry.pointerAt(low - 1);
}

/** The pointer right before `pointer` in `entry` (the previous version or tombstone), if kept. */
export function pointerBefore(entry: KeyEntry, pointer: { main: Revision; sub: number }): RevisionPointer | undefined {
  let low = 0;
  let high = entry.pointerCount;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareRevisions(entry.pointerAt(middle), pointer) < 0) low = middle + 1;
    else high = middle;
  }
  return low === 0 ? undefined : entry.pointerAt(low - 1);
}

/** The key index. Not persistent: rebuilt from level at open (MvccStore.open). */
export class KeyIndex {
  private readonly entries = new Map<KeyString, KeyEntry>();
  private sortedKeys = new SortedKeys();
  private sortedKeysStale = false;

  /** Number of keys with kept history (live or deleted-but-not-compacted). */
  get size(): number {
    return this.entries.size;
  }

  /** The entry of `key`, if it has kept history. */
  get(key: KeyString): KeyEntry | undefined {
    return this.entries.get(key);
  }

  /**
   * Appends a pointer to `key`'s history (creating the entry) and sets its cached current value.
   * The pointer MUST be newer than every pointer the key already has.
   */
  append(key: KeyString, pointer: RevisionPointer, current: CurrentValue | undefined): void {
    this.entryAppended(key, pointer.main, encodeSub(pointer)).setCurrent(current);
  }

  /**
   * {@link append} with the record's fields as arguments (`valueLatin1` undefined for a
   * tombstone): rebuilding the index at open appends a million records, and a pointer and a
   * value object per record were a tenth of its time.
   */
  appendFields(key: KeyString, main: Revision, sub: number, tombstone: boolean, createRevision: Revision, version: number, valueLatin1: string | undefined, lease: LeaseId): void {
    const entry = this.entryAppended(key, main, tombstone ? ~sub : sub);
    if (tombstone) entry.setCurrentFields(0, 0, undefined, NO_LEASE);
    else entry.setCurrentFields(createRevision, version, valueLatin1, lease);
  }

  /** The entry of `key` with (main, encoded sub) appended as its newest pointer (a new entry if the key has none). */
  private entryAppended(key: KeyString, main: Revision, encodedSub: number): KeyEntry {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      const created = new KeyEntry(key, main, encodedSub);
      this.entries.set(key, created);
      if (!this.sortedKeysStale) this.sortedKeys.insert(key);
      return created;
    }
    entry.pushEncoded(main, encodedSub);
    return entry;
  }

  /**
   * Starts a bulk load: appends stop maintaining the sorted key array until {@link endBulkLoad}
   * sorts it once (used when rebuilding from level, where keys arrive in revision order).
   */
  beginBulkLoad(): void {
    this.sortedKeysStale = true;
  }

  /** Ends a bulk load (see {@link beginBulkLoad}). */
  endBulkLoad(): void {
    this.sortedKeys = SortedKeys.fromSorted([...this.entries.keys()].sort());
    this.sortedKeysStale = false;
  }

  /** Removes every entry (snapshot restore). */
  clear(): void {
    this.entries.clear();
    this.sortedKeys = new SortedKeys();
    this.sortedKeysStale = false;
  }

  /**
   * Calls `visit` for each entry in `range`, in ascending key order, until it returns false.
   */
  visit(range: KeyRange, visit: (entry: KeyEntry) => boolean): void {
    if (range.end === undefined) {
      const entry = this.entries.get(range.start);
      if (entry !== undefined) visit(entry);
      return;
    }
    if (range.end !== null && range.end <= range.start) return;
    const end = range.end;
    this.sortedKeys.forEachFrom(range.start, (key) => (end === null || key < end) && visit(this.entries.get(key)!));
  }

  /** Every entry in ascending key order (snapshots, hashing). */
  *all(): IterableIterator<KeyEntry> {
    for (const key of this.sortedKeys) yield this.entries.get(key)!;
  }

  /**
   * Compacts every key's history at `revision` (see the module overview). Returns how many
   * pointers were dropped.
   */
  compact(revision: Revision): number {
    let dropped = 0;
    let removedKeys = false;
    for (const entry of this.entries.values()) {
      const count = entry.pointerCount;
      if (entry.mainAt(0) > revision) continue;
      // Index of the largest pointer with main <= revision.
      let keep = 0;
      while (keep + 1 < count && entry.mainAt(keep + 1) <= revision) keep += 1;
      const dropCount = entry.pointerAt(keep).tombstone ? keep + 1 : keep;
      if (dropCount === 0) continue;
      dropped += dropCount;
      if (dropCount === count) {
        this.entries.delete(entry.key);
        removedKeys = true;
      } else {
        entry.dropOldest(dropCount);
      }
    }
    if (removedKeys) this.sortedKeys.retain((key) => this.entries.has(key));
    return dropped;
  }
}
