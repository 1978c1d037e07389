/**
 * The Watch service over real sockets (ETCD_WIRE_NOTES.md §3.4): the `etcd3` npm client for the
 * everyday path, raw grpc-js streams for the exact responses (ids, created/canceled replies,
 * progress, compaction, fragments, leadership, half-close).
 */
import { test, after, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { splitFragments } from './watch-service';
import {
  bytes,
  callOk,
  rawClient,
  requireLeaderMetadata,
  startTestServer,
  waitUntil,
  WatchStreamProbe,
  type RawClient,
  type TestServer,
} from './test-support';
import type { ProtoObject } from './etcd-proto';

let server: TestServer;
let kv: RawClient;
let watch: RawClient;

before(async () => {
  server = await startTestServer({ maxRequestBytes: 8 * 1024, watchHubOptions: { bufferedEventsMax: 64, catchUpEventsMax: 64 } }, { progressNotifyIntervalMs: 50, noLeaderCancelMs: 150 });
  kv = rawClient('KV', server.address);
  watch = rawClient('Watch', server.address);
});

after(async () => {
  kv.close();
  watch.close();
  await server.close();
});

function put(key: string, value: string): Promise<ProtoObject> {
  return callOk(kv, 'Put', { key: bytes(key), value: bytes(value) });
}

function revisionOf(response: ProtoObject): number {
  return Number((response['header'] as Record<string, string>)['revision']);
}

function eventsOf(response: ProtoObject): Array<{ type: string; key: string; value: string; prev?: string }> {
  return ((response['events'] as ProtoObject[] | undefined) ?? []).map((event) => {
    const kv = event['kv'] as { key: Buffer; value?: Buffer };
    const prev = event['prev_kv'] as { value?: Buffer } | undefined;
    return {
      type: event['type'] === 1 ? 'DELETE' : 'PUT',
      key: kv.key.toString(),
      value: kv.value?.toString() ?? '',
      ...(prev === undefined ? {} : { prev: prev.value?.toString() ?? '' }),
    };
  });
}

test('etcd3 client: a prefix watch sees put, put, delete in order', async () => {
  const etcd = new Etcd3({ hosts: server.address });
  try {
    const seen: string[] = [];
    const watcher = await etcd.watch().prefix('e3/').create();
    watcher.on('put', (kv) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
    watcher.on('delete', (kv) => seen.push(`delete ${kv.key.toString()}`));
    await etcd.put('e3/a').value('1');
    await etcd.put('e3/b').value('2');
    await etcd.put('elsewhere').value('3');
    await etcd.delete().key('e3/a');
    await waitUntil(() => seen.length === 3, 5000, 'three events');
    assert.deepEqual(seen, ['put e3/a=1', 'put e3/b=2', 'delete e3/a']);
    await watcher.cancel();
  } finally {
    etcd.close();
  }
});

test('a watch from a past revision replays history with prev_kv, then follows live writes', async () => {
  const first = revisionOf(await put('h/k', 'v1'));
  await put('h/k', 'v2');
  await callOk(kv, 'DeleteRange', { key: bytes('h/k') });
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('h/k'), start_revision: first, prev_kv: true } });
    const created = await probe.next();
    assert.equal(created['created'], true);
    assert.equal(created['watch_id'], undefined, 'the first automatic id is 0');
    assert.equal(revisionOf(created), server.backend.store.currentRevision());
    const replay: ReturnType<typeof eventsOf> = [];
    while (replay.length < 3) replay.push(...eventsOf(await probe.next()));
    assert.deepEqual(replay, [
      { type: 'PUT', key: 'h/k', value: 'v1' },
      { type: 'PUT', key: 'h/k', value: 'v2', prev: 'v1' },
      { type: 'DELETE', key: 'h/k', value: '', prev: 'v2' },
    ]);
    await put('h/k', 'v3');
    assert.deepEqual(eventsOf(await probe.next()), [{ type: 'PUT', key: 'h/k', value: 'v3' }]);
  } finally {
    probe.call.end();
  }
});

test('ids: automatic from 0 skipping used ones, client-chosen, duplicate refused, cancel replies, unknown cancel silent', async () => {
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('ids/a'), watch_id: 1 } });
    assert.equal((await probe.next())['watch_id'], '1');
    probe.send({ create_request: { key: bytes('ids/b') } });
    assert.equal((await probe.next())['watch_id'], undefined); // 0
    probe.send({ create_request: { key: bytes('ids/c') } });
    assert.equal((await probe.next())['watch_id'], '2'); // 1 is taken
    probe.send({ create_request: { key: bytes('ids/d'), watch_id: 2 } });
    const duplicate = await probe.next();
    assert.equal(duplicate['watch_id'], '-1');
    assert.equal(duplicate['created'], true);
    assert.equal(duplicate['canceled'], true);
    assert.equal(duplicate['cancel_reason'], 'mvcc: duplicate watch ID provided on the WatchStream');
    probe.send({ cancel_request: { watch_id: 1 } });
    const canceled = await probe.next();
    assert.equal(canceled['watch_id'], '1');
    assert.equal(canceled['canceled'], true);
    assert.equal(revisionOf(canceled), server.backend.store.currentRevision());
    probe.send({ cancel_request: { watch_id: 42 } });
    probe.send({ progress_request: {} });
    const progress = await probe.next();
    assert.equal(progress['watch_id'], '-1', 'no reply to the unknown cancel: the next one is the progress reply');
    assert.equal(progress['events'], undefined);
    assert.equal(revisionOf(progress), server.backend.store.currentRevision());
  } finally {
    probe.call.end();
  }
});

test('filters, empty key as "\\0", and a range_end not above the key is refused', async () => {
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('f/'), range_end: bytes('f0'), filters: [0 /* NOPUT */] } });
    await probe.next();
    probe.send({ create_request: { key: bytes('z'), range_end: bytes('a') } });
    const refused = await probe.next();
    assert.equal(refused['cancel_reason'], 'mvcc: watcher range is empty');
    assert.equal(refused['watch_id'], '-1');
    probe.send({ create_request: { range_end: Buffer.from([0]) } }); // every key
    const all = await probe.next();
    assert.equal(all['watch_id'], '1');
    await put('f/x', '1');
    await callOk(kv, 'DeleteRange', { key: bytes('f/x') });
    const received: Array<[unknown, ReturnType<typeof eventsOf>]> = [];
    while (received.length < 3) {
      const response = await probe.next();
      received.push([response['watch_id'], eventsOf(response)]);
    }
    const forFiltered = received.filter(([id]) => id === undefined).flatMap(([, events]) => events);
    const forAll = received.filter(([id]) => id === '1').flatMap(([, events]) => events);
    assert.deepEqual(forFiltered, [{ type: 'DELETE', key: 'f/x', value: '' }]);
    assert.deepEqual(forAll.map((event) => event.type), ['PUT', 'DELETE']);
  } finally {
    probe.call.end();
  }
});

test('a compacted start revision: created, then canceled with compact_revision and no header revision', async () => {
  await put('c/k', '1');
  const revision = revisionOf(await put('c/k', '2'));
  await callOk(kv, 'Compact', { revision });
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('c/k'), start_revision: revision - 1 } });
    const created = await probe.next();
    assert.equal(created['created'], true);
    assert.equal(created['canceled'], undefined);
    const canceled = await probe.next();
    assert.equal(canceled['canceled'], true);
    assert.equal(canceled['compact_revision'], String(revision));
    const header = canceled['header'] as Record<string, unknown>;
    assert.equal(header['revision'], undefined);
    assert.equal(header['cluster_id'], '10386079443273509696');
  } finally {
    probe.call.end();
  }
});

test('progress_notify sends event-less responses to quiet watchers', async () => {
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('p/k'), progress_notify: true } });
    const created = await probe.next();
    const notification = await probe.next(2000);
    assert.equal(notification['watch_id'], created['watch_id']);
    assert.equal(notification['events'], undefined);
    assert.equal(revisionOf(notification), server.backend.store.currentRevision());
  } finally {
    probe.call.end();
  }
});

test('fragment: a large batch is split below maxRequestBytes, the last part unflagged', async () => {
  const value = 'x'.repeat(3000);
  const start = revisionOf(await put('frag/a', value));
  await put('frag/b', value);
  await put('frag/c', value);
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('frag/'), range_end: bytes('frag0'), start_revision: start, fragment: true } });
    await probe.next();
    const parts: ProtoObject[] = [];
    let count = 0;
    while (count < 3) {
      const part = await probe.next();
      parts.push(part);
      count += eventsOf(part).length;
    }
    assert.deepEqual(parts.map((part) => [eventsOf(part).length, part['fragment'] === true]), [
      [2, true],
      [1, false],
    ]);
  } finally {
    probe.call.end();
  }
  // The splitter alone: small responses stay whole.
  assert.equal(splitFragments({ watch_id: 1 }, [{ kv: { key: bytes('a') } }, { kv: { key: bytes('b') } }], 1024).length, 1);
});

test('hasleader: refused at once without a leader; open streams are cancelled after noLeaderCancelMs', async () => {
  server.backend.setHasLeader(false);
  try {
    const refused = new WatchStreamProbe(watch, requireLeaderMetadata());
    const status = await refused.ended();
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.equal(status.details, 'etcdserver: no leader');
  } finally {
    server.backend.setHasLeader(true);
  }
  const probe = new WatchStreamProbe(watch, requireLeaderMetadata());
  const plain = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('l/k') } });
    plain.send({ create_request: { key: bytes('l/k') } });
    await probe.next();
    await plain.next();
    server.backend.setHasLeader(false);
    const status = await probe.ended(3000);
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.equal(status.details, 'etcdserver: no leader');
    assert.equal(plain.status, undefined, 'a stream without hasleader stays open');
  } finally {
    server.backend.setHasLeader(true);
    plain.call.end();
  }
});

test('half-close ends the stream with OK and releases every watcher', async () => {
  const hub = server.backend.watchHub();
  await waitUntil(() => hub.counts().synced + hub.counts().unsynced === 0, 5000, 'earlier watchers released');
  const probe = new WatchStreamProbe(watch);
  probe.send({ create_request: { key: bytes('hc/a') } });
  probe.send({ create_request: { key: bytes('hc/b') } });
  await probe.next();
  await probe.next();
  assert.equal(hub.counts().synced, 2);
  probe.call.end();
  const status = await probe.ended();
  assert.equal(status.code, grpc.status.OK);
  await waitUntil(() => hub.counts().synced + hub.counts().unsynced === 0, 5000, 'watchers released');
});

test('a client that does not read does not make the server buffer unboundedly', async () => {
  const probe = new WatchStreamProbe(watch);
  try {
    probe.send({ create_request: { key: bytes('slow/'), range_end: bytes('slow0') } });
    await probe.next();
    probe.call.pause();
    const value = 'v'.repeat(4000);
    for (let index = 0; index < 400; index += 1) await put(`slow/${index % 10}`, value);
    // 400 revisions x 4 kB = 1.6 MB of events: HTTP/2 flow control stops the pump, so the hub's queue
    // (64 events here) overflows and the watcher falls back to reading history instead of growing.
    const hub = server.backend.watchHub();
    await waitUntil(() => hub.counts().unsynced === 1, 5000, 'the slow watcher to fall behind');
    probe.call.resume();
    let seen = 0;
    while (seen < 400) seen += eventsOf(await probe.next()).length;
    assert.equal(seen, 400);
    await waitUntil(() => hub.counts().unsynced === 0, 5000, 'the slow watcher to catch up');
  } finally {
    probe.call.end();
  }
});
