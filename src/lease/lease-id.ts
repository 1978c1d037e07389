/**
 * Lease IDs generated etcd's way (pkg/idutil/id.go; etcdserver/v3_server.go LeaseGrant): a 64-bit
 * value made of the low 16 bits of the member ID (top 16 bits), then the low 40 bits of the
 * millisecond clock at start-up shifted left by 8, to which a counter is added for each ID. The
 * sign bit is cleared so the ID is a positive int64 (etcd masks with 2^63 - 1), and 0 (= no lease)
 * is skipped. IDs from one member are unique while its clock does not go back across restarts by
 * more than the IDs it handed out; IDs of two members differ in their prefix (if their low 16 bits
 * differ). A collision with an existing lease is caught at apply time ("lease already exists").
 */
import type { LeaseId } from '../mvcc/types';

const TIMESTAMP_BITS = 40n;
const COUNTER_BITS = 8n;
const SUFFIX_BITS = TIMESTAMP_BITS + COUNTER_BITS;
const SUFFIX_MASK = (1n << SUFFIX_BITS) - 1n;
const INT64_POSITIVE_MASK = (1n << 63n) - 1n;

/** Generates lease IDs for one member. */
export class LeaseIdGenerator {
  private readonly prefix: bigint;
  private suffix: bigint;

  /** @param memberId this member's ID; @param nowMs wall-clock milliseconds at start-up */
  constructor(memberId: bigint, nowMs: number = Date.now()) {
    this.prefix = (memberId & 0xffffn) << SUFFIX_BITS;
    this.suffix = (BigInt(Math.floor(nowMs)) & ((1n << TIMESTAMP_BITS) - 1n)) << COUNTER_BITS;
  }

  /** The next ID: positive, never 0. */
  next(): LeaseId {
    for (;;) {
      this.suffix = (this.suffix + 1n) & SUFFIX_MASK;
      const id = (this.prefix | this.suffix) & INT64_POSITIVE_MASK;
      if (id !== 0n) return id;
    }
  }
}
