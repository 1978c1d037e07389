/**
 * What happens to a simulated cluster: the client workload and the fault injector.
 *
 * Each time unit the workload may, with small probabilities: propose a unique value on a random
 * live node; request a read index; ask the leader to transfer leadership; propose a membership
 * change (add a learner, promote it, add a voter, remove a voter — the leader included — or a
 * learner) or try to re-add a removed ID (which the core must refuse). The fault injector, for
 * the fault kinds enabled, cuts and heals links (symmetric partitions and one-way cuts),
 * crashes and restarts nodes, and sets the per-Ready crash chance; message loss, duplication and
 * reordering are network settings chosen once per run.
 */
import { ConfChangeType, type ConfChange, type NodeId } from '../../raft/types';
import { InvariantViolation } from './checkers';
import type { Prng } from './prng';
import type { Simulator } from './simulator';

/** Fault kinds that can be switched on or off (`--faults`). */
export const FAULT_KINDS = [
  'loss',
  'duplicate',
  'reorder',
  'partition',
  'one-way',
  'crash',
  'ready-crash',
  'skew',
  'snapshot-failure',
  'unreachable',
  'torn-snapshot-write',
] as const;

/** One fault kind. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Parses `all` (every kind; `everything` is an alias), `none`, or a comma-separated list of
 * kinds (which may start with `all`). Throws on unknown names.
 */
export function parseFaults(text: string): Set<FaultKind> {
  if (text === 'everything' || text === 'all') return new Set(FAULT_KINDS);
  if (text === 'none' || text === '') return new Set();
  const out = new Set<FaultKind>();
  for (const name of text.split(',').map((part) => part.trim())) {
    if (name === 'all') {
      for (const kind of FAULT_KINDS) out.add(kind);
      continue;
    }
    if (!(FAULT_KINDS as readonly string[]).includes(name)) throw new Error(`unknown fault kind '${name}' (known: ${FAULT_KINDS.join(', ')})`);
    out.add(name as FaultKind);
  }
  return out;
}

/** Counts of workload actions and outcomes, for reports. */
export interface WorkloadCounters {
  proposalsAccepted: number;
  proposalsRefused: Record<string, number>;
  readsIssued: number;
  transfers: number;
  confChangesAccepted: number;
  confChangesRefused: Record<string, number>;
  readdRefused: number;
  partitions: number;
  oneWayCuts: number;
  heals: number;
  crashes: number;
  restarts: number;
}

/** How many extra node IDs membership changes may introduce per run. */
const EXTRA_NODES_MAXIMUM = 4;
/** Voter-count bounds kept by the membership workload (removals never go below the minimum). */
const VOTERS_MINIMUM = 3;
const VOTERS_MAXIMUM = 5;

const encoder = new TextEncoder();

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** The random workload and fault injector of one run. */
export class Workload {
  readonly counters: WorkloadCounters = {
    proposalsAccepted: 0, proposalsRefused: {}, readsIssued: 0, transfers: 0, confChangesAccepted: 0, confChangesRefused: {},
    readdRefused: 0, partitions: 0, oneWayCuts: 0, heals: 0, crashes: 0, restarts: 0,
  };
  private proposalCounter = 0;
  private readCounter = 0;
  private nextNodeId: bigint;
  private readonly lastNodeId: bigint;

  constructor(private readonly simulator: Simulator, private readonly prng: Prng, readonly faults: ReadonlySet<FaultKind>) {
    let highest = 0n;
    for (const id of simulator.nodes.keys()) if (id > highest) highest = id;
    this.nextNodeId = highest + 1n;
    this.lastNodeId = highest + BigInt(EXTRA_NODES_MAXIMUM);
  }

  /** One time unit's worth of client actions and faults. */
  step(): void {
    const prng = this.prng;
    if (prng.chance(0.1)) this.propose();
    if (prng.chance(0.02)) this.read();
    if (prng.chance(0.002)) this.transfer();
    if (prng.chance(0.004)) this.changeMembership();
    this.stopRemovedNodes();
    this.injectFaults();
  }

  /** Proposes a fresh unique value on a random live node; returns it if accepted. */
  propose(prefix = 'v'): string | undefined {
    const nodes = this.simulator.upNodes();
    if (nodes.length === 0) return undefined;
    const node = this.prng.pick(nodes);
    const value = `${prefix}${++this.proposalCounter}`;
    const result = node.raw!.propose(encoder.encode(value));
    this.simulator.record(`n${node.id} propose ${value} -> ${result.ok ? 'ok' : result.reason}`);
    if (result.ok) {
      this.counters.proposalsAccepted++;
      return value;
    }
    increment(this.counters.proposalsRefused, result.reason);
    this.simulator.checkers.observeProposalRefused(value, result.reason);
    return undefined;
  }

  private read(): void {
    const nodes = this.simulator.upNodes();
    if (nodes.length === 0) return;
    const node = this.prng.pick(nodes);
    const context = `r${++this.readCounter}`;
    this.simulator.checkers.observeReadRequest(context, this.simulator.checkers.maxCommittedIndex);
    const result = node.raw!.readIndex(encoder.encode(context));
    this.counters.readsIssued++;
    this.simulator.record(`n${node.id} readIndex ${context} (floor ${this.simulator.checkers.maxCommittedIndex}) -> ${result.ok ? 'ok' : result.reason}`);
  }

  private transfer(): void {
    const leader = this.simulator.leader();
    if (leader === undefined) return;
    const candidates = leader.confState.voters.filter((id) => id !== leader.id);
    if (candidates.length === 0) return;
    const transferee = this.prng.pick(candidates);
    this.counters.transfers++;
    this.simulator.record(`n${leader.id} transferLeader(${transferee})`);
    leader.raw!.transferLeader(transferee);
  }

  private changeMembership(): void {
    const simulator = this.simulator;
    const leader = simulator.leader();
    if (leader === undefined) return;
    const confState = leader.confState;
    const options: Array<() => ConfChange | undefined> = [];
    const members = confState.voters.length + confState.learners.length;
    if (this.nextNodeId <= this.lastNodeId && members < VOTERS_MAXIMUM + 1) {
      options.push(() => this.newMember(ConfChangeType.AddLearnerNode));
      if (confState.voters.length < VOTERS_MAXIMUM) options.push(() => this.newMember(ConfChangeType.AddNode));
    }
    if (confState.learners.length > 0 && confState.voters.length < VOTERS_MAXIMUM) {
      options.push(() => ({ type: ConfChangeType.AddNode, nodeId: this.prng.pick(confState.learners), context: new Uint8Array(0) }));
    }
    if (confState.voters.length > VOTERS_MINIMUM) {
      options.push(() => ({ type: ConfChangeType.RemoveNode, nodeId: this.prng.pick(confState.voters), context: new Uint8Array(0) }));
    }
    if (confState.learners.length > 0) {
      options.push(() => ({ type: ConfChangeType.RemoveNode, nodeId: this.prng.pick(confState.learners), context: new Uint8Array(0) }));
    }
    if (confState.removed.length > 0) options.push(() => this.readdRemoved(confState.removed));
    if (options.length === 0) return;
    const change = this.prng.pick(options)();
    if (change === undefined) return;
    const result = leader.raw!.proposeConfChange(change);
    simulator.record(`n${leader.id} proposeConfChange ${ConfChangeType[change.type]}(${change.nodeId}) -> ${result.ok ? 'ok' : result.reason}`);
    if (!result.ok) {
      increment(this.counters.confChangesRefused, result.reason);
      return;
    }
    this.counters.confChangesAccepted++;
    // A new member's process starts as soon as its addition is under way (etcd: member add, then start).
    if (!simulator.nodes.has(change.nodeId)) simulator.start(simulator.addNode(change.nodeId));
  }

  private newMember(type: ConfChangeType): ConfChange {
    const nodeId = this.nextNodeId++;
    return { type, nodeId, context: encoder.encode(`peer-${nodeId}`) };
  }

  /** Tries to re-add a removed ID on the leader, which has applied the removal: it must be refused. */
  private readdRemoved(removed: readonly NodeId[]): undefined {
    const leader = this.simulator.leader();
    if (leader === undefined) return undefined;
    const nodeId = this.prng.pick(removed);
    const type = this.prng.chance(0.5) ? ConfChangeType.AddNode : ConfChangeType.AddLearnerNode;
    const result = leader.raw!.proposeConfChange({ type, nodeId, context: new Uint8Array(0) });
    this.simulator.record(`n${leader.id} proposeConfChange re-add removed ${ConfChangeType[type]}(${nodeId}) -> ${result.ok ? 'ok' : result.reason}`);
    if (result.ok) {
      throw new InvariantViolation('configuration', `leader n${leader.id} accepted a proposal re-adding removed ID ${nodeId} (its applied configuration lists it as removed)`);
    }
    this.counters.readdRefused++;
    return undefined;
  }

  /** Removed members get shut down some time after their removal commits (peers tell them). */
  private stopRemovedNodes(): void {
    const configuration = this.simulator.checkers.committedConfiguration;
    if (configuration === undefined || configuration.removed.length === 0) return;
    for (const id of configuration.removed) {
      const node = this.simulator.nodes.get(id);
      if (node !== undefined && node.status !== 'stopped' && this.prng.chance(0.05)) this.simulator.stop(node, 'removed from the cluster');
    }
  }

  private injectFaults(): void {
    const simulator = this.simulator;
    const prng = this.prng;
    const faults = this.faults;
    const network = simulator.network;
    const ids = [...simulator.nodes.keys()];
    if (faults.has('partition') && network.blockedLinkCount === 0 && prng.chance(0.004)) {
      const shuffled = prng.shuffle(ids);
      const cut = prng.between(1, Math.max(1, shuffled.length - 1));
      const sideA = shuffled.slice(0, cut);
      const sideB = shuffled.slice(cut);
      network.partition(sideA, sideB);
      this.counters.partitions++;
      simulator.record(`PARTITION [${sideA.join(',')}] | [${sideB.join(',')}]`);
    }
    if (faults.has('one-way') && prng.chance(0.002) && ids.length > 1) {
      const from = prng.pick(ids);
      const to = prng.pick(ids.filter((id) => id !== from));
      network.blockLink(from, to);
      this.counters.oneWayCuts++;
      simulator.record(`CUT one-way ${from}->${to}`);
    }
    if (network.blockedLinkCount > 0 && prng.chance(0.008)) {
      network.heal();
      this.counters.heals++;
      simulator.record('HEAL all links');
    }
    if (faults.has('crash')) {
      const up = simulator.upNodes();
      if (up.length > 0 && prng.chance(0.003)) {
        simulator.crash(prng.pick(up));
        this.counters.crashes++;
      }
    }
    const removed = simulator.checkers.committedConfiguration?.removed ?? [];
    for (const node of simulator.nodes.values()) {
      if (node.status === 'crashed' && prng.chance(0.02) && !removed.includes(node.id)) {
        simulator.restart(node);
        this.counters.restarts++;
      }
    }
  }
}
