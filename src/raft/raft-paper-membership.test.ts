/**
 * Paper tests, part 2: proposals and their refusals, snapshots (Raft §7), membership changes
 * (thesis §4), learners and leader transfer (thesis §3.10).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfChangeType, MessageType, NONE, ProgressState, Role, type ConfChange, type Snapshot } from './types';
import { bytes, Network } from './testing-network';
import { entry, msg } from './testing-helpers';

const role = (net: Network, id: number): Role => net.node(id).status().softState.role;
const change = (type: ConfChangeType, nodeId: number): ConfChange => ({ type, nodeId: BigInt(nodeId), context: new Uint8Array(0) });
const add = (id: number) => change(ConfChangeType.AddNode, id);
const remove = (id: number) => change(ConfChangeType.RemoveNode, id);
const addLearner = (id: number) => change(ConfChangeType.AddLearnerNode, id);

// ----- proposals -----

test('§5.1 a follower forwards proposals to the leader', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  assert.deepEqual(net.propose(2, 'from-2'), { ok: true });
  net.stabilize();
  for (const id of [1, 2, 3]) assert.deepEqual(net.get(id).applied, ['from-2']);
});

test('a follower forwards the proposals of one Ready in one MsgProp; a conf change travels alone', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.sent = [];
  for (const text of ['p1', 'p2', 'p3']) assert.deepEqual(net.propose(2, text), { ok: true });
  assert.deepEqual(net.node(2).proposeConfChange(addLearner(4)), { ok: true });
  assert.deepEqual(net.propose(2, 'p4'), { ok: true });
  net.stabilize();
  const forwards = net.sent.filter((m) => m.type === MessageType.MsgProp && m.from === 2n);
  assert.deepEqual(forwards.map((m) => m.entries.length), [3, 1, 1]);
  assert.deepEqual(forwards[1]?.entries.map((e) => e.type), [1], 'the conf change on its own');
  for (const id of [1, 2, 3]) assert.deepEqual(net.get(id).applied, ['p1', 'p2', 'p3', 'p4']);
});

test('a proposal another node sent to a follower is forwarded in its own MsgProp (its refusal goes back to its sender)', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  const follower = net.node(2);
  assert.deepEqual(net.propose(2, 'own'), { ok: true });
  follower.step(msg(MessageType.MsgProp, 3, 2, { entries: [entry(0, 0, 'relayed')] }));
  assert.deepEqual(net.propose(2, 'own-2'), { ok: true });
  const forwards = follower.ready().messages.filter((m) => m.type === MessageType.MsgProp);
  assert.deepEqual(forwards.map((m) => [Number(m.from), m.entries.length]), [[2, 1], [3, 1], [2, 1]]);
});

test('§5.1 a proposal with no known leader is refused with no-leader', () => {
  const net = Network.lone(1, [1, 2, 3]);
  assert.deepEqual(net.propose(1, 'x'), { ok: false, reason: 'no-leader' });
  net.node(1).campaign();
  assert.deepEqual(net.propose(1, 'x'), { ok: false, reason: 'no-leader' }, 'a candidate has no leader either');
});

test('disableProposalForwarding: a follower refuses proposals instead of forwarding', () => {
  const net = Network.bootstrap([1, 2, 3], { disableProposalForwarding: true });
  net.elect(1);
  assert.deepEqual(net.propose(2, 'x'), { ok: false, reason: 'proposal-forwarding-disabled' });
});

test('maxUncommittedEntriesBytes: the leader refuses proposals beyond the cap; empty entries are free; the count drops on commit', () => {
  const net = Network.bootstrap([1, 2, 3], { maxUncommittedEntriesBytes: 250 });
  net.elect(1);
  net.isolate(1);
  const leader = net.node(1);
  assert.deepEqual(leader.propose(new Uint8Array(100)), { ok: true });
  assert.deepEqual(leader.propose(new Uint8Array(100)), { ok: true });
  assert.deepEqual(leader.propose(new Uint8Array(100)), { ok: false, reason: 'uncommitted-size-exceeded' });
  assert.deepEqual(leader.propose(new Uint8Array(0)), { ok: true }, 'empty entries are free');
  net.stabilize();
  net.heal();
  net.tickAll(2);
  assert.equal(net.get(2).applied.length, 2);
  assert.equal(leader.raft.uncommittedSize, 0);
  assert.deepEqual(leader.propose(new Uint8Array(100)), { ok: true });
  assert.equal(net.get(1).rejected.length, 0, 'local refusals are returned, not reported in Ready');
});

test('MsgPropReject: a forwarded proposal the leader drops comes back in the forwarder Ready.rejectedProposals', () => {
  const net = Network.bootstrap([1, 2, 3], { maxUncommittedEntriesBytes: 150 });
  net.elect(1);
  net.cut(1, 3);
  net.filter = (m) => !(m.type === MessageType.MsgAppResp && m.from === 2n); // nothing commits
  assert.deepEqual(net.propose(2, 'a'.repeat(100)), { ok: true });
  net.stabilize(); // delivered on its own, not in one forward with the next
  assert.deepEqual(net.propose(2, 'b'.repeat(100)), { ok: true });
  net.stabilize();
  const rejected = net.get(2).rejected;
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]?.reason, 'uncommitted-size-exceeded');
  assert.equal(new TextDecoder().decode(rejected[0]?.entries[0]?.data), 'b'.repeat(100));
  assert.equal(net.get(1).rejected.length, 0);
});

// ----- §7 snapshots -----

function laggingFollowerWithCompactedLeader(options = {}): Network {
  const net = Network.bootstrap([1, 2, 3], options);
  net.elect(1);
  net.isolate(3);
  for (let i = 0; i < 5; i++) net.propose(1, `s${i}`);
  net.stabilize();
  net.snapshotAndCompact(1);
  net.heal();
  return net;
}

test('§7 the leader sends MsgSnap to a follower whose next entry was compacted, and the follower restores it', () => {
  const net = laggingFollowerWithCompactedLeader();
  net.sent = [];
  net.tickAll(3);
  const snaps = net.sent.filter((m) => m.type === MessageType.MsgSnap);
  assert.equal(snaps.length, 1);
  assert.equal(snaps[0]?.to, 3n);
  const follower = net.get(3);
  assert.ok(follower.readys.some((ready) => ready.snapshot?.metadata.index === 9));
  assert.deepEqual(follower.applied, ['s0', 's1', 's2', 's3', 's4']);
  assert.deepEqual(follower.node.status().confState.voters, [1n, 2n, 3n]);
  const progress = net.node(1).status().progress?.get(3n);
  assert.equal(progress?.state, ProgressState.Replicate);
  assert.equal(progress?.match, 9);
  net.propose(1, 'after');
  net.stabilize();
  assert.deepEqual(follower.applied.at(-1), 'after');
});

test('§7 snapshot-temporarily-unavailable: the leader retries later', () => {
  const net = laggingFollowerWithCompactedLeader();
  net.get(1).storage.setSnapshotUnavailable(true);
  net.sent = [];
  net.tickAll(3);
  assert.equal(net.sent.filter((m) => m.type === MessageType.MsgSnap).length, 0);
  assert.notEqual(net.node(1).status().progress?.get(3n)?.state, ProgressState.Snapshot);
  net.get(1).storage.setSnapshotUnavailable(false);
  net.tickAll(3);
  assert.deepEqual(net.get(3).applied, ['s0', 's1', 's2', 's3', 's4']);
});

test('§7 reportSnapshot: failure moves the follower to Probe at match+1; finish resumes after the snapshot', () => {
  for (const outcome of ['failure', 'finish'] as const) {
    const net = laggingFollowerWithCompactedLeader({ autoReportSnapshots: false });
    net.filter = (m) => m.type !== MessageType.MsgSnap; // the snapshot is "in transit"
    net.tickAll(2);
    const before = net.node(1).status().progress?.get(3n);
    assert.equal(before?.state, ProgressState.Snapshot);
    assert.equal(before?.pendingSnapshot, 9);
    net.node(1).reportSnapshot(3n, outcome);
    const after = net.node(1).status().progress?.get(3n);
    assert.equal(after?.state, ProgressState.Probe);
    assert.equal(after?.next, outcome === 'finish' ? 10 : (after?.match ?? 0) + 1);
  }
});

test('§7 a follower ignores a snapshot not newer than its commit index', () => {
  const net = Network.lone(2, [1, 2, 3]);
  const snapshot: Snapshot = {
    metadata: { index: 2, term: 1, confState: { voters: [1n], learners: [], removed: [] } },
    data: new Uint8Array(0),
  };
  net.node(2).step(msg(MessageType.MsgSnap, 1, 2, { term: 2, snapshot }));
  net.processReadies();
  assert.equal(net.take(MessageType.MsgAppResp)[0]?.index, 3);
  assert.ok(net.get(2).readys.every((ready) => ready.snapshot === undefined));
  assert.deepEqual(net.node(2).status().confState.voters, [1n, 2n, 3n]);
});

test('§7 a follower whose log already holds the snapshot entry only fast-forwards its commit index', () => {
  const net = Network.lone(2, [1, 2, 3]);
  net.node(2).step(msg(MessageType.MsgApp, 1, 2, { term: 2, index: 3, logTerm: 1, entries: [entry(4, 2, 'a'), entry(5, 2, 'b')], commit: 3 }));
  net.processReadies();
  const snapshot: Snapshot = {
    metadata: { index: 5, term: 2, confState: { voters: [1n, 2n, 3n], learners: [], removed: [] } },
    data: new Uint8Array(0),
  };
  net.node(2).step(msg(MessageType.MsgSnap, 1, 2, { term: 2, snapshot }));
  net.processReadies();
  assert.equal(net.node(2).raft.log.committed, 5);
  assert.ok(net.get(2).readys.every((ready) => ready.snapshot === undefined));
  assert.deepEqual(net.get(2).applied, ['a', 'b']);
});

test('§7 restoring a snapshot installs its configuration and presents it in Ready.snapshot', () => {
  const net = Network.lone(2, [1, 2, 3]);
  const snapshot: Snapshot = {
    metadata: { index: 20, term: 4, confState: { voters: [1n, 2n, 4n], learners: [5n], removed: [3n] } },
    data: bytes('x\ny'),
  };
  net.node(2).step(msg(MessageType.MsgSnap, 1, 2, { term: 4, snapshot }));
  assert.deepEqual(net.node(2).status().confState, snapshot.metadata.confState);
  const ready = net.node(2).ready();
  assert.equal(ready.snapshot, snapshot);
  assert.equal(ready.mustSync, true);
  assert.equal(ready.messages[0]?.index, 20);
  net.get(2).storage.applySnapshot(snapshot);
  net.node(2).advance();
  assert.equal(net.node(2).status().applied, 20);
});

// ----- membership (thesis §4) -----

test('§6 membership (thesis §4.1): an added node takes effect when applied and then receives the log', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  net.stabilize();
  net.add(4);
  assert.deepEqual(net.node(1).proposeConfChange(add(4)), { ok: true });
  net.stabilize();
  for (const id of [1, 2, 3, 4]) assert.deepEqual(net.get(id).confState.voters, [1n, 2n, 3n, 4n], `node ${id}`);
  assert.deepEqual(net.get(4).applied, ['a']);
  assert.equal(net.node(1).status().progress?.get(4n)?.match, net.node(1).status().lastIndex);
});

test('§6 membership: only one conf change may be pending at a time', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  assert.deepEqual(net.node(1).proposeConfChange(add(4)), { ok: true });
  assert.deepEqual(net.node(1).proposeConfChange(add(5)), { ok: false, reason: 'conf-change-pending' });
  net.stabilize();
  assert.deepEqual(net.node(1).proposeConfChange(add(5)), { ok: true });
});

test('§6 membership: a new leader accepts no conf change until an entry of its own term is applied', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.node(1).campaign();
  while (role(net, 1) !== Role.Leader) {
    net.processReadies();
    net.deliver();
  }
  assert.deepEqual(net.node(1).proposeConfChange(add(4)), { ok: false, reason: 'conf-change-pending' });
  net.stabilize();
  assert.deepEqual(net.node(1).proposeConfChange(add(4)), { ok: true });
});

test('§6 membership: invalid changes are refused with conf-change-invalid', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  const leader = net.node(1);
  const invalid = { ok: false, reason: 'conf-change-invalid' };
  assert.deepEqual(leader.proposeConfChange(remove(9)), invalid, 'removing a non-member');
  assert.deepEqual(leader.proposeConfChange(add(2)), invalid, 'adding an existing voter');
  assert.deepEqual(leader.proposeConfChange(addLearner(2)), invalid, 'demoting a voter to learner');
  assert.deepEqual(leader.proposeConfChange(add(0)), invalid, 'NONE');
  const single = Network.bootstrap([1]);
  single.elect(1);
  assert.deepEqual(single.node(1).proposeConfChange(remove(1)), invalid, 'removing the last voter');
  net.add(4);
  assert.deepEqual(leader.proposeConfChange(addLearner(4)), { ok: true });
  net.stabilize();
  assert.deepEqual(leader.proposeConfChange(addLearner(4)), invalid, 'adding an existing learner');
});

test('§6 membership: a removed ID can never rejoin, and its messages are ignored', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.node(1).proposeConfChange(remove(3));
  net.stabilize();
  assert.deepEqual(net.get(1).confState, { voters: [1n, 2n], learners: [], removed: [3n] });
  assert.deepEqual(net.node(1).proposeConfChange(add(3)), { ok: false, reason: 'removed-node' });
  assert.deepEqual(net.node(2).proposeConfChange(addLearner(3)), { ok: false, reason: 'removed-node' });
  net.node(1).step(msg(MessageType.MsgVote, 3, 1, { term: 50, index: 100, logTerm: 50 }));
  net.node(2).step(msg(MessageType.MsgHeartbeat, 3, 2, { term: 50 }));
  assert.equal(net.node(1).status().hardState.term, 2);
  assert.equal(net.node(2).status().softState.lead, 1n);
  net.tick(3, 100);
  net.stabilize();
  assert.equal(net.leader(), 1n, 'the removed node cannot disturb the cluster');
});

test('§6 membership: an invalid change at apply time is a no-op returning the unchanged ConfState', () => {
  const net = Network.bootstrap([1, 2, 3]);
  const before = net.node(2).status().confState;
  assert.deepEqual(net.node(2).applyConfChange(add(2)), before);
  assert.deepEqual(net.node(2).applyConfChange(remove(7)), before);
  assert.deepEqual(net.node(2).status().confState, before);
});

test('§6 membership: the proposal of a conf change on a follower is forwarded to the leader', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.add(4);
  assert.deepEqual(net.node(2).proposeConfChange(addLearner(4)), { ok: true });
  net.stabilize();
  assert.deepEqual(net.get(3).confState.learners, [4n]);
});

test('§4.2.1 learners receive the log but never vote, count toward quorum or campaign; AddNode promotes them', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.add(4);
  net.node(1).proposeConfChange(addLearner(4));
  net.stabilize();
  net.propose(1, 'a');
  net.stabilize();
  assert.deepEqual(net.get(4).applied, ['a']);
  assert.equal(net.node(1).status().progress?.get(4n)?.isLearner, true);
  // With both other voters cut off, the learner's acknowledgement must not commit anything.
  net.cut(1, 2);
  net.cut(1, 3);
  const commit = net.node(1).raft.log.committed;
  net.propose(1, 'b');
  net.stabilize();
  assert.equal(net.node(1).raft.log.committed, commit);
  assert.equal(net.node(1).status().progress?.get(4n)?.match, commit + 1);
  net.heal();
  net.tick(4, 100);
  net.node(4).campaign();
  net.processReadies();
  assert.equal(role(net, 4), Role.Follower, 'a learner never campaigns');
  net.stabilize();
  net.node(1).proposeConfChange(add(4));
  net.stabilize();
  assert.deepEqual(net.get(4).confState, { voters: [1n, 2n, 3n, 4n], learners: [], removed: [] });
});

test('§4.2.2 removing the leader: it steps down after applying the change and hands over with MsgTimeoutNow', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.sent = [];
  net.node(1).proposeConfChange(remove(1));
  net.stabilize();
  assert.equal(role(net, 1), Role.Follower);
  const timeoutNow = net.sent.filter((m) => m.type === MessageType.MsgTimeoutNow);
  assert.equal(timeoutNow.length, 1);
  const successor = net.leader();
  assert.equal(successor, timeoutNow[0]?.to);
  assert.deepEqual(net.get(Number(successor)).confState.voters, [2n, 3n]);
  net.propose(Number(successor), 'after');
  net.stabilize();
  assert.deepEqual(net.get(2).applied, ['after']);
  assert.deepEqual(net.get(1).applied, [], 'the removed node gets nothing more');
});

// ----- leader transfer (thesis §3.10) -----

test('§3.10 leader transfer to an up-to-date follower: MsgTimeoutNow, and the transferee wins at once', () => {
  const net = Network.bootstrap([1, 2, 3], { preVote: true, checkQuorum: true });
  net.elect(1);
  net.sent = [];
  net.node(1).transferLeader(2n);
  net.stabilize();
  assert.equal(net.leader(), 2n);
  assert.equal(net.node(2).status().hardState.term, 3);
  assert.ok(net.sent.some((m) => m.type === MessageType.MsgTimeoutNow && m.to === 2n));
  assert.ok(!net.sent.some((m) => m.type === MessageType.MsgPreVote), 'the transferee skips pre-vote');
});

test('§3.10 leader transfer to a lagging follower: the leader first brings it up to date', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.stabilize();
  net.heal();
  net.node(1).transferLeader(3n);
  assert.equal(net.node(1).status().leadTransferee, 3n);
  net.stabilize();
  assert.equal(net.leader(), 3n);
  assert.deepEqual(net.get(3).applied, ['a']);
});

test('§3.10 during a transfer the leader refuses proposals; the transfer aborts after an election timeout', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.isolate(3);
  net.node(1).transferLeader(3n);
  assert.deepEqual(net.propose(1, 'x'), { ok: false, reason: 'leader-transfer-in-progress' });
  net.propose(2, 'forwarded');
  net.stabilize();
  assert.equal(net.get(2).rejected[0]?.reason, 'leader-transfer-in-progress');
  for (let i = 0; i < 9; i++) net.tick(1);
  assert.equal(net.node(1).status().leadTransferee, 3n);
  net.tick(1);
  assert.equal(net.node(1).status().leadTransferee, NONE);
  assert.equal(role(net, 1), Role.Leader);
  assert.deepEqual(net.propose(1, 'x'), { ok: true });
});

test('§3.10 a transfer to itself, a learner or a non-member is ignored', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.add(4);
  net.node(1).proposeConfChange(addLearner(4));
  net.stabilize();
  for (const target of [1n, 4n, 9n]) {
    net.node(1).transferLeader(target);
    assert.equal(net.node(1).status().leadTransferee, NONE, `transfer to ${target}`);
  }
  net.stabilize();
  assert.equal(net.leader(), 1n);
});

test('§3.10 a follower forwards a transfer request to the leader', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.node(2).transferLeader(3n);
  net.stabilize();
  assert.equal(net.leader(), 3n);
});
