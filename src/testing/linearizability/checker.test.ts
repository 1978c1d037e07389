/**
 * Hand-written histories for the linearizability checker: ones it must accept, and ones it
 * must reject with a readable counterexample (the checker is shown to fail).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizability } from './checker';
import { get, put } from './test-helpers';

test('an empty history is linearizable', () => {
  assert.equal(checkLinearizability([]).ok, true);
});

test('sequential puts and gets on one key are linearizable', () => {
  const history = [get('x', null, 0, 1), put('x', '1', 2, 3), get('x', '1', 4, 5), put('x', '2', 6, 7), get('x', '2', 8, 9)];
  const result = checkLinearizability(history);
  assert.equal(result.verdict, 'linearizable');
});

test('THE classic stale read is rejected: put 1 acked, put 2 acked, a later get returns 1', () => {
  const first = put('x', '1', 0, 10, 'ok', 1);
  const second = put('x', '2', 20, 30, 'ok', 1);
  const stale = get('x', '1', 40, 50, 'ok', 2);
  const result = checkLinearizability([first, second, stale]);
  assert.equal(result.ok, false);
  assert.ok(result.verdict === 'not-linearizable');
  assert.equal(result.key, 'x');
  assert.deepEqual(result.failingKeys, ['x']);
  assert.deepEqual(
    result.counterexample.map((operation) => operation.id),
    [first.id, second.id, stale.id],
  );
  assert.equal(result.counterexampleMinimal, true);
  assert.deepEqual(
    result.longestLinearizablePrefix.map((operation) => operation.id),
    [first.id, second.id],
  );
  assert.match(result.explanation, /would read "1" but the register holds "2"/);
  assert.match(result.explanation, new RegExp(`#${stale.id} returned at`));
});

test('a stale read is accepted when the get overlaps the second put', () => {
  const history = [put('x', '1', 0, 10), put('x', '2', 20, 30), get('x', '1', 25, 50)];
  assert.equal(checkLinearizability(history).ok, true);
});

test('overlapping puts may take effect in either order', () => {
  const a = put('x', 'a', 0, 10);
  const b = put('x', 'b', 5, 15);
  assert.equal(checkLinearizability([a, b, get('x', 'a', 20, 21)]).ok, true);
  assert.equal(checkLinearizability([a, b, get('x', 'b', 20, 21)]).ok, true);
  // But once a read saw "b" after both returned, a later read cannot see "a" again.
  const result = checkLinearizability([a, b, get('x', 'b', 20, 21), get('x', 'a', 22, 23)]);
  assert.equal(result.verdict, 'not-linearizable');
});

test('concurrent reads may see the old and the new value, but not new then old in real time', () => {
  const write = put('x', '1', 0, 100);
  assert.equal(checkLinearizability([write, get('x', null, 10, 20), get('x', '1', 30, 40)]).ok, true);
  assert.equal(checkLinearizability([write, get('x', '1', 10, 20), get('x', null, 30, 40)]).verdict, 'not-linearizable');
  // Overlapping reads may be ordered either way.
  assert.equal(checkLinearizability([write, get('x', '1', 10, 40), get('x', null, 30, 50)]).ok, true);
});

test('a get before any put completes may read absent; after it completes it may not', () => {
  assert.equal(checkLinearizability([put('x', '1', 0, 10), get('x', null, 5, 6)]).ok, true);
  const result = checkLinearizability([put('x', '1', 0, 10), get('x', null, 11, 12)]);
  assert.equal(result.verdict, 'not-linearizable');
});

test('operations that touch at one instant count as concurrent', () => {
  // The get is called at the very time the put returns: either order is allowed.
  assert.equal(checkLinearizability([put('x', '1', 0, 10), get('x', null, 10, 12)]).ok, true);
});

test('an indeterminate put that took effect explains a later read', () => {
  const history = [put('x', '1', 0, 10), put('x', '2', 20, 25, 'indeterminate'), get('x', '2', 1000, 1010)];
  assert.equal(checkLinearizability(history).ok, true);
});

test('an indeterminate put that did not take effect is fine too', () => {
  const history = [put('x', '1', 0, 10), put('x', '2', 20, 25, 'indeterminate'), get('x', '1', 1000, 1010)];
  const result = checkLinearizability(history);
  assert.equal(result.ok, true);
  assert.equal(result.keys[0]?.droppedUnobservedIndeterminatePuts, 1);
});

test('an indeterminate put may take effect long after its client gave up', () => {
  const history = [
    put('x', '2', 20, 25, 'indeterminate'),
    get('x', null, 100, 110),
    put('x', '1', 200, 210),
    get('x', '1', 300, 310),
    get('x', '2', 400, 410),
  ];
  assert.equal(checkLinearizability(history).ok, true);
});

test('an indeterminate put cannot take effect, be overwritten and come back', () => {
  const history = [
    put('x', '1', 0, 10),
    put('x', '2', 20, 25, 'indeterminate'),
    get('x', '2', 100, 110),
    get('x', '1', 200, 210),
  ];
  assert.equal(checkLinearizability(history).verdict, 'not-linearizable');
});

test('indeterminate puts with duplicate values are kept open-ended and still checked', () => {
  const history = [
    put('x', 'same', 0, 5, 'indeterminate'),
    put('x', 'same', 10, 15, 'indeterminate'),
    put('x', '1', 20, 30),
    get('x', 'same', 40, 50),
    get('x', '1', 60, 70),
  ];
  // "same" must take effect after put 1, so "1" cannot be read afterwards.
  assert.equal(checkLinearizability(history).verdict, 'not-linearizable');
  assert.equal(checkLinearizability(history.slice(0, 4)).ok, true);
});

test('a value written only by a failed put must never be read', () => {
  const failed = put('x', '1', 0, 10, 'fail');
  const read = get('x', '1', 20, 30);
  const result = checkLinearizability([failed, read]);
  assert.ok(result.verdict === 'not-linearizable');
  assert.deepEqual(result.counterexample.map((operation) => operation.id), [read.id]);
  assert.match(result.explanation, /FAILED/);
});

test('a read of a value nobody wrote is rejected', () => {
  const result = checkLinearizability([put('x', '1', 0, 10), get('x', 'ghost', 20, 30)]);
  assert.ok(result.verdict === 'not-linearizable');
  assert.match(result.explanation, /no PUT to this key ever wrote/);
});

test('failed and indeterminate gets are ignored', () => {
  const history = [put('x', '1', 0, 10), get('x', 'garbage', 20, 30, 'fail'), get('x', null, 40, 50, 'indeterminate')];
  assert.equal(checkLinearizability(history).ok, true);
});

test('keys are checked independently and the failing key is named', () => {
  const history = [
    put('a', '1', 0, 10),
    put('b', '1', 0, 10),
    put('b', '2', 20, 30),
    get('a', '1', 40, 50),
    get('b', '1', 40, 50),
  ];
  const result = checkLinearizability(history);
  assert.ok(result.verdict === 'not-linearizable');
  assert.equal(result.key, 'b');
  assert.deepEqual(result.failingKeys, ['b']);
  assert.deepEqual(
    result.keys.map((report) => [report.key, report.verdict]),
    [
      ['a', 'linearizable'],
      ['b', 'not-linearizable'],
    ],
  );
});

test('shrinking finds the small core of a violation inside a long history', () => {
  const history = [];
  let time = 0;
  for (let index = 0; index < 200; index++) {
    history.push(put('x', `v${index}`, time, time + 5));
    history.push(get('x', `v${index}`, time + 6, time + 8));
    time += 10;
  }
  const stale = get('x', 'v150', time + 1, time + 2);
  history.push(stale);
  history.push(put('x', 'after', time + 10, time + 12));
  const result = checkLinearizability(history);
  assert.ok(result.verdict === 'not-linearizable');
  assert.equal(result.counterexampleMinimal, true);
  assert.ok(result.counterexample.length <= 3, `counterexample has ${result.counterexample.length} operations`);
  assert.ok(result.counterexample.some((operation) => operation.id === stale.id));
  assert.equal(result.longestLinearizablePrefix.length, 400);
});

test('a search that runs out of steps answers unknown instead of hanging', () => {
  // Many fully concurrent puts and reads force backtracking.
  const history = [];
  for (let index = 0; index < 12; index++) history.push(put('x', `${index}`, 0, 100));
  for (let index = 0; index < 12; index++) history.push(get('x', `${(index * 5) % 12}`, 0, 100));
  history.push(get('x', 'never-seen-as-last', 0, 100));
  history.push(put('x', 'never-seen-as-last', 0, 100));
  history.push(get('x', '3', 200, 300));
  const result = checkLinearizability(history, { maxStepsPerKey: 50 });
  assert.ok(result.verdict === 'unknown');
  assert.deepEqual(result.unknownKeys, ['x']);
  assert.match(result.explanation, /step-budget/);
});
