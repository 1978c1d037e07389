/**
 * The KV service over real sockets: driven by the `etcd3` npm client (as applications use it) and
 * by raw grpc-js calls for exact codes, messages and header fields (ETCD_WIRE_NOTES.md §3.2, §3.6).
 */
import { test, after, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { bytes, callOk, callUnary, rawClient, requireLeaderMetadata, startTestServer, type RawClient, type TestServer } from './test-support';

let server: TestServer;
let kv: RawClient;
let etcd: Etcd3;

before(async () => {
  server = await startTestServer({ maxRequestBytes: 64 * 1024 });
  kv = rawClient('KV', server.address);
  etcd = new Etcd3({ hosts: server.address });
});

after(async () => {
  etcd.close();
  kv.close();
  await server.close();
});

test('etcd3 client: put, get, getAll prefix, delete', async () => {
  await etcd.put('app/a').value('1');
  await etcd.put('app/b').value('2');
  await etcd.put('other').value('x');
  assert.equal(await etcd.get('app/a').string(), '1');
  assert.deepEqual(await etcd.getAll().prefix('app/').strings(), { 'app/a': '1', 'app/b': '2' });
  assert.equal(await etcd.getAll().prefix('app/').count(), 2);
  const deleted = await etcd.delete().prefix('app/');
  assert.equal(deleted.deleted, '2');
  assert.equal(await etcd.get('app/a').string(), null);
});

test('headers carry cluster_id, member_id (above 2^53, exact), raft_term and the revision', async () => {
  const put = await callOk(kv, 'Put', { key: bytes('h/key'), value: bytes('v1') });
  const header = put['header'] as Record<string, string>;
  assert.equal(header['cluster_id'], '10386079443273509696');
  assert.equal(header['member_id'], '9372538179322589801');
  assert.equal(header['raft_term'], '2');
  const revision = Number(header['revision']);
  assert.equal(revision, server.backend.store.currentRevision());
  await callOk(kv, 'Put', { key: bytes('h/key'), value: bytes('v2') });
  // A read in the past answers the past value with the CURRENT revision in the header.
  const past = await callOk(kv, 'Range', { key: bytes('h/key'), revision: revision });
  assert.equal((past['header'] as Record<string, string>)['revision'], String(revision + 1));
  const kvs = past['kvs'] as Array<Record<string, unknown>>;
  assert.equal((kvs[0]!['value'] as Buffer).toString(), 'v1');
  assert.equal(kvs[0]!['mod_revision'], String(revision));
  assert.equal(kvs[0]!['version'], '1');
});

test('etcd3 if/then/else commits the right branch; nested headers carry only the revision', async () => {
  await etcd.put('t/k').value('a');
  const first = await etcd.if('t/k', 'Value', '==', 'a').then(etcd.put('t/k').value('b')).else(etcd.put('t/other').value('no')).commit();
  assert.equal(first.succeeded, true);
  const second = await etcd.if('t/k', 'Value', '==', 'a').then(etcd.put('t/k').value('c')).else(etcd.get('t/k')).commit();
  assert.equal(second.succeeded, false);
  assert.equal(await etcd.get('t/k').string(), 'b');

  const response = await callOk(kv, 'Txn', {
    compare: [{ key: bytes('t/missing'), target: 1 /* CREATE */, result: 0, create_revision: 0 }],
    success: [{ request_range: { key: bytes('t/k') } }, { request_txn: { success: [{ request_range: { key: bytes('t/k') } }] } }],
  });
  assert.equal(response['succeeded'], true);
  const responses = response['responses'] as Array<Record<string, Record<string, unknown>>>;
  const rangeHeader = responses[0]!['response_range']!['header'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(rangeHeader), ['revision']);
  const nested = responses[1]!['response_txn']!;
  assert.deepEqual(nested['header'], {}, 'a nested txn has an empty header, as in etcd');
  assert.equal(nested['succeeded'], true);
});

test('range options: limit/more/count, sort, keys_only, count_only', async () => {
  for (const name of ['r/a', 'r/b', 'r/c']) await callOk(kv, 'Put', { key: bytes(name), value: bytes(`value-${name}`) });
  const rangeEnd = bytes('r0');
  const limited = await callOk(kv, 'Range', { key: bytes('r/'), range_end: rangeEnd, limit: 2 });
  assert.equal((limited['kvs'] as unknown[]).length, 2);
  assert.equal(limited['more'], true);
  assert.equal(limited['count'], '3');
  const sorted = await callOk(kv, 'Range', { key: bytes('r/'), range_end: rangeEnd, sort_order: 2, sort_target: 0 });
  assert.deepEqual((sorted['kvs'] as Array<{ key: Buffer }>).map((kv) => kv.key.toString()), ['r/c', 'r/b', 'r/a']);
  const keysOnly = await callOk(kv, 'Range', { key: bytes('r/'), range_end: rangeEnd, keys_only: true });
  assert.equal((keysOnly['kvs'] as Array<Record<string, unknown>>)[0]!['value'], undefined);
  const countOnly = await callOk(kv, 'Range', { key: bytes('r/'), range_end: rangeEnd, count_only: true });
  assert.equal(countOnly['kvs'], undefined);
  assert.equal(countOnly['count'], '3');
});

test('errors carry etcd codes and exact messages', async () => {
  const emptyKey = { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' };
  for (const method of ['Range', 'Put', 'DeleteRange']) {
    assert.deepEqual(await callUnary(kv, method, { value: bytes('v') }), { ok: false, ...emptyKey }, method);
  }
  const tooMany = Array.from({ length: 129 }, (_, index) => ({ request_put: { key: bytes(`many/${index}`) } }));
  assert.deepEqual(await callUnary(kv, 'Txn', { success: tooMany }), {
    ok: false,
    code: grpc.status.INVALID_ARGUMENT,
    details: 'etcdserver: too many operations in txn request',
  });
  assert.deepEqual(await callUnary(kv, 'Txn', { success: [{ request_put: { key: bytes('d') } }, { request_put: { key: bytes('d') } }] }), {
    ok: false,
    code: grpc.status.INVALID_ARGUMENT,
    details: 'etcdserver: duplicate key given in txn request',
  });
  const current = server.backend.store.currentRevision();
  assert.deepEqual(await callUnary(kv, 'Range', { key: bytes('x'), revision: current + 10 }), {
    ok: false,
    code: grpc.status.OUT_OF_RANGE,
    details: 'etcdserver: mvcc: required revision is a future revision',
  });
  await callOk(kv, 'Compact', { revision: current - 1, physical: true });
  assert.deepEqual(await callUnary(kv, 'Compact', { revision: current - 1 }), {
    ok: false,
    code: grpc.status.OUT_OF_RANGE,
    details: 'etcdserver: mvcc: required revision has been compacted',
  });
  assert.deepEqual(await callUnary(kv, 'Range', { key: bytes('x'), revision: current - 2 }), {
    ok: false,
    code: grpc.status.OUT_OF_RANGE,
    details: 'etcdserver: mvcc: required revision has been compacted',
  });
  await assert.rejects(etcd.get('x').revision(String(current - 2)).string(), /required revision has been compacted/);
});

test('request size: above maxRequestBytes "request is too large", above +512 KiB ResourceExhausted', async () => {
  const limit = server.backend.maxRequestBytes;
  assert.deepEqual(await callUnary(kv, 'Put', { key: bytes('big'), value: Buffer.alloc(limit + 1) }), {
    ok: false,
    code: grpc.status.INVALID_ARGUMENT,
    details: 'etcdserver: request is too large',
  });
  const before = server.backend.store.currentRevision();
  assert.equal((await callUnary(kv, 'Put', { key: bytes('big'), value: Buffer.alloc(limit - 100) })).ok, true);
  assert.equal(server.backend.store.currentRevision(), before + 1);
  const huge = await callUnary(kv, 'Put', { key: bytes('big'), value: Buffer.alloc(limit + 512 * 1024 + 10) });
  assert.equal(huge.ok, false);
  assert.equal(!huge.ok && huge.code, grpc.status.RESOURCE_EXHAUSTED);
});

test('no leader: hasleader calls fail at once, writes and linearizable reads are Unavailable, serializable reads served', async () => {
  server.backend.setHasLeader(false);
  try {
    const noLeader = { ok: false, code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' };
    assert.deepEqual(await callUnary(kv, 'Range', { key: bytes('k'), serializable: true }, requireLeaderMetadata()), noLeader);
    assert.deepEqual(await callUnary(kv, 'Put', { key: bytes('k'), value: bytes('v') }), noLeader);
    assert.deepEqual(await callUnary(kv, 'Range', { key: bytes('k') }), noLeader);
    assert.equal((await callUnary(kv, 'Range', { key: bytes('k'), serializable: true })).ok, true);
  } finally {
    server.backend.setHasLeader(true);
  }
  assert.equal((await callUnary(kv, 'Range', { key: bytes('k') }, requireLeaderMetadata())).ok, true);
});

test('a delete of a missing key and a read-only txn leave the revision unchanged', async () => {
  const before = server.backend.store.currentRevision();
  const deleted = await callOk(kv, 'DeleteRange', { key: bytes('never-existed') });
  assert.equal(deleted['deleted'], undefined);
  assert.equal((deleted['header'] as Record<string, string>)['revision'], String(before));
  const empty = await callOk(kv, 'Txn', {});
  assert.equal(empty['succeeded'], true);
  assert.equal((empty['header'] as Record<string, string>)['revision'], String(before));
});
