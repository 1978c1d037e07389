/**
 * The cache tier in front of a raftkv cluster (not etcd): cache key `my-key` in group `default`
 * is the raftkv store key `/my-key`, written by raftexample's HTTP `PUT /my-key`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { putOk, waitForLeader, withCluster } from './support/cluster-helpers';
import { CacheTier, expectResponse } from './support/cache-helpers';
import { Etcd3 } from 'etcd3';
import { runEtcdctl } from './etcdctl/etcdctl-runner';

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

  it('a cache node whose registration lease is lost (revoked by someone else) registers again', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const endpoints = cluster.runningIds().map((id) => cluster.etcdEndpoint(id));
      const store = { endpoints, description: 'raftkv', stop: async () => undefined };
      const tier = await CacheTier.start(store, 3, ['--lease-ttl-seconds', '3']);
      const client = new Etcd3({ hosts: endpoints });
      try {
        const victim = tier.nodes[0]!;
        const registration = async () =>
          (await client.getAll().prefix('/services/cache/').exec()).kvs.find((kv) => kv.key.toString().endsWith(`/${victim.address}`));
        const before = await registration();
        assert.ok(before !== undefined && before.lease !== '0', 'the node is registered with a lease');
        const revoked = await runEtcdctl([...endpoints], ['lease', 'revoke', BigInt(before.lease).toString(16)]);
        assert.equal(revoked.exitCode, 0, revoked.stderr);
        // The key went with its lease; the node notices its keep-alive failing and registers anew.
        await waitUntil(async () => {
          const after = await registration();
          return after !== undefined && after.lease !== before.lease;
        }, { timeoutMs: 30_000, intervalMs: 50, description: 'the node to register again with a new lease' });
        await tier.waitForRings(tier.nodes, tier.nodes.map((node) => node.address), 30_000);
      } finally {
        client.close();
        await tier.stop();
      }
    });
  });

  it("killing the store's leader does not break the cache: reads, write-through and registrations survive", async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const store = { endpoints: cluster.runningIds().map((id) => cluster.etcdEndpoint(id)), description: 'raftkv', stop: async () => undefined };
      const tier = await CacheTier.start(store, 3, ['--lease-ttl-seconds', '3', '--hot-fraction', '1']);
      try {
        await putOk(cluster, leader, '/survivor', 'before');
        for (const node of tier.nodes) {
          assert.equal((await expectResponse(node.request('GET', '/_cache/default/survivor'))).body, 'before');
        }
        await cluster.kill(leader);
        await waitForLeader(cluster, cluster.runningIds());
        // Cached values are still served, and a write through the cache reaches the new leader.
        for (const node of tier.nodes) {
          assert.equal((await expectResponse(node.request('GET', '/_cache/default/survivor'))).body, 'before');
        }
        await waitUntil(async () => (await expectResponse(tier.nodes[0]!.request('PUT', '/_cache/default/survivor', 'after'))).status < 300, {
          timeoutMs: 30_000,
          intervalMs: 100,
          description: 'a write through the cache to be accepted by the new leader',
        });
        for (const node of tier.nodes) {
          await waitUntil(async () => (await expectResponse(node.request('GET', '/_cache/default/survivor'))).body === 'after', {
            timeoutMs: 10_000,
            intervalMs: 10,
            description: `${node.name} to serve the value written after the leader change`,
          });
        }
        // Leases of the registrations outlive the leader change: every ring still has every node
        // well past the 3 s registration TTL.
        const registered = tier.nodes.map((node) => node.address);
        const until = performance.now() + 6000;
        while (performance.now() < until) {
          await tier.waitForRings(tier.nodes, registered, 30_000);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      } finally {
        await tier.stop();
      }
    });
  });
});
