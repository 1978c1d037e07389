/**
 * The simulated network: an in-process, seeded model of an unreliable asynchronous network.
 *
 * Every message the cores emit is handed to `send`, which may lose it, duplicate it, or give it
 * a random delay (so messages overtake each other: reordering). Links can be cut in one
 * direction or both (partitions); a cut applies to messages sent while it holds and to messages
 * already in flight whose delivery time falls while it holds. Time is the simulator's integer
 * clock (`now`, in time units); nothing here reads a real clock. The network never inspects
 * message contents: which message kinds are local, and what to do with a drop (for example
 * `reportUnreachable`), is the simulator's business.
 */
import type { Message, NodeId } from '../../raft/types';
import type { Prng } from './prng';

/** How unreliable the network is. Probabilities are per message; delays in time units. */
export interface NetworkFaults {
  /** Probability that a sent message is silently lost. */
  lossProbability: number;
  /** Probability that a sent message is delivered twice (each copy with its own delay). */
  duplicateProbability: number;
  /** Every message takes a delay drawn uniformly from [delayMinimum, delayMaximum]. */
  delayMinimum: number;
  delayMaximum: number;
  /** Probability of a long delay instead, drawn from [delayMinimum, longDelayMaximum]. */
  longDelayProbability: number;
  longDelayMaximum: number;
}

/** A perfect network: no loss, no duplication, a fixed one-unit delay (so FIFO per link). */
export const RELIABLE_NETWORK: NetworkFaults = Object.freeze({
  lossProbability: 0,
  duplicateProbability: 0,
  delayMinimum: 1,
  delayMaximum: 1,
  longDelayProbability: 0,
  longDelayMaximum: 1,
});

/** A message in flight. `senderIncarnation` lets the simulator ignore reports to a restarted sender. */
export interface Envelope {
  readonly message: Message;
  readonly sentAt: number;
  readonly deliverAt: number;
  /** Global send order; breaks ties between equal delivery times deterministically. */
  readonly sequence: number;
  readonly senderIncarnation: number;
  /** True for the extra copy made by duplication. */
  readonly duplicate: boolean;
}

/** What became of one `send`. */
export interface SendOutcome {
  /** Copies queued for delivery (0, 1, or 2 when duplicated). */
  readonly queued: number;
  /** Why the message was dropped at once, if it was. */
  readonly dropped?: 'lost' | 'partitioned';
}

/** One due message: deliver it, or it hit a partition in flight and is dropped. */
export interface DueMessage {
  readonly envelope: Envelope;
  readonly outcome: 'deliver' | 'partitioned';
}

/** Counters for reports and verbose output. */
export interface NetworkCounters {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  partitionDrops: number;
  discarded: number;
}

/** A binary min-heap of envelopes ordered by (deliverAt, sequence). */
class EnvelopeHeap {
  private readonly items: Envelope[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Envelope | undefined {
    return this.items[0];
  }

  push(envelope: Envelope): void {
    const items = this.items;
    items.push(envelope);
    let child = items.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!before(items[child] as Envelope, items[parent] as Envelope)) break;
      swap(items, child, parent);
      child = parent;
    }
  }

  pop(): Envelope | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let parent = 0;
      for (;;) {
        const left = parent * 2 + 1;
        const right = left + 1;
        let smallest = parent;
        if (left < items.length && before(items[left] as Envelope, items[smallest] as Envelope)) smallest = left;
        if (right < items.length && before(items[right] as Envelope, items[smallest] as Envelope)) smallest = right;
        if (smallest === parent) break;
        swap(items, parent, smallest);
        parent = smallest;
      }
    }
    return top;
  }

  drain(): Envelope[] {
    return this.items.splice(0, this.items.length);
  }
}

function before(a: Envelope, b: Envelope): boolean {
  return a.deliverAt < b.deliverAt || (a.deliverAt === b.deliverAt && a.sequence < b.sequence);
}

function swap(items: Envelope[], i: number, j: number): void {
  const value = items[i] as Envelope;
  items[i] = items[j] as Envelope;
  items[j] = value;
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

/**
 * The network. Deterministic given its PRNG and the sequence of calls.
 *
 * Contract: `takeDue(now)` returns messages in (deliverAt, sequence) order and never returns a
 * message before its delivery time. A message is delivered at most once per copy.
 */
export class SimNetwork {
  /** Current fault settings; the simulator may swap them (for example to heal for liveness). */
  faults: NetworkFaults;
  readonly counters: NetworkCounters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, partitionDrops: 0, discarded: 0 };
  private readonly heap = new EnvelopeHeap();
  private readonly blocked = new Set<string>();
  private sequence = 0;

  constructor(private readonly prng: Prng, faults: NetworkFaults) {
    this.faults = faults;
  }

  /** Messages in flight. */
  get inFlight(): number {
    return this.heap.size;
  }

  /** Hands a message to the network at time `now`. */
  send(message: Message, now: number, senderIncarnation: number): SendOutcome {
    this.counters.sent++;
    if (this.isBlocked(message.from, message.to)) {
      this.counters.partitionDrops++;
      return { queued: 0, dropped: 'partitioned' };
    }
    const faults = this.faults;
    if (this.prng.chance(faults.lossProbability)) {
      this.counters.lost++;
      return { queued: 0, dropped: 'lost' };
    }
    const copies = this.prng.chance(faults.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      this.heap.push({
        message,
        sentAt: now,
        deliverAt: now + this.drawDelay(),
        sequence: this.sequence++,
        senderIncarnation,
        duplicate: copy === 1,
      });
    }
    return { queued: copies };
  }

  /** Removes and returns the next message due at or before `now`, or undefined. */
  takeDue(now: number): DueMessage | undefined {
    const top = this.heap.peek();
    if (top === undefined || top.deliverAt > now) return undefined;
    this.heap.pop();
    if (this.isBlocked(top.message.from, top.message.to)) {
      this.counters.partitionDrops++;
      return { envelope: top, outcome: 'partitioned' };
    }
    this.counters.delivered++;
    return { envelope: top, outcome: 'deliver' };
  }

  /** The earliest delivery time in flight, or undefined when the network is empty. */
  nextDeliveryTime(): number | undefined {
    return this.heap.peek()?.deliverAt;
  }

  /** Drops every message in flight (used by scripted scenarios); returns them. */
  discardAll(): Envelope[] {
    const dropped = this.heap.drain();
    this.counters.discarded += dropped.length;
    return dropped;
  }

  /** Cuts the link from `from` to `to` (one way). */
  blockLink(from: NodeId, to: NodeId): void {
    this.blocked.add(linkKey(from, to));
  }

  /** Restores the link from `from` to `to`. */
  unblockLink(from: NodeId, to: NodeId): void {
    this.blocked.delete(linkKey(from, to));
  }

  /** Cuts every link between the two sides, both ways (a symmetric partition). */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        if (a === b) continue;
        this.blockLink(a, b);
        this.blockLink(b, a);
      }
    }
  }

  /** Cuts `node` off from every node in `others`, both ways. */
  isolate(node: NodeId, others: readonly NodeId[]): void {
    this.partition([node], others);
  }

  /** Restores every link. */
  heal(): void {
    this.blocked.clear();
  }

  /** True when messages from `from` to `to` are currently dropped. */
  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(linkKey(from, to));
  }

  /** Number of cut directed links. */
  get blockedLinkCount(): number {
    return this.blocked.size;
  }

  private drawDelay(): number {
    const faults = this.faults;
    if (this.prng.chance(faults.longDelayProbability)) return this.prng.between(faults.delayMinimum, faults.longDelayMaximum);
    return this.prng.between(faults.delayMinimum, faults.delayMaximum);
  }
}
