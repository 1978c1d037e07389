/** Tests of the simulator's seeded PRNG: determinism, ranges and rough uniformity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from './prng';

test('the same seed gives the same sequence; different seeds differ', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const sequenceA = Array.from({ length: 100 }, () => a.nextUint32());
  const sequenceB = Array.from({ length: 100 }, () => b.nextUint32());
  const sequenceC = Array.from({ length: 100 }, () => c.nextUint32());
  assert.deepEqual(sequenceA, sequenceB);
  assert.notDeepEqual(sequenceA, sequenceC);
  for (const value of sequenceA) assert.ok(Number.isInteger(value) && value >= 0 && value < 2 ** 32);
});

test('the sequence is pinned, so a seed replays identically across versions of this file', () => {
  const prng = new Prng(1);
  const firstValues = [prng.nextUint32(), prng.nextUint32(), prng.nextUint32()];
  // If this changes, every recorded failing seed changes meaning: change it deliberately only.
  assert.deepEqual(firstValues, [2442144158, 3238099751, 3819917871]);
});

test('int stays in range and is roughly uniform', () => {
  const prng = new Prng(7);
  const counts = new Array<number>(10).fill(0);
  const draws = 100_000;
  for (let i = 0; i < draws; i++) {
    const value = prng.int(10);
    assert.ok(value >= 0 && value < 10);
    counts[value] = (counts[value] ?? 0) + 1;
  }
  for (const count of counts) assert.ok(Math.abs(count - draws / 10) < draws / 100, `count ${count}`);
  assert.throws(() => prng.int(0));
  assert.throws(() => prng.int(1.5));
});

test('between, chance, pick, shuffle and fork behave', () => {
  const prng = new Prng(99);
  for (let i = 0; i < 1000; i++) {
    const value = prng.between(3, 5);
    assert.ok(value >= 3 && value <= 5);
  }
  assert.equal(prng.chance(0), false);
  assert.equal(prng.chance(1), true);
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (prng.chance(0.25)) hits++;
  assert.ok(hits > 2200 && hits < 2800, `hits ${hits}`);
  const items = [1, 2, 3, 4, 5, 6];
  const shuffled = prng.shuffle(items);
  assert.deepEqual([...shuffled].sort(), items);
  assert.ok(items.includes(prng.pick(items)));
  assert.throws(() => prng.pick([]));
  const forkA = new Prng(5).fork();
  const forkB = new Prng(5).fork();
  assert.equal(forkA.nextUint32(), forkB.nextUint32());
});
