/**
 * The context carried by a membership change entry: the member's peer URL and the request ID of
 * the caller waiting for it. Bootstrap entries carry an empty context (the URLs of the initial
 * members come from each node's own `--cluster` flag).
 */
import type { NodeId } from '../raft/types';

/** What a ConfChange's context holds. */
export interface MemberContext {
  readonly peerUrl: string;
  readonly requestId: bigint;
}

/** Encodes a member context as JSON (bigint as a decimal string). */
export function encodeMemberContext(context: MemberContext): Uint8Array {
  return Buffer.from(JSON.stringify({ peerUrl: context.peerUrl, requestId: context.requestId.toString() }), 'utf8');
}

/** Decodes a member context; an empty or foreign context yields undefined (never throws). */
export function decodeMemberContext(bytes: Uint8Array): MemberContext | undefined {
  if (bytes.length === 0) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    const record = value as Record<string, unknown>;
    if (typeof record.peerUrl !== 'string' || typeof record.requestId !== 'string') return undefined;
    if (!/^\d+$/.test(record.requestId)) return undefined;
    return { peerUrl: record.peerUrl, requestId: BigInt(record.requestId) };
  } catch {
    return undefined;
  }
}

/** The peer URLs given by `--cluster`: position k is node k+1 (raftexample's convention). */
export function initialPeerUrls(cluster: readonly string[]): Map<NodeId, string> {
  const urls = new Map<NodeId, string>();
  cluster.forEach((url, position) => urls.set(BigInt(position + 1), url));
  return urls;
}
