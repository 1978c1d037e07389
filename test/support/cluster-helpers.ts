/**
 * Helpers for process-level tests: talking to real nodes over HTTP and waiting (by polling with a
 * deadline) for the cluster to reach a state. The cluster itself is src/testing/jepsen/cluster.ts.
 */
import path from 'node:path';
import { Cluster, type ClusterOptions } from '../../src/testing/jepsen/cluster';
import { httpRequest, type HttpOutcome } from '../../src/testing/jepsen/http-client';
import { waitUntil } from '../../src/testing/jepsen/wait-until';

/** The compiled CLI (tests run from dist/test). */
export const CLI_PATH = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** Generous deadlines: the machines are small and shared. */
export const DEADLINE_MS = 30_000;

/** Starts a cluster with test-friendly timings. */
export function startCluster(size: number, extra: Partial<ClusterOptions> = {}): Promise<Cluster> {
  return Cluster.start({
    size,
    cliPath: CLI_PATH,
    tickMs: 50,
    electionTicks: 10,
    heartbeatTicks: 1,
    requestTimeoutMs: 3000,
    ...extra,
  });
}

/**
 * Starts a cluster and waits until it is usable (every node healthy, one agreed leader); stops it
 * again if it never gets there. For tests that use it as a store behind other code.
 */
export async function startReadyCluster(size: number, extra: Partial<ClusterOptions> = {}): Promise<Cluster> {
  const cluster = await startCluster(size, extra);
  try {
    await cluster.waitUntilHealthy(DEADLINE_MS);
    await waitForLeader(cluster);
  } catch (error) {
    await cluster.stop({ removeRunDirectory: true });
    throw error;
  }
  return cluster;
}

/** A response, or a failed assertion describing how the request ended instead. */
export async function request(cluster: Cluster, id: number, method: string, urlPath: string, body?: string, timeoutMs = 10_000): Promise<Extract<HttpOutcome, { kind: 'response' }>> {
  const outcome = await httpRequest(cluster.httpEndpoint(id), method, urlPath, body, timeoutMs);
  if (outcome.kind !== 'response') throw new Error(`${method} ${urlPath} on node ${id}: ${outcome.code} ${outcome.message}`);
  return outcome;
}

/** The status JSON of node `id`. */
export async function status(cluster: Cluster, id: number): Promise<{ role: string; leader: string | null; term: number; appliedIndex: number; commitIndex: number; snapshotIndex?: number; members: Array<{ id: string }> }> {
  const response = await request(cluster, id, 'GET', '/-/status');
  return JSON.parse(response.body);
}

/** Waits until the running nodes in `ids` agree on one leader among them; returns its ID. */
export async function waitForLeader(cluster: Cluster, ids: readonly number[] = cluster.runningIds()): Promise<number> {
  return waitUntil(
    async () => {
      const leaders = new Set<string | null>();
      for (const id of ids) leaders.add((await status(cluster, id)).leader);
      if (leaders.size !== 1) return undefined;
      const [leader] = [...leaders];
      if (leader === null || leader === undefined || !ids.includes(Number(leader))) return undefined;
      return Number(leader);
    },
    { timeoutMs: DEADLINE_MS, intervalMs: 50, description: `nodes ${ids.join(',')} to agree on a leader` },
  );
}

/** PUTs until a 204 (retrying while there is no leader); fails the test on any other outcome. */
export async function putOk(cluster: Cluster, id: number, key: string, value: string): Promise<void> {
  await waitUntil(
    async () => {
      const response = await request(cluster, id, 'PUT', key, value);
      if (response.status === 204) return true;
      if (response.status === 503 && response.errorCode === 'no-leader') return undefined;
      throw new Error(`PUT ${key} on node ${id}: ${response.status} ${response.body}`);
    },
    { timeoutMs: DEADLINE_MS, intervalMs: 100, description: `PUT ${key} on node ${id}` },
  );
}

/** Waits until GET `key` on node `id` (with `query`) answers 200 with `value`. */
export async function waitForValue(cluster: Cluster, id: number, key: string, value: string, query = ''): Promise<void> {
  await waitUntil(
    async () => {
      const response = await request(cluster, id, 'GET', `${key}${query}`);
      return response.status === 200 && response.body === value;
    },
    { timeoutMs: DEADLINE_MS, intervalMs: 50, description: `node ${id} to serve ${key}=${value}` },
  );
}

/** Runs `body` with a fresh cluster and always stops it (keeping its logs on failure). */
export async function withCluster(size: number, extra: Partial<ClusterOptions>, body: (cluster: Cluster) => Promise<void>): Promise<void> {
  const cluster = await startCluster(size, extra);
  let failed = true;
  try {
    await cluster.waitUntilHealthy(DEADLINE_MS);
    await body(cluster);
    failed = false;
  } catch (error) {
    const tails = cluster.logTails(30);
    throw new Error(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n--- node logs (${cluster.runDirectory}) ---\n${tails}`);
  } finally {
    await cluster.stop({ removeRunDirectory: !failed });
  }
}
