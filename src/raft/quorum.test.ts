/** Unit tests of majority arithmetic: quorum size, commit index, vote tallies. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { majorityValue, quorumSize, voteResult } from './quorum';

test('quorum: sizes are floor(n/2)+1', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(quorumSize), [0, 1, 2, 2, 3, 3, 4, 4]);
});

test('quorum: the committed index is the highest index a majority has reached', () => {
  assert.equal(majorityValue([]), 0);
  assert.equal(majorityValue([5]), 5);
  assert.equal(majorityValue([5, 3]), 3);
  assert.equal(majorityValue([5, 3, 9]), 5);
  assert.equal(majorityValue([1, 2, 3, 4]), 2);
  assert.equal(majorityValue([10, 1, 10, 1, 2]), 2);
});

test('quorum: vote results are won, lost or pending', () => {
  const voters = [1n, 2n, 3n];
  assert.equal(voteResult(voters, new Map([[1n, true]])), 'pending');
  assert.equal(voteResult(voters, new Map([[1n, true], [2n, true]])), 'won');
  assert.equal(voteResult(voters, new Map([[1n, true], [2n, false], [3n, false]])), 'lost');
  assert.equal(voteResult(voters, new Map([[2n, false], [3n, false]])), 'lost');
  assert.equal(voteResult(voters, new Map([[1n, true], [9n, true]])), 'pending', 'non-voters do not count');
  assert.equal(voteResult([], new Map()), 'lost');
});
