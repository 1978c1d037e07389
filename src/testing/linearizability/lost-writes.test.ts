/**
 * The lost-write checker: final values after healing that are explained by the acknowledged
 * writes pass; lost, phantom and failed-but-applied writes are reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLostWrites } from './lost-writes';
import { put } from './test-helpers';

test('the value of the last acknowledged put is a valid final value', () => {
  const history = [put('x', '1', 0, 10), put('x', '2', 20, 30)];
  assert.deepEqual(checkLostWrites(history, [{ key: 'x', value: '2' }]), { ok: true, keysChecked: 1 });
});

test('an older acknowledged value after a newer acknowledged put is a lost write', () => {
  const older = put('x', '1', 0, 10);
  const newer = put('x', '2', 20, 30);
  const result = checkLostWrites([older, newer], [{ key: 'x', value: '1' }]);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.violations.length, 1);
  const [violation] = result.violations;
  assert.equal(violation?.kind, 'lost-write');
  assert.equal(violation?.lastAcknowledgedPut, newer);
  assert.deepEqual(violation?.writers, [older]);
  assert.match(violation?.explanation ?? '', /acknowledged write was lost/);
});

test('a put concurrent with the last acknowledged put may win', () => {
  const history = [put('x', '1', 0, 25), put('x', '2', 20, 30)];
  assert.equal(checkLostWrites(history, [{ key: 'x', value: '1' }]).ok, true);
});

test('an indeterminate put, even an early one, may be the final value', () => {
  const history = [put('x', 'maybe', 0, 5, 'indeterminate'), put('x', '2', 20, 30)];
  assert.equal(checkLostWrites(history, [{ key: 'x', value: 'maybe' }]).ok, true);
  assert.equal(checkLostWrites(history, [{ key: 'x', value: '2' }]).ok, true);
});

test('absent after an acknowledged put is a lost write; absent with no acknowledged put is fine', () => {
  const lost = checkLostWrites([put('x', '1', 0, 10)], [{ key: 'x', value: null }]);
  assert.equal(lost.ok ? undefined : lost.violations[0]?.kind, 'lost-write');
  const history = [put('x', '1', 0, 10, 'indeterminate'), put('y', '1', 0, 10, 'fail')];
  const finals = [
    { key: 'x', value: null },
    { key: 'y', value: null },
  ];
  assert.equal(checkLostWrites(history, finals).ok, true);
});

test('a value written only by a failed put, or by nobody, is reported', () => {
  const history = [put('x', '1', 0, 10, 'fail'), put('y', '1', 0, 10)];
  const result = checkLostWrites(history, [
    { key: 'x', value: '1' },
    { key: 'y', value: 'ghost' },
  ]);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(
    result.violations.map((violation) => [violation.key, violation.kind]),
    [
      ['x', 'failed-write-applied'],
      ['y', 'unwritten-value'],
    ],
  );
});

test('a key with writes but no final read is reported, since nothing could be checked', () => {
  const result = checkLostWrites([put('x', '1', 0, 10)], []);
  assert.equal(result.ok ? undefined : result.violations[0]?.kind, 'no-final-read');
});

test('the last acknowledged put is the one called last, not the one returned last', () => {
  // A slow put called first and returned last, and a quick one called later: the quick one is
  // the last acknowledged put, and the slow one overlaps it, so either value is fine.
  const slow = put('x', 'slow', 0, 100);
  const quick = put('x', 'quick', 50, 60);
  assert.equal(checkLostWrites([slow, quick], [{ key: 'x', value: 'slow' }]).ok, true);
  assert.equal(checkLostWrites([slow, quick], [{ key: 'x', value: 'quick' }]).ok, true);
  // A put that finished before the quick one was called is stale.
  const early = put('x', 'early', 0, 40);
  const result = checkLostWrites([early, slow, quick], [{ key: 'x', value: 'early' }]);
  assert.equal(result.ok ? undefined : result.violations[0]?.kind, 'lost-write');
});
