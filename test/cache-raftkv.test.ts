/**
 * The cache tier in front of a raftkv cluster (not etcd): cache key `my-key` in group `default`
 * is the raftkv store key `/my-key`, written by raftexample's HTTP `PUT /my-key`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { putOk, waitForLeader, withCluster } from './support/cluster-helpers';
import { CacheTier, expectResponse } from './support/cache-helpers';

describe('cache tier in front of raftkv', () => {
  it('GET /_cache/default/my-key serves the raftkv key /my-key written by HTTP PUT, and follows updates', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const store = { endpoints: cluster.runningIds().map((id) => cluster.etcdEndpoint(id)), description: 'raftkv', stop: async () => undefined };
      const tier = await CacheTier.start(store, 3, ['--lease-ttl-seconds', '3', '--hot-fraction', '1']);
      try {
        await putOk(cluster, 1, '/my-key', 'hello');
        for (const node of tier.nodes) {
          const response = await expectResponse(node.request('GET', '/_cache/default/my-key'));
          assert.equal(response.status, 200);
          assert.equal(response.body, 'hello');
        }
        await putOk(cluster, 2, '/my-key', 'hello again');
        for (const node of tier.nodes) {
          await waitUntil(async () => (await expectResponse(node.request('GET', '/_cache/default/my-key'))).body === 'hello again', {
            timeoutMs: 5000,
            intervalMs: 5,
            description: `${node.name} to serve the new value`,
          });
        }
      } finally {
        await tier.stop();
      }
    });
  });
});
