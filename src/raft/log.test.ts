/** Unit tests of RaftLog and Unstable: terms across the boundary, conflicts, append, slices, commit/apply. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftLog } from './log';
import { MemoryStorage } from './storage';
import { entry } from './testing-helpers';

function logWith(stored: number[], unstableTerms: number[] = []): RaftLog {
  const storage = new MemoryStorage();
  storage.append(stored.map((term, i) => entry(i + 1, term, `s${i + 1}`)));
  const log = new RaftLog(storage, Infinity);
  log.append(unstableTerms.map((term, i) => entry(stored.length + i + 1, term, `u${i}`)));
  return log;
}

test('RaftLog: terms, last index and matchTerm span storage and the unstable tail', () => {
  const log = logWith([1, 1, 2], [3, 3]);
  assert.equal(log.lastIndex(), 5);
  assert.equal(log.lastTerm(), 3);
  assert.equal(log.term(3), 2);
  assert.equal(log.term(4), 3);
  assert.equal(log.term(0), 0);
  assert.equal(log.term(6), 'unavailable');
  assert.ok(log.matchTerm(4, 3));
  assert.ok(!log.matchTerm(4, 2));
  assert.equal(log.stableLastIndex(), 3);
});

test('RaftLog: isUpToDate compares last term, then last index (Raft §5.4.1)', () => {
  const log = logWith([1, 2, 2]);
  assert.ok(log.isUpToDate(3, 2));
  assert.ok(log.isUpToDate(1, 3));
  assert.ok(!log.isUpToDate(2, 2));
  assert.ok(!log.isUpToDate(9, 1));
});

test('RaftLog: findConflict and findConflictByTerm', () => {
  const log = logWith([1, 1, 2, 2, 3]);
  assert.equal(log.findConflict([entry(2, 1), entry(3, 2)]), 0);
  assert.equal(log.findConflict([entry(3, 2), entry(4, 3)]), 4);
  assert.equal(log.findConflict([entry(5, 3), entry(6, 3)]), 6);
  assert.deepEqual(log.findConflictByTerm(5, 2), { index: 4, term: 2 });
  assert.deepEqual(log.findConflictByTerm(5, 1), { index: 2, term: 1 });
  assert.deepEqual(log.findConflictByTerm(9, 5), { index: 5, term: 3 }, 'capped at the last index');
  assert.deepEqual(log.findConflictByTerm(5, 0), { index: 0, term: 0 });
});

test('RaftLog: maybeAppend checks the previous entry, truncates conflicts and commits min(leader commit, last new)', () => {
  const log = logWith([1, 1], [2, 2]);
  assert.equal(log.maybeAppend(4, 3, 9, [entry(5, 3)]), undefined, 'previous entry term mismatch');
  assert.equal(log.maybeAppend(2, 1, 9, [entry(3, 3)]), 3);
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.committed, 3);
  assert.equal(log.maybeAppend(1, 1, 2, [entry(2, 1)]), 2, 'already present: nothing truncated');
  assert.equal(log.lastIndex(), 3);
  assert.throws(() => log.maybeAppend(1, 1, 3, [entry(2, 5)]), /committed/, 'never overwrite a committed entry');
});

test('RaftLog: slice spans storage and unstable within a byte limit; compacted ranges are values', () => {
  const log = logWith([1, 1, 1], [2, 2]);
  assert.deepEqual((log.slice(2, 6, Infinity) as { index: number }[]).map((e) => e.index), [2, 3, 4, 5]);
  assert.deepEqual((log.slice(2, 6, 40) as { index: number }[]).map((e) => e.index), [2, 3]);
  assert.deepEqual((log.slice(3, 6, 40) as { index: number }[]).map((e) => e.index), [3, 4]);
  assert.deepEqual((log.slice(4, 6, 0) as { index: number }[]).map((e) => e.index), [4]);
  (log.storage as MemoryStorage).compact(2);
  assert.equal(log.slice(2, 4, Infinity), 'compacted');
});

test('RaftLog: committed entries come out once applied moves, and stableTo drops persisted entries', () => {
  const log = logWith([1, 1], [2, 2]);
  log.commitTo(3);
  assert.deepEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2, 3]);
  log.appliedTo(3);
  assert.equal(log.hasNextCommittedEntries(), false);
  assert.throws(() => log.commitTo(9), /beyond/);
  log.unstable.stableTo(4, 2);
  assert.equal(log.unstable.entries.length, 0);
  assert.equal(log.unstable.offset, 5);
  log.unstable.stableTo(4, 7);
  assert.equal(log.unstable.offset, 5, 'a mismatching term is ignored');
});
