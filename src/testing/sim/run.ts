/**
 * One complete seeded simulation run: draw the run's settings from the seed, run the faulty
 * phase for `steps` time units with the workload and faults, then the liveness phase.
 *
 * Liveness phase (TigerBeetle VOPR's "liveness mode", hashicorp/raft fuzzy's final check): every
 * partition heals, the network becomes reliable (delay 1–3 units, no loss or duplication),
 * clocks stop skewing, crashed members restart and removed members stop. Within
 * `LIVENESS_ELECTION_TIMEOUTS × electionTicks` ticks (50 × 10 = 500 ticks by default, i.e. 2,000
 * time units) some node must lead, and a fresh proposal made on the leader must be applied by
 * every member (voter and learner) of the latest committed configuration. A proposal that has
 * not committed after two election timeouts is retried with a new value (a leader change may
 * legitimately drop it). Missing the bound is a failure.
 *
 * Determinism: the same seed, steps, node count and fault set give the same run, event for event.
 */
import { RawNode } from '../../raft/raw-node';
import { type Config, type NodeId, type RaftNode } from '../../raft/types';
import { InvariantViolation } from './checkers';
import { RELIABLE_NETWORK, type NetworkCounters } from './network';
import { Prng } from './prng';
import { DEFAULT_CORE_SETTINGS, Simulator, TICK_INTERVAL_UNITS, type CoreSettings, type SimulatorCounters } from './simulator';
import { Workload, type FaultKind, type WorkloadCounters } from './workload';

/** The liveness bound, in election timeouts. */
export const LIVENESS_ELECTION_TIMEOUTS = 50;

/** What to run. */
export interface RunOptions {
  seed: number;
  /** Time units of the faulty phase. */
  steps: number;
  /** Initial voters; drawn from 3–5 when absent. */
  nodes?: number;
  faults: ReadonlySet<FaultKind>;
  /** Builds each core; default `new RawNode(config)`. */
  createNode?: (config: Config) => RaftNode;
  /** Sabotage (b): nodes whose disk drops HardState.vote. */
  forgetVoteNodes?: readonly NodeId[];
  /** Sabotage (a): nodes whose core skips the current-term check on commit; 'all' for every node. */
  unsafeCommitNodes?: readonly NodeId[] | 'all';
  /** Events kept for the failure report. */
  eventHistory?: number;
  /** Skip the liveness phase (sabotage searches only care about safety). */
  skipLiveness?: boolean;
}

/** A safety or liveness failure, with context. */
export interface RunFailure {
  readonly invariant: string;
  readonly message: string;
  /** Simulated time of the failure. */
  readonly time: number;
  readonly phase: 'faults' | 'liveness';
  readonly events: readonly string[];
  readonly stack?: string;
}

/** Everything a run reports. */
export interface RunResult {
  readonly seed: number;
  readonly steps: number;
  readonly ok: boolean;
  readonly failure?: RunFailure;
  readonly settings: string;
  readonly simulator: SimulatorCounters;
  readonly workload: WorkloadCounters;
  readonly network: NetworkCounters;
  readonly checks: number;
  readonly committedIndex: number;
  readonly terms: number;
  /** Ticks the liveness phase needed (undefined if it did not run or failed). */
  readonly livenessTicks?: number;
  readonly elapsedMilliseconds: number;
}

interface DrawnSettings {
  voters: number;
  core: CoreSettings;
  durableStateMachine: boolean;
  snapshotEveryEntries: number;
  compactionRetainEntries: number;
}

function drawSettings(prng: Prng, options: RunOptions): DrawnSettings {
  const core: CoreSettings = {
    ...DEFAULT_CORE_SETTINGS,
    heartbeatTicks: prng.between(1, 3),
    maxSizePerMsgBytes: prng.pick([1, 300, 4096, 1024 * 1024]),
    maxInflightMessages: prng.pick([1, 4, 64, 256]),
    maxInflightBytes: prng.pick([0, 0, 2048]),
    maxUncommittedEntriesBytes: prng.pick([0, 0, 1024]),
    maxCommittedSizePerReadyBytes: prng.pick([1, 512, 1024 * 1024]),
    checkQuorum: prng.chance(0.5),
    preVote: prng.chance(0.5),
    disableProposalForwarding: prng.chance(0.1),
  };
  return {
    voters: options.nodes ?? prng.between(3, 5),
    core,
    durableStateMachine: prng.chance(0.5),
    snapshotEveryEntries: prng.between(10, 60),
    compactionRetainEntries: prng.pick([0, 5, 20]),
  };
}

function describeSettings(settings: DrawnSettings, faults: ReadonlySet<FaultKind>): string {
  const core = settings.core;
  return [
    `voters=${settings.voters}`,
    `faults=${faults.size === 0 ? 'none' : [...faults].join(',')}`,
    `preVote=${core.preVote}`,
    `checkQuorum=${core.checkQuorum}`,
    `heartbeatTicks=${core.heartbeatTicks}`,
    `maxSizePerMsgBytes=${core.maxSizePerMsgBytes}`,
    `maxInflightMessages=${core.maxInflightMessages}`,
    `maxInflightBytes=${core.maxInflightBytes}`,
    `maxUncommittedEntriesBytes=${core.maxUncommittedEntriesBytes}`,
    `maxCommittedSizePerReadyBytes=${core.maxCommittedSizePerReadyBytes}`,
    `forwarding=${!core.disableProposalForwarding}`,
    `stateMachine=${settings.durableStateMachine ? 'durable' : 'volatile'}`,
    `snapshotEvery=${settings.snapshotEveryEntries}`,
    `retain=${settings.compactionRetainEntries}`,
  ].join(' ');
}

/** Builds the simulator of a run (exported for scripted scenarios that start from a seed). */
export function buildRun(options: RunOptions): { simulator: Simulator; workload: Workload; settings: string; prng: Prng } {
  const prng = new Prng(options.seed);
  const settings = drawSettings(prng, options);
  const voters = Array.from({ length: settings.voters }, (_, i) => BigInt(i + 1));
  const simulator = new Simulator({
    prng: prng.fork(),
    voters,
    core: settings.core,
    createNode: options.createNode ?? ((config) => new RawNode(config)),
    durableStateMachine: settings.durableStateMachine,
    snapshotEveryEntries: settings.snapshotEveryEntries,
    compactionRetainEntries: settings.compactionRetainEntries,
    forgetVoteNodes: options.forgetVoteNodes,
    unsafeCommitNodes: options.unsafeCommitNodes === 'all' ? voters.concat([6n, 7n, 8n, 9n, 10n]) : options.unsafeCommitNodes,
    eventHistory: options.eventHistory,
  });
  const faults = options.faults;
  simulator.network.faults = {
    lossProbability: faults.has('loss') ? prng.between(1, 10) / 100 : 0,
    duplicateProbability: faults.has('duplicate') ? prng.between(1, 5) / 100 : 0,
    delayMinimum: 1,
    delayMaximum: faults.has('reorder') ? prng.between(2, 12) : 1,
    longDelayProbability: faults.has('reorder') ? 0.02 : 0,
    longDelayMaximum: faults.has('reorder') ? 80 : 1,
  };
  simulator.faults = {
    readyCrashProbability: faults.has('ready-crash') ? 0.003 : 0,
    snapshotFailureProbability: faults.has('snapshot-failure') ? 0.2 : 0,
    unreachableReportProbability: faults.has('unreachable') ? 0.3 : 0,
    tornSnapshotWrites: faults.has('torn-snapshot-write'),
  };
  if (faults.has('skew')) for (const node of simulator.nodes.values()) node.tickRate = prng.between(50, 100) / 100;
  const workload = new Workload(simulator, prng.fork(), faults);
  return { simulator, workload, settings: describeSettings(settings, faults), prng };
}

/** Runs one seed to completion. Never throws for a failure of the system under test: it reports it. */
export function runSeed(options: RunOptions): RunResult {
  const started = performance.now();
  const { simulator, workload, settings } = buildRun(options);
  let failure: RunFailure | undefined;
  let livenessTicks: number | undefined;
  let phase: 'faults' | 'liveness' = 'faults';
  try {
    for (let step = 0; step < options.steps; step++) {
      workload.step();
      simulator.runTimeUnit();
    }
    if (options.skipLiveness !== true) {
      phase = 'liveness';
      livenessTicks = runLiveness(simulator);
    }
  } catch (error) {
    const violation = error instanceof InvariantViolation;
    failure = {
      invariant: violation ? error.invariant : 'exception',
      message: error instanceof Error ? error.message : String(error),
      time: simulator.now,
      phase,
      events: simulator.recentEvents(),
      stack: violation ? undefined : error instanceof Error ? error.stack : undefined,
    };
  }
  return {
    seed: options.seed,
    steps: options.steps,
    ok: failure === undefined,
    failure,
    settings,
    simulator: simulator.counters,
    workload: workload.counters,
    network: simulator.network.counters,
    checks: simulator.checkers.checks,
    committedIndex: simulator.checkers.maxCommittedIndex,
    terms: simulator.checkers.leaders.size,
    livenessTicks,
    elapsedMilliseconds: performance.now() - started,
  };
}

/**
 * The liveness phase (see the module overview). Returns the ticks it took; throws an
 * InvariantViolation('liveness') when the bound passes.
 */
export function runLiveness(simulator: Simulator): number {
  simulator.record('LIVENESS phase: heal, reliable network, restart crashed members');
  simulator.network.heal();
  simulator.network.faults = { ...RELIABLE_NETWORK, delayMaximum: 3 };
  simulator.faults = { readyCrashProbability: 0, snapshotFailureProbability: 0, unreachableReportProbability: 0 };
  const removed = (): readonly NodeId[] => simulator.checkers.committedConfiguration?.removed ?? [];
  for (const node of simulator.nodes.values()) {
    node.tickRate = 1;
    if (node.status === 'crashed' && !removed().includes(node.id)) simulator.restart(node);
  }
  const electionTicks = DEFAULT_CORE_SETTINGS.electionTicks;
  const boundTicks = LIVENESS_ELECTION_TIMEOUTS * electionTicks;
  const startTime = simulator.now;
  const deadline = startTime + boundTicks * TICK_INTERVAL_UNITS;
  const retryUnits = 2 * electionTicks * TICK_INTERVAL_UNITS;
  const values: string[] = [];
  let proposedAt = -Infinity;
  let attempts = 0;
  while (simulator.now < deadline) {
    for (const id of removed()) {
      const node = simulator.nodes.get(id);
      if (node !== undefined && node.status === 'up') simulator.stop(node, 'removed (liveness phase)');
    }
    simulator.runTimeUnit();
    const configuration = simulator.checkers.committedConfiguration;
    const members = configuration === undefined ? [] : [...configuration.voters, ...configuration.learners];
    for (const value of values) {
      const index = simulator.valueIndexes.get(value);
      if (index === undefined) continue;
      const everyone = members.every((id) => {
        const node = simulator.nodes.get(id);
        return node !== undefined && node.isUp && node.appliedIndex >= index;
      });
      if (everyone) {
        const ticks = Math.ceil((simulator.now - startTime) / TICK_INTERVAL_UNITS);
        simulator.record(`LIVENESS ok: ${value} at ${index} applied by [${members.join(',')}] after ${ticks} ticks`);
        return ticks;
      }
    }
    const leader = simulator.leader();
    if (leader !== undefined && simulator.now - proposedAt >= retryUnits) {
      const raw = leader.raw!;
      const value = `live${++attempts}`;
      const result = raw.propose(new TextEncoder().encode(value));
      simulator.record(`n${leader.id} liveness propose ${value} -> ${result.ok ? 'ok' : result.reason}`);
      proposedAt = simulator.now;
      if (result.ok) values.push(value);
      else simulator.checkers.observeProposalRefused(value, result.reason);
    }
  }
  const configuration = simulator.checkers.committedConfiguration;
  const states = [...simulator.nodes.values()]
    .map((node) => `n${node.id}:${node.status}/${node.role}/t${node.term}/applied ${node.appliedIndex}/last ${node.storage.lastIndex()}`)
    .join(' ');
  throw new InvariantViolation(
    'liveness',
    `no proposal committed on every member within ${boundTicks} ticks after healing (members voters=[${configuration?.voters.join(',')}] learners=[${configuration?.learners.join(',')}]; values ${values.join(',') || 'none accepted'}; nodes ${states})`,
  );
}
