/**
 * The history model: recording with a clock, preparation for checking, and the JSON-lines
 * format used for post-mortems (including its validation of malformed files).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  HistoryRecorder,
  effectiveReturnTimeMs,
  formatHistoryJsonLines,
  loadHistory,
  parseHistoryJsonLines,
  partitionByKey,
  prepareForChecking,
  saveHistory,
} from './history';
import { get, put } from './test-helpers';

test('the recorder stamps call and return times from its clock and keeps put values', () => {
  let nowMs = 100;
  const recorder = new HistoryRecorder(() => nowMs);
  const write = recorder.invoke(1, 'x', 'put', 'a');
  nowMs = 110;
  const read = recorder.invoke(2, 'x', 'get', null);
  nowMs = 120;
  recorder.complete(read, 'ok', 'a');
  nowMs = 130;
  recorder.complete(write, 'ok');
  assert.deepEqual(recorder.history(), [
    { id: 1, client: 1, key: 'x', kind: 'put', value: 'a', callTimeMs: 100, returnTimeMs: 130, outcome: 'ok' },
    { id: 2, client: 2, key: 'x', kind: 'get', value: 'a', callTimeMs: 110, returnTimeMs: 120, outcome: 'ok' },
  ]);
  assert.throws(() => recorder.complete(write, 'ok'), /not pending/);
  assert.throws(() => recorder.invoke(1, 'x', 'put', null), /must carry a value/);
});

test('operations still pending when the history is taken are indeterminate', () => {
  let nowMs = 0;
  const recorder = new HistoryRecorder(() => nowMs);
  recorder.invoke(1, 'x', 'put', 'a');
  nowMs = 50;
  assert.equal(recorder.pendingCount, 1);
  const [operation] = recorder.history();
  assert.equal(operation?.outcome, 'indeterminate');
  assert.equal(operation?.returnTimeMs, 50);
  assert.equal(effectiveReturnTimeMs(operation!), Number.POSITIVE_INFINITY);
});

test('a failed or indeterminate get records no value', () => {
  const recorder = new HistoryRecorder(() => 0);
  const read = recorder.invoke(1, 'x', 'get', null);
  assert.equal(recorder.complete(read, 'indeterminate', 'ignored').value, null);
});

test('preparation drops failed operations and indeterminate gets, keeps indeterminate puts', () => {
  const kept = [put('x', '1', 0, 1), get('x', '1', 2, 3), put('x', '2', 4, 5, 'indeterminate')];
  const dropped = [put('x', '3', 0, 1, 'fail'), get('x', null, 0, 1, 'fail'), get('x', null, 0, 1, 'indeterminate')];
  assert.deepEqual(prepareForChecking([...kept, ...dropped]), kept);
  const byKey = partitionByKey([put('a', '1', 0, 1), put('b', '1', 0, 1), get('a', '1', 2, 3)]);
  assert.deepEqual([...byKey.keys()], ['a', 'b']);
  assert.equal(byKey.get('a')?.length, 2);
});

test('a history survives a round trip through a JSON-lines file', () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-history-'));
  try {
    const history = [put('x', 'a "quoted"\nvalue', 0, 1.5), get('x', null, 2, 3), put('y', '2', 4, 5, 'indeterminate')];
    const file = path.join(directory, 'history.jsonl');
    saveHistory(file, history);
    assert.equal(fs.readFileSync(file, 'utf8').split('\n').length, 4);
    assert.deepEqual(loadHistory(file), history);
    fs.writeFileSync(file, formatHistoryJsonLines(history) + '{"id": 1}\n');
    assert.throws(() => loadHistory(file), /history\.jsonl:4: client must be an integer/);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('malformed history lines are rejected with a reason', () => {
  const valid = { id: 1, client: 1, key: 'x', kind: 'put', value: 'a', callTimeMs: 0, returnTimeMs: 1, outcome: 'ok' };
  const cases: Array<[unknown, RegExp]> = [
    [{ ...valid, kind: 'cas' }, /kind/],
    [{ ...valid, value: null }, /put must carry a value/],
    [{ ...valid, returnTimeMs: -1 }, /before callTimeMs/],
    [{ ...valid, outcome: 'maybe' }, /outcome/],
    [{ ...valid, value: 3 }, /value must be/],
  ];
  for (const [record, reason] of cases) {
    const result = parseHistoryJsonLines(JSON.stringify(record));
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, reason);
  }
  const notJson = parseHistoryJsonLines('\n{oops');
  assert.deepEqual(notJson.ok ? undefined : notJson.line, 2);
  const duplicate = parseHistoryJsonLines(`${JSON.stringify(valid)}\n${JSON.stringify(valid)}\n`);
  assert.match(duplicate.ok ? '' : duplicate.reason, /duplicate id 1/);
});
