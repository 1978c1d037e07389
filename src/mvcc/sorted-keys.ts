/**
 * An ordered set of keys for the key index's range scans: sorted blocks of at most
 * {@link BLOCK_KEYS_MAX} keys, in order (every key of a block is below every key of the next).
 *
 * A single sorted array costs O(n) moves per new key: with a million keys each insertion moved
 * megabytes, and loading a million keys through the log would take hours. Here an insertion moves
 * at most one block (plus, when a block splits, the block list), a lower-bound search is two
 * binary searches, and an ordered scan walks blocks in place.
 */
import type { KeyString } from './key-range';

/** Keys per block before it splits in two. */
const BLOCK_KEYS_MAX = 1024;

/** Index of the first element of `sorted` that is >= `key` (sorted.length if none). */
function lowerBound(sorted: readonly KeyString[], key: KeyString): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** See the module overview. Keys are unique; the caller never inserts a key already present. */
export class SortedKeys {
  /** Non-empty sorted blocks, in key order. */
  private blocks: KeyString[][] = [];
  private count = 0;

  /** Builds the set from keys already sorted ascending and unique (a bulk load). */
  static fromSorted(keys: readonly KeyString[]): SortedKeys {
    const set = new SortedKeys();
    const half = BLOCK_KEYS_MAX / 2;
    for (let start = 0; start < keys.length; start += half) set.blocks.push(keys.slice(start, start + half));
    set.count = keys.length;
    return set;
  }

  get size(): number {
    return this.count;
  }

  /** Inserts `key`, which MUST NOT be present. */
  insert(key: KeyString): void {
    this.count += 1;
    if (this.blocks.length === 0) {
      this.blocks.push([key]);
      return;
    }
    const blockIndex = this.blockFor(key);
    const block = this.blocks[blockIndex]!;
    block.splice(lowerBound(block, key), 0, key);
    if (block.length > BLOCK_KEYS_MAX) this.blocks.splice(blockIndex + 1, 0, block.splice(BLOCK_KEYS_MAX / 2));
  }

  /** Keeps only the keys for which `keep` is true (compaction). */
  retain(keep: (key: KeyString) => boolean): void {
    const kept: KeyString[] = [];
    for (const block of this.blocks) for (const key of block) if (keep(key)) kept.push(key);
    const rebuilt = SortedKeys.fromSorted(kept);
    this.blocks = rebuilt.blocks;
    this.count = rebuilt.count;
  }

  /** Calls `visit` for each key >= `start`, in ascending order, until it returns false. */
  forEachFrom(start: KeyString, visit: (key: KeyString) => boolean): void {
    if (this.blocks.length === 0) return;
    let blockIndex = this.blockFor(start);
    let position = lowerBound(this.blocks[blockIndex]!, start);
    for (; blockIndex < this.blocks.length; blockIndex += 1, position = 0) {
      const block = this.blocks[blockIndex]!;
      for (; position < block.length; position += 1) if (!visit(block[position]!)) return;
    }
  }

  *[Symbol.iterator](): IterableIterator<KeyString> {
    for (const block of this.blocks) yield* block;
  }

  /** The block where `key` belongs: the first whose last key is >= `key`, else the last block. */
  private blockFor(key: KeyString): number {
    let low = 0;
    let high = this.blocks.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const block = this.blocks[middle]!;
      if (block[block.length - 1]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
