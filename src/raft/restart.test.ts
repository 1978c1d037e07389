/**
 * Restarting from disk states that a crash can leave behind (Ready contract, types.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawNode } from './raw-node';
import { MemoryStorage } from './storage';
import { NONE, ReadOnlyOption, type Config } from './types';

function config(storage: MemoryStorage): Config {
  return {
    id: 2n,
    electionTicks: 10,
    heartbeatTicks: 1,
    storage,
    maxSizePerMsgBytes: 1 << 20,
    maxInflightMessages: 16,
    maxInflightBytes: 0,
    maxUncommittedEntriesBytes: 0,
    maxCommittedSizePerReadyBytes: 1 << 20,
    checkQuorum: true,
    preVote: true,
    readOnlyOption: ReadOnlyOption.Safe,
    random: () => 0,
  };
}

test('a crash between persisting a received snapshot and its HardState leaves a restartable disk (sim finding 1)', () => {
  const storage = new MemoryStorage();
  const confState = { voters: [1n, 2n, 3n], learners: [], removed: [] };
  assert.equal(storage.applySnapshot({ metadata: { index: 77, term: 5, confState }, data: new Uint8Array(0) }), 'ok');
  // The HardState on disk is the one from before the snapshot: its commit is behind the snapshot.
  storage.setHardState({ term: 5, vote: NONE, commit: 58 });
  const node = new RawNode({ ...config(storage), applied: 77 });
  const status = node.status();
  assert.equal(status.hardState.commit, 77, 'commit is raised to the snapshot index');
  assert.equal(status.hardState.term, 5);
});

test('a persisted commit beyond the log is damage and is refused', () => {
  const storage = new MemoryStorage();
  const confState = { voters: [1n, 2n, 3n], learners: [], removed: [] };
  storage.applySnapshot({ metadata: { index: 10, term: 2, confState }, data: new Uint8Array(0) });
  storage.setHardState({ term: 2, vote: NONE, commit: 11 });
  assert.throws(() => new RawNode({ ...config(storage), applied: 10 }), /beyond the last index/);
});
