import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MessageType, type Message, type Snapshot } from '../raft/types';
import type { SnapshotBodyDigest } from '../transport/transport';
import { openDurableState, type OpenDurableStateOptions } from './durable-state';
import { decodeSnapshotDescriptor, hasImage, NodeSnapshots, STREAMED_SNAPSHOT_DATA } from './snapshots';
import type { RuntimeLogger } from './raft-server';

const SILENT: RuntimeLogger = { debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
const VALUE_BYTES = 64 * 1024;

/** Total size of level's log files (its write-ahead log, written without fsync by the stores). */
function levelLogBytes(directory: string): number {
  return fs
    .readdirSync(directory)
    .filter((name) => name.endsWith('.log') && name !== 'LOG')
    .reduce((sum, name) => sum + fs.statSync(path.join(directory, name)).size, 0);
}

function put(index: number, key: string): { index: number; write: { kind: 'put'; request: { key: Buffer; value: Buffer } } } {
  return { index, write: { kind: 'put', request: { key: Buffer.from(key), value: Buffer.alloc(VALUE_BYTES, index) } } };
}

async function withDataDirectory(work: (options: OpenDurableStateOptions) => Promise<void>): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-snapshots-'));
  try {
    await work({ id: 1n, dataDir, initialMembers: [1n], join: false, clusterToken: 'snapshots-test', logger: SILENT });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('snapshots without a state machine image (log compaction)', () => {
  it('are saved only after both stores reached disk; a restart needs no image from them', async () => {
    await withDataDirectory(async (options) => {
      const created = await openDurableState(options);
      await created.stateMachine.applyEntries([put(1, 'a'), put(2, 'b')]);
      await created.stateMachine.flush();
      const mvccDirectory = path.join(options.dataDir, 'mvcc');
      assert.ok(levelLogBytes(mvccDirectory) >= 2 * VALUE_BYTES, 'before the cut the writes sit in level’s unsynced log');

      const snapshots = new NodeSnapshots(created.snapshotter, created.stateMachine);
      const data = await snapshots.create(2, 1, { voters: [1n], learners: [], removed: [] }, false);
      const descriptor = decodeSnapshotDescriptor(data);
      assert.ok(descriptor !== undefined && !hasImage(descriptor));
      assert.equal((await created.snapshotter.list())[0]?.bodyBytes, 0);
      // Level's only log was fsynced by a synchronous write; no table was forced out for it
      // (src/storage/level.test.ts shows when one is).
      assert.ok(levelLogBytes(mvccDirectory) >= 2 * VALUE_BYTES, `level's log after the cut: ${levelLogBytes(mvccDirectory)} bytes`);

      // Such a snapshot is never restored nor sent.
      const snapshot: Snapshot = { metadata: { index: 2, term: 1, confState: { voters: [1n], learners: [], removed: [] } }, data };
      await assert.rejects(snapshots.restore(snapshot), /has no image/);
      const message: Message = { type: MessageType.MsgSnap, from: 1n, to: 2n, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot, context: new Uint8Array(0) };
      await assert.rejects(snapshots.open(message), /has no image/);

      await created.wal.saveSnapshotMarker({ index: 2, term: 1 });
      await created.wal.close();
      await created.stateMachine.close();

      const reopened = await openDurableState(options);
      try {
        assert.equal(reopened.snapshotIndex, 2);
        assert.equal(reopened.stateMachine.appliedIndex(), 2);
        assert.deepEqual(await reopened.stateMachine.get('b'), Buffer.alloc(VALUE_BYTES, 2));
      } finally {
        await reopened.wal.close();
        await reopened.stateMachine.close();
      }

      // Stores that lost what they had made durable cannot be repaired from such a snapshot: the
      // node refuses to start and says why, rather than starting empty.
      fs.rmSync(mvccDirectory, { recursive: true });
      await assert.rejects(openDurableState(options), /behind snapshot 2, which has no image/);
    });
  });

  it('with an image when asked: the body is the whole state machine and can be restored', async () => {
    await withDataDirectory(async (options) => {
      const state = await openDurableState(options);
      try {
        await state.stateMachine.applyEntries([put(1, 'a')]);
        await state.stateMachine.flush();
        const snapshots = new NodeSnapshots(state.snapshotter, state.stateMachine);
        const data = await snapshots.create(1, 1, { voters: [1n], learners: [], removed: [] }, true);
        const descriptor = decodeSnapshotDescriptor(data);
        assert.ok(descriptor !== undefined && hasImage(descriptor) && descriptor.bodyBytes > VALUE_BYTES);
        await state.stateMachine.applyEntries([put(2, 'a')]);
        await snapshots.restore({ metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [], removed: [] } }, data });
        assert.equal(state.stateMachine.appliedIndex(), 1);
        assert.deepEqual(await state.stateMachine.get('a'), Buffer.alloc(VALUE_BYTES, 1));
      } finally {
        await state.wal.close();
        await state.stateMachine.close();
      }
    });
  });
});

describe('snapshots sent to a follower', () => {
  const confState = { voters: [1n], learners: [], removed: [] };
  const snapMessage = (index: number, data: Uint8Array): Message => ({
    type: MessageType.MsgSnap, from: 1n, to: 2n, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: { metadata: { index, term: 1, confState }, data }, context: new Uint8Array(0),
  });

  it('streams an image while it is cut; the receiver completes the descriptor and restores it', async () => {
    await withDataDirectory(async (leaderOptions) => {
      await withDataDirectory(async (followerOptions) => {
        const leader = await openDurableState(leaderOptions);
        const follower = await openDurableState({ ...followerOptions, id: 2n });
        try {
          const entries = Array.from({ length: 40 }, (_, i) => put(i + 1, `key-${i % 25}`));
          await leader.stateMachine.applyEntries(entries);
          await leader.stateMachine.flush();
          const leaderSnapshots = new NodeSnapshots(leader.snapshotter, leader.stateMachine);
          const followerSnapshots = new NodeSnapshots(follower.snapshotter, follower.stateMachine);

          // The leader sends while it cuts: the body is followed as it is written, its digest after it.
          const cutting = leaderSnapshots.create(40, 1, confState, true);
          const sent = snapMessage(40, STREAMED_SNAPSHOT_DATA);
          const opened = await leaderSnapshots.open(sent);
          assert.ok(opened.digestAfterBody !== undefined, 'an image being cut is streamed');
          let digest: SnapshotBodyDigest | undefined;
          const body = (async function* () {
            yield* opened.body;
            digest = await opened.digestAfterBody;
          })();
          const delivered = await followerSnapshots.receive(sent, () => digest!, body);
          const data = await cutting;
          assert.deepEqual(delivered.snapshot?.data, data, 'the receiver put the complete descriptor in place of the streamed one');
          assert.deepEqual(decodeSnapshotDescriptor(data), digest);
          // Once the cut is complete, the same snapshot is read from its file, digest known upfront.
          const again = await leaderSnapshots.open(snapMessage(40, data));
          assert.equal(again.digestAfterBody, undefined);
          assert.deepEqual({ bodyBytes: again.bodyBytes, sha256: again.sha256 }, digest);

          await followerSnapshots.restore(delivered.snapshot!);
          assert.equal(follower.stateMachine.appliedIndex(), 40);
          for (let i = 0; i < 25; i++) {
            const last = i + 1 + 25 * Math.floor((39 - i) / 25);
            assert.deepEqual(await follower.stateMachine.get(`key-${i}`), Buffer.alloc(VALUE_BYTES, last), `key-${i}`);
          }
        } finally {
          for (const state of [leader, follower]) {
            await state.wal.close();
            await state.stateMachine.close();
          }
        }
      });
    });
  });
});
