/**
 * Request IDs: 64-bit identifiers that tie an applied entry back to the caller that proposed it.
 *
 * The high 32 bits are a per-process boot nonce mixed with the node ID, the low 32 bits a counter.
 * The nonce matters: after a restart, entries proposed by the previous incarnation may still be
 * applied, and they must not resolve the new incarnation's waiters.
 */
import { randomBytes, createHash } from 'node:crypto';
import type { NodeId } from '../raft/types';

/** Generates request IDs unique to this node and this process. */
export class RequestIdGenerator {
  private readonly prefix: bigint;
  private counter = 0;

  constructor(nodeId: NodeId) {
    const hash = createHash('sha256').update(nodeId.toString()).update(randomBytes(16)).digest();
    this.prefix = BigInt(hash.readUInt32BE(0)) << 32n;
  }

  /** The next ID. */
  next(): bigint {
    this.counter = (this.counter + 1) >>> 0;
    return this.prefix | BigInt(this.counter);
  }
}
