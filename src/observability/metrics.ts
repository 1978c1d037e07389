/**
 * Prometheus metrics of one raftkv node.
 *
 * Each node owns its own prom-client `Registry` (never the global default one), so several nodes
 * can live in one process, as they do in tests and in the simulator. `createMetrics()` registers
 * every metric below plus prom-client's default process metrics (CPU, memory, event loop, GC)
 * and returns a typed object: the runtime updates metrics through its fields
 * (`metrics.fsyncSeconds.observe(seconds)`), and the HTTP API serves `registry.metrics()` at
 * `GET /-/metrics`.
 *
 * Names follow Prometheus conventions: a `raftkv_` prefix, base units (seconds, bytes), `_total`
 * on counters. Where etcd has an equivalent the name says so in its help text, so dashboards can
 * be ported.
 *
 * Label values must come from small fixed sets (never keys, never request paths): each distinct
 * label value creates a time series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';

/** Outcomes of a proposal, the values of the `outcome` label of `proposals`. */
export type ProposalOutcome =
  /** Committed and applied; the client was answered with success. */
  | 'applied'
  /** Refused or dropped before reaching the log ('not-applied'). */
  | 'not-applied'
  /** The client stopped waiting; the entry may still be applied ('timeout-maybe-applied'). */
  | 'timeout';

/** Snapshot events, the values of the `event` label of `snapshots`. */
export type SnapshotEvent =
  /** This node wrote a snapshot of its own state machine. */
  | 'created'
  /** This node (as leader) finished streaming a snapshot to a follower. */
  | 'sent'
  /** This node received a snapshot from the leader and applied it. */
  | 'received'
  /** Sending or receiving a snapshot failed. */
  | 'failed';

/** The metrics of one node. Every field is registered in `registry`. */
export interface Metrics {
  /** The registry holding every metric of this node; serve `registry.metrics()`. */
  readonly registry: Registry;
  /** Proposals finished, by outcome (etcd: proposals_applied / proposals_failed). */
  readonly proposals: Counter<'outcome'>;
  /** Proposals started and not yet finished (etcd: proposals_pending). */
  readonly proposalsPending: Gauge;
  /** Entries seen committed by this node (etcd: proposals_committed_total). */
  readonly committedEntries: Counter;
  /** The index of the last entry applied to the state machine. */
  readonly appliedIndex: Gauge;
  /** The commit index known to this node. */
  readonly commitIndex: Gauge;
  /** Committed but not yet applied entries: commit index minus applied index. */
  readonly applyLagEntries: Gauge;
  /** The current Raft term. */
  readonly term: Gauge;
  /** 1 if this node is the leader, else 0 (etcd: server_is_leader). */
  readonly isLeader: Gauge;
  /** Duration of each WAL fsync in seconds (etcd: disk_wal_fsync_duration_seconds). */
  readonly fsyncSeconds: Histogram;
  /** Bytes written to the WAL (etcd: disk_wal_write_bytes_total). */
  readonly walWrittenBytes: Counter;
  /** Entries per synced WAL save: the group commit's batch size. */
  readonly walSaveEntries: Histogram;
  /** Entries per apply batch handed to the state machine. */
  readonly applyBatchEntries: Histogram;
  /** Raft messages handed to the peer transport. */
  readonly peerMessagesSent: Counter;
  /** Elections this node started (campaigns, including pre-votes that became votes). */
  readonly elections: Counter;
  /** Changes of the leader seen by this node (etcd: server_leader_changes_seen_total). */
  readonly leaderChanges: Counter;
  /** Messages to a peer that could not be delivered, by peer member ID (decimal). */
  readonly peerSendFailures: Counter<'peer'>;
  /** Snapshot events by kind. */
  readonly snapshots: Counter<'event'>;
  /** Time from a ReadIndex request to the read being servable, in seconds. */
  readonly readIndexSeconds: Histogram;
  /** HTTP request durations in seconds, by route name, method and status code. */
  readonly httpRequestSeconds: Histogram<'route' | 'method' | 'status'>;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Labels added to every series of this registry, for example `{ member: '1' }`. */
  readonly defaultLabels?: Readonly<Record<string, string>>;
  /** Whether to register prom-client's default process metrics. Default true. */
  readonly processMetrics?: boolean;
}

/** Histogram buckets for batch sizes (entries): 1 to 4096. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/** Histogram buckets for disk and consensus latencies: 1 ms to about 8 s (as etcd). */
const LATENCY_BUCKETS_SECONDS = exponentialBuckets(0.001, 2, 14);
/** Histogram buckets for HTTP requests: 0.5 ms to about 16 s. */
const HTTP_BUCKETS_SECONDS = exponentialBuckets(0.0005, 2, 16);

/**
 * How often (ms) prom-client samples event-loop delay for `nodejs_eventloop_lag_*`. Its default,
 * 10 ms, is a timer that wakes an idle member 100 times a second: 0.9 % of a core per member
 * on the development VM, a third of an idle cluster's CPU. At 100 ms (the Raft tick) a stall
 * still shows in the lag histograms; one shorter than the interval is seen only when a sample
 * falls inside it.
 */
const EVENT_LOOP_LAG_SAMPLE_MS = 100;

/**
 * Creates a fresh registry with every raftkv metric and (unless disabled) the default process
 * metrics. Calling it several times in one process is safe: each call has its own registry.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultLabels !== undefined) registry.setDefaultLabels({ ...options.defaultLabels });
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_LAG_SAMPLE_MS });
  const registers = [registry];
  return {
    registry,
    proposals: new Counter({
      name: 'raftkv_proposals_total',
      help: 'Proposals finished, by outcome: applied, not-applied (refused or dropped), timeout (may still apply).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    proposalsPending: new Gauge({
      name: 'raftkv_proposals_pending',
      help: 'Proposals started and not yet finished (etcd_server_proposals_pending).',
      registers,
    }),
    committedEntries: new Counter({
      name: 'raftkv_committed_entries_total',
      help: 'Log entries seen committed by this node (etcd_server_proposals_committed_total).',
      registers,
    }),
    appliedIndex: new Gauge({
      name: 'raftkv_applied_index',
      help: 'Index of the last log entry applied to the state machine.',
      registers,
    }),
    commitIndex: new Gauge({
      name: 'raftkv_commit_index',
      help: 'Commit index known to this node.',
      registers,
    }),
    applyLagEntries: new Gauge({
      name: 'raftkv_apply_lag_entries',
      help: 'Committed entries not yet applied (commit index minus applied index).',
      registers,
    }),
    term: new Gauge({ name: 'raftkv_term', help: 'Current Raft term of this node.', registers }),
    isLeader: new Gauge({
      name: 'raftkv_is_leader',
      help: '1 if this node is the leader, else 0 (etcd_server_is_leader).',
      registers,
    }),
    fsyncSeconds: new Histogram({
      name: 'raftkv_wal_fsync_duration_seconds',
      help: 'Duration of WAL fsync calls in seconds (etcd_disk_wal_fsync_duration_seconds).',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    walWrittenBytes: new Counter({
      name: 'raftkv_wal_written_bytes_total',
      help: 'Bytes written to the WAL (etcd_disk_wal_write_bytes_total).',
      registers,
    }),
    walSaveEntries: new Histogram({
      name: 'raftkv_wal_save_entries',
      help: 'Entries per synced WAL save (one fsync each): the group commit batch size.',
      buckets: BATCH_BUCKETS,
      registers,
    }),
    applyBatchEntries: new Histogram({
      name: 'raftkv_apply_batch_entries',
      help: 'Committed entries per batch applied to the state machine.',
      buckets: BATCH_BUCKETS,
      registers,
    }),
    peerMessagesSent: new Counter({
      name: 'raftkv_peer_messages_sent_total',
      help: 'Raft messages handed to the peer transport (heartbeats, appends, votes, responses).',
      registers,
    }),
    elections: new Counter({
      name: 'raftkv_elections_total',
      help: 'Elections started by this node.',
      registers,
    }),
    leaderChanges: new Counter({
      name: 'raftkv_leader_changes_total',
      help: 'Leader changes seen by this node (etcd_server_leader_changes_seen_total).',
      registers,
    }),
    peerSendFailures: new Counter({
      name: 'raftkv_peer_send_failures_total',
      help: 'Messages that could not be delivered to a peer, by peer member ID.',
      labelNames: ['peer'] as const,
      registers,
    }),
    snapshots: new Counter({
      name: 'raftkv_snapshots_total',
      help: 'Snapshot events: created, sent, received, failed.',
      labelNames: ['event'] as const,
      registers,
    }),
    readIndexSeconds: new Histogram({
      name: 'raftkv_read_index_duration_seconds',
      help: 'Time from a ReadIndex request until the read could be served, in seconds.',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    httpRequestSeconds: new Histogram({
      name: 'raftkv_http_request_duration_seconds',
      help: 'HTTP request durations in seconds, by route name, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: HTTP_BUCKETS_SECONDS,
      registers,
    }),
  };
}
