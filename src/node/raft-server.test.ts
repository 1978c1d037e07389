/**
 * RaftServer's Ready loop with a WAL whose saves the test releases by hand: committed entries
 * already in the durable log are applied (and their proposers answered) without waiting for the
 * save of the new entries that came in the same Ready, and never before their own save.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bootstrapEntries } from '../raft/bootstrap';
import { MemoryStorage } from '../raft/storage';
import type { Entry, HardState, LogIndex, NodeId } from '../raft/types';
import { durablePrefixLength, RaftServer, type RuntimeLogger, type StateMachinePort, type WalPort, type WriteResult } from './raft-server';
import type { StateMachineEntry } from './state-machine';
import type { ApplyResult } from '../mvcc/mvcc-store';

const NODE: NodeId = 1n;

/** A WAL that completes saves at once, or, while `holding`, only when the test releases them. */
class HeldWal implements WalPort {
  holding = false;
  /** Saves held so far, in call order: the indexes of their entries and how to complete them. */
  readonly held: Array<{ readonly indexes: readonly LogIndex[]; readonly release: () => void }> = [];
  /** Highest entry index whose save has completed. */
  savedThrough = 0;

  save(_hardState: HardState | undefined, entries: readonly Entry[], _sync: boolean): Promise<void> {
    const last = entries[entries.length - 1]?.index ?? 0;
    const done = () => {
      this.savedThrough = Math.max(this.savedThrough, last);
    };
    if (!this.holding || entries.length === 0) {
      done();
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.held.push({
        indexes: entries.map((entry) => entry.index),
        release: () => {
          done();
          resolve();
        },
      }),
    );
  }
  saveSnapshotMarker(): Promise<void> {
    return Promise.resolve();
  }
  releaseTo(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A state machine that records what it applied and checks each entry was saved first. */
class RecordingStateMachine implements StateMachinePort {
  readonly appliedIndexes: LogIndex[] = [];
  readonly appliedBeforeSaved: LogIndex[] = [];
  constructor(private readonly wal: HeldWal) {}
  appliedIndex(): LogIndex {
    return this.appliedIndexes[this.appliedIndexes.length - 1] ?? 0;
  }
  get(): Promise<Uint8Array | undefined> {
    return Promise.resolve(undefined);
  }
  applyEntries(entries: readonly StateMachineEntry[]): Promise<Map<LogIndex, ApplyResult>> {
    const results = new Map<LogIndex, ApplyResult>();
    for (const entry of entries) {
      if (entry.index > this.wal.savedThrough) this.appliedBeforeSaved.push(entry.index);
      this.appliedIndexes.push(entry.index);
      results.set(entry.index, { index: entry.index, skipped: false, outcome: undefined, events: [] });
    }
    return Promise.resolve(results);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  members(): Map<NodeId, { peerUrl: string; isLearner: boolean }> {
    return new Map([[NODE, { peerUrl: 'http://127.0.0.1:1', isLearner: false }]]);
  }
  removedIds(): Set<NodeId> {
    return new Set();
  }
}

const silent: RuntimeLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, fatal: () => undefined };

function singleNodeServer(wal: HeldWal, stateMachine: RecordingStateMachine): RaftServer {
  const storage = new MemoryStorage();
  const entries = bootstrapEntries([NODE]);
  const hardState: HardState = { term: 1, vote: 0n, commit: entries.length };
  storage.append(entries);
  storage.setHardState(hardState);
  wal.savedThrough = entries.length;
  return new RaftServer({
    options: {
      id: NODE,
      tickMs: 10,
      electionTicks: 3,
      heartbeatTicks: 1,
      snapshotCount: 1_000_000,
      snapshotCatchUpEntries: 10,
      requestTimeoutMs: 20_000,
      readMode: 'readindex',
      flagPeerUrls: new Map([[NODE, 'http://127.0.0.1:1']]),
    },
    storage,
    persistedHardState: hardState,
    snapshotIndex: 0,
    wal,
    stateMachine,
    snapshots: {
      create: () => Promise.reject(new Error('no snapshots in this test')),
      restore: () => Promise.reject(new Error('no snapshots in this test')),
      release: () => Promise.resolve(),
    },
    transport: { send: () => undefined, addPeer: () => undefined, removePeer: () => undefined },
    logger: silent,
    random: () => 0,
  });
}

const put = (key: string) => ({ kind: 'put' as const, request: { key: Buffer.from(key), value: Buffer.from('v') } });

/** Resolves with `promise`'s value, or rejects when it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('a committed entry is answered while the next entries are still being saved, never before its own save', async () => {
  const wal = new HeldWal();
  const stateMachine = new RecordingStateMachine(wal);
  const server = singleNodeServer(wal, stateMachine);
  server.start();
  try {
    // A single voter elects itself and commits its empty entry.
    await within(server.proposeWrite(put('warm')), 10_000, 'the first write');

    wal.holding = true;
    const first = server.proposeWrite(put('first'));
    await until(() => wal.held.length === 1, 'the first entry’s save');
    // Proposed while that save is in flight: it goes into the next Ready, beside the commit of the first.
    const second = server.proposeWrite(put('second'));
    let secondAnswered = false;
    second.then(
      () => (secondAnswered = true),
      () => undefined,
    );
    wal.held[0]!.release();
    await until(() => wal.held.length === 2, 'the second entry’s save');
    const [firstIndex] = wal.held[0]!.indexes;
    assert.deepEqual(wal.held[1]!.indexes, [firstIndex! + 1]);

    // The second save is still held: the first write is answered anyway.
    const answered: WriteResult = await within(first, 5_000, 'the first write while the second save is held');
    assert.equal(answered.appliedIndex, firstIndex);
    assert.equal(secondAnswered, false, 'the second write is not answered before its save');
    assert.ok(!stateMachine.appliedIndexes.includes(firstIndex! + 1), 'the second entry is not applied before its save');

    wal.held[1]!.release();
    assert.equal((await within(second, 5_000, 'the second write')).appliedIndex, firstIndex! + 1);
    assert.deepEqual(stateMachine.appliedBeforeSaved, [], 'no entry was applied before its save completed');
  } finally {
    wal.holding = false;
    for (const save of wal.held) save.release();
    await server.stop();
  }
});

test('durablePrefixLength: the committed entries below the first new one', () => {
  const entries = (...indexes: number[]) => indexes.map((index) => ({ index, term: 1, type: 0, data: new Uint8Array() }) as Entry);
  assert.equal(durablePrefixLength(entries(5, 6, 7), []), 3);
  assert.equal(durablePrefixLength(entries(5, 6, 7), entries(7, 8)), 2);
  assert.equal(durablePrefixLength(entries(5, 6, 7), entries(5)), 0);
  assert.equal(durablePrefixLength([], entries(9)), 0);
});
