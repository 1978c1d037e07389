/**
 * The watch benchmark (issue 8: "Watch: 1,000 watchers on one prefix, 1,000 Puts/s: every event
 * delivered; delivery p99 ≤ etcd's"), run against raftkv and etcd 3.4 with the same client.
 *
 * Shape (etcd's `benchmark watch-latency`: streams × watchers per stream):
 * 0. An unmeasured warm-up: steps 1 and 2 on another prefix for {@link WATCH_WARMUP_SECONDS},
 *    drained, its streams closed.
 * 1. `streams` gRPC Watch streams, each on its own connection, spread round-robin over the three
 *    members; `watchers` watchers on the prefix `watch-bench/` spread evenly over the streams.
 *    Puts start only once every watcher has its `created` response.
 * 2. Puts at a fixed OPEN-LOOP rate (`putRate`/s, issued on schedule whatever the answers do)
 *    for `seconds`, spread over one KV connection per member. Each value carries the put's
 *    sequence number and the time it was sent (performance.now(), this process).
 * 3. Every delivery is checked, none sampled: a count per (watcher, put) in a byte array, the
 *    mod_revision order per watcher, and the delivery latency (receive − send) of every event in
 *    a histogram. After the last put has been answered the benchmark waits until every expected
 *    event has arrived, until no event has arrived for {@link DRAIN_QUIET_MS}, or at most
 *    {@link DRAIN_LIMIT_MS}. Events still missing then are diagnosed: one more put shows whether
 *    the watchers still receive anything, and puts that reached no watcher are read back from the
 *    store at their revision (were they written at all?).
 * 4. The highest Raft term of the members before and after: a rise means leader elections
 *    during the run (a server starved by the fan-out misses heartbeats).
 *
 * The client must not be the bottleneck, and on a two-core machine shared with three servers it
 * can be: watchers × put rate events per second all go through one Node thread. So the result
 * says when the generator fell behind — put rate achieved below target, its CPU near a whole
 * core, or its event loop late — and the figures of such a run describe the generator, not the
 * server. The receive path is kept small: the Watch streams are spoken over node:http2 directly
 * (bench/raw-grpc-stream.ts) and each response goes as raw bytes to a hand decoder
 * (bench/watch-decoder.ts) that allocates nothing. Measured against etcd 3.4, 1,000 watchers,
 * 20,000 events/s, the generator's whole CPU per delivered event was 4.9–5.6 µs this way and
 * 7.0–7.7 µs with a grpc-js client (raw Buffer deserializer, the same hand decoder); decoding
 * itself is 0.25 µs of either (protobufjs `decode`: about 1 µs; with `toObject`: 5 µs).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { messageCodec, type ProtoObject } from '../src/api/grpc/etcd-proto';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { connect, memberStatus, unary, type BenchTarget, type EtcdClient } from './etcd-bench';
import { comparisonRows, processCpuSeconds, type Measure } from './load';
import { RawGrpcStream } from './raw-grpc-stream';
import { decodeWatchResponse, type WatchResponseSummary } from './watch-decoder';

/** What to run. */
export interface WatchBenchOptions {
  /** Watchers in all (default 1,000 in the issue). */
  readonly watchers: number;
  /** gRPC Watch streams the watchers are spread over. */
  readonly streams: number;
  /** Puts per second, open loop. */
  readonly putRate: number;
  /** Seconds of puts. */
  readonly seconds: number;
  readonly progress: (line: string) => void;
}

/** The outcome of one run against one system. */
export interface WatchResult {
  readonly label: string;
  /** Puts the schedule asked for, issued, answered OK, failed, and skipped (too many in flight). */
  readonly putsScheduled: number;
  readonly putsIssued: number;
  readonly putsSucceeded: number;
  readonly putsFailed: number;
  readonly putsSkipped: number;
  /** Puts issued per second over the put phase. */
  readonly putRateAchieved: number;
  /** Put latency (sent → answered), ms. */
  readonly putP99Ms: number;
  /** Events the successful puts must produce: putsSucceeded × watchers. */
  readonly eventsExpected: number;
  /** Every event received for a put of this run (duplicates included). */
  readonly eventsDelivered: number;
  /** (watcher, successful put) pairs never delivered. */
  readonly eventsMissing: number;
  /** Deliveries beyond the first of a (watcher, put) pair. */
  readonly eventsDuplicated: number;
  /** Events whose mod_revision was not above the previous one of the same watcher. */
  readonly eventsOutOfOrder: number;
  /** Events of puts that were answered with an error (a put can fail at the client and commit). */
  readonly eventsOfFailedPuts: number;
  /** Events that were not from this run's puts or could not be read. */
  readonly eventsUnexpected: number;
  /** Successful puts whose event reached no watcher at all, and some but not all watchers. */
  readonly putsDeliveredToNone: number;
  readonly putsDeliveredToSome: number;
  /** Events per watch response that carried events (the server's batching). */
  readonly eventsPerResponse: number;
  /** Delivery latency of every delivered event (receive − send of its put), ms. */
  readonly deliveryP50Ms: number;
  readonly deliveryP99Ms: number;
  readonly deliveryMaxMs: number;
  /** CPU of the three servers from the first put to the end of the drain, per delivered event. */
  readonly serverCpuMicrosPerEvent: number;
  /** CPU of this process (the generator) per delivered event, and as a share of one core. */
  readonly clientCpuMicrosPerEvent: number;
  readonly clientCpuCorePercent: number;
  /** How late the generator's event loop ran during the run (p99 and max), ms. */
  readonly clientLoopDelayP99Ms: number;
  readonly clientLoopDelayMaxMs: number;
  /** Why the generator, not the server, may have limited this run (empty: it kept up). */
  readonly generatorLimits: readonly string[];
  /** Failures: a stream error, a refused watcher, events missing at the end, ... */
  readonly failures: readonly string[];
  /** Seconds from the first put to the end of the drain. */
  readonly elapsedSeconds: number;
  /** Highest Raft term of the members before the puts and after the drain: a rise means elections during the run. */
  readonly raftTermBefore: number;
  readonly raftTermAfter: number;
}

/** Bytes of each put's value: sequence number (u32 LE) and send time (f64 LE), then padding. */
export const WATCH_VALUE_BYTES = 32;
const PREFIX = 'watch-bench/';
/** The warm-up's prefix: its watchers and events never reach the measured ones. */
const WARMUP_PREFIX = 'watch-warmup/';
/**
 * Seconds of the same load (watchers, streams, put rate) on {@link WARMUP_PREFIX} before the
 * measured run, for both systems: a freshly started Node process runs its first seconds of any
 * load in unoptimised code (in a traced run, raftkv's proposal-to-apply p50 was 19–42 ms in the
 * first four seconds of 1,000 Puts/s and 6–14 ms after), which is start-up, not steady state.
 * The etcd-API section warms up both systems the same way.
 */
export const WATCH_WARMUP_SECONDS = 5;
/** Keys the puts cycle through under the prefix. */
const KEY_COUNT = 100;
/** Most puts awaiting an answer; beyond it a scheduled put is skipped (and reported). */
const PUTS_IN_FLIGHT_MAX = 5_000;
const PUT_TIMEOUT_MS = 10_000;
/** The drain ends when no event has arrived for this long... */
const DRAIN_QUIET_MS = 30_000;
/** ...or after this long in any case (the events still missing are reported). */
const DRAIN_LIMIT_MS = 120_000;
/** How long the probe put's events are waited for after the last event. */
const PROBE_QUIET_MS = 15_000;
/** Scheduling period of the open-loop put generator. */
const PUT_TICK_MS = 2;
/** Sampling period of the generator's event-loop delay. */
const LOOP_DELAY_RESOLUTION_MS = 5;

const WATCH_REQUEST = messageCodec('etcdserverpb.WatchRequest');

const count = (value: number) => value.toLocaleString('en-US');
/** Milliseconds with the precision that matters at their size. */
const milliseconds = (value: number) => (value < 10 ? value.toFixed(2) : value < 1000 ? value.toFixed(1) : count(Math.round(value)));

/**
 * Latency histogram: 10 µs buckets up to 100 ms, then 1 ms buckets up to 10 minutes (the last
 * bucket takes everything above).
 */
class LatencyHistogram {
  private static readonly FINE_BUCKETS = 10_000;
  private readonly counts = new Uint32Array(LatencyHistogram.FINE_BUCKETS + 600_000);
  private total = 0;
  private maxMs = 0;

  record(latencyMs: number): void {
    const fine = Math.floor(latencyMs * 100);
    const bucket = fine < LatencyHistogram.FINE_BUCKETS ? Math.max(0, fine) : Math.min(this.counts.length - 1, LatencyHistogram.FINE_BUCKETS + Math.floor(latencyMs) - 100);
    this.counts[bucket]!++;
    this.total++;
    if (latencyMs > this.maxMs) this.maxMs = latencyMs;
  }

  /** The upper bound of the bucket holding quantile `q`, ms (NaN when empty). */
  quantileMs(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (let bucket = 0; bucket < this.counts.length; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) return bucket < LatencyHistogram.FINE_BUCKETS ? (bucket + 1) / 100 : bucket - LatencyHistogram.FINE_BUCKETS + 101;
    }
    return this.maxMs;
  }

  max(): number {
    return this.total === 0 ? NaN : this.maxMs;
  }
}

/** What happened to each put. */
const enum PutOutcome {
  NotAnswered = 0,
  Succeeded = 1,
  Failed = 2,
}

/**
 * Every delivery of the run: a count per (watcher, put) — a row per watcher, a column per put
 * sequence number — the mod_revision order per watcher and the latency histogram. Sequence
 * numbers 0 .. puts − 1 are the run's puts; `puts` itself is the probe put sent after an
 * incomplete drain.
 */
class DeliveryLedger {
  readonly probeSequence: number;
  readonly histogram = new LatencyHistogram();
  readonly outcome: Uint8Array;
  /** The revision each successful put created (from its response header). */
  readonly revision: Float64Array;
  delivered = 0;
  /** Watch responses that carried events. */
  responses = 0;
  duplicated = 0;
  outOfOrder = 0;
  unexpected = 0;
  lastDeliveryAt = performance.now();
  private readonly stride: number;
  private readonly counts: Uint8Array;
  /** Watchers that have received each put's event at least once. */
  private readonly watchersReached: Uint32Array;
  private readonly lastRevision: Float64Array;

  constructor(
    readonly watchers: number,
    readonly puts: number,
  ) {
    this.probeSequence = puts;
    this.stride = puts + 1;
    this.counts = new Uint8Array(watchers * this.stride);
    this.watchersReached = new Uint32Array(this.stride);
    this.lastRevision = new Float64Array(watchers);
    this.outcome = new Uint8Array(this.stride);
    this.revision = new Float64Array(this.stride);
  }

  /** One event delivered to `watcher`: the put `sequence` (read from the value), sent at `sentAt`. */
  record(watcher: number, modRevision: number, sequence: number, sentAt: number, receivedAt: number): void {
    this.lastDeliveryAt = receivedAt;
    if (!(sequence >= 0 && sequence < this.stride)) {
      this.unexpected++;
      return;
    }
    this.delivered++;
    if (modRevision <= this.lastRevision[watcher]!) this.outOfOrder++;
    else this.lastRevision[watcher] = modRevision;
    const slot = watcher * this.stride + sequence;
    const seen = this.counts[slot]!;
    if (seen > 0) this.duplicated++;
    else this.watchersReached[sequence]!++;
    if (seen < 255) this.counts[slot] = seen + 1;
    if (sequence !== this.probeSequence) this.histogram.record(receivedAt - sentAt);
  }

  reached(sequence: number): number {
    return this.watchersReached[sequence]!;
  }

  /** (watcher, successful put) pairs not delivered yet. */
  missing(): number {
    let missing = 0;
    for (let sequence = 0; sequence < this.puts; sequence++) if (this.outcome[sequence] === PutOutcome.Succeeded) missing += this.watchers - this.watchersReached[sequence]!;
    return missing;
  }

  /** Watchers missing at least one event of a successful put. */
  watchersMissingEvents(): number {
    let result = 0;
    for (let watcher = 0; watcher < this.watchers; watcher++) {
      const row = watcher * this.stride;
      for (let sequence = 0; sequence < this.puts; sequence++) {
        if (this.outcome[sequence] === PutOutcome.Succeeded && this.counts[row + sequence] === 0) {
          result++;
          break;
        }
      }
    }
    return result;
  }

  /** Successful puts delivered to no watcher at all. */
  putsDeliveredToNone(): number[] {
    const result: number[] = [];
    for (let sequence = 0; sequence < this.puts; sequence++) if (this.outcome[sequence] === PutOutcome.Succeeded && this.watchersReached[sequence] === 0) result.push(sequence);
    return result;
  }

  /** Successful puts delivered to some watchers but not all. */
  putsDeliveredToSome(): number {
    let result = 0;
    for (let sequence = 0; sequence < this.puts; sequence++) {
      const reached = this.watchersReached[sequence]!;
      if (this.outcome[sequence] === PutOutcome.Succeeded && reached > 0 && reached < this.watchers) result++;
    }
    return result;
  }

  /** Deliveries of puts answered with an error (or never answered). */
  eventsOfFailedPuts(): number {
    let result = 0;
    for (let sequence = 0; sequence < this.puts; sequence++) {
      if (this.outcome[sequence] === PutOutcome.Succeeded) continue;
      for (let watcher = 0; watcher < this.watchers; watcher++) result += this.counts[watcher * this.stride + sequence]!;
    }
    return result;
  }
}

/** `key` + 1 in its last byte: the range_end of a prefix. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  return end;
}

function putKey(sequence: number, prefix = PREFIX): Buffer {
  return Buffer.from(`${prefix}${sequence % KEY_COUNT}`);
}

/**
 * Opens the watch streams (round-robin over the members) and their watchers, feeding every
 * event into `ledger`; resolves once every watcher has its `created` response. Problems of the
 * server (a refused or canceled watcher, a broken stream) go to `fail`.
 */
async function openWatchers(label: string, target: BenchTarget, options: WatchBenchOptions, ledger: DeliveryLedger, fail: (failure: string) => void, prefix = PREFIX): Promise<RawGrpcStream[]> {
  const { watchers, streams: streamCount } = options;
  const streams: RawGrpcStream[] = [];
  let created = 0;
  let refused = false;
  let firstWatcher = 0;
  for (let stream = 0; stream < streamCount; stream++) {
    const perStream = Math.floor(watchers / streamCount) + (stream < watchers % streamCount ? 1 : 0);
    const base = firstWatcher;
    firstWatcher += perStream;
    /** Watch ID → watcher index, filled as `created` responses arrive. */
    const watcherOf = new Map<number, number>();
    const summary: WatchResponseSummary = { watchId: 0, created: false, canceled: false, eventCount: 0 };
    // Events of the response being decoded, as (mod_revision, sequence, sent at) triples: the
    // watch ID is known only once the whole response is read.
    let scratch = new Float64Array(3 * 64);
    let scratchLength = 0;
    let bytes: Buffer = Buffer.alloc(0);
    const sink = (modRevision: number, valueOffset: number, valueLength: number) => {
      if (scratchLength + 3 > scratch.length) {
        const grown = new Float64Array(scratch.length * 2);
        grown.set(scratch);
        scratch = grown;
      }
      scratch[scratchLength++] = modRevision;
      scratch[scratchLength++] = valueLength >= 12 ? bytes.readUInt32LE(valueOffset) : -1;
      scratch[scratchLength++] = valueLength >= 12 ? bytes.readDoubleLE(valueOffset + 4) : NaN;
    };
    const onMessage = (message: Buffer) => {
      const receivedAt = performance.now();
      bytes = message;
      scratchLength = 0;
      try {
        decodeWatchResponse(message, summary, sink);
      } catch (error) {
        fail(`stream ${stream}: undecodable response (${(error as Error).message})`);
        return;
      }
      if (summary.created) {
        if (summary.canceled) {
          refused = true;
          fail(`stream ${stream}: watcher refused`);
        } else if (watcherOf.size < perStream) {
          watcherOf.set(summary.watchId, base + watcherOf.size);
          created++;
        }
        return;
      }
      if (summary.canceled) fail(`stream ${stream}: watch ${summary.watchId} canceled by the server`);
      const watcher = watcherOf.get(summary.watchId);
      if (watcher === undefined) {
        ledger.unexpected += scratchLength / 3;
        return;
      }
      if (scratchLength > 0) ledger.responses++;
      for (let index = 0; index < scratchLength; index += 3) ledger.record(watcher, scratch[index]!, scratch[index + 1]!, scratch[index + 2]!, receivedAt);
    };
    const raw = new RawGrpcStream(target.endpoints[stream % target.endpoints.length]!, '/etcdserverpb.Watch/Watch', onMessage, (failure) => {
      if (failure !== undefined) fail(`stream ${stream}: ${failure}`);
    });
    streams.push(raw);
    const create = WATCH_REQUEST.encode({ create_request: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } });
    for (let index = 0; index < perStream; index++) raw.write(create);
  }
  try {
    await waitUntil(() => created === watchers || refused, { timeoutMs: 120_000, intervalMs: 50, description: `${label}: ${watchers} watchers created (${created} so far)` });
    if (refused) throw new Error('a watcher was refused');
    return streams;
  } catch (error) {
    for (const stream of streams) stream.close();
    throw error;
  }
}

/** What the open-loop put generator did. */
interface PutPhase {
  readonly issued: number;
  readonly skipped: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly issueSeconds: number;
  readonly latenciesMs: readonly number[];
  /** Errors by message (without grpc-js's timing details). */
  readonly errors: ReadonlyMap<string, number>;
}

/** Sends put `sequence` through `client`, its value stamped with the send time; resolves with the revision it created. */
async function stampedPut(client: EtcdClient, sequence: number, prefix: string): Promise<number> {
  const value = Buffer.alloc(WATCH_VALUE_BYTES);
  value.writeUInt32LE(sequence, 0);
  value.writeDoubleLE(performance.now(), 4);
  const answer = await unary(client, 'Put', { key: putKey(sequence, prefix), value }, PUT_TIMEOUT_MS);
  return Number((answer.header as { revision?: string } | undefined)?.revision ?? NaN);
}

/**
 * Issues `ledger.puts` puts at `putRate`/s on schedule whatever the answers do (open loop), over
 * `clients` round-robin; resolves once every put has been answered.
 */
async function runPuts(clients: readonly EtcdClient[], putRate: number, ledger: DeliveryLedger, prefix = PREFIX): Promise<PutPhase> {
  const latenciesMs: number[] = [];
  const errors = new Map<string, number>();
  let issued = 0;
  let skipped = 0;
  let succeeded = 0;
  let failed = 0;
  let inFlight = 0;
  const issue = (sequence: number) => {
    const sentAt = performance.now();
    inFlight++;
    issued++;
    stampedPut(clients[sequence % clients.length]!, sequence, prefix).then(
      (revision) => {
        inFlight--;
        succeeded++;
        ledger.outcome[sequence] = PutOutcome.Succeeded;
        ledger.revision[sequence] = revision;
        latenciesMs.push(performance.now() - sentAt);
      },
      (error: Error) => {
        inFlight--;
        failed++;
        ledger.outcome[sequence] = PutOutcome.Failed;
        const message = error.message.replace(/ after [\d.]+s,.*$/, '');
        errors.set(message, (errors.get(message) ?? 0) + 1);
      },
    );
  };
  const startedAt = performance.now();
  let scheduled = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(ledger.puts, Math.floor(((performance.now() - startedAt) / 1000) * putRate));
      for (; scheduled < due; scheduled++) {
        if (inFlight >= PUTS_IN_FLIGHT_MAX) skipped++;
        else issue(scheduled);
      }
      if (scheduled >= ledger.puts) {
        clearInterval(timer);
        resolve();
      }
    }, PUT_TICK_MS);
  });
  const issueSeconds = (performance.now() - startedAt) / 1000;
  await waitUntil(() => inFlight === 0, { timeoutMs: PUT_TIMEOUT_MS + 5000, intervalMs: 10, description: 'every put answered' });
  latenciesMs.sort((a, b) => a - b);
  return { issued, skipped, succeeded, failed, issueSeconds, latenciesMs, errors };
}

/**
 * The unmeasured warm-up ({@link WATCH_WARMUP_SECONDS}): the same watchers, streams and put rate
 * on {@link WARMUP_PREFIX}, drained, then the streams closed. Its own failures are reported too
 * (prefixed "warm-up:"): a system that loses events then is not excused by it.
 */
async function warmUp(label: string, target: BenchTarget, options: WatchBenchOptions, putClients: readonly EtcdClient[], fail: (failure: string) => void): Promise<void> {
  const warmLabel = `${label} warm-up`;
  const warmFail = (failure: string) => fail(`warm-up: ${failure}`);
  const ledger = new DeliveryLedger(options.watchers, Math.round(options.putRate * WATCH_WARMUP_SECONDS));
  options.progress(`${warmLabel}: ${WATCH_WARMUP_SECONDS} s of the same load on ${WARMUP_PREFIX} (not measured)`);
  const streams = await openWatchers(warmLabel, target, options, ledger, warmFail, WARMUP_PREFIX);
  try {
    const puts = await runPuts(putClients, options.putRate, ledger, WARMUP_PREFIX);
    for (const [message, times] of puts.errors) warmFail(`${count(times)} puts failed: ${message}`);
    const drainEnd = await drain(warmLabel, ledger, options.progress);
    if (drainEnd !== 'complete') warmFail(`${count(ledger.missing())} events missing (${drainEnd})`);
  } finally {
    for (const stream of streams) stream.close();
  }
}

/** Waits until every expected event has arrived, nothing arrives any more, or the limit; resolves with why it ended. */
async function drain(label: string, ledger: DeliveryLedger, progress: (line: string) => void): Promise<string> {
  const startedAt = performance.now();
  let reportedAt = startedAt;
  return waitUntil(
    () => {
      const now = performance.now();
      const missing = ledger.missing();
      if (missing === 0) return 'complete';
      if (now - ledger.lastDeliveryAt > DRAIN_QUIET_MS) return `nothing arrived for ${DRAIN_QUIET_MS / 1000} s`;
      if (now - startedAt > DRAIN_LIMIT_MS) return `events still arriving after the ${DRAIN_LIMIT_MS / 1000} s limit of the drain`;
      if (now - reportedAt > 10_000) {
        reportedAt = now;
        progress(`${label}: ${count(missing)} events still missing, ${((now - startedAt) / 1000).toFixed(0)} s after the last put was answered`);
      }
      return undefined;
    },
    { timeoutMs: DRAIN_LIMIT_MS + 60_000, intervalMs: 100, description: `${label}: the drain of watch events` },
  );
}

/**
 * After an incomplete drain: were the events lost, or are the watchers stuck? Sends one more put
 * and counts the watchers it reaches, and reads a few puts that reached no watcher back from the
 * store at the revision they created (were they really written?). Resolves with one line.
 */
async function diagnoseMissing(ledger: DeliveryLedger, client: EtcdClient, drainEnd: string): Promise<string> {
  const undelivered = ledger.putsDeliveredToNone();
  const missing = ledger.missing();
  const probe = await stampedPut(client, ledger.probeSequence, PREFIX).then(
    () => 'answered OK',
    (error: Error) => `FAILED: ${error.message}`,
  );
  const probeSentAt = performance.now();
  await waitUntil(() => ledger.reached(ledger.probeSequence) === ledger.watchers || performance.now() - Math.max(ledger.lastDeliveryAt, probeSentAt) > PROBE_QUIET_MS, {
    timeoutMs: DRAIN_LIMIT_MS,
    intervalMs: 100,
    description: "the probe put's events",
  });
  const readBack = await Promise.all(
    undelivered.slice(0, 3).map(async (sequence) => {
      const revision = ledger.revision[sequence]!;
      try {
        const answer = await unary(client, 'Range', { key: putKey(sequence), revision }, 5000);
        const value = ((answer.kvs as ProtoObject[] | undefined) ?? [])[0]?.value as Buffer | undefined;
        const holds = value !== undefined && value.length >= 4 && value.readUInt32LE(0) === sequence;
        return `put ${sequence} (revision ${revision}): ${holds ? 'the store holds it' : 'the store does NOT hold it'}`;
      } catch (error) {
        return `put ${sequence} (revision ${revision}): read back failed (${(error as Error).message})`;
      }
    }),
  );
  return (
    `${count(missing)} expected events not delivered, to ${ledger.watchersMissingEvents()} of ${ledger.watchers} watchers (drain ended: ${drainEnd}); ` +
    `${undelivered.length} successful puts reached no watcher, ${ledger.putsDeliveredToSome()} only some` +
    (readBack.length === 0 ? '' : ` (${readBack.join('; ')})`) +
    `; a put sent afterwards (${probe}) reached ${ledger.reached(ledger.probeSequence)} of ${ledger.watchers} watchers`
  );
}

/** The highest Raft term among the members that answer Status (NaN if none does). */
async function highestRaftTerm(target: BenchTarget): Promise<number> {
  const terms = await Promise.all(target.endpoints.map((endpoint) => memberStatus(endpoint).then((status) => Number(status.raftTerm ?? NaN), () => NaN)));
  const answered = terms.filter((term) => !Number.isNaN(term));
  return answered.length === 0 ? NaN : Math.max(...answered);
}

/** Runs the benchmark against `target` once. A failure of the system under test is in `failures`; throws only when the watchers cannot be set up. */
export async function watchBench(label: string, target: BenchTarget, options: WatchBenchOptions): Promise<WatchResult> {
  const { watchers, streams: streamCount, putRate, seconds, progress } = options;
  const failures: string[] = [];
  const fail = (failure: string) => failures.push(failure);
  const ledger = new DeliveryLedger(watchers, Math.round(putRate * seconds));
  const putClients = connect(target.endpoints, target.endpoints.length);
  let streams: RawGrpcStream[] = [];
  try {
    // A fresh cluster may still be electing: wait until it takes a write.
    await waitUntil(() => unary(putClients[0]!, 'Put', { key: Buffer.from(`${PREFIX}warmup`), value: Buffer.alloc(1) }, 2000).then(() => true), {
      timeoutMs: 30_000,
      description: `${label} to accept a Put`,
    });
    await warmUp(label, target, options, putClients, fail);
    progress(`${label}: ${watchers} watchers on ${streamCount} streams over ${target.endpoints.length} members: waiting for every created response`);
    streams = await openWatchers(label, target, options, ledger, fail);

    progress(`${label}: ${putRate} puts/s for ${seconds}s (open loop), ${watchers} watchers`);
    const raftTermBefore = await highestRaftTerm(target);
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
    const serverCpuFrom = target.pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
    const clientCpuFrom = process.cpuUsage();
    const startedAt = performance.now();
    const puts = await runPuts(putClients, putRate, ledger);
    for (const [message, times] of puts.errors) fail(`${count(times)} puts failed: ${message}`);
    progress(`${label}: puts done (${puts.succeeded} ok, ${puts.failed} failed, ${puts.skipped} skipped); waiting for ${count(ledger.missing())} more events`);
    const drainEnd = await drain(label, ledger, progress);
    const elapsedSeconds = (performance.now() - startedAt) / 1000;
    const clientCpu = process.cpuUsage(clientCpuFrom);
    const serverCpuSeconds = target.pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0) - serverCpuFrom;
    loopDelay.disable();
    const raftTermAfter = await highestRaftTerm(target);
    if (raftTermAfter > raftTermBefore) fail(`the Raft term went from ${raftTermBefore} to ${raftTermAfter} during the run: leader elections`);

    const eventsMissing = ledger.missing();
    const putsDeliveredToNone = ledger.putsDeliveredToNone().length;
    const putsDeliveredToSome = ledger.putsDeliveredToSome();
    if (eventsMissing > 0) {
      progress(`${label}: ${count(eventsMissing)} events missing (${drainEnd}); probing`);
      fail(await diagnoseMissing(ledger, putClients[0]!, drainEnd));
    }
    if (ledger.duplicated > 0) fail(`${ledger.duplicated} events delivered twice or more`);
    if (ledger.outOfOrder > 0) fail(`${ledger.outOfOrder} events out of mod_revision order`);
    if (ledger.unexpected > 0) fail(`${ledger.unexpected} events not from this run`);

    const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
    const clientCpuCorePercent = (100 * clientCpuSeconds) / elapsedSeconds;
    // The histogram holds whole timer periods (resolution + lateness): keep the lateness.
    const clientLoopDelayP99Ms = Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS);
    const clientLoopDelayMaxMs = Math.max(0, loopDelay.max / 1e6 - LOOP_DELAY_RESOLUTION_MS);
    const deliveryP99Ms = ledger.histogram.quantileMs(0.99);
    const putRateAchieved = puts.issued / puts.issueSeconds;
    const generatorLimits: string[] = [];
    if (putRateAchieved < 0.95 * putRate) generatorLimits.push(`put rate ${Math.round(putRateAchieved)}/s < 95 % of ${putRate}/s`);
    if (puts.skipped > 0) generatorLimits.push(`${puts.skipped} puts skipped (${PUTS_IN_FLIGHT_MAX} in flight)`);
    if (clientCpuCorePercent > 85) generatorLimits.push(`generator CPU ${Math.round(clientCpuCorePercent)} % of a core`);
    // A late event loop delays the receipt of every event behind it; it matters when it is a
    // sizeable part of the latency measured (a loop late by 50 ms beside a 5 s p99 is the server).
    if (clientLoopDelayP99Ms > 20 && clientLoopDelayP99Ms > 0.1 * deliveryP99Ms) {
      generatorLimits.push(`generator event loop late by ${clientLoopDelayP99Ms.toFixed(0)} ms (p99), ≥ 10 % of the delivery p99`);
    }
    const delivered = ledger.delivered;
    return {
      label,
      putsScheduled: ledger.puts,
      putsIssued: puts.issued,
      putsSucceeded: puts.succeeded,
      putsFailed: puts.failed,
      putsSkipped: puts.skipped,
      putRateAchieved,
      putP99Ms: puts.latenciesMs[Math.min(puts.latenciesMs.length - 1, Math.floor(0.99 * puts.latenciesMs.length))] ?? NaN,
      eventsExpected: puts.succeeded * watchers,
      eventsDelivered: delivered,
      eventsMissing,
      eventsDuplicated: ledger.duplicated,
      eventsOutOfOrder: ledger.outOfOrder,
      eventsOfFailedPuts: ledger.eventsOfFailedPuts(),
      eventsUnexpected: ledger.unexpected,
      putsDeliveredToNone,
      putsDeliveredToSome,
      eventsPerResponse: delivered / ledger.responses,
      deliveryP50Ms: ledger.histogram.quantileMs(0.5),
      deliveryP99Ms,
      deliveryMaxMs: ledger.histogram.max(),
      serverCpuMicrosPerEvent: (serverCpuSeconds * 1e6) / delivered,
      clientCpuMicrosPerEvent: (clientCpuSeconds * 1e6) / delivered,
      clientCpuCorePercent,
      clientLoopDelayP99Ms,
      clientLoopDelayMaxMs,
      generatorLimits,
      failures,
      elapsedSeconds,
      raftTermBefore,
      raftTermAfter,
    };
  } finally {
    for (const stream of streams) stream.close();
    for (const client of putClients) client.close();
  }
}

const WATCH_MEASURES: readonly Measure<WatchResult>[] = [
  { name: 'puts issued / scheduled (achieved rate)', cell: (r) => `${count(r.putsIssued)} / ${count(r.putsScheduled)} (${Math.round(r.putRateAchieved)}/s)` },
  { name: 'puts failed / skipped; put p99 ms', cell: (r) => `${r.putsFailed} / ${r.putsSkipped}; ${milliseconds(r.putP99Ms)}` },
  {
    name: 'events delivered / expected (successful puts × watchers)',
    cell: (r) => `${count(r.eventsDelivered)} / ${count(r.eventsExpected)}${r.eventsOfFailedPuts === 0 ? '' : ` (delivered include ${count(r.eventsOfFailedPuts)} of failed puts)`}`,
  },
  {
    name: 'events missing / duplicated / out of order',
    cell: (r) => `${r.eventsMissing === 0 ? '0' : `**${count(r.eventsMissing)} MISSING**`} / ${r.eventsDuplicated} / ${r.eventsOutOfOrder}`,
  },
  { name: 'successful puts that reached no watcher / only some', cell: (r) => `${r.putsDeliveredToNone} / ${r.putsDeliveredToSome}` },
  { name: 'delivery latency p50 / p99 ms (ratio of p99)', cell: (r) => `${milliseconds(r.deliveryP50Ms)} / ${milliseconds(r.deliveryP99Ms)}`, figure: (r) => r.deliveryP99Ms },
  { name: 'delivery latency max ms', cell: (r) => milliseconds(r.deliveryMaxMs) },
  { name: 'events per watch response (server batching), mean', cell: (r) => r.eventsPerResponse.toFixed(1) },
  { name: 'Raft term before → after the run (a rise: leader elections)', cell: (r) => `${r.raftTermBefore} → ${r.raftTermAfter}` },
  { name: 'server CPU µs per delivered event (3 members)', cell: (r) => r.serverCpuMicrosPerEvent.toFixed(1), figure: (r) => r.serverCpuMicrosPerEvent },
  {
    name: 'load generator: CPU % of a core / µs per event / event loop late p99, max ms',
    cell: (r) => `${Math.round(r.clientCpuCorePercent)} % / ${r.clientCpuMicrosPerEvent.toFixed(1)} / ${r.clientLoopDelayP99Ms.toFixed(0)}, ${r.clientLoopDelayMaxMs.toFixed(0)}`,
  },
  { name: 'load generator kept up', cell: (r) => (r.generatorLimits.length === 0 ? 'yes' : `**NO**: ${r.generatorLimits.join('; ')}`) },
];

/**
 * The section's table: a title saying what was run, the rows, then every failure of either system
 * (missing events, stream errors, ...) as a list.
 */
export function watchTable(options: Omit<WatchBenchOptions, 'progress'>, ours: WatchResult | string, theirs: WatchResult | string, settings = ''): string[] {
  const failures = [ours, theirs].flatMap((outcome) => (typeof outcome === 'string' ? [] : outcome.failures.map((failure) => `${outcome.label}: ${failure}`)));
  return [
    `Watch (${count(options.watchers)} watchers on one prefix over ${options.streams} streams spread over the 3 members; ${count(options.putRate)} Puts/s open loop for ${options.seconds} s after ${WATCH_WARMUP_SECONDS} s of the same load on another prefix (not measured), ${WATCH_VALUE_BYTES}-byte values${settings === '' ? '' : `; ${settings}`}; every event counted per watcher; ratio = raftkv / etcd):`,
    '',
    ...comparisonRows(WATCH_MEASURES, ours, theirs),
    ...(failures.length === 0 ? [] : ['', ...failures.map((failure) => `- ${failure}`)]),
  ];
}
