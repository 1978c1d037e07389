/**
 * The sending half of the gRPC transport: one `GrpcPeer` per remote member.
 *
 * Message stream. A peer keeps one long-lived `RaftTransport.Stream` call open. The receiver
 * answers with response headers as soon as it accepts the stream (cluster ID, sender and target
 * checked); only then is the peer "connected" and only then does it write. While not connected,
 * messages wait in a bounded queue; each turn of the event loop, everything queued is encoded
 * into one MessageBatch (split only past `batchBytesMax`) and written once. When the call's
 * write buffer is full, writing pauses until it drains, and the queue absorbs the difference.
 *
 * Bounds. The queue holds at most `queueMessagesMax` messages and `queueBytesMax` estimated
 * bytes. Past either bound new messages are DROPPED and the peer is reported unreachable (once
 * per event-loop turn), as etcd's rafthttp does: Raft retries by itself, memory must not grow.
 *
 * Failure. When the call ends for any reason, the peer is reported unreachable and a new call is
 * attempted after an exponential back-off (initial → max, doubled per failed attempt, with
 * jitter from the injected random source); the back-off resets once a call is accepted.
 *
 * Snapshots. A MsgSnap is sent on its own `RaftTransport.SendSnapshot` call, over a separate
 * channel (its own TCP connection), so a large body never queues behind or ahead of heartbeats.
 * The outcome is reported through `reportSnapshot`.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger, Message, NodeId } from '../raft/types';
import { encodeMessageBatch, encodeSnapshotChunk, estimateEncodedBytes } from './codec';
import { SEND_SNAPSHOT_METHOD_PATH, STREAM_METHOD_PATH } from './raft-proto';
import { formatNodeId, removedMemberDetails, type SnapshotSource, type TransportHandler } from './transport';

/** Call metadata key: the cluster ID, decimal. */
export const CLUSTER_ID_METADATA_KEY = 'raftkv-cluster-id';
/** Call metadata key: the sending member's ID, decimal. */
export const SENDER_ID_METADATA_KEY = 'raftkv-sender-id';
/** Call metadata key: the member the sender means to reach, decimal. */
export const TARGET_ID_METADATA_KEY = 'raftkv-target-id';

/** Everything a peer needs from its transport; shared by all peers of one transport. */
export interface GrpcPeerContext {
  readonly selfId: NodeId;
  /** 0n until a joining member learns it from the first admitted call (then set once). */
  clusterId: bigint;
  readonly handler: TransportHandler;
  readonly snapshotSource: SnapshotSource;
  readonly logger: Logger;
  /** Overrides the credentials chosen from the URL scheme (insecure for http, TLS for https). */
  readonly channelCredentials: grpc.ChannelCredentials | undefined;
  readonly channelOptions: grpc.ChannelOptions;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly batchBytesMax: number;
  readonly snapshotChunkBytes: number;
  readonly reconnectDelayInitialMs: number;
  readonly reconnectDelayMaxMs: number;
  /** Returns a number in [0, 1); used only for back-off jitter. */
  readonly random: () => number;
}

/** Where a peer's message stream stands. */
type StreamState = 'connecting' | 'connected' | 'backing-off' | 'stopped';

type Ack = Record<string, never>;

const EMPTY_BYTES = new Uint8Array(0);

function identity(buffer: Buffer): Buffer {
  return buffer;
}

function decodeAck(): Ack {
  // Acks are empty messages; any payload is ignored (forward compatible).
  return {};
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Parses a peer URL into a gRPC target ("host:port"). Throws on a URL that is not
 * `http://host:port` or `https://host:port` (a configuration bug).
 */
export function grpcTargetOf(url: string): { target: string; secure: boolean } {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`peer URL ${url}: scheme must be http or https`);
  }
  if (parsed.port === '') throw new Error(`peer URL ${url}: an explicit port is required`);
  return { target: parsed.host, secure: parsed.protocol === 'https:' };
}

/** Builds the metadata every call to `targetId` carries. */
export function callMetadataFor(context: GrpcPeerContext, targetId: NodeId): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(CLUSTER_ID_METADATA_KEY, context.clusterId.toString());
  metadata.set(SENDER_ID_METADATA_KEY, context.selfId.toString());
  metadata.set(TARGET_ID_METADATA_KEY, targetId.toString());
  return metadata;
}

/**
 * The sending side towards one remote member. Owned by GrpcTransport; every method is called
 * from the transport only, and none throws on network conditions.
 */
export class GrpcPeer {
  private url: string;
  private client: grpc.Client;
  private snapshotClient: grpc.Client | undefined;
  private state: StreamState = 'connecting';
  private call: grpc.ClientWritableStream<Buffer> | undefined;
  private waitingForDrain = false;
  private queue: Message[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private droppedSinceReport = 0;
  private failedAttempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly snapshotCalls = new Set<grpc.ClientWritableStream<Buffer>>();

  constructor(
    private readonly context: GrpcPeerContext,
    /** The remote member's ID. */
    readonly id: NodeId,
    url: string,
  ) {
    this.url = url;
    this.client = this.createClient(false);
    this.connect();
  }

  /** Queues a message (not a MsgSnap) or drops it when the queue is full. Never throws. */
  enqueue(message: Message): void {
    if (this.state === 'stopped') return;
    const bytes = estimateEncodedBytes(message);
    if (this.queue.length >= this.context.queueMessagesMax || this.queuedBytes + bytes > this.context.queueBytesMax) {
      this.droppedSinceReport++;
    } else {
      this.queue.push(message);
      this.queuedBytes += bytes;
    }
    this.scheduleFlush();
  }

  /** Starts sending a MsgSnap and its body; the outcome is reported later. Never throws. */
  sendSnapshot(message: Message): void {
    if (this.state === 'stopped') return;
    void this.transferSnapshot(message).then((outcome) => {
      if (this.state !== 'stopped') this.context.handler.reportSnapshot(this.id, outcome);
    });
  }

  /**
   * One unary call on the peer's channel (encoded request → encoded response), with this
   * transport's admission metadata. Rejects on any call failure or when `deadline` (ms since
   * the epoch) passes.
   */
  unaryCall(path: string, request: Buffer, deadline: number): Promise<Buffer> {
    if (this.state === 'stopped') return Promise.reject(new Error('peer stopped'));
    return new Promise<Buffer>((resolve, reject) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(
        path,
        identity,
        identity,
        request,
        callMetadataFor(this.context, this.id),
        { deadline },
        (error, response) => {
          if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
          else resolve(response);
        },
      );
    });
  }

  /** Points the peer at a new URL: the current calls end, queued messages are kept. */
  updateUrl(url: string): void {
    if (this.state === 'stopped' || url === this.url) return;
    this.url = url;
    this.closeConnections();
    this.connectAfresh();
  }

  /**
   * The remote member opened a stream to us, so it is up: if the stream to it is waiting out a
   * reconnect delay, connect now, on a fresh channel (the old one may be in its own back-off).
   */
  peerReachedUs(): void {
    if (this.state !== 'backing-off') return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.client.close();
    this.context.logger.debug('peer reached us: reconnecting at once', this.logFields());
    this.connectAfresh();
  }

  /** Opens the message stream at once on a new channel, with the back-off reset. */
  private connectAfresh(): void {
    this.client = this.createClient(false);
    this.failedAttempts = 0;
    this.connect();
  }

  /** Ends every call, drops the queue; no callback fires afterwards. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.queue = [];
    this.queuedBytes = 0;
    this.closeConnections();
  }

  /** For tests and status pages: number of messages waiting to be written. */
  get queuedMessages(): number {
    return this.queue.length;
  }

  /** For tests and status pages: whether the message stream is accepted by the peer. */
  get connected(): boolean {
    return this.state === 'connected';
  }

  private createClient(forSnapshots: boolean): grpc.Client {
    const { target, secure } = grpcTargetOf(this.url);
    const credentials =
      this.context.channelCredentials ?? (secure ? grpc.credentials.createSsl() : grpc.credentials.createInsecure());
    // Snapshot calls get their own subchannel (and so their own TCP connection): HTTP/2 flow
    // control alone does not stop a large body from filling the socket ahead of heartbeats.
    const options = forSnapshots
      ? { ...this.context.channelOptions, 'grpc.use_local_subchannel_pool': 1 }
      : this.context.channelOptions;
    return new grpc.Client(target, credentials, options);
  }

  private closeConnections(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const call = this.call;
    this.call = undefined;
    this.waitingForDrain = false;
    call?.cancel();
    for (const snapshotCall of this.snapshotCalls) snapshotCall.cancel();
    this.snapshotCalls.clear();
    this.client.close();
    this.snapshotClient?.close();
    this.snapshotClient = undefined;
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    this.state = 'connecting';
    const call = this.client.makeClientStreamRequest<Buffer, Ack>(
      STREAM_METHOD_PATH,
      identity,
      decodeAck,
      callMetadataFor(this.context, this.id),
      {},
      (error) => this.onStreamEnded(call, error),
    );
    this.call = call;
    call.on('metadata', () => {
      if (this.call !== call || this.state === 'stopped') return;
      this.state = 'connected';
      if (this.failedAttempts > 0) this.context.logger.info('peer stream connected', this.logFields());
      this.failedAttempts = 0;
      this.scheduleFlush();
    });
    call.on('drain', () => {
      if (this.call !== call) return;
      this.waitingForDrain = false;
      this.scheduleFlush();
    });
  }

  private onStreamEnded(call: grpc.ClientWritableStream<Buffer>, error: grpc.ServiceError | null): void {
    if (this.call !== call || this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.call = undefined;
    this.waitingForDrain = false;
    const fields = { ...this.logFields(), code: error?.code, details: error?.details ?? 'stream closed by peer' };
    if (error?.code === grpc.status.FAILED_PRECONDITION) {
      this.context.logger.warn('peer refused the message stream', fields);
      if (error.details === removedMemberDetails(this.context.selfId)) this.context.handler.reportRemoved?.(this.id);
    } else if (wasConnected || this.failedAttempts === 0) {
      this.context.logger.warn('peer stream broken', fields);
    } else {
      this.context.logger.debug('peer stream attempt failed', fields);
    }
    this.context.handler.reportUnreachable(this.id);
    const delayMs = this.nextReconnectDelayMs();
    this.failedAttempts++;
    this.state = 'backing-off';
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** Exponential back-off with "equal jitter": half the delay fixed, half random. */
  private nextReconnectDelayMs(): number {
    const exponent = Math.min(this.failedAttempts, 30);
    const ceilingMs = Math.min(this.context.reconnectDelayMaxMs, this.context.reconnectDelayInitialMs * 2 ** exponent);
    return ceilingMs / 2 + (ceilingMs / 2) * this.context.random();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.state === 'stopped') return;
    if (this.droppedSinceReport > 0) {
      this.context.logger.debug('dropped messages: peer queue full', {
        ...this.logFields(),
        dropped: this.droppedSinceReport,
      });
      this.droppedSinceReport = 0;
      this.context.handler.reportUnreachable(this.id);
    }
    const call = this.call;
    if (this.state !== 'connected' || call === undefined) return;
    while (this.queue.length > 0 && !this.waitingForDrain) {
      const batch = this.takeBatch();
      if (!call.write(asBuffer(encodeMessageBatch(batch)))) this.waitingForDrain = true;
    }
  }

  /** Removes and returns the longest queue prefix within `batchBytesMax` (at least one message). */
  private takeBatch(): Message[] {
    let count = 0;
    let bytes = 0;
    for (const message of this.queue) {
      const messageBytes = estimateEncodedBytes(message);
      if (count > 0 && bytes + messageBytes > this.context.batchBytesMax) break;
      count++;
      bytes += messageBytes;
    }
    this.queuedBytes -= bytes;
    if (count === this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      return batch;
    }
    return this.queue.splice(0, count);
  }

  private async transferSnapshot(message: Message): Promise<'finish' | 'failure'> {
    let opened;
    try {
      opened = await this.context.snapshotSource.open(message);
    } catch (error) {
      this.context.logger.warn('cannot open snapshot to send', { ...this.logFields(), error: String(error) });
      return 'failure';
    }
    if (this.state === 'stopped') return 'failure';
    this.snapshotClient ??= this.createClient(true);
    let settle: (error: grpc.ServiceError | null) => void = () => {};
    const ended = new Promise<grpc.ServiceError | null>((resolve) => (settle = resolve));
    let finished = false;
    const call = this.snapshotClient.makeClientStreamRequest<Buffer, Ack>(
      SEND_SNAPSHOT_METHOD_PATH,
      identity,
      decodeAck,
      callMetadataFor(this.context, this.id),
      {},
      (error) => {
        finished = true;
        settle(error);
      },
    );
    this.snapshotCalls.add(call);
    const startedAt = Date.now();
    const streamed = opened.digestAfterBody !== undefined;
    // Observed after the body (a source that fails rejects it and breaks off the body too).
    opened.digestAfterBody?.catch(() => undefined);
    let sentBytes = 0;
    try {
      // A streamed header carries no size or digest (encodeSnapshotChunk leaves them out).
      const header = { message, bodyBytes: opened.bodyBytes, sha256: opened.sha256, streamed };
      call.write(asBuffer(encodeSnapshotChunk({ header, data: EMPTY_BYTES })));
      const chunkBytes = this.context.snapshotChunkBytes;
      for await (const piece of opened.body) {
        for (let offset = 0; offset < piece.length && !finished; offset += chunkBytes) {
          const data = piece.subarray(offset, Math.min(piece.length, offset + chunkBytes));
          sentBytes += data.length;
          if (!call.write(asBuffer(encodeSnapshotChunk({ data })))) await waitForDrain(call, ended);
        }
        if (finished) break;
      }
      if (!finished && opened.digestAfterBody !== undefined) {
        const trailer = await opened.digestAfterBody;
        if (sentBytes !== trailer.bodyBytes) throw new Error(`snapshot source produced ${sentBytes} bytes, its digest says ${trailer.bodyBytes}`);
        if (!finished) call.write(asBuffer(encodeSnapshotChunk({ trailer, data: EMPTY_BYTES })));
      } else if (!finished && sentBytes !== opened.bodyBytes) {
        // The source broke its own contract; the receiver would refuse the body anyway.
        throw new Error(`snapshot source produced ${sentBytes} bytes, announced ${opened.bodyBytes}`);
      }
      if (!finished) call.end();
    } catch (error) {
      this.context.logger.warn('snapshot body could not be read', { ...this.logFields(), error: String(error) });
      call.cancel();
    }
    const error = await ended;
    this.snapshotCalls.delete(call);
    const fields = { ...this.logFields(), index: message.snapshot?.metadata.index, bodyBytes: sentBytes, streamed, durationMs: Date.now() - startedAt };
    if (error !== null) {
      this.context.logger.warn('snapshot send failed', { ...fields, code: error.code, details: error.details });
      return 'failure';
    }
    this.context.logger.info('snapshot sent', fields);
    return 'finish';
  }

  private logFields(): Record<string, unknown> {
    return { local: formatNodeId(this.context.selfId), remote: formatNodeId(this.id), url: this.url };
  }
}

/** Resolves when `call` can take more writes, or when it has ended (so a writer never hangs). */
function waitForDrain(call: grpc.ClientWritableStream<Buffer>, ended: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      resolve();
    };
    call.on('drain', done);
    void ended.then(done);
  });
}
