/**
 * The peer transport over gRPC (@grpc/grpc-js), modelled on etcd's rafthttp.
 *
 * Each node runs one gRPC server (service `raftkv.raftpb.RaftTransport`, proto/raft.proto) and
 * one `GrpcPeer` per remote member (transport-grpc-peer.ts), which keeps a long-lived
 * client-streaming `Stream` call carrying MessageBatches and opens a `SendSnapshot` call per
 * snapshot. Messages are encoded by codec.ts; the protobuf types are loaded at run time and wired
 * into grpc-js with explicit serialize/deserialize functions (no proto-loader).
 *
 * Admission (receiver side). Every call carries the cluster ID, the sender's ID and the intended
 * target in its metadata. A call is refused with FAILED_PRECONDITION (and a warning in the log)
 * when the cluster ID differs, when the sender was removed (`removePeer` or the `isRemoved`
 * option), or when the target is not this node. A sender this node does not know yet is
 * admitted: a member just added on its side may speak before this node applies the conf change.
 * Within an admitted stream, each batch is refused as a whole (the call is ended with
 * INVALID_ARGUMENT or FAILED_PRECONDITION) if it does not decode, carries a local message kind
 * or a MsgSnap, names another sender in `from`, or another node in `to`.
 *
 * Snapshots (receiver side). The first chunk carries the MsgSnap, the body size and its SHA-256;
 * the body is handed to `SnapshotSink.receive` and the MsgSnap reaches `onMessage` ONLY AFTER the
 * sink resolved. A sink rejection ends the call with DATA_LOSS, so the sender reports 'failure'.
 */
import * as grpc from '@grpc/grpc-js';
import { MessageType, type Logger, type Message, type NodeId } from '../raft/types';
import {
  decodeMessageBatch,
  decodeSnapshotChunk,
  type DecodeResult,
  type SnapshotChunk,
} from './codec';
import { LEASE_FORWARD_METHOD_PATH, SEND_SNAPSHOT_METHOD_PATH, STREAM_METHOD_PATH } from './raft-proto';
import {
  decodeLeaseForwardRequest,
  decodeLeaseForwardResponse,
  encodeLeaseForwardRequest,
  encodeLeaseForwardResponse,
  type LeaseForwardHandler,
  type LeaseForwardRequest,
  type LeaseForwardResponse,
} from './lease-forward';
import {
  formatNodeId,
  isWireMessageType,
  removedMemberDetails,
  type SnapshotBodyDigest,
  type SnapshotSink,
  type SnapshotSource,
  type Transport,
  type TransportHandler,
} from './transport';
import {
  CLUSTER_ID_METADATA_KEY,
  GrpcPeer,
  SENDER_ID_METADATA_KEY,
  TARGET_ID_METADATA_KEY,
  type GrpcPeerContext,
} from './transport-grpc-peer';
import { onRefusedTlsHandshakes } from './tls-handshake-log';

/** Options of {@link GrpcTransport}. Sizes in bytes, durations in milliseconds. */
export interface GrpcTransportOptions {
  /** This member's ID; never 0. */
  readonly selfId: NodeId;
  /**
   * The cluster ID (cluster-id.ts `clusterIdFor`); calls from other clusters are refused.
   * 0n means "not known yet" (a member started with `--join`): the first call admitted on other
   * grounds teaches it (trust on first use), `onClusterIdLearned` is told, and from then on the
   * check is strict.
   */
  readonly clusterId: bigint;
  /** Called once when a transport started with clusterId 0n learns the cluster ID. */
  readonly onClusterIdLearned?: (clusterId: bigint) => void;
  readonly listenHost: string;
  /** 0 picks a free port; read it from `port` after `start()`. */
  readonly listenPort: number;
  readonly handler: TransportHandler;
  readonly snapshotSource: SnapshotSource;
  readonly snapshotSink: SnapshotSink;
  /** Messages queued per peer before new ones are dropped. Default 4096. */
  readonly queueMessagesMax?: number;
  /** Estimated bytes queued per peer before new messages are dropped. Default 64 MiB. */
  readonly queueBytesMax?: number;
  /** Estimated bytes per MessageBatch write; a larger queue is split. Default 4 MiB. */
  readonly batchBytesMax?: number;
  /**
   * Size of each snapshot body chunk. Default 256 KiB: 300 MB from a snapshot file into one went
   * from 105–136 MB/s with 64 KiB chunks to 144–176 MB/s (1 MiB was no faster).
   */
  readonly snapshotChunkBytes?: number;
  /** First reconnect delay after a stream ends. Default 100 ms. */
  readonly reconnectDelayInitialMs?: number;
  /**
   * Cap of the exponential reconnect delay. Default 1000 ms: a restarted peer is reached within a
   * second (with 5 s, a restarted follower waited up to 5 s for the leader's stream to come back).
   */
  readonly reconnectDelayMaxMs?: number;
  /** Jitter source, a number in [0, 1). Default Math.random (the transport is not simulated). */
  readonly random?: () => number;
  /** Consulted on admission, in addition to `removePeer`: whether `id` was removed. */
  readonly isRemoved?: (id: NodeId) => boolean;
  readonly logger?: Logger;
  /** TLS for the server. Default insecure. */
  readonly serverCredentials?: grpc.ServerCredentials;
  /** TLS for outgoing calls. Default: insecure for http:// peers, system roots for https://. */
  readonly channelCredentials?: grpc.ChannelCredentials;
  /**
   * Answers lease requests forwarded by followers (the node's lessor). Absent: such calls are
   * answered `not-leader`.
   */
  readonly leaseForwardHandler?: LeaseForwardHandler;
}

/** Largest gRPC message accepted or sent (a MessageBatch, a snapshot chunk). */
export const GRPC_MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

type Ack = Record<string, never>;
const EMPTY_ACK_BYTES = Buffer.alloc(0);

/** A refusal sent to the caller as the call's status. */
interface CallRefusal {
  readonly code: grpc.status;
  readonly details: string;
}

type Admission = { readonly ok: true; readonly senderId: NodeId } | ({ readonly ok: false } & CallRefusal);

const NO_OP_LOGGER: Logger = { debug() {}, info() {}, warn() {} };

/** The grpc-js service definition of RaftTransport, with our codec as (de)serializers. */
const RAFT_TRANSPORT_SERVICE: grpc.ServiceDefinition = {
  Stream: {
    path: STREAM_METHOD_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer): DecodeResult<Message[]> => decodeMessageBatch(bytes),
    responseSerialize: () => EMPTY_ACK_BYTES,
    responseDeserialize: (): Ack => ({}),
    originalName: 'stream',
  },
  SendSnapshot: {
    path: SEND_SNAPSHOT_METHOD_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer): DecodeResult<SnapshotChunk> => decodeSnapshotChunk(bytes),
    responseSerialize: () => EMPTY_ACK_BYTES,
    responseDeserialize: (): Ack => ({}),
    originalName: 'sendSnapshot',
  },
  LeaseForward: {
    path: LEASE_FORWARD_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer): DecodeResult<LeaseForwardRequest> => decodeLeaseForwardRequest(bytes),
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
    originalName: 'leaseForward',
  },
};

function parseIdHeader(metadata: grpc.Metadata, key: string): bigint | undefined {
  const value = metadata.get(key)[0];
  if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value)) return undefined;
  const id = BigInt(value);
  return id < 1n << 64n ? id : undefined;
}

/**
 * The gRPC implementation of {@link Transport}. See the module overview for the protocol.
 *
 * Threading: everything runs on the event loop; `send` only queues, and every handler callback
 * runs in a later turn (never inside `send`).
 */
export class GrpcTransport implements Transport {
  private readonly options: GrpcTransportOptions;
  private readonly logger: Logger;
  private readonly peerContext: GrpcPeerContext;
  private readonly server: grpc.Server;
  private readonly peers = new Map<NodeId, GrpcPeer>();
  private readonly removedIds = new Set<NodeId>();
  /** Closers of the calls each sender has open to us, so `removePeer` can end them. */
  private readonly inboundCalls = new Map<NodeId, Set<(refusal: CallRefusal) => void>>();
  private boundPort: number | undefined;
  private stopped = false;

  constructor(options: GrpcTransportOptions) {
    if (options.selfId === 0n) throw new Error('assertion failed: selfId must not be 0');
    this.options = options;
    this.logger = options.logger ?? NO_OP_LOGGER;
    const reconnectDelayInitialMs = options.reconnectDelayInitialMs ?? 100;
    const reconnectDelayMaxMs = options.reconnectDelayMaxMs ?? 1_000;
    this.peerContext = {
      selfId: options.selfId,
      clusterId: options.clusterId,
      handler: options.handler,
      snapshotSource: options.snapshotSource,
      logger: this.logger,
      channelCredentials: options.channelCredentials,
      channelOptions: {
        'grpc.max_receive_message_length': GRPC_MESSAGE_BYTES_MAX,
        'grpc.max_send_message_length': GRPC_MESSAGE_BYTES_MAX,
        'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
        'grpc.keepalive_permit_without_calls': 1,
        // The channel's own reconnection follows the same pace as ours.
        'grpc.initial_reconnect_backoff_ms': reconnectDelayInitialMs,
        'grpc.max_reconnect_backoff_ms': reconnectDelayMaxMs,
        // No channelz statistics: nobody reads them, and they cost on every message.
        'grpc.enable_channelz': 0,
      },
      queueMessagesMax: options.queueMessagesMax ?? 4096,
      queueBytesMax: options.queueBytesMax ?? 64 * 1024 * 1024,
      batchBytesMax: options.batchBytesMax ?? 4 * 1024 * 1024,
      snapshotChunkBytes: options.snapshotChunkBytes ?? 256 * 1024,
      reconnectDelayInitialMs,
      reconnectDelayMaxMs,
      random: options.random ?? Math.random,
    };
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': GRPC_MESSAGE_BYTES_MAX,
      'grpc.max_send_message_length': GRPC_MESSAGE_BYTES_MAX,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      // channelz stays on: see src/api/grpc/etcd-server.ts (forceShutdown needs it).
    });
    this.server.addService(RAFT_TRANSPORT_SERVICE, {
      Stream: (
        call: grpc.ServerReadableStream<DecodeResult<Message[]>, Ack>,
        callback: grpc.sendUnaryData<Ack>,
      ) => this.handleStream(call, callback),
      SendSnapshot: (
        call: grpc.ServerReadableStream<DecodeResult<SnapshotChunk>, Ack>,
        callback: grpc.sendUnaryData<Ack>,
      ) => this.handleSendSnapshot(call, callback),
      LeaseForward: (
        call: grpc.ServerUnaryCall<DecodeResult<LeaseForwardRequest>, Buffer>,
        callback: grpc.sendUnaryData<Buffer>,
      ) => this.handleLeaseForward(call, callback),
    });
  }

  /** Binds the server on `listenHost:listenPort`. Rejects if the address cannot be bound. */
  async start(): Promise<void> {
    if (this.boundPort !== undefined || this.stopped) throw new Error('assertion failed: start() called twice');
    const host = this.options.listenHost.includes(':') ? `[${this.options.listenHost}]` : this.options.listenHost;
    const credentials = this.options.serverCredentials ?? grpc.ServerCredentials.createInsecure();
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${host}:${this.options.listenPort}`, credentials, (error, port) =>
        error === null ? resolve(port) : reject(error),
      );
    });
    this.logger.info('peer transport listening', { local: formatNodeId(this.options.selfId), port: this.boundPort });
    // With TLS, a peer refused at the handshake (no certificate, or one the peer CA did not sign)
    // never reaches admission below: log it here.
    onRefusedTlsHandshakes(this.server, ({ remote, reason }) =>
      this.logger.warn('refused peer TLS handshake', { local: formatNodeId(this.options.selfId), remote, reason }),
    );
  }

  /** The bound port. Throws (a bug) before `start()` resolved. */
  get port(): number {
    if (this.boundPort === undefined) throw new Error('assertion failed: port read before start()');
    return this.boundPort;
  }

  /**
   * Adds a peer and starts connecting to it at once. This node's own ID is ignored (so a caller
   * may pass every member); a removed ID is ignored with a warning; a known peer is re-pointed at
   * `url` (a no-op when unchanged).
   * Throws (a bug) for ID 0 or a URL that is not `http(s)://host:port`.
   */
  addPeer(id: NodeId, url: string): void {
    if (this.stopped || id === this.options.selfId) return;
    if (id === 0n) throw new Error('assertion failed: addPeer of node ID 0');
    if (this.isRemoved(id)) {
      this.logger.warn('ignored addPeer of a removed member', { remote: formatNodeId(id) });
      return;
    }
    const known = this.peers.get(id);
    if (known !== undefined) {
      // Adding a known peer again is harmless (the runtime re-announces members after restarts
      // and snapshots); a new URL re-points it.
      known.updateUrl(url);
      return;
    }
    this.peers.set(id, new GrpcPeer(this.peerContext, id, url));
  }

  /** Removes a peer: its queue is dropped, its calls to us are ended, and it is refused from now on. */
  removePeer(id: NodeId): void {
    this.removedIds.add(id);
    const peer = this.peers.get(id);
    this.peers.delete(id);
    peer?.stop();
    const closers = this.inboundCalls.get(id);
    if (closers !== undefined) {
      for (const close of [...closers]) {
        close({ code: grpc.status.FAILED_PRECONDITION, details: removedMemberDetails(id) });
      }
    }
  }

  /** Points a known peer at a new URL; an unknown one is added. */
  updatePeer(id: NodeId, url: string): void {
    if (this.stopped) return;
    const peer = this.peers.get(id);
    if (peer === undefined) this.addPeer(id, url);
    else peer.updateUrl(url);
  }

  /** Queues each message for its peer. Never blocks or throws (see {@link Transport.send}). */
  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const message of messages) {
      if (!isWireMessageType(message.type)) {
        this.logger.warn('ignored send of a local message kind', { type: message.type });
        continue;
      }
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        this.logger.debug('ignored send to an unknown peer', { remote: formatNodeId(message.to), type: message.type });
        this.reportLater(message);
        continue;
      }
      if (message.type === MessageType.MsgSnap) peer.sendSnapshot(message);
      else peer.enqueue(message);
    }
  }

  /** Stops the server (ending every inbound call) and every peer. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) peer.stop();
    this.peers.clear();
    this.inboundCalls.clear();
    // Inbound streams are long-lived, so a graceful shutdown would wait for ever: force it.
    this.server.forceShutdown();
  }

  /**
   * Forwards a lease request to member `to` (the leader) and resolves with its answer. Rejects
   * when `to` is not a known peer, the call fails, or the deadline (ms since the epoch) passes.
   */
  forwardLease(to: NodeId, request: LeaseForwardRequest, deadline: number): Promise<LeaseForwardResponse> {
    const peer = this.peers.get(to);
    if (peer === undefined || this.stopped) return Promise.reject(new Error(`lease forward: member ${formatNodeId(to)} is not a known peer`));
    return peer.unaryCall(LEASE_FORWARD_METHOD_PATH, encodeLeaseForwardRequest(request), deadline).then((bytes) => {
      const decoded = decodeLeaseForwardResponse(bytes);
      if (!decoded.ok) throw new Error(`lease forward: bad response from ${formatNodeId(to)}: ${decoded.error}`);
      return decoded.value;
    });
  }

  /** For tests and status pages: whether the message stream to `id` is accepted by the peer. */
  isConnected(id: NodeId): boolean {
    return this.peers.get(id)?.connected ?? false;
  }

  /** For tests and status pages: messages queued for `id`. */
  queuedMessages(id: NodeId): number {
    return this.peers.get(id)?.queuedMessages ?? 0;
  }

  private reportLater(message: Message): void {
    setImmediate(() => {
      if (this.stopped) return;
      if (message.type === MessageType.MsgSnap) this.options.handler.reportSnapshot(message.to, 'failure');
      else this.options.handler.reportUnreachable(message.to);
    });
  }

  private isRemoved(id: NodeId): boolean {
    return this.removedIds.has(id) || (this.options.isRemoved?.(id) ?? false);
  }

  private admit(metadata: grpc.Metadata): Admission {
    const refuse = (details: string): Admission => ({ ok: false, code: grpc.status.FAILED_PRECONDITION, details });
    if (this.stopped) return { ok: false, code: grpc.status.UNAVAILABLE, details: 'transport stopped' };
    const clusterId = parseIdHeader(metadata, CLUSTER_ID_METADATA_KEY);
    const senderId = parseIdHeader(metadata, SENDER_ID_METADATA_KEY);
    const targetId = parseIdHeader(metadata, TARGET_ID_METADATA_KEY);
    if (clusterId === undefined || senderId === undefined || senderId === 0n || targetId === undefined) {
      return refuse('missing or malformed raftkv-cluster-id, raftkv-sender-id or raftkv-target-id metadata');
    }
    if (this.peerContext.clusterId === 0n && clusterId !== 0n && targetId === this.options.selfId && !this.isRemoved(senderId)) {
      this.peerContext.clusterId = clusterId;
      this.logger.info('learned the cluster ID from the first peer call', { clusterId: formatNodeId(clusterId), from: formatNodeId(senderId) });
      this.options.onClusterIdLearned?.(clusterId);
    }
    if (clusterId !== this.peerContext.clusterId) {
      return refuse(`cluster ID mismatch: local ${formatNodeId(this.peerContext.clusterId)}, remote ${formatNodeId(clusterId)}`);
    }
    if (targetId !== this.options.selfId) {
      return refuse(`target ID mismatch: this is member ${formatNodeId(this.options.selfId)}, not ${formatNodeId(targetId)}`);
    }
    if (this.isRemoved(senderId)) return refuse(removedMemberDetails(senderId));
    return { ok: true, senderId };
  }

  /** Checks one inbound message of an admitted stream from `senderId`. */
  private checkStreamMessage(message: Message, senderId: NodeId): CallRefusal | undefined {
    if (!isWireMessageType(message.type)) {
      return { code: grpc.status.INVALID_ARGUMENT, details: `local message type ${message.type} on the wire` };
    }
    if (message.type === MessageType.MsgSnap) {
      return { code: grpc.status.INVALID_ARGUMENT, details: 'MsgSnap must be sent with SendSnapshot' };
    }
    return this.checkAddresses(message, senderId);
  }

  private checkAddresses(message: Message, senderId: NodeId): CallRefusal | undefined {
    if (message.from !== senderId) {
      return {
        code: grpc.status.INVALID_ARGUMENT,
        details: `message from ${formatNodeId(message.from)} on the stream of ${formatNodeId(senderId)}`,
      };
    }
    if (message.to !== this.options.selfId) {
      return {
        code: grpc.status.FAILED_PRECONDITION,
        details: `message to ${formatNodeId(message.to)} delivered to member ${formatNodeId(this.options.selfId)}`,
      };
    }
    return undefined;
  }

  private registerInbound(senderId: NodeId, close: (refusal: CallRefusal) => void): () => void {
    let closers = this.inboundCalls.get(senderId);
    if (closers === undefined) this.inboundCalls.set(senderId, (closers = new Set()));
    closers.add(close);
    return () => {
      closers.delete(close);
      if (closers.size === 0 && this.inboundCalls.get(senderId) === closers) this.inboundCalls.delete(senderId);
    };
  }

  private logRefusal(what: string, metadata: grpc.Metadata, refusal: CallRefusal): void {
    this.logger.warn(`refused ${what}`, {
      local: formatNodeId(this.options.selfId),
      sender: String(metadata.get(SENDER_ID_METADATA_KEY)[0] ?? ''),
      code: refusal.code,
      details: refusal.details,
    });
  }

  private handleStream(
    call: grpc.ServerReadableStream<DecodeResult<Message[]>, Ack>,
    callback: grpc.sendUnaryData<Ack>,
  ): void {
    const admission = this.admit(call.metadata);
    if (!admission.ok) {
      this.logRefusal('message stream', call.metadata, admission);
      callback({ code: admission.code, details: admission.details });
      return;
    }
    const senderId = admission.senderId;
    let finished = false;
    const finish = (refusal?: CallRefusal): void => {
      if (finished) return;
      finished = true;
      unregister();
      if (refusal === undefined) callback(null, {});
      else {
        this.logRefusal('message stream', call.metadata, refusal);
        callback({ code: refusal.code, details: refusal.details });
      }
    };
    const unregister = this.registerInbound(senderId, finish);
    // The sender is up: a stream to it that is waiting out a reconnect delay tries again now (a
    // restarted follower hears from the leader within a heartbeat, not after up to a second).
    this.peers.get(senderId)?.peerReachedUs();
    call.on('data', (decoded: DecodeResult<Message[]>) => {
      if (finished) return;
      if (this.stopped) return finish({ code: grpc.status.UNAVAILABLE, details: 'transport stopped' });
      if (!decoded.ok) return finish({ code: grpc.status.INVALID_ARGUMENT, details: `bad MessageBatch: ${decoded.error}` });
      if (this.isRemoved(senderId)) {
        return finish({ code: grpc.status.FAILED_PRECONDITION, details: removedMemberDetails(senderId) });
      }
      // The batch is checked as a whole first, so a bad batch delivers nothing.
      for (const message of decoded.value) {
        const refusal = this.checkStreamMessage(message, senderId);
        if (refusal !== undefined) return finish(refusal);
      }
      for (const message of decoded.value) this.options.handler.onMessage(message);
    });
    call.on('end', () => finish());
    call.on('error', () => {
      finished = true;
      unregister();
    });
    call.on('cancelled', () => {
      finished = true;
      unregister();
    });
    // Response headers tell the sender that the stream was accepted and it may write.
    call.sendMetadata(new grpc.Metadata());
  }

  private handleLeaseForward(call: grpc.ServerUnaryCall<DecodeResult<LeaseForwardRequest>, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    const admission = this.admit(call.metadata);
    if (!admission.ok) {
      this.logRefusal('lease forward', call.metadata, admission);
      callback({ code: admission.code, details: admission.details });
      return;
    }
    if (!call.request.ok) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `bad LeaseForwardRequest: ${call.request.error}` });
      return;
    }
    const handler = this.options.leaseForwardHandler;
    if (handler === undefined) {
      callback(null, encodeLeaseForwardResponse({ outcome: 'not-leader' }));
      return;
    }
    handler(call.request.value).then(
      (response) => callback(null, encodeLeaseForwardResponse(response)),
      (error: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: `lease forward failed: ${error instanceof Error ? error.message : String(error)}` }),
    );
  }

  private handleSendSnapshot(
    call: grpc.ServerReadableStream<DecodeResult<SnapshotChunk>, Ack>,
    callback: grpc.sendUnaryData<Ack>,
  ): void {
    const admission = this.admit(call.metadata);
    if (!admission.ok) {
      this.logRefusal('snapshot', call.metadata, admission);
      callback({ code: admission.code, details: admission.details });
      return;
    }
    let refusedByRemoval: CallRefusal | undefined;
    const unregister = this.registerInbound(admission.senderId, (refusal) => {
      refusedByRemoval = refusal;
      call.destroy(new Error(refusal.details));
    });
    call.on('error', () => {});
    void this.receiveSnapshot(call, admission.senderId).then((refusal) => {
      unregister();
      const outcome = refusedByRemoval ?? refusal;
      if (outcome === undefined) callback(null, {});
      else {
        this.logRefusal('snapshot', call.metadata, outcome);
        callback({ code: outcome.code, details: outcome.details });
      }
    });
  }

  private async receiveSnapshot(
    call: grpc.ServerReadableStream<DecodeResult<SnapshotChunk>, Ack>,
    senderId: NodeId,
  ): Promise<CallRefusal | undefined> {
    const iterator = (call as AsyncIterable<DecodeResult<SnapshotChunk>>)[Symbol.asyncIterator]();
    let first: IteratorResult<DecodeResult<SnapshotChunk>>;
    try {
      first = await iterator.next();
    } catch (error) {
      return { code: grpc.status.CANCELLED, details: `snapshot call broke: ${String(error)}` };
    }
    if (first.done === true) return { code: grpc.status.INVALID_ARGUMENT, details: 'snapshot call without chunks' };
    if (!first.value.ok) return { code: grpc.status.INVALID_ARGUMENT, details: `bad SnapshotChunk: ${first.value.error}` };
    const header = first.value.value.header;
    if (header === undefined) return { code: grpc.status.INVALID_ARGUMENT, details: 'first snapshot chunk has no header' };
    const message = header.message;
    const addressRefusal = this.checkAddresses(message, senderId);
    if (addressRefusal !== undefined) return addressRefusal;

    // A streamed transfer announces its size and digest in a trailer after the body.
    const streamed = header.streamed === true;
    const announcedBytes = header.bodyBytes;
    let trailer: SnapshotBodyDigest | undefined;
    let receivedBytes = 0;
    const firstData = first.value.value.data;
    let complete = false;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      let data: Uint8Array | undefined = firstData;
      for (;;) {
        if (data !== undefined && data.length > 0) {
          receivedBytes += data.length;
          if (!streamed && receivedBytes > announcedBytes) throw new Error(`snapshot body exceeds the announced ${announcedBytes} bytes`);
          yield data;
        }
        const next = await iterator.next();
        if (next.done === true) break;
        if (!next.value.ok) throw new Error(`bad SnapshotChunk: ${next.value.error}`);
        const chunk = next.value.value;
        if (chunk.header !== undefined) throw new Error('snapshot chunk with a second header');
        if (trailer !== undefined) throw new Error('snapshot chunk after the trailer');
        if (chunk.trailer !== undefined) {
          if (!streamed) throw new Error('snapshot trailer in a transfer that announced its size and digest');
          trailer = chunk.trailer;
        }
        data = chunk.data;
      }
      const announced = streamed ? trailer?.bodyBytes : announcedBytes;
      if (announced === undefined) throw new Error(`streamed snapshot ended without its trailer after ${receivedBytes} bytes`);
      if (receivedBytes !== announced) throw new Error(`snapshot body truncated: ${receivedBytes} of ${announced} bytes`);
      complete = true;
    }
    const expected = streamed
      ? (): SnapshotBodyDigest => {
          if (trailer === undefined || !complete) throw new Error('assertion failed: the digest of a streamed snapshot read before its trailer');
          return trailer;
        }
      : { bodyBytes: header.bodyBytes, sha256: header.sha256 };

    const startedAt = Date.now();
    let delivered: Message;
    try {
      delivered = (await this.options.snapshotSink.receive(message, expected, chunks())) ?? message;
    } catch (error) {
      return { code: grpc.status.DATA_LOSS, details: `snapshot not stored: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (!complete) {
      throw new Error('assertion failed: SnapshotSink.receive resolved without consuming the whole body');
    }
    if (this.stopped) return { code: grpc.status.UNAVAILABLE, details: 'transport stopped' };
    if (this.isRemoved(senderId)) {
      return { code: grpc.status.FAILED_PRECONDITION, details: removedMemberDetails(senderId) };
    }
    this.logger.info('snapshot received', {
      local: formatNodeId(this.options.selfId),
      remote: formatNodeId(senderId),
      index: message.snapshot?.metadata.index,
      bodyBytes: receivedBytes,
      streamed,
      durationMs: Date.now() - startedAt,
    });
    this.options.handler.onMessage(delivered);
    return undefined;
  }
}
