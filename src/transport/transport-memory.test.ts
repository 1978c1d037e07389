import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { MessageType, type Message, type NodeId } from '../raft/types';
import type { SnapshotSink, SnapshotSource } from './transport';
import { MemoryNetwork, MemoryTransport } from './transport-memory';
import {
  FixedSnapshotSource,
  MemorySnapshotSink,
  RecordingHandler,
  UNUSED_SINK,
  UNUSED_SOURCE,
  makeMessage,
  makeSnapshotMessage,
  settle,
  waitFor,
} from './transport-test-support';

const running: MemoryTransport[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((transport) => transport.stop()));
});

async function cluster(
  network: MemoryNetwork,
  ids: readonly NodeId[],
  snapshots: { source?: SnapshotSource; sink?: SnapshotSink } = {},
): Promise<Map<NodeId, { transport: MemoryTransport; handler: RecordingHandler }>> {
  const nodes = new Map<NodeId, { transport: MemoryTransport; handler: RecordingHandler }>();
  for (const id of ids) {
    const handler = new RecordingHandler();
    const transport = new MemoryTransport(network, {
      selfId: id,
      handler,
      snapshotSource: snapshots.source ?? UNUSED_SOURCE,
      snapshotSink: snapshots.sink ?? UNUSED_SINK,
    });
    await transport.start();
    running.push(transport);
    nodes.set(id, { transport, handler });
  }
  for (const id of ids) {
    for (const peer of ids) if (peer !== id) nodes.get(id)!.transport.addPeer(peer, `memory://${peer}`);
  }
  return nodes;
}

function heartbeat(from: NodeId, to: NodeId, term: number): Message {
  return makeMessage({ type: MessageType.MsgHeartbeat, from, to, term });
}

describe('MemoryTransport', () => {
  it('delivers in order, asynchronously', async () => {
    const network = new MemoryNetwork();
    const nodes = await cluster(network, [1n, 2n, 3n]);
    const one = nodes.get(1n)!;
    one.transport.send([1, 2, 3].map((term) => heartbeat(1n, 2n, term)));
    one.transport.send([heartbeat(1n, 3n, 9)]);
    assert.deepStrictEqual(nodes.get(2n)!.handler.messages, [], 'nothing delivered inside send()');
    await waitFor(() => nodes.get(2n)!.handler.messages.length === 3 && nodes.get(3n)!.handler.messages.length === 1, 'delivery');
    assert.deepStrictEqual(nodes.get(2n)!.handler.messages.map((m) => m.term), [1, 2, 3]);
  });

  it('drops messages across a partition and reports the peer unreachable, until healed', async () => {
    const network = new MemoryNetwork();
    const nodes = await cluster(network, [1n, 2n, 3n]);
    network.block(1n, 2n);
    nodes.get(1n)!.transport.send([heartbeat(1n, 2n, 1), heartbeat(1n, 3n, 1)]);
    nodes.get(2n)!.transport.send([heartbeat(2n, 1n, 1), heartbeat(2n, 3n, 1)]);
    await waitFor(() => nodes.get(3n)!.handler.messages.length === 2, 'traffic outside the partition');
    await waitFor(
      () => nodes.get(1n)!.handler.unreachable.includes(2n) && nodes.get(2n)!.handler.unreachable.includes(1n),
      'unreachable reports on both sides',
    );
    await settle();
    assert.deepStrictEqual(nodes.get(2n)!.handler.from(1n), []);
    assert.deepStrictEqual(nodes.get(1n)!.handler.from(2n), []);

    network.heal();
    nodes.get(1n)!.transport.send([heartbeat(1n, 2n, 2)]);
    await waitFor(() => nodes.get(2n)!.handler.from(1n).length === 1, 'delivery after healing');
    assert.equal(nodes.get(2n)!.handler.from(1n)[0]!.term, 2);
  });

  it('drops a message that was in flight when the partition started', async () => {
    const network = new MemoryNetwork();
    const nodes = await cluster(network, [1n, 2n]);
    nodes.get(1n)!.transport.send([heartbeat(1n, 2n, 1)]);
    network.block(2n, 1n);
    await settle();
    assert.deepStrictEqual(nodes.get(2n)!.handler.messages, []);
  });

  it('refuses messages from a removed peer', async () => {
    const network = new MemoryNetwork();
    const nodes = await cluster(network, [1n, 2n, 3n]);
    nodes.get(2n)!.transport.removePeer(1n);
    nodes.get(1n)!.transport.send([heartbeat(1n, 2n, 1)]);
    nodes.get(3n)!.transport.send([heartbeat(3n, 2n, 1)]);
    await waitFor(() => nodes.get(2n)!.handler.from(3n).length === 1, 'a member still reaches 2');
    await settle();
    assert.deepStrictEqual(nodes.get(2n)!.handler.from(1n), []);
    // 2 no longer knows 1: its messages to 1 are dropped and reported unreachable.
    nodes.get(2n)!.transport.send([heartbeat(2n, 1n, 2)]);
    await waitFor(() => nodes.get(2n)!.handler.unreachable.includes(1n), 'unknown peer reported');
    assert.deepStrictEqual(nodes.get(1n)!.handler.messages, []);
  });

  it('sends a snapshot through the source and sink, delivering the MsgSnap after the body', async () => {
    const network = new MemoryNetwork();
    const body = randomBytes(100_000);
    const sink = new MemorySnapshotSink();
    const nodes = await cluster(network, [1n, 2n], { source: new FixedSnapshotSource(body, 4096), sink });
    nodes.get(2n)!.handler.onEachMessage = () => assert.equal(sink.stored.length, 1);
    nodes.get(1n)!.transport.send([makeSnapshotMessage(1n, 2n, 10)]);
    await waitFor(() => nodes.get(1n)!.handler.snapshotReports.length === 1, 'snapshot outcome');
    assert.deepStrictEqual(nodes.get(1n)!.handler.snapshotReports, [{ id: 2n, outcome: 'finish' }]);
    assert.deepStrictEqual(sink.stored[0]!.body, body);
    assert.equal(nodes.get(2n)!.handler.messages.length, 1);
  });

  it('fails a snapshot across a partition or into a rejecting sink', async () => {
    const network = new MemoryNetwork();
    const nodes = await cluster(network, [1n, 2n, 3n], {
      source: new FixedSnapshotSource(randomBytes(1000)),
      sink: new MemorySnapshotSink({ reject: true }),
    });
    network.block(1n, 2n);
    nodes.get(1n)!.transport.send([makeSnapshotMessage(1n, 2n, 10), makeSnapshotMessage(1n, 3n, 10)]);
    await waitFor(() => nodes.get(1n)!.handler.snapshotReports.length === 2, 'snapshot outcomes');
    assert.deepStrictEqual(
      [...nodes.get(1n)!.handler.snapshotReports].sort((x, y) => Number(x.id - y.id)),
      [
        { id: 2n, outcome: 'failure' },
        { id: 3n, outcome: 'failure' },
      ],
    );
    assert.deepStrictEqual(nodes.get(3n)!.handler.messages, []);
  });
});
