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
import { etcdServiceDefinition, type EtcdServiceName, type ProtoObject } from '../src/api/grpc/etcd-proto';
import { Cluster, pickFreePort } from '../src/testing/jepsen/cluster';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { combineResults, runLoad, type LoadResult } from './load';

const VALUE = Buffer.alloc(256, 'v');
const KEY_SPACE = 10_000;

type UnaryMethod = (
  request: ProtoObject,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: ProtoObject) => void,
) => void;

/** A grpc-js client of one etcd service (KV, Cluster, Maintenance, ...); call it with {@link unary}. */
export type EtcdClient = grpc.Client & { readonly [method: string]: UnaryMethod };

type EtcdClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => EtcdClient;

const clientConstructors = new Map<EtcdServiceName, EtcdClientConstructor>();

/**
 * Channel options of every benchmark client: its own connection (not shared with the other
 * clients of this process), and a reconnect backoff of at most 100 ms instead of grpc-js's 1 s
 * growing to 2 min, so a client polling a member that restarts sees it as soon as it listens.
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.initial_reconnect_backoff_ms': 20,
  'grpc.max_reconnect_backoff_ms': 100,
  'grpc.enable_channelz': 0,
};

/** A client of etcd service `service` on its own gRPC channel to `endpoint` (`host:port`). */
export function etcdClient(service: EtcdServiceName, endpoint: string): EtcdClient {
  let constructor = clientConstructors.get(service);
  if (constructor === undefined) {
    constructor = grpc.makeGenericClientConstructor(etcdServiceDefinition(service), service) as unknown as EtcdClientConstructor;
    clientConstructors.set(service, constructor);
  }
  return new constructor(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

/** Calls unary method `method` of `client`; rejects with `<code>: <details>` (and after `timeoutMs`, if given). */
export function unary(client: EtcdClient, method: string, request: ProtoObject, timeoutMs?: number): Promise<ProtoObject> {
  const callable = client[method];
  if (callable === undefined) throw new Error(`no method ${method}`);
  const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
  return new Promise((resolve, reject) => {
    callable.call(client, request, options, (error, response) => (error !== null ? reject(new Error(`${error.code}: ${error.details}`)) : resolve(response ?? {})));
  });
}

/** Maintenance.Status of the member at `endpoint` (leader, raftIndex, raftTerm, ...), on a client of its own. */
export async function memberStatus(endpoint: string): Promise<ProtoObject> {
  const client = etcdClient('Maintenance', endpoint);
  try {
    return await unary(client, 'Status', {}, 5000);
  } finally {
    client.close();
  }
}

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
        const status = await memberStatus(endpoint).catch(() => undefined);
        const header = status?.['header'] as ProtoObject | undefined;
        if (status?.['leader'] !== undefined && status['leader'] === header?.['member_id']) return endpoint;
      }
      return undefined;
    },
    { timeoutMs: 30_000, description: 'the leader' },
  );
}

/** `connections` separate KV clients spread round-robin over `endpoints`. */
export function connect(endpoints: readonly string[], connections: number): EtcdClient[] {
  return Array.from({ length: connections }, (_, index) => etcdClient('KV', endpoints[index % endpoints.length]!));
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

/**
 * Seconds of unmeasured load (Puts and Ranges, 64 clients) each system gets before its first
 * measured workload. V8 is still compiling raftkv's hot paths during the first seconds under load
 * (with `perf`: its compiler threads took about 30 % of the nodes' CPU 8 s in, about 5 % at 30 s),
 * and the same cluster measured again right after cost 20–45 % less CPU per Put; the figures are
 * meant to be steady state. etcd gets the same warm-up.
 */
export const WARMUP_SECONDS = 15;

const warmedUp = new WeakSet<BenchTarget>();

/** Waits until `target` takes a Put, then loads it for {@link WARMUP_SECONDS} (once per target). */
async function warmUp(label: string, target: BenchTarget, progress: (line: string) => void): Promise<void> {
  const clients = connect(target.endpoints, 8);
  try {
    await waitUntil(async () => {
      await unary(clients[0]!, 'Put', { key: Buffer.from('warmup'), value: VALUE });
      return true;
    }, { timeoutMs: 30_000, description: `${label} to accept a Put` });
    if (warmedUp.has(target)) return;
    warmedUp.add(target);
    progress(`${label}: warm-up, Puts and Ranges from 64 clients for ${WARMUP_SECONDS}s (not measured)`);
    await runLoad(`${label} warm-up`, 64, WARMUP_SECONDS, async (client, sequence) => {
      const key = Buffer.from(`bench/${(client * 7919 + sequence) % KEY_SPACE}`);
      const connection = clients[client % clients.length]!;
      if (sequence % 2 === 0) await unary(connection, 'Put', { key, value: VALUE });
      else await unary(connection, 'Range', { key, serializable: sequence % 4 === 1 });
    });
  } finally {
    for (const client of clients) client.close();
  }
}

/**
 * One workload of the comparison: `run` measures it against one system for `seconds` (with
 * runLoad's unmeasured second before) and names the result `<label> <name>`.
 */
export interface Workload {
  readonly name: string;
  /** What the progress line says it does. */
  readonly description: string;
  run(label: string, target: BenchTarget, seconds: number): Promise<LoadResult>;
}

/**
 * Sends `request`s from `clients` clients over `connections` connections spread over the
 * `endpoints` of the target (by default all its members).
 */
function spreadWorkload(
  name: string,
  description: string,
  clients: number,
  connections: number,
  request: (sequence: number, client: number) => { method: string; body: ProtoObject },
  endpoints: (target: BenchTarget) => Promise<readonly string[]> = async (target) => target.endpoints,
): Workload {
  return {
    name,
    description,
    async run(label, target, seconds) {
      const channels = connect(await endpoints(target), connections);
      try {
        return await runLoad(`${label} ${name}`, clients, seconds, async (client, sequence) => {
          const { method, body } = request(sequence, client);
          await unary(channels[client % channels.length]!, method, body);
        }, { serverPids: target.pids, counters: () => target.counters() });
      } finally {
        for (const channel of channels) channel.close();
      }
    },
  };
}

const benchKey = (prefix: string, client: number, sequence: number) => Buffer.from(`${prefix}/${(client * 7919 + sequence) % KEY_SPACE}`);

/** The etcd-API workloads whose ratios are the targets: Put at 64 clients and at 1, Range both ways. */
export const ETCD_WORKLOADS: readonly Workload[] = [
  spreadWorkload('Put, 64 clients / 8 conns', 'Put, 64 clients over 8 connections', 64, 8, (sequence, client) => ({ method: 'Put', body: { key: benchKey('bench', client, sequence), value: VALUE } })),
  spreadWorkload(
    'Put, 1 client (leader)',
    'Put, 1 client (on the leader)',
    1,
    1,
    (sequence, client) => ({ method: 'Put', body: { key: benchKey('bench', client, sequence), value: VALUE } }),
    async (target) => [await leaderEndpoint(target.endpoints)],
  ),
  ...[false, true].map((serializable) => {
    const mode = serializable ? 'serializable' : 'linearizable';
    return spreadWorkload(`Range ${mode}, 64 clients / 8 conns`, `Range ${mode}, 64 clients over 8 connections`, 64, 8, (sequence, client) => ({
      method: 'Range',
      body: { key: benchKey('bench', client, sequence), serializable },
    }));
  }),
];

/** Client counts of the concurrency sweep. */
export const SWEEP_CLIENTS: readonly number[] = [1, 8, 64, 256];

/**
 * The concurrency sweep: Put and linearizable Range at each of {@link SWEEP_CLIENTS} clients
 * (over min(clients, 8) connections), so the scaling curve is visible. Results are named
 * `<label> <workload> @<clients>`.
 */
export const SWEEP_WORKLOADS: readonly Workload[] = SWEEP_CLIENTS.flatMap((clients) => [
  spreadWorkload(`Put @${clients}`, `sweep, Put, ${clients} clients`, clients, Math.min(clients, 8), (sequence, client) => ({ method: 'Put', body: { key: benchKey('sweep', client, sequence), value: VALUE } })),
  spreadWorkload(`Range linearizable @${clients}`, `sweep, Range linearizable, ${clients} clients`, clients, Math.min(clients, 8), (sequence, client) => ({
    method: 'Range',
    body: { key: benchKey('sweep', client, sequence) },
  })),
]);

/** A system under test and the label its results carry. */
export interface LabelledTarget {
  readonly label: string;
  readonly target: BenchTarget;
}

/** Measures each workload against one system, `seconds` each. */
export async function runWorkloads(system: LabelledTarget, workloads: readonly Workload[], seconds: number, progress: (line: string) => void): Promise<LoadResult[]> {
  await warmUp(system.label, system.target, progress);
  const results: LoadResult[] = [];
  for (const workload of workloads) {
    progress(`${system.label}: ${workload.description}, ${seconds}s`);
    results.push(await workload.run(system.label, system.target, seconds));
  }
  return results;
}

/**
 * Measures each workload against both systems, taking turns: A, B, B, A, each for half of
 * `seconds`, and combines each system's two halves (see combineResults). Both clusters run
 * throughout, the idle one only heartbeating. Measured one system after the other, the two
 * figures of a workload were minutes apart, and this shared host's speed drifts by 10 % and more
 * over minutes (docs/PERFORMANCE.md, "Run-to-run spread"); in turns, a drift that is steady over
 * the four runs weighs on both systems alike.
 */
export async function runWorkloadsInTurns(
  first: LabelledTarget,
  second: LabelledTarget,
  workloads: readonly Workload[],
  seconds: number,
  progress: (line: string) => void,
): Promise<[LoadResult[], LoadResult[]]> {
  await warmUp(first.label, first.target, progress);
  await warmUp(second.label, second.target, progress);
  const half = seconds / 2;
  const firstResults: LoadResult[] = [];
  const secondResults: LoadResult[] = [];
  for (const workload of workloads) {
    progress(`${first.label} / ${second.label} in turns (A B B A): ${workload.description}, 4 × ${half}s`);
    const parts: Record<'first' | 'second', LoadResult[]> = { first: [], second: [] };
    for (const turn of ['first', 'second', 'second', 'first'] as const) {
      const system = turn === 'first' ? first : second;
      parts[turn].push(await workload.run(system.label, system.target, half));
    }
    firstResults.push(combineResults(`${first.label} ${workload.name}`, parts.first));
    secondResults.push(combineResults(`${second.label} ${workload.name}`, parts.second));
  }
  return [firstResults, secondResults];
}

/** Options of {@link startReferenceEtcd}. */
export interface ReferenceEtcdOptions {
  /** More flags for every member, after the defaults (a flag given twice: the last wins). */
  readonly extraFlags?: readonly string[];
}

/**
 * A three-member etcd 3.4 under test, with process control for the benchmarks that stop,
 * restart and add members. Members are numbered from 0 in the order they were created.
 */
export interface ReferenceEtcd extends BenchTarget {
  /** The client endpoint (`127.0.0.1:port`) of member `index`. */
  endpointOf(index: number): string;
  /** The OS process ID of member `index` while it runs. */
  pidOf(index: number): number | undefined;
  /** SIGKILLs member `index` and resolves once it has exited. */
  kill(index: number): Promise<void>;
  /** Starts a killed member again with the same data directory and flags. */
  restart(index: number): void;
  /**
   * Adds a member: picks its ports, lets `register` announce its peer URL to the cluster
   * (MemberAdd), then starts it with `--initial-cluster-state existing` and the full
   * `--initial-cluster` list. Resolves with its index once it is spawned.
   */
  addMember(register: (peerUrl: string) => Promise<void>): Promise<number>;
  /** Everything member `index` has logged so far (stderr), across restarts. */
  logOf(index: number): string;
}

interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly initialCluster: string;
  readonly state: 'new' | 'existing';
  process: ChildProcess | undefined;
}

function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function killProcess(child: ChildProcess | undefined): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/**
 * A three-member etcd 3.4 on loopback, in a temp directory (undefined when /usr/bin/etcd is not
 * installed); `stop()` kills every member and removes everything.
 */
export async function startReferenceEtcd(options: ReferenceEtcdOptions = {}): Promise<ReferenceEtcd | undefined> {
  if (!fs.existsSync('/usr/bin/etcd')) return undefined;
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-bench-etcd-'));
  const peerUrl = (member: { readonly peerPort: number }) => `http://127.0.0.1:${member.peerPort}`;
  const members: EtcdMember[] = [];
  const member = (index: number): EtcdMember => {
    const found = members[index];
    if (found === undefined) throw new Error(`no etcd member ${index}`);
    return found;
  };
  const logFile = (m: EtcdMember) => path.join(directory, `${m.name}.log`);
  const spawnMember = (m: EtcdMember) => {
    m.process = spawn(
      '/usr/bin/etcd',
      [
        '--name', m.name,
        '--data-dir', path.join(directory, m.name),
        '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', peerUrl(m),
        '--initial-advertise-peer-urls', peerUrl(m),
        '--initial-cluster', m.initialCluster,
        '--initial-cluster-state', m.state,
        '--initial-cluster-token', 'raftkv-bench',
        '--log-level', 'error',
        ...(options.extraFlags ?? []),
      ],
      { stdio: ['ignore', 'ignore', fs.openSync(logFile(m), 'a')] },
    );
  };
  const newMember = async (name: string) => ({ name, clientPort: await pickFreePort(), peerPort: await pickFreePort() });
  const initial = await Promise.all([1, 2, 3].map((n) => newMember(`e${n}`)));
  const initialCluster = initial.map((m) => `${m.name}=${peerUrl(m)}`).join(',');
  for (const m of initial) members.push({ ...m, initialCluster, state: 'new', process: undefined });
  members.forEach(spawnMember);
  return {
    endpoints: members.map((m) => `127.0.0.1:${m.clientPort}`),
    pids: members.map((m) => m.process?.pid ?? 0).filter((pid) => pid > 0),
    counters: () => scrapeCounters(members.map((m) => `http://127.0.0.1:${m.clientPort}/metrics`), ETCD_COUNTERS),
    endpointOf: (index) => `127.0.0.1:${member(index).clientPort}`,
    pidOf: (index) => {
      const child = member(index).process;
      return isRunning(child) ? child.pid : undefined;
    },
    kill: (index) => killProcess(member(index).process),
    restart: (index) => {
      if (isRunning(member(index).process)) throw new Error(`etcd member ${index} is running`);
      spawnMember(member(index));
    },
    addMember: async (register) => {
      const added = await newMember(`e${members.length + 1}`);
      await register(peerUrl(added));
      const everyone = [...members, added].map((m) => `${m.name}=${peerUrl(m)}`).join(',');
      const record: EtcdMember = { ...added, initialCluster: everyone, state: 'existing', process: undefined };
      members.push(record);
      spawnMember(record);
      return members.length - 1;
    },
    logOf: (index) => {
      const file = logFile(member(index));
      return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    },
    stop: async () => {
      await Promise.all(members.map((m) => killProcess(m.process)));
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** A three-node raftkv cluster under test, with the harness for process control. */
export interface RaftkvTarget extends BenchTarget {
  readonly cluster: Cluster;
}

/**
 * Starts a three-node raftkv cluster (direct peer links) serving the etcd API, with `extraFlags`
 * for every node; resolves once every node reports healthy.
 */
export async function startRaftkvForEtcdBench(cliPath: string, extraFlags: readonly string[] = []): Promise<RaftkvTarget> {
  const cluster = await Cluster.start({ size: 3, cliPath, tickMs: 100, electionTicks: 10, heartbeatTicks: 1, requestTimeoutMs: 5000, direct: true, extraFlags });
  const stop = () => cluster.stop({ removeRunDirectory: true });
  try {
    await cluster.waitUntilHealthy(30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const ids = cluster.runningIds();
  return {
    cluster,
    endpoints: ids.map((id) => cluster.etcdEndpoint(id)),
    pids: ids.map((id) => cluster.pidOf(id) ?? 0).filter((pid) => pid > 0),
    counters: () => scrapeCounters(ids.map((id) => `http://127.0.0.1:${cluster.httpEndpoint(id).port}/-/metrics`), RAFTKV_COUNTERS),
    stop,
  };
}
