/**
 * Process harness of the cache tier tests: a store target and cache node processes
 * (`raftkv cache`, the compiled CLI) on 127.0.0.1, with logs in a temp directory.
 *
 * THE STORE TARGET IS ONE FUNCTION, {@link startStoreTarget}: a three-node raftkv cluster (real
 * processes); with RAFTKV_CACHE_STORE=etcd, a real etcd 3.4 instead — the cache works against
 * either, through the etcd3 client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { pickFreePort } from '../../src/testing/jepsen/cluster';
import { httpRequest, type HttpOutcome } from '../../src/testing/jepsen/http-client';
import { waitUntil } from '../../src/testing/jepsen/wait-until';
import { EtcdReferenceCluster } from './etcd-reference';
import { CLI_PATH, startReadyCluster } from './cluster-helpers';

/** A store the cache nodes can use: etcd v3 endpoints and a way to stop it. */
export interface StoreTarget {
  readonly endpoints: readonly string[];
  readonly description: string;
  stop(): Promise<void>;
}

/** Starts the store the cache tests run against (see the module overview). */
export async function startStoreTarget(): Promise<StoreTarget> {
  if (process.env['RAFTKV_CACHE_STORE'] === 'etcd') {
    const etcd = await EtcdReferenceCluster.start({ memberCount: 1 });
    return { endpoints: etcd.endpoints(), description: 'etcd 3.4 (reference)', stop: () => etcd.stop() };
  }
  const cluster = await startReadyCluster(3);
  return {
    endpoints: cluster.memberIds().map((id) => cluster.etcdEndpoint(id)),
    description: 'raftkv (3 nodes)',
    stop: () => cluster.stop({ removeRunDirectory: true }),
  };
}

/** An etcd3 client of the store. */
export function storeClient(store: StoreTarget): Etcd3 {
  return new Etcd3({ hosts: store.endpoints.map((endpoint) => `http://${endpoint}`), dialTimeout: 5000 });
}

/** One `raftkv cache` process. */
export class CacheProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    readonly peerPort: number,
    readonly httpPort: number,
    private readonly args: readonly string[],
    readonly logFile: string,
  ) {}

  /** The ring identity. */
  get address(): string {
    return `127.0.0.1:${this.peerPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, [CLI_PATH, 'cache', ...this.args], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
  }

  /** SIGKILL (no lease revoke: the node must vanish by lease expiry); waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /** An HTTP request to this node's front. */
  request(method: string, urlPath: string, body?: string, timeoutMs = 10_000): Promise<HttpOutcome> {
    return httpRequest({ host: '127.0.0.1', port: this.httpPort }, method, urlPath, body, timeoutMs);
  }

  /** The `/_cache/-/stats` JSON. */
  async stats(): Promise<CacheStats> {
    const outcome = await this.request('GET', '/_cache/-/stats');
    if (outcome.kind !== 'response' || outcome.status !== 200) throw new Error(`stats of ${this.name}: ${JSON.stringify(outcome)}`);
    return JSON.parse(outcome.body) as CacheStats;
  }
}

/** The subset of the stats JSON the tests read. */
export interface CacheStats {
  name: string;
  address: string;
  ring: { members: string[] };
  totals: Record<string, number>;
  groups: Record<string, Record<string, number>>;
}

/** A set of cache nodes sharing one store and one run directory. */
export class CacheTier {
  readonly nodes: CacheProcess[] = [];
  private readonly exitHook = (): void => {
    for (const node of this.nodes) if (node.running) void node.kill();
  };

  private constructor(readonly runDirectory: string) {
    process.on('exit', this.exitHook);
  }

  /** Starts `count` nodes with `extraArgs` and waits until every ring has every node. */
  static async start(store: StoreTarget, count: number, extraArgs: readonly string[] = []): Promise<CacheTier> {
    const tier = new CacheTier(fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-cache-')));
    const used = new Set<number>();
    const port = async (): Promise<number> => {
      for (;;) {
        const candidate = await pickFreePort();
        if (!used.has(candidate)) {
          used.add(candidate);
          return candidate;
        }
      }
    };
    for (let index = 1; index <= count; index++) {
      const name = `c${index}`;
      const peerPort = await port();
      const httpPort = await port();
      const args = ['--name', name, '--listen', `127.0.0.1:${peerPort}`, '--endpoints', store.endpoints.join(','), '--http-port', String(httpPort), '--log-level', 'debug', ...extraArgs];
      const node = new CacheProcess(name, peerPort, httpPort, args, path.join(tier.runDirectory, `${name}.log`));
      tier.nodes.push(node);
      node.start();
    }
    await tier.waitForRings(tier.nodes, tier.nodes.map((node) => node.address), 30_000);
    return tier;
  }

  /** Waits until every node in `on` has exactly `members` on its ring; returns the time waited (ms). */
  async waitForRings(on: readonly CacheProcess[], members: readonly string[], timeoutMs: number): Promise<number> {
    const expected = [...members].sort().join(',');
    const started = performance.now();
    await waitUntil(
      async () => {
        for (const node of on) {
          const stats = await node.stats();
          if (stats.ring.members.join(',') !== expected) return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 25, description: `rings of ${on.map((node) => node.name).join(',')} to be ${expected}` },
    );
    return performance.now() - started;
  }

  /** The last lines of every node's log. */
  logTails(lineCount = 25): string {
    return this.nodes
      .map((node) => {
        let text = '(no log)';
        try {
          text = fs.readFileSync(node.logFile, 'utf8').trimEnd().split('\n').slice(-lineCount).join('\n');
        } catch {
          // none
        }
        return `--- ${node.name}\n${text}`;
      })
      .join('\n');
  }

  /** Kills every node and removes the run directory. */
  async stop(): Promise<void> {
    for (const node of this.nodes) await node.kill();
    process.off('exit', this.exitHook);
    fs.rmSync(this.runDirectory, { recursive: true, force: true });
  }
}

/** A response or a thrown error describing how the request ended. */
export async function expectResponse(outcome: Promise<HttpOutcome>): Promise<Extract<HttpOutcome, { kind: 'response' }>> {
  const result = await outcome;
  if (result.kind !== 'response') throw new Error(`request failed: ${result.code} ${result.message}`);
  return result;
}
