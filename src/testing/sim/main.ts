/**
 * The simulator's command line (`npm run sim -- ...`).
 *
 * Replay one seed exactly:
 *   npm run sim -- --seed 42 --steps 3000 [--nodes 5] [--faults all|none|loss,partition,...] [--verbose]
 * Sweep a range of seeds and summarise:
 *   npm run sim -- --seeds 1-5000 --steps 3000 [--faults all]
 * A failing run prints the violation, the last events before it and the exact command that
 * replays it. The exit code is 1 when any run failed.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runSeed, type RunResult } from './run';
import { FAULT_KINDS, parseFaults, type FaultKind } from './workload';

/** Parses "A-B" (inclusive) or a single number into a seed range. */
export function parseSeedRange(text: string): { first: number; last: number } {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (match === null) throw new InvalidArgumentError(`expected a seed range like 1-5000, got '${text}'`);
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  if (last < first) throw new InvalidArgumentError(`empty seed range ${text}`);
  return { first, last };
}

function parseInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${text}'`);
  return value;
}

/** The command that replays one run. */
export function replayCommand(seed: number, steps: number, nodes: number | undefined, faults: string): string {
  return `npm run sim -- --seed ${seed} --steps ${steps}${nodes === undefined ? '' : ` --nodes ${nodes}`} --faults ${faults} --verbose`;
}

/** Human-readable report of one failed run. */
export function formatFailure(result: RunResult, command: string): string {
  const failure = result.failure;
  if (failure === undefined) return '';
  const lines = [
    `FAIL seed ${result.seed}: ${failure.invariant} (${failure.phase} phase, t=${failure.time})`,
    `  ${failure.message}`,
    `  settings: ${result.settings}`,
    `  last ${failure.events.length} events:`,
    ...failure.events.map((event) => `    ${event}`),
  ];
  if (failure.stack !== undefined) lines.push('  stack:', ...failure.stack.split('\n').map((line) => `    ${line}`));
  lines.push(`  replay: ${command}`);
  return lines.join('\n');
}

/** Fault and workload counts of one run, one line. */
export function formatCounts(result: RunResult): string {
  const simulator = result.simulator;
  const workload = result.workload;
  const network = result.network;
  const refused = Object.entries(workload.proposalsRefused).map(([reason, count]) => `${reason}:${count}`).join(',') || 'none';
  return [
    `committed=${result.committedIndex} terms=${result.terms} leaders=${simulator.leadersElected} checks=${result.checks}`,
    `net sent=${network.sent} delivered=${network.delivered} lost=${network.lost} dup=${network.duplicated} partitionDrops=${network.partitionDrops}`,
    `partitions=${workload.partitions} oneWay=${workload.oneWayCuts} heals=${workload.heals} crashes=${simulator.crashes} readyCrashes=${simulator.readyCrashes} restarts=${simulator.restarts} stops=${simulator.stops}`,
    `snapshots created=${simulator.snapshotsCreated} installed=${simulator.snapshotsInstalled} reports finish=${simulator.snapshotReportsFinish}/failure=${simulator.snapshotReportsFailure} unreachable=${simulator.unreachableReports}`,
    `proposals ok=${workload.proposalsAccepted} refused={${refused}} rejectedByLeader=${simulator.rejectedProposals} reads=${workload.readsIssued}/answered=${simulator.readStates}`,
    `confChanges ok=${workload.confChangesAccepted} refused=${JSON.stringify(workload.confChangesRefused)} readdRefused=${workload.readdRefused} transfers=${workload.transfers}`,
    `liveness=${result.livenessTicks === undefined ? '-' : `${result.livenessTicks} ticks`} time=${result.elapsedMilliseconds.toFixed(0)}ms`,
  ].join('\n  ');
}

interface CliOptions {
  seed?: number;
  seeds?: { first: number; last: number };
  steps: number;
  nodes?: number;
  faults: string;
  verbose?: boolean;
  maxFailures: number;
}

function main(argv: readonly string[]): number {
  const program = new Command()
    .name('sim')
    .description('Seeded deterministic simulator of a raftkv cluster with invariant checkers.')
    .option('--seed <n>', 'run one seed (replay)', parseInteger)
    .option('--seeds <range>', 'sweep a range of seeds, e.g. 1-5000', parseSeedRange)
    .option('--steps <n>', 'time units of the faulty phase per run', parseInteger, 3000)
    .option('--nodes <n>', 'initial voters (default: 3-5 drawn from the seed)', parseInteger)
    .option('--faults <list>', `all (every kind), none, or a list of: ${FAULT_KINDS.join(',')}`, 'all')
    .option('--max-failures <n>', 'stop a sweep after this many failures', parseInteger, 10)
    .option('--verbose', 'print settings and fault counts of every run')
    .parse(argv, { from: 'node' });
  const options = program.opts<CliOptions>();
  let faults: Set<FaultKind> = new Set();
  try {
    faults = parseFaults(options.faults);
  } catch (error) {
    program.error((error as Error).message);
  }
  const range = options.seeds ?? (options.seed !== undefined ? { first: options.seed, last: options.seed } : { first: 1, last: 1 });
  const total = range.last - range.first + 1;
  const started = performance.now();
  let failures = 0;
  let runs = 0;
  const totals: Record<string, number> = {};
  const add = (key: string, value: number): void => {
    totals[key] = (totals[key] ?? 0) + value;
  };
  let lastProgress = started;
  for (let seed = range.first; seed <= range.last; seed++) {
    const result = runSeed({ seed, steps: options.steps, nodes: options.nodes, faults });
    runs++;
    add('committed', result.committedIndex);
    add('crashes', result.simulator.crashes);
    add('readyCrashes', result.simulator.readyCrashes);
    add('partitions', result.workload.partitions);
    add('oneWayCuts', result.workload.oneWayCuts);
    add('lost', result.network.lost);
    add('duplicated', result.network.duplicated);
    add('snapshotsInstalled', result.simulator.snapshotsInstalled);
    add('confChanges', result.workload.confChangesAccepted);
    add('transfers', result.workload.transfers);
    add('leaders', result.simulator.leadersElected);
    add('reads', result.simulator.readStates);
    if (options.verbose === true || total === 1) {
      console.log(`seed ${seed} ${result.ok ? 'ok' : 'FAIL'}: ${result.settings}\n  ${formatCounts(result)}`);
    }
    if (!result.ok) {
      failures++;
      console.log(formatFailure(result, replayCommand(seed, options.steps, options.nodes, options.faults)));
      if (failures >= options.maxFailures) {
        console.log(`stopping after ${failures} failures`);
        break;
      }
    }
    const now = performance.now();
    if (total > 1 && now - lastProgress > 5000) {
      lastProgress = now;
      console.log(`progress: ${runs}/${total} seeds, ${failures} failures, ${((now - started) / 1000).toFixed(1)} s`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `summary: runs=${runs} failures=${failures} time=${seconds.toFixed(1)}s steps=${options.steps} faults=${options.faults}\n` +
      `  totals: ${Object.entries(totals).map(([key, value]) => `${key}=${value}`).join(' ')}`,
  );
  return failures === 0 ? 0 : 1;
}

if (require.main === module) process.exitCode = main(process.argv);
