/**
 * A cluster of real raftkv node processes on 127.0.0.1 with a TCP proxy on every directed
 * peer link, for fault injection.
 *
 * Wiring. Node k (1-based) has a real peer port P_k and an HTTP port H_k. For every ordered pair
 * j ≠ i there is a proxy (j→i) forwarding to 127.0.0.1:P_i. Node j's `--cluster` list holds its
 * own real URL at its own position and, at position i, the address of proxy (j→i); so every
 * connection j opens to i crosses proxy (j→i). The cluster ID is derived from member IDs and
 * the cluster token, not from URLs, so per-node lists are allowed (docs/CONTRACTS.md).
 *
 * Faults:
 * - network: {@link Cluster.partition} (both directions), {@link Cluster.partitionOneWay},
 *   {@link Cluster.isolate}, {@link Cluster.heal}; a dropped proxy blackholes (tcp-proxy.ts);
 * - process: {@link Cluster.kill} (SIGKILL) and {@link Cluster.restart} (same data directory,
 *   same flags), {@link Cluster.pause} (SIGSTOP) and {@link Cluster.resume} (SIGCONT);
 * - membership: {@link Cluster.addMember} (`POST /<id>` with its peer URL, then start it with
 *   `--join`) and {@link Cluster.removeMember} (`DELETE /<id>`).
 *
 * Limitation of members added at run time: the conf change carries ONE peer URL that every
 * member uses to reach the new node, so all traffic TO an added node crosses one shared
 * inbound proxy. `isolate()` and links FROM the added node work as for initial members; a
 * partition of a single link TO an added node is refused with an error.
 *
 * Every node's stdout and stderr go to `<runDirectory>/node-<id>.log` (appended across
 * restarts); {@link Cluster.logTails} returns their ends for failure reports. {@link Cluster.stop}
 * kills every process and closes every proxy; a process 'exit' hook kills the nodes even if
 * the caller crashes first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { httpRequest, type HttpClientTls, type HttpEndpoint } from './http-client';
import { TcpProxy } from './tcp-proxy';
import { waitUntil } from './wait-until';

/** How to build and run the nodes. */
export interface ClusterOptions {
  /** Initial members. */
  readonly size: number;
  /** The node CLI, e.g. `dist/src/cli/main.js`. */
  readonly cliPath: string;
  /** Where data directories and logs go; a fresh temp directory by default. */
  readonly runDirectory?: string;
  /** `--tick-ms`. */
  readonly tickMs: number;
  /** `--election-ticks`. */
  readonly electionTicks: number;
  /** `--heartbeat-ticks`. */
  readonly heartbeatTicks: number;
  /** `--request-timeout` in ms (passed as `<n>ms`). */
  readonly requestTimeoutMs: number;
  /** More flags for every node, e.g. `['--snapshot-count', '100']`. */
  readonly extraFlags?: readonly string[];
  /**
   * No proxies: nodes reach each other directly (for benchmarks), members added at run time
   * included. Network faults are then unavailable; process faults still work.
   */
  readonly direct?: boolean;
  /** Scheme of every peer URL (`https` for peer TLS, with the certificates in the flags). Default http. */
  readonly peerScheme?: 'http' | 'https';
  /** More flags for one node, after `extraFlags` (e.g. its own certificate); asked at every (re)start. */
  readonly extraFlagsFor?: (id: number) => readonly string[];
  /** When the nodes serve the HTTP API over https: how the harness (and its users) reach it. */
  readonly httpClientTls?: HttpClientTls;
  /**
   * Runs before each initial member is first started, e.g. to seed its data directory with
   * `raftkv snapshot restore` (its --cluster list is `clusterUrls`).
   */
  readonly prepareDataDirectory?: (node: { readonly id: number; readonly dataDirectory: string; readonly clusterUrls: readonly string[] }) => Promise<void>;
}

/** The state of one node process as the harness knows it. */
export type NodeProcessState = 'running' | 'paused' | 'killed' | 'exited' | 'removed';

interface NodeRecord {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  /** Port of the node's etcd v3 gRPC API. */
  readonly etcdPort: number;
  readonly dataDirectory: string;
  readonly logFile: string;
  readonly clusterUrls: string[];
  readonly join: boolean;
  /** The member ID passed as --id when it differs from the harness index (etcd MemberAdd IDs). */
  memberId?: string;
  process: ChildProcess | undefined;
  state: NodeProcessState;
  exitDescription: string | undefined;
}

const HOST = '127.0.0.1';

/**
 * A free TCP port on 127.0.0.1, chosen at random BELOW the kernel's ephemeral range (Linux
 * default 32768–60999) and checked by binding it. Ports a node will bind later must not come from
 * the ephemeral range: the kernel hands those out as source ports of outgoing connections (ours
 * and the proxies'), and as port-0 listeners, between our pick and the node's bind.
 */
export async function pickFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port found in 10000-31999 after 200 attempts');
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** A running cluster. Create with {@link Cluster.start}; always {@link Cluster.stop} it. */
export class Cluster {
  private readonly nodes = new Map<number, NodeRecord>();
  /** Proxies by `from->to`; `*->to` is the shared inbound proxy of a member added at run time. */
  private readonly proxies = new Map<string, TcpProxy>();
  private readonly usedPorts = new Set<number>();
  private nextId: number;
  private readonly exitHook = (): void => this.killAllSync();

  private constructor(
    private readonly options: ClusterOptions,
    /** The directory holding data directories and logs. */
    readonly runDirectory: string,
  ) {
    this.nextId = options.size + 1;
    process.on('exit', this.exitHook);
  }

  /** Allocates ports and proxies, starts every initial member, and resolves once spawned. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    if (!fs.existsSync(options.cliPath)) throw new Error(`node CLI not found at ${options.cliPath} (run npx tsc -p . first)`);
    const runDirectory = options.runDirectory ?? fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-jepsen-'));
    fs.mkdirSync(runDirectory, { recursive: true });
    const cluster = new Cluster(options, runDirectory);
    try {
      const ids = Array.from({ length: options.size }, (_, index) => index + 1);
      const peerPorts = new Map<number, number>();
      const httpPorts = new Map<number, number>();
      const etcdPorts = new Map<number, number>();
      for (const id of ids) {
        peerPorts.set(id, await cluster.freshPort());
        httpPorts.set(id, await cluster.freshPort());
        etcdPorts.set(id, await cluster.freshPort());
      }
      for (const from of ids) {
        for (const to of ids) {
          if (from === to || options.direct === true) continue;
          cluster.proxies.set(`${from}->${to}`, await TcpProxy.start({ targetHost: HOST, targetPort: peerPorts.get(to) as number, listenPort: await cluster.freshPort() }));
        }
      }
      for (const id of ids) {
        const clusterUrls = ids.map((other) =>
          other === id || options.direct === true ? cluster.peerUrl(peerPorts.get(other) as number) : cluster.peerUrl(cluster.proxy(id, other).port),
        );
        cluster.nodes.set(id, cluster.newRecord(id, peerPorts.get(id) as number, httpPorts.get(id) as number, etcdPorts.get(id) as number, clusterUrls, false));
      }
      for (const id of ids) {
        const node = cluster.node(id);
        await options.prepareDataDirectory?.({ id, dataDirectory: node.dataDirectory, clusterUrls: node.clusterUrls });
        cluster.spawnNode(id);
      }
    } catch (error) {
      await cluster.stop({ removeRunDirectory: false });
      throw error;
    }
    return cluster;
  }

  /** IDs of current members (not removed), ascending. */
  memberIds(): number[] {
    return [...this.nodes.values()].filter((node) => node.state !== 'removed').map((node) => node.id);
  }

  /** IDs of members whose process is running (not paused, killed or exited). */
  runningIds(): number[] {
    return [...this.nodes.values()].filter((node) => node.state === 'running').map((node) => node.id);
  }

  /** The harness's view of a node's process. */
  stateOf(id: number): NodeProcessState {
    return this.node(id).state;
  }

  /** A node's HTTP API. */
  httpEndpoint(id: number): HttpEndpoint {
    const port = this.node(id).httpPort;
    return this.options.httpClientTls === undefined ? { host: HOST, port } : { host: HOST, port, tls: this.options.httpClientTls };
  }

  /** HTTP endpoints of every current member (whatever the state of its process). */
  memberEndpoints(): HttpEndpoint[] {
    return this.memberIds().map((id) => this.httpEndpoint(id));
  }

  /** True if both directions between `a` and `b` have their own proxy (see the overview). */
  canPartitionLink(from: number, to: number): boolean {
    return this.proxies.has(`${from}->${to}`);
  }

  /** Blackholes both directions between `a` and `b`. */
  partition(a: number, b: number): void {
    this.proxy(a, b).setMode({ kind: 'drop' });
    this.proxy(b, a).setMode({ kind: 'drop' });
  }

  /** Blackholes the connections `from` opens to `to` (both ways on those connections). */
  partitionOneWay(from: number, to: number): void {
    this.proxy(from, to).setMode({ kind: 'drop' });
  }

  /** Delays every chunk on the links between `a` and `b` by `delayMs`. */
  slowLink(a: number, b: number, delayMs: number): void {
    this.proxy(a, b).setMode({ kind: 'delay', delayMs });
    this.proxy(b, a).setMode({ kind: 'delay', delayMs });
  }

  /** Blackholes every link into and out of `id`. */
  isolate(id: number): void {
    for (const [name, proxy] of this.proxies) {
      const [from, to] = name.split('->');
      if (from === String(id) || to === String(id)) proxy.setMode({ kind: 'drop' });
    }
  }

  /** Returns every proxy to pass. */
  heal(): void {
    for (const proxy of this.proxies.values()) proxy.setMode({ kind: 'pass' });
  }

  /** SIGKILLs a node and resolves once it has exited. */
  async kill(id: number): Promise<void> {
    const node = this.node(id);
    const child = node.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    node.state = 'killed';
  }

  /** Starts a killed or exited node again with the same data directory and flags. */
  restart(id: number): void {
    const node = this.node(id);
    if (node.state !== 'killed' && node.state !== 'exited') throw new Error(`node ${id} is ${node.state}, not stopped`);
    this.spawnNode(id);
  }

  /** SIGSTOPs a running node. */
  pause(id: number): void {
    const node = this.node(id);
    if (node.state !== 'running' || node.process === undefined) throw new Error(`node ${id} is ${node.state}`);
    node.process.kill('SIGSTOP');
    node.state = 'paused';
  }

  /** SIGCONTs a paused node. */
  resume(id: number): void {
    const node = this.node(id);
    if (node.state !== 'paused' || node.process === undefined) return;
    node.process.kill('SIGCONT');
    node.state = 'running';
  }

  /** Resumes paused nodes and restarts killed or exited ones (removed ones stay down). */
  reviveAll(): void {
    for (const node of this.nodes.values()) {
      if (node.state === 'paused') this.resume(node.id);
      else if (node.state === 'killed' || node.state === 'exited') this.restart(node.id);
    }
  }

  /**
   * Adds a member: allocates its ports and proxies, `POST /<id>` with its peer URL to running
   * members until one answers 204 (or 409: the change was already applied), then starts it with
   * `--join`. Resolves with the new ID.
   */
  async addMember(timeoutMs: number): Promise<number> {
    const id = this.nextId++;
    const peerPort = await this.freshPort();
    const httpPort = await this.freshPort();
    const etcdPort = await this.freshPort();
    const inboundPort = await this.inboundPeerPort(id, peerPort);
    const clusterUrls: string[] = [];
    for (let other = 1; other < id; other++) {
      const target = this.nodes.get(other);
      if (target === undefined) throw new Error(`no record of node ${other}`);
      clusterUrls.push(this.peerUrl(await this.outboundPeerPort(id, other, target.peerPort)));
    }
    clusterUrls.push(this.peerUrl(peerPort));
    this.nodes.set(id, this.newRecord(id, peerPort, httpPort, etcdPort, clusterUrls, true));
    const node = this.node(id);
    node.state = 'exited'; // a member, not started yet
    await this.membershipRequest('POST', id, this.peerUrl(inboundPort), timeoutMs);
    this.spawnNode(id);
    return id;
  }

  /**
   * Adds a member registered by `register` (for example `etcdctl member add --learner`), which
   * receives the peer URL every member should use to reach it and resolves with the member ID
   * the cluster assigned (decimal). Allocates ports and proxies as {@link addMember} does, then
   * starts the node with `--id <that ID> --join`. Resolves with the node's harness index (use it
   * with every other method; the member ID is only on its command line).
   */
  async addMemberWith(register: (peerUrl: string) => Promise<string>): Promise<number> {
    const index = this.nextId++;
    const peerPort = await this.freshPort();
    const httpPort = await this.freshPort();
    const etcdPort = await this.freshPort();
    const inboundPort = await this.inboundPeerPort(index, peerPort);
    const clusterUrls: string[] = [];
    for (let other = 1; other <= this.options.size; other++) {
      const target = this.node(other);
      clusterUrls.push(`http://${HOST}:${await this.outboundPeerPort(index, other, target.peerPort)}`);
    }
    this.nodes.set(index, this.newRecord(index, peerPort, httpPort, etcdPort, clusterUrls, true));
    const node = this.node(index);
    node.state = 'exited'; // a member, not started yet
    node.memberId = await register(`http://${HOST}:${inboundPort}`);
    this.spawnNode(index);
    return index;
  }

  /**
   * Removes a member with `DELETE /<id>` sent to another running member (retried on 503 until
   * `timeoutMs`), then waits for the removed node to shut itself down, killing it if it does
   * not within the same time.
   */
  async removeMember(id: number, timeoutMs: number): Promise<void> {
    await this.membershipRequest('DELETE', id, undefined, timeoutMs, id);
    const node = this.node(id);
    this.resume(id);
    try {
      await waitUntil(() => node.process === undefined || node.process.exitCode !== null || node.process.signalCode !== null, {
        timeoutMs,
        description: `removed node ${id} to exit`,
      });
    } catch {
      await this.kill(id);
    }
    node.state = 'removed';
  }

  /** Resolves once every running member answers `GET /-/health` with 200. */
  async waitUntilHealthy(timeoutMs: number): Promise<void> {
    await waitUntil(
      async () => {
        const ids = this.runningIds();
        if (ids.length === 0) return false;
        for (const id of ids) {
          const response = await httpRequest(this.httpEndpoint(id), 'GET', '/-/health', undefined, 1000);
          if (response.kind !== 'response' || response.status !== 200) return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 100, description: 'every running member to report healthy' },
    );
  }

  /** The last `lineCount` lines of every node's log, labelled. */
  logTails(lineCount = 40): string {
    const parts: string[] = [];
    for (const node of this.nodes.values()) {
      let text = '';
      try {
        text = fs.readFileSync(node.logFile, 'utf8');
      } catch {
        text = '(no log)';
      }
      const lines = text.trimEnd().split('\n');
      parts.push(`--- node ${node.id} (${node.state}${node.exitDescription === undefined ? '' : `, ${node.exitDescription}`}) ${node.logFile}`);
      parts.push(...lines.slice(-lineCount));
    }
    return parts.join('\n');
  }

  /** Kills every node, closes every proxy and, if asked, deletes the run directory. */
  async stop(options: { readonly removeRunDirectory: boolean }): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const node of this.nodes.values()) {
      const child = node.process;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(new Promise<void>((resolve) => child.once('exit', () => resolve())));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await Promise.all(exits);
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.close()));
    this.proxies.clear();
    process.off('exit', this.exitHook);
    if (options.removeRunDirectory) fs.rmSync(this.runDirectory, { recursive: true, force: true });
  }

  /** The OS process ID of node `id` while it runs (for CPU accounting), or undefined. */
  pidOf(id: number): number | undefined {
    const child = this.node(id).process;
    return child === undefined || child.exitCode !== null || child.signalCode !== null ? undefined : child.pid;
  }

  /** Where node `id` serves the etcd v3 gRPC API (`host:port`, scheme-less as etcdctl takes it). */
  etcdEndpoint(id: number): string {
    return `${HOST}:${this.node(id).etcdPort}`;
  }

  /** The real peer port of node `id` on 127.0.0.1 (not a proxy), for tests that speak to it directly. */
  peerPortOf(id: number): number {
    return this.node(id).peerPort;
  }

  /** The data directory of node `id` (for tests that damage or inspect its files). */
  dataDirectoryOf(id: number): string {
    return this.node(id).dataDirectory;
  }

  /** How node `id` last exited ('exit code 0', 'signal SIGKILL'), or undefined while it runs. */
  exitDescriptionOf(id: number): string | undefined {
    return this.node(id).exitDescription;
  }

  /** Everything node `id` has logged so far, across restarts. */
  logOf(id: number): string {
    const file = this.node(id).logFile;
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  }

  /** Sends SIGTERM to node `id` and waits until it has exited (a clean shutdown). */
  async terminate(id: number, timeoutMs: number): Promise<void> {
    const node = this.node(id);
    const child = node.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await waitUntil(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs, description: `node ${id} to exit after SIGTERM` });
    node.state = 'exited';
  }

  /** The peer URL of a port on 127.0.0.1, with the configured scheme. */
  private peerUrl(port: number): string {
    return `${this.options.peerScheme ?? 'http'}://${HOST}:${port}`;
  }

  private node(id: number): NodeRecord {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  private proxy(from: number, to: number): TcpProxy {
    const proxy = this.proxies.get(`${from}->${to}`);
    if (proxy !== undefined) return proxy;
    if (this.proxies.has(`*->${to}`)) {
      throw new Error(`links to node ${to} (added at run time) share one proxy; use isolate(${to})`);
    }
    throw new Error(`no proxy ${from}->${to}`);
  }

  /**
   * The port every member uses to reach `id`, a member added at run time: its shared inbound
   * proxy, or its real peer port when the cluster is `direct` (no proxies at all).
   */
  private async inboundPeerPort(id: number, peerPort: number): Promise<number> {
    if (this.options.direct === true) return peerPort;
    const inbound = await TcpProxy.start({ targetHost: HOST, targetPort: peerPort, listenPort: await this.freshPort() });
    this.proxies.set(`*->${id}`, inbound);
    return inbound.port;
  }

  /** The port `from` (added at run time) uses to reach `to`: a proxy, or `to`'s real port when `direct`. */
  private async outboundPeerPort(from: number, to: number, peerPort: number): Promise<number> {
    if (this.options.direct === true) return peerPort;
    const outbound = await TcpProxy.start({ targetHost: HOST, targetPort: peerPort, listenPort: await this.freshPort() });
    this.proxies.set(`${from}->${to}`, outbound);
    return outbound.port;
  }

  private async freshPort(): Promise<number> {
    for (;;) {
      const port = await pickFreePort();
      if (!this.usedPorts.has(port)) {
        this.usedPorts.add(port);
        return port;
      }
    }
  }

  private newRecord(id: number, peerPort: number, httpPort: number, etcdPort: number, clusterUrls: string[], join: boolean): NodeRecord {
    const dataDirectory = path.join(this.runDirectory, `node-${id}`);
    return {
      id,
      peerPort,
      httpPort,
      etcdPort,
      dataDirectory,
      logFile: path.join(this.runDirectory, `node-${id}.log`),
      clusterUrls,
      join,
      process: undefined,
      state: 'exited',
      exitDescription: undefined,
    };
  }

  /** The full command line of a node; the same on every (re)start. */
  private flagsOf(node: NodeRecord): string[] {
    return [
      '--id', node.memberId ?? String(node.id),
      '--cluster', node.clusterUrls.join(','),
      '--port', String(node.httpPort),
      '--http-host', HOST,
      '--etcd-port', String(node.etcdPort),
      '--etcd-host', HOST,
      '--listen-peer', `${HOST}:${node.peerPort}`,
      '--data-dir', node.dataDirectory,
      '--tick-ms', String(this.options.tickMs),
      '--election-ticks', String(this.options.electionTicks),
      '--heartbeat-ticks', String(this.options.heartbeatTicks),
      '--request-timeout', `${this.options.requestTimeoutMs}ms`,
      ...(node.join ? ['--join'] : []),
      ...(this.options.extraFlags ?? []),
      ...(this.options.extraFlagsFor?.(node.id) ?? []),
    ];
  }

  private spawnNode(id: number): void {
    const node = this.node(id);
    const flags = this.flagsOf(node);
    const logDescriptor = fs.openSync(node.logFile, 'a');
    fs.writeSync(logDescriptor, `\n=== ${new Date().toISOString()} start: node ${this.options.cliPath} ${flags.join(' ')}\n`);
    const child = spawn(process.execPath, [this.options.cliPath, ...flags], {
      stdio: ['ignore', logDescriptor, logDescriptor],
    });
    fs.closeSync(logDescriptor);
    node.process = child;
    node.state = 'running';
    node.exitDescription = undefined;
    child.on('exit', (code, signal) => {
      if (node.process !== child) return;
      node.exitDescription = signal === null ? `exit code ${code}` : `signal ${signal}`;
      if (node.state === 'running' || node.state === 'paused') node.state = 'exited';
    });
  }

  /** Sends a membership change to running members other than `avoid` until it is answered. */
  private async membershipRequest(method: 'POST' | 'DELETE', id: number, body: string | undefined, timeoutMs: number, avoid?: number): Promise<void> {
    let lastAnswer = 'no member to ask';
    await waitUntil(
      async () => {
        for (const target of this.runningIds()) {
          if (target === avoid || target === id) continue;
          const answer = await httpRequest(this.httpEndpoint(target), method, `/${id}`, body, 5000);
          if (answer.kind === 'response') {
            lastAnswer = `${answer.status} ${answer.body.trim()}`;
            if (answer.status === 204) return true;
            if (method === 'POST' && answer.status === 409 && answer.errorCode === 'member-exists') return true;
            if (method === 'DELETE' && answer.status === 404 && answer.errorCode === 'member-not-found') return true;
          } else {
            lastAnswer = `${answer.code} ${answer.message}`;
          }
        }
        return false;
      },
      { timeoutMs, intervalMs: 200, description: `${method} /${id} to be applied` },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; last answer: ${lastAnswer}`);
    });
  }

  private killAllSync(): void {
    for (const node of this.nodes.values()) {
      const child = node.process;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
