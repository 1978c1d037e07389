/**
 * Inflights: the pipelining window of one follower in Replicate state (etcd `tracker/inflights.go`).
 *
 * Each MsgApp sent is recorded by the index of its last entry and its payload bytes; an
 * acknowledgement up to index i frees every record ≤ i. The window is full when it holds
 * `maxMessages` records or at least `maxBytes` payload bytes (0 = no byte limit). A ring buffer of
 * fixed capacity: adding and freeing allocate nothing.
 */
import type { LogIndex } from './types';
import { assert } from './util';

/**
 * A bounded ring of in-flight appends.
 *
 * Invariants: `count <= capacity`; the recorded indexes increase from the oldest to the newest;
 * `bytes` is the sum of the recorded sizes.
 */
export class Inflights {
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;
  private start = 0;
  private countValue = 0;
  private bytesValue = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    assert(maxMessages > 0, 'Inflights: maxMessages must be positive');
    this.indexes = new Float64Array(maxMessages);
    this.sizes = new Float64Array(maxMessages);
  }

  /** Records an append whose last entry is `index` carrying `bytes` of payload. Asserts not full and increasing. */
  add(index: LogIndex, bytes: number): void {
    assert(this.countValue < this.maxMessages, 'Inflights.add: window full');
    if (this.countValue > 0) {
      const newest = this.indexes[(this.start + this.countValue - 1) % this.maxMessages]!;
      assert(index > newest, `Inflights.add: index ${index} not above ${newest}`);
    }
    const slot = (this.start + this.countValue) % this.maxMessages;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.countValue++;
    this.bytesValue += bytes;
  }

  /** Frees every record with index ≤ `index` (an acknowledgement up to `index`). */
  freeLE(index: LogIndex): void {
    while (this.countValue > 0 && this.indexes[this.start]! <= index) {
      this.bytesValue -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.maxMessages;
      this.countValue--;
    }
    if (this.countValue === 0) {
      this.start = 0;
      this.bytesValue = 0;
    }
  }

  /** Frees the oldest record (a heartbeat response proves the follower is alive; etcd does the same). */
  freeFirstOne(): void {
    if (this.countValue === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  /** True when no more appends may be sent: by count, or by bytes when `maxBytes` > 0. */
  full(): boolean {
    return this.countValue >= this.maxMessages || (this.maxBytes > 0 && this.bytesValue >= this.maxBytes);
  }

  /** Number of records. */
  count(): number {
    return this.countValue;
  }

  /** Payload bytes in flight. */
  bytes(): number {
    return this.bytesValue;
  }

  /** Forgets everything. */
  reset(): void {
    this.start = 0;
    this.countValue = 0;
    this.bytesValue = 0;
  }
}
