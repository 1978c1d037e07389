/** Tests of the simulated network: delays and ordering, loss, duplication, partitions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageType, type Message, type NodeId } from '../../raft/types';
import { Prng } from './prng';
import { RELIABLE_NETWORK, SimNetwork, type DueMessage } from './network';

function message(from: NodeId, to: NodeId, index: number): Message {
  return {
    type: MessageType.MsgApp, from, to, term: 1, logTerm: 1, index, entries: [], commit: 0,
    reject: false, rejectHint: 0, context: new Uint8Array(0),
  };
}

function drain(network: SimNetwork, now: number): DueMessage[] {
  const out: DueMessage[] = [];
  for (let due = network.takeDue(now); due !== undefined; due = network.takeDue(now)) out.push(due);
  return out;
}

test('a reliable network delivers everything in send order after one time unit', () => {
  const network = new SimNetwork(new Prng(1), RELIABLE_NETWORK);
  for (let i = 0; i < 5; i++) assert.deepEqual(network.send(message(1n, 2n, i), 10, 0), { queued: 1 });
  assert.equal(network.takeDue(10), undefined, 'nothing is delivered before its time');
  const due = drain(network, 11);
  assert.deepEqual(due.map((d) => d.envelope.message.index), [0, 1, 2, 3, 4]);
  assert.ok(due.every((d) => d.outcome === 'deliver'));
  assert.equal(network.inFlight, 0);
});

test('random delays reorder messages, but never deliver early', () => {
  const network = new SimNetwork(new Prng(3), { ...RELIABLE_NETWORK, delayMinimum: 1, delayMaximum: 20 });
  for (let i = 0; i < 200; i++) network.send(message(1n, 2n, i), 0, 0);
  const seen: number[] = [];
  for (let now = 0; now <= 20; now++) {
    for (const due of drain(network, now)) {
      assert.ok(due.envelope.deliverAt <= now && due.envelope.deliverAt >= 1);
      seen.push(due.envelope.message.index);
    }
  }
  assert.equal(seen.length, 200);
  assert.notDeepEqual(seen, [...seen].sort((a, b) => a - b), 'some messages overtook others');
});

test('loss and duplication happen at roughly the configured rates and are counted', () => {
  const network = new SimNetwork(new Prng(5), { ...RELIABLE_NETWORK, lossProbability: 0.2, duplicateProbability: 0.1 });
  let queued = 0;
  for (let i = 0; i < 10_000; i++) queued += network.send(message(1n, 2n, i), 0, 0).queued;
  assert.ok(network.counters.lost > 1800 && network.counters.lost < 2200, `lost ${network.counters.lost}`);
  assert.ok(network.counters.duplicated > 600 && network.counters.duplicated < 1000);
  assert.equal(queued, 10_000 - network.counters.lost + network.counters.duplicated);
  const due = drain(network, 1);
  assert.equal(due.length, queued);
  assert.equal(due.filter((d) => d.envelope.duplicate).length, network.counters.duplicated);
});

test('symmetric and one-way partitions drop at send time and in flight; heal restores', () => {
  const network = new SimNetwork(new Prng(9), RELIABLE_NETWORK);
  network.send(message(1n, 2n, 0), 0, 0); // in flight when the partition starts
  network.partition([1n], [2n, 3n]);
  assert.deepEqual(network.send(message(1n, 3n, 1), 0, 0), { queued: 0, dropped: 'partitioned' });
  assert.deepEqual(network.send(message(3n, 1n, 2), 0, 0), { queued: 0, dropped: 'partitioned' });
  assert.deepEqual(network.send(message(2n, 3n, 3), 0, 0), { queued: 1 });
  const due = drain(network, 1);
  assert.deepEqual(due.map((d) => [d.envelope.message.index, d.outcome]), [[0, 'partitioned'], [3, 'deliver']]);
  network.heal();
  network.blockLink(2n, 1n);
  assert.equal(network.isBlocked(2n, 1n), true);
  assert.equal(network.isBlocked(1n, 2n), false, 'a one-way cut leaves the reverse direction open');
  assert.deepEqual(network.send(message(1n, 2n, 4), 1, 0), { queued: 1 });
  network.unblockLink(2n, 1n);
  assert.equal(network.blockedLinkCount, 0);
});

test('the same seed gives the same deliveries', () => {
  const run = (): string => {
    const network = new SimNetwork(new Prng(77), { lossProbability: 0.1, duplicateProbability: 0.1, delayMinimum: 1, delayMaximum: 9, longDelayProbability: 0.05, longDelayMaximum: 50 });
    for (let i = 0; i < 100; i++) network.send(message(BigInt(1 + (i % 3)), 2n, i), i, 0);
    const out: string[] = [];
    for (let now = 0; now < 200; now++) for (const due of drain(network, now)) out.push(`${now}:${due.envelope.message.index}`);
    return out.join(',');
  };
  assert.equal(run(), run());
});
