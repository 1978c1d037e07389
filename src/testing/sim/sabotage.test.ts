/**
 * The simulator's checkers must be shown to fail on sabotaged nodes (HOUSE_STYLE "Checkers must
 * be shown to fail"). Each scenario is driven by hand through the simulator's network controls
 * and run twice: with the sabotage (the checker must throw the expected violation) and without
 * it (the same script must pass), so the test proves both that the checker fires and that the
 * script itself is legitimate.
 *
 * (a) unsafeSkipCommitTermCheck: the Figure 8 scenario of the Raft paper (§5.4.2). A leader of
 *     term 4 commits an entry of term 2 by counting replicas; a later leader of term 5 holding a
 *     conflicting entry of term 3 at that index is elected and overwrites it.
 * (b) A disk that forgets HardState.vote: a voter grants its vote in term 2, crashes, restarts
 *     with no vote and grants another candidate in the same term: two leaders in term 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawNode } from '../../raft/raw-node';
import { MessageType, Role, type NodeId } from '../../raft/types';
import { InvariantViolation, type InvariantName } from './checkers';
import { Prng } from './prng';
import { DEFAULT_CORE_SETTINGS, Simulator } from './simulator';

const encoder = new TextEncoder();

function scriptedSimulator(voters: number, sabotage: { unsafeCommitNodes?: NodeId[]; forgetVoteNodes?: NodeId[] }): Simulator {
  return new Simulator({
    prng: new Prng(1),
    voters: Array.from({ length: voters }, (_, i) => BigInt(i + 1)),
    // No pre-vote or check-quorum: the script calls campaign() directly and never ticks.
    // One entry per MsgApp, so the script can let some entries through and not others.
    core: { ...DEFAULT_CORE_SETTINGS, preVote: false, checkQuorum: false, maxSizePerMsgBytes: 1 },
    createNode: (config) => new RawNode(config),
    ...sabotage,
  });
}

function expectViolation(invariant: InvariantName, script: () => void): InvariantViolation {
  try {
    script();
  } catch (error) {
    if (error instanceof InvariantViolation && error.invariant === invariant) return error;
    throw error;
  }
  assert.fail(`expected a ${invariant} violation`);
}

/** Figure 8: returns normally when safety held; throws the checker's violation otherwise. */
function figure8(sim: Simulator): void {
  const node = (id: bigint) => sim.node(id);
  sim.settle();
  sim.campaign(node(1n));
  sim.settle();
  assert.equal(node(1n).role, Role.Leader);
  const base = node(1n).storage.lastIndex(); // bootstrap entries plus term 2's no-op, everywhere
  // (a) Term 2: n1 replicates X (index base+1) to n2 only, then crashes.
  sim.network.partition([1n], [3n, 4n, 5n]);
  assert.equal(node(1n).raw!.propose(encoder.encode('X')).ok, true);
  sim.settle();
  assert.equal(node(2n).storage.lastIndex(), base + 1);
  sim.crash(node(1n));
  sim.network.heal();
  // (b) Term 3: n5 is elected by n3, n4 (n2's log is longer), appends Y at base+1 and crashes
  // before sending it to anyone.
  sim.deliveryFilter = (envelope) => !(envelope.message.from === 5n && envelope.message.type === MessageType.MsgApp);
  sim.campaign(node(5n));
  sim.settle();
  assert.equal(node(5n).role, Role.Leader);
  assert.equal(node(5n).storage.term(base + 1), 3);
  sim.crash(node(5n));
  sim.deliveryFilter = undefined;
  // (c) Term 4 (after a failed try at 3): n1 restarts, is elected by n2, n3, n4 and replicates
  // X (term 2) to n3 and n4, but not its own no-op of term 4 (base+2).
  sim.restart(node(1n));
  sim.deliveryFilter = (envelope) => {
    const message = envelope.message;
    const toLagging = message.to === 3n || message.to === 4n;
    // A lagging node without X rejects the optimistic append (so the leader probes back and
    // sends X); once it holds X, appends of the term-4 entry are dropped.
    const holdsX = sim.node(message.to).storage.lastIndex() >= base + 1;
    return !(message.type === MessageType.MsgApp && toLagging && holdsX && message.entries.some((entry) => entry.index >= base + 2));
  };
  sim.settle(); // applies the committed conf changes first: the core will not campaign before
  for (let attempt = 0; attempt < 3 && node(1n).role !== Role.Leader; attempt++) {
    sim.campaign(node(1n));
    sim.settle();
  }
  assert.equal(node(1n).role, Role.Leader);
  assert.equal(node(3n).storage.term(base + 1), 2);
  // With the safe rule, X is not committed here (it is of an earlier term).
  // (d) Term 5: n1 crashes; n5 restarts and is elected by n3, n4 (its last term 3 beats their 2).
  sim.crash(node(1n));
  sim.deliveryFilter = undefined;
  sim.restart(node(5n));
  sim.settle();
  for (let attempt = 0; attempt < 3 && node(5n).role !== Role.Leader; attempt++) {
    sim.campaign(node(5n));
    sim.settle();
  }
  assert.equal(node(5n).role, Role.Leader);
  // n5 now overwrites index base+1 with its Y (term 3) everywhere it can, and commits it.
  sim.settle();
}

test('(a) Figure 8 with unsafeSkipCommitTermCheck: the checkers catch the overwritten committed entry', () => {
  const sim = scriptedSimulator(5, { unsafeCommitNodes: [1n, 2n, 3n, 4n, 5n] });
  const violation = expectViolation('leader-completeness', () => figure8(sim));
  assert.match(violation.message, /became leader of term 5 without committed entry/);
});

test('(a) control: the same Figure 8 script with the safe commit rule breaks nothing', () => {
  const sim = scriptedSimulator(5, {});
  figure8(sim);
  const leader = sim.node(5n);
  assert.equal(leader.role, Role.Leader);
  // The term-3 entry won: it is what every live node applied at that index.
  const record = sim.checkers.committed.get(leader.storage.lastIndex() - 1);
  assert.equal(record?.term, 3);
});

/** Two candidates in term 2 and one voter between them that crashes in the middle. */
function doubleVote(sim: Simulator): void {
  const node = (id: bigint) => sim.node(id);
  sim.settle();
  // Only the vote exchange between n1 and n2 gets through; n3 never hears from n1.
  sim.deliveryFilter = (envelope) => {
    const { from, to, type } = envelope.message;
    if (from !== 1n && to !== 1n) return true;
    return (from === 1n && to === 2n && type === MessageType.MsgVote) || (from === 2n && to === 1n && type === MessageType.MsgVoteResp);
  };
  sim.campaign(node(1n));
  sim.settle();
  assert.equal(node(1n).role, Role.Leader);
  assert.equal(node(1n).term, 2);
  sim.crash(node(2n));
  sim.restart(node(2n));
  sim.campaign(node(3n)); // term 1 -> 2, asks n2 (and n1, filtered)
  sim.settle();
}

test('(b) a disk that forgets the vote: the checker catches two leaders in one term', () => {
  const sim = scriptedSimulator(3, { forgetVoteNodes: [2n] });
  const violation = expectViolation('election-safety', () => doubleVote(sim));
  assert.match(violation.message, /two leaders in term 2/);
});

test('(b) control: with the vote persisted the second candidate loses', () => {
  const sim = scriptedSimulator(3, {});
  doubleVote(sim);
  assert.notEqual(sim.node(3n).role, Role.Leader);
  assert.equal(sim.checkers.leaders.get(2), 1n);
});
