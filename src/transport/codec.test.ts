import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { EntryType, MessageType, type Message, type RejectReason } from '../raft/types';
import {
  decodeMessage,
  decodeMessageBatch,
  decodeSnapshotChunk,
  encodeMessage,
  encodeMessageBatch,
  encodeSnapshotChunk,
  estimateEncodedBytes,
} from './codec';
import { raftProtoTypes } from './raft-proto';
import { makeMessage, makeSnapshotMessage, sha256Hex } from './transport-test-support';

const BIG_ID = 0xfedcba9876543210n;
const MAX_ID = (1n << 64n) - 1n;

/** A message of `type` with every field set to something distinct and non-zero. */
function fullMessage(type: MessageType): Message {
  const message: Message = {
    type,
    to: BIG_ID,
    from: MAX_ID,
    term: 2 ** 53 - 1,
    logTerm: 41,
    index: 1_000_000_007,
    entries: [
      { term: 40, index: 1_000_000_008, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) },
      { term: 41, index: 1_000_000_009, type: EntryType.ConfChange, data: new Uint8Array([0xff]) },
      { term: 41, index: 1_000_000_010, type: EntryType.Normal, data: new Uint8Array(0) },
    ],
    commit: 999,
    snapshot: {
      metadata: { index: 77, term: 5, confState: { voters: [1n, BIG_ID], learners: [MAX_ID], removed: [3n, 2n ** 53n + 1n] } },
      data: new Uint8Array([9, 8, 7]),
    },
    reject: true,
    rejectHint: 12,
    context: new TextEncoder().encode('transfer'),
    reason: 'not-leader',
    commitOnly: true,
  };
  return message;
}

function roundTrip(message: Message): Message {
  const decoded = decodeMessage(encodeMessage(message));
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.error);
  return decoded.value;
}

/** Encodes a raw protobuf Message object (bypassing our encoder) to feed the decoder bad input. */
function rawMessageBytes(fields: Record<string, unknown>): Uint8Array {
  return raftProtoTypes.Message.encode(fields).finish();
}

function assertDecodeError(bytes: Uint8Array, pattern: RegExp): void {
  const decoded = decodeMessage(bytes);
  assert.equal(decoded.ok, false);
  if (!decoded.ok) assert.match(decoded.error, pattern);
}

describe('codec: Message round trip', () => {
  for (let type = 0; type <= MessageType.MsgPropReject; type++) {
    it(`keeps every field of ${MessageType[type]}`, () => {
      const message = fullMessage(type);
      assert.deepStrictEqual(roundTrip(message), message);
    });
  }

  it('keeps a message whose fields are all zero or empty', () => {
    const message = makeMessage({ type: MessageType.MsgHeartbeat, to: 0n, from: 0n });
    assert.deepStrictEqual(roundTrip(message), message);
  });

  it('keeps an empty conf state and empty snapshot data', () => {
    const message = makeMessage({
      type: MessageType.MsgSnap,
      to: 2n,
      from: 1n,
      snapshot: { metadata: { index: 0, term: 0, confState: { voters: [], learners: [], removed: [] } }, data: new Uint8Array(0) },
    });
    assert.deepStrictEqual(roundTrip(message), message);
  });

  it('carries node IDs above 2^53 bit for bit', () => {
    for (const id of [1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, BIG_ID, MAX_ID]) {
      const decoded = roundTrip(makeMessage({ type: MessageType.MsgVote, to: id, from: MAX_ID - id + 1n }));
      assert.equal(decoded.to, id);
      assert.equal(decoded.from, MAX_ID - id + 1n);
    }
  });

  it('keeps every rejection reason', () => {
    const reasons: RejectReason[] = [
      'no-leader',
      'proposal-forwarding-disabled',
      'uncommitted-size-exceeded',
      'leader-transfer-in-progress',
      'conf-change-pending',
      'conf-change-invalid',
      'removed-node',
      'not-a-member',
      'not-leader',
    ];
    for (const reason of reasons) {
      const message = makeMessage({ type: MessageType.MsgPropReject, to: 1n, from: 2n, reason });
      assert.equal(roundTrip(message).reason, reason);
    }
  });

  it('decodes byte fields as plain Uint8Arrays', () => {
    const decoded = roundTrip(fullMessage(MessageType.MsgApp));
    assert.equal(Object.getPrototypeOf(decoded.context), Uint8Array.prototype);
    assert.equal(Object.getPrototypeOf(decoded.entries[0]!.data), Uint8Array.prototype);
  });

  it('refuses to encode a node ID outside uint64 (a bug)', () => {
    assert.throws(() => encodeMessage(makeMessage({ type: MessageType.MsgApp, to: 1n << 64n, from: 1n })), /outside uint64/);
    assert.throws(() => encodeMessage(makeMessage({ type: MessageType.MsgApp, to: -1n, from: 1n })), /outside uint64/);
  });

  it('estimates at least the encoded size', () => {
    for (let type = 0; type <= MessageType.MsgPropReject; type++) {
      const message = fullMessage(type);
      assert.ok(estimateEncodedBytes(message) >= encodeMessage(message).length, MessageType[type]);
    }
    const big = makeMessage({
      type: MessageType.MsgApp,
      to: MAX_ID,
      from: MAX_ID,
      term: 2 ** 53 - 1,
      entries: Array.from({ length: 100 }, (_, i) => ({
        term: 2 ** 53 - 1,
        index: 2 ** 53 - 1 - i,
        type: EntryType.ConfChange,
        data: new Uint8Array(i * 10),
      })),
    });
    assert.ok(estimateEncodedBytes(big) >= encodeMessage(big).length);
  });
});

describe('codec: MessageBatch', () => {
  it('keeps messages and their order', () => {
    const messages = Array.from({ length: 50 }, (_, i) => fullMessage((i % 20) as MessageType));
    const decoded = decodeMessageBatch(encodeMessageBatch(messages));
    assert.ok(decoded.ok);
    assert.deepStrictEqual(decoded.value, messages);
  });

  it('round-trips an empty batch', () => {
    const decoded = decodeMessageBatch(encodeMessageBatch([]));
    assert.deepStrictEqual(decoded, { ok: true, value: [] });
  });

  it('refuses a whole batch when one message is bad', () => {
    const good = { type: MessageType.MsgApp, to: 1, from: 2 };
    const bytes = raftProtoTypes.MessageBatch.encode({ messages: [good, { type: 42 }, good] }).finish();
    const decoded = decodeMessageBatch(bytes);
    assert.equal(decoded.ok, false);
  });
});

describe('codec: refusing bad input', () => {
  it('refuses an unknown message type', () => {
    assertDecodeError(rawMessageBytes({ type: 20, to: 1, from: 2 }), /unknown message type 20/);
    assertDecodeError(rawMessageBytes({ type: -1, to: 1, from: 2 }), /unknown message type -1/);
  });

  it('refuses an unknown entry type', () => {
    assertDecodeError(rawMessageBytes({ type: 3, entries: [{ term: 1, index: 1, type: 7 }] }), /unknown entry type 7/);
  });

  it('refuses MsgSnap without a snapshot, and a snapshot without metadata or conf state', () => {
    assertDecodeError(rawMessageBytes({ type: MessageType.MsgSnap, to: 1, from: 2 }), /MsgSnap without snapshot/);
    assertDecodeError(rawMessageBytes({ type: MessageType.MsgSnap, snapshot: { data: [1] } }), /without metadata/);
    assertDecodeError(
      rawMessageBytes({ type: MessageType.MsgSnap, snapshot: { metadata: { index: 1, term: 1 } } }),
      /without conf_state/,
    );
  });

  it('refuses terms and indexes beyond 2^53 - 1', () => {
    const tooBig = { low: 0, high: 0x20_0000, unsigned: true };
    assertDecodeError(rawMessageBytes({ type: 3, term: tooBig }), /term exceeds/);
    assertDecodeError(rawMessageBytes({ type: 3, index: tooBig }), /index exceeds/);
    assertDecodeError(rawMessageBytes({ type: 3, entries: [{ term: 1, index: tooBig }] }), /entry index exceeds/);
  });

  it('refuses an unknown rejection reason', () => {
    assertDecodeError(rawMessageBytes({ type: 19, reason: 'because' }), /unknown reject reason/);
  });

  it('refuses garbage bytes without throwing', () => {
    assertDecodeError(new Uint8Array([0xff, 0xff, 0xff]), /./);
    assertDecodeError(new TextEncoder().encode('hello world garbage bytes'), /./);
    const encoded = encodeMessage(fullMessage(MessageType.MsgApp));
    assertDecodeError(encoded.subarray(0, encoded.length - 1), /./);
  });

  it('never throws on random input or on any truncation', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = randomBytes(1 + (i % 64));
      assert.doesNotThrow(() => decodeMessage(bytes));
      assert.doesNotThrow(() => decodeMessageBatch(bytes));
      assert.doesNotThrow(() => decodeSnapshotChunk(bytes));
    }
    const encoded = encodeMessageBatch([fullMessage(MessageType.MsgApp), fullMessage(MessageType.MsgSnap)]);
    for (let length = 0; length < encoded.length; length++) {
      assert.doesNotThrow(() => decodeMessageBatch(encoded.subarray(0, length)));
    }
  });
});

describe('codec: SnapshotChunk', () => {
  it('round-trips the first chunk with its header', () => {
    const body = new Uint8Array([1, 2, 3, 4]);
    const header = { message: makeSnapshotMessage(BIG_ID, MAX_ID, 9), bodyBytes: 10 * 1024 * 1024, sha256: sha256Hex(body) };
    const decoded = decodeSnapshotChunk(encodeSnapshotChunk({ header, data: body }));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.error);
    assert.deepStrictEqual(decoded.value, { header, data: body });
  });

  it('round-trips a data-only chunk', () => {
    const data = randomBytes(1000);
    const decoded = decodeSnapshotChunk(encodeSnapshotChunk({ data }));
    assert.ok(decoded.ok);
    assert.deepStrictEqual(Buffer.from(decoded.value.data), data);
    assert.equal(decoded.value.header, undefined);
  });

  it('refuses a header that is not a MsgSnap or has a malformed checksum', () => {
    const notSnap = makeMessage({ type: MessageType.MsgApp, to: 1n, from: 2n });
    const bad1 = decodeSnapshotChunk(encodeSnapshotChunk({ header: { message: notSnap, bodyBytes: 1, sha256: 'a'.repeat(64) }, data: new Uint8Array(0) }));
    assert.equal(bad1.ok, false);
    const snap = makeSnapshotMessage(1n, 2n, 3);
    const bad2 = decodeSnapshotChunk(encodeSnapshotChunk({ header: { message: snap, bodyBytes: 1, sha256: 'XYZ' }, data: new Uint8Array(0) }));
    assert.equal(bad2.ok, false);
    const bad3 = decodeSnapshotChunk(raftProtoTypes.SnapshotChunk.encode({ bodyBytes: 5 }).finish());
    assert.equal(bad3.ok, false);
  });

  it('round-trips the header and the trailer of a streamed transfer', () => {
    const header = { message: makeSnapshotMessage(BIG_ID, MAX_ID, 9), bodyBytes: 0, sha256: '', streamed: true };
    const first = decodeSnapshotChunk(encodeSnapshotChunk({ header, data: new Uint8Array([7]) }));
    assert.ok(first.ok, first.ok ? '' : first.error);
    assert.deepStrictEqual(first.value, { header, data: new Uint8Array([7]) });
    const trailer = { bodyBytes: 300_000_000, sha256: 'c'.repeat(64) };
    const last = decodeSnapshotChunk(encodeSnapshotChunk({ trailer, data: new Uint8Array(0) }));
    assert.ok(last.ok, last.ok ? '' : last.error);
    assert.deepStrictEqual(last.value.trailer, trailer);
    assert.equal(last.value.header, undefined);
  });

  it('refuses a streamed header with a size or digest, a trailer with data or a bad digest, and streamed without a message', () => {
    const snap = wireMessageOf(makeSnapshotMessage(1n, 2n, 3));
    const cases = [
      { message: snap, streamed: true, bodyBytes: 10 },
      { message: snap, streamed: true, sha256: 'a'.repeat(64) },
      { bodyBytes: 10, sha256: 'a'.repeat(64), data: new Uint8Array([1]) },
      { bodyBytes: 10, sha256: 'not hex' },
      { streamed: true, data: new Uint8Array([1]) },
    ];
    for (const fields of cases) {
      const decoded = decodeSnapshotChunk(raftProtoTypes.SnapshotChunk.encode(fields).finish());
      assert.equal(decoded.ok, false, JSON.stringify(Object.keys(fields)));
    }
  });
});

/** The wire form of `message` (as the SnapshotChunk's `message` field), for hand-built chunks. */
function wireMessageOf(message: Message): unknown {
  const encoded = encodeSnapshotChunk({ header: { message, bodyBytes: 1, sha256: 'a'.repeat(64) }, data: new Uint8Array(0) });
  return (raftProtoTypes.SnapshotChunk.decode(encoded) as unknown as { message: unknown }).message;
}
