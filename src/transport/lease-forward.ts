/**
 * The lease requests a follower forwards to the leader over the peer transport
 * (`RaftTransport.LeaseForward`, proto/raft.proto): a renewal (LeaseKeepAlive) or a time-to-live
 * query. Only the leader keeps lease expiry times, so both must be answered there; neither is a
 * Raft entry (etcd forwards keepalives over its peer HTTP `/leases` endpoint the same way).
 *
 * Decoding validates the operation and outcome tags and returns a value error, never throws.
 */
import type { DecodeResult } from './codec';
import { raftProtoTypes } from './raft-proto';

/** A lease ID (etcd int64). */
export type ForwardedLeaseId = bigint;

/** What a follower asks the leader. */
export interface LeaseForwardRequest {
  readonly op: 'renew' | 'time-to-live';
  readonly id: ForwardedLeaseId;
}

/**
 * The leader's answer. `found`: for a renewal `ttlSeconds` is the granted TTL; for a time-to-live
 * query it is the remaining TTL and `grantedTtlSeconds` the granted one. `not-leader`: ask again
 * once the leader is known.
 */
export type LeaseForwardResponse =
  | { readonly outcome: 'found'; readonly ttlSeconds: number; readonly grantedTtlSeconds: number }
  | { readonly outcome: 'not-found' }
  | { readonly outcome: 'not-leader' };

/** Handles a forwarded lease request on the receiving node (its lessor). */
export type LeaseForwardHandler = (request: LeaseForwardRequest) => Promise<LeaseForwardResponse>;

const OPS = ['renew', 'time-to-live'] as const;
const OUTCOMES = ['found', 'not-found', 'not-leader'] as const;

/** Encodes a request. */
export function encodeLeaseForwardRequest(request: LeaseForwardRequest): Buffer {
  const bytes = raftProtoTypes.LeaseForwardRequest.encode({ op: OPS.indexOf(request.op), id: request.id.toString() }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a request. Never throws. */
export function decodeLeaseForwardRequest(bytes: Uint8Array): DecodeResult<LeaseForwardRequest> {
  try {
    const decoded = raftProtoTypes.LeaseForwardRequest.toObject(raftProtoTypes.LeaseForwardRequest.decode(bytes), { longs: String, defaults: true }) as { op: number; id: string };
    const op = OPS[decoded.op];
    if (op === undefined) return { ok: false, error: `unknown lease forward op ${decoded.op}` };
    return { ok: true, value: { op, id: BigInt(decoded.id) } };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Encodes a response. */
export function encodeLeaseForwardResponse(response: LeaseForwardResponse): Buffer {
  const message =
    response.outcome === 'found'
      ? { outcome: 0, ttl: response.ttlSeconds, grantedTtl: response.grantedTtlSeconds }
      : { outcome: OUTCOMES.indexOf(response.outcome) };
  const bytes = raftProtoTypes.LeaseForwardResponse.encode(raftProtoTypes.LeaseForwardResponse.fromObject(message)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a response. Never throws. */
export function decodeLeaseForwardResponse(bytes: Uint8Array): DecodeResult<LeaseForwardResponse> {
  try {
    const decoded = raftProtoTypes.LeaseForwardResponse.toObject(raftProtoTypes.LeaseForwardResponse.decode(bytes), { longs: String, defaults: true }) as { outcome: number; ttl: string; grantedTtl: string };
    const outcome = OUTCOMES[decoded.outcome];
    if (outcome === undefined) return { ok: false, error: `unknown lease forward outcome ${decoded.outcome}` };
    if (outcome !== 'found') return { ok: true, value: { outcome } };
    const ttlSeconds = Number(decoded.ttl);
    const grantedTtlSeconds = Number(decoded.grantedTtl);
    if (!Number.isSafeInteger(ttlSeconds) || !Number.isSafeInteger(grantedTtlSeconds)) return { ok: false, error: 'lease TTL out of range' };
    return { ok: true, value: { outcome, ttlSeconds, grantedTtlSeconds } };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
