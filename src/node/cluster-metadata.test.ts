/**
 * Cluster operations in the log (cluster-entry.ts) and their apply (cluster-metadata.ts,
 * state-machine-metadata.ts): the codec round-trips and refuses damage; NOSPACE refuses the
 * writes that need space and nothing else; and the outcome does not depend on how the entries
 * were grouped into apply batches (members apply the same log in different batches).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KvStore } from '../kv/kv-store';
import type { Member } from '../kv/kv-layout';
import type { MvccWriteRequest } from '../mvcc/types';
import type { NodeId } from '../raft/types';
import { AlarmType, decodeClusterOperation, encodeClusterOperation, type ClusterOperation } from './cluster-entry';
import { ClusterMetadata, writeNeedsSpace } from './cluster-metadata';
import { planMetadataApply } from './state-machine-metadata';
import type { StateMachineEntry } from './state-machine';

const put = (key: string): MvccWriteRequest => ({ kind: 'put', request: { key: Buffer.from(key), value: Buffer.from('v') } });
const del = (key: string): MvccWriteRequest => ({ kind: 'deleteRange', request: { key: Buffer.from(key) } });

function fakeMembership(members: Map<NodeId, Member>, appliedIndex = 0): KvStore {
  return { appliedIndex: () => appliedIndex, members: () => new Map(members), removedIds: () => new Set<NodeId>() } as unknown as KvStore;
}

describe('cluster operations', () => {
  it('encode/decode round-trips every kind, with 64-bit member IDs exact', () => {
    const operations: ClusterOperation[] = [
      { kind: 'publish-attributes', memberId: 18_000_000_000_000_000_001n, name: 'n', clientUrls: ['127.0.0.1:2379'] },
      { kind: 'update-peer-urls', memberId: 2n, peerUrls: ['http://127.0.0.1:2380'] },
      { kind: 'alarm', action: 'activate', memberId: 3n, alarm: AlarmType.NoSpace },
    ];
    for (const operation of operations) {
      const decoded = decodeClusterOperation(encodeClusterOperation(77n, operation));
      assert.deepEqual(decoded, { ok: true, value: { requestId: 77n, operation } });
    }
  });

  it('decode refuses damaged data with a value error', () => {
    const bytes = Buffer.from(encodeClusterOperation(1n, { kind: 'alarm', action: 'activate', memberId: 3n, alarm: AlarmType.NoSpace }));
    assert.equal(decodeClusterOperation(bytes.subarray(0, 5)).ok, false);
    const wrong = Buffer.concat([bytes.subarray(0, 9), Buffer.from('{"kind":"alarm","memberId":"3","action":"x","alarm":1}')]);
    assert.deepEqual(decodeClusterOperation(wrong), { ok: false, reason: 'invalid-operation' });
    assert.deepEqual(decodeClusterOperation(Buffer.concat([bytes.subarray(0, 9), Buffer.from('{')])), { ok: false, reason: 'malformed-json' });
  });

  it('writeNeedsSpace: Put and Txn with a Put (also nested); not DeleteRange, Compact or read-only Txn', () => {
    assert.equal(writeNeedsSpace(put('a')), true);
    assert.equal(writeNeedsSpace(del('a')), false);
    assert.equal(writeNeedsSpace({ kind: 'compact', request: { revision: 3 } }), false);
    assert.equal(writeNeedsSpace({ kind: 'txn', request: { success: [{ kind: 'range', request: { key: Buffer.from('a') } }] } }), false);
    assert.equal(writeNeedsSpace({ kind: 'txn', request: { failure: [{ kind: 'txn', request: { success: [{ kind: 'put', request: put('a').request as never }] } }] } }), true);
  });

  it('NOSPACE refuses writes that need space from the alarm entry on, and the result is the same whatever the batching', () => {
    const members = new Map<NodeId, Member>([[1n, { peerUrl: 'http://a:1', isLearner: false }], [2n, { peerUrl: 'http://b:1', isLearner: true }]]);
    const log: StateMachineEntry[] = [
      { index: 1, write: put('a') },
      { index: 2, cluster: { kind: 'alarm', action: 'activate', memberId: 1n, alarm: AlarmType.NoSpace } },
      { index: 3, write: put('b') },
      { index: 4, write: del('a') },
      { index: 5, cluster: { kind: 'update-peer-urls', memberId: 2n, peerUrls: ['http://c:1'] } },
      { index: 6, cluster: { kind: 'alarm', action: 'deactivate', memberId: 1n, alarm: AlarmType.NoSpace } },
      { index: 7, write: put('c') },
    ];
    const run = (batches: number[]) => {
      const metadata = new ClusterMetadata();
      const refused: number[] = [];
      const changes: string[] = [];
      let start = 0;
      for (const size of batches) {
        const plan = planMetadataApply(log.slice(start, start + size), metadata, fakeMembership(members), 0);
        refused.push(...plan.refused.map((result) => result.index));
        for (const entry of plan.membershipEntries) for (const change of entry.members ?? []) changes.push(`${entry.index}:${change.kind}:${change.id}:${change.peerUrl}`);
        start += size;
      }
      return { refused, changes, capped: metadata.isCapped() };
    };
    const whole = run([7]);
    assert.deepEqual(whole.refused, [3]);
    assert.deepEqual(whole.changes, ['5:add-learner:2:http://c:1']);
    assert.equal(whole.capped, false);
    for (const batches of [[1, 1, 1, 1, 1, 1, 1], [2, 5], [3, 4], [1, 3, 3]]) assert.deepEqual(run(batches), whole, `batches ${batches.join(',')}`);
  });

  it('entries the membership store already applied (replayed after a restart) do not change the metadata again', () => {
    const metadata = new ClusterMetadata();
    const plan = planMetadataApply(
      [{ index: 5, cluster: { kind: 'alarm', action: 'activate', memberId: 1n, alarm: AlarmType.NoSpace } }],
      metadata,
      fakeMembership(new Map(), 5),
      5,
    );
    assert.equal(metadata.isCapped(), false);
    assert.deepEqual(plan.membershipEntries[0]?.commands, []);
  });
});
