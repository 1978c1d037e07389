/** Unit tests of MemoryStorage (the Storage port's in-memory implementation). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from './storage';
import { entry } from './testing-helpers';

const filled = (last: number, term = 1): MemoryStorage => {
  const storage = new MemoryStorage();
  const entries = [];
  for (let i = 1; i <= last; i++) entries.push(entry(i, term, `e${i}`));
  storage.append(entries);
  return storage;
};
const indexes = (result: ReturnType<MemoryStorage['entries']>): number[] | string =>
  typeof result === 'string' ? result : result.map((e) => e.index);
const confState = { voters: [1n], learners: [], removed: [] };

test('MemoryStorage: empty storage answers index 0 / term 0', () => {
  const storage = new MemoryStorage();
  assert.equal(storage.firstIndex(), 1);
  assert.equal(storage.lastIndex(), 0);
  assert.equal(storage.term(0), 0);
  assert.equal(storage.term(1), 'unavailable');
  assert.deepEqual(storage.entries(1, 1, 100), []);
});

test('MemoryStorage: entries() bounds by bytes but returns at least one; compacted / unavailable as values', () => {
  const storage = filled(5);
  assert.deepEqual(indexes(storage.entries(2, 5, Infinity)), [2, 3, 4]);
  assert.deepEqual(indexes(storage.entries(2, 5, 0)), [2], 'at least one');
  assert.deepEqual(indexes(storage.entries(2, 6, 40)), [2, 3], '18 bytes each');
  assert.equal(storage.entries(1, 7, 100), 'unavailable');
  storage.compact(3);
  assert.equal(storage.entries(3, 4, 100), 'compacted');
  assert.equal(storage.term(2), 'compacted');
  assert.equal(storage.term(3), 1, 'the compaction point still answers its term');
});

test('MemoryStorage: append truncates a conflicting suffix, skips compacted entries, and asserts contiguity', () => {
  const storage = filled(5);
  storage.append([entry(4, 2, 'x'), entry(5, 2, 'y'), entry(6, 2, 'z')]);
  assert.equal(storage.lastIndex(), 6);
  assert.equal(storage.term(3), 1);
  assert.equal(storage.term(4), 2);
  storage.append([entry(3, 3, 'w')]);
  assert.equal(storage.lastIndex(), 3, 'everything after the replaced entry goes');
  storage.compact(2);
  storage.append([entry(1, 3), entry(2, 3), entry(3, 3), entry(4, 3)]);
  assert.equal(storage.firstIndex(), 3);
  assert.equal(storage.lastIndex(), 4);
  assert.throws(() => storage.append([entry(9, 3)]), /gap/);
});

test('MemoryStorage: compact, createSnapshot and applySnapshot report their outcomes as values', () => {
  const storage = filled(10);
  assert.equal(storage.compact(0), 'compacted');
  assert.equal(storage.compact(11), 'unavailable');
  const snapshot = storage.createSnapshot(6, confState, new Uint8Array([1]));
  assert.ok(typeof snapshot !== 'string');
  assert.deepEqual(snapshot.metadata, { index: 6, term: 1, confState });
  assert.equal(storage.createSnapshot(5, confState, new Uint8Array()), 'snapshot-out-of-date');
  assert.equal(storage.createSnapshot(11, confState, new Uint8Array()), 'unavailable');
  assert.equal(storage.compact(6), 'ok');
  assert.equal(storage.firstIndex(), 7);
  assert.equal(storage.compact(6), 'compacted');
  assert.equal(storage.initialState().confState, confState);
  assert.equal(storage.applySnapshot(snapshot), 'snapshot-out-of-date');
  const newer = { metadata: { index: 20, term: 4, confState }, data: new Uint8Array() };
  assert.equal(storage.applySnapshot(newer), 'ok');
  assert.equal(storage.firstIndex(), 21);
  assert.equal(storage.lastIndex(), 20);
  assert.equal(storage.term(20), 4);
  storage.setSnapshotUnavailable(true);
  assert.equal(storage.snapshot(), 'snapshot-temporarily-unavailable');
});

test('MemoryStorage: 100k appends in order stay fast (no copying per append)', () => {
  const storage = new MemoryStorage();
  const data = new Uint8Array(8);
  for (let i = 1; i <= 100_000; i++) storage.append([{ index: i, term: 1, type: 0, data }]);
  assert.equal(storage.lastIndex(), 100_000);
});
