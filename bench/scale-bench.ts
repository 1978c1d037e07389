/**
 * The scale benchmark (issue 8): a three-member cluster holding many keys (default 1,000,000,
 * 256-byte values), raftkv and etcd 3.4 measured the same way in the same run. Targets:
 * "1,000,000 keys loaded: resident memory per node ≤ etcd's", "restart of a node holding
 * 1,000,000 keys until it serves ≤ etcd's time", "a new member catching up 1,000,000 keys by
 * snapshot ≤ etcd's time".
 *
 * Per system, in order:
 * 1. Load: Txn requests of {@link TXN_OPERATIONS} Puts each (etcd's default --max-txn-ops),
 *    {@link TXNS_IN_FLIGHT} in flight over one connection per member; random (incompressible)
 *    values. A failed Txn is retried (the same Puts again) and counted.
 * 2. Padding: single Puts until the Raft log is long enough that etcd must have cut a snapshot
 *    AND compacted its log past the first entries (etcd 3.4 keeps 5,000 entries after a snapshot
 *    and snapshots every `--snapshot-count` applied entries; see {@link paddedRaftIndex}). Both
 *    systems run with the same `--snapshot-count` ({@link SNAPSHOT_COUNT}).
 * 3. Resident memory right after the load: VmRSS (/proc/<pid>/status) of each member, max and
 *    mean, and the largest anonymous part (RssAnon), which leaves out mapped files.
 * 4. Restart: a follower is SIGKILLed and started again with the same flags; timed from the spawn
 *    until a SERIALIZABLE Range on it returns the value of a key written before the kill, then
 *    until a linearizable Range on it succeeds.
 * 5. Snapshot catch-up: a fourth member is added with the Cluster service's MemberAdd (raftkv
 *    implements it on its one membership path, docs/CLUSTER.md) and started; timed from the spawn
 *    until its serializable Range returns the last value written. Its log must show that it
 *    installed a snapshot: otherwise the row says the catch-up was NOT by snapshot.
 *
 * Failures of the system under test (a Txn that keeps failing, a member that never serves) are
 * reported in the result, never hidden; timings are never asserted.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { ProtoObject } from '../src/api/grpc/etcd-proto';
import { delay, waitUntil } from '../src/testing/jepsen/wait-until';
import { comparisonRows, type Measure } from './load';
import { connect, etcdClient, memberStatus, unary, type EtcdClient, type RaftkvTarget, type ReferenceEtcd } from './etcd-bench';

/** What to run. */
export interface ScaleBenchOptions {
  readonly keys: number;
  readonly progress: (line: string) => void;
}

/** Puts per Txn: etcd's default --max-txn-ops. */
export const TXN_OPERATIONS = 128;
/** Txn requests in flight during the load. */
export const TXNS_IN_FLIGHT = 8;
export const SCALE_VALUE_BYTES = 256;
/** `--snapshot-count` of both systems. */
export const SNAPSHOT_COUNT = 2500;
/** Entries etcd 3.4 keeps in its log after a snapshot (etcdserver.SnapshotCatchUpEntries; no flag). */
const ETCD_SNAPSHOT_CATCH_UP_ENTRIES = 5000;
const LOAD_RETRIES_MAX = 5;
const SERVE_TIMEOUT_MS = 10 * 60_000;
const SENTINEL_KEY = Buffer.from('scale/sentinel');

/**
 * A three-member cluster as the scale benchmark drives it. Members are numbered from 0; the
 * member added by {@link ScaleTarget.addMember} gets the next number.
 */
export interface ScaleTarget {
  readonly label: string;
  /** Client endpoints of the three initial members. */
  readonly endpoints: readonly string[];
  endpointOf(member: number): string;
  pidOf(member: number): number | undefined;
  /** SIGKILLs a member and resolves once it has exited. */
  kill(member: number): Promise<void>;
  /** Spawns a killed member again with the same data directory and flags. */
  restart(member: number): void;
  /**
   * Adds a member: `register` announces its peer URL with MemberAdd and resolves with the ID the
   * cluster assigned (decimal); the member is spawned right after `register` resolves. Resolves
   * with its number.
   */
  addMember(register: (peerUrl: string) => Promise<string>): Promise<number>;
  /** The line of a member's log that shows it installed a snapshot sent by the leader, if any. */
  snapshotEvidence(member: number): string | undefined;
  stop(): Promise<void>;
}

/** The outcome for one system; a figure is undefined when its step failed (see `failures`). */
export interface ScaleResult {
  readonly label: string;
  readonly keys: number;
  readonly loadSeconds?: number;
  readonly loadKeysPerSecond?: number;
  /** Txn requests that failed and were sent again. */
  readonly loadRetries: number;
  /** Raft index (commit) of the cluster once loading and padding were done, and the padding Puts. */
  readonly raftIndex?: number;
  readonly paddingPuts?: number;
  /** VmRSS of the three members after loading, MiB. */
  readonly residentMaxMiB?: number;
  readonly residentMeanMiB?: number;
  /** The largest RssAnon of the three, MiB. */
  readonly residentAnonymousMaxMiB?: number;
  /** Restart of a SIGKILLed follower: spawn → serializable Range answers the right value, and → a linearizable Range succeeds. */
  readonly restartServeSeconds?: number;
  readonly restartLinearizableSeconds?: number;
  /** New member: spawn → its serializable Range returns the last write. */
  readonly catchUpSeconds?: number;
  /** The log line showing the new member installed a snapshot; undefined: it did not (log replication). */
  readonly catchUpSnapshotEvidence?: string;
  /** Wall time of the whole run for this system (start to stop), s. */
  readonly wallSeconds: number;
  readonly failures: readonly string[];
}

/** Adapts a raftkv cluster (harness node IDs 1..n) to {@link ScaleTarget}. */
export function raftkvScaleTarget(target: RaftkvTarget): ScaleTarget {
  const { cluster } = target;
  return {
    label: 'raftkv',
    endpoints: target.endpoints,
    endpointOf: (member) => cluster.etcdEndpoint(member + 1),
    pidOf: (member) => cluster.pidOf(member + 1),
    kill: (member) => cluster.kill(member + 1),
    restart: (member) => cluster.restart(member + 1),
    addMember: async (register) => (await cluster.addMemberWith(register)) - 1,
    snapshotEvidence: (member) =>
      cluster
        .logOf(member + 1)
        .split('\n')
        .find((line) => line.includes('restoring state machine from snapshot')),
    stop: target.stop,
  };
}

/** etcd 3.4's log line (capnslog, its default; or zap) once a member has applied a snapshot received from the leader. */
const ETCD_SNAPSHOT_LINE = /finished applying incoming snapshot at index|"msg":"applied snapshot"/;

/** Adapts the reference etcd (started with `--log-level info`, for the snapshot evidence) to {@link ScaleTarget}. */
export function etcdScaleTarget(target: ReferenceEtcd): ScaleTarget {
  return {
    label: 'etcd 3.4',
    endpoints: target.endpoints,
    endpointOf: (member) => target.endpointOf(member),
    pidOf: (member) => target.pidOf(member),
    kill: (member) => target.kill(member),
    restart: (member) => target.restart(member),
    addMember: (register) =>
      target.addMember(async (peerUrl) => {
        await register(peerUrl);
      }),
    snapshotEvidence: (member) =>
      target
        .logOf(member)
        .split('\n')
        .find((line) => ETCD_SNAPSHOT_LINE.test(line)),
    stop: target.stop,
  };
}

/**
 * Flags of every member of both systems in this benchmark (both CLIs take them): the same
 * `--snapshot-count`, and info logs, where the snapshot evidence is.
 */
export const SCALE_FLAGS: readonly string[] = ['--snapshot-count', String(SNAPSHOT_COUNT), '--log-level', 'info'];

/**
 * The Raft index the log must reach before the catch-up is measured: past the first etcd snapshot
 * whose index exceeds etcd's retained 5,000 entries (etcd snapshots when applied − last snapshot
 * > --snapshot-count, so at multiples of --snapshot-count + 1), with a margin for the snapshot to
 * be cut. raftkv retains fewer entries (min(5,000, --snapshot-count / 2)) and is past its own
 * compaction sooner.
 */
export function paddedRaftIndex(snapshotCount: number): number {
  const period = snapshotCount + 1;
  return (Math.floor((ETCD_SNAPSHOT_CATCH_UP_ENTRIES + 100) / period) + 1) * period + 100;
}

/**
 * Resident memory of a process, MiB: all of it (VmRSS) and its anonymous part (RssAnon: heaps,
 * not pages of mapped files such as etcd's bbolt database, which the kernel can drop).
 */
function residentMiB(pid: number): { total: number; anonymous: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN) / 1024;
    return { total: field('VmRSS'), anonymous: field('RssAnon') };
  } catch {
    return undefined;
  }
}

/** The leader's member number and the highest Raft index among the three initial members. */
async function leaderAndIndex(target: ScaleTarget): Promise<{ leader: number; raftIndex: number }> {
  return waitUntil(
    async () => {
      const statuses = await Promise.all(target.endpoints.map((endpoint) => memberStatus(endpoint)));
      const leaderId = statuses[0]!.leader as string | undefined;
      const leader = statuses.findIndex((answer) => (answer.header as ProtoObject).member_id === leaderId);
      if (leaderId === undefined || leader < 0) return undefined;
      return { leader, raftIndex: Math.max(...statuses.map((answer) => Number(answer.raftIndex ?? 0))) };
    },
    { timeoutMs: 60_000, intervalMs: 200, description: `${target.label}: a leader` },
  );
}

/** Loads `keys` keys with Txns of {@link TXN_OPERATIONS} Puts; resolves with the retries needed. */
async function loadKeys(target: ScaleTarget, keys: number, progress: (line: string) => void): Promise<number> {
  const clients = connect(target.endpoints, target.endpoints.length);
  const batches = Math.ceil(keys / TXN_OPERATIONS);
  let nextBatch = 0;
  let loaded = 0;
  let retries = 0;
  const started = performance.now();
  let reportedAt = started;
  const worker = async (client: EtcdClient) => {
    for (let batch = nextBatch++; batch < batches; batch = nextBatch++) {
      const first = batch * TXN_OPERATIONS;
      const count = Math.min(TXN_OPERATIONS, keys - first);
      const values = randomBytes(count * SCALE_VALUE_BYTES);
      const success = Array.from({ length: count }, (_, index) => ({
        request_put: { key: Buffer.from(`scale/key-${String(first + index).padStart(8, '0')}`), value: values.subarray(index * SCALE_VALUE_BYTES, (index + 1) * SCALE_VALUE_BYTES) },
      }));
      for (let attempt = 0; ; attempt++) {
        try {
          await unary(client, 'Txn', { success }, 30_000);
          break;
        } catch (error) {
          if (attempt >= LOAD_RETRIES_MAX) throw new Error(`Txn of keys ${first}..${first + count - 1} failed ${attempt + 1} times, last: ${(error as Error).message}`);
          retries++;
          progress(`${target.label}: Txn failed (${(error as Error).message}); sending it again`);
          await delay(500);
        }
      }
      loaded += count;
      const now = performance.now();
      if (now - reportedAt >= 10_000) {
        reportedAt = now;
        progress(`${target.label}: ${loaded.toLocaleString('en-US')} of ${keys.toLocaleString('en-US')} keys, ${Math.round(loaded / ((now - started) / 1000)).toLocaleString('en-US')} keys/s`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: TXNS_IN_FLIGHT }, (_, index) => worker(clients[index % clients.length]!)));
  } finally {
    for (const client of clients) client.close();
  }
  return retries;
}

/** Single Puts until the Raft index reaches `targetIndex`; resolves with the Puts sent. */
async function padLog(target: ScaleTarget, targetIndex: number): Promise<number> {
  const clients = connect(target.endpoints, target.endpoints.length);
  let puts = 0;
  try {
    for (;;) {
      const missing = targetIndex - (await leaderAndIndex(target)).raftIndex;
      if (missing <= 0) return puts;
      let next = 0;
      const worker = async (client: EtcdClient) => {
        while (next++ < missing) {
          await unary(client, 'Put', { key: Buffer.from('scale/padding'), value: Buffer.alloc(SCALE_VALUE_BYTES, 'p') }, 30_000);
          puts++;
        }
      };
      await Promise.all(Array.from({ length: 16 }, (_, index) => worker(clients[index % clients.length]!)));
    }
  } finally {
    for (const client of clients) client.close();
  }
}

/** Writes the sentinel key on `endpoint` and resolves with the value written. */
async function writeSentinel(endpoint: string, value: string): Promise<Buffer> {
  const client = etcdClient('KV', endpoint);
  try {
    const bytes = Buffer.from(value);
    await unary(client, 'Put', { key: SENTINEL_KEY, value: bytes }, 30_000);
    return bytes;
  } finally {
    client.close();
  }
}

/**
 * Polls `endpoint` (serializable Range, every 20 ms) until it returns `value` for the sentinel
 * key; resolves with the milliseconds since `startedAt`.
 */
async function waitUntilServes(client: EtcdClient, value: Buffer, startedAt: number, description: string): Promise<number> {
  await waitUntil(
    async () => {
      const answer = await unary(client, 'Range', { key: SENTINEL_KEY, serializable: true }, 1000);
      const kvs = (answer.kvs as ProtoObject[] | undefined) ?? [];
      return kvs.length === 1 && Buffer.compare(kvs[0]!.value as Buffer, value) === 0;
    },
    { timeoutMs: SERVE_TIMEOUT_MS, intervalMs: 20, description },
  );
  return performance.now() - startedAt;
}

/** Runs every step against `target`; never throws for a failure of the system under test. */
export async function scaleBench(target: ScaleTarget, options: ScaleBenchOptions): Promise<ScaleResult> {
  const { keys, progress } = options;
  const label = target.label;
  const wallStarted = performance.now();
  const failures: string[] = [];
  const figures: { -readonly [K in keyof ScaleResult]?: ScaleResult[K] } = {};
  let loadRetries = 0;
  const step = async (name: string, body: () => Promise<void>): Promise<boolean> => {
    try {
      await body();
      return true;
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message}`);
      progress(`${label}: ${name} FAILED: ${(error as Error).message}`);
      return false;
    }
  };

  const loaded = await step('load', async () => {
    progress(`${label}: loading ${keys.toLocaleString('en-US')} keys (Txn of ${TXN_OPERATIONS} Puts, ${TXNS_IN_FLIGHT} in flight)`);
    await leaderAndIndex(target);
    const started = performance.now();
    loadRetries = await loadKeys(target, keys, progress);
    figures.loadSeconds = (performance.now() - started) / 1000;
    figures.loadKeysPerSecond = keys / figures.loadSeconds;
    progress(`${label}: loaded in ${figures.loadSeconds.toFixed(1)} s (${Math.round(figures.loadKeysPerSecond).toLocaleString('en-US')} keys/s)`);
    figures.paddingPuts = await padLog(target, paddedRaftIndex(SNAPSHOT_COUNT));
    figures.raftIndex = (await leaderAndIndex(target)).raftIndex;
    progress(`${label}: Raft index ${figures.raftIndex} (${figures.paddingPuts} padding Puts)`);
  });
  if (!loaded) return { label, keys, loadRetries, wallSeconds: (performance.now() - wallStarted) / 1000, failures };

  await step('resident memory', async () => {
    const resident = [0, 1, 2].map((member) => {
      const pid = target.pidOf(member);
      const mib = pid === undefined ? undefined : residentMiB(pid);
      if (mib === undefined) throw new Error(`member ${member} is not running`);
      return mib;
    });
    const totals = resident.map((mib) => mib.total);
    figures.residentMaxMiB = Math.max(...totals);
    figures.residentMeanMiB = totals.reduce((sum, mib) => sum + mib, 0) / totals.length;
    figures.residentAnonymousMaxMiB = Math.max(...resident.map((mib) => mib.anonymous));
    progress(`${label}: VmRSS ${resident.map((mib) => `${mib.total.toFixed(0)} (anonymous ${mib.anonymous.toFixed(0)})`).join(', ')} MiB`);
  });

  await step('restart', async () => {
    const { leader } = await leaderAndIndex(target);
    const follower = [0, 1, 2].find((member) => member !== leader)!;
    const value = await writeSentinel(target.endpoints[leader]!, `before-restart-${Date.now()}`);
    progress(`${label}: SIGKILL of follower ${follower}, then restart`);
    await target.kill(follower);
    const client = etcdClient('KV', target.endpointOf(follower));
    try {
      const spawnedAt = performance.now();
      target.restart(follower);
      figures.restartServeSeconds = (await waitUntilServes(client, value, spawnedAt, `${label}: restarted member ${follower} to serve`)) / 1000;
      await waitUntil(() => unary(client, 'Range', { key: SENTINEL_KEY }, 2000).then(() => true), {
        timeoutMs: SERVE_TIMEOUT_MS,
        intervalMs: 20,
        description: `${label}: restarted member ${follower} to answer a linearizable Range`,
      });
      figures.restartLinearizableSeconds = (performance.now() - spawnedAt) / 1000;
      progress(`${label}: restarted member serves after ${figures.restartServeSeconds.toFixed(2)} s (linearizable after ${figures.restartLinearizableSeconds.toFixed(2)} s)`);
    } finally {
      client.close();
    }
  });

  await step('snapshot catch-up', async () => {
    const { leader } = await leaderAndIndex(target);
    const value = await writeSentinel(target.endpoints[leader]!, `final-${Date.now()}`);
    const clusterClient = etcdClient('Cluster', target.endpoints[leader]!);
    let spawnedAt = 0;
    let member: number;
    try {
      member = await target.addMember(async (peerUrl) => {
        // etcd 3.4 checks reconfigurations strictly by default: it refuses MemberAdd with
        // "unhealthy cluster" until every member has been connected for 5 s (the follower was just
        // restarted). Only that refusal is retried; it applied nothing.
        let refusals = 0;
        const deadline = performance.now() + 60_000;
        let answer: ProtoObject;
        for (;;) {
          try {
            answer = await unary(clusterClient, 'MemberAdd', { peerURLs: [peerUrl] }, 30_000);
            break;
          } catch (error) {
            if (!(error as Error).message.includes('unhealthy cluster') || performance.now() > deadline) throw error;
            refusals++;
            await delay(500);
          }
        }
        if (refusals > 0) progress(`${label}: MemberAdd refused ${refusals} times (unhealthy cluster) before it was accepted`);
        spawnedAt = performance.now(); // the member is spawned right after this resolves
        return String((answer.member as ProtoObject).ID);
      });
    } finally {
      clusterClient.close();
    }
    progress(`${label}: member ${member} added (MemberAdd) and started; waiting until it serves the last write`);
    const client = etcdClient('KV', target.endpointOf(member));
    try {
      figures.catchUpSeconds = (await waitUntilServes(client, value, spawnedAt, `${label}: new member ${member} to serve the last write`)) / 1000;
    } finally {
      client.close();
    }
    figures.catchUpSnapshotEvidence = target.snapshotEvidence(member);
    progress(`${label}: new member serves after ${figures.catchUpSeconds.toFixed(2)} s; ${figures.catchUpSnapshotEvidence === undefined ? 'NO snapshot in its log' : 'it installed a snapshot'}`);
    if (figures.catchUpSnapshotEvidence === undefined) failures.push('snapshot catch-up: the new member caught up WITHOUT installing a snapshot (no snapshot line in its log)');
  });
  return { label, keys, loadRetries, ...figures, wallSeconds: (performance.now() - wallStarted) / 1000, failures };
}

const seconds = (value: number | undefined) => (value === undefined ? 'failed' : value.toFixed(2));

const SCALE_MEASURES: readonly Measure<ScaleResult>[] = [
  {
    name: `load: keys/s (Txn of ${TXN_OPERATIONS} Puts, ${TXNS_IN_FLIGHT} in flight); s`,
    cell: (r) => (r.loadKeysPerSecond === undefined ? 'failed' : `${Math.round(r.loadKeysPerSecond).toLocaleString('en-US')}; ${r.loadSeconds!.toFixed(0)} s`),
    figure: (r) => r.loadKeysPerSecond,
  },
  { name: 'load: Txns retried; Raft index after load (padding Puts)', cell: (r) => `${r.loadRetries}; ${r.raftIndex ?? '–'} (${r.paddingPuts ?? '–'})` },
  {
    name: 'VmRSS per member right after the load, max / mean MiB (ratio of max)',
    cell: (r) => (r.residentMaxMiB === undefined ? 'failed' : `${r.residentMaxMiB.toFixed(0)} / ${r.residentMeanMiB!.toFixed(0)}`),
    figure: (r) => r.residentMaxMiB,
  },
  {
    name: '… of which anonymous (RssAnon: heaps, not mapped files), max MiB',
    cell: (r) => (r.residentAnonymousMaxMiB === undefined ? 'failed' : r.residentAnonymousMaxMiB.toFixed(0)),
    figure: (r) => r.residentAnonymousMaxMiB,
  },
  { name: 'restart of a SIGKILLed follower: spawn → serializable Range of a key written before, s', cell: (r) => seconds(r.restartServeSeconds), figure: (r) => r.restartServeSeconds },
  { name: 'restart: spawn → first linearizable Range on it, s', cell: (r) => seconds(r.restartLinearizableSeconds), figure: (r) => r.restartLinearizableSeconds },
  {
    name: 'new member (MemberAdd): spawn → serializable Range returns the last write, s',
    cell: (r) => (r.catchUpSeconds === undefined ? 'failed' : `${r.catchUpSeconds.toFixed(2)}${r.catchUpSnapshotEvidence === undefined ? ' (**NOT by snapshot**)' : ' (by snapshot)'}`),
    figure: (r) => (r.catchUpSnapshotEvidence === undefined ? undefined : r.catchUpSeconds),
  },
  { name: 'wall time of the run, s', cell: (r) => r.wallSeconds.toFixed(0) },
];

/** The section's table: what was run, the rows, then every failure and the snapshot evidence. */
export function scaleTable(keys: number, ours: ScaleResult | string, theirs: ScaleResult | string): string[] {
  const results = [ours, theirs].filter((outcome): outcome is ScaleResult => typeof outcome !== 'string');
  const notes = results.flatMap((result) => [
    ...result.failures.map((failure) => `${result.label}: ${failure}`),
    ...(result.catchUpSnapshotEvidence === undefined ? [] : [`${result.label}: the new member's log: \`${result.catchUpSnapshotEvidence.trim().slice(0, 200)}\``]),
  ]);
  return [
    `Scale (${keys.toLocaleString('en-US')} keys, ${SCALE_VALUE_BYTES}-byte random values, three members; both with --snapshot-count ${SNAPSHOT_COUNT}; ratio = raftkv / etcd):`,
    '',
    ...comparisonRows(SCALE_MEASURES, ours, theirs),
    ...(notes.length === 0 ? [] : ['', ...notes.map((note) => `- ${note}`)]),
  ];
}
