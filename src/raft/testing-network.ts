/**
 * A tiny in-process network of RawNodes for the core's own tests (not the simulator, which lives
 * in src/testing/sim). It handles each Ready exactly as a runtime must (persist to a
 * MemoryStorage, send, apply, advance), delivers messages in FIFO order, and can cut links.
 *
 * Deterministic: randomness comes from a seeded generator per node; nothing reads a clock.
 */
import { bootstrapEntries } from './bootstrap';
import { decodeConfChange } from './conf-change';
import { RawNode } from './raw-node';
import { MemoryStorage } from './storage';
import {
  EntryType,
  MessageType,
  NONE,
  ReadOnlyOption,
  Role,
  type ConfState,
  type Config,
  type Entry,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  type RejectedProposal,
} from './types';
import { assert } from './util';

/** A deterministic generator (mulberry32) for `Config.random`. */
export function seededRandom(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n: number): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(value * n);
  };
}

/** Options of a test network; anything not given gets a small, fast default. */
export interface NetworkOptions {
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  readOnlyOption?: ReadOnlyOption;
  maxSizePerMsgBytes?: number;
  maxInflightMessages?: number;
  maxInflightBytes?: number;
  maxUncommittedEntriesBytes?: number;
  maxCommittedSizePerReadyBytes?: number;
  disableProposalForwarding?: boolean;
  leaseDriftMarginTicks?: number;
  seed?: number;
  /** Deliver snapshots and report 'finish' to the sender automatically (default true). */
  autoReportSnapshots?: boolean;
  /** Last chance to change each node's config. */
  configure?: (config: Config) => void;
}

/** One member of the network: its node, storage and what it applied. */
export interface TestNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  node: RawNode;
  config: Config;
  /** Payloads of the Normal, non-empty entries applied, as text, in order. */
  applied: string[];
  /** Every entry applied (including empty and conf change entries). */
  appliedEntries: Entry[];
  confState: ConfState;
  readStates: ReadState[];
  rejected: RejectedProposal[];
  /** Every Ready handled (for tests that inspect them). */
  readys: Ready[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Text → bytes (for proposals in tests). */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The in-process network. */
export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, FIFO. */
  queue: Message[] = [];
  /** Every message ever sent (handy for assertions). */
  sent: Message[] = [];
  private readonly cutLinks = new Set<string>();
  /** Return false to drop a message (in addition to cut links). */
  filter: ((message: Message) => boolean) | undefined = undefined;
  private nextSeed: number;

  constructor(readonly options: NetworkOptions = {}) {
    this.nextSeed = options.seed ?? 1;
  }

  /** A network whose members were bootstrapped as a new cluster of `ids` (all voters). */
  static bootstrap(ids: readonly number[] | readonly NodeId[], options: NetworkOptions = {}): Network {
    const network = new Network(options);
    const voters = ids.map((id) => BigInt(id));
    for (const id of voters) {
      const storage = new MemoryStorage();
      storage.append(bootstrapEntries(voters));
      storage.setHardState({ term: 1, vote: NONE, commit: voters.length });
      network.add(id, storage);
    }
    // Apply the bootstrap entries so every node knows the configuration.
    network.processReadies();
    return network;
  }

  /**
   * A network holding only node `id` of a cluster bootstrapped with `voters`: its messages stay in
   * `queue` (undeliverable), so a test can inspect them and step replies in by hand.
   */
  static lone(id: number, voters: readonly number[], options: NetworkOptions = {}): Network {
    const network = new Network(options);
    const storage = new MemoryStorage();
    const ids = voters.map((voter) => BigInt(voter));
    storage.append(bootstrapEntries(ids));
    storage.setHardState({ term: 1, vote: NONE, commit: ids.length });
    network.add(id, storage);
    network.processReadies();
    return network;
  }

  /** Removes and returns the queued messages (optionally only those of `type`). */
  take(type?: MessageType): Message[] {
    if (type === undefined) {
      const all = this.queue;
      this.queue = [];
      return all;
    }
    const taken = this.queue.filter((m) => m.type === type);
    this.queue = this.queue.filter((m) => m.type !== type);
    return taken;
  }

  /** The Config a node would get. */
  makeConfig(id: NodeId, storage: MemoryStorage, applied?: number): Config {
    const o = this.options;
    const config: Config = {
      id,
      electionTicks: o.electionTicks ?? 10,
      heartbeatTicks: o.heartbeatTicks ?? 1,
      storage,
      maxSizePerMsgBytes: o.maxSizePerMsgBytes ?? 1024 * 1024,
      maxInflightMessages: o.maxInflightMessages ?? 256,
      maxInflightBytes: o.maxInflightBytes ?? 0,
      maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes ?? 0,
      maxCommittedSizePerReadyBytes: o.maxCommittedSizePerReadyBytes ?? 1024 * 1024,
      checkQuorum: o.checkQuorum ?? false,
      preVote: o.preVote ?? false,
      readOnlyOption: o.readOnlyOption ?? ReadOnlyOption.Safe,
      random: seededRandom(this.nextSeed++),
    };
    if (applied !== undefined) config.applied = applied;
    if (o.disableProposalForwarding !== undefined) config.disableProposalForwarding = o.disableProposalForwarding;
    if (o.leaseDriftMarginTicks !== undefined) config.leaseDriftMarginTicks = o.leaseDriftMarginTicks;
    o.configure?.(config);
    return config;
  }

  /** Adds a node over `storage` (default: empty storage, i.e. a joining node). */
  add(id: NodeId | number, storage: MemoryStorage = new MemoryStorage()): TestNode {
    const nodeId = BigInt(id);
    const config = this.makeConfig(nodeId, storage);
    const member: TestNode = {
      id: nodeId,
      storage,
      node: new RawNode(config),
      config,
      applied: [],
      appliedEntries: [],
      confState: storage.initialState().confState,
      readStates: [],
      rejected: [],
      readys: [],
    };
    this.nodes.set(nodeId, member);
    return member;
  }

  /** The member `id`; asserts it exists. */
  get(id: NodeId | number): TestNode {
    const member = this.nodes.get(BigInt(id));
    assert(member !== undefined, `no node ${String(id)}`);
    return member;
  }

  /** Shorthand for the RawNode of `id`. */
  node(id: NodeId | number): RawNode {
    return this.get(id).node;
  }

  /**
   * Crash and restart `id`: unpersisted state and undelivered messages to it are lost; a new
   * RawNode starts over the same storage, applied = the snapshot's index (everything after it is
   * re-applied, as the contract says).
   */
  restart(id: NodeId | number): TestNode {
    const member = this.get(id);
    this.queue = this.queue.filter((m) => m.to !== member.id);
    const config = this.makeConfig(member.id, member.storage);
    member.node = new RawNode(config);
    member.config = config;
    member.applied = [];
    member.appliedEntries = [];
    member.confState = member.storage.initialState().confState;
    return member;
  }

  /** Handles one Ready of `id` if it has one, following the Ready contract. Returns whether it did. */
  handleReady(id: NodeId | number): boolean {
    const member = this.get(id);
    const node = member.node;
    if (!node.hasReady()) return false;
    const ready = node.ready();
    member.readys.push(ready);
    // 1-2. Persist snapshot, entries, hard state.
    if (ready.snapshot !== undefined) member.storage.applySnapshot(ready.snapshot);
    member.storage.append(ready.entries);
    if (ready.hardState !== undefined) member.storage.setHardState(ready.hardState);
    // 3. Send.
    for (const message of ready.messages) this.send(message);
    // 4. Apply.
    if (ready.snapshot !== undefined) {
      member.confState = ready.snapshot.metadata.confState;
      member.applied = ready.snapshot.data.length === 0 ? [] : decoder.decode(ready.snapshot.data).split('\n');
    }
    for (const entry of ready.committedEntries) {
      member.appliedEntries.push(entry);
      if (entry.type === EntryType.ConfChange) {
        member.confState = node.applyConfChange(decodeConfChange(entry.data));
      } else if (entry.data.length > 0) {
        member.applied.push(decoder.decode(entry.data));
      }
    }
    member.readStates.push(...ready.readStates);
    member.rejected.push(...ready.rejectedProposals);
    // 5. Acknowledge.
    node.advance();
    return true;
  }

  /** Handles Readys on every node until none has one. */
  processReadies(): void {
    for (let progress = true, rounds = 0; progress; rounds++) {
      assert(rounds < 10_000, 'processReadies: no quiescence');
      progress = false;
      for (const id of this.nodes.keys()) if (this.handleReady(id)) progress = true;
    }
  }

  /** Puts a message on the wire (subject to cut links and the filter at delivery time). */
  send(message: Message): void {
    this.sent.push(message);
    this.queue.push(message);
  }

  private dropped(message: Message): boolean {
    if (this.cutLinks.has(`${message.from}-${message.to}`)) return true;
    if (this.filter !== undefined && !this.filter(message)) return true;
    return !this.nodes.has(message.to);
  }

  /** Delivers every message queued right now (not those they cause). Returns how many were delivered. */
  deliver(): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const message of batch) {
      const sender = this.nodes.get(message.from);
      if (this.dropped(message)) {
        if (message.type === MessageType.MsgSnap && sender !== undefined && this.options.autoReportSnapshots !== false) {
          sender.node.reportSnapshot(message.to, 'failure');
        }
        continue;
      }
      this.get(message.to).node.step(message);
      delivered++;
      if (message.type === MessageType.MsgSnap && sender !== undefined && this.options.autoReportSnapshots !== false) {
        sender.node.reportSnapshot(message.to, 'finish');
      }
    }
    return delivered;
  }

  /** Handles Readys and delivers messages until nothing moves. */
  stabilize(): void {
    for (let rounds = 0; ; rounds++) {
      assert(rounds < 10_000, 'stabilize: no quiescence');
      this.processReadies();
      if (this.queue.length === 0) return;
      this.deliver();
    }
  }

  /** Ticks `id` `count` times (no delivery). */
  tick(id: NodeId | number, count = 1): void {
    const node = this.node(id);
    for (let i = 0; i < count; i++) node.tick();
  }

  /** Ticks every node once, then stabilizes; `count` times. */
  tickAll(count = 1): void {
    for (let i = 0; i < count; i++) {
      for (const member of this.nodes.values()) member.node.tick();
      this.stabilize();
    }
  }

  /** Cuts both directions between `a` and `b`. */
  cut(a: NodeId | number, b: NodeId | number): void {
    this.cutLinks.add(`${BigInt(a)}-${BigInt(b)}`);
    this.cutLinks.add(`${BigInt(b)}-${BigInt(a)}`);
  }

  /** Cuts `id` from every other node. */
  isolate(id: NodeId | number): void {
    for (const other of this.nodes.keys()) if (other !== BigInt(id)) this.cut(id, other);
  }

  /** Splits the nodes into groups that cannot talk to each other. */
  partition(...groups: ReadonlyArray<ReadonlyArray<number | NodeId>>): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i]!) for (const b of groups[j]!) this.cut(a, b);
      }
    }
  }

  /** Restores every link. */
  heal(): void {
    this.cutLinks.clear();
  }

  /** Campaigns on `id` and stabilizes; asserts it became leader. */
  elect(id: NodeId | number): RawNode {
    const node = this.node(id);
    node.campaign();
    this.stabilize();
    assert(node.status().softState.role === Role.Leader, `node ${String(id)} did not become leader`);
    return node;
  }

  /** Proposes text on `id` and returns the step result (does not stabilize). */
  propose(id: NodeId | number, text: string): ReturnType<RawNode['propose']> {
    return this.node(id).propose(bytes(text));
  }

  /** The leader with the highest term, if any. */
  leader(): NodeId | undefined {
    let best: NodeId | undefined;
    let bestTerm = -1;
    for (const member of this.nodes.values()) {
      const status = member.node.status();
      if (status.softState.role === Role.Leader && status.hardState.term > bestTerm) {
        best = member.id;
        bestTerm = status.hardState.term;
      }
    }
    return best;
  }

  /**
   * Takes a snapshot of `id`'s applied state at its applied index and compacts its log up to
   * `compactTo` (default: the applied index).
   */
  snapshotAndCompact(id: NodeId | number, compactTo?: number): void {
    const member = this.get(id);
    const applied = member.node.status().applied;
    const snapshot = member.storage.createSnapshot(applied, member.confState, bytes(member.applied.join('\n')));
    assert(typeof snapshot !== 'string', `createSnapshot: ${String(snapshot)}`);
    const result = member.storage.compact(compactTo ?? applied);
    assert(result === 'ok', `compact: ${result}`);
  }
}
