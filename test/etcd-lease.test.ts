/**
 * Leases of a three-node raftkv cluster (real processes), driven by the `etcd3` npm client and by
 * etcdctl 3.4 exactly as applications and operators use them (issue "etcd v3 API, part 2"):
 * keep-alive holding a key beyond its TTL, expiry after the client stops renewing, revoke, etcd3's
 * lock and election recipes, expiry within TTL + about one election timeout even when the LEADER
 * is killed meanwhile, renewal across a leader change, and etcdctl's lease, lock and elect
 * commands.
 *
 * Timing: ticks of 50 ms and an election timeout of 10 ticks (ET = 500 ms), so the minimum TTL is
 * 1 s. Bounds are checked as "within TTL + k·ET + polling slack", never with bare sleeps: every
 * wait polls with a deadline.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Etcd3, EtcdLockFailedError } from 'etcd3';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import type { Cluster } from '../src/testing/jepsen/cluster';
import { DEADLINE_MS, waitForLeader, withCluster } from './support/cluster-helpers';

const ELECTION_TIMEOUT_MS = 500;
const ETCDCTL = '/usr/bin/etcdctl';

function clientFor(cluster: Cluster, ids: readonly number[] = cluster.runningIds()): Etcd3 {
  return new Etcd3({ hosts: ids.map((id) => cluster.etcdEndpoint(id)), dialTimeout: 5000 });
}

/** Asserts that `condition` holds at every poll for `durationMs` (polling, with a deadline). */
async function holdsFor(durationMs: number, condition: () => Promise<boolean>, description: string): Promise<void> {
  const until = performance.now() + durationMs;
  while (performance.now() < until) {
    assert.ok(await condition(), `${description} stopped holding after ${Math.round(durationMs - (until - performance.now()))} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Milliseconds until `key` is gone (polled on every running node's endpoint), failing after `timeoutMs`. */
async function msUntilGone(client: Etcd3, key: string, startedAt: number, timeoutMs: number): Promise<number> {
  await waitUntil(async () => (await client.get(key).string()) === null, { timeoutMs, intervalMs: 25, description: `${key} to disappear` });
  return performance.now() - startedAt;
}

/** Runs etcdctl (API v3) against the cluster to completion; resolves with its output. */
function etcdctl(cluster: Cluster, args: readonly string[], ids: readonly number[] = cluster.runningIds()): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(ETCDCTL, [`--endpoints=${ids.map((id) => cluster.etcdEndpoint(id)).join(',')}`, '--command-timeout=10s', ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A long-running etcdctl (lock, elect) whose output is collected as it arrives. */
class EtcdctlProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  exitCode: number | null | undefined;

  constructor(cluster: Cluster, args: readonly string[]) {
    const endpoints = cluster.runningIds().map((id) => cluster.etcdEndpoint(id)).join(',');
    this.child = spawn(ETCDCTL, [`--endpoints=${endpoints}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.child.on('exit', (code) => {
      this.exitCode = code;
    });
  }

  /** SIGTERM (a graceful exit: etcdctl unlocks or resigns) and wait for the exit. */
  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGTERM');
    await waitUntil(() => this.exitCode !== undefined, { timeoutMs: DEADLINE_MS, description: 'etcdctl to exit' });
  }

  kill(): void {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
  }
}

function must(result: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(result.code, 0, `etcdctl failed: ${result.stderr}`);
  return result.stdout;
}

describe('etcd v3 leases through the etcd3 client', () => {
  it('keep-alive holds a key beyond its TTL; it expires after renewals stop; revoke deletes keys', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const client = clientFor(cluster);
      try {
        const ttlSeconds = 2;
        const lease = client.lease(ttlSeconds);
        await lease.put('held').value('alive');
        await holdsFor(3 * ttlSeconds * 1000, async () => (await client.get('held').string()) === 'alive', 'a kept-alive leased key');
        const leaseId = await lease.grant();
        const ttl = await client.leaseClient.leaseTimeToLive({ ID: leaseId, keys: true });
        assert.equal(ttl.grantedTTL, String(ttlSeconds));
        assert.deepEqual(ttl.keys.map((key) => key.toString()), ['held']);

        // The client stops renewing (without revoking): the key is gone within TTL + ~1 election timeout.
        lease.release();
        const stoppedAt = performance.now();
        const goneAfterMs = await msUntilGone(client, 'held', stoppedAt, DEADLINE_MS);
        assert.ok(goneAfterMs <= ttlSeconds * 1000 + ELECTION_TIMEOUT_MS + 500, `gone after ${Math.round(goneAfterMs)} ms`);
        assert.ok(goneAfterMs >= (ttlSeconds * 1000 * 2) / 3 - 250, `gone too early: after ${Math.round(goneAfterMs)} ms`);
        assert.equal((await client.leaseClient.leaseTimeToLive({ ID: leaseId })).TTL, '-1');

        // Revoke deletes every attached key at once.
        const revoked = client.lease(30);
        await revoked.put('r/1').value('1');
        await revoked.put('r/2').value('2');
        assert.equal(Object.keys(await client.getAll().prefix('r/').strings()).length, 2);
        await revoked.revoke();
        assert.deepEqual(await client.getAll().prefix('r/').strings(), {});
        await assert.rejects(client.put('x').value('y').lease(await revoked.grant()).exec(), /requested lease not found/);
      } finally {
        client.close();
      }
    });
  });

  it('etcd3 lock and election work (mutual exclusion, campaign, observe, resign)', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const first = clientFor(cluster);
      const second = clientFor(cluster);
      try {
        const lock = first.lock('resource');
        await lock.acquire();
        await assert.rejects(second.lock('resource').acquire(), EtcdLockFailedError);
        await lock.release();
        const again = second.lock('resource');
        await again.acquire();
        await again.release();

        const election = first.election('leader-of-things', 5);
        const observer = await second.election('leader-of-things', 5).observe();
        const seen: Array<string | undefined> = [];
        observer.on('change', (value) => seen.push(value));
        const campaign1 = election.campaign('candidate-1');
        await campaign1.wait();
        assert.equal(await second.election('leader-of-things').leader(), 'candidate-1');
        const campaign2 = second.election('leader-of-things', 5).campaign('candidate-2');
        let secondElected = false;
        campaign2.on('elected', () => {
          secondElected = true;
        });
        await holdsFor(1000, async () => !secondElected, 'the second candidate waiting');
        await campaign1.resign();
        await waitUntil(() => secondElected, { timeoutMs: DEADLINE_MS, description: 'the second candidate to be elected' });
        assert.equal(await first.election('leader-of-things').leader(), 'candidate-2');
        await waitUntil(() => seen.includes('candidate-2'), { timeoutMs: DEADLINE_MS, description: 'the observer to see candidate-2' });
        await campaign2.resign();
        await observer.cancel();
      } finally {
        first.close();
        second.close();
      }
    });
  });

  it('a leased key disappears within TTL + about one election timeout after its client dies, also when the LEADER is killed meanwhile', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const followers = cluster.runningIds().filter((id) => id !== leader);
      const client = clientFor(cluster, followers);
      try {
        const ttlSeconds = 3;
        const lease = client.lease(ttlSeconds);
        await lease.put('orphan').value('v');
        // Let a few renewals (and checkpoints) happen first.
        await holdsFor(2 * ttlSeconds * 1000, async () => (await client.get('orphan').string()) === 'v', 'the kept-alive key');
        lease.release(); // the client "dies": no more renewals
        const diedAt = performance.now();
        await cluster.kill(leader);
        const goneAfterMs = await msUntilGone(client, 'orphan', diedAt, DEADLINE_MS);
        // TTL + checkpoint drift (1 ET) + election of a new leader (1-2 ET, and up to 4 ET more
        // when the two survivors split a round: seen once, 2.8 s from the kill to a leader) +
        // scan and polling slack.
        assert.ok(goneAfterMs <= ttlSeconds * 1000 + 7 * ELECTION_TIMEOUT_MS + 500, `gone after ${Math.round(goneAfterMs)} ms`);
        assert.ok(goneAfterMs >= (ttlSeconds * 1000 * 2) / 3 - ELECTION_TIMEOUT_MS, `gone too early: after ${Math.round(goneAfterMs)} ms`);
      } finally {
        client.close();
      }
    });
  });

  it('a lease renewed across a leader change does not expire', async () => {
    await withCluster(3, {}, async (cluster) => {
      const leader = await waitForLeader(cluster);
      const followers = cluster.runningIds().filter((id) => id !== leader);
      const client = clientFor(cluster, followers);
      try {
        const ttlSeconds = 2;
        const lease = client.lease(ttlSeconds);
        let lost: unknown;
        lease.on('lost', (error) => {
          lost = error;
        });
        await lease.put('survivor').value('v');
        await holdsFor(ttlSeconds * 1000, async () => (await client.get('survivor').string()) === 'v', 'the key before the kill');
        await cluster.kill(leader);
        await waitForLeader(cluster, followers);
        await holdsFor(4 * ttlSeconds * 1000, async () => (await client.get('survivor').string()) === 'v', 'the key across the leader change');
        assert.equal(lost, undefined);
        const ttl = await client.leaseClient.leaseTimeToLive({ ID: await lease.grant() });
        assert.ok(Number(ttl.TTL) >= 0, `TTL ${ttl.TTL}`);
        await lease.revoke();
      } finally {
        client.close();
      }
    });
  });
});

describe('lease state survives restarts and snapshots', () => {
  it('leases and their keys survive a restart of every node, with snapshots cut meanwhile', async () => {
    await withCluster(3, { extraFlags: ['--snapshot-count', '20'] }, async (cluster) => {
      await waitForLeader(cluster);
      const client = clientFor(cluster);
      const ids: string[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const lease = client.lease(600, { autoKeepAlive: false });
          ids.push(await lease.grant());
          await lease.put(`durable/${i}`).value(String(i));
        }
        // Enough writes for several snapshots (every 20 entries).
        for (let i = 0; i < 60; i++) await client.put(`filler/${i}`).value('x');
        await client.leaseClient.leaseRevoke({ ID: ids[2]! });
      } finally {
        client.close();
      }
      for (const id of cluster.runningIds()) await cluster.kill(id);
      for (const id of cluster.memberIds()) cluster.restart(id);
      await waitForLeader(cluster);
      const after = clientFor(cluster);
      try {
        const listed = await waitUntil(async () => (await after.leaseClient.leaseLeases({})).leases.map((item) => item.ID), { timeoutMs: DEADLINE_MS, description: 'LeaseLeases after the restart' });
        assert.deepEqual([...listed].sort(), [ids[0]!, ids[1]!].sort());
        for (const [i, id] of ids.slice(0, 2).entries()) {
          const ttl = await after.leaseClient.leaseTimeToLive({ ID: id, keys: true });
          assert.equal(ttl.grantedTTL, '600');
          assert.deepEqual(ttl.keys.map((key) => key.toString()), [`durable/${i}`]);
        }
        assert.equal(await after.get('durable/2').string(), null);
        await after.leaseClient.leaseRevoke({ ID: ids[0]! });
        assert.equal(await after.get('durable/0').string(), null);
        assert.equal(await after.get('durable/1').string(), '1');
      } finally {
        after.close();
      }
    });
  });
});

describe('etcd v3 leases through etcdctl 3.4', () => {
  it('lease grant/timetolive --keys/list/keep-alive --once/revoke and put --lease', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      const granted = must(await etcdctl(cluster, ['lease', 'grant', '30']));
      const match = /^lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(granted);
      assert.ok(match, granted);
      const id = match[1]!;
      must(await etcdctl(cluster, ['put', '--lease', id, 'ctl/a', '1']));
      must(await etcdctl(cluster, ['put', '--lease', id, 'ctl/b', '2'], [2]));
      assert.match(must(await etcdctl(cluster, ['lease', 'timetolive', id, '--keys'], [3])), new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[ctl/a ctl/b\\]\\)`));
      assert.match(must(await etcdctl(cluster, ['lease', 'list'])), new RegExp(`found 1 leases\\n${id}`));
      assert.match(must(await etcdctl(cluster, ['lease', 'keep-alive', '--once', id], [2])), new RegExp(`lease ${id} keepalived with TTL\\(30\\)`));
      assert.match(must(await etcdctl(cluster, ['lease', 'revoke', id])), new RegExp(`lease ${id} revoked`));
      assert.equal(must(await etcdctl(cluster, ['get', '--prefix', 'ctl/'])), '');
      assert.match(must(await etcdctl(cluster, ['lease', 'timetolive', id])), /already expired/);
      const unknownPut = await etcdctl(cluster, ['put', '--lease', '1234abcd', 'k', 'v']);
      assert.notEqual(unknownPut.code, 0);
      assert.match(unknownPut.stderr, /requested lease not found/);
      const unknownRevoke = await etcdctl(cluster, ['lease', 'revoke', '1234abcd']);
      assert.match(unknownRevoke.stderr, /requested lease not found/);
    });
  });

  it('lock: two contenders are mutually exclusive and the lock is handed over when the holder exits', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      // etcd's store starts at revision 1, so its first write is revision 2; raftkv's first write is
      // revision 1, and Go's concurrency recipes then wait with max_create_revision = rev - 1 = 0
      // ("no bound") for their OWN key: they hang. One write first avoids that (reported separately).
      must(await etcdctl(cluster, ['put', 'warm-up', '1']));
      const holder = new EtcdctlProcess(cluster, ['lock', 'ctl-lock']);
      let contender: EtcdctlProcess | undefined;
      try {
        await waitUntil(() => holder.stdout.startsWith('ctl-lock/'), { timeoutMs: DEADLINE_MS, description: `the holder to get the lock (${holder.stderr})` });
        contender = new EtcdctlProcess(cluster, ['lock', 'ctl-lock']);
        const waiting = contender;
        await holdsFor(1500, async () => waiting.stdout === '', 'the contender waiting');
        const holderKey = holder.stdout.trim();
        await holder.stop();
        await waitUntil(() => waiting.stdout.startsWith('ctl-lock/'), { timeoutMs: DEADLINE_MS, description: 'the contender to get the lock' });
        assert.notEqual(waiting.stdout.trim(), holderKey);
        // The holder's key is gone (unlocked); only the contender's remains.
        const keys = must(await etcdctl(cluster, ['get', '--prefix', '--keys-only', 'ctl-lock/'])).split('\n').filter((line) => line !== '');
        assert.deepEqual(keys, [waiting.stdout.trim()]);
        // A command run under the lock waits for it too: it runs once the contender exits.
        const underLock = etcdctl(cluster, ['lock', 'ctl-lock', 'echo', 'ran-under-lock']);
        await waiting.stop();
        const ran = await underLock;
        assert.equal(ran.code, 0, ran.stderr);
        assert.match(ran.stdout, /ran-under-lock/);
      } finally {
        holder.kill();
        contender?.kill();
      }
    });
  });

  it('elect: a second candidate takes over when the first exits; elect -l observes', async () => {
    await withCluster(3, {}, async (cluster) => {
      await waitForLeader(cluster);
      // etcd's store starts at revision 1, so its first write is revision 2; raftkv's first write is
      // revision 1, and Go's concurrency recipes then wait with max_create_revision = rev - 1 = 0
      // ("no bound") for their OWN key: they hang. One write first avoids that (reported separately).
      must(await etcdctl(cluster, ['put', 'warm-up', '1']));
      const first = new EtcdctlProcess(cluster, ['elect', 'ctl-election', 'p1']);
      const processes = [first];
      try {
        await waitUntil(() => first.stdout.includes('p1'), { timeoutMs: DEADLINE_MS, description: `p1 to be elected (${first.stderr})` });
        const second = new EtcdctlProcess(cluster, ['elect', 'ctl-election', 'p2']);
        const observer = new EtcdctlProcess(cluster, ['elect', '-l', 'ctl-election']);
        processes.push(second, observer);
        await waitUntil(() => observer.stdout.includes('p1'), { timeoutMs: DEADLINE_MS, description: 'the observer to see p1' });
        await holdsFor(1500, async () => second.stdout === '', 'p2 waiting');
        await first.stop();
        await waitUntil(() => second.stdout.includes('p2'), { timeoutMs: DEADLINE_MS, description: 'p2 to take over' });
        await waitUntil(() => observer.stdout.includes('p2'), { timeoutMs: DEADLINE_MS, description: 'the observer to see p2' });
      } finally {
        for (const process of processes) process.kill();
      }
    });
  });
});
