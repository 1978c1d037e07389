/**
 * Key ranges with etcd's conventions (ETCD_WIRE_NOTES.md §3.3), used by Range, DeleteRange,
 * Compare, the duplicate-key check and watchers:
 * - `rangeEnd` absent or empty: the single key `key`;
 * - `rangeEnd` = "\0" (one zero byte): every key >= `key` (so key "\0" + end "\0" = all keys);
 * - otherwise the half-open interval [key, rangeEnd), empty when rangeEnd <= key.
 *
 * Keys are held in memory as "binary" (latin1) strings: each byte becomes one UTF-16 code unit
 * 0..255, so JavaScript's string order IS unsigned byte order, Map lookups are cheap, and V8
 * stores them as compact one-byte strings.
 */

/** A key as a byte-per-code-unit string (see the module overview). */
export type KeyString = string;

/** Converts key bytes to a {@link KeyString}. */
export function toKeyString(bytes: Uint8Array): KeyString {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Converts a {@link KeyString} back to bytes (a fresh Buffer). */
export function fromKeyString(key: KeyString): Buffer {
  return Buffer.from(key, 'latin1');
}

/**
 * A resolved range: [start, end) where `end === undefined` means "only `start`" and
 * `end === null` means "no upper bound".
 */
export interface KeyRange {
  readonly start: KeyString;
  readonly end: KeyString | undefined | null;
}

/** Resolves etcd's (key, range_end) pair into a {@link KeyRange}. */
export function resolveRange(key: Uint8Array, rangeEnd: Uint8Array | undefined): KeyRange {
  const start = toKeyString(key);
  if (rangeEnd === undefined || rangeEnd.length === 0) return { start, end: undefined };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: null };
  return { start, end: toKeyString(rangeEnd) };
}

/** True if `key` lies in `range`. */
export function rangeContains(range: KeyRange, key: KeyString): boolean {
  if (range.end === undefined) return key === range.start;
  if (key < range.start) return false;
  return range.end === null || key < range.end;
}

/** The prefix range end of `prefix` (etcd's GetPrefixRangeEnd): last byte +1 after stripping 0xff; "\0" if all 0xff. */
export function prefixRangeEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index -= 1) {
    if (end[index]! < 0xff) {
      end[index] = end[index]! + 1;
      return end.subarray(0, index + 1);
    }
  }
  return Buffer.from([0]);
}
