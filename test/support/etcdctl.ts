/**
 * Runs etcdctl 3.4 (`/usr/bin/etcdctl`, ETCDCTL_API=3) against raftkv (or a real etcd) for
 * process-level tests, and polls it with a deadline.
 */
import { execFile } from 'node:child_process';
import { waitUntil } from '../../src/testing/jepsen/wait-until';

/** Where etcdctl and etcd are installed (Debian's etcd-client / etcd-server packages). */
export const ETCDCTL_PATH = '/usr/bin/etcdctl';
export const ETCD_PATH = '/usr/bin/etcd';

/** What one etcdctl run printed, and how it exited. */
export interface EtcdctlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `etcdctl --endpoints=<endpoints> <args>`; never rejects (a timeout is code -1). */
export function etcdctl(endpoints: readonly string[], args: readonly string[], timeoutMs = 20_000): Promise<EtcdctlResult> {
  return new Promise((resolve) => {
    execFile(
      ETCDCTL_PATH,
      [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=5s', '--command-timeout=10s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs etcdctl and fails with its output unless it exits 0. */
export async function etcdctlOk(endpoints: readonly string[], args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await etcdctl(endpoints, args, timeoutMs);
  if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * Runs etcdctl with `-w json` and parses its output. 64-bit IDs (ID, member_id, cluster_id,
 * leader, memberID) are printed as JSON numbers beyond 2^53: they are turned into decimal
 * strings before parsing so they stay exact.
 */
export async function etcdctlJson<T>(endpoints: readonly string[], args: readonly string[]): Promise<T> {
  const text = await etcdctlOk(endpoints, [...args, '-w', 'json']);
  return JSON.parse(text.replace(/"(ID|member_id|cluster_id|leader|memberID)":(\d+)/g, '"$1":"$2"')) as T;
}

/** Retries `args` until etcdctl exits 0 (within `timeoutMs`); returns the last stdout. */
export async function etcdctlEventually(endpoints: readonly string[], args: readonly string[], timeoutMs: number, description: string): Promise<string> {
  let last: EtcdctlResult | undefined;
  return waitUntil(
    async () => {
      last = await etcdctl(endpoints, args);
      return last.code === 0 ? last.stdout : undefined;
    },
    { timeoutMs, intervalMs: 200, description },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; last: ${last?.stdout ?? ''} ${last?.stderr ?? ''}`);
  });
}

/** A member ID as etcdctl prints it (hex) → decimal. */
export function hexToDecimal(hex: string): string {
  return BigInt(`0x${hex}`).toString();
}
