/**
 * Consistent hashing with virtual nodes: which cache node owns a key.
 *
 * Each member is placed on a 32-bit ring `replicas` times, at the hashes of `"<i>#<member>"`
 * for i in [0, replicas); a key belongs to the member of the first point at or after the key's
 * hash (wrapping around). With enough virtual nodes each member owns close to 1/N of the keys,
 * and adding or removing one member moves only the keys of the arcs it gains or loses (about
 * 1/N of them) — the rest keep their owner, so their cached copies stay useful.
 *
 * The hash is the first 4 bytes of MD5 (big-endian): stable across processes and versions, which
 * matters because every cache node must compute the SAME owner for a key without talking to the
 * others. MD5 is used for its spread, not for security. Ties between points are broken by member
 * name so every node builds an identical ring from the same member set, in any order.
 */
import { createHash } from 'node:crypto';

/** The 32-bit ring position of `text`. */
export function ringHash(text: string): number {
  return createHash('md5').update(text, 'utf8').digest().readUInt32BE(0);
}

/** An immutable ring; build a new one whenever the member set changes. */
export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: string[];
  /** The members, sorted. */
  readonly members: readonly string[];

  /**
   * @param members distinct member names (duplicates are ignored).
   * @param replicas virtual nodes per member, at least 1.
   */
  constructor(members: Iterable<string>, readonly replicas: number) {
    if (!Number.isSafeInteger(replicas) || replicas < 1) throw new Error(`HashRing: replicas must be a positive integer, got ${replicas}`);
    this.members = [...new Set(members)].sort();
    const placed: Array<{ point: number; member: string }> = [];
    for (const member of this.members) {
      for (let index = 0; index < replicas; index++) placed.push({ point: ringHash(`${index}#${member}`), member });
    }
    placed.sort((a, b) => a.point - b.point || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
    this.points = Uint32Array.from(placed.map((item) => item.point));
    this.owners = placed.map((item) => item.member);
  }

  /** Whether the ring has no member. */
  get empty(): boolean {
    return this.members.length === 0;
  }

  /** The member owning `key`, or undefined on an empty ring. */
  ownerOf(key: string): string | undefined {
    if (this.points.length === 0) return undefined;
    const hash = ringHash(key);
    // First point >= hash (binary search); past the end wraps to point 0.
    let low = 0;
    let high = this.points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.points[middle]! < hash) low = middle + 1;
      else high = middle;
    }
    return this.owners[low === this.points.length ? 0 : low];
  }
}
