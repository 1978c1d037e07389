/**
 * The peer transport port: how a node's runtime hands Raft messages to its peers and receives
 * theirs, whatever carries them (gRPC streams in transport-grpc.ts, an in-process hub in
 * transport-memory.ts).
 *
 * The design follows etcd's rafthttp: ordinary messages travel on one long-lived stream per peer
 * and are dropped (with the peer reported unreachable) rather than queued without bound, because
 * Raft tolerates lost messages and retries by itself; snapshots travel on a separate path, with
 * their body streamed in chunks, so a large snapshot never delays heartbeats. The receiver hands
 * a MsgSnap to Raft only after the body is durable and verified.
 */
import { MessageType, type Message, type NodeId } from '../raft/types';
import type { SnapshotBodyDigest } from './codec';

export type { SnapshotBodyDigest } from './codec';

/**
 * What the transport calls back into the node runtime.
 *
 * CALLBACKS ARE NEVER INVOKED SYNCHRONOUSLY FROM `Transport.send`: the runtime may call `send`
 * while it is in the middle of handling a Ready, and must not be re-entered.
 */
export interface TransportHandler {
  /**
   * A validated message addressed to this node, from a member that is not removed. Messages
   * from one peer arrive in the order that peer sent them (a MsgSnap arrives when its body is
   * durable, which may be after messages sent later).
   */
  onMessage(message: Message): void;
  /** Messages to `id` were dropped or its stream broke; Raft should probe it again. */
  reportUnreachable(id: NodeId): void;
  /** The outcome of sending a MsgSnap to `id` (its body included). */
  reportSnapshot(id: NodeId, outcome: 'finish' | 'failure'): void;
  /**
   * Peer `id` refused this node's stream because it applied this node's removal (etcd: "the
   * member has been permanently removed from the cluster"). The removal is committed, so the
   * node stops, as etcd does: after the leader applied the removal it no longer sends this node
   * the commit index that would let it apply the removal itself.
   */
  reportRemoved?(id: NodeId): void;
}

/** The details of the refusal a removed member's stream gets (FAILED_PRECONDITION). */
export function removedMemberDetails(id: NodeId): string {
  return `member ${formatNodeId(id)} was removed from the cluster`;
}

/** A snapshot body ready to be streamed: its size, checksum and bytes. */
export interface SnapshotBody {
  /** Total size of `body` in bytes (ignored when `digestAfterBody` is set). */
  readonly bodyBytes: number;
  /** SHA-256 of the whole body, 64 lowercase hex digits (ignored when `digestAfterBody` is set). */
  readonly sha256: string;
  /** The body, in pieces of any size; the transport re-chunks it. Iterated at most once. */
  readonly body: AsyncIterable<Uint8Array>;
  /**
   * Set when the body is still being produced while it is sent (an image the leader is cutting
   * right now): its size and SHA-256 are not known in advance. Resolves to them once `body` has
   * been iterated to its end; the transport sends them after the body (a streamed transfer), and
   * the receiver checks the body against them before the MsgSnap reaches Raft, as always.
   */
  readonly digestAfterBody?: Promise<SnapshotBodyDigest>;
}

/** Sender side of snapshots, implemented by the node runtime. */
export interface SnapshotSource {
  /**
   * Opens the state-machine image that `message` (a MsgSnap) describes. A rejection makes the
   * transfer fail (`reportSnapshot(to, 'failure')`). The transport stops iterating the body early
   * (calling its `return`) when the transfer is aborted.
   */
  open(message: Message): Promise<SnapshotBody>;
}

/** Receiver side of snapshots, implemented by the node runtime. */
export interface SnapshotSink {
  /**
   * Consumes the body of the snapshot that `message` (a MsgSnap) describes. MUST resolve only
   * after the body is durable and its size and SHA-256 match `expected`; rejects on any mismatch
   * or I/O failure. `expected` is a function in a streamed transfer: it may be called only after
   * `chunks` has been iterated to its end (it throws before). `chunks` throws if the sender breaks
   * off, sends more or fewer bytes than announced, or sends malformed chunks. The transport
   * delivers the MsgSnap through `TransportHandler.onMessage` ONLY AFTER this resolves: the
   * message this resolves to, or `message` itself if it resolves to nothing (a sink may rewrite
   * the snapshot's data, which a streamed transfer's sender could not complete).
   */
  receive(message: Message, expected: SnapshotBodyDigest | (() => SnapshotBodyDigest), chunks: AsyncIterable<Uint8Array>): Promise<Message | void>;
}

/**
 * The transport of one node.
 *
 * Lifecycle: `start()` once, then any number of peer changes and sends, then `stop()` once.
 * After `stop()` resolves, no handler callback is ever invoked again.
 */
export interface Transport {
  /** Starts listening. Resolves once `port` is known. */
  start(): Promise<void>;
  /** The port this node listens on; only valid after `start()` resolved (useful with port 0). */
  readonly port: number;
  /** Adds a peer reachable at `url` (`http://host:port`, or `https://` with TLS credentials). */
  addPeer(id: NodeId, url: string): void;
  /** Forgets a peer, drops what is queued for it, and FROM THEN ON REJECTS ITS MESSAGES. */
  removePeer(id: NodeId): void;
  /** Points a known peer at a new URL, keeping its queued messages. */
  updatePeer(id: NodeId, url: string): void;
  /**
   * Queues messages for their peers, in order. NEVER BLOCKS OR THROWS: messages that cannot be
   * queued (unknown peer, full queue, local message kinds) are dropped and, for known kinds of
   * trouble, reported through the handler later. MsgSnap goes through the snapshot path.
   */
  send(messages: readonly Message[]): void;
  /** Stops listening, closes every connection and drops every queue. */
  stop(): Promise<void>;
}

/**
 * Whether a message kind may cross the wire. Local kinds (MsgHup, MsgBeat, MsgUnreachable,
 * MsgSnapStatus, MsgCheckQuorum) are only ever stepped into a node by its own runtime; a
 * transport neither sends nor accepts them.
 */
export function isWireMessageType(type: MessageType): boolean {
  switch (type) {
    case MessageType.MsgHup:
    case MessageType.MsgBeat:
    case MessageType.MsgUnreachable:
    case MessageType.MsgSnapStatus:
    case MessageType.MsgCheckQuorum:
      return false;
    default:
      return true;
  }
}

/** A node ID as etcd prints it (lowercase hex), for logs. Never put a bigint in log fields. */
export function formatNodeId(id: NodeId): string {
  return id.toString(16);
}
