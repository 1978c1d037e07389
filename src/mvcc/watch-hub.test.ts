/**
 * WatchHub: live events, replay from history, filters, prev_kv, future and compacted start
 * revisions, cancel, and a randomised run (seeded PRNG) of slow consumers against a reference
 * model: every watcher must receive exactly the events the model predicts, in order, with bounded
 * queues.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { prefixRangeEnd, rangeContains, resolveRange, toKeyString } from './key-range';
import { bytes, seededRandom, TestStore } from './test-support';
import { EventType, type MvccEvent, type MvccWriteRequest, type RequestOp } from './types';
import { WatchHub, type WatchDelivery, type Watcher, type WatchOptions } from './watch-hub';

let t: TestStore;
let hub: WatchHub;
beforeEach(async () => {
  t = await TestStore.create();
});
afterEach(async () => {
  hub?.close();
  await t.destroy();
});

/** Resolves with the next delivery, failing the test if none comes within the deadline. */
async function nextWithin(watcher: Watcher, deadlineMs = 5_000): Promise<WatchDelivery> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('no delivery before the deadline')), deadlineMs);
  });
  try {
    return await Promise.race([watcher.next(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function describeEvent(event: MvccEvent): string {
  const type = event.type === EventType.Put ? 'PUT' : 'DEL';
  const previous = event.prevKv === undefined ? '' : ` prev=${event.prevKv.value.toString()}@${event.prevKv.modRevision}`;
  return `${type} ${event.kv.key.toString()}=${event.kv.value.toString()} m${event.kv.modRevision} c${event.kv.createRevision} v${event.kv.version}${previous}`;
}

async function eventsOf(watcher: Watcher): Promise<string[]> {
  const delivery = await nextWithin(watcher);
  assert.equal(delivery.kind, 'events');
  return delivery.kind === 'events' ? delivery.events.map(describeEvent) : [];
}

describe('watch hub', () => {
  test('live events for a key and a prefix; revisions queued meanwhile arrive together, in order', async () => {
    hub = new WatchHub(t.store);
    const single = hub.watch({ key: bytes('a') });
    const prefix = hub.watch({ key: bytes('p/'), rangeEnd: prefixRangeEnd(bytes('p/')) });
    assert.deepEqual(hub.counts(), { synced: 2, unsynced: 0 });
    await t.put('a', '1');
    await t.put('p/x', '2');
    await t.txn({ success: [{ kind: 'put', request: { key: bytes('p/y'), value: bytes('3') } }, { kind: 'deleteRange', request: { key: bytes('p/x') } }] });
    await t.del('a');
    assert.deepEqual(await eventsOf(single), ['PUT a=1 m2 c2 v1', 'DEL a= m5 c0 v0']);
    assert.deepEqual(await eventsOf(prefix), ['PUT p/x=2 m3 c3 v1', 'PUT p/y=3 m4 c4 v1', 'DEL p/x= m4 c0 v0']);
    // A consumer that keeps up gets one delivery per revision.
    const pending = nextWithin(single);
    await t.put('a', '2');
    const delivery = await pending;
    assert.ok(delivery.kind === 'events' && delivery.events.length === 1);
  });

  test('queued revisions are merged into deliveries of at most 1,000 events, whole revisions only', async () => {
    hub = new WatchHub(t.store, { bufferedEventsMax: 10_000 });
    const watcher = hub.watch({ key: bytes('m/'), rangeEnd: prefixRangeEnd(bytes('m/')) });
    for (let i = 0; i < 701; i++) await t.put(`m/${i}`, 'v');
    // Two events in one revision must not be split across deliveries.
    for (let i = 0; i < 400; i++) {
      await t.txn({ success: [{ kind: 'put', request: { key: bytes(`m/a${i}`), value: bytes('1') } }, { kind: 'put', request: { key: bytes(`m/b${i}`), value: bytes('2') } }] });
    }
    const sizes: number[] = [];
    let revisions: number[] = [];
    while (sizes.reduce((sum, size) => sum + size, 0) < 1501) {
      const delivery = await nextWithin(watcher);
      assert.ok(delivery.kind === 'events');
      sizes.push(delivery.events.length);
      revisions = revisions.concat(delivery.events.map((event) => event.kv.modRevision));
    }
    assert.deepEqual(sizes, [999, 502], 'the 1,000th event would split a revision: it waits for the next delivery');
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b), 'in revision order');
  });

  test('a pending next() is resolved by a later write', async () => {
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k') });
    const pending = nextWithin(watcher);
    await t.put('k', 'v');
    const delivery = await pending;
    assert.ok(delivery.kind === 'events' && delivery.events.length === 1);
  });

  test('a pending next() gets every revision of one apply batch in one delivery', async () => {
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k') });
    const pending = nextWithin(watcher);
    const base = t.store.appliedIndex();
    const put = (value: string): MvccWriteRequest => ({ kind: 'put', request: { key: bytes('k'), value: bytes(value) } });
    await t.store.applyBatch([1, 2, 3].map((n) => ({ index: base + n, request: put(`v${n}`) })));
    const delivery = await pending;
    assert.equal(delivery.kind, 'events');
    assert.deepEqual(delivery.kind === 'events' ? delivery.events.map(describeEvent) : [], ['PUT k=v1 m2 c2 v1', 'PUT k=v2 m3 c2 v2', 'PUT k=v3 m4 c2 v3'], 'one response for the batch, not the first revision alone');
  });

  test('filters NOPUT and NODELETE; prev_kv only when asked', async () => {
    hub = new WatchHub(t.store);
    const noPut = hub.watch({ key: bytes('k'), noPut: true, prevKv: true });
    const noDelete = hub.watch({ key: bytes('k'), noDelete: true });
    await t.put('k', '1');
    await t.put('k', '2');
    await t.del('k');
    assert.deepEqual(await eventsOf(noPut), ['DEL k= m4 c0 v0 prev=2@3']);
    assert.deepEqual(await eventsOf(noDelete), ['PUT k=1 m2 c2 v1', 'PUT k=2 m3 c2 v2'], 'no prev_kv unless requested');
  });

  test('watchers behind at the same revision catch up from one shared history read', async () => {
    for (let i = 0; i < 30; i++) await t.put(`s/${i % 7}`, `v${i}`);
    await t.put('other', 'x');
    hub = new WatchHub(t.store);
    let reads = 0;
    const history = t.store.history.bind(t.store);
    t.store.history = (...args) => {
      reads += 1;
      return history(...args);
    };
    const watchers = Array.from({ length: 50 }, (_, index) =>
      index % 2 === 0 ? hub.watch({ key: bytes('s/'), rangeEnd: prefixRangeEnd(bytes('s/')), startRevision: 2 }) : hub.watch({ key: bytes('s/3'), startRevision: 2 }),
    );
    const deliveries = await Promise.all(watchers.map((watcher) => nextWithin(watcher)));
    assert.equal(reads, 1, 'one read for 50 watchers');
    for (const [index, delivery] of deliveries.entries()) {
      assert.ok(delivery.kind === 'events');
      // Each watcher still gets only its own range.
      assert.equal(delivery.events.length, index % 2 === 0 ? 30 : 4);
    }
    assert.ok(watchers.every((watcher) => watcher.isSynced()));
  });

  test('a start revision in the past replays history (with prev_kv), then goes live', async () => {
    await t.put('k', '1'); // 2
    await t.put('x', '1'); // 3
    await t.put('k', '2'); // 4
    await t.del('k'); // 5
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k'), startRevision: 3, prevKv: true });
    assert.deepEqual(hub.counts(), { synced: 0, unsynced: 1 });
    assert.deepEqual(await eventsOf(watcher), ['PUT k=2 m4 c2 v2 prev=1@2', 'DEL k= m5 c0 v0 prev=2@4']);
    assert.ok(watcher.isSynced());
    await t.put('k', '3');
    assert.deepEqual(await eventsOf(watcher), ['PUT k=3 m6 c6 v1']);
  });

  test('a future start revision waits for it', async () => {
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k'), startRevision: 4 });
    await t.put('k', '1');
    await t.put('k', '2');
    await t.put('k', '3');
    assert.deepEqual(await eventsOf(watcher), ['PUT k=3 m4 c2 v3']);
  });

  test('a compacted start revision ends the watcher with the compact revision', async () => {
    await t.put('k', '1');
    await t.put('k', '2');
    await t.put('k', '3');
    const compacted = await t.compact(3);
    assert.ok(compacted.ok);
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k'), startRevision: 2 });
    assert.deepEqual(await nextWithin(watcher), { kind: 'compacted', compactRevision: 3 });
    assert.deepEqual(await nextWithin(watcher), { kind: 'compacted', compactRevision: 3 }, 'final deliveries repeat');
    const atCompact = hub.watch({ key: bytes('k'), startRevision: 3 });
    assert.deepEqual(await eventsOf(atCompact), ['PUT k=2 m3 c2 v2', 'PUT k=3 m4 c2 v3'], 'start == compact revision is allowed');
  });

  test('cancel answers a pending next() and detaches', async () => {
    hub = new WatchHub(t.store);
    const watcher = hub.watch({ key: bytes('k') });
    const pending = watcher.next();
    watcher.cancel();
    assert.deepEqual(await pending, { kind: 'canceled' });
    assert.deepEqual(hub.counts(), { synced: 0, unsynced: 0 });
    await t.put('k', 'v');
    assert.deepEqual(await watcher.next(), { kind: 'canceled' });
  });

  test('a slow watcher moves to unsynced and catches up from history without loss', async () => {
    hub = new WatchHub(t.store, { bufferedEventsMax: 3, catchUpEventsMax: 2 });
    const watcher = hub.watch({ key: bytes('k') });
    for (let index = 1; index <= 10; index += 1) await t.put('k', String(index));
    assert.ok(!watcher.isSynced());
    assert.ok(watcher.queuedEventCount() <= 3);
    const seen: number[] = [];
    while (seen.length < 10) {
      const delivery = await nextWithin(watcher);
      assert.equal(delivery.kind, 'events');
      if (delivery.kind === 'events') seen.push(...delivery.events.map((event) => event.kv.modRevision));
    }
    assert.deepEqual(seen, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.ok(watcher.isSynced());
  });

  test('randomised: slow consumers against a reference model (seeded)', async () => {
    for (const seed of [1, 2, 3]) await randomRun(seed);
  });
});

async function randomRun(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const keys = ['a', 'b', 'c', 'd', 'e'];
  hub?.close();
  hub = new WatchHub(t.store, { bufferedEventsMax: 4, catchUpEventsMax: 3 });
  const allEvents: MvccEvent[] = [];
  const base = t.store.currentRevision();
  interface Subject {
    watcher: Watcher;
    options: WatchOptions;
    start: number;
    received: MvccEvent[];
    pending: Promise<void> | undefined;
  }
  const subjects: Subject[] = [];
  const addWatcher = () => {
    const current = t.store.currentRevision();
    const startRevision = random(3) === 0 ? 0 : base + 1 + random(Math.max(1, current - base + 3));
    const first = keys[random(keys.length)]!;
    const options: WatchOptions = {
      key: bytes(first),
      ...(random(2) === 0 ? { rangeEnd: bytes(String.fromCharCode(first.charCodeAt(0) + 1 + random(3))) } : {}),
      startRevision,
      noPut: random(5) === 0,
      noDelete: random(5) === 0,
      prevKv: random(2) === 0,
    };
    subjects.push({ watcher: hub.watch(options), options, start: startRevision === 0 ? current + 1 : startRevision, received: [], pending: undefined });
  };
  const pull = (subject: Subject) => {
    if (subject.pending !== undefined) return;
    subject.pending = subject.watcher.next().then((delivery) => {
      // 'canceled' only answers a pull left pending when the test cancels the watcher at the end.
      assert.notEqual(delivery.kind, 'compacted');
      if (delivery.kind === 'events') subject.received.push(...delivery.events);
      subject.pending = undefined;
    });
  };
  const randomWrite = (): MvccWriteRequest => {
    const key = bytes(keys[random(keys.length)]!);
    const choice = random(10);
    if (choice < 6) return { kind: 'put', request: { key, value: bytes(`v${random(1000)}`) } };
    if (choice < 8) return { kind: 'deleteRange', request: random(2) === 0 ? { key } : { key, rangeEnd: bytes(keys[random(keys.length)]!) } };
    const operations: RequestOp[] = [];
    const used = new Set<string>();
    for (let count = 0; count < 1 + random(3); count += 1) {
      const name = keys[random(keys.length)]!;
      if (used.has(name)) continue;
      used.add(name);
      operations.push({ kind: 'put', request: { key: bytes(name), value: bytes(`t${random(1000)}`) } });
    }
    return { kind: 'txn', request: { success: operations } };
  };

  let fellBehind = 0;
  for (let step = 0; step < 300; step += 1) {
    if (subjects.length < 8 && random(20) === 0) addWatcher();
    t.index += 1;
    const result = await t.store.apply(t.index, randomWrite());
    assert.ok(!result.skipped);
    allEvents.push(...result.events);
    for (const subject of subjects) {
      if (!subject.watcher.isSynced()) fellBehind += 1;
      if (random(4) === 0) pull(subject);
      assert.ok(subject.watcher.queuedEventCount() <= 4 + 3, `queue bounded (seed ${seed})`);
    }
  }
  addWatcher();
  // Drain: every watcher must end with exactly the model's events.
  for (const subject of subjects) {
    const range = resolveRange(subject.options.key, subject.options.rangeEnd);
    const expected = allEvents
      .filter((event) => event.kv.modRevision >= subject.start)
      .filter((event) => rangeContains(range, toKeyString(event.kv.key)))
      .filter((event) => !(event.type === EventType.Put && subject.options.noPut === true))
      .filter((event) => !(event.type === EventType.Delete && subject.options.noDelete === true))
      .map((event) => describeEvent(subject.options.prevKv === true ? event : { type: event.type, kv: event.kv }));
    const deadline = Date.now() + 10_000;
    while (subject.received.length < expected.length) {
      assert.ok(Date.now() < deadline, `seed ${seed}: watcher stalled at ${subject.received.length}/${expected.length}`);
      if (subject.pending === undefined) pull(subject);
      await subject.pending;
    }
    assert.deepEqual(subject.received.map(describeEvent), expected, `seed ${seed}: events of watcher from ${subject.start}`);
    subject.watcher.cancel();
  }
  assert.ok(subjects.length > 1);
  assert.ok(fellBehind > 0, `seed ${seed}: some watcher fell behind and caught up`);
}
