/**
 * Cache tier benchmark (issue "The cache tier"): three `raftkv cache` nodes in front of a store.
 *
 * Workloads (256-byte values):
 * - HTTP hit: `GET /_cache/default/<key>` sent to each key's OWNER, so every request is a hit
 *   in the owner's main cache; 64 clients over keep-alive connections to the three nodes.
 * - gRPC hit: `CachePeer.Get` sent to each key's owner (a hit there); 64 clients over 8 channels
 *   per node.
 * - miss (owner loads): single client, `GET` of a key absent from the store on its owner: one
 *   linearizable store read per request (absent keys are never cached, so each is a miss).
 * - miss via peer: the same sent to a NON-owner: one peer call plus the owner's store read.
 *
 * `cacheBench` is the entry point for bench/main.ts: it uses the given store endpoints, or starts
 * a three-member reference etcd (bench/etcd-bench.ts) when none are given, and returns
 * LoadResults for `formatRow`. Run alone: `node dist/bench/cache-bench.js [--seconds N]`.
 */
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { HashRing } from '../src/cache/hash-ring';
import { PEER_GET_PATH, decodeGetResponse, encodeGetRequest } from '../src/cache/cache-proto';
import { CacheTier } from '../test/support/cache-helpers';
import { startReferenceEtcd } from './etcd-bench';
import { HttpClient, formatRow, runLoad, type LoadResult } from './load';

/** Options of {@link cacheBench}. */
export interface CacheBenchOptions {
  readonly seconds: number;
  /** etcd v3 endpoints of the store; default: a reference etcd started here. */
  readonly endpoints?: readonly string[];
  readonly progress?: (line: string) => void;
}

const KEY_COUNT = 100;
const VALUE = Buffer.alloc(256, 'v');

/** Runs every cache workload and returns one LoadResult per workload. */
export async function cacheBench(options: CacheBenchOptions): Promise<LoadResult[]> {
  const progress = options.progress ?? (() => undefined);
  let stopStore: (() => Promise<void>) | undefined;
  let endpoints = options.endpoints;
  if (endpoints === undefined) {
    const etcd = await startReferenceEtcd();
    if (etcd === undefined) throw new Error('no store endpoints given and /usr/bin/etcd is not installed');
    endpoints = etcd.endpoints;
    stopStore = etcd.stop;
  }
  const store = { endpoints, description: 'bench store', stop: async () => undefined };
  const tier = await CacheTier.start(store, 3, ['--hot-fraction', '0', '--log-level', 'warn']);
  const client = new Etcd3({ hosts: endpoints.map((endpoint) => `http://${endpoint}`) });
  const results: LoadResult[] = [];
  try {
    const keys = Array.from({ length: KEY_COUNT }, (_, index) => `bench-${index}`);
    await Promise.all(keys.map((key) => client.put(`/${key}`).value(VALUE)));
    const ring = new HashRing(tier.nodes.map((node) => node.address), 100);
    const nodeIndexOf = (address: string): number => tier.nodes.findIndex((node) => node.address === address);
    const ownerIndex = keys.map((key) => nodeIndexOf(ring.ownerOf(key)!));
    const http = tier.nodes.map((node) => new HttpClient('127.0.0.1', node.httpPort, 64));
    // Warm the owners.
    for (const [index, key] of keys.entries()) await http[ownerIndex[index]!]!.request('GET', `/_cache/default/${key}`);

    progress('cache: HTTP hit throughput');
    results.push(
      await runLoad('cache HTTP GET hit (owner)', 64, options.seconds, async (_client, sequence) => {
        const index = sequence % KEY_COUNT;
        const response = await http[ownerIndex[index]!]!.request('GET', `/_cache/default/${keys[index]}`);
        if (response.status !== 200 || response.body.length !== VALUE.length) throw new Error(`status ${response.status}`);
      }),
    );

    progress('cache: gRPC hit throughput');
    const channels = tier.nodes.map((node) => Array.from({ length: 8 }, (_, index) => new grpc.Client(node.address, grpc.credentials.createInsecure(), { 'grpc.channel_id': index } as grpc.ChannelOptions)));
    results.push(
      await runLoad('cache gRPC Get hit (owner)', 64, options.seconds, (clientIndex, sequence) => {
        const index = sequence % KEY_COUNT;
        const channel = channels[ownerIndex[index]!]![clientIndex % 8]!;
        return new Promise<void>((resolve, reject) =>
          channel.makeUnaryRequest(PEER_GET_PATH, encodeGetRequest, decodeGetResponse, { group: 'default', key: keys[index]! }, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (error, response) =>
            error !== null || response === undefined || !response.found ? reject(error ?? new Error('not found')) : resolve(),
          ),
        );
      }),
    );
    for (const list of channels) for (const channel of list) channel.close();

    progress('cache: miss cost (owner loads)');
    results.push(
      await runLoad('cache HTTP GET miss (owner loads)', 1, options.seconds, async (_client, sequence) => {
        const key = `absent-${sequence}`;
        const response = await http[nodeIndexOf(ring.ownerOf(key)!)]!.request('GET', `/_cache/default/${key}`);
        if (response.status !== 404) throw new Error(`status ${response.status}`);
      }),
    );
    progress('cache: miss cost via a peer');
    results.push(
      await runLoad('cache HTTP GET miss (via peer)', 1, options.seconds, async (_client, sequence) => {
        const key = `absent-peer-${sequence}`;
        const owner = nodeIndexOf(ring.ownerOf(key)!);
        const response = await http[(owner + 1) % 3]!.request('GET', `/_cache/default/${key}`);
        if (response.status !== 404) throw new Error(`status ${response.status}`);
      }),
    );
    for (const item of http) item.close();
  } finally {
    client.close();
    await tier.stop();
    await stopStore?.();
  }
  return results;
}

if (require.main === module) {
  const secondsFlag = process.argv.indexOf('--seconds');
  const seconds = secondsFlag >= 0 ? Number(process.argv[secondsFlag + 1]) : 5;
  cacheBench({ seconds, progress: (line) => process.stderr.write(`[cache-bench] ${line}\n`) }).then(
    (results) => {
      process.stdout.write('| workload | clients | ops/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n');
      for (const result of results) process.stdout.write(`${formatRow(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
