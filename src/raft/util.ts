/**
 * Small helpers shared by the Raft core: assertions, entry sizes and size-limited prefixes.
 *
 * Sizes: the core measures entries two ways.
 * - {@link entrySizeBytes} (payload plus a fixed per-entry overhead) bounds message batches
 *   (`maxSizePerMsgBytes`) and the committed entries of one Ready
 *   (`maxCommittedSizePerReadyBytes`), so that many tiny entries still cost something.
 * - {@link payloadSizeBytes} (payload only) bounds the leader's uncommitted tail
 *   (`maxUncommittedEntriesBytes`) and the in-flight window (`maxInflightBytes`), so that empty
 *   entries (a new leader's no-op) are free, as in etcd.
 */
import type { Entry } from './types';

/** Thrown by {@link assert}: a broken invariant inside the core, i.e. a bug. Never caught by the core. */
export class RaftAssertionError extends Error {
  override name = 'RaftAssertionError';
}

/**
 * Checks an invariant. Assertions stay on in production (HOUSE_STYLE "bugs crash"): a false
 * condition means the core or its caller broke a contract, and continuing could lose data.
 */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new RaftAssertionError(message);
}

/** Fixed bytes charged per entry on top of its payload: roughly its encoded header (term, index, type). */
export const ENTRY_OVERHEAD_BYTES = 16;

/** Size of one entry for batching limits: payload length plus {@link ENTRY_OVERHEAD_BYTES}. O(1). */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Sum of payload lengths (no overhead): what the uncommitted and in-flight byte caps count. */
export function payloadSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (let i = 0; i < entries.length; i++) total += entries[i]!.data.length;
  return total;
}

/**
 * How many entries of `entries[from..to)` fit in `maxBytes` by {@link entrySizeBytes}.
 * Contract: always at least one when the range is non-empty (a single oversized entry must still
 * make progress), and never more than `to - from`.
 */
export function countWithinLimit(entries: readonly Entry[], from: number, to: number, maxBytes: number): number {
  if (to <= from) return 0;
  let size = entrySizeBytes(entries[from]!);
  let count = 1;
  while (from + count < to) {
    size += entrySizeBytes(entries[from + count]!);
    if (size > maxBytes) break;
    count++;
  }
  return count;
}

/**
 * The longest prefix of `entries` whose total {@link entrySizeBytes} stays within `maxBytes`;
 * at least one entry if any. Returns `entries` itself when everything fits (no copy).
 */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  const count = countWithinLimit(entries, 0, entries.length, maxBytes);
  return count === entries.length ? entries : entries.slice(0, count);
}

/** Byte-wise equality of two payloads. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The vote context that marks a leader-transfer campaign (thesis §3.10): bypasses leases. */
export const TRANSFER_CONTEXT: Uint8Array = new Uint8Array([0x74, 0x72, 0x61, 0x6e, 0x73, 0x66, 0x65, 0x72]); // "transfer"

/** An empty payload shared by every message and entry that carries none (never mutated). */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
