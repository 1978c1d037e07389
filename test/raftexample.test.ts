/**
 * The raftexample port, proven with real processes and real sockets (issue "raftexample port"):
 * replication to every node, kill -9 of a follower and of the leader without losing an
 * acknowledged write, membership changes over HTTP, catch-up by snapshot after compaction, the
 * WAL's torn-tail repair and its refusal of mid-log damage, and every bad input of the HTTP API.
 * No sleeps: every wait polls with a deadline.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { DEADLINE_MS, putOk, request, status, waitForLeader, waitForValue, withCluster } from './support/cluster-helpers';

describe('raftexample: a three-node cluster of real processes', () => {
  it('replicates a PUT to every node; a follower forwards writes to the leader', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const follower = cluster.runningIds().find((id) => id !== leader)!;
      await putOk(cluster, leader, '/my-key', 'bar');
      await putOk(cluster, follower, '/via-follower', 'forwarded');
      for (const id of cluster.runningIds()) {
        // Linearizable reads: each node serves the acknowledged value at once, no waiting.
        const mine = await request(cluster, id, 'GET', '/my-key');
        assert.equal(mine.status, 200);
        assert.equal(mine.body, 'bar');
        assert.equal((await request(cluster, id, 'GET', '/via-follower')).body, 'forwarded');
      }
      const missing = await request(cluster, follower, 'GET', '/never-written');
      assert.equal(missing.status, 404);
    });
  });

  it('a follower killed with kill -9 catches up after a restart', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const follower = cluster.runningIds().find((id) => id !== leader)!;
      await putOk(cluster, leader, '/k', 'v1');
      await cluster.kill(follower);
      await putOk(cluster, leader, '/k', 'v2');
      for (let i = 0; i < 20; i++) await putOk(cluster, leader, `/while-down-${i}`, String(i));
      cluster.restart(follower);
      await waitForValue(cluster, follower, '/k', 'v2', '?serializable');
      assert.equal((await request(cluster, follower, 'GET', '/while-down-19')).body, '19');
    });
  });

  it('killing the leader elects a new one and loses no acknowledged write', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const acknowledged = new Map<string, string>();
      for (let i = 0; i < 30; i++) {
        const key = `/acked-${i}`;
        await putOk(cluster, cluster.runningIds()[i % 3]!, key, `value-${i}`);
        acknowledged.set(key, `value-${i}`);
      }
      const termBefore = (await status(cluster, leader)).term;
      await cluster.kill(leader);
      const survivors = cluster.runningIds();
      const newLeader = await waitForLeader(cluster, survivors);
      assert.notEqual(newLeader, leader);
      assert.ok((await status(cluster, newLeader)).term > termBefore, 'a new term began');
      for (const id of survivors) {
        for (const [key, value] of acknowledged) {
          const response = await request(cluster, id, 'GET', key);
          assert.equal(response.body, value, `node ${id} lost ${key}`);
        }
      }
      await putOk(cluster, newLeader, '/after-failover', 'yes');
      cluster.restart(leader);
      await waitForValue(cluster, leader, '/after-failover', 'yes', '?serializable');
      assert.equal((await request(cluster, leader, 'GET', '/acked-29')).body, 'value-29');
    });
  });

  it('adds a node over HTTP (it joins and serves reads) and removes one (it exits 0)', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      await putOk(cluster, 1, '/before-join', 'hello');
      const added = await cluster.addMember(DEADLINE_MS);
      assert.equal(added, 4);
      await waitForValue(cluster, added, '/before-join', 'hello');
      const members = (await status(cluster, 1)).members.map((m) => m.id).sort();
      assert.deepEqual(members, ['1', '2', '3', '4']);

      await cluster.removeMember(3, DEADLINE_MS);
      await waitUntil(() => cluster.exitDescriptionOf(3), { timeoutMs: DEADLINE_MS, description: 'node 3 to exit' });
      assert.equal(cluster.exitDescriptionOf(3), 'exit code 0');
      assert.match(cluster.logOf(3), /removed from the cluster/);
      await waitUntil(async () => (await status(cluster, 1)).members.length === 3, { timeoutMs: DEADLINE_MS, description: 'three members' });
      await putOk(cluster, added, '/after-remove', 'still-works');
      await waitForValue(cluster, 2, '/after-remove', 'still-works');

      // A removed ID can never rejoin; the HTTP API says so and changes nothing.
      const again = await request(cluster, 1, 'POST', '/3', 'http://127.0.0.1:1');
      assert.equal(again.status, 409);
      assert.equal(again.errorCode, 'member-id-removed');
    });
  });

  it('a node that joins after log compaction is brought up by a snapshot', async () => {
    await withCluster(3, { extraFlags: ['--snapshot-count', '20'] }, async (cluster) => {
      await waitForLeader(cluster);
      for (let i = 0; i < 120; i++) await putOk(cluster, 1 + (i % 3), `/snap-${i}`, `v${i}`);
      // Every member compacted its log behind a snapshot.
      await waitUntil(async () => ((await status(cluster, 1)).snapshotIndex ?? 0) >= 100, { timeoutMs: DEADLINE_MS, description: 'a snapshot' });
      const added = await cluster.addMember(DEADLINE_MS);
      await waitForValue(cluster, added, '/snap-119', 'v119');
      for (let i = 0; i < 120; i += 17) {
        assert.equal((await request(cluster, added, 'GET', `/snap-${i}?serializable`)).body, `v${i}`);
      }
      assert.match(cluster.logOf(added), /restoring state machine from snapshot/);
      assert.ok(((await status(cluster, added)).snapshotIndex ?? 0) > 0);
      // Log compaction cut snapshots without a state machine image; the member needed one, so
      // the leader cut one with an image and sent that.
      const leaderLog = [1, 2, 3].map((id) => cluster.logOf(id)).find((log) => log.includes('a follower needs a snapshot'));
      assert.ok(leaderLog !== undefined, 'a member asked for a snapshot with an image');
      assert.match(leaderLog, /"withImage":false,[^\n]*"snapshot saved; log compacted"/);
      assert.match(leaderLog, /"withImage":true,[^\n]*"snapshot saved/);
      const sent = leaderLog.split('\n').filter((line) => line.includes('"msg":"snapshot sent"')).map((line) => JSON.parse(line) as { bodyBytes: number; streamed: boolean });
      assert.ok(sent.length > 0 && sent.every(({ bodyBytes }) => bodyBytes > 0), `every snapshot sent carried an image: ${sent.map(({ bodyBytes }) => bodyBytes).join(', ')}`);
      // The image went out while it was cut (its size and digest after it), not after the cut.
      assert.match(leaderLog, /"sending the snapshot image while it is cut"/);
      assert.equal(sent[0]!.streamed, true);
      assert.match(cluster.logOf(added), /"streamed":true,[^\n]*"snapshot received"/);
      // The leader's next compaction kept the entries after the snapshot it sent: a large state
      // machine takes a while to install, and the member then needs them.
      for (let i = 0; i < 40; i++) await putOk(cluster, 1 + (i % 3), `/after-${i}`, `w${i}`);
      const kept = await waitUntil(
        () => {
          for (const id of [1, 2, 3]) {
            const lines = cluster.logOf(id).split('\n');
            const sent = lines.find((line) => line.includes('"msg":"snapshot sent"'));
            const keptLine = lines.find((line) => line.includes('log kept from the snapshot last sent to a follower'));
            if (sent !== undefined && keptLine !== undefined) return { sent: JSON.parse(sent) as { index: number }, kept: JSON.parse(keptLine) as { compactIndex: number } };
          }
          return undefined;
        },
        { timeoutMs: DEADLINE_MS, description: 'a compaction after the snapshot was sent' },
      );
      assert.ok(kept.kept.compactIndex <= kept.sent.index, `compacted to ${kept.kept.compactIndex}, past the snapshot sent at ${kept.sent.index}`);
    });
  });
});

describe('raftexample: the WAL at process level', () => {
  it('repairs a torn tail after kill -9, and refuses mid-log damage naming file and offset', async () => {
    await withCluster(1, {}, async (cluster) => {
      await waitForLeader(cluster);
      for (let i = 0; i < 10; i++) await putOk(cluster, 1, `/wal-${i}`, `v${i}`);
      await cluster.kill(1);
      const walDirectory = path.join(cluster.dataDirectoryOf(1), 'wal');
      const segments = fs.readdirSync(walDirectory).filter((name) => name.endsWith('.wal')).sort();
      const last = path.join(walDirectory, segments[segments.length - 1]!);
      const intact = fs.readFileSync(last);

      // A crash in the middle of a write leaves a partial record at the tail.
      fs.appendFileSync(last, Buffer.from([0x40, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02]));
      cluster.restart(1);
      await cluster.waitUntilHealthy(DEADLINE_MS);
      assert.equal((await request(cluster, 1, 'GET', '/wal-9')).body, 'v9');
      assert.match(cluster.logOf(1), /torn/i);
      await putOk(cluster, 1, '/after-repair', 'ok');
      await cluster.kill(1);

      // Damage in the middle of the log (not at the tail) must stop start-up, never truncate.
      const damaged = fs.readFileSync(last);
      const offset = Math.floor(intact.length / 2);
      damaged[offset] = damaged[offset]! ^ 0xff;
      fs.writeFileSync(last, damaged);
      cluster.restart(1);
      await waitUntil(() => cluster.exitDescriptionOf(1), { timeoutMs: DEADLINE_MS, description: 'the node to refuse to start' });
      assert.notEqual(cluster.exitDescriptionOf(1), 'exit code 0');
      const log = cluster.logOf(1);
      assert.match(log, new RegExp(path.basename(last).replace('.', '\\.')));
      assert.match(log, /offset/);
      // Nothing was truncated: the damaged file is as we left it.
      assert.equal(fs.readFileSync(last).length, damaged.length);
    });
  });
});

describe('raftexample: bad input gets a clear error and changes nothing', () => {
  it('answers 400/404/405/409/413/503 as documented', async () => {
    await withCluster(3, { extraFlags: ['--max-request-bytes', '1024'] }, async (cluster) => {
      await waitForLeader(cluster);
      await putOk(cluster, 1, '/kept', 'original');
      const revision = (await status(cluster, 1)).appliedIndex;

      const expectations: Array<[string, string, string | undefined, number, string | undefined]> = [
        ['POST', '/abc', 'http://127.0.0.1:9999', 400, 'invalid-member-id'],
        ['POST', '/7', 'not a url', 400, 'invalid-peer-url'],
        ['POST', '/7', 'ftp://127.0.0.1:9', 400, 'invalid-peer-url'],
        ['POST', '/2', 'http://127.0.0.1:9999', 409, 'member-exists'],
        ['DELETE', '/9', undefined, 404, 'member-not-found'],
        ['PUT', '/kept', 'x'.repeat(2048), 413, 'request-too-large'],
        ['PATCH', '/kept', 'x', 405, 'method-not-allowed'],
      ];
      for (const [method, urlPath, body, expectedStatus, expectedCode] of expectations) {
        const response = await request(cluster, 2, method, urlPath, body);
        assert.equal(response.status, expectedStatus, `${method} ${urlPath}: ${response.body}`);
        assert.equal(response.errorCode, expectedCode, `${method} ${urlPath}`);
        assert.match(response.body, /^error: .+\n$/, 'one plain-text line');
      }
      const patch = await fetch(`http://127.0.0.1:${cluster.httpEndpoint(2).port}/kept`, { method: 'PATCH' });
      assert.ok(patch.headers.get('allow'), '405 carries Allow');
      // Nothing changed.
      assert.equal((await request(cluster, 1, 'GET', '/kept')).body, 'original');
      assert.equal((await status(cluster, 1)).members.length, 3);
      assert.equal((await status(cluster, 1)).appliedIndex, revision);

      // No quorum: a write waits up to --request-timeout and is answered 503 with Retry-After.
      const survivor = 1;
      for (const id of cluster.runningIds()) if (id !== survivor) await cluster.kill(id);
      await waitUntil(async () => (await status(cluster, survivor)).leader === null, { timeoutMs: DEADLINE_MS, description: 'the survivor to lose its leader' });
      const noLeader = await fetch(`http://127.0.0.1:${cluster.httpEndpoint(survivor).port}/kept`, { method: 'PUT', body: 'new' });
      assert.equal(noLeader.status, 503);
      assert.ok(noLeader.headers.get('retry-after'));
      assert.equal((await request(cluster, survivor, 'GET', '/kept?serializable')).body, 'original');
    });
  });

  it('refuses to remove the last voter', async () => {
    await withCluster(1, {}, async (cluster) => {
      await waitForLeader(cluster);
      const response = await request(cluster, 1, 'DELETE', '/1');
      assert.equal(response.status, 409);
      assert.equal(response.errorCode, 'last-voter');
    });
  });
});
