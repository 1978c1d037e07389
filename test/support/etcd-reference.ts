/**
 * A real etcd 3.4 as a reference target for differential tests.
 *
 * {@link EtcdReferenceCluster.start} launches one or three members of Debian's `/usr/bin/etcd` on
 * 127.0.0.1, with client and peer ports picked by {@link pickFreePort} (below the ephemeral
 * range), each in its own data directory under one fresh temp directory. It resolves once
 * `etcdctl endpoint health` succeeds against every member, which means a leader exists and a
 * linearizable Range has gone through Raft on each of them.
 *
 * Every member's stdout and stderr go to `<runDirectory>/<name>.log`; {@link
 * EtcdReferenceCluster.logTails} returns their ends for failure reports. {@link
 * EtcdReferenceCluster.stop} SIGKILLs every member, waits for the exits and removes the temp
 * directory. A process 'exit' hook kills the members even if the test process crashes first.
 *
 * {@link etcdAvailable} lets a suite skip with a clear message on machines without the
 * binaries (CI installs them with apt in .ci/run).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pickFreePort } from '../../src/testing/jepsen/cluster';
import { waitUntil } from '../../src/testing/jepsen/wait-until';

/** The etcd server binary the reference runs (Debian's `etcd-server` package). */
export const ETCD_BINARY_PATH = '/usr/bin/etcd';

/** The etcdctl binary (Debian's `etcd-client` package); always run with ETCDCTL_API=3. */
export const ETCDCTL_BINARY_PATH = '/usr/bin/etcdctl';

const HOST = '127.0.0.1';

/**
 * Whether both binaries are installed and executable. Returns a reason when they are not, so a
 * suite can pass it to `skip` verbatim.
 */
export function etcdAvailable(): { readonly available: true } | { readonly available: false; readonly reason: string } {
  for (const binary of [ETCD_BINARY_PATH, ETCDCTL_BINARY_PATH]) {
    try {
      fs.accessSync(binary, fs.constants.X_OK);
    } catch {
      return { available: false, reason: `${binary} is not installed (apt-get install etcd-server etcd-client; CI does this in .ci/run)` };
    }
  }
  return { available: true };
}

/** How to start a reference cluster. */
export interface EtcdReferenceOptions {
  /** Number of members: 1 or 3 in this suite (any positive number works). */
  readonly memberCount: number;
  /** How long to wait for every member to report healthy; 30 s by default. */
  readonly healthyTimeoutMs?: number;
}

/** One member as the harness knows it. */
interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDirectory: string;
  readonly logFile: string;
  process: ChildProcess | undefined;
}

/** A running real etcd cluster. Create with {@link EtcdReferenceCluster.start}; always stop it. */
export class EtcdReferenceCluster {
  private readonly exitHook = (): void => this.killAllSync();
  private stopped = false;

  private constructor(
    private readonly members: readonly EtcdMember[],
    /** The temp directory holding every data directory and log; removed by {@link stop}. */
    readonly runDirectory: string,
  ) {
    process.on('exit', this.exitHook);
  }

  /**
   * Starts `memberCount` members as one new cluster and resolves once all are healthy. On any
   * failure the members are killed and the temp directory removed before the error is rethrown
   * (with the log tails appended).
   */
  static async start(options: EtcdReferenceOptions): Promise<EtcdReferenceCluster> {
    if (!Number.isInteger(options.memberCount) || options.memberCount < 1) throw new Error(`memberCount must be a positive integer, got ${options.memberCount}`);
    const runDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-etcd-reference-'));
    const usedPorts = new Set<number>();
    const freshPort = async (): Promise<number> => {
      for (;;) {
        const port = await pickFreePort();
        if (!usedPorts.has(port)) {
          usedPorts.add(port);
          return port;
        }
      }
    };
    const members: EtcdMember[] = [];
    for (let index = 1; index <= options.memberCount; index++) {
      const name = `n${index}`;
      members.push({
        name,
        clientPort: await freshPort(),
        peerPort: await freshPort(),
        dataDirectory: path.join(runDirectory, name),
        logFile: path.join(runDirectory, `${name}.log`),
        process: undefined,
      });
    }
    const cluster = new EtcdReferenceCluster(members, runDirectory);
    try {
      const clusterToken = `raftkv-reference-${path.basename(runDirectory)}`;
      const initialCluster = members.map((member) => `${member.name}=http://${HOST}:${member.peerPort}`).join(',');
      for (const member of members) cluster.spawnMember(member, initialCluster, clusterToken);
      await cluster.waitUntilHealthy(options.healthyTimeoutMs ?? 30_000);
    } catch (error) {
      const tails = cluster.logTails(20);
      await cluster.stop();
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- etcd logs ---\n${tails}`);
    }
    return cluster;
  }

  /** Client endpoints as `127.0.0.1:PORT` (no scheme, see ETCD_WIRE_NOTES §5), member order. */
  endpoints(): string[] {
    return this.members.map((member) => `${HOST}:${member.clientPort}`);
  }

  /** The last `lineCount` lines of every member's log, labelled. */
  logTails(lineCount = 30): string {
    const parts: string[] = [];
    for (const member of this.members) {
      let text: string;
      try {
        text = fs.readFileSync(member.logFile, 'utf8');
      } catch {
        text = '(no log)';
      }
      parts.push(`--- ${member.name} ${member.logFile}`, ...text.trimEnd().split('\n').slice(-lineCount));
    }
    return parts.join('\n');
  }

  /** Kills every member, waits until each has exited and removes the temp directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const exits: Promise<void>[] = [];
    for (const member of this.members) {
      const child = member.process;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(new Promise<void>((resolve) => child.once('exit', () => resolve())));
      child.kill('SIGKILL');
    }
    await Promise.all(exits);
    process.off('exit', this.exitHook);
    fs.rmSync(this.runDirectory, { recursive: true, force: true });
  }

  private spawnMember(member: EtcdMember, initialCluster: string, clusterToken: string): void {
    const clientUrl = `http://${HOST}:${member.clientPort}`;
    const peerUrl = `http://${HOST}:${member.peerPort}`;
    const flags = [
      '--name', member.name,
      '--data-dir', member.dataDirectory,
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', clusterToken,
    ];
    const logDescriptor = fs.openSync(member.logFile, 'a');
    fs.writeSync(logDescriptor, `=== start: ${ETCD_BINARY_PATH} ${flags.join(' ')}\n`);
    const child = spawn(ETCD_BINARY_PATH, flags, { stdio: ['ignore', logDescriptor, logDescriptor] });
    fs.closeSync(logDescriptor);
    member.process = child;
  }

  /**
   * Polls `etcdctl endpoint health` (a linearizable Range per endpoint) until every member
   * passes, failing early if a member process has exited.
   */
  private async waitUntilHealthy(timeoutMs: number): Promise<void> {
    let lastAnswer = 'no answer yet';
    const outcome = await waitUntil<{ readonly exitedMember?: string }>(
      async () => {
        for (const member of this.members) {
          const child = member.process;
          // A crashed member ends the wait at once (a thrown error would only count as "not yet").
          if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) return { exitedMember: member.name };
        }
        const answer = await runQuietly(ETCDCTL_BINARY_PATH, [`--endpoints=${this.endpoints().join(',')}`, '--dial-timeout=1s', '--command-timeout=2s', 'endpoint', 'health'], 5000);
        lastAnswer = `exit ${answer.exitCode}: ${(answer.stdout + answer.stderr).trim()}`;
        return answer.exitCode === 0 ? {} : undefined;
      },
      { timeoutMs, intervalMs: 100, description: `etcd members ${this.members.map((member) => member.name).join(',')} to report healthy` },
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; last etcdctl answer: ${lastAnswer}`);
    });
    if (outcome.exitedMember !== undefined) throw new Error(`etcd member ${outcome.exitedMember} exited during startup`);
  }

  private killAllSync(): void {
    for (const member of this.members) {
      const child = member.process;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Runs a short command, never rejecting: a failure is reported through the exit code. */
function runQuietly(file: string, args: readonly string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, ETCDCTL_API: '3' } }, (error, stdout, stderr) => {
      const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ exitCode, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
