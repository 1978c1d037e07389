/**
 * The checkers must be shown to fail: each test feeds a hand-built history, first a correct one
 * (no violation), then the same history broken in one place (the matching violation is thrown).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntryType, type Entry } from '../../raft/types';
import { Checkers, InvariantViolation, type DurableLogView, type InvariantName } from './checkers';

const encoder = new TextEncoder();

function entry(index: number, term: number, data = `v${index}`): Entry {
  return { index, term, type: EntryType.Normal, data: encoder.encode(data) };
}

/** A durable log as a list of terms: `terms[k]` is the term of index snapshotIndex + 1 + k. */
function view(terms: number[], snapshotIndex = 0, snapshotTerm = 0): DurableLogView {
  return {
    snapshotIndex: () => snapshotIndex,
    lastIndex: () => snapshotIndex + terms.length,
    termAt: (index) => (index === snapshotIndex ? snapshotTerm : index > snapshotIndex ? terms[index - snapshotIndex - 1] : undefined),
  };
}

function throwsViolation(invariant: InvariantName, action: () => void): void {
  assert.throws(action, (error: unknown) => error instanceof InvariantViolation && error.invariant === invariant);
}

test('election safety: one leader per term, across history', () => {
  const checkers = new Checkers();
  checkers.observeLeader(1n, 2);
  checkers.observeLeader(2n, 3);
  checkers.observeLeader(1n, 2); // the same leader seen again is fine
  throwsViolation('election-safety', () => checkers.observeLeader(3n, 2));
});

test('log matching: the same (index, term) with different content or history is caught', () => {
  const checkers = new Checkers();
  checkers.observeDurableAppend(1n, view([]), [entry(1, 1), entry(2, 1), entry(3, 2)]);
  checkers.observeDurableAppend(2n, view([1]), [entry(2, 1), entry(3, 2)]); // identical: fine
  throwsViolation('log-matching', () => checkers.observeDurableAppend(3n, view([1, 1]), [entry(3, 2, 'different')]));
  // Same content at (4, 3) but a different preceding term: the logs diverge before it.
  checkers.observeDurableAppend(1n, view([1, 1, 2]), [entry(4, 3)]);
  throwsViolation('log-matching', () => checkers.observeDurableAppend(2n, view([1, 1, 1]), [entry(4, 3)]));
});

test('state machine safety: divergent applied entries or digests are caught', () => {
  const checkers = new Checkers();
  checkers.observeApplied(1n, entry(1, 1), 'digest-1', 1);
  checkers.observeApplied(2n, entry(1, 1), 'digest-1', 1);
  throwsViolation('state-machine-safety', () => checkers.observeApplied(3n, entry(1, 2), 'digest-1', 2));
  throwsViolation('state-machine-safety', () => checkers.observeApplied(3n, entry(1, 1, 'other data'), 'digest-1', 2));
  throwsViolation('state-machine-safety', () => checkers.observeApplied(3n, entry(1, 1), 'digest-x', 2));
  checkers.observeSnapshotRestore(3n, 1, 1, 'digest-1');
  throwsViolation('state-machine-safety', () => checkers.observeSnapshotRestore(3n, 1, 1, 'digest-y'));
  throwsViolation('state-machine-safety', () => checkers.observeSnapshotRestore(3n, 7, 1, 'digest-1'));
});

test('leader completeness: a later leader missing a committed entry is caught', () => {
  const checkers = new Checkers();
  checkers.observeApplied(1n, entry(1, 1), 'd1', 1);
  checkers.observeApplied(1n, entry(2, 2), 'd2', 2); // committed by term 2 at the latest
  checkers.observeLeaderLog(2n, 3, view([1, 2, 3]));
  checkers.observeLeaderLog(2n, 3, view([3], 2, 2)); // covered by its snapshot
  // A leader of term 2 itself may be stale (the bound is not below its term): not checked.
  checkers.observeLeaderLog(3n, 2, view([1]));
  throwsViolation('leader-completeness', () => checkers.observeLeaderLog(3n, 4, view([1, 3])));
  throwsViolation('leader-completeness', () => checkers.observeLeaderLog(3n, 4, view([1])));
});

test('a lost committed entry is caught: overwritten, truncated, discarded by a snapshot, or below quorum', () => {
  const checkers = new Checkers();
  checkers.observeConfState(1n, 3, { voters: [1n, 2n, 3n], learners: [], removed: [] });
  checkers.observeApplied(1n, entry(4, 2), 'd4', 2);
  // Overwriting an uncommitted entry is normal; overwriting the committed one is not.
  checkers.observeDurableAppend(2n, view([1, 1, 1, 2, 2]), [entry(5, 3)]);
  throwsViolation('committed-entry-lost', () => checkers.observeDurableAppend(2n, view([1, 1, 1, 2, 2]), [entry(4, 3)]));
  throwsViolation('committed-entry-lost', () => checkers.observeDurableAppend(2n, view([1, 1, 1, 2, 2]), [entry(3, 1)]));
  throwsViolation('committed-entry-lost', () => checkers.observeSnapshotInstall(2n, view([1, 1, 1, 2]), 3));
  checkers.observeSnapshotInstall(2n, view([1, 1, 1, 2]), 4);
  const held = view([1, 1, 1, 2]);
  const missing = view([1, 1, 1]);
  checkers.checkCommittedDurability(new Map([[1n, held], [2n, held], [3n, missing]]));
  throwsViolation('committed-entry-lost', () => checkers.checkCommittedDurability(new Map([[1n, held], [2n, missing], [3n, missing]])));
});

test('configuration: disagreement at an index, overlapping sets and re-added removed IDs are caught', () => {
  const checkers = new Checkers();
  checkers.observeConfState(1n, 3, { voters: [1n, 2n, 3n], learners: [], removed: [] });
  checkers.observeConfState(2n, 3, { voters: [3n, 2n, 1n], learners: [], removed: [] });
  throwsViolation('configuration', () => checkers.observeConfState(3n, 3, { voters: [1n, 2n], learners: [], removed: [] }));
  throwsViolation('configuration', () => checkers.observeConfState(3n, 9, { voters: [1n, 2n], learners: [2n], removed: [] }));
  checkers.observeConfState(1n, 5, { voters: [1n, 2n], learners: [], removed: [3n] });
  throwsViolation('configuration', () => checkers.observeConfState(1n, 7, { voters: [1n, 2n, 3n], learners: [], removed: [] }));
});

test('read index: an answer below a commit that completed before the request is caught', () => {
  const checkers = new Checkers();
  checkers.observeReadRequest('r1', 10);
  checkers.observeReadState(1n, 'r1', 10);
  checkers.observeReadState(1n, 'r1', 12);
  throwsViolation('read-index', () => checkers.observeReadState(1n, 'r1', 9));
  throwsViolation('read-index', () => checkers.observeReadState(1n, 'unknown', 9));
});

test('proposal outcomes: refused or rejected proposals must not commit, unless duplicated', () => {
  const checkers = new Checkers();
  checkers.observeProposalRefused('a', 'no-leader');
  throwsViolation('proposal-outcome', () => checkers.observeValueCommitted('a', 5));
  checkers.observeValueCommitted('b', 6);
  throwsViolation('proposal-outcome', () => checkers.observeProposalRejected('b', 'not-leader'));
  checkers.observeProposalDuplicated('c');
  checkers.observeProposalRejected('c', 'leader-transfer-in-progress');
  checkers.observeValueCommitted('c', 7);
});
