/**
 * The state machine's command: what a raft Normal entry's `data` carries.
 *
 * raftexample gob-encodes a `{ Key, Val }` pair; raftkv uses a small fixed binary layout instead,
 * because the encoding sits on the hot path (every proposal is encoded once and decoded on every
 * replica) and because a decoder that validates every byte is the gateway where bytes from the
 * log become trusted values.
 *
 * Format, version 1 (all integers big-endian):
 * ```
 * offset  size  field
 * 0       1     format version (1)
 * 1       1     operation: 1 = put, 2 = delete
 * 2       8     request ID, unsigned 64-bit
 * 10      4     key length in bytes, unsigned 32-bit
 * 14      n     key, UTF-8 (well-formed)
 * 14+n    rest  put: the value (may be empty); delete: nothing (no trailing bytes allowed)
 * ```
 * The value needs no length field: it is the remainder of the entry. A decoded value is a view
 * into the entry's bytes, not a copy (entries are immutable, see `Entry` in src/raft/types.ts).
 *
 * Empty data is a new leader's no-op entry (Raft §8), never a command: {@link isNoOpData}
 * recognises it and {@link decodeCommand} answers `'empty'` for it.
 */

import { isUtf8 } from 'node:buffer';

/** The current command format version; the first byte of every encoded command. */
export const COMMAND_FORMAT_VERSION = 1;

const OPERATION_PUT = 1;
const OPERATION_DELETE = 2;
const HEADER_BYTES = 14;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * One state machine command.
 *
 * `requestId` is unique per proposing node (the runtime builds it: the node ID, or a hash of it, in
 * the high bits and a counter in the low bits); it lets the proposer match the applied entry to
 * the waiting caller. It is an unsigned 64-bit value. `value` is present exactly when `op` is
 * `'put'`.
 */
export type Command =
  | { readonly requestId: bigint; readonly op: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly requestId: bigint; readonly op: 'delete'; readonly key: string; readonly value?: undefined };

/** Why bytes could not be decoded as a command. Stable strings. */
export type CommandDecodeError =
  /** Zero bytes: a leader's no-op entry, not a command. */
  | 'empty'
  /** The first byte names a format version this build does not know. */
  | 'unknown-version'
  /** Fewer bytes than the header or the key length require. */
  | 'truncated'
  /** The operation byte is neither put nor delete. */
  | 'unknown-operation'
  /** The key bytes are not well-formed UTF-8. */
  | 'invalid-key'
  /** A delete carries bytes after its key. */
  | 'trailing-bytes';

/** The outcome of {@link decodeCommand}: a command, or why there is none. */
export type CommandDecodeResult =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly reason: CommandDecodeError };

/** True for a new leader's no-op entry data (empty), which carries no command. */
export function isNoOpData(data: Uint8Array): boolean {
  return data.byteLength === 0;
}

interface WellFormedString {
  isWellFormed(): boolean;
}

/**
 * Encodes a command in the current format.
 *
 * The command must be valid: `requestId` within [0, 2^64), `key` well-formed (no lone UTF-16
 * surrogates, which UTF-8 cannot carry), `value` present exactly for a put. Anything else is a
 * caller bug and throws (API handlers validate user input before building commands).
 */
export function encodeCommand(command: Command): Uint8Array {
  if (command.requestId < 0n || command.requestId > UINT64_MAX) {
    throw new Error(`encodeCommand: request ID ${command.requestId} is not an unsigned 64-bit value`);
  }
  if (!(command.key as unknown as WellFormedString).isWellFormed()) {
    throw new Error('encodeCommand: key contains a lone UTF-16 surrogate');
  }
  const keyBytes = Buffer.byteLength(command.key, 'utf8');
  let valueBytes = 0;
  let operation: number;
  if (command.op === 'put') {
    if (!(command.value instanceof Uint8Array)) throw new Error('encodeCommand: a put needs a value');
    operation = OPERATION_PUT;
    valueBytes = command.value.byteLength;
  } else if (command.op === 'delete') {
    if (command.value !== undefined) throw new Error('encodeCommand: a delete carries no value');
    operation = OPERATION_DELETE;
  } else {
    throw new Error(`encodeCommand: unknown operation ${String((command as { op: unknown }).op)}`);
  }
  const buffer = Buffer.allocUnsafe(HEADER_BYTES + keyBytes + valueBytes);
  buffer[0] = COMMAND_FORMAT_VERSION;
  buffer[1] = operation;
  buffer.writeBigUInt64BE(command.requestId, 2);
  buffer.writeUInt32BE(keyBytes, 10);
  const written = buffer.write(command.key, HEADER_BYTES, keyBytes, 'utf8');
  if (written !== keyBytes) throw new Error('encodeCommand: key length changed while encoding');
  if (command.op === 'put') buffer.set(command.value, HEADER_BYTES + keyBytes);
  return buffer;
}

/**
 * Decodes and validates entry data as a command. Never throws: malformed bytes yield
 * `{ ok: false, reason }`. The returned put value is a VIEW into `data` (no copy), so `data` must
 * not be mutated afterwards (log entries never are).
 */
export function decodeCommand(data: Uint8Array): CommandDecodeResult {
  if (data.byteLength === 0) return { ok: false, reason: 'empty' };
  if (data[0] !== COMMAND_FORMAT_VERSION) return { ok: false, reason: 'unknown-version' };
  if (data.byteLength < HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const operation = view.getUint8(1);
  if (operation !== OPERATION_PUT && operation !== OPERATION_DELETE) {
    return { ok: false, reason: 'unknown-operation' };
  }
  const requestId = view.getBigUint64(2, false);
  const keyBytes = view.getUint32(10, false);
  const keyEnd = HEADER_BYTES + keyBytes;
  if (keyEnd > data.byteLength) return { ok: false, reason: 'truncated' };
  const keyView = data.subarray(HEADER_BYTES, keyEnd);
  if (!isUtf8(keyView)) return { ok: false, reason: 'invalid-key' };
  const key = Buffer.from(keyView.buffer, keyView.byteOffset, keyView.byteLength).toString('utf8');
  if (operation === OPERATION_DELETE) {
    if (keyEnd !== data.byteLength) return { ok: false, reason: 'trailing-bytes' };
    return { ok: true, command: { requestId, op: 'delete', key } };
  }
  return { ok: true, command: { requestId, op: 'put', key, value: data.subarray(keyEnd) } };
}
