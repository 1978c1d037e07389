import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EntryType, MessageType, type Message, type NodeId } from '../raft/types';
import { clusterIdFor } from './cluster-id';
import { encodeMessageBatch } from './codec';
import { STREAM_METHOD_PATH } from './raft-proto';
import type { SnapshotSink, SnapshotSource } from './transport';
import { GrpcTransport, type GrpcTransportOptions } from './transport-grpc';
import {
  FixedSnapshotSource,
  MemorySnapshotSink,
  RecordingHandler,
  RecordingLogger,
  UNUSED_SINK,
  UNUSED_SOURCE,
  makeMessage,
  makeSnapshotMessage,
  sha256Hex,
  waitFor,
} from './transport-test-support';

const A = 0xfedcba9876543210n;
const B = 2n;
const C = 0x8000000000000001n;
const CLUSTER_ID = clusterIdFor([A, B, C], 'transport-test');

interface Node {
  transport: GrpcTransport;
  handler: RecordingHandler;
  logger: RecordingLogger;
  url: string;
}

const running: GrpcTransport[] = [];
const clients: grpc.Client[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(running.splice(0).map((transport) => transport.stop()));
});

async function startNode(
  selfId: NodeId,
  options: Partial<GrpcTransportOptions> & { snapshotSource?: SnapshotSource; snapshotSink?: SnapshotSink } = {},
): Promise<Node> {
  const handler = new RecordingHandler();
  const logger = new RecordingLogger();
  const transport = new GrpcTransport({
    selfId,
    clusterId: CLUSTER_ID,
    listenHost: '127.0.0.1',
    listenPort: 0,
    handler,
    snapshotSource: UNUSED_SOURCE,
    snapshotSink: UNUSED_SINK,
    logger,
    reconnectDelayInitialMs: 20,
    reconnectDelayMaxMs: 200,
    random: () => 0.5,
    ...options,
  });
  running.push(transport);
  await transport.start();
  return { transport, handler, logger, url: `http://127.0.0.1:${transport.port}` };
}

function connect(a: Node, aId: NodeId, b: Node, bId: NodeId): void {
  a.transport.addPeer(bId, b.url);
  b.transport.addPeer(aId, a.url);
}

function app(from: NodeId, to: NodeId, index: number): Message {
  return makeMessage({
    type: MessageType.MsgApp,
    from,
    to,
    term: 7,
    index,
    entries: [{ term: 7, index: index + 1, type: EntryType.Normal, data: new TextEncoder().encode(`entry-${index}`) }],
  });
}

function indexes(messages: readonly Message[]): number[] {
  return messages.map((m) => m.index);
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

describe('GrpcTransport: message streams', () => {
  it('three nodes exchange messages in both directions, in order', async () => {
    const a = await startNode(A);
    const b = await startNode(B);
    const c = await startNode(C);
    connect(a, A, b, B);
    connect(a, A, c, C);
    connect(b, B, c, C);
    // Sent in several turns, interleaved, before and after the streams connect.
    for (let round = 0; round < 10; round++) {
      const base = round * 100;
      a.transport.send([...range(base, 100).map((i) => app(A, B, i)), ...range(base, 100).map((i) => app(A, C, i))]);
      b.transport.send(range(base, 100).map((i) => app(B, A, i)));
      c.transport.send(range(base, 100).map((i) => app(C, A, i)));
      c.transport.send(range(base, 100).map((i) => app(C, B, i)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const expected = range(0, 1000);
    await waitFor(
      () =>
        a.handler.messages.length === 2000 && b.handler.messages.length === 2000 && c.handler.messages.length === 1000,
      'all 5000 messages',
    );
    assert.deepStrictEqual(indexes(b.handler.from(A)), expected);
    assert.deepStrictEqual(indexes(c.handler.from(A)), expected);
    assert.deepStrictEqual(indexes(a.handler.from(B)), expected);
    assert.deepStrictEqual(indexes(a.handler.from(C)), expected);
    assert.deepStrictEqual(indexes(b.handler.from(C)), expected);
    const sample = b.handler.from(A)[5]!;
    assert.deepStrictEqual(sample, app(A, B, 5));
    assert.equal(sample.from, A); // 64-bit ID intact
    assert.deepStrictEqual(a.handler.unreachable, []);
  });

  it('delivers from a sender this node does not know yet', async () => {
    const a = await startNode(A);
    const b = await startNode(B);
    a.transport.addPeer(B, b.url); // b has no peer A (A was just added on its own side)
    a.transport.send([app(A, B, 1), app(A, B, 2)]);
    await waitFor(() => b.handler.messages.length === 2, 'delivery from an unknown sender');
    assert.deepStrictEqual(indexes(b.handler.messages), [1, 2]);
  });

  it('never throws from send: unknown peers and local kinds are dropped, unknown peers reported', async () => {
    const a = await startNode(A);
    assert.doesNotThrow(() =>
      a.transport.send([
        app(A, 99n, 1),
        makeMessage({ type: MessageType.MsgHup, from: A, to: A }),
        makeSnapshotMessage(A, 98n, 1),
      ]),
    );
    // Callbacks never run inside send().
    assert.deepStrictEqual(a.handler.unreachable, []);
    await waitFor(() => a.handler.unreachable.length === 1 && a.handler.snapshotReports.length === 1, 'reports');
    assert.deepStrictEqual(a.handler.unreachable, [99n]);
    assert.deepStrictEqual(a.handler.snapshotReports, [{ id: 98n, outcome: 'failure' }]);
  });

  it('queues for a peer that is down, drops at the bound, and delivers after it starts', async () => {
    const a = await startNode(A, { queueMessagesMax: 10 });
    // Learn a free port, then free it: B is "down" at that address.
    const probe = await startNode(B);
    const port = probe.transport.port;
    await probe.transport.stop();
    a.transport.addPeer(B, `http://127.0.0.1:${port}`);
    a.transport.send(range(0, 25).map((i) => app(A, B, i)));
    await waitFor(() => a.handler.unreachable.includes(B), 'reportUnreachable after drops');
    assert.equal(a.transport.queuedMessages(B), 10);
    // Failed connection attempts are reported too, and the queue stays bounded.
    const reportsBefore = a.handler.unreachable.length;
    await waitFor(() => a.handler.unreachable.length > reportsBefore, 'reportUnreachable after failed attempts');
    assert.equal(a.transport.queuedMessages(B), 10);

    const b = await startNode(B, { listenPort: port });
    await waitFor(() => b.handler.messages.length === 10, 'the queued messages after reconnect', 15_000);
    assert.deepStrictEqual(indexes(b.handler.messages), range(0, 10));
    a.transport.send([app(A, B, 100)]);
    await waitFor(() => b.handler.messages.length === 11, 'a new message after reconnect');
    assert.deepStrictEqual(indexes(b.handler.messages), [...range(0, 10), 100]);
    assert.equal(a.transport.isConnected(B), true);
  });

  it('bounds the queue by bytes as well as by count', async () => {
    const a = await startNode(A, { queueBytesMax: 2000 });
    const probe = await startNode(B);
    const port = probe.transport.port;
    await probe.transport.stop();
    a.transport.addPeer(B, `http://127.0.0.1:${port}`);
    const big = (index: number): Message =>
      makeMessage({
        type: MessageType.MsgApp,
        from: A,
        to: B,
        index,
        entries: [{ term: 1, index: index + 1, type: EntryType.Normal, data: new Uint8Array(600) }],
      });
    a.transport.send(range(0, 10).map(big));
    await waitFor(() => a.handler.unreachable.includes(B), 'reportUnreachable after drops');
    // Each message is estimated at 600 + 32 + 96 = 728 bytes: two fit in 2000, a third does not.
    assert.equal(a.transport.queuedMessages(B), 2);
  });

  /** Connects `a` and `b`, delivers one message to `b`, stops `b` and waits until `a` saw the stream break; returns `b`'s port. */
  async function breakEstablishedStream(a: Node, b: Node): Promise<number> {
    connect(a, A, b, B);
    a.transport.send([app(A, B, 1)]);
    await waitFor(() => b.handler.messages.length === 1, 'first delivery');
    const port = b.transport.port;
    await b.transport.stop();
    await waitFor(() => a.handler.unreachable.includes(B), 'reportUnreachable on break');
    return port;
  }

  it('reports unreachable when an established stream breaks, and reconnects', async () => {
    const a = await startNode(A);
    const port = await breakEstablishedStream(a, await startNode(B));
    const b2 = await startNode(B, { listenPort: port });
    a.transport.send([app(A, B, 2)]);
    await waitFor(() => b2.handler.messages.length === 1, 'delivery after restart', 15_000);
    assert.equal(b2.handler.messages[0]!.index, 2);
  });

  it('a restarted peer that opens its stream to us is reconnected at once, not after the reconnect delay', async () => {
    // A waits 90 s (120 s cap, jitter fixed at one half) between attempts: only the restarted
    // peer's own stream can make A try again within the test's deadline.
    const slow = { reconnectDelayInitialMs: 120_000, reconnectDelayMaxMs: 120_000 };
    const a = await startNode(A, slow);
    const port = await breakEstablishedStream(a, await startNode(B));
    a.transport.send([app(A, B, 2)]);
    const b2 = await startNode(B, { listenPort: port });
    b2.transport.addPeer(A, a.url);
    await waitFor(() => b2.handler.messages.length === 1, 'delivery once the restarted peer reached A', 20_000);
    assert.equal(b2.handler.messages[0]!.index, 2);
    assert.ok(a.logger.records.some((record) => record.message === 'peer reached us: reconnecting at once'));
  });

  it('updatePeer moves a peer to a new URL and keeps its queue', async () => {
    const a = await startNode(A);
    const probe = await startNode(C);
    const deadPort = probe.transport.port;
    await probe.transport.stop();
    const b = await startNode(B);
    a.transport.addPeer(B, `http://127.0.0.1:${deadPort}`);
    a.transport.send([app(A, B, 1), app(A, B, 2)]);
    await waitFor(() => a.handler.unreachable.includes(B), 'the wrong address fails');
    assert.equal(a.transport.queuedMessages(B), 2);
    a.transport.updatePeer(B, b.url);
    await waitFor(() => b.handler.messages.length === 2, 'delivery at the new address');
    assert.deepStrictEqual(indexes(b.handler.messages), [1, 2]);
  });

  it('refuses a stream from another cluster with FAILED_PRECONDITION', async () => {
    const a = await startNode(A, { clusterId: clusterIdFor([A, B, C], 'another-token') });
    const b = await startNode(B);
    connect(a, A, b, B);
    a.transport.send([app(A, B, 1)]);
    await waitFor(() => b.logger.warnings('cluster ID mismatch').length > 0, 'refusal logged by the receiver');
    await waitFor(() => a.logger.warnings('cluster ID mismatch').length > 0, 'refusal seen by the sender');
    const seen = a.logger.warnings('cluster ID mismatch')[0]!;
    assert.equal(seen.fields?.['code'], grpc.status.FAILED_PRECONDITION);
    await waitFor(() => a.handler.unreachable.includes(B), 'reportUnreachable');
    assert.deepStrictEqual(b.handler.messages, []);
    assert.deepStrictEqual(a.handler.removedBy, [], 'another cluster is not a removal');
  });

  it('refuses a removed member, from the moment of removePeer', async () => {
    const a = await startNode(A);
    const b = await startNode(B);
    connect(a, A, b, B);
    a.transport.send([app(A, B, 1)]);
    await waitFor(() => b.handler.messages.length === 1, 'delivery before removal');
    b.transport.removePeer(A);
    await waitFor(() => a.handler.unreachable.includes(B), 'the stream ended by the removal');
    a.transport.send([app(A, B, 2), app(A, B, 3)]);
    await waitFor(() => b.logger.warnings('was removed').length >= 2, 'later streams refused');
    assert.equal(a.logger.warnings('was removed')[0]?.fields?.['code'], grpc.status.FAILED_PRECONDITION);
    assert.deepStrictEqual(indexes(b.handler.messages), [1]);
    // The removed member learns it from the refusal (etcd stops a member told it was removed).
    assert.ok(a.handler.removedBy.includes(B));
  });

  it('refuses a member the isRemoved callback reports as removed', async () => {
    const a = await startNode(A);
    const b = await startNode(B, { isRemoved: (id) => id === A });
    connect(a, A, b, B);
    a.transport.send([app(A, B, 1)]);
    await waitFor(() => b.logger.warnings('was removed').length > 0, 'refusal');
    assert.deepStrictEqual(b.handler.messages, []);
  });

  it('refuses a stream aimed at another member', async () => {
    const a = await startNode(A);
    const b = await startNode(B);
    a.transport.addPeer(C, b.url); // a believes C lives at b's address
    a.transport.send([app(A, C, 1)]);
    await waitFor(() => b.logger.warnings('target ID mismatch').length > 0, 'refusal');
    assert.deepStrictEqual(b.handler.messages, []);
  });

  it('ends a stream that carries garbage, a wrong "to" or a forged "from", delivering nothing of it', async () => {
    const b = await startNode(B);
    const client = new grpc.Client(`127.0.0.1:${b.transport.port}`, grpc.credentials.createInsecure());
    clients.push(client);
    const open = (): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => {
        const metadata = new grpc.Metadata();
        metadata.set('raftkv-cluster-id', CLUSTER_ID.toString());
        metadata.set('raftkv-sender-id', A.toString());
        metadata.set('raftkv-target-id', B.toString());
        const call = client.makeClientStreamRequest<Buffer, object>(
          STREAM_METHOD_PATH,
          (value) => value,
          () => ({}),
          metadata,
          (error) => resolve(error),
        );
        pending.push(call);
      });
    const pending: grpc.ClientWritableStream<Buffer>[] = [];
    const cases: { bytes: Uint8Array; code: grpc.status; details: RegExp }[] = [
      { bytes: new Uint8Array([0xff, 0xff, 0xff]), code: grpc.status.INVALID_ARGUMENT, details: /bad MessageBatch/ },
      { bytes: encodeMessageBatch([app(A, C, 1)]), code: grpc.status.FAILED_PRECONDITION, details: /message to/ },
      { bytes: encodeMessageBatch([app(C, B, 1)]), code: grpc.status.INVALID_ARGUMENT, details: /message from/ },
      {
        bytes: encodeMessageBatch([app(A, B, 1), makeMessage({ type: MessageType.MsgBeat, from: A, to: B })]),
        code: grpc.status.INVALID_ARGUMENT,
        details: /local message type/,
      },
    ];
    for (const testCase of cases) {
      const ended = open();
      pending.at(-1)!.write(Buffer.from(testCase.bytes));
      const error = await ended;
      assert.equal(error?.code, testCase.code);
      assert.match(error?.details ?? '', testCase.details);
    }
    assert.deepStrictEqual(b.handler.messages, []);
  });
});

describe('GrpcTransport: snapshots', () => {
  it('streams a 10 MB body; the MsgSnap arrives only after the sink stored it; heartbeats are not stalled', async () => {
    const body = randomBytes(10 * 1024 * 1024);
    const source = new FixedSnapshotSource(body, 1024 * 1024 + 7);
    let b: Node | undefined;
    let heartbeatSent = false;
    const sink = new MemorySnapshotSink({
      // Hold the transfer after its first chunk until a heartbeat sent after it has arrived.
      beforeEachChunk: async (chunkNumber) => {
        if (chunkNumber !== 1) return;
        heartbeatSent = true;
        a.transport.send([makeMessage({ type: MessageType.MsgHeartbeat, from: A, to: B, term: 3 })]);
        await waitFor(() => b!.handler.from(A, MessageType.MsgHeartbeat).length === 1, 'heartbeat during snapshot');
      },
    });
    const a = await startNode(A, { snapshotSource: source });
    b = await startNode(B, { snapshotSink: sink });
    connect(a, A, b, B);
    b.handler.onEachMessage = (message) => {
      if (message.type === MessageType.MsgSnap) assert.equal(sink.stored.length, 1, 'MsgSnap before the body was stored');
    };
    const snapshotMessage = makeSnapshotMessage(A, B, 42);
    a.transport.send([snapshotMessage]);
    await waitFor(() => a.handler.snapshotReports.length === 1, 'snapshot outcome', 30_000);
    assert.deepStrictEqual(a.handler.snapshotReports, [{ id: B, outcome: 'finish' }]);
    assert.equal(heartbeatSent, true);
    assert.equal(sink.stored.length, 1);
    assert.equal(sink.stored[0]!.body.length, body.length);
    assert.equal(sha256Hex(sink.stored[0]!.body), sha256Hex(body));
    assert.ok(sink.chunkCount >= 40, `chunks of at most 256 KiB, got ${sink.chunkCount}`);
    assert.deepStrictEqual(b.handler.from(A, MessageType.MsgSnap), [snapshotMessage]);
  });

  it('streams a body whose size and digest are known only after it, and hands Raft the message the sink returns', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 5);
    const source = new FixedSnapshotSource(body, 512 * 1024 + 3, false, {});
    const sink = new MemorySnapshotSink();
    const rewritten: Message[] = [];
    const rewriting: SnapshotSink = {
      receive: async (message, expected, chunks) => {
        await sink.receive(message, expected, chunks);
        const delivered = { ...message, context: new Uint8Array([42]) };
        rewritten.push(delivered);
        return delivered;
      },
    };
    const a = await startNode(A, { snapshotSource: source });
    const b = await startNode(B, { snapshotSink: rewriting });
    connect(a, A, b, B);
    a.transport.send([makeSnapshotMessage(A, B, 77)]);
    await waitFor(() => a.handler.snapshotReports.length === 1, 'snapshot outcome', 30_000);
    assert.deepStrictEqual(a.handler.snapshotReports, [{ id: B, outcome: 'finish' }]);
    assert.equal(sha256Hex(sink.stored[0]!.body), sha256Hex(body));
    assert.deepStrictEqual(b.handler.from(A, MessageType.MsgSnap), rewritten, 'the sink\'s message reached Raft');
    const sent = a.logger.records.find((record) => record.message === 'snapshot sent')?.fields;
    assert.equal(sent?.['streamed'], true);
    assert.equal(sent?.['bodyBytes'], body.length);
  });

  it('refuses a streamed body whose trailer does not match it, and delivers no MsgSnap', async () => {
    const body = randomBytes(700_000);
    for (const digestAfterBody of [{ bodyBytes: body.length, sha256: sha256Hex(randomBytes(10)) }, { bodyBytes: body.length + 1, sha256: sha256Hex(body) }]) {
      await assertTransferRefused(new FixedSnapshotSource(body, 100_000, false, { digestAfterBody }));
    }
  });

  it('reports failure when the sink rejects, and delivers no MsgSnap', async () => {
    const a = await assertTransferRefused(new FixedSnapshotSource(randomBytes(300_000)), new MemorySnapshotSink({ reject: true }));
    assert.match(String(a.logger.warnings('snapshot send failed')[0]?.fields?.['details']), /sink refuses/);
  });

  it('reports failure when the source cannot open the snapshot', async () => {
    const a = await startNode(A, { snapshotSource: new FixedSnapshotSource(new Uint8Array(10), 10, true) });
    const b = await startNode(B, { snapshotSink: new MemorySnapshotSink() });
    connect(a, A, b, B);
    a.transport.send([makeSnapshotMessage(A, B, 5)]);
    await waitFor(() => a.handler.snapshotReports.length === 1, 'snapshot outcome');
    assert.deepStrictEqual(a.handler.snapshotReports, [{ id: B, outcome: 'failure' }]);
  });

  it('reports failure when the source announces a wrong size, and the sink stores nothing', async () => {
    const lying: SnapshotSource = {
      open: async () => {
        const body = randomBytes(1000);
        async function* pieces(): AsyncGenerator<Uint8Array> {
          yield body;
        }
        return { bodyBytes: 2000, sha256: sha256Hex(body), body: pieces() };
      },
    };
    await assertTransferRefused(lying);
  });
});

/**
 * Sends a snapshot from `source` to a fresh receiver with `sink`: the transfer fails, nothing is
 * stored, no MsgSnap reaches Raft. Returns the sender.
 */
async function assertTransferRefused(source: SnapshotSource, sink = new MemorySnapshotSink()): Promise<Node> {
  const a = await startNode(A, { snapshotSource: source });
  const b = await startNode(B, { snapshotSink: sink });
  connect(a, A, b, B);
  a.transport.send([makeSnapshotMessage(A, B, 5)]);
  await waitFor(() => a.handler.snapshotReports.length === 1, 'snapshot outcome');
  assert.deepStrictEqual(a.handler.snapshotReports, [{ id: B, outcome: 'failure' }]);
  assert.equal(sink.stored.length, 0);
  assert.deepStrictEqual(b.handler.messages, []);
  return a;
}
