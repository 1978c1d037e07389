/**
 * The replicated lease state inside the MVCC store (etcd v3.4.23 lessor semantics at apply time):
 * grant, duplicate grant, Put with an unknown lease, attach / re-attach / detach, revoke deleting
 * every attached key in ONE revision (none attached: revision unchanged), checkpoints, durability
 * across a reopen, and the snapshot image carrying leases. Plus the lease entry kinds of the write
 * codec (round trip, and damaged input as a value error).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bytes, TestStore, unwrap } from './test-support';
import { decodeMvccWrite, encodeMvccWrite } from './write-codec';
import type { MvccWriteRequest } from './types';

const LEASE = 7587862342341525889n; // above 2^53, as etcd's are

async function withStore(body: (t: TestStore) => Promise<void>): Promise<void> {
  const t = await TestStore.create({ enforceLeases: true });
  try {
    await body(t);
  } finally {
    await t.destroy();
  }
}

test('grant: the lease exists with its TTL; a second grant of the same ID is "lease-exists"; the revision does not move', async () => {
  await withStore(async (t) => {
    const granted = unwrap(await t.write({ kind: 'leaseGrant', request: { id: LEASE, ttlSeconds: 10 } }), 'leaseGrant');
    assert.deepEqual(granted, { id: LEASE, ttlSeconds: 10, revision: 1 });
    assert.deepEqual(t.store.lease(LEASE), { id: LEASE, ttlSeconds: 10, remainingMs: 0 });
    const again = await t.write({ kind: 'leaseGrant', request: { id: LEASE, ttlSeconds: 20 } });
    assert.deepEqual(again, { ok: false, error: 'lease-exists' });
    assert.equal(t.store.currentRevision(), 1);
  });
});

test('put with an unknown lease is "lease-not-found" (also inside a txn); with a granted one it attaches', async () => {
  await withStore(async (t) => {
    assert.deepEqual(await t.putRaw({ key: bytes('k'), value: bytes('v'), lease: 5n }), { ok: false, error: 'lease-not-found' });
    const txn = await t.txn({ success: [{ kind: 'put', request: { key: bytes('k'), value: bytes('v'), lease: 5n } }] });
    assert.deepEqual(txn, { ok: false, error: 'lease-not-found' });
    await t.write({ kind: 'leaseGrant', request: { id: 5n, ttlSeconds: 10 } });
    await t.put('k', 'v', { lease: 5n });
    assert.deepEqual(t.store.leaseKeys(5n).map(String), ['k']);
    assert.equal((await t.get({ key: bytes('k') })).kvs[0]!.lease, 5n);
  });
});

test('re-put without a lease detaches, with another lease re-attaches, a delete detaches', async () => {
  await withStore(async (t) => {
    await t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 10 } });
    await t.write({ kind: 'leaseGrant', request: { id: 2n, ttlSeconds: 10 } });
    await t.put('a', '1', { lease: 1n });
    await t.put('b', '1', { lease: 1n });
    await t.put('c', '1', { lease: 1n });
    await t.put('a', '2'); // detached
    await t.put('b', '2', { lease: 2n }); // moved to lease 2
    await t.del('c'); // detached by deletion
    assert.deepEqual(t.store.leaseKeys(1n), []);
    assert.deepEqual(t.store.leaseKeys(2n).map(String), ['b']);
    // ignore_lease keeps the current lease.
    await t.put('b', '3', { ignoreLease: true });
    assert.deepEqual(t.store.leaseKeys(2n).map(String), ['b']);
  });
});

test('revoke deletes every attached key in ONE revision, in key order; a lease without keys leaves the revision unchanged', async () => {
  await withStore(async (t) => {
    await t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 10 } });
    await t.write({ kind: 'leaseGrant', request: { id: 2n, ttlSeconds: 10 } });
    await t.put('z', '1', { lease: 1n });
    await t.put('m', '1', { lease: 1n });
    await t.put('other', '1');
    const before = t.store.currentRevision();
    const events: string[] = [];
    t.store.subscribe((revision, list) => events.push(...list.map((event) => `${revision}:${event.type}:${event.kv.key.toString()}`)));
    const revoked = unwrap(await t.write({ kind: 'leaseRevoke', request: { id: 1n } }), 'leaseRevoke');
    assert.equal(revoked.revision, before + 1);
    assert.deepEqual(events, [`${before + 1}:1:m`, `${before + 1}:1:z`]);
    assert.deepEqual(await t.keys({ key: bytes('\0'), rangeEnd: bytes('\0') }), ['other']);
    assert.equal(t.store.lease(1n), undefined);
    assert.deepEqual(await t.write({ kind: 'leaseRevoke', request: { id: 1n } }), { ok: false, error: 'lease-not-found' });

    const empty = unwrap(await t.write({ kind: 'leaseRevoke', request: { id: 2n } }), 'leaseRevoke');
    assert.equal(empty.revision, before + 1);
    assert.equal(t.store.currentRevision(), before + 1);
    // A revoked lease can no longer be used.
    assert.deepEqual(await t.putRaw({ key: bytes('x'), value: bytes('v'), lease: 1n }), { ok: false, error: 'lease-not-found' });
  });
});

test('checkpoints record remaining TTLs (unknown IDs ignored); leases and attachments survive a reopen', async () => {
  await withStore(async (t) => {
    await t.write({ kind: 'leaseGrant', request: { id: LEASE, ttlSeconds: 30 } });
    await t.put('held', 'v', { lease: LEASE });
    await t.write({ kind: 'leaseCheckpoint', request: { checkpoints: [{ id: LEASE, remainingMs: 12_345 }, { id: 99n, remainingMs: 1 }] } });
    assert.equal(t.store.lease(LEASE)!.remainingMs, 12_345);
    assert.equal(t.store.lease(99n), undefined);
    await t.reopen();
    assert.deepEqual(t.store.lease(LEASE), { id: LEASE, ttlSeconds: 30, remainingMs: 12_345 });
    assert.deepEqual(t.store.leaseKeys(LEASE).map(String), ['held']);
    // Replaying the same entries after a restart is skipped (idempotent by applied index).
    const replay = await t.store.apply(t.index, { kind: 'leaseRevoke', request: { id: LEASE } });
    assert.equal(replay.skipped, true);
    assert.ok(t.store.lease(LEASE) !== undefined);
  });
});

test('the snapshot image carries leases and their keys', async () => {
  const source = await TestStore.create({ enforceLeases: true });
  const target = await TestStore.create({ enforceLeases: true });
  try {
    await source.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 10 } });
    await source.write({ kind: 'leaseGrant', request: { id: LEASE, ttlSeconds: 60 } });
    await source.write({ kind: 'leaseCheckpoint', request: { checkpoints: [{ id: LEASE, remainingMs: 5000 }] } });
    await source.put('a', '1', { lease: 1n });
    await source.put('b', '1', { lease: LEASE });
    const parts: Uint8Array[] = [];
    await source.store.flush();
    for await (const chunk of source.store.writeSnapshot()) parts.push(chunk);
    await target.put('stale', 'x');
    await target.store.restoreSnapshot((async function* () {
      yield* parts;
    })(), source.index);
    assert.deepEqual(target.store.leases(), source.store.leases());
    assert.deepEqual(target.store.leaseKeys(1n).map(String), ['a']);
    assert.deepEqual(target.store.leaseKeys(LEASE).map(String), ['b']);
    target.index = source.index;
    await target.write({ kind: 'leaseRevoke', request: { id: LEASE } });
    assert.deepEqual(await target.keys({ key: bytes('\0'), rangeEnd: bytes('\0') }), ['a']);
  } finally {
    await source.destroy();
    await target.destroy();
  }
});

test('write codec: lease entries round-trip; damaged ones decode to a value error', () => {
  const writes: MvccWriteRequest[] = [
    { kind: 'leaseGrant', request: { id: LEASE, ttlSeconds: 9_000_000_000 } },
    { kind: 'leaseRevoke', request: { id: -5n } },
    { kind: 'leaseCheckpoint', request: { checkpoints: [{ id: 1n, remainingMs: 0 }, { id: LEASE, remainingMs: 1234 }] } },
    { kind: 'put', request: { key: bytes('k'), value: bytes('v'), lease: LEASE } },
  ];
  for (const write of writes) {
    const encoded = encodeMvccWrite(42n, write);
    const decoded = decodeMvccWrite(encoded);
    assert.ok(decoded.ok);
    assert.equal(decoded.value.requestId, 42n);
    assert.deepEqual(JSON.parse(JSON.stringify(decoded.value.write, (_, v) => (typeof v === 'bigint' ? `${v}n` : Buffer.isBuffer(v) ? v.toString('hex') : v))), JSON.parse(JSON.stringify(write, (_, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))));
    for (let cut = 0; cut < encoded.length; cut++) assert.equal(decodeMvccWrite(encoded.subarray(0, cut)).ok, false, `truncated at ${cut}`);
  }
  const checkpoint = Buffer.from(encodeMvccWrite(1n, writes[2]!));
  checkpoint.writeUInt32LE(1_000_000, 10); // a count larger than the entry can hold
  assert.deepEqual(decodeMvccWrite(checkpoint), { ok: false, reason: 'bad-count' });
  const unknown = Buffer.from(encodeMvccWrite(1n, writes[1]!));
  unknown[9] = 99;
  assert.deepEqual(decodeMvccWrite(unknown), { ok: false, reason: 'unknown-kind-99' });
});
