/**
 * Paper tests, part 3: read-only queries (thesis §6.4: ReadIndex and leases), restart, bootstrap,
 * configuration validation and the Ready/advance protocol.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapEntries } from './bootstrap';
import { decodeConfChange } from './conf-change';
import { RaftConfigError } from './config';
import { RawNode } from './raw-node';
import { MemoryStorage } from './storage';
import { bytes, Network } from './testing-network';
import { ConfChangeType, EntryType, MessageType, NONE, ReadOnlyOption, Role, type Config } from './types';

const text = (data: Uint8Array): string => new TextDecoder().decode(data);
const contexts = (net: Network, id: number): string[] => net.get(id).readStates.map((state) => text(state.context));

test('§6.4 ReadIndex (safe): the leader answers once a quorum acknowledges a heartbeat round', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  assert.deepEqual(net.node(1).readIndex(bytes('r1')), { ok: true });
  net.processReadies();
  assert.deepEqual(net.get(1).readStates, [], 'not before the acknowledgements');
  const beats = net.queue.filter((m) => m.type === MessageType.MsgHeartbeat);
  assert.equal(beats.length, 2, 'a heartbeat round went out at once');
  net.stabilize();
  assert.deepEqual(net.get(1).readStates, [{ index: 4, context: bytes('r1') }]);
});

test('§6.4 ReadIndex is not answered without a quorum', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.isolate(1);
  net.node(1).readIndex(bytes('r'));
  net.stabilize();
  net.tick(1, 3);
  net.stabilize();
  assert.deepEqual(net.get(1).readStates, []);
});

test('§6.4 ReadIndex batching: requests arriving during a round share the next round', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.sent = [];
  net.node(1).readIndex(bytes('a'));
  net.processReadies();
  net.node(1).readIndex(bytes('b'));
  net.node(1).readIndex(bytes('c'));
  net.propose(1, 'x');
  net.node(1).readIndex(bytes('d'));
  net.stabilize();
  assert.deepEqual(contexts(net, 1), ['a', 'b', 'c', 'd']);
  const rounds = net.sent.filter((m) => m.type === MessageType.MsgHeartbeat && m.to === 2n).length;
  assert.equal(rounds, 2, 'one round for a, one shared by b, c and d');
  const indexes = net.get(1).readStates.map((state) => state.index);
  assert.deepEqual(indexes, [4, 4, 4, 4], 'each read index is the commit index when the request arrived (x was not yet committed)');
});

test('§6.4 a new leader serves no read index before it commits an entry of its term', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.node(1).campaign();
  while (net.node(1).status().softState.role !== Role.Leader) {
    net.processReadies();
    net.deliver();
  }
  net.node(1).readIndex(bytes('early'));
  assert.equal(
    net.node(1).raft.msgs.filter((m) => m.type === MessageType.MsgHeartbeat).length,
    0,
    'queued, no round yet',
  );
  net.stabilize();
  assert.deepEqual(net.get(1).readStates, [{ index: 4, context: bytes('early') }], 'answered with the new term entry committed');
});

test('§6.4 a follower forwards MsgReadIndex and turns the leader answer into a ReadState', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  net.stabilize();
  assert.deepEqual(net.node(2).readIndex(bytes('f')), { ok: true });
  net.stabilize();
  assert.deepEqual(net.get(2).readStates, [{ index: 5, context: bytes('f') }]);
  assert.ok(net.sent.some((m) => m.type === MessageType.MsgReadIndexResp && m.to === 2n));
});

test('§6.4 a read index request with no known leader is refused with no-leader', () => {
  const net = Network.lone(1, [1, 2, 3]);
  assert.deepEqual(net.node(1).readIndex(bytes('x')), { ok: false, reason: 'no-leader' });
});

test('§6.4 a single-voter leader answers read index requests at once', () => {
  const net = Network.bootstrap([1]);
  net.elect(1);
  net.node(1).readIndex(bytes('solo'));
  net.processReadies();
  assert.deepEqual(net.get(1).readStates, [{ index: 2, context: bytes('solo') }]);
});

/**
 * A lease-mode cluster with a leader. Under lease-based reads every node refuses votes for one
 * election timeout after it starts (it cannot remember leases it acknowledged before a crash), so
 * the cluster elects its leader by timeout; returns the leader's ID.
 */
function leaseNetwork(): { net: Network; leader: number; other: number } {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased });
  for (let i = 0; i < 100 && net.leader() === undefined; i++) net.tickAll(1);
  const leader = Number(net.leader());
  assert.ok(leader > 0);
  return { net, leader, other: leader === 1 ? 2 : 1 };
}

test('§6.4.1 lease reads: a freshly started node refuses votes for one election timeout', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased });
  net.node(1).campaign();
  net.stabilize();
  assert.equal(net.node(1).status().softState.role, Role.Candidate, 'the others are still guarding a lease they may have granted');
  assert.equal(net.node(2).status().hardState.term, 1);
});

test('§6.4.1 lease reads: answered at once while the lease holds', () => {
  const { net, leader } = leaseNetwork();
  net.tickAll(2);
  net.sent = [];
  const commit = net.node(leader).raft.log.committed;
  net.node(leader).readIndex(bytes('fast'));
  assert.deepEqual(net.node(leader).raft.readStates, [{ index: commit, context: bytes('fast') }], 'no round trip');
  net.stabilize();
  assert.equal(net.sent.length, 0);
});

test('§6.4.1 lease reads: fall back to a heartbeat round after the lease expires', () => {
  const { net, leader: id } = leaseNetwork();
  net.tickAll(1);
  net.isolate(id);
  // The lease lasts electionTicks - margin = 8 ticks from the last acknowledged round's send tick.
  const leader = net.node(id);
  const sentAt = leader.raft.tickCount;
  while (leader.raft.tickCount - sentAt < 7) net.tick(id);
  leader.readIndex(bytes('still'));
  assert.equal(leader.raft.readStates.length, 1, 'within the lease');
  net.tick(id);
  leader.readIndex(bytes('expired'));
  assert.equal(leader.raft.readStates.length, 1, 'lease expired: waits for a quorum');
  assert.ok(leader.raft.msgs.some((m) => m.type === MessageType.MsgHeartbeat), 'a safe round started');
  assert.equal(leader.status().softState.role, Role.Leader, 'still leader (check-quorum has not fired yet)');
  net.heal();
  net.stabilize();
  assert.deepEqual(contexts(net, id), ['still', 'expired']);
});

test('§6.4.1 lease reads are not trusted once a leader transfer was attempted', () => {
  const { net, leader, other } = leaseNetwork();
  net.tickAll(2);
  net.filter = (m) => m.type !== MessageType.MsgTimeoutNow; // the transferee never hears it
  net.node(leader).transferLeader(BigInt(other));
  net.tickAll(11); // the transfer aborts after an election timeout
  assert.equal(net.node(leader).status().leadTransferee, NONE);
  assert.equal(net.node(leader).status().softState.role, Role.Leader);
  net.node(leader).readIndex(bytes('x'));
  assert.equal(net.node(leader).raft.readStates.length, 0, 'no lease read after a transfer attempt');
  net.stabilize();
  assert.equal(net.get(leader).readStates.length, 1, 'answered the safe way');
});

test('config: lease-based reads without checkQuorum, and other nonsense, are rejected', () => {
  const storage = new MemoryStorage();
  const base: Config = {
    id: 1n,
    electionTicks: 10,
    heartbeatTicks: 1,
    storage,
    maxSizePerMsgBytes: 1024,
    maxInflightMessages: 16,
    maxInflightBytes: 0,
    maxUncommittedEntriesBytes: 0,
    maxCommittedSizePerReadyBytes: 1024,
    checkQuorum: false,
    preVote: false,
    readOnlyOption: ReadOnlyOption.Safe,
    random: () => 0,
  };
  assert.doesNotThrow(() => new RawNode(base));
  const bad: Array<Partial<Config>> = [
    { readOnlyOption: ReadOnlyOption.LeaseBased },
    { id: NONE },
    { heartbeatTicks: 10 },
    { heartbeatTicks: 0 },
    { electionTicks: 1 },
    { maxInflightMessages: 0 },
    { maxSizePerMsgBytes: -1 },
    { leaseDriftMarginTicks: 10 },
  ];
  for (const change of bad) assert.throws(() => new RawNode({ ...base, ...change }), RaftConfigError, JSON.stringify(change, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  assert.doesNotThrow(() => new RawNode({ ...base, checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased }));
});

// ----- restart, bootstrap, Ready protocol -----

test('restart: term, vote and commit come from storage and committed entries after applied are re-emitted', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  net.propose(1, 'b');
  net.stabilize();
  const before = net.node(2).status().hardState;
  const member = net.restart(2);
  assert.deepEqual(member.node.status().hardState, before);
  assert.equal(member.node.status().applied, 0);
  net.processReadies();
  assert.deepEqual(member.applied, ['a', 'b']);
  assert.deepEqual(member.confState.voters, [1n, 2n, 3n], 'conf changes re-applied from the log');
  net.propose(1, 'c');
  net.stabilize();
  assert.deepEqual(member.applied, ['a', 'b', 'c']);
});

test('restart: applied from config skips re-emitting what the state machine already has', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  net.stabilize();
  const storage = net.get(2).storage;
  const node = new RawNode({ ...net.makeConfig(2n, storage), applied: 4 });
  const ready = node.ready();
  assert.deepEqual(ready.committedEntries.map((e) => e.index), [5]);
});

test('restart after a snapshot: the log restarts at the snapshot, configuration from its ConfState', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  net.stabilize();
  net.snapshotAndCompact(2);
  const member = net.restart(2);
  assert.equal(member.node.status().applied, 5);
  assert.deepEqual(member.node.status().confState.voters, [1n, 2n, 3n]);
  assert.equal(member.node.hasReady(), false);
});

test('bootstrap: AddNode entries at term 1, indexes 1..n, empty context, in the given order', () => {
  const entries = bootstrapEntries([3n, 1n, 2n]);
  assert.deepEqual(entries.map((e) => [e.index, e.term, e.type]), [
    [1, 1, EntryType.ConfChange],
    [2, 1, EntryType.ConfChange],
    [3, 1, EntryType.ConfChange],
  ]);
  assert.deepEqual(entries.map((e) => decodeConfChange(e.data)), [
    { type: ConfChangeType.AddNode, nodeId: 3n, context: new Uint8Array(0) },
    { type: ConfChangeType.AddNode, nodeId: 1n, context: new Uint8Array(0) },
    { type: ConfChangeType.AddNode, nodeId: 2n, context: new Uint8Array(0) },
  ]);
  assert.deepEqual(bootstrapEntries([3n, 1n, 2n]), entries, 'byte-identical on every member');
  assert.throws(() => bootstrapEntries([]));
  assert.throws(() => bootstrapEntries([1n, 1n]));
});

test('bootstrap: the first Ready hands out the bootstrap entries as committed; no campaign before they are applied', () => {
  const storage = new MemoryStorage();
  storage.append(bootstrapEntries([1n, 2n, 3n]));
  storage.setHardState({ term: 1, vote: NONE, commit: 3 });
  const node = new RawNode(new Network().makeConfig(1n, storage));
  node.campaign();
  assert.equal(node.status().softState.role, Role.Follower, 'empty configuration: not a voter yet');
  const ready = node.ready();
  assert.equal(ready.committedEntries.length, 3);
  assert.equal(ready.hardState, undefined, 'nothing changed since the persisted state');
  for (const entry of ready.committedEntries) node.applyConfChange(decodeConfChange(entry.data));
  node.advance();
  node.campaign();
  assert.equal(node.status().softState.role, Role.Candidate);
});

test('Ready protocol: ready() twice without advance() throws; hasReady() is false while one is outstanding', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).campaign();
  const node = net.node(1);
  assert.equal(node.hasReady(), true);
  node.ready();
  assert.equal(node.hasReady(), false);
  assert.throws(() => node.ready());
  node.advance();
  assert.throws(() => node.advance());
});

test('Ready: softState reports role and leader changes; status() shows progress on the leader only', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  const states = net.get(1).readys.flatMap((ready) => (ready.softState === undefined ? [] : [ready.softState.role]));
  assert.deepEqual(states, [Role.Candidate, Role.Leader]);
  const status = net.node(1).status();
  assert.deepEqual([...(status.progress?.keys() ?? [])], [1n, 2n, 3n]);
  assert.equal(net.node(2).status().progress, undefined);
  assert.equal(net.node(2).status().softState.lead, 1n);
});

test('Ready: committed entries per Ready are bounded by maxCommittedSizePerReadyBytes', () => {
  const net = Network.bootstrap([1], { maxCommittedSizePerReadyBytes: 250 });
  net.elect(1);
  for (let i = 0; i < 6; i++) net.node(1).propose(new Uint8Array(100));
  net.stabilize();
  const sizes = net.get(1).readys.map((ready) => ready.committedEntries.filter((e) => e.data.length === 100).length);
  assert.ok(Math.max(...sizes) <= 2, `sizes ${sizes.join(',')}`);
  assert.equal(net.get(1).applied.length, 6);
});
