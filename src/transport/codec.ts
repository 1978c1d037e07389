/**
 * The wire codec of the peer transport: Raft messages ⇄ protobuf bytes (proto/raft.proto).
 *
 * This is a gateway. Encoding trusts its input (it comes from the local Raft core) and only
 * asserts what would corrupt the wire (a node ID outside 64 bits). Decoding trusts nothing: every
 * failure — malformed protobuf, an unknown message or entry type, a missing required field, a
 * term or index beyond 2^53 - 1, an unknown rejection reason — becomes a `{ ok: false }` value,
 * never an exception, so a bad peer cannot crash this node.
 *
 * Node IDs are uint64 on the wire and bigints here; they cross through protobufjs's `Long`
 * representation bit for bit (high and low 32-bit halves), so IDs above 2^53 survive exactly.
 *
 * Cost: this is on the hot path (around 100k entries per second). Encoding builds one small plain
 * object per message and per entry and lets protobufjs's generated encoder write them; decoding
 * converts protobufjs's objects into the core's shapes with one pass. Byte fields (entry data,
 * context, snapshot data, chunk data) are decoded as VIEWS into the input buffer, not copies:
 * the caller MUST NOT reuse or mutate a buffer after decoding it.
 */
import {
  EntryType,
  MessageType,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RejectReason,
  type Snapshot,
} from '../raft/types';
import { raftProtoTypes } from './raft-proto';

/** The outcome of decoding untrusted bytes: the value, or why the bytes were refused. */
export type DecodeResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

/**
 * The opening of a snapshot transfer: the MsgSnap itself, the size of the body that follows and
 * its SHA-256 (64 lowercase hex digits).
 */
export interface SnapshotTransferHeader {
  readonly message: Message;
  /** 0 in a streamed transfer (the trailer carries it). */
  readonly bodyBytes: number;
  /** '' in a streamed transfer (the trailer carries it). */
  readonly sha256: string;
  /** The body is sent while it is still being produced; its size and digest follow it. */
  readonly streamed?: boolean;
}

/** The size and SHA-256 (64 lowercase hex digits) of a snapshot body. */
export interface SnapshotBodyDigest {
  readonly bodyBytes: number;
  readonly sha256: string;
}

/**
 * One `SnapshotChunk` on the wire. Invariant: `header` is set on the first chunk of a transfer
 * and on no other; `trailer` only on the last chunk of a streamed transfer, with no data;
 * `data` may be empty.
 */
export interface SnapshotChunk {
  readonly header?: SnapshotTransferHeader;
  readonly trailer?: SnapshotBodyDigest;
  readonly data: Uint8Array;
}

const UINT64_LIMIT = 1n << 64n;
const UINT32_LIMIT = 0x1_0000_0000;
/** The largest `high` half that still gives a safe JavaScript integer (2^53 - 1 overall). */
const SAFE_HIGH_MAX = 0x1f_ffff;
const EMPTY_BYTES = new Uint8Array(0);
const MESSAGE_TYPE_MAX = MessageType.MsgPropReject;
const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

const REJECT_REASONS: ReadonlySet<string> = new Set<RejectReason>([
  'no-leader',
  'proposal-forwarding-disabled',
  'uncommitted-size-exceeded',
  'leader-transfer-in-progress',
  'conf-change-pending',
  'conf-change-invalid',
  'removed-node',
  'not-a-member',
  'not-leader',
]);

/** A uint64 as protobufjs accepts it for encoding: the two 32-bit halves. */
interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned: true;
}

/** A uint64 as protobufjs decodes it: a `Long` (or a plain number if `long` were missing). */
type DecodedLong = number | { readonly low: number; readonly high: number };

/** Raised inside the decoder only; always converted into a `{ ok: false }` value. */
class DecodeFailure extends Error {}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function longOfNodeId(id: NodeId): LongBits | number {
  if (id < 0n || id >= UINT64_LIMIT) throw new Error(`assertion failed: node ID ${id} is outside uint64`);
  if (id === 0n) return 0;
  return { low: Number(id & 0xffff_ffffn) | 0, high: Number(id >> 32n) | 0, unsigned: true };
}

function wireEntry(entry: Entry): object {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data };
}

function wireConfState(confState: ConfState): object {
  return {
    voters: confState.voters.map(longOfNodeId),
    learners: confState.learners.map(longOfNodeId),
    removed: confState.removed.map(longOfNodeId),
  };
}

function wireSnapshot(snapshot: Snapshot): object {
  const metadata = snapshot.metadata;
  return {
    metadata: { confState: wireConfState(metadata.confState), index: metadata.index, term: metadata.term },
    data: snapshot.data,
  };
}

function wireMessage(message: Message): object {
  const entries = message.entries;
  const wireEntries = new Array<object>(entries.length);
  for (let i = 0; i < entries.length; i++) wireEntries[i] = wireEntry(entries[i]!);
  return {
    type: message.type,
    to: longOfNodeId(message.to),
    from: longOfNodeId(message.from),
    term: message.term,
    logTerm: message.logTerm,
    index: message.index,
    entries: wireEntries,
    commit: message.commit,
    snapshot: message.snapshot === undefined ? null : wireSnapshot(message.snapshot),
    reject: message.reject,
    rejectHint: message.rejectHint,
    context: message.context,
    reason: message.reason ?? '',
    commitOnly: message.commitOnly === true,
  };
}

/** Encodes one Raft message. Throws only on a bug (a node ID outside uint64). */
export function encodeMessage(message: Message): Uint8Array {
  return raftProtoTypes.Message.encode(wireMessage(message)).finish();
}

/** Encodes messages as one `MessageBatch`, preserving their order. Throws only on a bug. */
export function encodeMessageBatch(messages: readonly Message[]): Uint8Array {
  const wireMessages = new Array<object>(messages.length);
  for (let i = 0; i < messages.length; i++) wireMessages[i] = wireMessage(messages[i]!);
  return raftProtoTypes.MessageBatch.encode({ messages: wireMessages }).finish();
}

/** Encodes one snapshot chunk. Throws only on a bug. */
export function encodeSnapshotChunk(chunk: SnapshotChunk): Uint8Array {
  const { header, trailer } = chunk;
  const streamed = header?.streamed === true;
  const digest = trailer ?? (header === undefined || streamed ? undefined : header);
  return raftProtoTypes.SnapshotChunk.encode({
    message: header === undefined ? null : wireMessage(header.message),
    bodyBytes: digest?.bodyBytes ?? 0,
    sha256: digest?.sha256 ?? '',
    data: chunk.data,
    streamed,
  }).finish();
}

/**
 * A cheap upper estimate of a message's encoded size in bytes, used for queue accounting
 * without encoding. Counts payload bytes exactly and a fixed allowance for every header.
 */
export function estimateEncodedBytes(message: Message): number {
  let bytes = 96 + message.context.length;
  for (const entry of message.entries) bytes += 32 + entry.data.length;
  if (message.snapshot !== undefined) {
    const confState = message.snapshot.metadata.confState;
    bytes += 48 + message.snapshot.data.length;
    bytes += 11 * (confState.voters.length + confState.learners.length + confState.removed.length);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

function fail(error: string): never {
  throw new DecodeFailure(error);
}

function numberOf(value: DecodedLong, field: string): number {
  if (typeof value === 'number') return value;
  const high = value.high >>> 0;
  if (high > SAFE_HIGH_MAX) fail(`${field} exceeds 2^53 - 1`);
  return high * UINT32_LIMIT + (value.low >>> 0);
}

function nodeIdOf(value: DecodedLong): NodeId {
  if (typeof value === 'number') return BigInt(value);
  return (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
}

function bytesOf(value: Uint8Array): Uint8Array {
  // protobufjs decodes an absent bytes field as a shared empty array, and a present one as a
  // Buffer view of the input; both become plain Uint8Arrays here (no copy).
  if (value.length === 0) return EMPTY_BYTES;
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** The decoded shapes as protobufjs produces them (field names camelCased). */
interface DecodedEntry {
  readonly term: DecodedLong;
  readonly index: DecodedLong;
  readonly type: number;
  readonly data: Uint8Array;
}
interface DecodedConfState {
  readonly voters: readonly DecodedLong[];
  readonly learners: readonly DecodedLong[];
  readonly removed: readonly DecodedLong[];
}
interface DecodedSnapshot {
  readonly metadata: {
    readonly confState: DecodedConfState | null;
    readonly index: DecodedLong;
    readonly term: DecodedLong;
  } | null;
  readonly data: Uint8Array;
}
interface DecodedMessage {
  readonly type: number;
  readonly to: DecodedLong;
  readonly from: DecodedLong;
  readonly term: DecodedLong;
  readonly logTerm: DecodedLong;
  readonly index: DecodedLong;
  readonly entries: readonly DecodedEntry[];
  readonly commit: DecodedLong;
  readonly snapshot: DecodedSnapshot | null;
  readonly reject: boolean;
  readonly rejectHint: DecodedLong;
  readonly context: Uint8Array;
  readonly reason: string;
  readonly commitOnly: boolean;
}
interface DecodedSnapshotChunk {
  readonly message: DecodedMessage | null;
  readonly bodyBytes: DecodedLong;
  readonly sha256: string;
  readonly data: Uint8Array;
  readonly streamed?: boolean;
}

function entryOf(decoded: DecodedEntry): Entry {
  const type = decoded.type;
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) fail(`unknown entry type ${type}`);
  return {
    term: numberOf(decoded.term, 'entry term'),
    index: numberOf(decoded.index, 'entry index'),
    type,
    data: bytesOf(decoded.data),
  };
}

function snapshotOf(decoded: DecodedSnapshot): Snapshot {
  const metadata = decoded.metadata;
  if (metadata === null || metadata === undefined) fail('snapshot without metadata');
  const confState = metadata.confState;
  if (confState === null || confState === undefined) fail('snapshot metadata without conf_state');
  return {
    metadata: {
      index: numberOf(metadata.index, 'snapshot index'),
      term: numberOf(metadata.term, 'snapshot term'),
      confState: {
        voters: confState.voters.map(nodeIdOf),
        learners: confState.learners.map(nodeIdOf),
        removed: confState.removed.map(nodeIdOf),
      },
    },
    data: bytesOf(decoded.data),
  };
}

function messageOf(decoded: DecodedMessage): Message {
  const type = decoded.type;
  if (!Number.isInteger(type) || type < 0 || type > MESSAGE_TYPE_MAX) fail(`unknown message type ${type}`);
  const decodedEntries = decoded.entries;
  const entries = new Array<Entry>(decodedEntries.length);
  for (let i = 0; i < decodedEntries.length; i++) entries[i] = entryOf(decodedEntries[i]!);
  const message: Message = {
    type: type as MessageType,
    to: nodeIdOf(decoded.to),
    from: nodeIdOf(decoded.from),
    term: numberOf(decoded.term, 'term'),
    logTerm: numberOf(decoded.logTerm, 'log_term'),
    index: numberOf(decoded.index, 'index'),
    entries,
    commit: numberOf(decoded.commit, 'commit'),
    reject: decoded.reject,
    rejectHint: numberOf(decoded.rejectHint, 'reject_hint'),
    context: bytesOf(decoded.context),
  };
  if (decoded.snapshot !== null && decoded.snapshot !== undefined) message.snapshot = snapshotOf(decoded.snapshot);
  else if (type === MessageType.MsgSnap) fail('MsgSnap without snapshot');
  if (decoded.reason !== '') {
    if (!REJECT_REASONS.has(decoded.reason)) fail(`unknown reject reason ${JSON.stringify(decoded.reason)}`);
    message.reason = decoded.reason as RejectReason;
  }
  if (decoded.commitOnly) message.commitOnly = true;
  return message;
}

function decodeWith<T>(bytes: Uint8Array, convert: (bytes: Uint8Array) => T): DecodeResult<T> {
  try {
    return { ok: true, value: convert(bytes) };
  } catch (error) {
    // Either our own DecodeFailure or protobufjs refusing malformed input (index out of range,
    // invalid wire type, bad UTF-8, depth exceeded): the bytes are bad, never this node.
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Decodes and validates one Raft message. Never throws. */
export function decodeMessage(bytes: Uint8Array): DecodeResult<Message> {
  return decodeWith(bytes, (input) => messageOf(raftProtoTypes.Message.decode(input) as unknown as DecodedMessage));
}

/** Decodes and validates a `MessageBatch`; refuses the whole batch if any message is bad. Never throws. */
export function decodeMessageBatch(bytes: Uint8Array): DecodeResult<Message[]> {
  return decodeWith(bytes, (input) => {
    const decoded = raftProtoTypes.MessageBatch.decode(input) as unknown as { messages: readonly DecodedMessage[] };
    const messages = new Array<Message>(decoded.messages.length);
    for (let i = 0; i < decoded.messages.length; i++) messages[i] = messageOf(decoded.messages[i]!);
    return messages;
  });
}

/**
 * Decodes and validates one snapshot chunk. A chunk with a header must carry a MsgSnap, a body
 * size and a well-formed SHA-256; a chunk without one must not carry a size or checksum.
 * Never throws.
 */
export function decodeSnapshotChunk(bytes: Uint8Array): DecodeResult<SnapshotChunk> {
  return decodeWith(bytes, (input) => {
    const decoded = raftProtoTypes.SnapshotChunk.decode(input) as unknown as DecodedSnapshotChunk;
    const data = bytesOf(decoded.data);
    const bodyBytes = numberOf(decoded.bodyBytes, 'body_bytes');
    const streamed = decoded.streamed === true;
    if (decoded.message === null || decoded.message === undefined) {
      if (streamed) fail('snapshot chunk is marked streamed but has no message');
      if (bodyBytes === 0 && decoded.sha256 === '') return { data };
      // The trailer of a streamed transfer.
      if (data.length > 0) fail('snapshot trailer chunk carries data');
      if (!SHA256_HEX_PATTERN.test(decoded.sha256)) fail('snapshot trailer sha256 is not 64 lowercase hex digits');
      return { trailer: { bodyBytes, sha256: decoded.sha256 }, data };
    }
    const message = messageOf(decoded.message);
    if (message.type !== MessageType.MsgSnap) fail(`snapshot chunk carries message type ${message.type}, not MsgSnap`);
    if (streamed) {
      if (bodyBytes !== 0 || decoded.sha256 !== '') fail('streamed snapshot header has body_bytes or sha256 (they come in its trailer)');
      return { header: { message, bodyBytes: 0, sha256: '', streamed: true }, data };
    }
    if (!SHA256_HEX_PATTERN.test(decoded.sha256)) fail('snapshot chunk sha256 is not 64 lowercase hex digits');
    return { header: { message, bodyBytes, sha256: decoded.sha256 }, data };
  });
}
