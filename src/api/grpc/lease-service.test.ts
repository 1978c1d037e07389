/**
 * The etcd Lease service over gRPC against the local test backend (a real MVCC store and lessor),
 * checked at the wire level: LeaseGrant (minimum TTL, too large TTL, client-chosen and duplicate
 * IDs), Put with an unknown lease, LeaseRevoke (keys deleted in one revision; unknown →
 * NotFound), LeaseTimeToLive (keys; unknown → OK with TTL -1), LeaseLeases, LeaseKeepAlive
 * (granted TTL; unknown → TTL absent) and `hasleader` handling.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { ProtoObject } from './etcd-proto';
import { bytes, callOk, callUnary, rawClient, requireLeaderMetadata, startTestServer, waitUntil, type RawClient, type TestServer } from './test-support';

let fakeNowMs = 5_000_000;
let server: TestServer;
let lease: RawClient;
let kv: RawClient;

before(async () => {
  server = await startTestServer({ now: () => fakeNowMs, minLeaseTtlSeconds: 2 });
  lease = rawClient('Lease', server.address);
  kv = rawClient('KV', server.address);
});

after(async () => {
  lease.close();
  kv.close();
  await server.close();
});

/** Opens a KeepAlive stream and collects its responses. */
function keepAlive(metadata = new grpc.Metadata()) {
  const open = lease['LeaseKeepAlive'] as unknown as (metadata: grpc.Metadata) => grpc.ClientDuplexStream<ProtoObject, ProtoObject>;
  const call = open.call(lease, metadata);
  const responses: ProtoObject[] = [];
  let status: grpc.StatusObject | undefined;
  call.on('data', (response: ProtoObject) => responses.push(response));
  call.on('status', (value: grpc.StatusObject) => {
    status = value;
  });
  call.on('error', () => undefined);
  return { call, responses, status: () => status };
}

test('LeaseGrant: TTL raised to the minimum, server-chosen positive ID, header present', async () => {
  const granted = await callOk(lease, 'LeaseGrant', { TTL: 1 });
  assert.equal(granted['TTL'], '2');
  assert.ok(BigInt(granted['ID'] as string) > 0n);
  const header = granted['header'] as ProtoObject;
  assert.equal(header['cluster_id'], '10386079443273509696');
  assert.equal(header['member_id'], '9372538179322589801');
});

test('LeaseGrant: client-chosen ID honoured; reused → FailedPrecondition; TTL > 9e9 → OutOfRange', async () => {
  const granted = await callOk(lease, 'LeaseGrant', { TTL: 60, ID: '7587862342341525889' });
  assert.equal(granted['ID'], '7587862342341525889');
  assert.equal(granted['TTL'], '60');
  assert.deepEqual(await callUnary(lease, 'LeaseGrant', { TTL: 60, ID: '7587862342341525889' }), {
    ok: false,
    code: grpc.status.FAILED_PRECONDITION,
    details: 'etcdserver: lease already exists',
  });
  assert.deepEqual(await callUnary(lease, 'LeaseGrant', { TTL: '9000000001' }), { ok: false, code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: too large lease TTL' });
  assert.equal((await callOk(lease, 'LeaseGrant', { TTL: '9000000000' }))['TTL'], '9000000000');
});

test('Put with an unknown lease → NotFound; LeaseRevoke deletes the attached keys in one revision; unknown → NotFound', async () => {
  assert.deepEqual(await callUnary(kv, 'Put', { key: bytes('x'), value: bytes('v'), lease: '12345' }), {
    ok: false,
    code: grpc.status.NOT_FOUND,
    details: 'etcdserver: requested lease not found',
  });
  const id = (await callOk(lease, 'LeaseGrant', { TTL: 30 }))['ID'] as string;
  await callOk(kv, 'Put', { key: bytes('held/a'), value: bytes('1'), lease: id });
  await callOk(kv, 'Put', { key: bytes('held/b'), value: bytes('2'), lease: id });
  const ttl = await callOk(lease, 'LeaseTimeToLive', { ID: id, keys: true });
  assert.equal(ttl['grantedTTL'], '30');
  assert.equal(ttl['TTL'], '30');
  assert.deepEqual((ttl['keys'] as Buffer[]).map(String), ['held/a', 'held/b']);
  const before = Number(((await callOk(kv, 'Range', { key: bytes('held/a') }))['header'] as ProtoObject)['revision']);
  const revoked = await callOk(lease, 'LeaseRevoke', { ID: id });
  assert.equal(Number((revoked['header'] as ProtoObject)['revision']), before + 1);
  assert.equal((await callOk(kv, 'Range', { key: bytes('held/'), range_end: bytes('held0') }))['kvs'], undefined);
  assert.deepEqual(await callUnary(lease, 'LeaseRevoke', { ID: id }), { ok: false, code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
  // A lease without keys: the revision does not move.
  const empty = (await callOk(lease, 'LeaseGrant', { TTL: 30 }))['ID'] as string;
  const revokedEmpty = await callOk(lease, 'LeaseRevoke', { ID: empty });
  assert.equal(Number((revokedEmpty['header'] as ProtoObject)['revision']), before + 1);
});

test('LeaseTimeToLive of an unknown lease is OK with TTL -1; LeaseLeases lists granted leases', async () => {
  const unknown = await callOk(lease, 'LeaseTimeToLive', { ID: '424242' });
  assert.equal(unknown['TTL'], '-1');
  assert.equal(unknown['ID'], '424242');
  const id = (await callOk(lease, 'LeaseGrant', { TTL: 30, ID: '31337' }))['ID'] as string;
  const listed = await callOk(lease, 'LeaseLeases', {});
  assert.ok((listed['leases'] as ProtoObject[]).some((item) => item['ID'] === id));
  await callOk(lease, 'LeaseRevoke', { ID: id });
  const after = await callOk(lease, 'LeaseLeases', {});
  assert.ok(!((after['leases'] as ProtoObject[] | undefined) ?? []).some((item) => item['ID'] === id));
});

test('LeaseKeepAlive: granted TTL per request, in order; unknown lease → TTL absent, not an error; expiry by the lessor', async () => {
  const id = (await callOk(lease, 'LeaseGrant', { TTL: 10 }))['ID'] as string;
  await callOk(kv, 'Put', { key: bytes('ka'), value: bytes('1'), lease: id });
  const stream = keepAlive();
  stream.call.write({ ID: id });
  stream.call.write({ ID: '999' });
  stream.call.write({ ID: id });
  await waitUntil(() => stream.responses.length === 3, 5000, 'three keepalive responses');
  assert.equal(stream.responses[0]!['ID'], id);
  assert.equal(stream.responses[0]!['TTL'], '10');
  assert.equal(stream.responses[1]!['ID'], '999');
  assert.equal(stream.responses[1]!['TTL'], undefined);
  assert.ok(stream.responses[1]!['header'] !== undefined);
  assert.equal(stream.responses[2]!['TTL'], '10');

  // The lessor expires the lease 10 s (fake) after the last renewal: a revoke through the write path.
  await server.backend.lessor.scan();
  await waitUntil(() => server.backend.lessor.isPrimary(), 5000, 'the lessor to become primary');
  fakeNowMs += 9_000;
  await server.backend.lessor.scan();
  assert.equal(((await callOk(kv, 'Range', { key: bytes('ka') }))['kvs'] as unknown[]).length, 1);
  fakeNowMs += 1_500;
  await server.backend.lessor.scan();
  await waitUntil(() => server.backend.store.lease(BigInt(id)) === undefined, 5000, 'the expired lease to be revoked');
  assert.equal((await callOk(kv, 'Range', { key: bytes('ka') }))['kvs'], undefined);
  stream.call.write({ ID: id });
  await waitUntil(() => stream.responses.length === 4, 5000, 'a keepalive response for the expired lease');
  assert.equal(stream.responses[3]!['TTL'], undefined);
  stream.call.end();
  await waitUntil(() => stream.status() !== undefined, 5000, 'the stream to end');
  assert.equal(stream.status()!.code, grpc.status.OK);
});

test('hasleader: unary calls and new KeepAlive streams are refused with Unavailable "etcdserver: no leader"', async () => {
  server.backend.setHasLeader(false);
  try {
    assert.deepEqual(await callUnary(lease, 'LeaseGrant', { TTL: 5 }, requireLeaderMetadata()), { ok: false, code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' });
    const stream = keepAlive(requireLeaderMetadata());
    await waitUntil(() => stream.status() !== undefined, 5000, 'the stream to be refused');
    assert.equal(stream.status()!.code, grpc.status.UNAVAILABLE);
    assert.equal(stream.status()!.details, 'etcdserver: no leader');
  } finally {
    server.backend.setHasLeader(true);
  }
});
