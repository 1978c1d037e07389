/**
 * etcd's Watch service (etcdserverpb.Watch/Watch), a bidirectional stream that multiplexes many
 * watchers, with etcd v3.4.23's behaviour (etcdserver/api/v3rpc/watch.go, mvcc/watcher.go;
 * ETCD_WIRE_NOTES.md §3.4):
 *
 * Requests, answered in the order they arrive:
 * - create: an empty key becomes "\0"; range_end "\0" means every key >= key; a non-empty
 *   range_end <= key is refused. start_revision 0 means "after the current revision"; a past one
 *   replays history, a future one waits. watch_id 0 asks for an automatic id (the lowest id >= the
 *   stream's counter that is not in use; the counter starts at 0); a client-chosen id is honoured
 *   unless it is in use. Reply: `{created, watch_id, header.revision = current}`; a refused create
 *   gets `{created, canceled, watch_id: -1, cancel_reason}`.
 * - cancel: `{canceled, watch_id, header.revision}`; an unknown id gets no reply at all.
 * - progress: `{watch_id: -1, header.revision = current}` (3.4 broadcasts it with id -1).
 *
 * Events: each watcher is pumped from its WatchHub {@link Watcher} (pull-based): the pump pulls
 * the next delivery ONLY while the gRPC stream is writable (no pending 'drain'), so a slow client
 * holds at most one delivery per watcher here and the hub keeps the rest bounded (it falls back
 * to reading history). One delivery (one or more whole revisions, in order) becomes one response,
 * split into fragments when the watcher asked for `fragment` and the response reaches
 * backend.maxRequestBytes with at least two events (etcd sendFragments). A compacted start
 * revision ends the watcher with `{canceled, compact_revision}` and a header WITHOUT revision; its
 * id stays in use until the client cancels it or the stream ends, as in etcd.
 *
 * Progress notifications: watchers created with `progress_notify` get an event-less response
 * with the current revision every `progressNotifyIntervalMs` (etcd: 10 minutes) when nothing was
 * sent to them since the previous tick and they are caught up (synced, nothing queued).
 *
 * Leadership: a stream opened with `hasleader: true` while there is no leader fails at once with
 * Unavailable "etcdserver: no leader"; an open one fails the same way when the LeaderMonitor gives
 * up on the leader. A client half-close ends the stream with OK; either way every watcher is
 * released.
 */
import * as grpc from '@grpc/grpc-js';
import type { EtcdBackend, HeaderFields } from './backend';
import { gatewayErrorStatus, ETCD_MESSAGES, toServiceError, type EtcdStatus } from './etcd-errors';
import {
  boolField,
  bytesField,
  int64NumberField,
  messageCodec,
  messageField,
  oneofCase,
  repeatedInt32Field,
  type ProtoObject,
} from './etcd-proto';
import { encodeHeader, encodeKeyValue } from './kv-codec';
import { requiresLeader, type LeaderMonitor } from './leader-monitor';
import type { ServiceLogger } from './kv-service';
import { batchStreamWrites } from './stream-writes';
import type { Watcher, WatchDelivery } from '../../mvcc/watch-hub';
import { cachedPerObject } from '../../mvcc/per-object-cache';
import type { MvccEvent } from '../../mvcc/types';

/** etcd's default --experimental-watch-progress-notify-interval: 10 minutes. */
export const PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT = 10 * 60 * 1000;

/** The watch id etcd uses for responses that belong to no watcher (progress, refused creates). */
const INVALID_WATCH_ID = -1;

/** WatchCreateRequest.FilterType numbers. */
const FILTER_NO_PUT = 0;
const FILTER_NO_DELETE = 1;

/** Options of {@link createWatchService}. */
export interface WatchServiceOptions {
  /** Period of progress notifications (default {@link PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT}). */
  readonly progressNotifyIntervalMs?: number;
  /** Cancels `hasleader` streams after the leader has been missing long enough. */
  readonly leaderMonitor: LeaderMonitor;
  readonly logger?: ServiceLogger;
}

/** The Watch service: its grpc-js implementation and a way to end every open stream. */
export interface WatchService {
  /** For `server.addService(etcdServiceDefinition('Watch'), implementation)`. */
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Ends every open stream with `status` and releases its watchers (server shutdown). */
  closeAllStreams(status: EtcdStatus): void;
  /** Number of open streams (tests, metrics). */
  openStreamCount(): number;
}

/** Creates the Watch service on `backend`. */
export function createWatchService(backend: EtcdBackend, options: WatchServiceOptions): WatchService {
  const streams = new Set<WatchStream>();
  const progressNotifyIntervalMs = options.progressNotifyIntervalMs ?? PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT;
  const watch: grpc.handleBidiStreamingCall<ProtoObject, ProtoObject> = (call) => {
    if (requiresLeader(call.metadata) && !backend.hasLeader()) {
      call.emit('error', toServiceError(gatewayErrorStatus('hasleader-no-leader')));
      return;
    }
    const stream = new WatchStream(call, backend, progressNotifyIntervalMs, options.logger, () => streams.delete(stream));
    streams.add(stream);
    if (requiresLeader(call.metadata)) stream.onRelease(options.leaderMonitor.register(() => stream.fail(gatewayErrorStatus('hasleader-no-leader'))));
  };
  return {
    implementation: { Watch: watch },
    closeAllStreams: (status) => {
      for (const stream of [...streams]) stream.fail(status);
    },
    openStreamCount: () => streams.size,
  };
}

/** One watcher of a stream. */
interface StreamWatcher {
  readonly id: number;
  readonly watcher: Watcher;
  readonly progressNotify: boolean;
  readonly fragment: boolean;
  /** The response's `watch_id` field, encoded once (empty for id 0, which is not sent). */
  readonly watchIdField: Buffer;
  /** etcd's `progress[id]`: true when nothing was sent since the last progress tick. */
  quietSinceTick: boolean;
  /** The pump is waiting in `watcher.next()` (everything pulled so far was sent). */
  waitingForDelivery: boolean;
  /** Ended by compaction; the id stays in use until canceled. */
  ended: boolean;
}

const watchResponseCodec = messageCodec('etcdserverpb.WatchResponse');
const eventCodec = messageCodec('mvccpb.Event');

/** The server side of one Watch stream. */
class WatchStream {
  private readonly watchers = new Map<number, StreamWatcher>();
  private nextWatchId = 0;
  private closed = false;
  private readonly drainWaiters: Array<() => void> = [];
  private readonly releases: Array<() => void> = [];
  private readonly progressTimer: NodeJS.Timeout;

  constructor(
    private readonly call: grpc.ServerDuplexStream<ProtoObject, ProtoObject>,
    private readonly backend: EtcdBackend,
    progressNotifyIntervalMs: number,
    private readonly logger: ServiceLogger | undefined,
    onClosed: () => void,
  ) {
    this.releases.push(onClosed);
    // A revision fanned out to this stream's watchers is a burst of responses: hand them to
    // HTTP/2 together (stream-writes.ts).
    batchStreamWrites(call);
    call.on('data', (request: ProtoObject) => this.onRequest(request));
    // Half-close by the client: end cleanly (etcd's recvLoop returns nil on io.EOF).
    call.on('end', () => this.finish());
    call.on('cancelled', () => this.release());
    call.on('close', () => this.release());
    call.on('error', () => this.release());
    call.on('drain', () => this.wakeWriters());
    this.progressTimer = setInterval(() => this.progressTick(), progressNotifyIntervalMs);
    this.progressTimer.unref();
  }

  /** Adds a cleanup run when the stream is released. */
  onRelease(release: () => void): void {
    if (this.closed) release();
    else this.releases.push(release);
  }

  /** Ends the stream with an error status and releases every watcher. */
  fail(status: EtcdStatus): void {
    if (this.closed) return;
    this.release();
    this.call.emit('error', toServiceError(status));
  }

  private finish(): void {
    if (this.closed) return;
    this.release();
    this.call.end();
  }

  private release(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.progressTimer);
    for (const entry of this.watchers.values()) entry.watcher.cancel();
    this.watchers.clear();
    this.wakeWriters();
    for (const release of this.releases.splice(0)) release();
  }

  private onRequest(request: ProtoObject): void {
    if (this.closed) return;
    switch (oneofCase(request, 'request_union')) {
      case 'create_request':
        this.create(messageField(request, 'create_request') ?? {});
        return;
      case 'cancel_request':
        this.cancel(int64NumberField(messageField(request, 'cancel_request') ?? {}, 'watch_id'));
        return;
      case 'progress_request':
        this.send({ header: this.header(), watch_id: INVALID_WATCH_ID });
        return;
      default:
        // etcd ignores a request with no member set rather than ending the stream.
        return;
    }
  }

  private header(withRevision = true): ProtoObject {
    const fields = this.backend.header();
    return encodeHeader(fields, withRevision ? fields.revision : 0);
  }

  private create(request: ProtoObject): void {
    let key = bytesField(request, 'key');
    if (key.length === 0) key = Buffer.from([0]);
    const rangeEnd = bytesField(request, 'range_end');
    const header = this.header();
    const refuse = (reason: string) => this.send({ header, watch_id: INVALID_WATCH_ID, created: true, canceled: true, cancel_reason: reason });
    // etcd: a range_end other than "" and "\0" must be greater than the key.
    const fromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    if (rangeEnd.length > 0 && !fromKey && Buffer.compare(key, rangeEnd) >= 0) return refuse(ETCD_MESSAGES.watcherRangeEmpty);
    let id = int64NumberField(request, 'watch_id');
    if (id === 0) {
      while (this.watchers.has(this.nextWatchId)) this.nextWatchId += 1;
      id = this.nextWatchId;
      this.nextWatchId += 1;
    } else if (this.watchers.has(id)) {
      return refuse(ETCD_MESSAGES.watcherDuplicateId);
    }
    const filters = repeatedInt32Field(request, 'filters');
    const watcher = this.backend.watchHub().watch({
      key,
      ...(rangeEnd.length > 0 ? { rangeEnd } : {}),
      startRevision: Math.max(0, int64NumberField(request, 'start_revision')),
      noPut: filters.includes(FILTER_NO_PUT),
      noDelete: filters.includes(FILTER_NO_DELETE),
      prevKv: boolField(request, 'prev_kv'),
    });
    const entry: StreamWatcher = {
      id,
      watcher,
      progressNotify: boolField(request, 'progress_notify'),
      fragment: boolField(request, 'fragment'),
      watchIdField: id === 0 ? EMPTY_FIELD : Buffer.from([WATCH_ID_TAG, ...varintBytes(id)]),
      quietSinceTick: true,
      waitingForDelivery: false,
      ended: false,
    };
    this.watchers.set(id, entry);
    this.send({ header, watch_id: id, created: true });
    void this.pump(entry).catch((error: unknown) => {
      this.logger?.error({ err: error, watchId: id }, 'etcd watch pump failed');
      this.fail({ code: grpc.status.INTERNAL, details: 'etcdserver: watch failed' });
    });
  }

  private cancel(id: number): void {
    const entry = this.watchers.get(id);
    if (entry === undefined) return; // etcd: an unknown id gets no reply
    this.watchers.delete(id);
    entry.watcher.cancel();
    this.send({ header: this.header(), watch_id: id, canceled: true });
  }

  private isCurrent(entry: StreamWatcher): boolean {
    return !this.closed && this.watchers.get(entry.id) === entry;
  }

  /** Moves deliveries of one watcher to the stream, pulling only while the stream is writable. */
  private async pump(entry: StreamWatcher): Promise<void> {
    while (this.isCurrent(entry)) {
      await this.writable();
      if (!this.isCurrent(entry)) return;
      entry.waitingForDelivery = true;
      const delivery: WatchDelivery = await entry.watcher.next();
      entry.waitingForDelivery = false;
      if (!this.isCurrent(entry)) return;
      switch (delivery.kind) {
        case 'events':
          entry.quietSinceTick = false;
          this.sendEvents(entry, delivery.events);
          break;
        case 'compacted':
          entry.ended = true;
          this.send({ header: this.header(false), watch_id: entry.id, canceled: true, compact_revision: delivery.compactRevision });
          return;
        case 'canceled':
          return;
      }
    }
  }

  private sendEvents(entry: StreamWatcher, events: readonly MvccEvent[]): void {
    if (!entry.fragment || events.length < 2) {
      // A pre-encoded response: etcd-proto.ts's serializer passes Buffers through.
      if (!this.closed) this.call.write(encodedEventsResponse(this.backend.header(), entry.watchIdField, events) as unknown as ProtoObject);
      return;
    }
    const base: ProtoObject = { header: this.header(), watch_id: entry.id };
    for (const fragment of splitFragments(base, events.map(encodeEvent), this.backend.maxRequestBytes)) this.send(fragment);
  }

  /** etcd's progress ticker: notify quiet, caught-up watchers that asked for it. */
  private progressTick(): void {
    for (const entry of this.watchers.values()) {
      if (!entry.progressNotify || entry.ended) continue;
      const caughtUp = entry.waitingForDelivery && entry.watcher.isSynced() && entry.watcher.queuedEventCount() === 0;
      if (entry.quietSinceTick && caughtUp) this.send({ header: this.header(), watch_id: entry.id });
      entry.quietSinceTick = true;
    }
  }

  private send(response: ProtoObject): void {
    if (this.closed) return;
    this.call.write(response);
  }

  /** Resolves when the stream has room (no pending 'drain') or is closed. */
  private writable(): Promise<void> {
    if (this.closed || !this.call.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wakeWriters(): void {
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}

/** WatchResponse field tags (rpc.proto): header = 1, watch_id = 2 (varint), events = 11. */
const HEADER_TAG = (1 << 3) | 2;
const WATCH_ID_TAG = (2 << 3) | 0;
const EVENTS_TAG = (11 << 3) | 2;
const headerCodec = messageCodec('etcdserverpb.ResponseHeader');

const EMPTY_FIELD = Buffer.alloc(0);

/** Each event's encoding as a WatchResponse `events` field, made once per event object. */
const encodedEventFields = new WeakMap<MvccEvent, Buffer>();

/** The `events` fields of a delivery, ready to be joined behind a header and a watch_id. */
interface EncodedEvents {
  readonly fields: readonly Buffer[];
  readonly bytes: number;
}

/** The `events` fields of a whole delivery, by its array (the hub shares one array between watchers). */
const encodedDeliveries = new WeakMap<readonly MvccEvent[], EncodedEvents>();
/** The last merged delivery encoded: watchers behind by the same revisions merge equal lists. */
let lastMergedDelivery: { readonly events: readonly MvccEvent[]; readonly encoded: EncodedEvents } | undefined;
/** The last header encoded as a WatchResponse `header` field (a burst shares one revision). */
let lastHeaderField: (HeaderFields & { readonly bytes: Buffer }) | undefined;

/**
 * A WatchResponse `{header, watch_id, events}` as bytes, in field order as Go's encoder writes it.
 * Delivering one revision to a thousand watchers encodes each event and the header once, not a
 * thousand times: only the watch_id differs between them, and each response is one copy of the
 * shared pieces.
 */
function encodedEventsResponse(fields: HeaderFields, watchIdField: Buffer, events: readonly MvccEvent[]): Buffer {
  const last = lastHeaderField;
  const header =
    last !== undefined && last.revision === fields.revision && last.raftTerm === fields.raftTerm && last.memberId === fields.memberId && last.clusterId === fields.clusterId
      ? last.bytes
      : (lastHeaderField = { ...fields, bytes: lengthDelimitedField(HEADER_TAG, headerCodec.encode(encodeHeader(fields, fields.revision))) }).bytes;
  const encoded = encodedEvents(events);
  return Buffer.concat([header, watchIdField, ...encoded.fields], header.length + watchIdField.length + encoded.bytes);
}

/** The `events` fields of `events`, found once per shared list (see encodedDeliveries). */
function encodedEvents(events: readonly MvccEvent[]): EncodedEvents {
  const shared = encodedDeliveries.get(events);
  if (shared !== undefined) return shared;
  const last = lastMergedDelivery;
  if (last !== undefined && last.events.length === events.length && last.events.every((event, index) => event === events[index])) return last.encoded;
  let bytes = 0;
  const fields = events.map((event) => {
    const field = cachedPerObject(encodedEventFields, event, () => lengthDelimitedField(EVENTS_TAG, eventCodec.encode(encodeEvent(event))));
    bytes += field.length;
    return field;
  });
  const encoded = { fields, bytes };
  encodedDeliveries.set(events, encoded);
  lastMergedDelivery = { events, encoded };
  return encoded;
}

function lengthDelimitedField(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag, ...varintBytes(body.length)]), body]);
}

/** The varint encoding of a non-negative safe integer. */
function varintBytes(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return bytes;
}

/** Encodes mvccpb.Event. */
function encodeEvent(event: MvccEvent): ProtoObject {
  const encoded: ProtoObject = { kv: encodeKeyValue(event.kv) };
  if (event.type !== 0) encoded['type'] = event.type;
  if (event.prevKv !== undefined) encoded['prev_kv'] = encodeKeyValue(event.prevKv);
  return encoded;
}

/** Bytes of a varint. */
function varintSizeBytes(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size += 1;
  }
  return size;
}

/**
 * etcd sendFragments: below `maxRequestBytes` (or with fewer than two events) one response;
 * otherwise responses marked `fragment: true`, each taking events while it stays below the limit
 * (at least one), the last one with `fragment` unset.
 */
export function splitFragments(base: ProtoObject, events: readonly ProtoObject[], maxRequestBytes: number): ProtoObject[] {
  // Field 11 (events) has a one-byte tag; each event costs tag + length varint + body.
  const eventSizes = events.map((event) => {
    const size = eventCodec.encode(event).length;
    return 1 + varintSizeBytes(size) + size;
  });
  const baseSizeBytes = watchResponseCodec.encode(base).length;
  const total = eventSizes.reduce((sum, size) => sum + size, baseSizeBytes);
  if (total < maxRequestBytes || events.length < 2) return [{ ...base, events: [...events] }];
  const fragmentBaseSizeBytes = watchResponseCodec.encode({ ...base, fragment: true }).length;
  const responses: ProtoObject[] = [];
  let index = 0;
  while (index < events.length) {
    const taken: ProtoObject[] = [];
    let size = fragmentBaseSizeBytes;
    while (index < events.length) {
      const eventSize = eventSizes[index]!;
      if (taken.length > 0 && size + eventSize >= maxRequestBytes) break;
      taken.push(events[index]!);
      size += eventSize;
      index += 1;
    }
    const last = index === events.length;
    responses.push(last ? { ...base, events: taken } : { ...base, fragment: true, events: taken });
  }
  return responses;
}
