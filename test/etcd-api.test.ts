/**
 * The etcd v3 API of a three-node raftkv cluster (real processes), driven by the `etcd3` npm
 * client exactly as an application would (issue "etcd v3 API, part 1"): keys, prefixes,
 * revisions, Txn, watches with history and compaction, and a leader kill during a watch that
 * must lose or repeat no event. The raftexample HTTP API and the etcd API are two views of one
 * replicated state.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3, type IKeyValue } from 'etcd3';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import type { Cluster } from '../src/testing/jepsen/cluster';
import { DEADLINE_MS, putOk, request, waitForLeader, withCluster } from './support/cluster-helpers';

function clientFor(cluster: Cluster, ids: readonly number[] = cluster.runningIds()): Etcd3 {
  return new Etcd3({ hosts: ids.map((id) => cluster.etcdEndpoint(id)), dialTimeout: 5000 });
}

describe('etcd v3 API through the etcd3 client', () => {
  it('KV: put/get/prefix/delete, revisions, Txn, and the HTTP API sees the same keys', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const client = clientFor(cluster);
      try {
        await client.put('app/config/a').value('1');
        await client.put('app/config/b').value('2');
        await client.put('app/other').value('3');
        assert.equal(await client.get('app/config/a').string(), '1');
        assert.deepEqual(await client.getAll().prefix('app/config/').strings(), { 'app/config/a': '1', 'app/config/b': '2' });
        const first = await client.get('app/config/a').exec();
        const kv = first.kvs[0]!;
        assert.equal(kv.version, '1');
        await client.put('app/config/a').value('1b');
        const second = (await client.get('app/config/a').exec()).kvs[0]!;
        assert.equal(second.version, '2');
        assert.equal(second.create_revision, kv.create_revision);
        assert.ok(Number(second.mod_revision) > Number(kv.mod_revision));
        // A read at the old revision still sees the old value.
        const past = await client.get('app/config/a').revision(kv.mod_revision).string();
        assert.equal(past, '1');

        const txn = await client
          .if('app/config/b', 'Value', '==', '2')
          .then(client.put('app/config/b').value('two'))
          .else(client.put('app/config/b').value('mismatch'))
          .commit();
        assert.equal(txn.succeeded, true);
        assert.equal(await client.get('app/config/b').string(), 'two');

        const deleted = await client.delete().prefix('app/config/').exec();
        assert.equal(deleted.deleted, '2');
        assert.equal(await client.get('app/config/a').string(), null);

        // One replicated state: a raftexample HTTP PUT is an etcd key (its path), and back.
        await putOk(cluster, 2, '/from-http', 'hello');
        assert.equal(await client.get('/from-http').string(), 'hello');
        await client.put('/from-etcd').value('world');
        assert.equal((await request(cluster, 3, 'GET', '/from-etcd')).body, 'world');
      } finally {
        client.close();
      }
    });
  });

  it('Watch: history from a past revision, live events, and a compacted start revision', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const client = clientFor(cluster);
      try {
        const start = await client.put('w/1').value('a');
        await client.put('w/2').value('b');
        const seen: string[] = [];
        const watcher = await client.watch().prefix('w/').startRevision(start.header.revision).create();
        watcher.on('put', (kv: IKeyValue) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
        watcher.on('delete', (kv: IKeyValue) => seen.push(`delete ${kv.key.toString()}`));
        await client.put('w/3').value('c');
        await client.delete().key('w/1');
        await waitUntil(() => seen.length >= 4, { timeoutMs: DEADLINE_MS, description: 'four watch events' });
        assert.deepEqual(seen, ['put w/1=a', 'put w/2=b', 'put w/3=c', 'delete w/1']);
        await watcher.cancel();

        // After a compaction, reading or watching below it fails as etcd's does.
        const latest = await client.put('w/4').value('d');
        await client.get('w/4').exec(); // settle
        const compactTo = latest.header.revision;
        const kvClient = (client as unknown as { kv: { compact(request: { revision: string; physical: boolean }): Promise<unknown> } }).kv;
        await kvClient.compact({ revision: compactTo, physical: true });
        await assert.rejects(client.get('w/2').revision(start.header.revision).exec(), /required revision has been compacted/);
      } finally {
        client.close();
      }
    });
  });

  it('a leader kill during a watch loses and repeats no event', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const followers = cluster.runningIds().filter((id) => id !== leader);
      const watchClient = clientFor(cluster, followers);
      const writeClient = clientFor(cluster, followers);
      try {
        const revisions: number[] = [];
        const values = new Map<string, string>();
        const watcher = await watchClient.watch().prefix('kill/').create();
        watcher.on('data', (response) => {
          for (const event of response.events) {
            revisions.push(Number(event.kv.mod_revision));
            if (event.type === 'Put') values.set(event.kv.key.toString(), event.kv.value.toString());
          }
        });
        const acknowledged = new Map<string, string>();
        for (let i = 0; i < 120; i++) {
          if (i === 40) await cluster.kill(leader);
          const key = `kill/${String(i).padStart(3, '0')}`;
          try {
            await writeClient.put(key).value(`v${i}`);
            acknowledged.set(key, `v${i}`);
          } catch {
            // No leader for a moment: the write is indeterminate; it may or may not appear.
          }
        }
        assert.ok(acknowledged.size >= 100, `only ${acknowledged.size} writes were acknowledged`);
        await waitUntil(() => [...acknowledged.keys()].every((key) => values.has(key)), {
          timeoutMs: DEADLINE_MS,
          description: 'every acknowledged write to reach the watcher',
        });
        for (const [key, value] of acknowledged) assert.equal(values.get(key), value, key);
        for (let i = 1; i < revisions.length; i++) {
          assert.ok(revisions[i]! > revisions[i - 1]!, `events out of order or repeated at ${i}: ${revisions[i - 1]} then ${revisions[i]}`);
        }
        await watcher.cancel();
      } finally {
        watchClient.close();
        writeClient.close();
      }
    });
  });
});
