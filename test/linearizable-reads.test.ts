/**
 * Linearizable by default (issue "Linearizable by default"): the classic stale read cannot
 * happen. A leader cut off from the majority — by a network partition, or by being paused with
 * SIGSTOP while the others elect a new leader and accept a write — must answer a read with an
 * error or the latest value, never the old one, in both read modes. Serializable reads, by
 * contrast, are allowed to be stale, and the test shows they are served without coordination.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEADLINE_MS, putOk, request, waitForLeader, waitForValue, withCluster } from './support/cluster-helpers';

for (const readMode of ['readindex', 'lease'] as const) {
  describe(`linearizable reads (--read-mode ${readMode})`, () => {
    it('an isolated old leader never serves the old value', async () => {
      await withCluster(3, { extraFlags: ['--read-mode', readMode] }, async (cluster) => {
        const oldLeader = await waitForLeader(cluster);
        await putOk(cluster, oldLeader, '/k', 'old');
        for (const id of cluster.runningIds()) await waitForValue(cluster, id, '/k', 'old', '?serializable');

        cluster.isolate(oldLeader);
        const majority = cluster.runningIds().filter((id) => id !== oldLeader);
        const newLeader = await waitForLeader(cluster, majority);
        await putOk(cluster, newLeader, '/k', 'new');

        // The old leader still believes it leads (or has just stepped down): either way it must not
        // answer 'old' to a linearizable read.
        const read = await request(cluster, oldLeader, 'GET', '/k', undefined, DEADLINE_MS);
        assert.notEqual(read.body, 'old', `stale read: ${read.status} ${read.body}`);
        assert.ok(read.status === 503 || read.status === 504 || (read.status === 200 && read.body === 'new'), `${read.status} ${read.body}`);

        // A serializable read is allowed to be stale and is answered locally, without a leader.
        const local = await request(cluster, oldLeader, 'GET', '/k?serializable');
        assert.equal(local.status, 200);
        assert.equal(local.body, 'old');

        cluster.heal();
        await waitForValue(cluster, oldLeader, '/k', 'new');
      });
    });

    it('a leader paused with SIGSTOP wakes up and does not serve a stale read', async () => {
      await withCluster(3, { extraFlags: ['--read-mode', readMode] }, async (cluster) => {
        const oldLeader = await waitForLeader(cluster);
        await putOk(cluster, oldLeader, '/p', 'old');
        for (const id of cluster.runningIds()) await waitForValue(cluster, id, '/p', 'old', '?serializable');

        cluster.pause(oldLeader);
        const majority = cluster.runningIds().filter((id) => id !== oldLeader);
        const newLeader = await waitForLeader(cluster, majority);
        await putOk(cluster, newLeader, '/p', 'new');
        // Cut it off too, so that waking up it cannot simply learn the new value at once.
        cluster.isolate(oldLeader);
        cluster.resume(oldLeader);

        const read = await request(cluster, oldLeader, 'GET', '/p', undefined, DEADLINE_MS);
        assert.notEqual(read.body, 'old', `stale read after a pause: ${read.status} ${read.body}`);

        cluster.heal();
        await waitForValue(cluster, oldLeader, '/p', 'new');
      });
    });
  });
}
