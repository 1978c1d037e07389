import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MessageType, type Message, type Snapshot } from '../raft/types';
import { openDurableState, type OpenDurableStateOptions } from './durable-state';
import { decodeSnapshotDescriptor, hasImage, NodeSnapshots } from './snapshots';
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
      // The memtable went to an fsynced table: the log holds at most the small probe write.
      assert.ok(levelLogBytes(mvccDirectory) < VALUE_BYTES, `level's log after the cut: ${levelLogBytes(mvccDirectory)} bytes`);

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
