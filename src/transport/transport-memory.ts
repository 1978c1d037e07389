/**
 * An in-process implementation of the transport port, for runtime tests without sockets.
 *
 * A `MemoryNetwork` connects any number of `MemoryTransport`s by node ID. Delivery is
 * asynchronous (each message arrives in a later turn of the event loop, in send order per
 * sender and receiver), so callers see the same re-entrancy rules as with gRPC. Partitions are
 * made with `block(a, b)`: messages between a and b in either direction are dropped (messages
 * already in flight included) and the sender is told the peer is unreachable. Snapshots use the
 * same SnapshotSource/SnapshotSink contract as the gRPC transport: the MsgSnap reaches the
 * receiver only after its sink stored the body.
 */
import { MessageType, type Message, type NodeId } from '../raft/types';
import {
  isWireMessageType,
  type SnapshotBodyDigest,
  type SnapshotSink,
  type SnapshotSource,
  type Transport,
  type TransportHandler,
} from './transport';

/** The medium connecting MemoryTransports. One per simulated cluster. */
export class MemoryNetwork {
  private readonly transports = new Map<NodeId, MemoryTransport>();
  private readonly blockedLinks = new Set<string>();

  /** Drops every message between `a` and `b`, both directions, until unblocked or healed. */
  block(a: NodeId, b: NodeId): void {
    this.blockedLinks.add(linkKey(a, b));
    this.blockedLinks.add(linkKey(b, a));
  }

  /** Undoes `block(a, b)`. */
  unblock(a: NodeId, b: NodeId): void {
    this.blockedLinks.delete(linkKey(a, b));
    this.blockedLinks.delete(linkKey(b, a));
  }

  /** Removes every partition. */
  heal(): void {
    this.blockedLinks.clear();
  }

  /** Whether a message from `from` to `to` would get through now (both attached, no partition). */
  canDeliver(from: NodeId, to: NodeId): boolean {
    return this.transports.has(from) && this.transports.has(to) && !this.blockedLinks.has(linkKey(from, to));
  }

  /** @internal Called by MemoryTransport.start. Throws (a test bug) if the ID is taken. */
  attach(transport: MemoryTransport): void {
    if (this.transports.has(transport.selfId)) {
      throw new Error(`assertion failed: node ${transport.selfId} already attached to this network`);
    }
    this.transports.set(transport.selfId, transport);
  }

  /** @internal Called by MemoryTransport.stop. */
  detach(transport: MemoryTransport): void {
    if (this.transports.get(transport.selfId) === transport) this.transports.delete(transport.selfId);
  }

  /** @internal The transport attached as `id`, if any. */
  lookup(id: NodeId): MemoryTransport | undefined {
    return this.transports.get(id);
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

/** Options of {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  readonly selfId: NodeId;
  readonly handler: TransportHandler;
  readonly snapshotSource: SnapshotSource;
  readonly snapshotSink: SnapshotSink;
}

/** A Transport that delivers through a {@link MemoryNetwork}. Peer URLs are recorded, not used. */
export class MemoryTransport implements Transport {
  /** This node's ID. */
  readonly selfId: NodeId;
  private readonly handler: TransportHandler;
  private readonly snapshotSource: SnapshotSource;
  private readonly snapshotSink: SnapshotSink;
  private readonly peerUrls = new Map<NodeId, string>();
  private readonly removedIds = new Set<NodeId>();
  private running = false;

  constructor(
    private readonly network: MemoryNetwork,
    options: MemoryTransportOptions,
  ) {
    this.selfId = options.selfId;
    this.handler = options.handler;
    this.snapshotSource = options.snapshotSource;
    this.snapshotSink = options.snapshotSink;
  }

  /** Attaches to the network. */
  async start(): Promise<void> {
    this.network.attach(this);
    this.running = true;
  }

  /** Always 0: nothing listens on a socket. */
  get port(): number {
    return 0;
  }

  /** Records the peer; a removed ID is ignored. */
  addPeer(id: NodeId, url: string): void {
    if (!this.removedIds.has(id)) this.peerUrls.set(id, url);
  }

  /** Forgets the peer and refuses its messages from now on. */
  removePeer(id: NodeId): void {
    this.peerUrls.delete(id);
    this.removedIds.add(id);
  }

  /** Records the new URL (an unknown peer is added). */
  updatePeer(id: NodeId, url: string): void {
    this.addPeer(id, url);
  }

  /** The URL recorded for `id`, for tests. */
  peerUrl(id: NodeId): string | undefined {
    return this.peerUrls.get(id);
  }

  /** Delivers each message in a later turn; unknown or partitioned peers are reported unreachable. */
  send(messages: readonly Message[]): void {
    if (!this.running) return;
    for (const message of messages) {
      if (!isWireMessageType(message.type)) continue;
      const deliverable = this.peerUrls.has(message.to) && this.network.canDeliver(this.selfId, message.to);
      if (message.type === MessageType.MsgSnap) {
        void this.transferSnapshot(message, deliverable);
      } else if (!deliverable) {
        setImmediate(() => this.running && this.handler.reportUnreachable(message.to));
      } else {
        setImmediate(() => {
          // A partition made while the message was in flight still drops it.
          if (this.network.canDeliver(this.selfId, message.to)) this.network.lookup(message.to)?.deliver(message);
        });
      }
    }
  }

  /** Detaches from the network; no callback fires afterwards. */
  async stop(): Promise<void> {
    this.running = false;
    this.network.detach(this);
  }

  private accepts(message: Message): boolean {
    return this.running && message.to === this.selfId && !this.removedIds.has(message.from);
  }

  private deliver(message: Message): void {
    if (this.accepts(message)) this.handler.onMessage(message);
  }

  private async transferSnapshot(message: Message, deliverable: boolean): Promise<void> {
    let outcome: 'finish' | 'failure' = 'failure';
    try {
      await Promise.resolve(); // never call back inside send()
      const receiver = this.network.lookup(message.to);
      if (deliverable && receiver !== undefined && receiver.accepts(message)) {
        const opened = await this.snapshotSource.open(message);
        if (opened.digestAfterBody === undefined) {
          if (await receiver.receiveSnapshot(message, { bodyBytes: opened.bodyBytes, sha256: opened.sha256 }, opened.body)) outcome = 'finish';
        } else {
          // A streamed body: its digest is known once the body has been read to its end.
          const digestAfterBody = opened.digestAfterBody;
          let digest: SnapshotBodyDigest | undefined;
          const body = (async function* () {
            yield* opened.body;
            digest = await digestAfterBody;
          })();
          const expected = (): SnapshotBodyDigest => {
            if (digest === undefined) throw new Error('assertion failed: the digest of a streamed snapshot read before its end');
            return digest;
          };
          if (await receiver.receiveSnapshot(message, expected, body)) outcome = 'finish';
        }
      }
    } catch {
      outcome = 'failure';
    }
    if (this.running) this.handler.reportSnapshot(message.to, outcome);
  }

  private async receiveSnapshot(
    message: Message,
    expected: SnapshotBodyDigest | (() => SnapshotBodyDigest),
    body: AsyncIterable<Uint8Array>,
  ): Promise<boolean> {
    const delivered = (await this.snapshotSink.receive(message, expected, body)) ?? message;
    if (!this.accepts(message) || !this.network.canDeliver(message.from, this.selfId)) return false;
    this.handler.onMessage(delivered);
    return true;
  }
}
