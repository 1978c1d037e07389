/**
 * Majority quorums (Raft §5.2, §5.3): how many voters make a quorum, which index a quorum has
 * reached, and whether an election is won. Only voters count; learners never do (thesis §4.2.1).
 *
 * Pure functions over plain arrays; callers pass a reusable scratch array on hot paths so that
 * computing the commit index allocates nothing.
 */
import type { NodeId } from './types';

/** Number of voters forming a majority of `voterCount` (⌊n/2⌋ + 1). 0 voters → 0 (no quorum possible). */
export function quorumSize(voterCount: number): number {
  return voterCount === 0 ? 0 : Math.floor(voterCount / 2) + 1;
}

/**
 * The highest value that at least a majority of `values` (one per voter) have reached: the
 * commit index when the values are match indexes (Raft §5.3). Sorts `values` in place (pass a
 * scratch copy). Returns 0 for an empty voter set.
 */
export function majorityValue(values: number[]): number {
  const count = values.length;
  if (count === 0) return 0;
  values.sort(descending);
  return values[quorumSize(count) - 1]!;
}

function descending(a: number, b: number): number {
  return b - a;
}

/** The outcome of counting votes. */
export type VoteResult = 'won' | 'lost' | 'pending';

/**
 * Tallies an election among `voters` (Raft §5.2): 'won' once a majority granted, 'lost' once a
 * majority can no longer be reached, else 'pending'. Votes from non-voters are ignored.
 */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const needed = quorumSize(voters.length);
  if (needed === 0) return 'lost';
  let granted = 0;
  let missing = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  if (granted >= needed) return 'won';
  if (granted + missing >= needed) return 'pending';
  return 'lost';
}
