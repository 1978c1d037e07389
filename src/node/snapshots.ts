/**
 * Snapshots as the runtime sees them: the glue between the state machine (src/kv), snapshot files
 * (src/snap) and the transport's snapshot streaming (src/transport).
 *
 * Two kinds, as etcd's (whose backend file is the state and whose snapshot for a follower is a copy
 * of that file made when one is needed):
 * - WITHOUT an image (body of 0 bytes): what log compaction cuts every --snapshot-count entries.
 *   The state machine's own stores hold the state; they are made durable (fsynced) at or past the
 *   snapshot's index before the snapshot is saved, so the WAL entries it covers may go. Cutting
 *   one costs a synchronous level write (and at most a memtable written out as a table), not a
 *   copy of the whole store (a million keys took 5–12 s and left ~200 MiB of level's table pages
 *   mapped in every member).
 * - WITH an image (the whole state machine): cut only when a follower needs a snapshot and the
 *   newest one has no image (see RaftServer), and what a follower receives and restores.
 *
 * `Snapshot.data` (what travels inside the core and inside MsgSnap) is only a small descriptor:
 * the body's size and SHA-256. The body itself — the state machine image, possibly hundreds of
 * megabytes — lives in a snapshot file and is streamed by the transport in chunks; the receiver
 * verifies the checksum BEFORE the file is renamed into place and before the core ever sees the
 * MsgSnap.
 */
import type { ConfState, LogIndex, Message, Snapshot, SnapshotMetadata } from '../raft/types';
import type { Snapshotter, SnapshotFile } from '../snap/snapshotter';
import type { NodeStateMachine } from './state-machine';
import type { SnapshotPort } from './raft-server';
import type { SnapshotBody, SnapshotBodyDigest } from '../transport/transport';

/** What Snapshot.data holds. */
export interface SnapshotDescriptor {
  readonly bodyBytes: number;
  readonly sha256: string;
}

/**
 * Snapshot.data of a MsgSnap a leader sends while it is still cutting the image (size and digest
 * not known yet; they follow the body, and the receiver puts the complete descriptor in place).
 */
export const STREAMED_SNAPSHOT_DATA: Uint8Array = encodeSnapshotDescriptor({ bodyBytes: -1, sha256: '' });

/** Whether the snapshot described carries an image of the state machine (see the module overview). */
export function hasImage(descriptor: SnapshotDescriptor): boolean {
  return descriptor.bodyBytes > 0;
}

/** Encodes a descriptor into Snapshot.data. */
export function encodeSnapshotDescriptor(descriptor: SnapshotDescriptor): Uint8Array {
  return Buffer.from(JSON.stringify(descriptor), 'utf8');
}

/** Decodes Snapshot.data; undefined if it is not a descriptor. */
export function decodeSnapshotDescriptor(data: Uint8Array): SnapshotDescriptor | undefined {
  try {
    const value = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<SnapshotDescriptor>;
    if (typeof value.bodyBytes !== 'number' || typeof value.sha256 !== 'string') return undefined;
    return { bodyBytes: value.bodyBytes, sha256: value.sha256 };
  } catch {
    return undefined;
  }
}

/**
 * Snapshot files of one node: cuts them from the state machine, restores the state machine from
 * them, serves them to the transport (sender side) and receives them from it (receiver side).
 */
export class NodeSnapshots implements SnapshotPort {
  constructor(
    private readonly snapshotter: Snapshotter,
    private readonly stateMachine: NodeStateMachine,
  ) {}

  /**
   * Cuts a snapshot at `index` (the caller guarantees that everything up to `index` was applied,
   * and with `withImage` nothing after it yet). With an image, the state machine's image is
   * pinned SYNCHRONOUSLY at the call and streamed to a file. Without, the stores are made durable
   * first (applies after `index` may go on meanwhile: they only make the stores newer).
   */
  async create(index: LogIndex, term: number, confState: ConfState, withImage: boolean): Promise<Uint8Array> {
    let body: Uint8Array | AsyncIterable<Uint8Array>;
    if (withImage) {
      body = this.stateMachine.writeSnapshot();
    } else {
      await this.stateMachine.persist();
      body = new Uint8Array(0);
    }
    // An image's body may be followed by transfers while it is written (see open).
    const file = await this.snapshotter.save({ index, term, confState }, body, { share: withImage });
    return encodeSnapshotDescriptor({ bodyBytes: file.bodyBytes, sha256: file.sha256 });
  }

  /** Replaces the state machine with the snapshot file matching `snapshot` (which must carry an image). */
  async restore(snapshot: Snapshot): Promise<void> {
    const file = await this.find(snapshot.metadata);
    if (file === undefined) {
      throw new Error(`assertion failed: snapshot file for index ${snapshot.metadata.index} term ${snapshot.metadata.term} is missing`);
    }
    if (!hasImage(file)) throw new Error(`assertion failed: snapshot ${snapshot.metadata.index} to restore has no image`);
    // Not hashed again here: the file was checked when it arrived, and the image carries its own
    // SHA-256 and CRCs, which the restore checks (a damaged image fails it either way).
    await this.stateMachine.restoreSnapshot(this.snapshotter.openBody(file, { verify: false }), snapshot.metadata.index);
  }

  /** Deletes snapshot files older than the one at `keepIndex`. */
  async release(keepIndex: LogIndex): Promise<void> {
    await this.snapshotter.release(keepIndex);
  }

  /**
   * Transport, sender side: the body of the snapshot a MsgSnap refers to. An image still being
   * cut (a MsgSnap sent with {@link STREAMED_SNAPSHOT_DATA}) is followed as it is written, its
   * size and digest sent after it.
   */
  async open(message: Message): Promise<SnapshotBody> {
    const metadata = message.snapshot?.metadata;
    if (metadata === undefined) throw new Error('MsgSnap without a snapshot');
    const followed = this.snapshotter.followSave(metadata);
    if (followed !== undefined) return { bodyBytes: 0, sha256: '', body: followed.body, digestAfterBody: followed.digest };
    const file = await this.find(metadata);
    if (file === undefined) throw new Error(`snapshot file for index ${metadata.index} is gone (a newer one replaced it)`);
    if (!hasImage(file)) throw new Error(`snapshot ${metadata.index} has no image to send`);
    return { bodyBytes: file.bodyBytes, sha256: file.sha256, body: this.snapshotter.openBody(file) };
  }

  /**
   * Transport, receiver side: stores and verifies an incoming snapshot body. Resolves to the
   * MsgSnap to hand to Raft, its data the descriptor of the file now held (a streamed transfer's
   * sender could not fill it in).
   */
  async receive(message: Message, expected: SnapshotBodyDigest | (() => SnapshotBodyDigest), chunks: AsyncIterable<Uint8Array>): Promise<Message> {
    const snapshot = message.snapshot;
    if (snapshot === undefined) throw new Error('MsgSnap without a snapshot');
    const metadata = snapshot.metadata;
    const existing = await this.find(metadata);
    let file: SnapshotDescriptor;
    if (existing !== undefined && typeof expected !== 'function' && existing.sha256 === expected.sha256) {
      for await (const chunk of chunks) void chunk; // drain: we already hold this exact snapshot
      file = existing;
    } else {
      file = await this.snapshotter.receive(metadata, chunks, typeof expected === 'function' ? () => expected().sha256 : expected.sha256);
    }
    const data = encodeSnapshotDescriptor({ bodyBytes: file.bodyBytes, sha256: file.sha256 });
    return { ...message, snapshot: { ...snapshot, data } };
  }

  private async find(metadata: SnapshotMetadata): Promise<SnapshotFile | undefined> {
    const files = await this.snapshotter.list();
    return files.find((file) => file.metadata.index === metadata.index && file.metadata.term === metadata.term);
  }
}
