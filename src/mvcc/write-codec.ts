/**
 * The binary encoding of an MVCC write (Put, DeleteRange, Txn, Compact) inside a Raft entry.
 *
 * Layout (little-endian): version u8 (= 2; src/kv/command.ts uses 1) | requestId u64 |
 * kind u8 | body. Bodies are built from:
 *   bytes    = length u32 | bytes
 *   number   = f64 (revisions, limits and versions are integers below 2^53)
 *   lease    = u64
 *   flags    = u8 bit set
 * A Txn nests its compares and request ops (range, put, deleteRange, txn, empty) recursively.
 * Lease entries (kinds 5-7) share the envelope:
 *   LeaseGrant      = id i64 | ttlSeconds number   (ID and TTL chosen by the proposer)
 *   LeaseRevoke     = id i64
 *   LeaseCheckpoint = count u32 | (id i64 | remainingMs number)*
 * Decoding validates every length and tag and returns a value error, never throws, so a damaged
 * entry is reported instead of crashing the apply loop in an unexpected place.
 */
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type DeleteRangeRequest,
  type MvccWriteRequest,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
} from './types';

/** The first byte of an encoded MVCC write. */
export const MVCC_WRITE_FORMAT_VERSION = 2;

const KIND_PUT = 1;
const KIND_DELETE_RANGE = 2;
const KIND_TXN = 3;
const KIND_COMPACT = 4;
const KIND_LEASE_GRANT = 5;
const KIND_LEASE_REVOKE = 6;
const KIND_LEASE_CHECKPOINT = 7;
const OP_RANGE = 1;
const OP_EMPTY = 5;
const NESTING_MAX = 64;

/** A write with the ID of the request waiting for it. */
export interface EncodedWrite {
  readonly requestId: bigint;
  readonly write: MvccWriteRequest;
}

/** The outcome of decoding. */
export type WriteDecodeResult = { readonly ok: true; readonly value: EncodedWrite } | { readonly ok: false; readonly reason: string };

/** True if `data` starts like an encoded MVCC write. */
export function isMvccWrite(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === MVCC_WRITE_FORMAT_VERSION;
}

/** Encodes `write` for a Raft entry. */
export function encodeMvccWrite(requestId: bigint, write: MvccWriteRequest): Uint8Array {
  const writer = new Writer();
  writer.u8(MVCC_WRITE_FORMAT_VERSION);
  writer.u64(requestId);
  switch (write.kind) {
    case 'put':
      writer.u8(KIND_PUT);
      writePut(writer, write.request);
      break;
    case 'deleteRange':
      writer.u8(KIND_DELETE_RANGE);
      writeDeleteRange(writer, write.request);
      break;
    case 'txn':
      writer.u8(KIND_TXN);
      writeTxn(writer, write.request, 0);
      break;
    case 'compact':
      writer.u8(KIND_COMPACT);
      writer.number(write.request.revision);
      writer.u8(write.request.physical === true ? 1 : 0);
      break;
    case 'leaseGrant':
      writer.u8(KIND_LEASE_GRANT);
      writer.u64(write.request.id);
      writer.number(write.request.ttlSeconds);
      break;
    case 'leaseRevoke':
      writer.u8(KIND_LEASE_REVOKE);
      writer.u64(write.request.id);
      break;
    case 'leaseCheckpoint':
      writer.u8(KIND_LEASE_CHECKPOINT);
      writer.u32(write.request.checkpoints.length);
      for (const checkpoint of write.request.checkpoints) {
        writer.u64(checkpoint.id);
        writer.number(checkpoint.remainingMs);
      }
      break;
  }
  return writer.finish();
}

/** Decodes an entry's data; a value error (never an exception) for malformed input. */
export function decodeMvccWrite(data: Uint8Array): WriteDecodeResult {
  try {
    const reader = new Reader(data);
    if (reader.u8() !== MVCC_WRITE_FORMAT_VERSION) return { ok: false, reason: 'unknown-version' };
    const requestId = reader.u64();
    const kind = reader.u8();
    let write: MvccWriteRequest;
    switch (kind) {
      case KIND_PUT:
        write = { kind: 'put', request: readPut(reader) };
        break;
      case KIND_DELETE_RANGE:
        write = { kind: 'deleteRange', request: readDeleteRange(reader) };
        break;
      case KIND_TXN:
        write = { kind: 'txn', request: readTxn(reader, 0) };
        break;
      case KIND_COMPACT:
        write = { kind: 'compact', request: { revision: reader.number(), physical: reader.u8() === 1 } };
        break;
      case KIND_LEASE_GRANT:
        write = { kind: 'leaseGrant', request: { id: reader.i64(), ttlSeconds: reader.number() } };
        break;
      case KIND_LEASE_REVOKE:
        write = { kind: 'leaseRevoke', request: { id: reader.i64() } };
        break;
      case KIND_LEASE_CHECKPOINT: {
        const count = reader.count();
        const checkpoints: Array<{ id: bigint; remainingMs: number }> = [];
        for (let i = 0; i < count; i++) checkpoints.push({ id: reader.i64(), remainingMs: reader.number() });
        write = { kind: 'leaseCheckpoint', request: { checkpoints } };
        break;
      }
      default:
        return { ok: false, reason: `unknown-kind-${kind}` };
    }
    if (!reader.atEnd()) return { ok: false, reason: 'trailing-bytes' };
    return { ok: true, value: { requestId, write } };
  } catch (error) {
    return { ok: false, reason: error instanceof DecodeError ? error.message : 'malformed' };
  }
}

function writePut(writer: Writer, request: PutRequest): void {
  writer.bytes(request.key);
  const flags =
    (request.value !== undefined ? 1 : 0) |
    (request.lease !== undefined ? 2 : 0) |
    (request.prevKv === true ? 4 : 0) |
    (request.ignoreValue === true ? 8 : 0) |
    (request.ignoreLease === true ? 16 : 0);
  writer.u8(flags);
  if (request.value !== undefined) writer.bytes(request.value);
  if (request.lease !== undefined) writer.u64(request.lease);
}

function readPut(reader: Reader): PutRequest {
  const key = reader.bytes();
  const flags = reader.u8();
  const value = flags & 1 ? reader.bytes() : undefined;
  const lease = flags & 2 ? reader.i64() : undefined;
  return {
    key,
    ...(value !== undefined ? { value } : {}),
    ...(lease !== undefined ? { lease } : {}),
    ...(flags & 4 ? { prevKv: true } : {}),
    ...(flags & 8 ? { ignoreValue: true } : {}),
    ...(flags & 16 ? { ignoreLease: true } : {}),
  };
}

function writeDeleteRange(writer: Writer, request: DeleteRangeRequest): void {
  writer.bytes(request.key);
  writer.optionalBytes(request.rangeEnd);
  writer.u8(request.prevKv === true ? 1 : 0);
}

function readDeleteRange(reader: Reader): DeleteRangeRequest {
  const key = reader.bytes();
  const rangeEnd = reader.optionalBytes();
  const prevKv = reader.u8() === 1;
  return { key, ...(rangeEnd !== undefined ? { rangeEnd } : {}), ...(prevKv ? { prevKv } : {}) };
}

function writeRange(writer: Writer, request: RangeRequest): void {
  writer.bytes(request.key);
  writer.optionalBytes(request.rangeEnd);
  writer.number(request.limit ?? 0);
  writer.number(request.revision ?? 0);
  writer.u8(request.sortOrder ?? SortOrder.None);
  writer.u8(request.sortTarget ?? SortTarget.Key);
  writer.u8((request.keysOnly === true ? 1 : 0) | (request.countOnly === true ? 2 : 0));
  writer.number(request.minModRevision ?? 0);
  writer.number(request.maxModRevision ?? 0);
  writer.number(request.minCreateRevision ?? 0);
  writer.number(request.maxCreateRevision ?? 0);
}

function readRange(reader: Reader): RangeRequest {
  const key = reader.bytes();
  const rangeEnd = reader.optionalBytes();
  const limit = reader.number();
  const revision = reader.number();
  const sortOrder = reader.u8();
  const sortTarget = reader.u8();
  if (!(sortOrder in SortOrder) || !(sortTarget in SortTarget)) throw new DecodeError('bad-sort');
  const flags = reader.u8();
  return {
    key,
    ...(rangeEnd !== undefined ? { rangeEnd } : {}),
    limit,
    revision,
    sortOrder,
    sortTarget,
    keysOnly: (flags & 1) !== 0,
    countOnly: (flags & 2) !== 0,
    minModRevision: reader.number(),
    maxModRevision: reader.number(),
    minCreateRevision: reader.number(),
    maxCreateRevision: reader.number(),
  };
}

function writeCompare(writer: Writer, compare: Compare): void {
  writer.u8(compare.result);
  writer.u8(compare.target);
  writer.bytes(compare.key);
  writer.optionalBytes(compare.rangeEnd);
  switch (compare.target) {
    case CompareTarget.Version:
      writer.number(compare.version ?? 0);
      break;
    case CompareTarget.Create:
      writer.number(compare.createRevision ?? 0);
      break;
    case CompareTarget.Mod:
      writer.number(compare.modRevision ?? 0);
      break;
    case CompareTarget.Value:
      writer.bytes(compare.value ?? new Uint8Array(0));
      break;
    case CompareTarget.Lease:
      writer.u64(compare.lease ?? 0n);
      break;
  }
}

function readCompare(reader: Reader): Compare {
  const result = reader.u8();
  const target = reader.u8();
  if (!(result in CompareResult) || !(target in CompareTarget)) throw new DecodeError('bad-compare');
  const key = reader.bytes();
  const rangeEnd = reader.optionalBytes();
  const base = { result, target, key, ...(rangeEnd !== undefined ? { rangeEnd } : {}) };
  switch (target as CompareTarget) {
    case CompareTarget.Version:
      return { ...base, version: reader.number() };
    case CompareTarget.Create:
      return { ...base, createRevision: reader.number() };
    case CompareTarget.Mod:
      return { ...base, modRevision: reader.number() };
    case CompareTarget.Value:
      return { ...base, value: reader.bytes() };
    case CompareTarget.Lease:
      return { ...base, lease: reader.i64() };
  }
}

function writeTxn(writer: Writer, request: TxnRequest, depth: number): void {
  if (depth > NESTING_MAX) throw new Error('assertion failed: txn nested too deeply to encode');
  const compares = request.compare ?? [];
  writer.u32(compares.length);
  for (const compare of compares) writeCompare(writer, compare);
  for (const ops of [request.success ?? [], request.failure ?? []]) {
    writer.u32(ops.length);
    for (const op of ops) writeOp(writer, op, depth);
  }
}

function readTxn(reader: Reader, depth: number): TxnRequest {
  if (depth > NESTING_MAX) throw new DecodeError('txn-too-deep');
  const compare: Compare[] = [];
  const compareCount = reader.count();
  for (let i = 0; i < compareCount; i++) compare.push(readCompare(reader));
  const branches: RequestOp[][] = [];
  for (let branch = 0; branch < 2; branch++) {
    const ops: RequestOp[] = [];
    const count = reader.count();
    for (let i = 0; i < count; i++) ops.push(readOp(reader, depth));
    branches.push(ops);
  }
  return { compare, success: branches[0]!, failure: branches[1]! };
}

function writeOp(writer: Writer, op: RequestOp, depth: number): void {
  switch (op.kind) {
    case 'range':
      writer.u8(OP_RANGE);
      writeRange(writer, op.request);
      break;
    case 'put':
      writer.u8(KIND_PUT + 1);
      writePut(writer, op.request);
      break;
    case 'deleteRange':
      writer.u8(KIND_DELETE_RANGE + 1);
      writeDeleteRange(writer, op.request);
      break;
    case 'txn':
      writer.u8(KIND_TXN + 1);
      writeTxn(writer, op.request, depth + 1);
      break;
    case 'empty':
      writer.u8(OP_EMPTY);
      break;
  }
}

function readOp(reader: Reader, depth: number): RequestOp {
  const tag = reader.u8();
  switch (tag) {
    case OP_RANGE:
      return { kind: 'range', request: readRange(reader) };
    case KIND_PUT + 1:
      return { kind: 'put', request: readPut(reader) };
    case KIND_DELETE_RANGE + 1:
      return { kind: 'deleteRange', request: readDeleteRange(reader) };
    case KIND_TXN + 1:
      return { kind: 'txn', request: readTxn(reader, depth + 1) };
    case OP_EMPTY:
      return { kind: 'empty' };
    default:
      throw new DecodeError(`unknown-op-${tag}`);
  }
}

class DecodeError extends Error {}

/** A growable little-endian writer. */
class Writer {
  private buffer = Buffer.allocUnsafe(256);
  private length = 0;

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
  u8(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }
  u32(value: number): void {
    this.reserve(4);
    this.buffer.writeUInt32LE(value, this.length);
    this.length += 4;
  }
  u64(value: bigint): void {
    this.reserve(8);
    this.buffer.writeBigUInt64LE(BigInt.asUintN(64, value), this.length);
    this.length += 8;
  }
  number(value: number): void {
    this.reserve(8);
    this.buffer.writeDoubleLE(value, this.length);
    this.length += 8;
  }
  bytes(value: Uint8Array): void {
    this.u32(value.length);
    this.reserve(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }
  optionalBytes(value: Uint8Array | undefined): void {
    this.u8(value === undefined ? 0 : 1);
    if (value !== undefined) this.bytes(value);
  }
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

/** A bounds-checked little-endian reader over an entry's bytes. */
class Reader {
  private offset = 0;
  private readonly view: Buffer;

  constructor(data: Uint8Array) {
    this.view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  private need(bytes: number): void {
    if (this.offset + bytes > this.view.length) throw new DecodeError('truncated');
  }
  u8(): number {
    this.need(1);
    return this.view[this.offset++]!;
  }
  u32(): number {
    this.need(4);
    const value = this.view.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }
  /** A count of items; each takes at least one byte, which bounds allocations. */
  count(): number {
    const value = this.u32();
    if (value > this.view.length - this.offset) throw new DecodeError('bad-count');
    return value;
  }
  u64(): bigint {
    this.need(8);
    const value = this.view.readBigUInt64LE(this.offset);
    this.offset += 8;
    return value;
  }
  /** A signed 64-bit integer (lease IDs are etcd int64s). */
  i64(): bigint {
    return BigInt.asIntN(64, this.u64());
  }
  number(): number {
    this.need(8);
    const value = this.view.readDoubleLE(this.offset);
    this.offset += 8;
    if (!Number.isSafeInteger(value)) throw new DecodeError('bad-number');
    return value;
  }
  bytes(): Buffer {
    const length = this.u32();
    this.need(length);
    const value = this.view.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  optionalBytes(): Buffer | undefined {
    return this.u8() === 1 ? this.bytes() : undefined;
  }
  atEnd(): boolean {
    return this.offset === this.view.length;
  }
}
