#!/usr/bin/env node
/**
 * `npm run jepsen -- --seconds 60 --faults kill,pause,partition,member --seed N`
 * (entry: dist/src/testing/jepsen/main.js). Parses the flags, runs one fault-injection run
 * (runner.ts), prints the summary and exits 0 on a pass, 1 on a violation, 2 when the run was
 * inconclusive (the cluster never settled, or a checker ran out of budget) or on a usage error.
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { FAULT_KINDS, RUN_DEFAULTS, runJepsen, type FaultKind } from './runner';

function positiveInteger(flag: string): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`${flag} must be a non-negative integer`);
    return value;
  };
}

function parseFaults(raw: string): FaultKind[] {
  if (raw === '' || raw === 'none') return [];
  const faults = raw.split(',').map((item) => item.trim());
  for (const fault of faults) {
    if (!FAULT_KINDS.includes(fault as FaultKind)) {
      throw new InvalidArgumentError(`unknown fault '${fault}' (choose from ${FAULT_KINDS.join(', ')}, or none)`);
    }
  }
  return faults as FaultKind[];
}

async function main(): Promise<number> {
  const program = new Command('jepsen')
    .description('Fault-injection run against a real raftkv cluster, checked for linearizability and lost writes')
    .option('--seconds <n>', 'how long the workload runs', positiveInteger('--seconds'), RUN_DEFAULTS.seconds)
    .option('--faults <list>', `comma-separated faults: ${FAULT_KINDS.join(',')} (or none)`, parseFaults, [...FAULT_KINDS])
    .option('--seed <n>', 'seed of every random choice (default: random, printed)', positiveInteger('--seed'))
    .option('--nodes <n>', 'initial cluster size', positiveInteger('--nodes'), RUN_DEFAULTS.nodeCount)
    .option('--clients <n>', 'concurrent workload clients', positiveInteger('--clients'), RUN_DEFAULTS.workerCount)
    .option('--keys <n>', 'number of keys', positiveInteger('--keys'), RUN_DEFAULTS.keys.length)
    .option('--node-request-timeout-ms <ms>', "nodes' --request-timeout", positiveInteger('--node-request-timeout-ms'), RUN_DEFAULTS.nodeRequestTimeoutMs)
    .option('--client-timeout-ms <ms>', 'client-side request timeout', positiveInteger('--client-timeout-ms'), RUN_DEFAULTS.clientTimeoutMs)
    .option('--tick-ms <ms>', "nodes' --tick-ms", positiveInteger('--tick-ms'), RUN_DEFAULTS.tickMs)
    .option('--election-ticks <n>', "nodes' --election-ticks", positiveInteger('--election-ticks'), RUN_DEFAULTS.electionTicks)
    .option('--heartbeat-ticks <n>', "nodes' --heartbeat-ticks", positiveInteger('--heartbeat-ticks'), RUN_DEFAULTS.heartbeatTicks)
    .option('--node-flag <flag>', 'extra flag for every node (repeatable)', (flag: string, all: string[]) => [...all, flag], [] as string[])
    .option('--cli <path>', 'the node CLI', path.resolve(__dirname, '..', '..', 'cli', 'main.js'))
    .option('--run-dir <dir>', 'where to keep logs, data and the history (default: a temp directory)')
    .option('--keep', 'keep the run directory even after a pass', false)
    .showHelpAfterError();
  program.parse(process.argv);
  const flags = program.opts<{
    seconds: number;
    faults: FaultKind[];
    seed?: number;
    nodes: number;
    clients: number;
    keys: number;
    nodeRequestTimeoutMs: number;
    clientTimeoutMs: number;
    tickMs: number;
    electionTicks: number;
    heartbeatTicks: number;
    nodeFlag: string[];
    cli: string;
    runDir?: string;
    keep: boolean;
  }>();
  const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
  const keys = Array.from({ length: Math.max(1, flags.keys) }, (_, index) => `key-${String.fromCharCode(97 + (index % 26))}${index >= 26 ? index : ''}`);
  console.log(`jepsen: seed ${seed}, ${flags.seconds}s, faults ${flags.faults.join(',') || 'none'}`);
  const summary = await runJepsen({
    ...RUN_DEFAULTS,
    seconds: flags.seconds,
    faults: flags.faults,
    seed,
    cliPath: path.resolve(flags.cli),
    nodeCount: flags.nodes,
    workerCount: flags.clients,
    keys,
    nodeRequestTimeoutMs: flags.nodeRequestTimeoutMs,
    clientTimeoutMs: flags.clientTimeoutMs,
    tickMs: flags.tickMs,
    electionTicks: flags.electionTicks,
    heartbeatTicks: flags.heartbeatTicks,
    extraNodeFlags: flags.nodeFlag.flatMap((flag) => flag.split(/\s+/).filter((part) => part !== '')),
    runDirectory: flags.runDir === undefined ? undefined : path.resolve(flags.runDir),
    keepRunDirectory: flags.keep,
    log: (line) => console.log(line),
  });
  console.log(summary.report);
  return summary.exitCode;
}

// Ctrl-C: exit through process.exit so the cluster's exit hook kills every node.
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

main().then(
  (exitCode) => {
    process.exitCode = exitCode;
  },
  (error: unknown) => {
    console.error(`jepsen: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 2;
  },
);
