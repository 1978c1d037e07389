/**
 * The key layout of a KvStore's LevelDB database, and the helpers that read and write it
 * (the layout itself is documented in the overview of kv-store.ts).
 */

import { Level } from 'level';
import type { LogIndex, NodeId } from '../raft/types';

/** A cluster member as the state machine records it. */
export interface Member {
  /** Where peers reach the member; empty when its conf change carried no URL (bootstrap). */
  readonly peerUrl: string;
  readonly isLearner: boolean;
}

/** The database as KvStore opens it: binary keys (Buffer) and values (views). */
export type Database = Level<Buffer, Uint8Array>;
/** One operation of a LevelDB batch. */
export type BatchOperation = { type: 'put'; key: Buffer; value: Uint8Array } | { type: 'del'; key: Buffer };

/** The on-disk layout version written under the format key. */
export const KV_STORE_FORMAT_VERSION = 1;

const META = 0x00;
/** First byte of every user key: user keys can never collide with the metadata (0x00 ...). */
export const DATA = 0x01;
/** Metadata key of the layout version (u32). */
export const FORMAT_KEY = Buffer.from([META, 0x66]);
/** Metadata key of the applied index (u64). */
export const APPLIED_KEY = Buffer.from([META, 0x61]);
/** Metadata key of the exact user key count (u64). */
export const KEY_COUNT_KEY = Buffer.from([META, 0x63]);
/** Second byte of member keys (0x00 'm' id). */
export const MEMBER_TAG = 0x6d;
/** Second byte of removed-ID keys (0x00 'r' id). */
export const REMOVED_TAG = 0x72;
/** Lower bound (inclusive) of the user key range. */
export const DATA_START = Buffer.from([DATA]);
/** Upper bound (exclusive) of the user key range. */
export const DATA_END = Buffer.from([DATA + 1]);
/** Restore writes the staged image in LevelDB batches of about this size. */
export const RESTORE_BATCH_BYTES = 4 * 1024 * 1024;
/** Entries read per `nextv` while streaming an image. */
export const SNAPSHOT_READ_ENTRIES = 1000;

/** `value` as 8 bytes, unsigned big-endian. */
export function u64(value: number | bigint): Buffer {
  const buffer = Buffer.allocUnsafe(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}

/** Reads an 8-byte metadata number; a malformed one is corruption and throws. */
export function readU64(bytes: Uint8Array, what: string): number {
  if (bytes.byteLength !== 8) throw new Error(`KvStore: corrupt ${what} (${bytes.byteLength} bytes)`);
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE(0);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`KvStore: corrupt ${what} (${value})`);
  return Number(value);
}

/** The LevelDB key of user key `key`: 0x01 then its UTF-8 bytes. */
export function dataKey(key: string): Buffer {
  const length = Buffer.byteLength(key, 'utf8');
  const buffer = Buffer.allocUnsafe(1 + length);
  buffer[0] = DATA;
  buffer.write(key, 1, length, 'utf8');
  return buffer;
}

/** The LevelDB key of a member or removed-ID record. */
export function idKey(tag: number, id: NodeId): Buffer {
  const buffer = Buffer.allocUnsafe(10);
  buffer[0] = META;
  buffer[1] = tag;
  buffer.writeBigUInt64BE(id, 2);
  return buffer;
}

/** The key range of all records with the given metadata tag. */
export function prefixRange(tag: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.from([META, tag]), lt: Buffer.from([META, tag + 1]) };
}

/** Encodes a member record's value: flags u8 (bit 0 = learner), then the peer URL. */
export function memberValue(member: Member): Buffer {
  const length = Buffer.byteLength(member.peerUrl, 'utf8');
  const buffer = Buffer.allocUnsafe(1 + length);
  buffer[0] = member.isLearner ? 1 : 0;
  buffer.write(member.peerUrl, 1, length, 'utf8');
  return buffer;
}

/** Decodes a member record's value; a malformed one is corruption and throws. */
export function decodeMember(value: Uint8Array): Member {
  const flags = value[0];
  if (flags === undefined || flags > 1) throw new Error('KvStore: corrupt member record');
  return { isLearner: flags === 1, peerUrl: Buffer.from(value.buffer, value.byteOffset + 1, value.byteLength - 1).toString('utf8') };
}

/** The state read from an open database: what KvStore caches in memory. */
export interface LoadedState {
  applied: LogIndex;
  keyCount: number;
  members: Map<NodeId, Member>;
  removed: Set<NodeId>;
}

/** Opens (creating if missing) the LevelDB database in `dir` with the store's encodings. */
export async function openDatabase(dir: string): Promise<Database> {
  const db: Database = new Level<Buffer, Uint8Array>(dir, { keyEncoding: 'buffer', valueEncoding: 'view' });
  await db.open();
  return db;
}

/**
 * Reads the store's metadata and membership. A database without the format key must be empty: it
 * is then initialised (durably) as a new store at applied index 0.
 */
export async function loadState(db: Database): Promise<LoadedState> {
  const [format, applied, keyCount] = await db.getMany([FORMAT_KEY, APPLIED_KEY, KEY_COUNT_KEY]);
  if (format === undefined) {
    for await (const _key of db.keys({ limit: 1 })) {
      throw new Error('KvStore: directory holds a LevelDB database that is not a raftkv store');
    }
    const fresh: BatchOperation[] = [
      { type: 'put', key: FORMAT_KEY, value: u64(KV_STORE_FORMAT_VERSION).subarray(4) },
      { type: 'put', key: APPLIED_KEY, value: u64(0) },
      { type: 'put', key: KEY_COUNT_KEY, value: u64(0) },
    ];
    await db.batch(fresh, { sync: true });
    return { applied: 0, keyCount: 0, members: new Map(), removed: new Set() };
  }
  const version = format.byteLength === 4 ? Buffer.from(format).readUInt32BE(0) : -1;
  if (version !== KV_STORE_FORMAT_VERSION) throw new Error(`KvStore: unknown store format version ${version}`);
  if (applied === undefined || keyCount === undefined) throw new Error('KvStore: store metadata incomplete');
  const members = new Map<NodeId, Member>();
  for await (const [key, value] of db.iterator(prefixRange(MEMBER_TAG))) {
    members.set(key.readBigUInt64BE(2), decodeMember(value));
  }
  const removed = new Set<NodeId>();
  for await (const key of db.keys(prefixRange(REMOVED_TAG))) removed.add(key.readBigUInt64BE(2));
  return { applied: readU64(applied, 'applied index'), keyCount: readU64(keyCount, 'key count'), members, removed };
}
