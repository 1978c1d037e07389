/** Unit tests of conf-change encoding, validation and application. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyToConfState, checkConfChange, decodeConfChange, encodeConfChange } from './conf-change';
import { ConfChangeType, type ConfChange } from './types';

test('conf change: encode/decode round-trips, including 64-bit IDs and a context', () => {
  const cases: ConfChange[] = [
    { type: ConfChangeType.AddNode, nodeId: 1n, context: new Uint8Array() },
    { type: ConfChangeType.RemoveNode, nodeId: 0xffff_ffff_ffff_ffffn, context: new TextEncoder().encode('http://a:1') },
    { type: ConfChangeType.AddLearnerNode, nodeId: 0x8000_0000_0000_0001n, context: new Uint8Array([0, 1, 2]) },
  ];
  for (const change of cases) assert.deepEqual(decodeConfChange(encodeConfChange(change)), change);
  const encoded = encodeConfChange(cases[1]!);
  assert.equal(encoded.length, 14 + 10);
  const offset = new Uint8Array(encoded.length + 3);
  offset.set(encoded, 3);
  assert.deepEqual(decodeConfChange(offset.subarray(3)), cases[1], 'works on a view with an offset');
});

test('conf change: malformed bytes are rejected', () => {
  const good = encodeConfChange({ type: ConfChangeType.AddNode, nodeId: 7n, context: new Uint8Array([1]) });
  assert.throws(() => decodeConfChange(good.subarray(0, 5)));
  assert.throws(() => decodeConfChange(good.subarray(0, good.length - 1)));
  const badVersion = good.slice();
  badVersion[0] = 9;
  assert.throws(() => decodeConfChange(badVersion));
  const badType = good.slice();
  badType[1] = 7;
  assert.throws(() => decodeConfChange(badType));
});

test('conf change: validation and application follow single-server semantics', () => {
  const state = { voters: [1n, 2n], learners: [3n], removed: [9n] };
  const change = (type: ConfChangeType, id: bigint): ConfChange => ({ type, nodeId: id, context: new Uint8Array() });
  assert.equal(checkConfChange(state, change(ConfChangeType.AddNode, 9n)), 'removed-node');
  assert.equal(checkConfChange(state, change(ConfChangeType.AddNode, 2n)), 'conf-change-invalid');
  assert.equal(checkConfChange(state, change(ConfChangeType.RemoveNode, 4n)), 'conf-change-invalid');
  assert.equal(checkConfChange(state, change(ConfChangeType.AddLearnerNode, 1n)), 'conf-change-invalid');
  assert.equal(checkConfChange(state, change(ConfChangeType.AddLearnerNode, 3n)), 'conf-change-invalid');
  assert.equal(checkConfChange({ voters: [1n], learners: [], removed: [] }, change(ConfChangeType.RemoveNode, 1n)), 'conf-change-invalid');
  const promoted = applyToConfState(state, change(ConfChangeType.AddNode, 3n));
  assert.deepEqual(promoted, { ok: true, confState: { voters: [1n, 2n, 3n], learners: [], removed: [9n] } });
  const removed = applyToConfState(state, change(ConfChangeType.RemoveNode, 3n));
  assert.deepEqual(removed.confState, { voters: [1n, 2n], learners: [], removed: [9n, 3n] });
  const added = applyToConfState(state, change(ConfChangeType.AddLearnerNode, 4n));
  assert.deepEqual(added.confState.learners, [3n, 4n]);
  const refused = applyToConfState(state, change(ConfChangeType.AddNode, 1n));
  assert.equal(refused.ok, false);
  assert.equal(refused.confState, state, 'unchanged');
});
