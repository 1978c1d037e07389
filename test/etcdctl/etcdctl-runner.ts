/**
 * Running etcdctl 3.4 as a child process against a list of endpoints.
 *
 * Two shapes of invocation:
 * - {@link runEtcdctl}: a command that ends by itself (put, get, txn with stdin, compaction, a
 *   watch that the server cancels…). It is SIGKILLed after a timeout, and that outcome is
 *   reported, never hidden.
 * - {@link startEtcdctlWatch}: a long-running `etcdctl watch`. The caller performs writes
 *   meanwhile, waits (polling with a deadline) until the printed output satisfies a condition,
 *   and then stops the process with SIGTERM, the way an operator ends a watch.
 *
 * Every invocation sets ETCDCTL_API=3 and passes `--endpoints=<list>` first, so the recorded
 * argument list (without that flag) is the same for every target. The helpers at the end
 * parse `-w json` output without losing uint64 precision (cluster and member IDs exceed 2^53).
 */
import { spawn } from 'node:child_process';
import { ETCDCTL_BINARY_PATH } from '../support/etcd-reference';
import { waitUntil } from '../../src/testing/jepsen/wait-until';

/** How one etcdctl process ended. */
export interface EtcdctlResult {
  /** The arguments after `--endpoints=…` (identical for every target). */
  readonly args: readonly string[];
  /** What was written to stdin, if anything. */
  readonly stdin: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code, or null when the process was ended by a signal. */
  readonly exitCode: number | null;
  /** The signal that ended the process, or null. */
  readonly signal: NodeJS.Signals | null;
  /** True if the harness killed the process because it overran its timeout. */
  readonly timedOut: boolean;
}

/** Options of {@link runEtcdctl}. */
export interface RunEtcdctlOptions {
  /** Written to stdin, which is then closed (stdin is closed at once without it). */
  readonly stdin?: string;
  /** SIGKILL after this long; 15 s by default (above etcdctl's own 5 s command timeout). */
  readonly timeoutMs?: number;
}

/** The environment of every etcdctl run: the v3 API and no inherited ETCDCTL_* settings. */
function etcdctlEnvironment(): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('ETCDCTL_')) environment[name] = value;
  }
  environment.ETCDCTL_API = '3';
  return environment;
}

/**
 * Runs `etcdctl --endpoints=<endpoints> ...args` to completion and resolves with its outputs.
 * Never rejects on a non-zero exit: failing commands are part of what the suite compares.
 */
export function runEtcdctl(endpoints: readonly string[], args: readonly string[], options: RunEtcdctlOptions = {}): Promise<EtcdctlResult> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn(ETCDCTL_BINARY_PATH, [`--endpoints=${endpoints.join(',')}`, ...args], {
      env: etcdctlEnvironment(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdoutChunks: Buffer[] = [];
    const stderrChunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdoutChunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderrChunks.push(chunk));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        args,
        stdin: options.stdin,
        stdout: Buffer.concat(stdoutChunks).toString('utf8'),
        stderr: Buffer.concat(stderrChunks).toString('utf8'),
        exitCode,
        signal,
        timedOut,
      });
    });
    // etcdctl may exit before reading stdin (bad flags); ignore the resulting EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

/** A running `etcdctl watch`; always end it with {@link EtcdctlWatch.stop}. */
export interface EtcdctlWatch {
  /** Everything printed on stdout so far. */
  stdoutSoFar(): string;
  /**
   * Polls until `condition(stdout)` holds or the process exits, for at most `timeoutMs`.
   * Resolves with the reason it stopped waiting; a deadline is an outcome, not an error, so the
   * caller records what was printed instead of losing it.
   */
  waitForOutput(condition: (stdout: string) => boolean, timeoutMs: number): Promise<'condition-met' | 'process-exited' | 'deadline-passed'>;
  /** SIGTERMs the process (SIGKILL if it lingers) and resolves with its outputs. */
  stop(): Promise<EtcdctlResult>;
}

/** Starts `etcdctl --endpoints=<endpoints> ...args` (a watch) in the background. */
export function startEtcdctlWatch(endpoints: readonly string[], args: readonly string[]): EtcdctlWatch {
  const child = spawn(ETCDCTL_BINARY_PATH, [`--endpoints=${endpoints.join(',')}`, ...args], {
    env: etcdctlEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdoutChunks: Buffer[] = [];
  const stderrChunks: Buffer[] = [];
  let exit: { exitCode: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  child.stdout.on('data', (chunk: Buffer) => stdoutChunks.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderrChunks.push(chunk));
  child.once('error', (error) => {
    spawnError = error;
  });
  const closed = new Promise<void>((resolve) => {
    child.once('close', (exitCode, signal) => {
      exit = { exitCode, signal };
      resolve();
    });
  });
  const stdoutSoFar = (): string => Buffer.concat(stdoutChunks).toString('utf8');
  return {
    stdoutSoFar,
    async waitForOutput(condition, timeoutMs) {
      try {
        return await waitUntil<'condition-met' | 'process-exited'>(
          () => {
            if (spawnError !== undefined) throw spawnError;
            if (condition(stdoutSoFar())) return 'condition-met';
            return exit === undefined ? undefined : 'process-exited';
          },
          { timeoutMs, intervalMs: 20, description: `etcdctl ${args.join(' ')} to print the expected output` },
        );
      } catch {
        return 'deadline-passed';
      }
    },
    async stop() {
      if (exit === undefined) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await closed;
        clearTimeout(killTimer);
      }
      if (spawnError !== undefined) throw spawnError;
      const ended = exit ?? { exitCode: null, signal: null };
      return {
        args,
        stdin: undefined,
        stdout: stdoutSoFar(),
        stderr: Buffer.concat(stderrChunks).toString('utf8'),
        exitCode: ended.exitCode,
        signal: ended.signal,
        timedOut: false,
      };
    },
  };
}

/** True if `args` ask etcdctl for JSON output (`-w json` or `--write-out=json`). */
export function wantsJsonOutput(args: readonly string[]): boolean {
  for (let index = 0; index < args.length; index++) {
    const argument = args[index];
    if ((argument === '-w' || argument === '--write-out') && args[index + 1] === 'json') return true;
    if (argument === '-w=json' || argument === '--write-out=json' || argument === '-wjson') return true;
  }
  return false;
}

/**
 * Rewrites every integer that does not fit a double exactly (above 2^53) into a JSON string, so
 * `JSON.parse` keeps its digits. Only bare numbers outside strings are touched.
 */
export function quoteLargeIntegers(jsonText: string): string {
  let output = '';
  let index = 0;
  while (index < jsonText.length) {
    const character = jsonText[index] as string;
    if (character === '"') {
      let end = index + 1;
      while (end < jsonText.length && jsonText[end] !== '"') end += jsonText[end] === '\\' ? 2 : 1;
      output += jsonText.slice(index, end + 1);
      index = end + 1;
      continue;
    }
    if (/[-0-9]/.test(character)) {
      const match = /^-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/.exec(jsonText.slice(index));
      if (match !== null) {
        const literal = match[0];
        const isLargeInteger = /^-?[0-9]+$/.test(literal) && !Number.isSafeInteger(Number(literal));
        output += isLargeInteger ? `"${literal}"` : literal;
        index += literal.length;
        continue;
      }
    }
    output += character;
    index += 1;
  }
  return output;
}

/**
 * Parses etcdctl's `-w json` output: one JSON document per non-empty line (a watch prints one
 * per response). Integers above 2^53 become decimal strings. Throws with the offending line if a
 * line is not JSON.
 */
export function parseJsonLines(stdout: string): unknown[] {
  const documents: unknown[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    try {
      documents.push(JSON.parse(quoteLargeIntegers(line)));
    } catch (error) {
      throw new Error(`etcdctl printed a line that is not JSON (${error instanceof Error ? error.message : String(error)}): ${line}`);
    }
  }
  return documents;
}

/** The number of events in `-w json` watch output printed so far (incomplete lines ignored). */
export function countJsonWatchEvents(stdout: string): number {
  let count = 0;
  const lines = stdout.split('\n');
  lines.pop(); // The last element is an unfinished line (or the empty string after a newline).
  for (const line of lines) {
    if (line.trim() === '') continue;
    const response = JSON.parse(quoteLargeIntegers(line)) as { Events?: unknown[] };
    count += response.Events?.length ?? 0;
  }
  return count;
}

/** The `header.revision` of a `-w json` document printed by get/put/del/txn. */
export function headerRevisionOf(stdout: string): number {
  const [document] = parseJsonLines(stdout);
  const revision = (document as { header?: { revision?: unknown } } | undefined)?.header?.revision;
  if (typeof revision !== 'number') throw new Error(`no header.revision in etcdctl output: ${stdout}`);
  return revision;
}
