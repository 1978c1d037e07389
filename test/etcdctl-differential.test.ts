/**
 * etcdctl 3.4's Cluster and Maintenance commands against a REAL etcd 3.4 (/usr/bin/etcd) and a
 * raftkv node side by side: the same commands must give the same message shapes and the same
 * error strings. Known, documented differences are normalised: client URLs (etcd advertises
 * `http://…`, raftkv a scheme-less `host:port`, see docs/CLUSTER.md), IDs and sizes.
 * Skipped when /usr/bin/etcd is not installed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import type { Cluster } from '../src/testing/jepsen/cluster';
import { DEADLINE_MS, startCluster, waitForLeader } from './support/cluster-helpers';
import { ETCD_PATH, etcdctl, etcdctlJson } from './support/etcdctl';

const skip = fs.existsSync(ETCD_PATH) ? false : `${ETCD_PATH} is not installed`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The sorted keys of an object, recursively for nested objects (arrays: keys of the first item). */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, shape((value as Record<string, unknown>)[key])]));
  }
  return typeof value;
}

/** The error line etcdctl prints (without its timestamped retry log lines). */
function errorLine(stderr: string): string {
  return stderr.split('\n').find((line) => line.startsWith('Error:')) ?? stderr;
}

describe('etcdctl Cluster/Maintenance commands: raftkv vs etcd 3.4', { skip }, () => {
  let etcdProcess: ChildProcess | undefined;
  let etcdDirectory = '';
  let etcdEndpoint = '';
  let cluster: Cluster | undefined;
  let raftkvEndpoint = '';

  before(async () => {
    etcdDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-etcdctl-differential-'));
    const clientPort = await freePort();
    const peerPort = await freePort();
    etcdEndpoint = `127.0.0.1:${clientPort}`;
    etcdProcess = spawn(
      ETCD_PATH,
      [
        '--data-dir', path.join(etcdDirectory, 'data'),
        '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
      ],
      { stdio: 'ignore' },
    );
    cluster = await startCluster(1);
    await cluster.waitUntilHealthy(DEADLINE_MS);
    await waitForLeader(cluster);
    raftkvEndpoint = cluster.etcdEndpoint(1);
    await waitUntil(async () => (await etcdctl([etcdEndpoint], ['put', 'ready', '1'])).code === 0, { timeoutMs: 20_000, intervalMs: 100, description: 'etcd to start' });
    await waitUntil(async () => (await etcdctl([raftkvEndpoint], ['member', 'list'])).stdout.includes('raftkv-1'), { timeoutMs: DEADLINE_MS, intervalMs: 100, description: 'raftkv to publish its name' });
    // A fresh raftkv store is at revision 0 (etcd: 1), and a zero revision is left out of headers:
    // one write on each makes both non-zero (a known difference, see etcd-differential.test.ts).
    for (const endpoint of [etcdEndpoint, raftkvEndpoint]) assert.equal((await etcdctl([endpoint], ['put', 'k', 'v'])).code, 0);
  });

  after(async () => {
    etcdProcess?.kill('SIGKILL');
    await cluster?.stop({ removeRunDirectory: true });
    fs.rmSync(etcdDirectory, { recursive: true, force: true });
  });

  const both = () => [
    { name: 'etcd', endpoint: etcdEndpoint },
    { name: 'raftkv', endpoint: raftkvEndpoint },
  ];

  it('member list -w json: same fields (header without revision), one started member', async () => {
    const [etcd, ours] = await Promise.all(both().map((target) => etcdctlJson<{ header: object; members: object[] }>([target.endpoint], ['member', 'list'])));
    assert.deepEqual(shape(ours), shape(etcd));
    assert.equal('revision' in ours!.header, false);
  });

  it('endpoint status -w json: same fields', async () => {
    const [etcd, ours] = await Promise.all(both().map((target) => etcdctlJson<Array<{ Status: object }>>([target.endpoint], ['endpoint', 'status'])));
    assert.deepEqual(shape(ours), shape(etcd));
  });

  it('endpoint hashkv -w json: same fields, compact_revision -1 before any compaction; compacted and future revisions refused alike', async () => {
    const [etcd, ours] = await Promise.all(both().map((target) => etcdctlJson<Array<{ HashKV: { compact_revision: number } }>>([target.endpoint], ['endpoint', 'hashkv'])));
    assert.deepEqual(shape(ours), shape(etcd));
    assert.equal(ours![0]!.HashKV.compact_revision, -1);
    for (const target of both()) {
      const revision = (await etcdctlJson<{ header: { revision: number } }>([target.endpoint], ['put', 'k', 'again'])).header.revision;
      assert.equal((await etcdctl([target.endpoint], ['compaction', String(revision - 1)])).code, 0);
    }
    const errors = await Promise.all(
      both().map(async (target) => {
        const revision = (await etcdctlJson<{ header: { revision: number } }>([target.endpoint], ['get', 'k'])).header.revision;
        const compacted = await etcdctl([target.endpoint], ['endpoint', 'hashkv', `--rev=${revision - 1}`]);
        const future = await etcdctl([target.endpoint], ['endpoint', 'hashkv', `--rev=${revision + 5}`]);
        const fine = await etcdctlJson<Array<{ HashKV: { compact_revision: number } }>>([target.endpoint], ['endpoint', 'hashkv', `--rev=${revision}`]);
        return { compacted: errorLine(compacted.stderr), future: errorLine(future.stderr), compactRevision: fine[0]!.HashKV.compact_revision === revision - 1 };
      }),
    );
    assert.deepEqual(errors[1], errors[0]);
  });

  it('member errors: unknown ID, duplicate peer URL, promote of a voter, promote of a learner that is not in sync', async () => {
    for (const args of [
      ['member', 'remove', '1234'],
      ['member', 'promote', '1234'],
    ]) {
      const [etcd, ours] = await Promise.all(both().map((target) => etcdctl([target.endpoint], args)));
      assert.equal(errorLine(ours!.stderr), errorLine(etcd!.stderr), args.join(' '));
    }
    const outcomes = [];
    for (const target of both()) {
      const list = await etcdctlJson<{ members: Array<{ ID: string; peerURLs: string[] }> }>([target.endpoint], ['member', 'list']);
      const self = list.members[0]!;
      const duplicate = await etcdctl([target.endpoint], ['member', 'add', 'dup', `--peer-urls=${self.peerURLs[0]}`]);
      const voter = await etcdctl([target.endpoint], ['member', 'promote', BigInt(self.ID).toString(16)]);
      const added = await etcdctl([target.endpoint], ['member', 'add', 'l', '--peer-urls=http://127.0.0.1:1', '--learner']);
      const learnerHex = /Member\s+([0-9a-f]+) added/.exec(added.stdout)?.[1] ?? '';
      const lagging = await etcdctl([target.endpoint], ['member', 'promote', learnerHex]);
      const removed = await etcdctl([target.endpoint], ['member', 'remove', learnerHex]);
      outcomes.push({ duplicate: errorLine(duplicate.stderr), voter: errorLine(voter.stderr), added: added.code, lagging: errorLine(lagging.stderr), removed: removed.code });
    }
    assert.deepEqual(outcomes[1], outcomes[0]);
    assert.match(outcomes[0]!.lagging, /in sync with leader/);
  });

  it('snapshot save: both files are a multiple of 512 plus the 32-byte SHA-256; alarm list is empty on both', async () => {
    for (const target of both()) {
      const file = path.join(etcdDirectory, `${target.name}.db`);
      const saved = await etcdctl([target.endpoint], ['snapshot', 'save', file]);
      assert.equal(saved.code, 0, `${target.name}: ${saved.stderr}`);
      assert.equal(fs.statSync(file).size % 512, 32, target.name);
      const alarms = await etcdctl([target.endpoint], ['alarm', 'list']);
      assert.deepEqual({ code: alarms.code, stdout: alarms.stdout }, { code: 0, stdout: '' }, target.name);
    }
  });
});
