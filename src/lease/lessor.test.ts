/**
 * The lessor's leader-side expiry on a fake clock and a real MVCC store (its replicated table):
 * the minimum TTL and grant preparation, expiry by a proposed LeaseRevoke, renewals (granted TTL,
 * unknown/expired → not found, refused on a non-leader or a leader that loses its term while
 * confirming), no timers or proposals on followers, checkpoints of drifted remaining TTLs, and a
 * new leader resuming every lease from its checkpoint (neither forever nor early). Also etcd-style
 * lease IDs and the LeaseForward codec.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestStore } from '../mvcc/test-support';
import type { MvccWriteRequest } from '../mvcc/types';
import { Lessor, MAX_LEASE_TTL_SECONDS, minLeaseTtlSeconds, prepareLeaseGrant } from './lessor';
import { LeaseIdGenerator } from './lease-id';
import { decodeLeaseForwardRequest, decodeLeaseForwardResponse, encodeLeaseForwardRequest, encodeLeaseForwardResponse } from '../transport/lease-forward';

/** A lessor over a real store, with a fake clock and a switchable leadership. */
class Harness {
  nowMs = 1_000_000;
  isLeader = true;
  term = 5;
  /** When set, leadership confirmation fails (a deposed leader). */
  confirmFails = false;
  readonly proposals: MvccWriteRequest[] = [];
  private readonly pending: Array<Promise<unknown>> = [];
  readonly lessor: Lessor;

  constructor(readonly t: TestStore, driftMs = 1000) {
    this.lessor = new Lessor(
      {
        table: t.store,
        now: () => this.nowMs,
        leadership: () => ({ isLeader: this.isLeader, term: this.term }),
        confirmLeadership: async () => {
          if (this.confirmFails) throw new Error('not leader');
        },
        propose: (write) => {
          this.proposals.push(write);
          const applied = this.t.write(write);
          this.pending.push(applied);
          return applied;
        },
      },
      { checkpointDriftMs: driftMs },
    );
  }

  /** One scan, then let the proposals it started apply (and their callbacks run). */
  async scan(): Promise<void> {
    await this.lessor.scan();
    await Promise.allSettled(this.pending.splice(0));
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }

  /** Scans until primary (the first scan of a term promotes asynchronously). */
  async promote(): Promise<void> {
    await this.scan();
    await this.scan();
    assert.ok(this.lessor.isPrimary());
  }

  kinds(): string[] {
    return this.proposals.map((write) => write.kind);
  }
}

async function withHarness(body: (h: Harness) => Promise<void>, driftMs?: number): Promise<void> {
  const t = await TestStore.create({ enforceLeases: true });
  try {
    await body(new Harness(t, driftMs));
  } finally {
    await t.destroy();
  }
}

test('a scheduler given to start() drives the scans, and stop() cancels it and demotes', async () => {
  await withHarness(async (h) => {
    let scan: (() => void) | undefined;
    let cancelled = 0;
    h.lessor.start((driven) => {
      scan = driven;
      return () => cancelled++;
    });
    h.lessor.start(() => assert.fail('a second start() is ignored'));
    assert.ok(scan !== undefined);
    const deadline = Date.now() + 10_000;
    while (!h.lessor.isPrimary()) {
      assert.ok(Date.now() < deadline, 'scans driven by the scheduler did not promote the leader');
      scan();
      await new Promise((resolve) => setImmediate(resolve));
    }
    h.lessor.stop();
    assert.equal(cancelled, 1);
    assert.equal(h.lessor.isPrimary(), false);
  });
});

test('minimum TTL is ceil(floor(3*electionTicks/2) * heartbeat interval) seconds, as etcd computes it', () => {
  assert.equal(minLeaseTtlSeconds({ electionTicks: 10, heartbeatTicks: 1, tickMs: 100 }), 2); // 1.5 s → 2 s (etcd's default)
  assert.equal(minLeaseTtlSeconds({ electionTicks: 10, heartbeatTicks: 1, tickMs: 50 }), 1); // 0.75 s → 1 s
  assert.equal(minLeaseTtlSeconds({ electionTicks: 5, heartbeatTicks: 2, tickMs: 100 }), 2); // 7 * 200 ms = 1.4 s
  assert.equal(minLeaseTtlSeconds({ electionTicks: 50, heartbeatTicks: 1, tickMs: 100 }), 8); // 7.5 s → 8 s
});

test('grant preparation: TTL raised to the minimum, too large refused, client ID kept, ID 0 replaced before proposing', () => {
  const ids = [0n, 77n];
  const next = () => ids.shift()!;
  assert.deepEqual(prepareLeaseGrant(0, 0n, 2, next), { ok: true, value: { id: 77n, ttlSeconds: 2 } });
  assert.deepEqual(prepareLeaseGrant(60, 123n, 2, next), { ok: true, value: { id: 123n, ttlSeconds: 60 } });
  assert.deepEqual(prepareLeaseGrant(MAX_LEASE_TTL_SECONDS, 5n, 2, next), { ok: true, value: { id: 5n, ttlSeconds: MAX_LEASE_TTL_SECONDS } });
  assert.deepEqual(prepareLeaseGrant(MAX_LEASE_TTL_SECONDS + 1, 5n, 2, next), { ok: false, error: 'lease-ttl-too-large' });
});

test('lease IDs: low 16 bits of the member ID on top, millisecond clock and counter below, positive and distinct', () => {
  const generator = new LeaseIdGenerator(0xabcd_1234_5678_9369n, 1_700_000_000_000);
  const first = generator.next();
  const second = generator.next();
  assert.equal(first >> 48n, 0x9369n & 0x7fffn); // sign bit cleared, as etcd masks it
  assert.equal(second, first + 1n);
  assert.ok(first > 0n);
  assert.equal((first >> 8n) & ((1n << 40n) - 1n), 1_700_000_000_000n & ((1n << 40n) - 1n));
  assert.notEqual(new LeaseIdGenerator(2n, 1_700_000_000_000).next() >> 48n, new LeaseIdGenerator(3n, 1_700_000_000_000).next() >> 48n);
});

test('the primary revokes an expired lease through the log, not before its TTL', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 5 } });
    await h.t.put('k', 'v', { lease: 1n });
    await h.promote();
    h.nowMs += 4_900;
    await h.scan();
    assert.ok(!h.kinds().includes('leaseRevoke'));
    h.nowMs += 200;
    await h.scan();
    assert.deepEqual(h.proposals.filter((write) => write.kind === 'leaseRevoke'), [{ kind: 'leaseRevoke', request: { id: 1n } }]);
    assert.equal(h.t.store.lease(1n), undefined);
    assert.deepEqual(await h.t.keys({ key: Buffer.from('\0'), rangeEnd: Buffer.from('\0') }), []);
  });
});

test('renew: answers the granted TTL and pushes expiry to now + TTL; unknown or expired → not found', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 5 } });
    await h.promote();
    for (let i = 0; i < 5; i++) {
      h.nowMs += 3_000;
      assert.deepEqual(await h.lessor.renew(1n), { kind: 'renewed', ttlSeconds: 5 });
      await h.scan();
    }
    assert.ok(h.t.store.lease(1n) !== undefined, 'kept alive for 15 s with a 5 s TTL');
    assert.deepEqual(h.lessor.timeToLive(1n), { kind: 'found', remainingSeconds: 5, grantedTtlSeconds: 5 });
    h.nowMs += 2_500;
    assert.deepEqual(h.lessor.timeToLive(1n), { kind: 'found', remainingSeconds: 2, grantedTtlSeconds: 5 });
    assert.deepEqual(await h.lessor.renew(404n), { kind: 'not-found' });
    assert.deepEqual(h.lessor.timeToLive(404n), { kind: 'not-found' });
    h.nowMs += 2_600; // expired, revoke not applied yet
    assert.deepEqual(await h.lessor.renew(1n), { kind: 'not-found' });
  });
});

test('renew is refused on a follower and on a leader that cannot confirm its leadership', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 5 } });
    h.isLeader = false;
    assert.deepEqual(await h.lessor.renew(1n), { kind: 'not-leader' });
    h.isLeader = true;
    h.confirmFails = true;
    assert.deepEqual(await h.lessor.renew(1n), { kind: 'not-leader' });
  });
});

test('followers keep no timers: no revoke and no checkpoint is ever proposed while not leader', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 2 } });
    h.isLeader = false;
    for (let i = 0; i < 10; i++) {
      h.nowMs += 1_000;
      await h.scan();
    }
    assert.deepEqual(h.proposals, []);
    assert.equal(h.lessor.isPrimary(), false);
    assert.deepEqual(h.lessor.timeToLive(1n), { kind: 'not-leader' });
  });
});

test('checkpoints: a drifted remaining TTL is written to the log; a renewal clears it (0 = whole TTL)', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 10 } });
    await h.promote();
    h.nowMs += 900;
    await h.scan();
    assert.deepEqual(h.proposals, [], 'within the drift: nothing to checkpoint');
    h.nowMs += 200;
    await h.scan();
    assert.deepEqual(h.proposals, [{ kind: 'leaseCheckpoint', request: { checkpoints: [{ id: 1n, remainingMs: 8_900 }] } }]);
    assert.equal(h.t.store.lease(1n)!.remainingMs, 8_900);
    assert.deepEqual(await h.lessor.renew(1n), { kind: 'renewed', ttlSeconds: 10 });
    await h.scan();
    assert.deepEqual(h.proposals[1], { kind: 'leaseCheckpoint', request: { checkpoints: [{ id: 1n, remainingMs: 0 }] } });
    assert.equal(h.t.store.lease(1n)!.remainingMs, 0);
  });
});

test('leader change: the new leader resumes each lease from its checkpoint — not forever, not early', async () => {
  await withHarness(async (h) => {
    await h.t.write({ kind: 'leaseGrant', request: { id: 1n, ttlSeconds: 10 } });
    await h.t.write({ kind: 'leaseGrant', request: { id: 2n, ttlSeconds: 10 } });
    await h.promote();
    h.nowMs += 6_000;
    await h.lessor.renew(2n); // lease 2 renewed at t=6 s: expires at t=16 s
    await h.scan(); // checkpoints lease 1 at 4 s remaining; lease 2 at the whole TTL
    assert.equal(h.t.store.lease(1n)!.remainingMs, 4_000);
    assert.equal(h.t.store.lease(2n)!.remainingMs, 0);

    // The leader dies; after an election timeout a new leader (another lessor, same table) takes over.
    h.isLeader = false;
    await h.scan();
    const successor = new Harness(h.t);
    successor.nowMs = h.nowMs + 1_000;
    successor.term = h.term + 1;
    await successor.promote();
    successor.nowMs += 3_900;
    await successor.scan();
    assert.ok(successor.t.store.lease(1n) !== undefined, 'not expired early (its 4 s resume at the new leader)');
    successor.nowMs += 200;
    await successor.scan();
    assert.equal(successor.t.store.lease(1n), undefined, 'lease 1 expired 4 s after the new leader took over');
    assert.ok(successor.t.store.lease(2n) !== undefined);
    successor.nowMs += 6_000; // 10.1 s after the takeover
    await successor.scan();
    assert.equal(successor.t.store.lease(2n), undefined, 'lease 2 expired a whole TTL after the takeover');
  });
});

test('LeaseForward codec: round trip, and unknown tags are value errors', () => {
  for (const request of [{ op: 'renew', id: 7587862342341525889n }, { op: 'time-to-live', id: -3n }] as const) {
    assert.deepEqual(decodeLeaseForwardRequest(encodeLeaseForwardRequest(request)), { ok: true, value: request });
  }
  for (const response of [{ outcome: 'found', ttlSeconds: 9_000_000_000, grantedTtlSeconds: 12 }, { outcome: 'not-found' }, { outcome: 'not-leader' }] as const) {
    assert.deepEqual(decodeLeaseForwardResponse(encodeLeaseForwardResponse(response)), { ok: true, value: response });
  }
  assert.equal(decodeLeaseForwardRequest(Buffer.from([0x08, 0x07])).ok, false); // op = 7
  assert.equal(decodeLeaseForwardResponse(Buffer.from([0x08, 0x09])).ok, false);
  assert.equal(decodeLeaseForwardResponse(Buffer.from([0xff, 0xff])).ok, false);
});
