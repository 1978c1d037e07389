/**
 * RaftServer's Ready loop with a WAL whose saves the test releases by hand: committed entries
 * already in the durable log are applied (and their proposers answered) without waiting for the
 * save of the new entries that came in the same Ready, and never before their own save. And with
 * snapshot cuts the test releases by hand: a follower that needs an image while one is being cut
 * and sent joins that transfer, and no second image is cut for it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bootstrapEntries } from '../raft/bootstrap';
import { makeMessage } from '../raft/message';
import { MemoryStorage } from '../raft/storage';
import { MessageType, type ConfState, type Entry, type HardState, type LogIndex, type Message, type NodeId } from '../raft/types';
import { durablePrefixLength, RaftServer, type RaftServerDeps, type RuntimeLogger, type StateMachinePort, type WalPort, type WriteResult } from './raft-server';
import { encodeSnapshotDescriptor, STREAMED_SNAPSHOT_DATA } from './snapshots';
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

/** Node 1 on fast ticks, with no snapshots, no peers and no logging unless `deps` says otherwise. */
function testServer(deps: Pick<RaftServerDeps, 'storage' | 'persistedHardState' | 'snapshotIndex' | 'wal' | 'stateMachine'> & Partial<RaftServerDeps>): RaftServer {
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
    snapshots: {
      create: () => Promise.reject(new Error('no snapshots in this test')),
      restore: () => Promise.reject(new Error('no snapshots in this test')),
      release: () => Promise.resolve(),
    },
    transport: { send: () => undefined, addPeer: () => undefined, removePeer: () => undefined },
    logger: silent,
    random: () => 0,
    ...deps,
  });
}

function singleNodeServer(wal: HeldWal, stateMachine: RecordingStateMachine): RaftServer {
  const storage = new MemoryStorage();
  const entries = bootstrapEntries([NODE]);
  const hardState: HardState = { term: 1, vote: 0n, commit: entries.length };
  storage.append(entries);
  storage.setHardState(hardState);
  wal.savedThrough = entries.length;
  return testServer({ storage, persistedHardState: hardState, snapshotIndex: 0, wal, stateMachine });
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

test('tick listeners run after every tick until removed', async () => {
  const wal = new HeldWal();
  const server = singleNodeServer(wal, new RecordingStateMachine(wal));
  let first = 0;
  let second = 0;
  const removeFirst = server.onTick(() => first++);
  server.onTick(() => second++);
  server.start();
  try {
    await until(() => first >= 3, 'three ticks');
    removeFirst();
    const firstWhenRemoved = first;
    const secondWhenRemoved = second;
    await until(() => second >= secondWhenRemoved + 3, 'three more ticks');
    assert.equal(first, firstWhenRemoved, 'a removed listener is not called');
  } finally {
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

test('a follower that needs an image while one is being cut joins its transfer; no second image is cut', async () => {
  const FOLLOWER_A: NodeId = 2n;
  const FOLLOWER_B: NodeId = 3n;
  // A single voter (so it commits alone) with two learners, its log compacted behind a snapshot
  // without an image: a learner that is behind needs an image cut for it.
  const storage = new MemoryStorage();
  const confState: ConfState = { voters: [NODE], learners: [FOLLOWER_A, FOLLOWER_B], removed: [] };
  storage.applySnapshot({ metadata: { index: 10, term: 1, confState }, data: encodeSnapshotDescriptor({ bodyBytes: 0, sha256: '' }) });
  const hardState: HardState = { term: 1, vote: 0n, commit: 10 };
  storage.setHardState(hardState);
  const wal = new HeldWal();
  wal.savedThrough = 10;
  const cuts: Array<{ index: LogIndex; withImage: boolean; finish: (data: Uint8Array) => void }> = [];
  const sent: Message[] = [];
  const logged: string[] = [];
  const recording: RuntimeLogger = { ...silent, info: (_fields, message) => void logged.push(message) };
  const server = testServer({
    storage,
    persistedHardState: hardState,
    snapshotIndex: 10,
    wal,
    stateMachine: new RecordingStateMachine(wal),
    snapshots: {
      create: (index, _term, _confState, withImage) => new Promise((resolve) => cuts.push({ index, withImage, finish: resolve })),
      restore: () => Promise.reject(new Error('nothing is restored in this test')),
      release: () => Promise.resolve(),
    },
    transport: { send: (messages) => void sent.push(...messages), addPeer: () => undefined, removePeer: () => undefined },
    logger: recording,
  });
  /** The learner refuses the leader's first append, as one whose log is far behind does. */
  const refuseFirstAppend = async (follower: NodeId): Promise<void> => {
    await until(() => sent.some((m) => m.to === follower && m.type === MessageType.MsgApp), `an append to ${follower}`);
    const append = sent.find((m) => m.to === follower && m.type === MessageType.MsgApp)!;
    server.step(makeMessage(MessageType.MsgAppResp, NODE, { from: follower, term: append.term, index: append.index, reject: true, rejectHint: 0 }));
  };
  const snapshotsTo = (follower: NodeId) => sent.filter((m) => m.to === follower && m.type === MessageType.MsgSnap);
  server.start();
  try {
    await until(() => server.isLeader(), 'the single voter to lead');
    await refuseFirstAppend(FOLLOWER_A);
    await until(() => cuts.length === 1 && snapshotsTo(FOLLOWER_A).length === 1, 'an image cut, sent to the first learner while it is cut');
    const cut = cuts[0]!;
    assert.equal(cut.withImage, true);
    assert.deepEqual(snapshotsTo(FOLLOWER_A)[0]!.snapshot?.data, STREAMED_SNAPSHOT_DATA);

    // The second learner asks while that cut is still running: it is sent the same image at once.
    await refuseFirstAppend(FOLLOWER_B);
    await until(() => snapshotsTo(FOLLOWER_B).length === 1, 'the image being cut, sent to the second learner');
    const joined = snapshotsTo(FOLLOWER_B)[0]!;
    assert.equal(joined.snapshot?.metadata.index, cut.index);
    assert.deepEqual(joined.snapshot?.data, STREAMED_SNAPSHOT_DATA);
    assert.deepEqual(joined.snapshot?.metadata.confState, confState);
    assert.equal(cuts.length, 1, 'the cut is still the first one');

    cut.finish(encodeSnapshotDescriptor({ bodyBytes: 1234, sha256: 'ab'.repeat(32) }));
    await until(() => logged.some((message) => message.startsWith('snapshot saved')), 'the image in the log storage');
    // A second cut would be queued on the apply queue as the first one settles, so before the
    // apply of a write proposed now.
    await within(server.proposeWrite(put('after the cut')), 5_000, 'a write after the cut');
    assert.equal(cuts.length, 1, 'no second image was cut for the learner that joined');
    assert.equal(snapshotsTo(FOLLOWER_B).length, 1);
  } finally {
    for (const cut of cuts.slice(1)) cut.finish(encodeSnapshotDescriptor({ bodyBytes: 1, sha256: 'cd'.repeat(32) }));
    await server.stop();
  }
});
