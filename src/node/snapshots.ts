/**
 * Snapshots as the runtime sees them: the glue between the state machine (src/kv), snapshot files
 * (src/snap) and the transport's snapshot streaming (src/transport).
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

/** What Snapshot.data holds. */
export interface SnapshotDescriptor {
  readonly bodyBytes: number;
  readonly sha256: string;
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
   * Cuts a snapshot at `index`. The state machine's image is pinned SYNCHRONOUSLY at the call
   * (the caller guarantees nothing after `index` was applied yet), then streamed to a file.
   */
  async create(index: LogIndex, term: number, confState: ConfState): Promise<Uint8Array> {
    const body = this.stateMachine.writeSnapshot();
    const file = await this.snapshotter.save({ index, term, confState }, body);
    return encodeSnapshotDescriptor({ bodyBytes: file.bodyBytes, sha256: file.sha256 });
  }

  /** Replaces the state machine with the snapshot file matching `snapshot`. */
  async restore(snapshot: Snapshot): Promise<void> {
    const file = await this.find(snapshot.metadata);
    if (file === undefined) {
      throw new Error(`assertion failed: snapshot file for index ${snapshot.metadata.index} term ${snapshot.metadata.term} is missing`);
    }
    await this.stateMachine.restoreSnapshot(this.snapshotter.openBody(file), snapshot.metadata.index);
  }

  /** Deletes snapshot files older than the one at `keepIndex`. */
  async release(keepIndex: LogIndex): Promise<void> {
    await this.snapshotter.release(keepIndex);
  }

  /** Transport, sender side: the body of the snapshot a MsgSnap refers to. */
  async open(message: Message): Promise<{ bodyBytes: number; sha256: string; body: AsyncIterable<Uint8Array> }> {
    const metadata = message.snapshot?.metadata;
    if (metadata === undefined) throw new Error('MsgSnap without a snapshot');
    const file = await this.find(metadata);
    if (file === undefined) throw new Error(`snapshot file for index ${metadata.index} is gone (a newer one replaced it)`);
    return { bodyBytes: file.bodyBytes, sha256: file.sha256, body: this.snapshotter.openBody(file) };
  }

  /** Transport, receiver side: stores and verifies an incoming snapshot body. */
  async receive(message: Message, _bodyBytes: number, sha256: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const metadata = message.snapshot?.metadata;
    if (metadata === undefined) throw new Error('MsgSnap without a snapshot');
    const existing = await this.find(metadata);
    if (existing !== undefined && existing.sha256 === sha256) {
      for await (const chunk of chunks) void chunk; // drain: we already hold this exact snapshot
      return;
    }
    await this.snapshotter.receive(metadata, chunks, sha256);
  }

  private async find(metadata: SnapshotMetadata): Promise<SnapshotFile | undefined> {
    const files = await this.snapshotter.list();
    return files.find((file) => file.metadata.index === metadata.index && file.metadata.term === metadata.term);
  }
}
