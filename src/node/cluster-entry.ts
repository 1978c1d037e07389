/**
 * Cluster operations carried by Raft Normal entries: replicated changes to cluster METADATA that
 * are not configuration changes of the Raft core.
 *
 * - `publish-attributes`: a member announces its name and client URLs after it starts (etcd's
 *   `publish()` of `membership.Attributes`, also a normal replicated request there);
 * - `update-peer-urls`: etcd's MemberUpdate; the member's peer URL changes in the membership
 *   store and in every node's transport, without a conf change (the voter set is unchanged);
 * - `alarm`: etcd's Maintenance/Alarm ACTIVATE / DEACTIVATE (the alarm list is replicated so
 *   every member refuses the same writes at the same log position while NOSPACE is raised).
 *
 * Format: version byte 3 (src/kv/command.ts uses 1, src/mvcc/write-codec.ts 2, so the first byte
 * tells the three apart) | request ID u64 big-endian | UTF-8 JSON of the operation. Decoding
 * validates every field and returns a value error, never throws.
 */
import type { NodeId } from '../raft/types';

/** The first byte of an encoded cluster operation. */
export const CLUSTER_ENTRY_FORMAT_VERSION = 3;

/** etcd's AlarmType numbers (etcdserverpb.AlarmType). */
export enum AlarmType {
  None = 0,
  NoSpace = 1,
  Corrupt = 2,
}

/** One raised alarm: which member raised it and which alarm (etcdserverpb.AlarmMember). */
export interface AlarmMember {
  readonly memberId: NodeId;
  readonly alarm: AlarmType;
}

/** A replicated cluster operation (see the module overview). */
export type ClusterOperation =
  | { readonly kind: 'publish-attributes'; readonly memberId: NodeId; readonly name: string; readonly clientUrls: readonly string[] }
  | { readonly kind: 'update-peer-urls'; readonly memberId: NodeId; readonly peerUrls: readonly string[] }
  | { readonly kind: 'alarm'; readonly action: 'activate' | 'deactivate'; readonly memberId: NodeId; readonly alarm: AlarmType };

/** A decoded entry: the operation and the request ID of the caller waiting for it. */
export interface EncodedClusterOperation {
  readonly requestId: bigint;
  readonly operation: ClusterOperation;
}

/** True if `data` starts like an encoded cluster operation. */
export function isClusterEntry(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === CLUSTER_ENTRY_FORMAT_VERSION;
}

/** Encodes an operation for a Raft entry. */
export function encodeClusterOperation(requestId: bigint, operation: ClusterOperation): Uint8Array {
  const json = Buffer.from(
    JSON.stringify(operation, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)),
    'utf8',
  );
  const buffer = Buffer.alloc(9 + json.length);
  buffer[0] = CLUSTER_ENTRY_FORMAT_VERSION;
  buffer.writeBigUInt64BE(requestId, 1);
  json.copy(buffer, 9);
  return buffer;
}

/** Decodes an entry's data; a value error (never an exception) for malformed input. */
export function decodeClusterOperation(
  data: Uint8Array,
): { readonly ok: true; readonly value: EncodedClusterOperation } | { readonly ok: false; readonly reason: string } {
  if (!isClusterEntry(data)) return { ok: false, reason: 'unknown-version' };
  if (data.length < 9) return { ok: false, reason: 'truncated' };
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const requestId = buffer.readBigUInt64BE(1);
  let value: unknown;
  try {
    value = JSON.parse(buffer.subarray(9).toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed-json' };
  }
  const operation = validateOperation(value);
  return operation === undefined ? { ok: false, reason: 'invalid-operation' } : { ok: true, value: { requestId, operation } };
}

function validateOperation(value: unknown): ClusterOperation | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const memberId = typeof record.memberId === 'string' && /^\d{1,20}$/.test(record.memberId) ? BigInt(record.memberId) : undefined;
  if (memberId === undefined) return undefined;
  const strings = (field: unknown): string[] | undefined =>
    Array.isArray(field) && field.every((item): item is string => typeof item === 'string') ? field : undefined;
  switch (record.kind) {
    case 'publish-attributes': {
      const clientUrls = strings(record.clientUrls);
      if (typeof record.name !== 'string' || clientUrls === undefined) return undefined;
      return { kind: 'publish-attributes', memberId, name: record.name, clientUrls };
    }
    case 'update-peer-urls': {
      const peerUrls = strings(record.peerUrls);
      if (peerUrls === undefined || peerUrls.length === 0) return undefined;
      return { kind: 'update-peer-urls', memberId, peerUrls };
    }
    case 'alarm': {
      if (record.action !== 'activate' && record.action !== 'deactivate') return undefined;
      if (typeof record.alarm !== 'number' || !(record.alarm in AlarmType)) return undefined;
      return { kind: 'alarm', action: record.action, memberId, alarm: record.alarm as AlarmType };
    }
    default:
      return undefined;
  }
}
