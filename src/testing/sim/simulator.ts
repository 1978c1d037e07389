/**
 * The cluster simulator's engine: N simulated servers, one simulated network, one clock, one PRNG.
 *
 * Everything runs in one process on an integer clock (`now`, in time units). Every
 * `TICK_INTERVAL_UNITS` units each live node may tick (its clock rate models skew); messages are
 * delivered when due; every node with a Ready handles it exactly as the runtime contract in
 * types.ts prescribes (persist snapshot, entries, hard state; send; apply; advance), and may crash
 * at any point of that sequence. The invariant checkers (checkers.ts) observe each step.
 *
 * This module is the mechanism; workload.ts decides what happens (client requests, membership
 * changes, faults) and run.ts strings a whole seeded run together. Scripted scenarios (the
 * sabotage tests) drive the same mechanism by hand: `deliverWhere`, `crash`, `restart`,
 * the network's partitions.
 */
import { bootstrapEntries } from '../../raft/bootstrap';
import { decodeConfChange } from '../../raft/conf-change';
import { MemoryStorage } from '../../raft/storage';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  ReadOnlyOption,
  Role,
  type Config,
  type Message,
  type NodeId,
  type RaftNode,
  type Ready,
  type Term,
} from '../../raft/types';
import { Checkers, InvariantViolation, type DurableLogView } from './checkers';
import type { Envelope } from './network';
import { SimNetwork, RELIABLE_NETWORK } from './network';
import type { Prng } from './prng';
import { applyToImage, decodeImage, encodeImage, SimNode } from './sim-node';

/** Time units between tick slots. Message delays are drawn in the same units. */
export const TICK_INTERVAL_UNITS = 4;

/** Points in the handling of a Ready where a crash may strike (everything later is lost). */
export type ReadyCrashPoint = 'before-persist' | 'after-snapshot' | 'after-entries' | 'after-persist' | 'after-send' | 'mid-apply';

/** Every crash point, for drawing one at random. */
export const READY_CRASH_POINTS: readonly ReadyCrashPoint[] = ['before-persist', 'after-snapshot', 'after-entries', 'after-persist', 'after-send', 'mid-apply'];

/** Core settings shared by every node of a run (drawn per seed by the workload). */
export interface CoreSettings {
  electionTicks: number;
  heartbeatTicks: number;
  maxSizePerMsgBytes: number;
  maxInflightMessages: number;
  maxInflightBytes: number;
  maxUncommittedEntriesBytes: number;
  maxCommittedSizePerReadyBytes: number;
  checkQuorum: boolean;
  preVote: boolean;
  disableProposalForwarding: boolean;
}

/** Reasonable defaults (etcd-like, scaled to the simulator). */
export const DEFAULT_CORE_SETTINGS: CoreSettings = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsgBytes: 64 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 0,
  maxUncommittedEntriesBytes: 0,
  maxCommittedSizePerReadyBytes: 1024 * 1024,
  checkQuorum: true,
  preVote: true,
  disableProposalForwarding: false,
});

/** How a simulator is built. */
export interface SimulatorOptions {
  prng: Prng;
  /** IDs of the initial voters (bootstrapped with `bootstrapEntries`). */
  voters: readonly NodeId[];
  core: CoreSettings;
  /** Builds a node's core; the default builds a RawNode. Tests wrap it to sabotage. */
  createNode: (config: Config) => RaftNode;
  /** Per node: whether its state machine is durable (see sim-node.ts). Default: all volatile. */
  durableStateMachine?: boolean;
  /** Create a snapshot and compact after this many applied entries (0 = never). */
  snapshotEveryEntries?: number;
  /** Entries kept behind a compaction (etcd's SnapshotCatchUpEntries). */
  compactionRetainEntries?: number;
  /** Nodes whose "disk" drops HardState.vote (sabotage (b)). */
  forgetVoteNodes?: readonly NodeId[];
  /** Nodes whose core gets testingKnobs.unsafeSkipCommitTermCheck (sabotage (a)). */
  unsafeCommitNodes?: readonly NodeId[];
  /** How many recent events to keep for failure reports. */
  eventHistory?: number;
}

/** Counts of what happened in a run, for reports. */
export interface SimulatorCounters {
  ticks: number;
  readies: number;
  crashes: number;
  readyCrashes: number;
  restarts: number;
  stops: number;
  snapshotsCreated: number;
  snapshotsInstalled: number;
  snapshotReportsFinish: number;
  snapshotReportsFailure: number;
  unreachableReports: number;
  leadersElected: number;
  readStates: number;
  rejectedProposals: number;
  entriesApplied: number;
}

/** The knobs the workload turns while a run is under way. */
export interface FaultSettings {
  /** Chance, per Ready, of crashing somewhere inside its handling. */
  readyCrashProbability: number;
  /** Chance that a delivered MsgSnap is nevertheless reported as failed to its sender. */
  snapshotFailureProbability: number;
  /** Chance that a message dropped by a partition is reported unreachable to its sender. */
  unreachableReportProbability: number;
  /**
   * Whether a crash may fall between persisting Ready.snapshot and persisting Ready.hardState.
   * When false the snapshot, entries and hard state of one Ready are written atomically (one
   * WAL batch); see docs/sim-findings.md finding 1.
   */
  tornSnapshotWrites?: boolean;
}

const decoder = new TextDecoder();

/** Formats a message compactly for event logs. */
export function formatMessage(message: Message): string {
  const type = MessageType[message.type] ?? String(message.type);
  let text = `${type} ${message.from}->${message.to} t${message.term}`;
  if (message.type === MessageType.MsgApp || message.type === MessageType.MsgVote || message.type === MessageType.MsgPreVote) {
    text += ` i${message.index}/lt${message.logTerm}`;
  }
  const first = message.entries[0];
  const last = message.entries[message.entries.length - 1];
  if (first !== undefined && last !== undefined) text += ` e[${first.index}..${last.index}]`;
  if (message.commit !== 0) text += ` c${message.commit}`;
  if (message.reject) text += ` reject(hint ${message.rejectHint})`;
  if (message.snapshot !== undefined) text += ` snap@${message.snapshot.metadata.index}/t${message.snapshot.metadata.term}`;
  if (message.reason !== undefined) text += ` (${message.reason})`;
  return text;
}

/**
 * The simulated cluster. All methods are deterministic given the PRNG and the call sequence.
 * Safety violations surface as thrown {@link InvariantViolation}s.
 */
export class Simulator {
  readonly prng: Prng;
  readonly network: SimNetwork;
  readonly checkers = new Checkers();
  readonly nodes = new Map<NodeId, SimNode>();
  readonly counters: SimulatorCounters = {
    ticks: 0, readies: 0, crashes: 0, readyCrashes: 0, restarts: 0, stops: 0, snapshotsCreated: 0, snapshotsInstalled: 0,
    snapshotReportsFinish: 0, snapshotReportsFailure: 0, unreachableReports: 0, leadersElected: 0, readStates: 0,
    rejectedProposals: 0, entriesApplied: 0,
  };
  faults: FaultSettings = { readyCrashProbability: 0, snapshotFailureProbability: 0, unreachableReportProbability: 0 };
  /** The clock, in time units. */
  now = 0;
  /** value → the index at which it was first applied (for liveness). */
  readonly valueIndexes = new Map<string, number>();
  /** Hook: called with each delivered envelope before it is stepped (tests use it to filter). */
  deliveryFilter: ((envelope: Envelope) => boolean) | undefined;
  private readonly options: SimulatorOptions;
  private readonly events: string[] = [];
  private eventCursor = 0;
  private readonly eventHistory: number;
  private readonly views = new Map<NodeId, DurableLogView>();

  constructor(options: SimulatorOptions) {
    this.options = options;
    this.prng = options.prng;
    this.network = new SimNetwork(options.prng.fork(), RELIABLE_NETWORK);
    this.eventHistory = options.eventHistory ?? 60;
    const entries = bootstrapEntries([...options.voters]);
    for (const id of options.voters) {
      const node = this.addNode(id);
      this.checkers.observeDurableAppend(id, node.view, entries);
      node.storage.append(entries);
      node.storage.setHardState({ term: 1, vote: NONE, commit: entries.length });
      this.start(node);
    }
  }

  /** Records an event for failure reports (kept in a ring of the last `eventHistory`). */
  record(text: string): void {
    const line = `[t=${this.now}] ${text}`;
    if (this.events.length < this.eventHistory) this.events.push(line);
    else {
      this.events[this.eventCursor] = line;
      this.eventCursor = (this.eventCursor + 1) % this.eventHistory;
    }
  }

  /** The recorded events, oldest first. */
  recentEvents(): string[] {
    return [...this.events.slice(this.eventCursor), ...this.events.slice(0, this.eventCursor)];
  }

  /** Nodes whose process runs. */
  upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const node of this.nodes.values()) if (node.isUp) out.push(node);
    return out;
  }

  /** A node by ID; throws if unknown (a bug in the caller). */
  node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`simulator: unknown node ${id}`);
    return node;
  }

  /** The highest term any node has reached (live or on disk). */
  maxTerm(): Term {
    let term = 0;
    for (const node of this.nodes.values()) {
      const durable = node.storage.initialState().hardState.term;
      term = Math.max(term, node.term, durable);
    }
    return term;
  }

  /** Creates a server with an empty disk (not started). */
  addNode(id: NodeId): SimNode {
    if (this.nodes.has(id)) throw new Error(`simulator: node ${id} exists`);
    const node = new SimNode(id, new MemoryStorage(), this.options.durableStateMachine ?? false);
    node.forgetsVote = this.options.forgetVoteNodes?.includes(id) ?? false;
    this.nodes.set(id, node);
    this.views.set(id, node.view);
    return node;
  }

  /**
   * Starts (or restarts) a node's process from its disk, following the restart rule of
   * docs/CONTRACTS.md: `applied` = the snapshot's index; the state machine is the durable one,
   * or — if volatile, or older than the snapshot — restored from the snapshot.
   */
  start(node: SimNode): void {
    if (node.isUp) throw new Error(`simulator: node ${node.id} is already up`);
    const storage = node.storage;
    const snapshot = storage.snapshot();
    if (typeof snapshot === 'string') throw new Error('simulator: snapshot unavailable at start');
    const metadata = snapshot.metadata;
    if (node.durableStateMachine && node.durableImage.index >= metadata.index) {
      node.image = node.durableImage;
    } else {
      const image = decodeImage(snapshot.data);
      this.checkers.observeSnapshotRestore(node.id, metadata.index, metadata.term, image.digest);
      node.image = image;
      node.durableImage = image;
    }
    node.confState = metadata.confState;
    node.confStateIndex = metadata.index;
    node.appliedIndex = metadata.index;
    node.term = storage.initialState().hardState.term;
    node.role = Role.Follower;
    node.lead = NONE;
    node.incarnation++;
    const core = this.options.core;
    const random = this.prng.fork();
    const config: Config = {
      id: node.id,
      electionTicks: core.electionTicks,
      heartbeatTicks: core.heartbeatTicks,
      storage,
      applied: metadata.index,
      maxSizePerMsgBytes: core.maxSizePerMsgBytes,
      maxInflightMessages: core.maxInflightMessages,
      maxInflightBytes: core.maxInflightBytes,
      maxUncommittedEntriesBytes: core.maxUncommittedEntriesBytes,
      maxCommittedSizePerReadyBytes: core.maxCommittedSizePerReadyBytes,
      checkQuorum: core.checkQuorum,
      preVote: core.preVote,
      readOnlyOption: ReadOnlyOption.Safe,
      disableProposalForwarding: core.disableProposalForwarding,
      random: (n) => random.int(n),
    };
    if (this.options.unsafeCommitNodes?.includes(node.id)) config.testingKnobs = { unsafeSkipCommitTermCheck: true };
    node.raw = this.options.createNode(config);
    node.status = 'up';
    this.record(`n${node.id} start #${node.incarnation} term=${node.term} snapshot=${metadata.index} image=${node.image.index}`);
  }

  /** Crashes a node: it loses its core (unstable entries, unsent messages) and, if volatile, its state machine. */
  crash(node: SimNode, reason = 'crash'): void {
    if (!node.isUp) return;
    node.raw = undefined;
    node.status = 'crashed';
    node.role = Role.Follower;
    this.counters.crashes++;
    this.record(`n${node.id} CRASH (${reason})`);
  }

  /** Restarts a crashed node. */
  restart(node: SimNode): void {
    if (node.status !== 'crashed') return;
    this.counters.restarts++;
    this.start(node);
  }

  /** Stops a node for good (it was removed from the cluster). */
  stop(node: SimNode, reason: string): void {
    if (node.status === 'stopped') return;
    node.raw = undefined;
    node.status = 'stopped';
    node.role = Role.Follower;
    this.counters.stops++;
    this.record(`n${node.id} STOP (${reason})`);
  }

  /** Ticks every live node once per tick slot, each with the chance of its clock rate. */
  tickSlot(): void {
    for (const node of this.nodes.values()) {
      if (!node.isUp || node.removedSelf) continue;
      if (node.tickRate < 1 && !this.prng.chance(node.tickRate)) continue;
      node.raw?.tick();
      this.counters.ticks++;
    }
  }

  /** Runs one time unit: ticks on tick slots, deliveries, Ready handling, durability check. */
  runTimeUnit(): void {
    this.now++;
    if (this.now % TICK_INTERVAL_UNITS === 0) this.tickSlot();
    this.deliverDue();
    this.handleAllReadies();
    this.checkers.checkCommittedDurability(this.views);
  }

  /**
   * Advances time WITHOUT ticking until no message is in flight and no Ready is pending
   * (scripted scenarios: with no ticks there are no heartbeats or timeouts, so it quiesces).
   */
  settle(maximumUnits = 10_000): void {
    for (let unit = 0; unit < maximumUnits; unit++) {
      this.handleAllReadies();
      const pending = this.upNodes().some((node) => node.raw !== undefined && node.raw.hasReady());
      if (this.network.inFlight === 0 && !pending) return;
      this.now++;
      this.deliverDue();
      this.handleAllReadies();
      this.checkers.checkCommittedDurability(this.views);
    }
    throw new Error(`simulator: did not settle within ${maximumUnits} time units`);
  }

  /** Delivers every message due now. */
  deliverDue(): void {
    for (let due = this.network.takeDue(this.now); due !== undefined; due = this.network.takeDue(this.now)) {
      if (due.outcome === 'partitioned') this.dropped(due.envelope, 'partitioned in flight');
      else this.deliver(due.envelope);
    }
  }

  /** Handles Readies of every live node until none has one (bounded), in a random order. */
  handleAllReadies(): void {
    for (let round = 0; round < 4; round++) {
      let any = false;
      for (const node of this.prng.shuffle(this.upNodes())) {
        if (node.raw !== undefined && node.raw.hasReady()) {
          any = true;
          this.handleReady(node);
        }
      }
      if (!any) return;
    }
  }

  /** Hands a message from a node's Ready to the network. */
  send(node: SimNode, message: Message): void {
    const outcome = this.network.send(message, this.now, node.incarnation);
    if (outcome.queued === 2 && message.type === MessageType.MsgProp) {
      for (const entry of message.entries) if (entry.type === EntryType.Normal) this.checkers.observeProposalDuplicated(decoder.decode(entry.data));
    }
    if (outcome.dropped !== undefined) {
      this.dropped({ message, sentAt: this.now, deliverAt: this.now, sequence: -1, senderIncarnation: node.incarnation, duplicate: false }, outcome.dropped);
    }
  }

  /** A message did not arrive: tell the sender what a real transport would. */
  private dropped(envelope: Envelope, reason: string): void {
    const message = envelope.message;
    const sender = this.nodes.get(message.from);
    if (sender === undefined || !sender.isUp || sender.incarnation !== envelope.senderIncarnation) return;
    if (message.type === MessageType.MsgSnap) {
      this.reportSnapshot(sender, message.to, 'failure');
    } else if (reason !== 'lost' && this.prng.chance(this.faults.unreachableReportProbability)) {
      sender.raw?.reportUnreachable(message.to);
      this.counters.unreachableReports++;
    }
  }

  private reportSnapshot(sender: SimNode, to: NodeId, outcome: 'finish' | 'failure'): void {
    sender.raw?.reportSnapshot(to, outcome);
    if (outcome === 'finish') this.counters.snapshotReportsFinish++;
    else this.counters.snapshotReportsFailure++;
    this.record(`n${sender.id} reportSnapshot(${to}, ${outcome})`);
  }

  /** Delivers one message to its recipient (dropped if the recipient is down). */
  deliver(envelope: Envelope): void {
    const message = envelope.message;
    if (this.deliveryFilter !== undefined && !this.deliveryFilter(envelope)) {
      this.record(`filtered ${formatMessage(message)}`);
      this.dropped(envelope, 'filtered');
      return;
    }
    const recipient = this.nodes.get(message.to);
    if (recipient === undefined || !recipient.isUp || recipient.raw === undefined) {
      this.dropped(envelope, 'recipient down');
      return;
    }
    this.record(`deliver ${formatMessage(message)}`);
    const result = recipient.raw.step(message);
    if (!result.ok) this.record(`n${recipient.id} step refused: ${result.reason}`);
    if (message.type === MessageType.MsgSnap) {
      const sender = this.nodes.get(message.from);
      if (sender !== undefined && sender.isUp && sender.incarnation === envelope.senderIncarnation) {
        this.reportSnapshot(sender, message.to, this.prng.chance(this.faults.snapshotFailureProbability) ? 'failure' : 'finish');
      }
    }
    if (message.type === MessageType.MsgVoteResp || message.type === MessageType.MsgPreVoteResp) this.noteLeadership(recipient);
  }

  /** Checks whether `node` is leader now (between Readies) and records it for election safety. */
  noteLeadership(node: SimNode): void {
    const raw = node.raw;
    if (raw === undefined) return;
    const status = raw.status();
    if (status.softState.role === Role.Leader) this.checkers.observeLeader(node.id, status.hardState.term);
  }

  /** Makes `node` campaign now and records the outcome. */
  campaign(node: SimNode): void {
    this.record(`n${node.id} campaign`);
    node.raw?.campaign();
    this.noteLeadership(node);
  }

  /**
   * Handles one Ready of `node` following the contract in types.ts, possibly crashing part-way
   * (with `faults.readyCrashProbability`, at a random point).
   */
  handleReady(node: SimNode): void {
    const raw = node.raw;
    if (raw === undefined) return;
    const ready = raw.ready();
    this.counters.readies++;
    const id = node.id;
    let crashAt: ReadyCrashPoint | undefined = this.prng.chance(this.faults.readyCrashProbability) ? this.prng.pick(READY_CRASH_POINTS) : undefined;
    if (ready.snapshot !== undefined && this.faults.tornSnapshotWrites !== true && (crashAt === 'after-snapshot' || crashAt === 'after-entries')) {
      crashAt = 'after-persist';
    }
    if (ready.hardState !== undefined) node.term = ready.hardState.term;
    let becameLeader = false;
    if (ready.softState !== undefined) {
      node.role = ready.softState.role;
      node.lead = ready.softState.lead;
      if (node.role === Role.Leader) {
        becameLeader = true;
        this.counters.leadersElected++;
        this.checkers.observeLeader(id, raw.status().hardState.term);
        this.record(`n${id} LEADER of term ${raw.status().hardState.term}`);
      }
    }
    this.record(`n${id} ready${this.describeReady(ready)}`);
    if (crashAt === 'before-persist') return this.crashInReady(node, crashAt);

    // 1. The snapshot, before anything else.
    const snapshot = ready.snapshot;
    if (snapshot !== undefined) {
      this.checkers.observeSnapshotInstall(id, node.view, snapshot.metadata.index);
      const outcome = node.storage.applySnapshot(snapshot);
      if (outcome !== 'ok') throw new InvariantViolation('ready-contract', `n${id}: Ready.snapshot at ${snapshot.metadata.index} is not newer than the stored snapshot (${outcome})`);
      this.counters.snapshotsInstalled++;
    }
    if (crashAt === 'after-snapshot') return this.crashInReady(node, crashAt);
    // 2. Entries, then the hard state.
    if (ready.entries.length > 0) {
      this.checkers.observeDurableAppend(id, node.view, ready.entries);
      node.storage.append(ready.entries);
    }
    if (crashAt === 'after-entries') return this.crashInReady(node, crashAt);
    if (ready.hardState !== undefined) {
      const hardState = ready.hardState;
      if (hardState.commit > node.storage.lastIndex()) {
        throw new InvariantViolation('ready-contract', `n${id}: HardState.commit ${hardState.commit} is ahead of the persisted log (last ${node.storage.lastIndex()})`);
      }
      node.storage.setHardState(node.forgetsVote ? { ...hardState, vote: NONE } : hardState);
    }
    if (crashAt === 'after-persist') return this.crashInReady(node, crashAt);
    if (becameLeader) this.checkers.observeLeaderLog(id, raw.status().hardState.term, node.view);
    // 3. Messages.
    for (const message of ready.messages) {
      if (message.to === id) throw new InvariantViolation('ready-contract', `n${id}: Ready holds a message to itself: ${formatMessage(message)}`);
      this.send(node, message);
    }
    if (crashAt === 'after-send') return this.crashInReady(node, crashAt);
    // 4. Apply the snapshot, then the committed entries.
    if (snapshot !== undefined) {
      const image = decodeImage(snapshot.data);
      this.checkers.observeSnapshotRestore(id, snapshot.metadata.index, snapshot.metadata.term, image.digest);
      node.image = image;
      if (node.durableStateMachine) node.durableImage = image;
      node.appliedIndex = snapshot.metadata.index;
      node.confState = snapshot.metadata.confState;
      node.confStateIndex = snapshot.metadata.index;
      this.checkers.observeConfState(id, snapshot.metadata.index, snapshot.metadata.confState);
    }
    const crashIndex = crashAt === 'mid-apply' && ready.committedEntries.length > 0 ? this.prng.int(ready.committedEntries.length) : -1;
    for (let position = 0; position < ready.committedEntries.length; position++) {
      if (position === crashIndex) return this.crashInReady(node, crashAt ?? 'mid-apply');
      const entry = ready.committedEntries[position]!;
      if (entry.index !== node.appliedIndex + 1) {
        throw new InvariantViolation('ready-contract', `n${id}: committed entry ${entry.index} does not follow applied index ${node.appliedIndex}`);
      }
      if (node.storage.term(entry.index) !== entry.term) {
        throw new InvariantViolation('ready-contract', `n${id}: committed entry ${entry.index} (term ${entry.term}) is not durable on this node`);
      }
      if (entry.type === EntryType.ConfChange) {
        const change = decodeConfChange(entry.data);
        const confState = raw.applyConfChange(change);
        node.confState = confState;
        node.confStateIndex = entry.index;
        this.checkers.observeConfState(id, entry.index, confState);
        this.record(`n${id} applied conf change ${ConfChangeType[change.type]}(${change.nodeId}) at ${entry.index} -> voters=[${confState.voters.join(',')}] learners=[${confState.learners.join(',')}]`);
        if (change.type === ConfChangeType.RemoveNode && change.nodeId === id && confState.removed.includes(id)) node.removedSelf = true;
      }
      if (entry.index > node.image.index) {
        node.image = applyToImage(node.image, entry);
        if (node.durableStateMachine) node.durableImage = node.image;
        this.checkers.observeApplied(id, entry, node.image.digest, this.maxTerm());
        this.counters.entriesApplied++;
        if (entry.type === EntryType.Normal && entry.data.length > 0) {
          const value = decoder.decode(entry.data);
          this.checkers.observeValueCommitted(value, entry.index);
          if (!this.valueIndexes.has(value)) this.valueIndexes.set(value, entry.index);
        }
      }
      node.appliedIndex = entry.index;
    }
    for (const readState of ready.readStates) {
      this.counters.readStates++;
      this.checkers.observeReadState(id, decoder.decode(readState.context), readState.index);
    }
    for (const rejected of ready.rejectedProposals) {
      this.counters.rejectedProposals++;
      for (const entry of rejected.entries) {
        if (entry.type === EntryType.Normal && entry.data.length > 0) this.checkers.observeProposalRejected(decoder.decode(entry.data), rejected.reason);
      }
    }
    // 5. Advance.
    raw.advance();
    this.maybeSnapshot(node);
    if (node.removedSelf) this.stop(node, 'applied its own removal');
  }

  private crashInReady(node: SimNode, point: ReadyCrashPoint): void {
    this.counters.readyCrashes++;
    this.crash(node, `in Ready, ${point}`);
  }

  /** Every `snapshotEveryEntries` applied entries: snapshot the state machine and compact. */
  private maybeSnapshot(node: SimNode): void {
    const every = this.options.snapshotEveryEntries ?? 0;
    if (every <= 0 || node.image.index !== node.appliedIndex) return;
    if (node.appliedIndex - node.lastSnapshotIndex < every) return;
    const snapshot = node.storage.createSnapshot(node.appliedIndex, node.confState, encodeImage(node.image));
    node.lastSnapshotIndex = node.appliedIndex;
    if (typeof snapshot === 'string') return;
    this.counters.snapshotsCreated++;
    const compactTo = node.appliedIndex - (this.options.compactionRetainEntries ?? 0);
    if (compactTo >= node.storage.firstIndex()) node.storage.compact(compactTo);
    this.record(`n${node.id} snapshot at ${node.appliedIndex}, compacted to ${compactTo}`);
  }

  private describeReady(ready: Ready): string {
    let text = '';
    if (ready.softState !== undefined) text += ` soft(${ready.softState.role}, lead ${ready.softState.lead})`;
    if (ready.hardState !== undefined) text += ` hard(t${ready.hardState.term}, v${ready.hardState.vote}, c${ready.hardState.commit})`;
    if (ready.snapshot !== undefined) text += ` snapshot@${ready.snapshot.metadata.index}`;
    const first = ready.entries[0];
    if (first !== undefined) text += ` entries[${first.index}..${first.index + ready.entries.length - 1}]`;
    const committedFirst = ready.committedEntries[0];
    if (committedFirst !== undefined) text += ` commit[${committedFirst.index}..${committedFirst.index + ready.committedEntries.length - 1}]`;
    if (ready.messages.length > 0) text += ` msgs=${ready.messages.length}`;
    return text;
  }

  /** Durable log views of every node (live or not), for the durability checker. */
  durableViews(): ReadonlyMap<NodeId, DurableLogView> {
    return this.views;
  }

  /** The up node that believes it is leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (!node.isUp || node.role !== Role.Leader) continue;
      if (best === undefined || node.term > best.term) best = node;
    }
    return best;
  }
}
