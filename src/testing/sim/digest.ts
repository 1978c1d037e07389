/**
 * Cheap, deterministic 64-bit content hashes for the simulator's checkers and state machine.
 *
 * Two independent 32-bit FNV-1a style hashes are combined into one 16-hex-digit string. They are
 * not cryptographic; they only need to make an accidental collision between two different
 * entries in one simulated run vanishingly unlikely.
 */

/** The hash of `bytes` as 16 hex digits. */
export function hashBytes(bytes: Uint8Array): string {
  let first = 0x811c9dc5;
  let second = 0x01000193 ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    first = Math.imul(first ^ byte, 0x01000193);
    second = Math.imul(second ^ byte, 0x5bd1e995);
    second ^= second >>> 15;
  }
  return hex32(first) + hex32(second);
}

/** Folds `next` into a running digest `previous` (order-sensitive). */
export function chainDigest(previous: string, next: string): string {
  return hashBytes(textEncoder.encode(previous + next));
}

/** The digest of an empty history. */
export const EMPTY_DIGEST = '0000000000000000';

const textEncoder = new TextEncoder();

function hex32(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}
