/**
 * The cluster ID: a 64-bit value every member of one cluster computes identically, sent with
 * every peer call so that members of different clusters (or of an earlier incarnation of the same
 * cluster) refuse each other's messages.
 *
 * It is derived from the initial member IDs and the cluster token only, never from URLs: each
 * node may reach a peer through its own address (fault-injection proxies rely on this), so URLs
 * differ between nodes while the ID must not.
 */
import { createHash } from 'node:crypto';
import type { NodeId } from '../raft/types';

const UINT64_LIMIT = 1n << 64n;

/**
 * Computes the cluster ID: SHA-256 over the number of members (8 bytes, big-endian), the member
 * IDs sorted ascending (8 bytes each, big-endian) and the token (UTF-8); the ID is the first
 * non-zero 64-bit big-endian word of the digest, so it is NEVER 0.
 *
 * The order of `initialMemberIds` does not matter. Throws (a configuration bug the caller should
 * have refused) on an empty list, a duplicate, or an ID that is 0 or outside 64 bits.
 */
export function clusterIdFor(initialMemberIds: readonly NodeId[], clusterToken: string): bigint {
  if (initialMemberIds.length === 0) throw new Error('assertion failed: a cluster has at least one member');
  const sorted = [...initialMemberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const prefix = Buffer.alloc(8 * (sorted.length + 1));
  prefix.writeBigUInt64BE(BigInt(sorted.length), 0);
  sorted.forEach((id, position) => {
    if (id <= 0n || id >= UINT64_LIMIT) throw new Error(`assertion failed: member ID ${id} outside 1..2^64-1`);
    if (position > 0 && sorted[position - 1] === id) throw new Error(`assertion failed: duplicate member ID ${id}`);
    prefix.writeBigUInt64BE(id, 8 * (position + 1));
  });
  const digest = createHash('sha256').update(prefix).update(clusterToken, 'utf8').digest();
  for (let offset = 0; offset < digest.length; offset += 8) {
    const word = digest.readBigUInt64BE(offset);
    if (word !== 0n) return word;
  }
  throw new Error('assertion failed: SHA-256 digest of all zeros');
}
