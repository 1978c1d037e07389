/**
 * One fault-injection run, start to verdict:
 * 1. start a cluster of real nodes behind per-link proxies (cluster.ts) and wait until healthy;
 * 2. run the workload (workload.ts) for the given time while a seeded nemesis injects one fault
 *    at a time: wait a random interval, inject, hold for a random duration, undo;
 * 3. stop the workload, heal every link, resume and restart every node, wait until healthy;
 * 4. read every key once more (the final reads, recorded in the history like any GET);
 * 5. save the history as JSON lines, run the linearizability and lost-write checkers, and
 *    summarise: operations by outcome, faults by kind, verdicts.
 * The run directory (logs, data, history) is kept when the verdict is not a pass.
 *
 * Everything random (workload choices, fault choices and timings) derives from one seed, so a
 * run can be repeated; the nodes' own timing of course still varies.
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkLinearizability, type LinearizabilityResult } from '../linearizability/checker';
import { HistoryRecorder, saveHistory, type Operation } from '../linearizability/history';
import { checkLostWrites, type FinalRead, type LostWriteResult } from '../linearizability/lost-writes';
import { SeededRandom } from '../linearizability/seeded-random';
import { Cluster } from './cluster';
import { httpRequest } from './http-client';
import { delay } from './wait-until';
import { classifyGet, keyPath, runWorkload } from './workload';

/** The kinds of fault the nemesis can inject. */
export type FaultKind = 'kill' | 'pause' | 'partition' | 'member';

/** Every fault kind, in the order `--faults` documents them. */
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition', 'member'];

/** Parameters of a run. Durations in ms unless named otherwise. */
export interface RunOptions {
  readonly seconds: number;
  readonly faults: readonly FaultKind[];
  readonly seed: number;
  readonly cliPath: string;
  readonly nodeCount: number;
  readonly workerCount: number;
  readonly keys: readonly string[];
  readonly readFraction: number;
  readonly thinkTimeMs: number;
  /** The nodes' `--request-timeout`. */
  readonly nodeRequestTimeoutMs: number;
  /** The clients' own timeout; should exceed the nodes' so that 504s are seen. */
  readonly clientTimeoutMs: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Quiet time between faults: uniformly in [minimum, maximum]. */
  readonly faultIntervalMs: readonly [number, number];
  /** How long a fault is held: uniformly in [minimum, maximum]. */
  readonly faultDurationMs: readonly [number, number];
  /** How long the healed cluster gets to become healthy and answer the final reads. */
  readonly settleTimeoutMs: number;
  readonly extraNodeFlags: readonly string[];
  /** Where to put the run directory; a fresh temp directory when undefined. */
  readonly runDirectory: string | undefined;
  /** Keep the run directory even after a pass. */
  readonly keepRunDirectory: boolean;
  /** Progress lines. */
  readonly log: (line: string) => void;
}

/** Defaults for everything but the seed, the faults and the CLI path. */
export const RUN_DEFAULTS = Object.freeze({
  seconds: 60,
  nodeCount: 3,
  workerCount: 8,
  keys: ['key-a', 'key-b', 'key-c', 'key-d', 'key-e'] as readonly string[],
  readFraction: 0.5,
  thinkTimeMs: 5,
  nodeRequestTimeoutMs: 2000,
  clientTimeoutMs: 3000,
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  faultIntervalMs: [2000, 5000] as readonly [number, number],
  faultDurationMs: [1000, 5000] as readonly [number, number],
  settleTimeoutMs: 60_000,
});

/** What a run found. `exitCode`: 0 pass, 1 violation, 2 inconclusive. */
export interface RunSummary {
  readonly verdict: 'pass' | 'violation' | 'inconclusive';
  readonly exitCode: 0 | 1 | 2;
  readonly seed: number;
  readonly operationsByOutcome: Record<string, number>;
  readonly faultsByKind: Record<string, number>;
  readonly faultLog: readonly string[];
  readonly finalReads: readonly FinalRead[];
  readonly linearizability: LinearizabilityResult | undefined;
  readonly lostWrites: LostWriteResult | undefined;
  /** Set when the run could not get as far as checking. */
  readonly error: string | undefined;
  readonly runDirectory: string;
  readonly historyFile: string | undefined;
  /** Human-readable report. */
  readonly report: string;
}

/** Runs the whole thing; never leaves a process behind. */
export async function runJepsen(options: RunOptions): Promise<RunSummary> {
  const random = new SeededRandom(options.seed);
  const workloadRandom = random.fork();
  const nemesisRandom = random.fork();
  const recorder = new HistoryRecorder();
  const faultsByKind: Record<string, number> = {};
  const faultLog: string[] = [];
  const startedMs = performance.now();
  const note = (line: string): void => {
    const stamped = `[${((performance.now() - startedMs) / 1000).toFixed(1)}s] ${line}`;
    faultLog.push(stamped);
    options.log(stamped);
  };
  const cluster = await Cluster.start({
    size: options.nodeCount,
    cliPath: options.cliPath,
    runDirectory: options.runDirectory,
    tickMs: options.tickMs,
    electionTicks: options.electionTicks,
    heartbeatTicks: options.heartbeatTicks,
    requestTimeoutMs: options.nodeRequestTimeoutMs,
    extraFlags: options.extraNodeFlags,
  });
  let operationsByOutcome: Record<string, number> = {};
  let finalReads: FinalRead[] = [];
  let linearizability: LinearizabilityResult | undefined;
  let lostWrites: LostWriteResult | undefined;
  let historyFile: string | undefined;
  let error: string | undefined;
  try {
    note(`cluster of ${options.nodeCount} in ${cluster.runDirectory}`);
    // History times are performance.now() milliseconds; this maps them onto the nodes' log times.
    note(`history time 0 = ${new Date(Date.now() - performance.now()).toISOString()} (wall clock)`);
    await cluster.waitUntilHealthy(options.settleTimeoutMs);
    note('cluster healthy; starting workload and nemesis');
    const deadlineMs = performance.now() + options.seconds * 1000;
    const timeIsUp = (): boolean => performance.now() >= deadlineMs;
    const workload = runWorkload({
      endpoints: () => cluster.memberEndpoints(),
      keys: options.keys,
      workerCount: options.workerCount,
      readFraction: options.readFraction,
      requestTimeoutMs: options.clientTimeoutMs,
      thinkTimeMs: options.thinkTimeMs,
      random: workloadRandom,
      recorder,
      shouldStop: timeIsUp,
    });
    const nemesis = runNemesis(cluster, options, nemesisRandom, timeIsUp, faultsByKind, note);
    const [statistics] = await Promise.all([workload, nemesis]);
    operationsByOutcome = statistics.operationsByOutcome;
    note('workload done; healing');
    cluster.heal();
    cluster.reviveAll();
    await cluster.waitUntilHealthy(options.settleTimeoutMs);
    note('healed cluster is healthy; final reads');
    finalReads = await performFinalReads(cluster, options, recorder);
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
    note(`run aborted: ${error}`);
  }
  const history: Operation[] = recorder.history();
  try {
    historyFile = path.join(cluster.runDirectory, 'history.jsonl');
    saveHistory(historyFile, history);
    fs.writeFileSync(path.join(cluster.runDirectory, 'faults.log'), `${faultLog.join('\n')}\n`);
    linearizability = checkLinearizability(history);
    lostWrites = checkLostWrites(history, finalReads);
  } catch (caught) {
    error ??= caught instanceof Error ? caught.message : String(caught);
  }
  const violation = linearizability?.verdict === 'not-linearizable' || lostWrites?.ok === false;
  const verdict = violation ? 'violation' : error !== undefined || linearizability?.verdict !== 'linearizable' ? 'inconclusive' : 'pass';
  const logs = verdict === 'pass' ? '' : cluster.logTails();
  await cluster.stop({ removeRunDirectory: verdict === 'pass' && !options.keepRunDirectory });
  const summary = {
    verdict,
    exitCode: verdict === 'pass' ? 0 : verdict === 'violation' ? 1 : 2,
    seed: options.seed,
    operationsByOutcome,
    faultsByKind,
    faultLog,
    finalReads,
    linearizability,
    lostWrites,
    error,
    runDirectory: cluster.runDirectory,
    historyFile: verdict === 'pass' && !options.keepRunDirectory ? undefined : historyFile,
  } as const;
  return { ...summary, report: formatReport(summary, history.length, logs) };
}

/** Injects one fault at a time until the time is up; always undoes the fault it injected. */
async function runNemesis(
  cluster: Cluster,
  options: RunOptions,
  random: SeededRandom,
  timeIsUp: () => boolean,
  faultsByKind: Record<string, number>,
  note: (line: string) => void,
): Promise<void> {
  if (options.faults.length === 0) return;
  const pause = async (range: readonly [number, number]): Promise<void> => {
    const untilMs = performance.now() + random.integerBetween(range[0], range[1]);
    while (performance.now() < untilMs && !timeIsUp()) await delay(Math.min(100, untilMs - performance.now()));
  };
  const count = (label: string): void => {
    faultsByKind[label] = (faultsByKind[label] ?? 0) + 1;
  };
  await pause(options.faultIntervalMs);
  while (!timeIsUp()) {
    const kind = random.pick(options.faults);
    try {
      switch (kind) {
        case 'kill': {
          const id = random.pick(cluster.runningIds());
          note(`kill -9 node ${id}`);
          await cluster.kill(id);
          count('kill');
          await pause(options.faultDurationMs);
          note(`restart node ${id}`);
          cluster.restart(id);
          break;
        }
        case 'pause': {
          const id = random.pick(cluster.runningIds());
          note(`SIGSTOP node ${id}`);
          cluster.pause(id);
          count('pause');
          await pause(options.faultDurationMs);
          note(`SIGCONT node ${id}`);
          cluster.resume(id);
          break;
        }
        case 'partition': {
          const members = cluster.memberIds();
          const a = random.pick(members);
          const others = members.filter((id) => id !== a && cluster.canPartitionLink(a, id) && cluster.canPartitionLink(id, a));
          const variant = others.length === 0 ? 'isolate' : random.pick(['isolate', 'pair', 'one-way'] as const);
          if (variant === 'isolate') {
            note(`isolate node ${a}`);
            cluster.isolate(a);
          } else {
            const b = random.pick(others);
            note(variant === 'pair' ? `partition ${a} <-> ${b}` : `partition ${a} -> ${b} (one way)`);
            if (variant === 'pair') cluster.partition(a, b);
            else cluster.partitionOneWay(a, b);
          }
          count(`partition-${variant}`);
          await pause(options.faultDurationMs);
          note('heal network');
          cluster.heal();
          break;
        }
        case 'member': {
          const victim = random.pick(cluster.memberIds());
          note(`remove member ${victim}`);
          await cluster.removeMember(victim, 20_000);
          count('member-remove');
          const added = await cluster.addMember(20_000);
          note(`added member ${added} (joined)`);
          count('member-add');
          break;
        }
      }
    } catch (caught) {
      count(`${kind}-failed`);
      note(`${kind} fault failed: ${caught instanceof Error ? caught.message : String(caught)}`);
      cluster.heal();
      cluster.reviveAll();
    }
    await pause(options.faultIntervalMs);
  }
}

/** Reads every key from some healthy member (linearizable GET), retrying until the settle time. */
async function performFinalReads(cluster: Cluster, options: RunOptions, recorder: HistoryRecorder): Promise<FinalRead[]> {
  const finalReads: FinalRead[] = [];
  const deadlineMs = performance.now() + options.settleTimeoutMs;
  const finalClient = 1_000_000;
  for (const key of options.keys) {
    for (let attempt = 0; performance.now() < deadlineMs; attempt++) {
      const ids = cluster.runningIds();
      const id = ids[attempt % Math.max(1, ids.length)];
      if (id === undefined) break;
      const pending = recorder.invoke(finalClient + attempt, key, 'get', null);
      const result = classifyGet(await httpRequest(cluster.httpEndpoint(id), 'GET', keyPath(key), undefined, options.clientTimeoutMs));
      recorder.complete(pending, result.outcome, result.value);
      if (result.outcome === 'ok') {
        finalReads.push({ key, value: result.value });
        break;
      }
      await delay(200);
    }
  }
  return finalReads;
}

function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? 'none' : entries.map(([label, count]) => `${label}=${count}`).join(' ');
}

function formatReport(
  summary: Omit<RunSummary, 'report'>,
  operationCount: number,
  logs: string,
): string {
  const lines: string[] = [];
  lines.push(`=== raftkv jepsen: ${summary.verdict.toUpperCase()} (seed ${summary.seed})`);
  lines.push(`operations: ${operationCount} (${formatCounts(summary.operationsByOutcome)})`);
  lines.push(`faults: ${formatCounts(summary.faultsByKind)}`);
  lines.push(`final reads: ${summary.finalReads.map((read) => `${read.key}=${read.value ?? 'absent'}`).join(' ') || 'none'}`);
  const linearizability = summary.linearizability;
  if (linearizability === undefined) lines.push('linearizability: not checked');
  else if (linearizability.verdict === 'linearizable') lines.push('linearizability: OK');
  else if (linearizability.verdict === 'unknown') lines.push(`linearizability: UNKNOWN\n${linearizability.explanation}`);
  else lines.push(`linearizability: VIOLATION\n${linearizability.explanation}`);
  if (linearizability !== undefined) {
    lines.push(
      `  per key: ${linearizability.keys
        .map((report) => `${report.key}: ${report.operationCount} ops, ${report.steps} steps, ${report.elapsedMs.toFixed(0)}ms, ${report.verdict}`)
        .join('; ')}`,
    );
  }
  const lostWrites = summary.lostWrites;
  if (lostWrites === undefined) lines.push('lost writes: not checked');
  else if (lostWrites.ok) lines.push(`lost writes: OK (${lostWrites.keysChecked} keys)`);
  else lines.push(`lost writes: VIOLATION\n${lostWrites.violations.map((violation) => `  [${violation.kind}] ${violation.explanation}`).join('\n')}`);
  if (summary.error !== undefined) lines.push(`error: ${summary.error}`);
  if (summary.historyFile !== undefined) lines.push(`history: ${summary.historyFile}`);
  if (summary.verdict !== 'pass' || fs.existsSync(summary.runDirectory)) lines.push(`run directory: ${summary.runDirectory}`);
  if (logs !== '') lines.push('node logs (tails):', logs);
  return lines.join('\n');
}
