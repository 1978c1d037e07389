/**
 * The etcd-API benchmark: the same workloads, through the same gRPC load generator, against a
 * three-node raftkv cluster and a three-node etcd 3.4 cluster (Debian's `etcd-server`, started
 * here on loopback), so the two are measured side by side in one run on one machine.
 *
 * Workloads (etcd's own `benchmark` tool's shapes): Put with 64 clients over 8 gRPC connections
 * and 256-byte values; linearizable and serializable Range of those keys with 64 clients; Put
 * from a single client (latency). Clients are spread round-robin over the three members.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { etcdServiceDefinition, type ProtoObject } from '../src/api/grpc/etcd-proto';
import { Cluster, pickFreePort } from '../src/testing/jepsen/cluster';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { runLoad, type LoadResult } from './load';

const VALUE = Buffer.alloc(256, 'v');
const KEY_SPACE = 10_000;

type UnaryMethod = (request: ProtoObject, callback: (error: grpc.ServiceError | null, response?: ProtoObject) => void) => void;
interface KvClient extends grpc.Client {
  Put: UnaryMethod;
  Range: UnaryMethod;
}

const KvClientConstructor = grpc.makeGenericClientConstructor(etcdServiceDefinition('KV'), 'KV') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions,
) => KvClient;

/** `connections` separate gRPC channels spread over `endpoints`. */
function connect(endpoints: readonly string[], connections: number): KvClient[] {
  return Array.from(
    { length: connections },
    (_, index) => new KvClientConstructor(endpoints[index % endpoints.length]!, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.enable_channelz': 0 }),
  );
}

const MaintenanceClientConstructor = grpc.makeGenericClientConstructor(etcdServiceDefinition('Maintenance'), 'Maintenance') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & { Status: UnaryMethod };

/**
 * The endpoint of the current leader (Maintenance.Status: `leader` equals the answering member's
 * own ID). Single-client latency is measured against the leader on both systems: through a
 * follower a write takes two more hops (forwarding, then the commit notice), and which member
 * leads is chance.
 */
async function leaderEndpoint(endpoints: readonly string[]): Promise<string> {
  return waitUntil(
    async () => {
      for (const endpoint of endpoints) {
        const client = new MaintenanceClientConstructor(endpoint, grpc.credentials.createInsecure());
        try {
          const status = await new Promise<ProtoObject>((resolve, reject) => client.Status({}, (error, response) => (error !== null ? reject(error) : resolve(response ?? {}))));
          const header = status['header'] as ProtoObject | undefined;
          if (status['leader'] !== undefined && status['leader'] === header?.['member_id']) return endpoint;
        } catch {
          // not answering yet: try the next member
        } finally {
          client.close();
        }
      }
      return undefined;
    },
    { timeoutMs: 30_000, description: 'the leader' },
  );
}

function call(client: KvClient, method: 'Put' | 'Range', request: ProtoObject): Promise<ProtoObject> {
  return new Promise((resolve, reject) => {
    client[method](request, (error, response) => (error !== null ? reject(new Error(`${error.code}: ${error.details}`)) : resolve(response ?? {})));
  });
}

/** A running three-member cluster under test: where its clients connect and its processes. */
export interface BenchTarget {
  readonly endpoints: readonly string[];
  /** OS process IDs of the members (their CPU time is accounted per operation). */
  readonly pids: readonly number[];
  /**
   * The members' counters, summed over the members: `fsyncs` (WAL fsyncs), and for raftkv
   * `savedEntries` (entries written by those fsyncs) and `peerMessages` (Raft messages sent).
   */
  counters(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** Which Prometheus series feed each counter of {@link BenchTarget.counters}. */
const RAFTKV_COUNTERS = { fsyncs: 'raftkv_wal_fsync_duration_seconds_count', savedEntries: 'raftkv_wal_save_entries_sum', peerMessages: 'raftkv_peer_messages_sent_total' };
const ETCD_COUNTERS = { fsyncs: 'etcd_disk_wal_fsync_duration_seconds_count' };

/** Scrapes Prometheus text from every URL and sums the series named in `series` (all labels). */
async function scrapeCounters(urls: readonly string[], series: Readonly<Record<string, string>>): Promise<Record<string, number>> {
  const totals: Record<string, number> = Object.fromEntries(Object.keys(series).map((name) => [name, 0]));
  const bodies = await Promise.all(urls.map((url) => fetch(url).then((response) => response.text(), () => '')));
  for (const body of bodies) {
    for (const line of body.split('\n')) {
      if (line.startsWith('#')) continue;
      const metric = line.slice(0, line.search(/[ {]/));
      for (const [name, wanted] of Object.entries(series)) {
        if (metric === wanted) totals[name]! += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
  }
  return totals;
}

/** Runs the etcd-API workloads against `target` and names each result `label: …`. */
export async function etcdWorkloads(label: string, target: BenchTarget, seconds: number, progress: (line: string) => void): Promise<LoadResult[]> {
  const clients = connect(target.endpoints, 8);
  const options = { serverPids: target.pids, counters: () => target.counters() };
  const results: LoadResult[] = [];
  try {
    await waitUntil(async () => {
      await call(clients[0]!, 'Put', { key: Buffer.from('warmup'), value: VALUE });
      return true;
    }, { timeoutMs: 30_000, description: `${label} to accept a Put` });
    const pick = (client: number) => clients[client % clients.length]!;
    progress(`${label}: Put, 64 clients over 8 connections, ${seconds}s`);
    results.push(
      await runLoad(`${label} Put, 64 clients / 8 conns`, 64, seconds, async (client, sequence) => {
        await call(pick(client), 'Put', { key: Buffer.from(`bench/${(client * 7919 + sequence) % KEY_SPACE}`), value: VALUE });
      }, options),
    );
    progress(`${label}: Put, 1 client (on the leader), ${seconds}s`);
    const [leader] = connect([await leaderEndpoint(target.endpoints)], 1);
    try {
      results.push(
        await runLoad(`${label} Put, 1 client (leader)`, 1, seconds, async (_client, sequence) => {
          await call(leader!, 'Put', { key: Buffer.from(`bench/${sequence % KEY_SPACE}`), value: VALUE });
        }, options),
      );
    } finally {
      leader!.close();
    }
    for (const serializable of [false, true]) {
      const mode = serializable ? 'serializable' : 'linearizable';
      progress(`${label}: Range ${mode}, 64 clients over 8 connections, ${seconds}s`);
      results.push(
        await runLoad(`${label} Range ${mode}, 64 clients / 8 conns`, 64, seconds, async (client, sequence) => {
          await call(pick(client), 'Range', { key: Buffer.from(`bench/${(client * 7919 + sequence) % KEY_SPACE}`), serializable });
        }, options),
      );
    }
  } finally {
    for (const client of clients) client.close();
  }
  return results;
}

/** Client counts of the concurrency sweep. */
export const SWEEP_CLIENTS: readonly number[] = [1, 8, 64, 256];

/**
 * The concurrency sweep: Put and linearizable Range at each of {@link SWEEP_CLIENTS} clients
 * (over min(clients, 8) connections), so the scaling curve is visible. Results are named
 * `<label> <workload> @<clients>`.
 */
export async function etcdSweep(label: string, target: BenchTarget, seconds: number, progress: (line: string) => void): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  const options = { serverPids: target.pids, counters: () => target.counters() };
  for (const clientCount of SWEEP_CLIENTS) {
    const clients = connect(target.endpoints, Math.min(clientCount, 8));
    try {
      const pick = (client: number) => clients[client % clients.length]!;
      progress(`${label}: sweep, ${clientCount} clients, ${seconds}s each`);
      results.push(
        await runLoad(`${label} Put @${clientCount}`, clientCount, seconds, async (client, sequence) => {
          await call(pick(client), 'Put', { key: Buffer.from(`sweep/${(client * 7919 + sequence) % KEY_SPACE}`), value: VALUE });
        }, options),
      );
      results.push(
        await runLoad(`${label} Range linearizable @${clientCount}`, clientCount, seconds, async (client, sequence) => {
          await call(pick(client), 'Range', { key: Buffer.from(`sweep/${(client * 7919 + sequence) % KEY_SPACE}`) });
        }, options),
      );
    } finally {
      for (const client of clients) client.close();
    }
  }
  return results;
}

/** A three-member etcd 3.4 on loopback, in a temp directory; `stop()` removes everything. */
export async function startReferenceEtcd(): Promise<BenchTarget | undefined> {
  if (!fs.existsSync('/usr/bin/etcd')) return undefined;
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-bench-etcd-'));
  const members = await Promise.all([1, 2, 3].map(async (n) => ({ name: `e${n}`, client: await pickFreePort(), peer: await pickFreePort() })));
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const processes: ChildProcess[] = members.map((m) =>
    spawn(
      '/usr/bin/etcd',
      [
        '--name', m.name,
        '--data-dir', path.join(directory, m.name),
        '--listen-client-urls', `http://127.0.0.1:${m.client}`,
        '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', 'raftkv-bench',
        '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', fs.openSync(path.join(directory, `${m.name}.log`), 'a')] },
    ),
  );
  const stop = async () => {
    await Promise.all(
      processes.map((child) =>
        child.exitCode !== null || child.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
      ),
    );
    fs.rmSync(directory, { recursive: true, force: true });
  };
  const metricsUrls = members.map((m) => `http://127.0.0.1:${m.client}/metrics`);
  return { endpoints: members.map((m) => `127.0.0.1:${m.client}`), counters: () => scrapeCounters(metricsUrls, ETCD_COUNTERS), pids: processes.map((child) => child.pid ?? 0).filter((pid) => pid > 0), stop };
}

/** Starts a three-node raftkv cluster (direct peer links) serving the etcd API; returns its endpoints. */
export async function startRaftkvForEtcdBench(cliPath: string): Promise<BenchTarget> {
  const cluster = await Cluster.start({ size: 3, cliPath, tickMs: 100, electionTicks: 10, heartbeatTicks: 1, requestTimeoutMs: 5000, direct: true });
  await cluster.waitUntilHealthy(30_000);
  const ids = cluster.runningIds();
  return {
    endpoints: ids.map((id) => cluster.etcdEndpoint(id)),
    pids: ids.map((id) => cluster.pidOf(id) ?? 0).filter((pid) => pid > 0),
    counters: () => scrapeCounters(ids.map((id) => `http://127.0.0.1:${cluster.httpEndpoint(id).port}/-/metrics`), RAFTKV_COUNTERS),
    stop: () => cluster.stop({ removeRunDirectory: true }),
  };
}
