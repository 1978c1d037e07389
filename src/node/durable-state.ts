/**
 * Start-up: recovering a node from its data directory, or creating a new one.
 *
 * Layout of a data directory (`--data-dir`, default `raftkv-<id>`):
 *   wal/    the write-ahead log (src/wal): hard state, entries, snapshot markers
 *   snap/   snapshot files (src/snap): state machine images with their metadata
 *   kv/     membership in level (src/kv): members, removed IDs, durable applied index
 *   mvcc/   the keyspace in level (src/mvcc): revisions, history, durable applied index
 *
 * Recovery, in order:
 * 1. Open the WAL (this takes the directory lock, repairs a torn tail, refuses mid-log damage).
 * 2. Pick the newest snapshot file whose marker is in the WAL (a snapshot saved without its
 *    marker is ignored: the crash happened between the two steps, and the log still has
 *    everything the snapshot had).
 * 3. If the state machine's durable applied index is behind that snapshot, restore it from the
 *    snapshot (a crash hit between receiving a snapshot and installing it).
 * 4. Rebuild the in-memory log storage: the snapshot, then the WAL's entries after it, then the
 *    hard state. The core restarts with `applied` = the snapshot index; committed entries after it
 *    are replayed through the Ready loop (the state machine skips what it already holds).
 *
 * A new node (no WAL) either bootstraps a new cluster (the initial members from `--cluster` as
 * committed ConfChange entries, byte-identical on every initial member) or, with `--join`, starts
 * empty and learns everything from the leader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MemoryStorage } from '../raft/storage';
import { bootstrapEntries } from '../raft/bootstrap';
import { NONE, type HardState, type LogIndex, type NodeId } from '../raft/types';
import { Wal } from '../wal/wal';
import { Snapshotter } from '../snap/snapshotter';
import { KvStore } from '../kv/kv-store';
import { MvccStore } from '../mvcc/mvcc-store';
import { NodeStateMachine } from './state-machine';
import { clusterIdFor } from '../transport/cluster-id';
import type { RuntimeLogger } from './raft-server';
import { encodeSnapshotDescriptor, hasImage } from './snapshots';

/** What a node starts from. */
export interface DurableState {
  readonly wal: Wal;
  readonly snapshotter: Snapshotter;
  readonly stateMachine: NodeStateMachine;
  readonly storage: MemoryStorage;
  readonly persistedHardState: HardState;
  readonly snapshotIndex: LogIndex;
  /** The cluster ID, or 0n for a joining node that has not learned it yet. */
  readonly clusterId: bigint;
  /** True if this start created the data directory. */
  readonly created: boolean;
}

/** How to open or create a data directory. */
export interface OpenDurableStateOptions {
  readonly id: NodeId;
  readonly dataDir: string;
  /** Initial member IDs (from `--cluster`), used only when bootstrapping a new cluster. */
  readonly initialMembers: readonly NodeId[];
  readonly join: boolean;
  readonly clusterToken: string;
  readonly logger: RuntimeLogger;
  /** etcd --max-txn-ops, which must be equal on every member. */
  readonly maxTxnOperations?: number;
}

/** The WAL's metadata record: who this node is and which cluster it belongs to. */
interface WalMetadata {
  readonly nodeId: string;
  readonly clusterId: string;
}

const ZERO_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

/** Opens (recovering) or creates the node's durable state. Throws with a clear message on damage. */
export async function openDurableState(options: OpenDurableStateOptions): Promise<DurableState> {
  const walDir = path.join(options.dataDir, 'wal');
  const snapDir = path.join(options.dataDir, 'snap');
  fs.mkdirSync(snapDir, { recursive: true });
  const walLogger = adaptLogger(options.logger);

  if (!Wal.exists(walDir)) return createDurableState(options, walDir, snapDir);
  const started = Date.now();

  // The WAL and the state machine are read at the same time: with a million keys each takes
  // seconds, the state machine mostly waiting on level's reads, which the WAL's checks fill.
  const [walOpened, stateMachineOpened] = await Promise.allSettled([Wal.open(walDir, { logger: walLogger }), openStateMachine(options, walLogger)]);
  if (walOpened.status === 'rejected' || stateMachineOpened.status === 'rejected') {
    if (walOpened.status === 'fulfilled') await walOpened.value.wal.close().catch(() => undefined);
    if (stateMachineOpened.status === 'fulfilled') await stateMachineOpened.value.close().catch(() => undefined);
    throw walOpened.status === 'rejected' ? walOpened.reason : (stateMachineOpened as PromiseRejectedResult).reason;
  }
  const opened = walOpened.value;
  const stateMachine = stateMachineOpened.value;
  const metadata = parseMetadata(opened.metadata);
  if (metadata.nodeId !== options.id.toString()) {
    await opened.wal.close();
    await stateMachine.close();
    throw new Error(`data directory ${options.dataDir} belongs to node ${metadata.nodeId}, not to node ${options.id}`);
  }
  if (opened.repairedTail !== undefined) {
    options.logger.warn({ ...opened.repairedTail }, 'WAL: truncated a torn record at the tail (a crash during a write)');
  }
  const snapshotter = new Snapshotter(snapDir, { logger: walLogger });
  const markers = new Set(opened.snapshotMarkers.map((m) => `${m.term}/${m.index}`));
  // The body (the whole state machine image, hundreds of megabytes with a million keys) is read
  // and verified now only if the state machine needs it; otherwise it is verified whenever it is
  // read (sent to a follower), which a restart of a node holding its state should not wait for.
  const snapshotFile = await snapshotter.loadNewest(
    (meta) => markers.has(`${meta.term}/${meta.index}`),
    (meta) => stateMachine.appliedIndex() < meta.index,
  );
  const storage = new MemoryStorage();
  let snapshotIndex = 0;
  if (snapshotFile !== undefined) {
    snapshotIndex = snapshotFile.metadata.index;
    const stateMachineApplied = stateMachine.appliedIndex();
    if (stateMachineApplied < snapshotIndex && !hasImage(snapshotFile)) {
      // A snapshot without an image is saved only after both stores were fsynced at or past it.
      await opened.wal.close();
      await stateMachine.close();
      throw new Error(
        `the state machine in ${options.dataDir} is at applied index ${stateMachineApplied}, behind snapshot ${snapshotIndex}, ` +
          'which has no image to restore from (the stores had been made durable past it before it was saved, so their files lost writes); ' +
          'remove this member and add it again with an empty data directory',
      );
    }
    if (stateMachine.appliedIndex() < snapshotIndex) {
      options.logger.info({ index: snapshotIndex }, 'state machine is behind the newest snapshot; restoring it');
      await stateMachine.restoreSnapshot(snapshotter.openBody(snapshotFile), snapshotIndex);
    }
    const applied = storage.applySnapshot({
      metadata: snapshotFile.metadata,
      data: encodeSnapshotDescriptor({ bodyBytes: snapshotFile.bodyBytes, sha256: snapshotFile.sha256 }),
    });
    if (applied !== 'ok') throw new Error(`assertion failed: snapshot ${snapshotIndex} not applicable to empty storage`);
  }
  const entries = opened.entries.filter((entry) => entry.index > snapshotIndex);
  if (entries.length > 0 && entries[0]!.index !== snapshotIndex + 1) {
    throw new Error(
      `WAL in ${walDir} is missing entries ${snapshotIndex + 1}..${entries[0]!.index - 1} after snapshot ${snapshotIndex}; refusing to start`,
    );
  }
  storage.append(entries);
  storage.setHardState(opened.hardState);
  options.logger.info(
    {
      snapshotIndex,
      lastIndex: storage.lastIndex(),
      term: opened.hardState.term,
      commit: opened.hardState.commit,
      stateMachineApplied: stateMachine.appliedIndex(),
      durationMs: Date.now() - started,
    },
    'recovered from disk',
  );
  return {
    wal: opened.wal,
    snapshotter,
    stateMachine,
    storage,
    persistedHardState: opened.hardState,
    snapshotIndex,
    clusterId: metadata.clusterId === '0' ? readLearnedClusterId(options.dataDir) : BigInt(metadata.clusterId),
    created: false,
  };
}

async function createDurableState(options: OpenDurableStateOptions, walDir: string, snapDir: string): Promise<DurableState> {
  const walLogger = adaptLogger(options.logger);
  const clusterId = options.join ? 0n : clusterIdFor(options.initialMembers, options.clusterToken);
  const metadata: WalMetadata = { nodeId: options.id.toString(), clusterId: clusterId.toString() };
  const wal = await Wal.create(walDir, { metadata: Buffer.from(JSON.stringify(metadata), 'utf8'), logger: walLogger });
  const storage = new MemoryStorage();
  let hardState = ZERO_HARD_STATE;
  if (!options.join) {
    const entries = bootstrapEntries(options.initialMembers);
    hardState = { term: 1, vote: NONE, commit: entries.length };
    await wal.save(hardState, entries, true);
    storage.append(entries);
    storage.setHardState(hardState);
    options.logger.info({ members: options.initialMembers.map(String), clusterId: clusterId.toString() }, 'bootstrapped a new cluster');
  } else {
    options.logger.info({}, 'joining an existing cluster: starting empty, waiting for the leader');
  }
  const snapshotter = new Snapshotter(snapDir, { logger: walLogger });
  const stateMachine = await openStateMachine(options, walLogger);
  return { wal, snapshotter, stateMachine, storage, persistedHardState: hardState, snapshotIndex: 0, clusterId, created: true };
}

const LEARNED_CLUSTER_ID_FILE = 'cluster-id';

/**
 * Records the cluster ID a joining node learned from its first peer (its WAL metadata says 0),
 * so a restart enforces it. Written atomically: temp file, fsync, rename, directory fsync.
 */
export function persistLearnedClusterId(dataDir: string, clusterId: bigint): void {
  const target = path.join(dataDir, LEARNED_CLUSTER_ID_FILE);
  const temporary = `${target}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(fd, `${clusterId.toString()}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, target);
  const directory = fs.openSync(dataDir, 'r');
  try {
    fs.fsyncSync(directory);
  } finally {
    fs.closeSync(directory);
  }
}

function readLearnedClusterId(dataDir: string): bigint {
  const file = path.join(dataDir, LEARNED_CLUSTER_ID_FILE);
  if (!fs.existsSync(file)) return 0n;
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^\d+$/.test(text)) throw new Error(`${file} does not hold a cluster ID`);
  return BigInt(text);
}

async function openStateMachine(options: OpenDurableStateOptions, logger: ReturnType<typeof adaptLogger>): Promise<NodeStateMachine> {
  const membership = await KvStore.open(path.join(options.dataDir, 'kv'), { logger });
  const mvcc = await MvccStore.open(path.join(options.dataDir, 'mvcc'), { maxTxnOperations: options.maxTxnOperations ?? 128, enforceLeases: true });
  const stateMachine = new NodeStateMachine(membership, mvcc);
  await stateMachine.loadMetadata();
  return stateMachine;
}

function parseMetadata(bytes: Uint8Array): WalMetadata {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<WalMetadata>;
    if (typeof value.nodeId === 'string' && typeof value.clusterId === 'string') return { nodeId: value.nodeId, clusterId: value.clusterId };
  } catch {
    // fall through
  }
  throw new Error('WAL metadata record is not raftkv metadata (is this a raftkv data directory?)');
}

/** The WAL, snapshot and kv modules log with (message, fields); the runtime logger is pino-style. */
function adaptLogger(logger: RuntimeLogger): {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
} {
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
  };
}
