/**
 * etcd's Cluster and Maintenance services on real raftkv processes, driven by etcdctl 3.4
 * (issue "etcd v3 API, part 2"): member list/add/promote/remove with a learner that catches up,
 * endpoint status/health/hashkv (also --cluster), move-leader, snapshot save + `raftkv snapshot
 * restore` into a new cluster, the NOSPACE alarm under --quota-backend-bytes, and `check perf`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import type { Cluster } from '../src/testing/jepsen/cluster';
import { CLI_PATH, DEADLINE_MS, waitForLeader, withCluster } from './support/cluster-helpers';
import { etcdctl, etcdctlEventually, etcdctlJson, etcdctlOk, hexToDecimal } from './support/etcdctl';

interface MemberJson {
  ID: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

interface StatusJson {
  Endpoint: string;
  Status: { header: { member_id: string; raft_term: number }; version: string; dbSize: number; leader?: string; raftIndex: number; raftAppliedIndex?: number; errors?: string[]; isLearner?: boolean };
}

function endpoints(cluster: Cluster, ids: readonly number[] = cluster.runningIds()): string[] {
  return ids.map((id) => cluster.etcdEndpoint(id));
}

async function memberList(cluster: Cluster, id: number): Promise<MemberJson[]> {
  return (await etcdctlJson<{ members: MemberJson[] }>([cluster.etcdEndpoint(id)], ['member', 'list'])).members;
}

describe('etcdctl 3.4: Cluster and Maintenance', () => {
  it('member list/add --learner/promote (catch-up, forwarded from a follower)/remove, endpoint status/health/hashkv --cluster, move-leader', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const all = endpoints(cluster);
      for (let i = 0; i < 50; i++) await etcdctlOk(all, ['put', `k${i}`, `v${i}`]);

      // Every member publishes its name and scheme-less client URL through the log.
      const members = await waitUntil(
        async () => {
          const list = await memberList(cluster, 1);
          return list.length === 3 && list.every((member) => member.name !== undefined) ? list : undefined;
        },
        { timeoutMs: DEADLINE_MS, intervalMs: 100, description: 'three named members' },
      );
      assert.deepEqual(members.map((member) => member.name).sort(), ['raftkv-1', 'raftkv-2', 'raftkv-3']);
      for (const member of members) assert.deepEqual(member.clientURLs, [cluster.etcdEndpoint(Number(member.ID))]);
      const table = await etcdctlOk([cluster.etcdEndpoint(2)], ['member', 'list']);
      assert.match(table, /^1, started, raftkv-1, http:\/\/127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, false$/m);

      // A learner: added through etcdctl (random 64-bit ID), listed as unstarted, refused for
      // promotion until it has caught up, then promoted through a FOLLOWER (forwarded).
      let learnerHex = '';
      const learner = await cluster.addMemberWith(async (peerUrl) => {
        const output = await etcdctlOk([cluster.etcdEndpoint(leader)], ['member', 'add', 'learner-4', `--peer-urls=${peerUrl}`, '--learner']);
        // etcdctl prints the ID with %16x: IDs below 2^60 get a leading space.
        const match = /Member\s+([0-9a-f]+) added to cluster/.exec(output);
        assert.ok(match, output);
        learnerHex = match[1]!;
        const before = await etcdctlOk([cluster.etcdEndpoint(leader)], ['member', 'list']);
        assert.match(before, new RegExp(`^${learnerHex}, unstarted, , ${peerUrl.replace(/[.]/g, '\\.')}, , true$`, 'm'));
        const early = await etcdctl([cluster.etcdEndpoint(leader)], ['member', 'promote', learnerHex]);
        assert.notEqual(early.code, 0);
        assert.match(early.stderr, /etcdserver: can only promote a learner member which is in sync with leader/);
        return hexToDecimal(learnerHex);
      });
      const follower = cluster.runningIds().find((id) => id !== leader && id !== learner)!;
      await etcdctlEventually([cluster.etcdEndpoint(follower)], ['member', 'promote', learnerHex], DEADLINE_MS, 'the learner to be promoted');
      const promoted = (await memberList(cluster, leader)).find((member) => member.ID === hexToDecimal(learnerHex));
      assert.ok(promoted !== undefined);
      assert.equal(promoted.isLearner, undefined);
      await waitUntil(async () => (await memberList(cluster, leader)).find((member) => member.ID === hexToDecimal(learnerHex))?.name === 'raftkv-' + hexToDecimal(learnerHex), {
        timeoutMs: DEADLINE_MS,
        intervalMs: 100,
        description: 'the new member to publish its name',
      });
      assert.equal((await etcdctlOk([cluster.etcdEndpoint(learner)], ['get', 'k49', '--print-value-only'])).trim(), 'v49');

      // endpoint status/health --cluster: every member, through MemberList client URLs.
      const statuses = await etcdctlJson<StatusJson[]>([cluster.etcdEndpoint(1)], ['endpoint', 'status', '--cluster']);
      assert.equal(statuses.length, 4);
      const leaders = statuses.filter((status) => status.Status.leader === status.Status.header.member_id);
      assert.equal(leaders.length, 1);
      for (const status of statuses) {
        assert.equal(status.Status.version, '3.4.23');
        assert.ok(status.Status.dbSize > 0);
        assert.ok(status.Status.raftIndex > 50);
      }
      // etcdctl 3.4 prints the health lines on standard error.
      const health = await etcdctl([cluster.etcdEndpoint(1)], ['endpoint', 'health', '--cluster']);
      assert.equal(health.code, 0, health.stderr);
      assert.equal(`${health.stdout}${health.stderr}`.match(/is healthy: successfully committed proposal/g)?.length, 4, health.stderr);

      // endpoint hashkv --cluster: every member has the same history hash at the same revision.
      const revision = (await etcdctlJson<{ header: { revision: number } }>(all, ['get', 'k0'])).header.revision;
      const hashes = await waitUntil(
        async () => {
          const list = await etcdctlJson<Array<{ HashKV: { hash: number } }>>([cluster.etcdEndpoint(1)], ['endpoint', 'hashkv', '--cluster', `--rev=${revision}`]);
          return new Set(list.map((item) => item.HashKV.hash)).size === 1 && list.length === 4 ? list : undefined;
        },
        { timeoutMs: DEADLINE_MS, intervalMs: 200, description: 'equal HashKV on every member' },
      );
      assert.ok(hashes[0]!.HashKV.hash !== 0);

      // move-leader: to a follower; on a follower endpoint it is refused as etcd does.
      const currentLeader = await waitForLeader(cluster, [1, 2, 3]);
      const target = [1, 2, 3].find((id) => id !== currentLeader)!;
      const refused = await etcdctl([cluster.etcdEndpoint(target)], ['move-leader', Number(target).toString(16)]);
      assert.notEqual(refused.code, 0);
      const moved = await etcdctlOk(endpoints(cluster, [1, 2, 3]), ['move-leader', Number(target).toString(16)]);
      assert.match(moved, new RegExp(`Leadership transferred from ${currentLeader.toString(16)} to ${target.toString(16)}`));
      assert.equal(await waitForLeader(cluster, [1, 2, 3]), target);

      // member remove: the removed member shuts itself down; unknown IDs are NotFound.
      await etcdctlOk([cluster.etcdEndpoint(1)], ['member', 'remove', learnerHex]);
      await waitUntil(() => cluster.exitDescriptionOf(learner) !== undefined, { timeoutMs: DEADLINE_MS, description: 'the removed member to exit' });
      const again = await etcdctl([cluster.etcdEndpoint(1)], ['member', 'remove', learnerHex]);
      assert.match(again.stderr, /etcdserver: member not found/);
      assert.equal((await memberList(cluster, 1)).length, 3);
    });
  });

  it('snapshot save, raftkv snapshot restore into a new cluster, which starts with the data', async (t) => {
    const snapshotDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-snap-'));
    t.after(() => fs.rmSync(snapshotDirectory, { recursive: true, force: true }));
    const file = path.join(snapshotDirectory, 'backup.db');
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const all = endpoints(cluster);
      for (let i = 0; i < 200; i++) await etcdctlOk(all, ['put', `snap/${String(i).padStart(3, '0')}`, `value-${i}-${'x'.repeat(200)}`]);
      await etcdctlOk(all, ['put', 'snap/000', 'overwritten']);
      const saved = await etcdctl([cluster.etcdEndpoint(2)], ['snapshot', 'save', file]);
      assert.equal(saved.code, 0, saved.stderr);
      assert.match(saved.stdout, /Snapshot saved at/);
      assert.equal(fs.statSync(file).size % 512, 32);
    });
    const restoreOutputs: string[] = [];
    await withCluster(
      3,
      {
        prepareDataDirectory: async (node) => {
          const output = await runCli(['snapshot', 'restore', file, '--data-dir', node.dataDirectory, '--id', String(node.id), '--cluster', node.clusterUrls.join(',')]);
          restoreOutputs.push(output);
        },
      },
      async (cluster) => {
        await waitForLeader(cluster);
        assert.equal(restoreOutputs.length, 3);
        assert.match(restoreOutputs[0]!, /restored .* into/);
        const all = endpoints(cluster);
        const count = await etcdctlJson<{ count: number }>(all, ['get', 'snap/', '--prefix', '--limit=1']);
        assert.equal(count.count, 200);
        assert.equal((await etcdctlOk(all, ['get', 'snap/000', '--print-value-only'])).trim(), 'overwritten');
        // History survives: the first version of snap/000 is still readable at its revision.
        const current = await etcdctlJson<{ kvs: Array<{ create_revision: number }> }>(all, ['get', 'snap/000']);
        assert.match(await etcdctlOk(all, ['get', 'snap/000', `--rev=${current.kvs[0]!.create_revision}`, '--print-value-only']), /^value-0-/);
        // The new cluster accepts writes and every member serves them.
        await etcdctlOk(all, ['put', 'after-restore', 'yes']);
        for (const id of cluster.runningIds()) {
          await waitUntil(async () => (await etcdctlOk([cluster.etcdEndpoint(id)], ['get', 'after-restore', '--print-value-only', '--consistency=s'])).trim() === 'yes', {
            timeoutMs: DEADLINE_MS,
            intervalMs: 100,
            description: `member ${id} to serve the new key`,
          });
        }
      },
    );
    const damaged = `${file}.damaged`;
    const bytes = fs.readFileSync(file);
    bytes[100] = (bytes[100]! + 1) % 256;
    fs.writeFileSync(damaged, bytes);
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-restore-'));
    t.after(() => fs.rmSync(target, { recursive: true, force: true }));
    const failure = await runCliRaw(['snapshot', 'restore', damaged, '--data-dir', path.join(target, 'd'), '--id', '1', '--cluster', 'http://127.0.0.1:1']);
    assert.equal(failure.code, 1);
    assert.match(failure.stderr, /SHA-256 mismatch/);
    assert.equal(fs.existsSync(path.join(target, 'd')), false);
  });

  it('the NOSPACE alarm: quota exceeded refuses writes without losing data, until space is freed and the alarm disarmed', async () => {
    await withCluster(3, { extraFlags: ['--quota-backend-bytes', String(256 * 1024)] }, async (cluster) => {
      await waitForLeader(cluster);
      const all = endpoints(cluster);
      const value = 'v'.repeat(8 * 1024);
      const written: string[] = [];
      let refusal = '';
      for (let i = 0; i < 200 && refusal === ''; i++) {
        const result = await etcdctl(all, ['put', `big/${i}`, value]);
        if (result.code === 0) written.push(`big/${i}`);
        else refusal = result.stderr;
      }
      assert.match(refusal, /etcdserver: mvcc: database space exceeded/);
      const alarms = await etcdctlOk(all, ['alarm', 'list']);
      assert.match(alarms, /memberID:\d+ alarm:NOSPACE/);
      // Every member refuses writes (the alarm is replicated), and no acknowledged write is lost.
      for (const id of cluster.runningIds()) {
        const result = await etcdctl([cluster.etcdEndpoint(id)], ['put', 'small', 'x']);
        assert.match(result.stderr, /database space exceeded/, `member ${id}`);
      }
      const count = await etcdctlJson<{ count?: number }>(all, ['get', 'big/', '--prefix', '--limit=1']);
      assert.equal(count.count, written.length);
      // Deletes still work; compact + defrag give the space back; disarm lifts the alarm.
      await etcdctlOk(all, ['del', 'big/', '--prefix']);
      const revision = (await etcdctlJson<{ header: { revision: number } }>(all, ['get', 'x'])).header.revision;
      await etcdctlOk(all, ['compaction', String(revision), '--physical']);
      for (const id of cluster.runningIds()) await etcdctlOk([cluster.etcdEndpoint(id)], ['defrag']);
      await etcdctlOk(all, ['alarm', 'disarm']);
      assert.equal((await etcdctlOk(all, ['alarm', 'list'])).trim(), '');
      await etcdctlOk(all, ['put', 'after', 'space']);
      assert.equal((await etcdctlOk(all, ['get', 'after', '--print-value-only'])).trim(), 'space');
    });
  });

  it('check perf (60 s, load s) prints PASS', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const result = await etcdctl(endpoints(cluster), ['check', 'perf'], 120_000);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /PASS: Throughput/);
      assert.match(result.stdout, /^PASS$/m);
    });
  });
});

function runCliRaw(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function runCli(args: readonly string[]): Promise<string> {
  const result = await runCliRaw(args);
  if (result.code !== 0) throw new Error(`raftkv ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}
