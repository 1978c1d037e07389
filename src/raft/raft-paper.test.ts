/**
 * Paper tests, part 1: elections, pre-vote, check-quorum, replication and commitment. One test per
 * rule, named after the section of the Raft paper (§) or Ongaro's thesis it comes from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageType, NONE, ProgressState, Role } from './types';
import { bytes, Network } from './testing-network';
import { entry, loneWithLog, msg } from './testing-helpers';
import { TRANSFER_CONTEXT } from './util';

const role = (net: Network, id: number): Role => net.node(id).status().softState.role;
const termOf = (net: Network, id: number): number => net.node(id).status().hardState.term;

// ----- §5.2 leader election -----

test('§5.2 a follower that hears nothing within its election timeout becomes candidate', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.tick(1, 9);
  assert.equal(role(net, 1), Role.Follower, 'not before electionTicks');
  net.tick(1, 11);
  net.processReadies();
  assert.equal(role(net, 1), Role.Candidate);
  assert.equal(termOf(net, 1), 2);
  assert.equal(net.node(1).status().hardState.vote, 1n);
  const votes = net.take(MessageType.MsgVote);
  assert.deepEqual(votes.map((m) => m.to), [2n, 3n]);
  assert.ok(votes.every((m) => m.term === 2 && m.index === 3 && m.logTerm === 1));
});

test('§5.2 the randomized election timeout lies in [electionTicks, 2*electionTicks) and is redrawn on every reset', () => {
  const net = Network.lone(1, [1, 2, 3]);
  const raft = net.node(1).raft;
  const seen = new Set<number>();
  for (let i = 0; i < 100; i++) {
    raft.becomeFollower(raft.term, NONE);
    assert.ok(raft.randomizedElectionTimeout >= 10 && raft.randomizedElectionTimeout < 20);
    seen.add(raft.randomizedElectionTimeout);
  }
  assert.ok(seen.size >= 5, `only ${seen.size} distinct timeouts`);
});

test('§5.2 a candidate that wins a majority becomes leader and appends an empty entry of its term', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).campaign();
  net.processReadies();
  net.take();
  net.node(1).step(msg(MessageType.MsgVoteResp, 2, 1, { term: 2 }));
  assert.equal(role(net, 1), Role.Leader);
  const log = net.node(1).raft.log;
  assert.equal(log.lastIndex(), 4);
  assert.equal(log.term(4), 2);
  assert.equal(log.unstable.entries[0]?.data.length, 0);
});

test('§5.2 a candidate that receives a majority of rejections becomes follower', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).campaign();
  net.node(1).step(msg(MessageType.MsgVoteResp, 2, 1, { term: 2, reject: true }));
  assert.equal(role(net, 1), Role.Candidate, 'one rejection is not a majority');
  net.node(1).step(msg(MessageType.MsgVoteResp, 3, 1, { term: 2, reject: true }));
  assert.equal(role(net, 1), Role.Follower);
  assert.equal(termOf(net, 1), 2);
});

test('§5.2 a candidate that hears AppendEntries from a leader of its term becomes follower', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).campaign();
  net.node(1).step(msg(MessageType.MsgApp, 2, 1, { term: 2, index: 3, logTerm: 1 }));
  assert.equal(role(net, 1), Role.Follower);
  assert.equal(net.node(1).status().softState.lead, 2n);
});

test('§5.1 a node that sees a higher term adopts it and becomes follower', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.node(1).step(msg(MessageType.MsgHeartbeat, 2, 1, { term: 7 }));
  assert.equal(role(net, 1), Role.Follower);
  assert.equal(termOf(net, 1), 7);
  assert.equal(net.node(1).status().softState.lead, 2n);
});

test('§5.1 a request with a stale term is rejected (ignored)', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).step(msg(MessageType.MsgHeartbeat, 2, 1, { term: 5 }));
  net.processReadies();
  net.take();
  net.node(1).step(msg(MessageType.MsgVote, 3, 1, { term: 3, index: 99, logTerm: 4 }));
  net.node(1).step(msg(MessageType.MsgApp, 3, 1, { term: 3, index: 3, logTerm: 1, entries: [entry(4, 3, 'x')] }));
  net.processReadies();
  assert.deepEqual(net.take(), []);
  assert.equal(termOf(net, 1), 5);
  assert.equal(net.node(1).raft.log.lastIndex(), 3);
});

test('§5.2 a voter grants at most one vote per term, first come first served', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).step(msg(MessageType.MsgVote, 2, 1, { term: 2, index: 3, logTerm: 1 }));
  net.node(1).step(msg(MessageType.MsgVote, 3, 1, { term: 2, index: 3, logTerm: 1 }));
  net.node(1).step(msg(MessageType.MsgVote, 2, 1, { term: 2, index: 3, logTerm: 1 }));
  net.processReadies();
  const responses = net.take(MessageType.MsgVoteResp);
  assert.deepEqual(
    responses.map((m) => [m.to, m.reject]),
    [
      [2n, false],
      [3n, true],
      [2n, false],
    ],
  );
});

test('§5.4.1 a voter rejects a candidate whose log is less up to date', () => {
  const cases: Array<[number, number, boolean]> = [
    // [candidate last index, candidate last term, granted?]
    [2, 1, false], // same term, shorter
    [3, 0, false], // older term
    [3, 1, true], // identical
    [1, 2, true], // newer last term wins even if shorter
  ];
  for (const [index, logTerm, granted] of cases) {
    const net = Network.lone(1, [1, 2, 3]);
    net.node(1).step(msg(MessageType.MsgVote, 2, 1, { term: 2, index, logTerm }));
    net.processReadies();
    const [response] = net.take(MessageType.MsgVoteResp);
    assert.equal(response?.reject, !granted, `index ${index} term ${logTerm}`);
  }
});

test('§5.2 a granted vote is persisted (hardState with mustSync) in the Ready that sends the response', () => {
  const net = Network.lone(1, [1, 2, 3]);
  net.node(1).step(msg(MessageType.MsgVote, 2, 1, { term: 2, index: 3, logTerm: 1 }));
  const ready = net.node(1).ready();
  assert.deepEqual(ready.hardState, { term: 2, vote: 2n, commit: 3 });
  assert.equal(ready.mustSync, true);
  assert.equal(ready.messages[0]?.type, MessageType.MsgVoteResp);
  net.node(1).advance();
});

test('§5.2 a single-voter cluster elects itself at once and commits after persisting', () => {
  const net = Network.bootstrap([1]);
  net.node(1).campaign();
  assert.equal(role(net, 1), Role.Leader);
  net.stabilize();
  assert.equal(net.node(1).status().hardState.commit, 2);
});

test('§5.2 a node outside the voters (a joining node) never campaigns but accepts a leader', () => {
  const net = new Network();
  net.add(4);
  net.tick(4, 100);
  net.node(4).campaign();
  net.processReadies();
  assert.equal(role(net, 4), Role.Follower);
  assert.equal(termOf(net, 4), 0);
  assert.deepEqual(net.take(), []);
  net.node(4).step(msg(MessageType.MsgApp, 1, 4, { term: 2, index: 0, logTerm: 0, entries: [entry(1, 1, 'a')], commit: 1 }));
  net.processReadies();
  const [response] = net.take(MessageType.MsgAppResp);
  assert.equal(response?.reject, false);
  assert.equal(response?.index, 1);
  assert.deepEqual(net.get(4).applied, ['a']);
});

// ----- thesis §9.6 pre-vote -----

test('§9.6 pre-vote: a pre-candidate asks at term+1 without changing its own term', () => {
  const net = Network.lone(1, [1, 2, 3], { preVote: true });
  net.tick(1, 20);
  net.processReadies();
  assert.equal(role(net, 1), Role.PreCandidate);
  assert.equal(termOf(net, 1), 1);
  const preVotes = net.take(MessageType.MsgPreVote);
  assert.equal(preVotes.length, 2);
  assert.ok(preVotes.every((m) => m.term === 2));
  net.node(1).step(msg(MessageType.MsgPreVoteResp, 2, 1, { term: 2 }));
  assert.equal(role(net, 1), Role.Candidate, 'a pre-vote quorum starts the real election');
  assert.equal(termOf(net, 1), 2);
  net.processReadies();
  assert.equal(net.take(MessageType.MsgVote).length, 2);
});

test('§9.6 pre-vote: a voter grants a pre-vote without changing its term or vote', () => {
  const net = Network.lone(1, [1, 2, 3], { preVote: true });
  net.node(1).step(msg(MessageType.MsgPreVote, 2, 1, { term: 2, index: 3, logTerm: 1 }));
  net.processReadies();
  const [response] = net.take(MessageType.MsgPreVoteResp);
  assert.equal(response?.reject, false);
  assert.equal(response?.term, 2);
  assert.deepEqual(net.node(1).status().hardState, { term: 1, vote: NONE, commit: 3 });
});

test('§9.6 pre-vote: a pre-candidate with a stale log loses and keeps its term', () => {
  const net = Network.bootstrap([1, 2, 3], { preVote: true });
  net.elect(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.stabilize();
  net.heal();
  net.node(3).campaign();
  net.stabilize();
  assert.equal(role(net, 3), Role.Follower);
  assert.equal(termOf(net, 3), 2);
  assert.equal(net.leader(), 1n);
  assert.equal(termOf(net, 1), 2);
});

test('§9.6 pre-vote: a partitioned node rejoining does not disrupt the leader', () => {
  const net = Network.bootstrap([1, 2, 3], { preVote: true, checkQuorum: true });
  net.elect(1);
  net.isolate(3);
  net.tickAll(100);
  assert.equal(termOf(net, 3), 2, 'the isolated node never got past pre-vote');
  net.heal();
  net.tickAll(30);
  assert.equal(net.leader(), 1n);
  assert.equal(termOf(net, 1), 2);
  assert.equal(role(net, 3), Role.Follower);
  net.propose(1, 'after');
  net.stabilize();
  assert.deepEqual(net.get(3).applied, ['after']);
});

test('§9.6 a node with a higher term but a stale log (no pre-vote, stuck candidate) frees itself without winning', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true });
  net.elect(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.stabilize();
  net.tick(3, 60);
  net.processReadies();
  net.take();
  const stuckTerm = termOf(net, 3);
  assert.ok(stuckTerm > 2);
  net.heal();
  net.tickAll(60);
  const leader = net.leader();
  assert.ok(leader === 1n || leader === 2n, `leader ${String(leader)}`);
  assert.ok(termOf(net, Number(leader)) >= stuckTerm, 'the cluster moved past the stuck term');
  net.propose(Number(leader), 'b');
  net.stabilize();
  assert.deepEqual(net.get(3).applied, ['a', 'b']);
});

test('§4.2.3 a follower that heard from the leader within electionTicks ignores vote requests (checkQuorum)', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true });
  net.elect(1);
  net.take();
  for (const type of [MessageType.MsgVote, MessageType.MsgPreVote]) {
    net.node(2).step(msg(type, 3, 2, { term: 9, index: 100, logTerm: 9 }));
  }
  net.processReadies();
  assert.equal(termOf(net, 2), 2);
  assert.deepEqual(net.take(), []);
});

test('§3.10 a vote flagged as a leader-transfer campaign bypasses the lease check', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true });
  net.elect(1);
  net.take();
  net.node(2).step(msg(MessageType.MsgVote, 3, 2, { term: 9, index: 100, logTerm: 9, context: TRANSFER_CONTEXT }));
  net.processReadies();
  assert.equal(termOf(net, 2), 9);
  const [response] = net.take(MessageType.MsgVoteResp);
  assert.equal(response?.reject, false);
});

// ----- check-quorum -----

test('§6.2 check-quorum: a leader that does not hear from a quorum within an election timeout steps down', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true });
  net.elect(1);
  net.isolate(1);
  for (let i = 0; i < 19; i++) {
    net.tick(1);
    net.stabilize();
  }
  assert.equal(role(net, 1), Role.Leader, 'the first window still saw the election traffic');
  net.tick(1);
  net.stabilize();
  assert.equal(role(net, 1), Role.Follower);
  assert.equal(termOf(net, 1), 2, 'stepping down does not bump the term');
});

test('§6.2 check-quorum: a leader in contact with a quorum stays leader', () => {
  const net = Network.bootstrap([1, 2, 3], { checkQuorum: true });
  net.elect(1);
  net.isolate(3);
  net.tickAll(50);
  assert.equal(net.leader(), 1n);
  assert.equal(termOf(net, 1), 2);
});

// ----- §5.3 log replication -----

test('§5.3 the leader replicates an entry and it is applied everywhere once committed', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  assert.deepEqual(net.propose(1, 'a'), { ok: true });
  net.stabilize();
  for (const id of [1, 2, 3]) assert.deepEqual(net.get(id).applied, ['a']);
  assert.equal(net.node(3).status().hardState.commit, 5);
});

test('§10.2.1 the leader sends MsgApp in the same Ready that carries its unpersisted entries', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.propose(1, 'a');
  const ready = net.node(1).ready();
  assert.equal(ready.entries.length, 1);
  const appends = ready.messages.filter((m) => m.type === MessageType.MsgApp);
  assert.deepEqual(appends.map((m) => m.to), [2n, 3n]);
  assert.ok(appends.every((m) => m.entries.length === 1));
  net.get(1).storage.append(ready.entries);
  net.node(1).advance();
});

test('§10.2.1 the leader counts its own entry toward commitment only after advance()', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  const leader = net.node(1);
  const commitBefore = leader.raft.log.committed;
  leader.propose(bytes('a'));
  const ready = leader.ready();
  const toTwo = ready.messages.find((m) => m.type === MessageType.MsgApp && m.to === 2n);
  assert.ok(toTwo);
  net.node(2).step(toTwo);
  net.handleReady(2);
  const [ack] = net.take(MessageType.MsgAppResp);
  assert.ok(ack);
  leader.step(ack);
  assert.equal(leader.raft.log.committed, commitBefore, 'one follower plus an unpersisted leader is not a quorum');
  net.get(1).storage.append(ready.entries);
  leader.advance();
  assert.equal(leader.raft.log.committed, commitBefore + 1);
});

test('§5.3 log matching: a follower deletes a conflicting suffix and appends the leader entries', () => {
  const net = Network.lone(2, [1, 2, 3]);
  const node = net.node(2);
  node.step(msg(MessageType.MsgApp, 1, 2, { term: 2, index: 3, logTerm: 1, entries: [entry(4, 2, 'a'), entry(5, 2, 'b')], commit: 3 }));
  net.processReadies();
  assert.equal(net.take(MessageType.MsgAppResp)[0]?.index, 5);
  node.step(msg(MessageType.MsgApp, 3, 2, { term: 3, index: 3, logTerm: 1, entries: [entry(4, 3, 'c')], commit: 3 }));
  net.processReadies();
  assert.equal(net.take(MessageType.MsgAppResp)[0]?.index, 4);
  assert.equal(node.raft.log.lastIndex(), 4);
  assert.equal(node.raft.log.term(4), 3);
  assert.equal(net.get(2).storage.lastIndex(), 4, 'storage replaced the conflicting suffix');
  assert.equal(net.get(2).storage.term(4), 3);
});

test('§5.3 a follower rejects AppendEntries whose preceding entry it lacks, with a back-off hint', () => {
  const net = Network.lone(2, [1, 2, 3]);
  net.node(2).step(msg(MessageType.MsgApp, 1, 2, { term: 2, index: 10, logTerm: 2, entries: [entry(11, 2)] }));
  net.processReadies();
  const [response] = net.take(MessageType.MsgAppResp);
  assert.equal(response?.reject, true);
  assert.equal(response?.index, 10);
  assert.equal(response?.rejectHint, 3);
  assert.equal(response?.logTerm, 1);
  assert.equal(net.node(2).raft.log.lastIndex(), 3);
});

test('§5.3 fast back-off: the leader skips a whole conflicting term in one round trip', () => {
  // Leader: 1-3 term 1, 4-8 term 3; it becomes leader at term 4. Follower: 1-3 term 1, 4-10 term 2.
  const terms3 = [4, 5, 6, 7, 8].map((index) => entry(index, 3, `t3-${index}`));
  const terms2 = [4, 5, 6, 7, 8, 9, 10].map((index) => entry(index, 2, `t2-${index}`));
  const leaderNet = loneWithLog(1, [1, 2, 3], terms3, { term: 3 });
  const followerNet = loneWithLog(2, [1, 2, 3], terms2, { term: 2 });
  const leader = leaderNet.node(1);
  const follower = followerNet.node(2);
  leader.campaign();
  leader.step(msg(MessageType.MsgVoteResp, 3, 1, { term: 4 }));
  leaderNet.processReadies();
  const appends: number[] = [];
  let rejections = 0;
  for (let round = 0; round < 10; round++) {
    const toFollower = leaderNet.take().filter((m) => m.to === 2n && m.type === MessageType.MsgApp);
    if (toFollower.length === 0) break;
    for (const m of toFollower) {
      appends.push(m.index);
      follower.step(m);
    }
    followerNet.processReadies();
    for (const response of followerNet.take()) {
      if (response.reject) {
        rejections++;
        assert.equal(response.rejectHint, 8, 'largest index ≤ 8 with term ≤ 3');
        assert.equal(response.logTerm, 2);
      }
      leader.step(response);
    }
    leaderNet.processReadies();
  }
  assert.equal(rejections, 1);
  assert.deepEqual(appends.slice(0, 2), [8, 3], 'the second probe skips all of term 2 at once');
  assert.equal(follower.raft.log.lastIndex(), 9);
  assert.equal(follower.raft.log.term(8), 3);
});

test('§5.3 the commit broadcast is commit-only and not answered', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.stabilize();
  net.sent = [];
  net.propose(1, 'a');
  net.stabilize();
  for (const follower of [2n, 3n]) {
    const appends = net.sent.filter((m) => m.type === MessageType.MsgApp && m.to === follower);
    assert.deepEqual(
      appends.map((m) => [m.entries.length, m.commitOnly === true]),
      [
        [1, false],
        [0, true],
      ],
      `follower ${follower}: the entry, then the commit index alone`,
    );
    const answers = net.sent.filter((m) => m.type === MessageType.MsgAppResp && m.from === follower);
    assert.deepEqual(answers.map((m) => m.index), [appends[0]!.entries[0]!.index], `follower ${follower} acknowledges only the entry`);
    assert.equal(net.node(Number(follower)).raft.log.committed, net.node(1).raft.log.committed);
  }
  for (const id of [1, 2, 3]) assert.deepEqual(net.get(id).applied, ['a']);
});

test('§5.3 a follower that silently lost an entry and its commit-only MsgApp catches up on the next heartbeat', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.stabilize();
  net.isolate(3);
  net.propose(1, 'a');
  net.stabilize();
  net.heal();
  assert.deepEqual(net.get(3).applied, []);
  net.sent = [];
  net.tickAll(1);
  const [recovery] = net.sent.filter((m) => m.type === MessageType.MsgApp && m.to === 3n);
  assert.equal(recovery?.entries.length, 0);
  assert.notEqual(recovery?.commitOnly, true, 'sent to learn what 3 holds: answered');
  assert.deepEqual(net.get(3).applied, ['a']);
});

test('§5.3 an empty MsgApp to a follower whose acknowledgement is missing is not commit-only, and is answered', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.stabilize();
  // The leader has sent everything to 3 but lost track of what 3 holds (Probe from match).
  net.node(1).reportUnreachable(3n);
  net.sent = [];
  net.tickAll(1);
  const [probe] = net.sent.filter((m) => m.type === MessageType.MsgApp && m.to === 3n);
  assert.equal(probe?.entries.length, 0);
  assert.notEqual(probe?.commitOnly, true);
  const [answer] = net.sent.filter((m) => m.type === MessageType.MsgAppResp && m.from === 3n);
  assert.equal(answer?.index, probe?.index);
  // The answer proves 3 holds everything: the probe ends at once, with no entry to acknowledge.
  assert.equal(net.node(1).status().progress?.get(3n)?.state, ProgressState.Replicate);
});

test('§5.3 a follower answers a commit-only MsgApp whose preceding entry it lacks', () => {
  const net = Network.lone(2, [1, 2, 3]);
  net.node(2).step(msg(MessageType.MsgApp, 1, 2, { term: 2, index: 10, logTerm: 2, commit: 10, commitOnly: true }));
  net.processReadies();
  const [response] = net.take(MessageType.MsgAppResp);
  assert.equal(response?.reject, true);
  assert.equal(response?.index, 10);
  assert.equal(net.node(2).raft.log.committed, 3);
});

test('§5.3 a follower commits up to min(leader commit, last new entry)', () => {
  const net = Network.lone(2, [1, 2, 3]);
  net.node(2).step(msg(MessageType.MsgApp, 1, 2, { term: 2, index: 3, logTerm: 1, entries: [entry(4, 2, 'a')], commit: 9 }));
  assert.equal(net.node(2).raft.log.committed, 4);
});

// ----- §5.4.2 committing entries from previous terms -----

test('§5.4.2 a leader does not commit an entry from an earlier term by counting replicas', () => {
  const net = loneWithLog(1, [1, 2, 3], [entry(4, 2, 'old')], { term: 2 });
  const node = net.node(1);
  node.campaign();
  node.step(msg(MessageType.MsgVoteResp, 2, 1, { term: 3 }));
  assert.equal(role(net, 1), Role.Leader);
  net.processReadies(); // persist the leader's empty entry at index 5 (term 3)
  node.step(msg(MessageType.MsgAppResp, 2, 1, { term: 3, index: 4 }));
  assert.equal(node.raft.log.committed, 3, 'index 4 (term 2) is on a majority but must not be committed');
  node.step(msg(MessageType.MsgAppResp, 2, 1, { term: 3, index: 5 }));
  assert.equal(node.raft.log.committed, 5, 'committing the term-3 entry commits index 4 indirectly');
});

test('§5.4.2 sabotage knob: unsafeSkipCommitTermCheck commits an earlier-term entry by counting replicas', () => {
  const net = loneWithLog(1, [1, 2, 3], [entry(4, 2, 'old')], { term: 2 }, {
    configure: (config) => {
      config.testingKnobs = { unsafeSkipCommitTermCheck: true };
    },
  });
  const node = net.node(1);
  node.campaign();
  node.step(msg(MessageType.MsgVoteResp, 2, 1, { term: 3 }));
  net.processReadies();
  node.step(msg(MessageType.MsgAppResp, 2, 1, { term: 3, index: 4 }));
  assert.equal(node.raft.log.committed, 4);
});

test('§5.4.2 entries of an earlier term are committed once a new leader commits its first entry', () => {
  const net = Network.bootstrap([1, 2, 3, 4, 5]);
  net.elect(1);
  net.partition([1, 2], [3, 4, 5]);
  net.propose(1, 'a');
  net.propose(1, 'b');
  net.stabilize();
  assert.deepEqual(net.get(1).applied, [], 'two of five is no quorum');
  net.heal();
  net.elect(2);
  for (const id of [1, 2, 3, 4, 5]) assert.deepEqual(net.get(id).applied, ['a', 'b']);
});

// ----- heartbeats and flow control -----

test('§5.2 the leader sends heartbeats every heartbeatTicks, with commit capped at the follower match', () => {
  const net = Network.bootstrap([1, 2, 3], { heartbeatTicks: 2 });
  net.elect(1);
  net.isolate(3);
  net.propose(1, 'a');
  net.stabilize();
  net.take();
  net.tick(1);
  net.processReadies();
  assert.equal(net.take(MessageType.MsgHeartbeat).length, 0, 'not before heartbeatTicks');
  net.tick(1);
  net.processReadies();
  const beats = net.take(MessageType.MsgHeartbeat);
  assert.deepEqual(beats.map((m) => m.to), [2n, 3n]);
  assert.equal(beats.find((m) => m.to === 2n)?.commit, 5);
  assert.equal(beats.find((m) => m.to === 3n)?.commit, 4, 'min(leader commit, follower match)');
});

test('§5.3 batching: MsgApp entries are bounded by maxSizePerMsgBytes (at least one entry each)', () => {
  const net = Network.bootstrap([1, 2, 3], { maxSizePerMsgBytes: 300 });
  net.elect(1);
  for (let i = 0; i < 10; i++) net.node(1).propose(new Uint8Array(100));
  net.processReadies();
  const appends = net.take(MessageType.MsgApp).filter((m) => m.to === 2n);
  assert.equal(appends.length, 5);
  assert.ok(appends.every((m) => m.entries.length === 2));
  const big = Network.bootstrap([1, 2], { maxSizePerMsgBytes: 10 });
  big.elect(1);
  big.node(1).propose(new Uint8Array(1000));
  big.processReadies();
  assert.equal(big.take(MessageType.MsgApp)[0]?.entries.length, 1, 'an oversized entry still goes');
});

test('§5.3 pipelining: the in-flight window is bounded by maxInflightMessages', () => {
  const net = Network.bootstrap([1, 2], { maxSizePerMsgBytes: 1, maxInflightMessages: 2 });
  net.elect(1);
  for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
  net.processReadies();
  const appends = net.take(MessageType.MsgApp);
  assert.equal(appends.length, 2);
  assert.equal(net.node(1).status().progress?.get(2n)?.inflightMessages, 2);
  net.node(1).step(msg(MessageType.MsgAppResp, 2, 1, { term: 2, index: appends[0]!.entries[0]!.index }));
  net.processReadies();
  assert.equal(net.take(MessageType.MsgApp).length, 1, 'one acknowledgement frees one slot');
});

test('§5.3 pipelining: the in-flight window is bounded by maxInflightBytes', () => {
  const net = Network.bootstrap([1, 2], { maxSizePerMsgBytes: 1, maxInflightBytes: 250 });
  net.elect(1);
  for (let i = 0; i < 6; i++) net.node(1).propose(new Uint8Array(100));
  net.processReadies();
  assert.equal(net.take(MessageType.MsgApp).length, 3, '100 + 100 + 100 reaches 250');
});

test('§5.3 Probe state sends one MsgApp per heartbeat interval until a success', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  net.node(1).reportUnreachable(3n);
  assert.equal(net.node(1).status().progress?.get(3n)?.state, ProgressState.Probe);
  net.isolate(3);
  net.sent = [];
  for (let i = 0; i < 4; i++) net.propose(1, `p${i}`);
  net.stabilize();
  const probes = () => net.sent.filter((m) => m.type === MessageType.MsgApp && m.to === 3n).length;
  assert.equal(probes(), 1, 'paused after one probe');
  net.heal();
  net.tickAll(1);
  assert.equal(net.node(1).status().progress?.get(3n)?.state, ProgressState.Replicate);
  assert.deepEqual(net.get(3).applied, ['p0', 'p1', 'p2', 'p3']);
});

test('§5.3 reportUnreachable moves a Replicate follower to Probe', () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.elect(1);
  assert.equal(net.node(1).status().progress?.get(2n)?.state, ProgressState.Replicate);
  net.node(1).reportUnreachable(2n);
  const progress = net.node(1).status().progress?.get(2n);
  assert.equal(progress?.state, ProgressState.Probe);
  assert.equal(progress?.next, (progress?.match ?? 0) + 1);
});
