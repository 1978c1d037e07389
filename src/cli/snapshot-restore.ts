/**
 * `raftkv snapshot restore FILE --data-dir DIR --id N --cluster URLS [--cluster-token T]`: seeds
 * the data directory of one member of a NEW cluster from a file written by
 * `etcdctl snapshot save` against raftkv (format: src/node/snapshot-file.ts), as etcd's
 * `etcdctl snapshot restore` does for etcd:
 *
 * 1. verify the file: size rule, SHA-256 trailer, magic, header (nothing is written before);
 * 2. create the data directory exactly as a new cluster's member would be bootstrapped (WAL with
 *    the `--cluster` members as committed conf changes 1..n, a fresh cluster ID from the members
 *    and the token);
 * 3. load the keyspace (the MVCC image: every key with its revisions and history since the
 *    last compaction) into the MVCC store, re-based onto Raft index n, so the new cluster's own
 *    entries n+1.. apply on top. The snapshot's membership, member attributes and alarms are
 *    dropped: the new cluster's membership is `--cluster`, as with etcd's restore.
 *
 * Run it for EVERY member of the new cluster with the same file (each with its own --id and
 * --data-dir), then start each member with the same --id, --cluster and --data-dir. On a
 * terminal it shows progress (bytes and percent) on standard error; it always ends with a summary.
 * Exit codes: 0 done, 1 restore failed (a damaged file, an existing data directory), 2 usage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { parseMemberId, parsePeerUrl } from '../api/member-input';
import { RaftkvError } from '../errors';
import type { NodeId } from '../raft/types';
import { openDurableState } from '../node/durable-state';
import type { RuntimeLogger } from '../node/raft-server';
import { verifySnapshotFile, SnapshotFileError, type ProgressCallback } from '../node/snapshot-file';
import { USAGE_EXIT_CODE } from './options';

/** Output streams of the command. */
export interface SnapshotCommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** True when standard error is a terminal (progress is then shown). */
  readonly progressOnTerminal: boolean;
}

/** The node state machine image's magic (state-machine.ts): "raftkvs2" | u32 LE length | membership | MVCC. */
const NODE_IMAGE_MAGIC = Buffer.from('raftkvs2', 'ascii');

const HELP = `Usage: raftkv snapshot restore FILE --data-dir DIR --id N --cluster URLS [--cluster-token T]

Seed the data directory of one member of a NEW cluster from a snapshot saved with
\`etcdctl snapshot save\` against raftkv. Run it for every member with the same file, then start
each member with the same --id, --cluster and --data-dir.

Note: etcdctl's own \`snapshot status\` and \`snapshot restore\` read etcd's bbolt format and
cannot read raftkv snapshots; raftkv cannot read etcd's snapshots either.
`;

/** Runs `raftkv snapshot ...` (argv after `snapshot`); resolves with the exit code. */
export async function runSnapshotCommand(argv: string[], io: SnapshotCommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    io.stdout(HELP);
    return sub === undefined ? USAGE_EXIT_CODE : 0;
  }
  if (sub !== 'restore') {
    io.stderr(`error: unknown snapshot command '${sub}' (only 'restore'; see raftkv snapshot --help)\n`);
    return USAGE_EXIT_CODE;
  }
  const command = new Command('raftkv snapshot restore')
    .argument('<file>')
    .requiredOption('--data-dir <dir>')
    .requiredOption('--id <id>')
    .requiredOption('--cluster <urls>')
    .option('--cluster-token <token>', '', 'raftkv-cluster')
    .option('--max-txn-ops <count>', '', '128')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: () => undefined });
  let file: string;
  let flags: { dataDir: string; id: string; cluster: string; clusterToken: string; maxTxnOps: string };
  let id: NodeId;
  let cluster: string[];
  try {
    command.parse(rest, { from: 'user' });
    file = command.args[0]!;
    flags = command.opts();
    id = parseMemberId(flags.id);
    cluster = flags.cluster.split(',').map((url) => parsePeerUrl(url).url);
    if (id > BigInt(cluster.length)) throw new RaftkvError('invalid-member-id', { message: `--id ${id} is not a position in --cluster (1..${cluster.length})` });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0;
      io.stderr(`error: ${error.message.replace(/^error: /, '')} (see raftkv snapshot --help)\n`);
      return USAGE_EXIT_CODE;
    }
    if (error instanceof RaftkvError) {
      io.stderr(`error: ${error.message}\n`);
      return USAGE_EXIT_CODE;
    }
    throw error;
  }
  try {
    const summary = await restoreSnapshot({ file, dataDir: path.resolve(flags.dataDir), id, cluster, clusterToken: flags.clusterToken, maxTxnOperations: Number(flags.maxTxnOps) }, progressPrinter(io));
    io.stdout(summary);
    return 0;
  } catch (error) {
    if (io.progressOnTerminal) io.stderr('\n');
    io.stderr(`error: snapshot restore failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** What to restore, and where. */
export interface RestoreRequest {
  readonly file: string;
  readonly dataDir: string;
  readonly id: NodeId;
  /** Peer URLs of the new cluster's members (position k = member k+1). */
  readonly cluster: readonly string[];
  readonly clusterToken: string;
  readonly maxTxnOperations: number;
}

/** Restores `request.file` into a new data directory; resolves with a human-readable summary. */
export async function restoreSnapshot(request: RestoreRequest, onProgress?: ProgressCallback): Promise<string> {
  if (fs.existsSync(path.join(request.dataDir, 'wal'))) {
    throw new SnapshotFileError(`${request.dataDir} already holds a raftkv data directory; restore into a new directory`);
  }
  if (fs.existsSync(request.dataDir) && fs.readdirSync(request.dataDir).length > 0) {
    throw new SnapshotFileError(`${request.dataDir} exists and is not empty; restore into a new directory`);
  }
  const { header, imageOffset } = await verifySnapshotFile(request.file, onProgress);
  const members = request.cluster.map((_url, position) => BigInt(position + 1));
  // Built in a sibling directory and renamed into place only when complete, so a failed restore
  // never leaves a data directory that would start as an EMPTY new cluster.
  const stagingDir = `${request.dataDir}.restoring`;
  fs.rmSync(stagingDir, { recursive: true, force: true });
  const state = await openDurableState({
    id: request.id,
    dataDir: stagingDir,
    initialMembers: members,
    join: false,
    clusterToken: request.clusterToken,
    logger: silentLogger(),
    maxTxnOperations: request.maxTxnOperations,
  });
  try {
    const image = fs.createReadStream(request.file, { start: imageOffset, end: imageOffset + header.imageBytes - 1, highWaterMark: 256 * 1024 });
    let done = 0;
    const counted = (async function* () {
      for await (const chunk of image) {
        done += (chunk as Buffer).length;
        onProgress?.('restore', done, header.imageBytes);
        yield chunk as Buffer;
      }
    })();
    await state.stateMachine.mvcc.restoreSnapshot(mvccPart(counted), members.length, { rebase: true });
    const revision = state.stateMachine.mvcc.currentRevision();
    const keys = state.stateMachine.mvcc.indexedKeyCount();
    await state.stateMachine.close();
    await state.wal.close();
    fs.rmSync(request.dataDir, { recursive: true, force: true }); // empty (checked above)
    fs.renameSync(stagingDir, request.dataDir);
    return [
      `restored ${request.file} into ${request.dataDir}`,
      `  snapshot: ${header.imageBytes} bytes of state from member ${BigInt(header.memberId).toString(16)} of cluster ${BigInt(header.clusterId).toString(16)}, taken ${header.createdAt} at raft index ${header.appliedIndex}`,
      `  keyspace: revision ${revision}, ${keys} keys in the index (history since the last compaction kept)`,
      `  new cluster: ${request.cluster.length} member(s), this is member ${request.id} (${request.cluster[Number(request.id) - 1]}), cluster ID ${state.clusterId.toString(16)}`,
      `  next: raftkv --id ${request.id} --cluster ${request.cluster.join(',')} --data-dir ${request.dataDir}`,
      '',
    ].join('\n');
  } catch (error) {
    await state.stateMachine.close().catch(() => undefined);
    await state.wal.close().catch(() => undefined);
    fs.rmSync(stagingDir, { recursive: true, force: true });
    throw error;
  }
}

/** Skips the membership part of a node image and yields the MVCC image (state-machine.ts format). */
async function* mvccPart(chunks: AsyncIterable<Buffer>): AsyncIterable<Uint8Array> {
  let buffered = Buffer.alloc(0);
  let skip: number | undefined;
  for await (let chunk of chunks) {
    if (skip === undefined) {
      buffered = Buffer.concat([buffered, chunk]);
      const headBytes = NODE_IMAGE_MAGIC.length + 4;
      if (buffered.length < headBytes) continue;
      if (!buffered.subarray(0, NODE_IMAGE_MAGIC.length).equals(NODE_IMAGE_MAGIC)) throw new SnapshotFileError('the snapshot image is not a raftkv node image');
      skip = headBytes + buffered.readUInt32LE(NODE_IMAGE_MAGIC.length);
      chunk = buffered;
    }
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    yield chunk.subarray(skip);
    skip = 0;
  }
}

function progressPrinter(io: SnapshotCommandIo): ProgressCallback | undefined {
  if (!io.progressOnTerminal) return undefined;
  let last = '';
  return (phase, doneBytes, totalBytes) => {
    const percent = totalBytes === 0 ? 100 : Math.floor((doneBytes * 100) / totalBytes);
    const line = `\r${phase === 'verify' ? 'verifying' : 'restoring'}: ${formatBytes(doneBytes)} / ${formatBytes(totalBytes)} (${percent}%)`;
    if (line === last) return;
    last = line;
    io.stderr(line + (doneBytes >= totalBytes ? '\n' : ''));
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function silentLogger(): RuntimeLogger {
  const ignore = () => undefined;
  return { debug: ignore, info: ignore, warn: ignore, error: ignore, fatal: ignore };
}
