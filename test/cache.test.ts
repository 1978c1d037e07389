/**
 * The cache tier as processes: three `raftkv cache` nodes in front of the store target of
 * test/support/cache-helpers.ts (a real etcd 3.4 until raftkv has leases). Figures (staleness,
 * failure detection) are printed with `[cache figures]` for the report.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { HashRing } from '../src/cache/hash-ring';
import { registerEtcdResolver } from '../src/cache/etcd-resolver';
import { CACHE_PEER_SERVICE, PEER_GET_PATH, decodeGetResponse, encodeGetRequest, type PeerGetResponse } from '../src/cache/cache-proto';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { etcdAvailable } from './support/etcd-reference';
import { CacheTier, expectResponse, startStoreTarget, storeClient, type StoreTarget } from './support/cache-helpers';

const available = etcdAvailable();
const LEASE_TTL_SECONDS = 2;
const PEER_TIMEOUT_MS = 300;

function figures(text: string): void {
  process.stdout.write(`[cache figures] ${text}\n`);
}

describe('cache tier (processes)', { skip: available.available ? false : available.reason }, () => {
  let store: StoreTarget;
  let client: Etcd3;
  before(async () => {
    store = await startStoreTarget();
    client = storeClient(store);
  });
  after(async () => {
    client?.close();
    await store?.stop();
  });

  async function withTier(count: number, args: readonly string[], body: (tier: CacheTier) => Promise<void>): Promise<void> {
    const tier = await CacheTier.start(store, count, ['--lease-ttl-seconds', String(LEASE_TTL_SECONDS), '--peer-timeout-ms', String(PEER_TIMEOUT_MS), ...args]);
    try {
      await body(tier);
    } catch (error) {
      throw new Error(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n${tier.logTails()}`);
    } finally {
      await tier.stop();
    }
  }

  it('a key is loaded once (by its owner) and then served from the owner', async () => {
    await withTier(3, ['--hot-fraction', '0'], async (tier) => {
      await client.put('/load-once').value('v1');
      const owner = new HashRing(tier.nodes.map((node) => node.address), 100).ownerOf('load-once');
      for (let round = 0; round < 5; round++) {
        for (const node of tier.nodes) {
          const response = await expectResponse(node.request('GET', '/_cache/default/load-once'));
          assert.equal(response.status, 200);
          assert.equal(response.body, 'v1');
        }
      }
      let loads = 0;
      for (const node of tier.nodes) {
        const stats = (await node.stats()).groups['default']!;
        loads += stats['loads']!;
        if (node.address === owner) {
          assert.equal(stats['loads'], 1, 'the owner loaded it once');
          assert.equal(stats['hits']! + stats['misses']!, 15, 'the owner answered every request');
        } else {
          assert.equal(stats['peerLoads'], 5, `${node.name} asked the owner every time`);
        }
      }
      assert.equal(loads, 1);
    });
  });

  it('a write through the store is visible through every cache node within the stated bound', async () => {
    await withTier(3, ['--hot-fraction', '1'], async (tier) => {
      const trials = 30;
      const delays: number[] = [];
      await client.put('/coherent').value('v0');
      for (let trial = 1; trial <= trials; trial++) {
        // Warm every node (hot copies everywhere: the worst case for coherence).
        for (const node of tier.nodes) await expectResponse(node.request('GET', '/_cache/default/coherent'));
        const value = `v${trial}`;
        await client.put('/coherent').value(value);
        const acknowledged = performance.now();
        await Promise.all(
          tier.nodes.map((node) =>
            waitUntil(async () => (await expectResponse(node.request('GET', '/_cache/default/coherent'))).body === value, {
              timeoutMs: 5000,
              intervalMs: 2,
              description: `${node.name} to serve ${value}`,
            }),
          ),
        );
        delays.push(performance.now() - acknowledged);
      }
      delays.sort((a, b) => a - b);
      const p50 = delays[Math.floor(trials / 2)]!;
      const max = delays[trials - 1]!;
      figures(`staleness after a store write, all 3 nodes, ${trials} trials: p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms (store ${store.description})`);
      assert.ok(max < 1000, `staleness ${max} ms over the 1 s test bound`);
      const hotHits = (await Promise.all(tier.nodes.map((node) => node.stats()))).reduce((sum, stats) => sum + stats.totals['hotHits']!, 0);
      assert.ok(hotHits > 0, 'hot copies were actually served (and kept coherent)');
      // A write through the cache front is visible everywhere too.
      const put = await expectResponse(tier.nodes[0]!.request('PUT', '/_cache/default/coherent', 'through-cache'));
      assert.equal(put.status, 204);
      assert.equal(await client.get('/coherent').string(), 'through-cache');
      for (const node of tier.nodes) {
        await waitUntil(async () => (await expectResponse(node.request('GET', '/_cache/default/coherent'))).body === 'through-cache', { timeoutMs: 5000, intervalMs: 5, description: `${node.name} to serve through-cache` });
      }
      // Deletes drop copies.
      await client.delete().key('/coherent').exec();
      for (const node of tier.nodes) {
        await waitUntil(async () => (await expectResponse(node.request('GET', '/_cache/default/coherent'))).status === 404, { timeoutMs: 5000, intervalMs: 5, description: `${node.name} to forget the key` });
      }
    });
  });

  it('bad input gets clear errors: unknown group, oversize value, empty key; other groups live under /cache/<g>/', async () => {
    await withTier(1, ['--group', 'users:100000', '--max-value-bytes', '1000'], async (tier) => {
      const node = tier.nodes[0]!;
      const unknown = await expectResponse(node.request('GET', '/_cache/nope/k'));
      assert.equal(unknown.status, 404);
      assert.equal(unknown.errorCode, 'unknown-group');
      assert.match(unknown.body, /^error: unknown group "nope"\n$/);
      const oversize = await expectResponse(node.request('PUT', '/_cache/users/k', 'x'.repeat(1001)));
      assert.equal(oversize.status, 413);
      assert.equal(oversize.errorCode, 'value-too-large');
      assert.match(oversize.body, /over the limit of 1000 bytes/);
      for (const path of ['/_cache/users/', '/_cache/users']) {
        const empty = await expectResponse(node.request('GET', path));
        assert.equal(empty.status, 400, path);
        assert.equal(empty.errorCode, 'empty-key');
      }
      const missing = await expectResponse(node.request('GET', '/_cache/users/absent'));
      assert.equal(missing.status, 404);
      assert.equal(missing.errorCode, 'key-not-found');
      const method = await expectResponse(node.request('DELETE', '/_cache/users/k'));
      assert.equal(method.status, 405);
      assert.equal((await expectResponse(node.request('PUT', '/_cache/users/alice', 'a1'))).status, 204);
      assert.equal(await client.get('/cache/users/alice').string(), 'a1');
      assert.equal((await expectResponse(node.request('GET', '/_cache/users/alice'))).body, 'a1');
    });
  });

  it('killing a node removes it from every ring within its lease TTL, others serve its keys; a restart re-registers it', async () => {
    await withTier(3, ['--hot-fraction', '0'], async (tier) => {
      const [first, second, third] = tier.nodes as [typeof tier.nodes[0], typeof tier.nodes[0], typeof tier.nodes[0]];
      const ring = new HashRing(tier.nodes.map((node) => node.address), 100);
      const keys = Array.from({ length: 60 }, (_, index) => `kill-${index}`).filter((key) => ring.ownerOf(key) === third.address).slice(0, 5);
      assert.ok(keys.length > 0);
      for (const key of keys) await client.put(`/${key}`).value(`value-of-${key}`);
      for (const key of keys) assert.equal((await expectResponse(first.request('GET', `/_cache/default/${key}`))).body, `value-of-${key}`);
      await third.kill();
      const killed = performance.now();
      const waited = await tier.waitForRings([first, second], [first.address, second.address], (LEASE_TTL_SECONDS + 5) * 1000);
      const removal = performance.now() - killed;
      figures(`dead node removed from both rings ${removal.toFixed(0)} ms after SIGKILL (lease TTL ${LEASE_TTL_SECONDS} s; etcd may round a lease up to its minimum)`);
      assert.ok(waited <= (LEASE_TTL_SECONDS + 1.5) * 1000, `removal took ${removal} ms`);
      for (const key of keys) {
        for (const node of [first, second]) {
          const started = performance.now();
          assert.equal((await expectResponse(node.request('GET', `/_cache/default/${key}`))).body, `value-of-${key}`);
          assert.ok(performance.now() - started < 1000);
        }
      }
      third.start();
      await tier.waitForRings(tier.nodes, tier.nodes.map((node) => node.address), 20_000);
      assert.equal((await expectResponse(third.request('GET', `/_cache/default/${keys[0]}`))).body, `value-of-${keys[0]}`);
    });
  });

  it('a peer answering garbage or hanging is survived (deadline, then a local load)', async () => {
    const garbage = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write(Buffer.from('this is not HTTP/2 at all\r\n\r\n'.repeat(10)));
    });
    const hanging = net.createServer((socket) => socket.on('error', () => undefined)); // accepts, never answers
    // A real gRPC server whose Get answers undecodable bytes.
    const liar = new grpc.Server();
    liar.addService({ Get: { ...CACHE_PEER_SERVICE['Get']!, responseSerialize: () => Buffer.from([0xff, 0xff, 0xff, 0x07, 0x01]) }, Set: CACHE_PEER_SERVICE['Set']! }, {
      Get: (_call: unknown, callback: grpc.sendUnaryData<PeerGetResponse>) => callback(null, { found: true, value: Buffer.from('lie'), modRevision: 1, watchedRevision: 1 }),
      Set: (_call: unknown, callback: grpc.sendUnaryData<{ ok: boolean }>) => callback(null, { ok: true }),
    });
    const listen = (server: net.Server): Promise<number> => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    const garbagePort = await listen(garbage);
    const hangingPort = await listen(hanging);
    const liarPort = await new Promise<number>((resolve, reject) => liar.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))));
    const fakes = [`127.0.0.1:${garbagePort}`, `127.0.0.1:${hangingPort}`, `127.0.0.1:${liarPort}`];
    const lease = client.lease(30);
    try {
      await withTier(2, ['--hot-fraction', '0'], async (tier) => {
        for (const [index, address] of fakes.entries()) await lease.put(`/services/cache/fake${index}/${address}`).value(address);
        const members = [...tier.nodes.map((node) => node.address), ...fakes];
        await tier.waitForRings(tier.nodes, members, 10_000);
        const ring = new HashRing(members, 100);
        const keys = Array.from({ length: 40 }, (_, index) => `bad-peer-${index}`);
        await Promise.all(keys.map((key) => client.put(`/${key}`).value(`ok-${key}`)));
        let worstMs = 0;
        for (const key of keys) {
          const started = performance.now();
          const response = await expectResponse(tier.nodes[0]!.request('GET', `/_cache/default/${key}`));
          worstMs = Math.max(worstMs, performance.now() - started);
          assert.equal(response.status, 200, key);
          assert.equal(response.body, `ok-${key}`);
        }
        const stats = (await tier.nodes[0]!.stats()).groups['default']!;
        const fakeOwned = keys.filter((key) => fakes.includes(ring.ownerOf(key)!)).length;
        figures(`bad peers: ${fakeOwned}/40 keys owned by garbage/hanging/lying peers, all served; worst request ${worstMs.toFixed(0)} ms (peer deadline ${PEER_TIMEOUT_MS} ms)`);
        assert.ok(fakeOwned > 0);
        assert.equal(stats['localFallbacks'], fakeOwned);
        assert.ok(worstMs < PEER_TIMEOUT_MS + 700, `worst ${worstMs} ms`);
      });
    } finally {
      await lease.revoke().catch(() => undefined);
      garbage.close();
      hanging.close();
      liar.forceShutdown();
    }
  });

  it('the etcd:/// resolver finds registered services and follows a removal', async () => {
    registerEtcdResolver(client, { scheme: 'etcdtest' });
    const servers: grpc.Server[] = [];
    const addresses: string[] = [];
    for (let index = 0; index < 2; index++) {
      const server = new grpc.Server();
      const address = await new Promise<string>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(`127.0.0.1:${port}`) : reject(error))));
      server.addService(CACHE_PEER_SERVICE, {
        Get: (_call: unknown, callback: grpc.sendUnaryData<PeerGetResponse>) => callback(null, { found: true, value: Buffer.from(address), modRevision: 1, watchedRevision: 1 }),
        Set: (_call: unknown, callback: grpc.sendUnaryData<{ ok: boolean }>) => callback(null, { ok: true }),
      });
      servers.push(server);
      addresses.push(address);
    }
    const leases = addresses.map(() => client.lease(30));
    for (const [index, address] of addresses.entries()) await leases[index]!.put(`/services/demo/s${index}/${address}`).value(address);
    const channel = new grpc.Client('etcdtest:///demo', grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    const call = (): Promise<string> =>
      new Promise((resolve, reject) =>
        channel.makeUnaryRequest(PEER_GET_PATH, encodeGetRequest, decodeGetResponse, { group: 'g', key: 'k' }, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (error, response) =>
          error !== null || response === undefined ? reject(error) : resolve(response.value.toString()),
        ),
      );
    try {
      const seen = new Set<string>();
      await waitUntil(async () => {
        seen.add(await call());
        return seen.size === 2;
      }, { timeoutMs: 10_000, intervalMs: 10, description: 'calls to reach both registered servers' });
      assert.deepEqual([...seen].sort(), [...addresses].sort());
      await leases[0]!.revoke();
      servers[0]!.forceShutdown();
      // After the removal every call lands on the remaining server.
      await waitUntil(async () => {
        const answers = await Promise.all(Array.from({ length: 10 }, () => call().catch(() => 'error')));
        return answers.every((answer) => answer === addresses[1]);
      }, { timeoutMs: 10_000, intervalMs: 20, description: 'the resolver to follow the removal' });
    } finally {
      channel.close();
      for (const lease of leases) await lease.revoke().catch(() => undefined);
      for (const server of servers) server.forceShutdown();
    }
  });
});
