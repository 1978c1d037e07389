/**
 * Unit tests of the cache tier's pure parts: byte accounting and eviction order of the LRU,
 * expiry with jitter on a fake clock, the ring's distribution, singleflight, and the group's
 * coherence rules with a fake store and fake peers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteLru, jitteredExpiryMs, type CacheEntry } from './lru';
import { HashRing } from './hash-ring';
import { Singleflight } from './singleflight';
import { CacheGroup, type GroupStore, type LoadedValue, type OwnerChoice, type PeerClient } from './group';
import type { PeerGetResponse } from './cache-proto';

const entry = (value: string, modRevision = 1, expiresAtMs = Number.MAX_SAFE_INTEGER): CacheEntry => ({ value: Buffer.from(value), modRevision, expiresAtMs });

function recomputedBytes(lru: ByteLru): number {
  return lru.keys().reduce((sum, key) => sum + ByteLru.costOf(key, lru.peek(key)!.value), 0);
}

describe('ByteLru', () => {
  it('counts keys and values, and never leaks budget on delete, replace, evict or clear', () => {
    const lru = new ByteLru(100, () => 0);
    assert.equal(lru.set('ab', entry('1234')), true);
    assert.equal(lru.bytes, 6);
    lru.set('ab', entry('12345678'));
    assert.equal(lru.bytes, 10);
    lru.set('é', entry('x'));
    assert.equal(lru.bytes, 10 + 2 + 1, 'keys are counted in UTF-8 bytes');
    assert.equal(lru.delete('ab'), true);
    assert.equal(lru.delete('ab'), false);
    assert.equal(lru.bytes, 3);
    for (let index = 0; index < 1000; index++) {
      lru.set(`k${index % 37}`, entry('v'.repeat(index % 11)));
      if (index % 7 === 0) lru.delete(`k${(index * 3) % 37}`);
      assert.equal(lru.bytes, recomputedBytes(lru));
      assert.ok(lru.bytes <= 100);
    }
    lru.clear();
    assert.equal(lru.bytes, 0);
    assert.equal(lru.size, 0);
  });

  it('evicts the least recently used first; a get refreshes recency; an oversize value is refused', () => {
    const lru = new ByteLru(30, () => 0);
    lru.set('a', entry('123456789')); // 10 bytes
    lru.set('b', entry('123456789'));
    lru.set('c', entry('123456789'));
    assert.ok(lru.get('a') !== undefined); // order now b, c, a
    lru.set('d', entry('123456789'));
    assert.deepEqual(lru.keys(), ['c', 'a', 'd']);
    assert.equal(lru.counters.evictions, 1);
    assert.equal(lru.set('huge', entry('x'.repeat(40))), false);
    assert.deepEqual(lru.keys(), ['c', 'a', 'd'], 'a refused value evicts nothing');
    lru.set('e', entry('x'.repeat(19))); // 20 bytes: evicts c and a
    assert.deepEqual(lru.keys(), ['d', 'e']);
    assert.equal(lru.counters.evictions, 3);
    assert.equal(lru.bytes, recomputedBytes(lru));
  });

  it('expires entries on a fake clock; jitter only shortens the TTL and spreads expiries', () => {
    let now = 1000;
    const lru = new ByteLru(1000, () => now);
    const random = sequence([0, 0.5, 0.999]);
    const expiries = ['a', 'b', 'c'].map((key) => {
      const expiresAtMs = jitteredExpiryMs(now, 10_000, 0.2, random);
      lru.set(key, entry('v', 1, expiresAtMs));
      return expiresAtMs;
    });
    assert.deepEqual(expiries, [11_000, 10_000, 9_002]);
    now = 9_001;
    assert.deepEqual(['a', 'b', 'c'].map((key) => lru.get(key) !== undefined), [true, true, true]);
    now = 9_002;
    assert.equal(lru.get('c'), undefined);
    now = 10_000;
    assert.equal(lru.get('b'), undefined);
    assert.ok(lru.get('a') !== undefined);
    now = 11_000;
    assert.equal(lru.get('a'), undefined);
    assert.equal(lru.counters.expirations, 3);
    assert.equal(lru.bytes, 0);
    for (let index = 0; index < 1000; index++) {
      const expiry = jitteredExpiryMs(0, 10_000, 0.1, Math.random);
      assert.ok(expiry >= 9_000 && expiry <= 10_000, `expiry ${expiry}`);
    }
  });
});

function sequence(values: number[]): () => number {
  let index = 0;
  return () => values[index++ % values.length]!;
}

describe('HashRing', () => {
  for (const nodeCount of [2, 3, 5, 8, 10]) {
    it(`${nodeCount} nodes × 100 virtual nodes: no node owns more than 1.3× its fair share of 10,000 keys`, () => {
      const members = Array.from({ length: nodeCount }, (_, index) => `127.0.0.1:${7000 + index}`);
      const ring = new HashRing(members, 100);
      const owned = new Map<string, number>();
      for (let index = 0; index < 10_000; index++) {
        const owner = ring.ownerOf(`key-${index}`)!;
        owned.set(owner, (owned.get(owner) ?? 0) + 1);
      }
      const fair = 10_000 / nodeCount;
      const worst = Math.max(...owned.values());
      assert.ok(worst <= 1.3 * fair, `worst share ${worst} > 1.3 × ${fair}`);
      assert.equal(owned.size, nodeCount);
    });
  }

  it('is the same in any member order, and removing a member moves only its keys', () => {
    const members = ['a:1', 'b:2', 'c:3', 'd:4'];
    const ring = new HashRing(members, 100);
    const reversed = new HashRing([...members].reverse(), 100);
    const smaller = new HashRing(['a:1', 'b:2', 'c:3'], 100);
    for (let index = 0; index < 2000; index++) {
      const key = `k${index}`;
      assert.equal(ring.ownerOf(key), reversed.ownerOf(key));
      if (ring.ownerOf(key) !== 'd:4') assert.equal(smaller.ownerOf(key), ring.ownerOf(key));
    }
    assert.equal(new HashRing([], 100).ownerOf('x'), undefined);
  });
});

describe('Singleflight', () => {
  it('concurrent calls for one key share one execution; later calls start a new one', async () => {
    const flights = new Singleflight<number>();
    let runs = 0;
    let release!: (value: number) => void;
    const work = (): Promise<number> => {
      runs++;
      return new Promise((resolve) => (release = resolve));
    };
    const results = Promise.all(Array.from({ length: 50 }, () => flights.do('k', work)));
    const other = flights.do('other', async () => 7);
    assert.equal(runs, 1);
    release(42);
    assert.deepEqual(new Set(await results), new Set([42]));
    assert.equal(await other, 7);
    assert.equal(flights.size, 0);
    const again = flights.do('k', work);
    assert.equal(runs, 2);
    release(43);
    assert.equal(await again, 43);
  });

  it('shares a rejection too, and forgets it', async () => {
    const flights = new Singleflight<number>();
    let runs = 0;
    const failing = async (): Promise<number> => {
      runs++;
      throw new Error('boom');
    };
    const outcomes = await Promise.allSettled([flights.do('k', failing), flights.do('k', failing)]);
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ['rejected', 'rejected']);
    assert.equal(runs, 1);
    await assert.rejects(flights.do('k', failing));
    assert.equal(runs, 2);
  });
});

/** A store with controllable loads. */
class FakeStore implements GroupStore {
  readonly data = new Map<string, { value: Buffer; modRevision: number }>();
  revision = 10;
  loads = 0;
  gate: Promise<void> | undefined;
  async load(key: string): Promise<LoadedValue> {
    this.loads++;
    const snapshot = this.data.get(key);
    if (this.gate !== undefined) await this.gate;
    return snapshot === undefined ? { found: false, value: Buffer.alloc(0), modRevision: 0 } : { found: true, ...snapshot };
  }
  async write(key: string, value: Buffer): Promise<number> {
    this.revision++;
    this.data.set(key, { value, modRevision: this.revision });
    return this.revision;
  }
}

function makeGroup(store: GroupStore, pick: () => OwnerChoice, hotFraction = 0): CacheGroup {
  return new CacheGroup({ name: 'g', maxBytes: 10_000, hotMaxBytes: 1000, ttlMs: 60_000, ttlJitter: 0.1, hotFraction, maxValueBytes: 100, store, picker: { pick } });
}

describe('CacheGroup', () => {
  it('concurrent misses cause one load; then hits', async () => {
    const store = new FakeStore();
    await store.write('k', Buffer.from('v'));
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    const group = makeGroup(store, () => ({ self: true }));
    const pending = Promise.all(Array.from({ length: 20 }, () => group.get('k')));
    release();
    for (const loaded of await pending) assert.equal(loaded.value.toString(), 'v');
    assert.equal(store.loads, 1);
    await group.get('k');
    assert.equal(group.stats().hits, 1);
    assert.equal(group.stats().misses, 20);
  });

  it('a change that arrives during a load keeps the loaded (older) value out of the cache', async () => {
    const store = new FakeStore();
    await store.write('k', Buffer.from('old'));
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    const group = makeGroup(store, () => ({ self: true }));
    const loading = group.get('k');
    const revision = await store.write('k', Buffer.from('new'));
    group.applyChange({ type: 'put', key: 'k', value: Buffer.from('new'), modRevision: revision });
    release();
    assert.equal((await loading).value.toString(), 'old');
    store.gate = undefined;
    assert.equal((await group.get('k')).value.toString(), 'new', 'the next read loads again');
    assert.equal(store.loads, 2);
  });

  it('watch changes replace newer values and drop deleted ones', async () => {
    const store = new FakeStore();
    await store.write('k', Buffer.from('v1'));
    const group = makeGroup(store, () => ({ self: true }));
    await group.get('k');
    group.applyChange({ type: 'put', key: 'k', value: Buffer.from('stale'), modRevision: 5 });
    assert.equal((await group.get('k')).value.toString(), 'v1', 'an older change is ignored');
    group.applyChange({ type: 'put', key: 'k', value: Buffer.from('v2'), modRevision: 20 });
    assert.equal((await group.get('k')).value.toString(), 'v2');
    group.applyChange({ type: 'delete', key: 'k', value: Buffer.alloc(0), modRevision: 21 });
    store.data.delete('k');
    assert.equal((await group.get('k')).found, false);
    assert.equal(store.loads, 2);
  });

  it('a failing peer falls back to a local load; a lagging peer answer is not kept hot', async () => {
    const store = new FakeStore();
    await store.write('k', Buffer.from('v'));
    let peerAnswer: () => Promise<PeerGetResponse> = async () => {
      throw new Error('deadline exceeded');
    };
    const peer: PeerClient = { address: 'peer:1', get: () => peerAnswer(), set: async () => ({ ok: true }) };
    const group = makeGroup(store, () => ({ self: false, peer }), 1);
    assert.equal((await group.get('k')).value.toString(), 'v');
    assert.equal(group.stats().localFallbacks, 1);
    assert.equal(store.loads, 1);
    const other = makeGroup(store, () => ({ self: false, peer }), 1);
    other.applyChange({ type: 'put', key: 'x', value: Buffer.from('y'), modRevision: 30 });
    peerAnswer = async () => ({ found: true, value: Buffer.from('v'), modRevision: 11, watchedRevision: 29 });
    await other.get('k');
    assert.equal(other.stats().hotEntries, 0, 'the peer had not seen revision 30: no hot copy');
    peerAnswer = async () => ({ found: true, value: Buffer.from('v'), modRevision: 11, watchedRevision: 30 });
    await other.get('k');
    assert.equal(other.stats().hotEntries, 1);
    assert.equal((await other.get('k')).value.toString(), 'v');
    assert.equal(other.stats().hotHits, 1);
  });

  it('refuses empty keys and oversize values with stable codes', async () => {
    const group = makeGroup(new FakeStore(), () => ({ self: true }));
    await assert.rejects(group.get(''), { code: 'empty-key' });
    await assert.rejects(group.set('k', Buffer.alloc(101)), { code: 'value-too-large' });
  });
});
