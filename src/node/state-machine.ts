/**
 * The node's replicated state machine: the MVCC keyspace (src/mvcc, what the etcd API and the
 * raftexample HTTP API both read and write) plus the membership store (src/kv: members with their
 * peer URLs, and removed IDs — kept apart from the keyspace, as etcd keeps members out of it).
 *
 * Each of the two level stores records its own durable applied index in the same batch as its
 * data and skips entries at or below it, so applying every committed entry to both is idempotent
 * across crashes even if a crash falls between the two batches.
 *
 * Snapshot image = magic `raftkvsm2` | membership image length u32 | membership image (small: it
 * holds no user keys) | MVCC image (streamed; may be large). Both parts carry their own checksums.
 */
import { KvStore, type MemberChange } from '../kv/kv-store';
import { MvccStore, type ApplyResult } from '../mvcc/mvcc-store';
import type { MvccWriteRequest } from '../mvcc/types';
import type { LogIndex, NodeId } from '../raft/types';
import type { ClusterOperation } from './cluster-entry';
import { ClusterMetadata } from './cluster-metadata';
import { planMetadataApply } from './state-machine-metadata';

const IMAGE_MAGIC = Buffer.from('raftkvs2', 'ascii');

/** One committed entry as the state machine sees it. */
export interface StateMachineEntry {
  readonly index: LogIndex;
  /** An MVCC write (Put, DeleteRange, Txn, Compact), or undefined for an entry without one. */
  readonly write?: MvccWriteRequest;
  readonly members?: readonly MemberChange[];
  /** A replicated cluster operation (member attributes, peer URL update, alarm). */
  readonly cluster?: ClusterOperation;
}

/** Membership and keyspace, applied together. */
export class NodeStateMachine {
  /** Member attributes and alarms (cluster-metadata.ts); loaded by {@link loadMetadata}. */
  readonly metadata = new ClusterMetadata();

  constructor(
    readonly membership: KvStore,
    readonly mvcc: MvccStore,
  ) {}

  /** Loads the cluster metadata cache; call once after opening (restores reload it). */
  async loadMetadata(): Promise<void> {
    await this.metadata.load(this.membership);
  }

  /** The lower of the two durable applied indexes: everything above it is (re)applied. */
  appliedIndex(): LogIndex {
    return Math.min(this.membership.appliedIndex(), this.mvcc.appliedIndex());
  }

  members(): Map<NodeId, { peerUrl: string; isLearner: boolean }> {
    return this.membership.members();
  }

  removedIds(): Set<NodeId> {
    return this.membership.removedIds();
  }

  /** The current value of `key` (a serializable, local read). */
  async get(key: string): Promise<Uint8Array | undefined> {
    const result = await this.mvcc.range({ key: Buffer.from(key, 'utf8') });
    if (!result.ok) return undefined;
    return result.value.kvs[0]?.value;
  }

  /**
   * Applies committed entries in log order: membership changes to the membership store and
   * writes to the MVCC store, one level batch each. Resolves with the MVCC results by index.
   */
  async applyEntries(entries: readonly StateMachineEntry[]): Promise<Map<LogIndex, ApplyResult>> {
    const results = new Map<LogIndex, ApplyResult>();
    if (entries.length === 0) return results;
    const plan = planMetadataApply(entries, this.metadata, this.membership, this.mvcc.appliedIndex());
    await this.membership.applyEntries(plan.membershipEntries);
    const applied = await this.mvcc.applyBatch(plan.mvccInputs);
    for (const result of applied) results.set(result.index, result);
    for (const result of plan.refused) results.set(result.index, result);
    return results;
  }

  /**
   * Makes everything applied so far durable in both stores (their level writes follow applies in
   * the background; the WAL covers the gap). Call between applies, before {@link writeSnapshot}.
   */
  async flush(): Promise<void> {
    await this.membership.flush();
    await this.mvcc.flush();
  }

  /**
   * Makes everything applied so far durable on disk, fsynced, in both stores: after it, a restart
   * finds both stores at least this far, so the WAL entries up to here may go without an image.
   */
  async persist(): Promise<void> {
    await this.membership.persist();
    await this.mvcc.persist();
  }

  /** A point-in-time image of both stores, pinned at the call (call between applies, after {@link flush}). */
  writeSnapshot(): AsyncIterable<Uint8Array> {
    const membershipImage = this.membership.writeSnapshot();
    const mvccImage = this.mvcc.writeSnapshot();
    return (async function* () {
      const parts: Buffer[] = [];
      for await (const chunk of membershipImage) parts.push(Buffer.from(chunk));
      const membership = Buffer.concat(parts);
      const head = Buffer.alloc(IMAGE_MAGIC.length + 4);
      IMAGE_MAGIC.copy(head, 0);
      head.writeUInt32LE(membership.length, IMAGE_MAGIC.length);
      yield head;
      yield membership;
      yield* mvccImage;
    })();
  }

  /** Replaces both stores with the image (cut at `index`). Rejects on a damaged image. */
  async restoreSnapshot(body: AsyncIterable<Uint8Array>, index: LogIndex): Promise<void> {
    const reader = new ChunkReader(body[Symbol.asyncIterator]());
    const head = await reader.read(IMAGE_MAGIC.length + 4);
    if (!head.subarray(0, IMAGE_MAGIC.length).equals(IMAGE_MAGIC)) throw new Error('snapshot image: bad magic (not a raftkv node image)');
    const membershipBytes = head.readUInt32LE(IMAGE_MAGIC.length);
    const membership = await reader.read(membershipBytes);
    await this.membership.restoreSnapshot(single(membership), index);
    await this.mvcc.restoreSnapshot(reader.rest(), index);
    await this.loadMetadata();
  }

  async close(): Promise<void> {
    await this.membership.close();
    await this.mvcc.close();
  }
}

async function* single(buffer: Buffer): AsyncIterable<Uint8Array> {
  yield buffer;
}

/** Reads exact byte counts from a chunk stream, then hands over the rest. */
class ChunkReader {
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  async read(bytes: number): Promise<Buffer> {
    while (this.buffered.length < bytes) {
      const next = await this.source.next();
      if (next.done === true) throw new Error(`snapshot image: truncated (wanted ${bytes} bytes, have ${this.buffered.length})`);
      this.buffered = Buffer.concat([this.buffered, Buffer.from(next.value)]);
    }
    const out = this.buffered.subarray(0, bytes);
    this.buffered = this.buffered.subarray(bytes);
    return out;
  }

  async *rest(): AsyncIterable<Uint8Array> {
    if (this.buffered.length > 0) yield this.buffered;
    for (;;) {
      const next = await this.source.next();
      if (next.done === true) return;
      yield next.value;
    }
  }
}
