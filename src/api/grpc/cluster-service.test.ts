/**
 * etcd's Cluster and Maintenance services at the gRPC level, on a fake backend: exact wire values
 * (headers without revision on Cluster replies, uint64 IDs beyond 2^53, absent fields), etcd's
 * error codes and messages, and the Snapshot stream's framing (32 KiB chunks, remaining_bytes,
 * SHA-256 trailer, total % 512 == 32).
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { RaftkvError } from '../../errors';
import type { MvccOutcome } from '../../mvcc/errors';
import type { HeaderFields } from './backend';
import type { AlarmEntry, ClusterMember, EtcdClusterBackend, MaintenanceStatus, SnapshotStream } from './cluster-backend';
import { createClusterService } from './cluster-service';
import { createMaintenanceService, SNAPSHOT_CHUNK_BYTES } from './maintenance-service';
import { etcdServiceDefinition, type ProtoObject } from './etcd-proto';
import { callUnary, rawClient, type RawClient } from './test-support';

const BIG_ID = 18_000_000_000_000_000_001n;

class FakeBackend implements EtcdClusterBackend {
  list: ClusterMember[] = [
    { id: 1n, name: 'raftkv-1', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['127.0.0.1:2379'], isLearner: false },
    { id: BIG_ID, name: '', peerUrls: ['http://127.0.0.1:2480'], clientUrls: [], isLearner: true },
  ];
  leader = 1n;
  alarmList: AlarmEntry[] = [];
  snapshotBytes = Buffer.alloc(0);
  released = 0;
  failWith: RaftkvError | undefined;

  header(): HeaderFields {
    return { clusterId: 10386079443273509696n, memberId: 1n, raftTerm: 7, revision: 42 };
  }
  async members(): Promise<ClusterMember[]> {
    return this.list;
  }
  async addMember(peerUrls: readonly string[], isLearner: boolean): Promise<ClusterMember> {
    if (this.failWith !== undefined) throw this.failWith;
    const member = { id: 99n, name: '', peerUrls: [...peerUrls], clientUrls: [], isLearner };
    this.list = [...this.list, member];
    return member;
  }
  async removeMember(id: bigint): Promise<void> {
    if (!this.list.some((member) => member.id === id)) throw new RaftkvError('member-not-found');
    this.list = this.list.filter((member) => member.id !== id);
  }
  async updateMember(): Promise<void> {}
  async promoteMember(): Promise<void> {
    throw new RaftkvError('learner-not-ready');
  }
  async status(): Promise<MaintenanceStatus> {
    return {
      version: '3.4.23',
      dbSizeBytes: 4096,
      dbSizeInUseBytes: 4096,
      leader: this.leader,
      raftIndex: 10,
      raftTerm: 7,
      raftAppliedIndex: 9,
      errors: this.leader === 0n ? ['etcdserver: no leader'] : [],
      isLearner: false,
    };
  }
  async snapshot(): Promise<SnapshotStream> {
    const bytes = this.snapshotBytes;
    return {
      sizeBytes: bytes.length,
      body: (async function* () {
        for (let offset = 0; offset < bytes.length; offset += 5000) yield bytes.subarray(offset, offset + 5000);
      })(),
      release: async () => {
        this.released += 1;
      },
    };
  }
  alarms(): AlarmEntry[] {
    return this.alarmList;
  }
  async changeAlarm(action: 'activate' | 'deactivate', alarm: AlarmEntry): Promise<AlarmEntry[]> {
    if (action === 'activate') this.alarmList.push(alarm);
    else this.alarmList = [];
    return [alarm];
  }
  async hashKv(revision: number): Promise<MvccOutcome<{ hash: number; compactRevision: number; revision: number }>> {
    if (revision === 1) return { ok: false, error: 'compacted' };
    return { ok: true, value: { hash: 12345, compactRevision: 3, revision: 42 } };
  }
  async moveLeader(): Promise<void> {
    throw new RaftkvError('not-leader');
  }
  async defragment(): Promise<void> {}
}

describe('Cluster and Maintenance services (gRPC, fake backend)', () => {
  let backend: FakeBackend;
  let server: grpc.Server;
  let cluster: RawClient;
  let maintenance: RawClient;

  beforeEach(async () => {
    backend = new FakeBackend();
    server = new grpc.Server();
    server.addService(etcdServiceDefinition('Cluster'), createClusterService(backend, { hasLeader: () => backend.leader !== 0n }));
    server.addService(etcdServiceDefinition('Maintenance'), createMaintenanceService(backend, { hasLeader: () => backend.leader !== 0n }));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
    );
    cluster = rawClient('Cluster', `127.0.0.1:${port}`);
    maintenance = rawClient('Maintenance', `127.0.0.1:${port}`);
  });

  afterEach(async () => {
    cluster.close();
    maintenance.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  it('MemberList: header without revision; uint64 IDs exact; an unpublished member has no name', async () => {
    const outcome = await callUnary(cluster, 'MemberList', {});
    assert.ok(outcome.ok);
    assert.deepEqual(outcome.response.header, { cluster_id: '10386079443273509696', member_id: '1', raft_term: '7' });
    assert.deepEqual(outcome.response.members, [
      { ID: '1', name: 'raftkv-1', peerURLs: ['http://127.0.0.1:2380'], clientURLs: ['127.0.0.1:2379'] },
      { ID: BIG_ID.toString(), peerURLs: ['http://127.0.0.1:2480'], isLearner: true },
    ]);
  });

  it('MemberAdd: validates peer URLs, answers the new member and the list; errors keep etcd\'s messages', async () => {
    const invalid = await callUnary(cluster, 'MemberAdd', { peerURLs: ['not a url'] });
    assert.deepEqual(invalid, { ok: false, code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: given member URLs are invalid' });
    const added = await callUnary(cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:2580'], isLearner: true });
    assert.ok(added.ok);
    assert.deepEqual(added.response.member, { ID: '99', peerURLs: ['http://127.0.0.1:2580'], isLearner: true });
    assert.equal((added.response.members as ProtoObject[]).length, 3);
    assert.equal((added.response.header as ProtoObject).revision, undefined);
    backend.failWith = new RaftkvError('peer-url-exists');
    assert.deepEqual(await callUnary(cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:2580'] }), {
      ok: false,
      code: grpc.status.FAILED_PRECONDITION,
      details: 'etcdserver: Peer URLs already exists',
    });
  });

  it('MemberRemove of an unknown ID is NotFound; MemberPromote of a lagging learner is FailedPrecondition', async () => {
    assert.deepEqual(await callUnary(cluster, 'MemberRemove', { ID: '12345' }), { ok: false, code: grpc.status.NOT_FOUND, details: 'etcdserver: member not found' });
    const removed = await callUnary(cluster, 'MemberRemove', { ID: BIG_ID.toString() });
    assert.ok(removed.ok);
    assert.equal((removed.response.members as ProtoObject[]).length, 1);
    assert.deepEqual(await callUnary(cluster, 'MemberPromote', { ID: '1' }), {
      ok: false,
      code: grpc.status.FAILED_PRECONDITION,
      details: 'etcdserver: can only promote a learner member which is in sync with leader',
    });
  });

  it('Status: fields as etcd; without a leader, no leader field and errors ["etcdserver: no leader"]', async () => {
    const ok = await callUnary(maintenance, 'Status', {});
    assert.ok(ok.ok);
    assert.equal(ok.response.leader, '1');
    assert.equal(ok.response.version, '3.4.23');
    assert.equal(ok.response.raftAppliedIndex, '9');
    assert.equal((ok.response.header as ProtoObject).revision, '42');
    assert.equal(ok.response.errors, undefined);
    backend.leader = 0n;
    const noLeader = await callUnary(maintenance, 'Status', {});
    assert.ok(noLeader.ok);
    assert.equal(noLeader.response.leader, undefined);
    assert.deepEqual(noLeader.response.errors, ['etcdserver: no leader']);
    // A `hasleader` call without a leader is refused, as etcd's interceptor does.
    const metadata = new grpc.Metadata();
    metadata.set('hasleader', 'true');
    assert.deepEqual(await callUnary(maintenance, 'Status', {}, metadata), { ok: false, code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' });
  });

  it('MoveLeader on a follower: FailedPrecondition "etcdserver: not leader"; HashKV below the compaction: OutOfRange', async () => {
    assert.deepEqual(await callUnary(maintenance, 'MoveLeader', { targetID: '2' }), { ok: false, code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: not leader' });
    assert.deepEqual(await callUnary(maintenance, 'HashKV', { revision: 1 }), {
      ok: false,
      code: grpc.status.OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision has been compacted',
    });
    const hash = await callUnary(maintenance, 'HashKV', { revision: 0 });
    assert.ok(hash.ok);
    assert.equal(hash.response.hash, 12345);
    assert.equal(hash.response.compact_revision, '3');
  });

  it('Alarm: GET without a header; ACTIVATE and DEACTIVATE answer the alarms affected', async () => {
    const empty = await callUnary(maintenance, 'Alarm', {});
    assert.deepEqual(empty, { ok: true, response: {} });
    const raised = await callUnary(maintenance, 'Alarm', { action: 1, memberID: BIG_ID.toString(), alarm: 1 });
    assert.deepEqual(raised, { ok: true, response: { alarms: [{ memberID: BIG_ID.toString(), alarm: 1 }] } });
    assert.deepEqual(await callUnary(maintenance, 'Alarm', { action: 0 }), { ok: true, response: { alarms: [{ memberID: BIG_ID.toString(), alarm: 1 }] } });
    await callUnary(maintenance, 'Alarm', { action: 2, memberID: BIG_ID.toString(), alarm: 1 });
    assert.deepEqual(await callUnary(maintenance, 'Alarm', { action: 0 }), { ok: true, response: {} });
  });

  it('Snapshot: 32 KiB chunks with remaining_bytes, then one message with the SHA-256; total % 512 == 32', async () => {
    const data = Buffer.alloc(140 * 512);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
    backend.snapshotBytes = data;
    const messages = await new Promise<ProtoObject[]>((resolve, reject) => {
      const received: ProtoObject[] = [];
      const call = (maintenance.Snapshot as unknown as (request: ProtoObject) => grpc.ClientReadableStream<ProtoObject>).call(maintenance, {});
      call.on('data', (message: ProtoObject) => received.push(message));
      call.on('end', () => resolve(received));
      call.on('error', reject);
    });
    const blobs = messages.map((message) => message.blob as Buffer);
    const last = blobs.pop()!;
    assert.deepEqual(blobs.map((blob) => blob.length), [SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_BYTES, data.length - 2 * SNAPSHOT_CHUNK_BYTES]);
    assert.deepEqual(messages.map((message) => message.remaining_bytes), [String(data.length - SNAPSHOT_CHUNK_BYTES), String(data.length - 2 * SNAPSHOT_CHUNK_BYTES), undefined, undefined]);
    assert.deepEqual(Buffer.concat(blobs), data);
    assert.deepEqual(last, createHash('sha256').update(data).digest());
    assert.equal((data.length + last.length) % 512, 32);
    assert.equal(backend.released, 1);
  });
});
