/**
 * Single-server membership changes (thesis §4.1): their encoding inside `Entry.data`, their
 * validation, and their effect on a {@link ConfState}.
 *
 * Wire format of an encoded ConfChange (big-endian, version 1), 14 + n bytes:
 * ```
 *   offset 0   u8    format version (1)
 *   offset 1   u8    ConfChangeType
 *   offset 2   u64   nodeId
 *   offset 10  u32   n = context length
 *   offset 14  n     context bytes (opaque: the runtime's member URL/name)
 * ```
 * Encoding is canonical (one byte string per change), so every initial member writes
 * byte-identical bootstrap entries.
 *
 * Semantics (as etcd): a change takes effect when its entry is APPLIED, on every node alike, so
 * {@link applyToConfState} must be deterministic and total: an invalid change is refused with a
 * reason and leaves the configuration unchanged.
 */
import { ConfChangeType, NONE, type ConfChange, type ConfState, type NodeId, type RejectReason } from './types';
import { assert } from './util';

const FORMAT_VERSION = 1;
const HEADER_BYTES = 14;

/** Encodes a ConfChange for `Entry.data` (format in the module overview). */
export function encodeConfChange(change: ConfChange): Uint8Array {
  assert(change.nodeId >= 0n && change.nodeId < 1n << 64n, 'encodeConfChange: nodeId out of 64-bit range');
  const bytes = new Uint8Array(HEADER_BYTES + change.context.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, FORMAT_VERSION);
  view.setUint8(1, change.type);
  view.setBigUint64(2, change.nodeId);
  view.setUint32(10, change.context.length);
  bytes.set(change.context, HEADER_BYTES);
  return bytes;
}

/**
 * Decodes `Entry.data` of a ConfChange entry. Throws (an assertion: the log holds only what
 * {@link encodeConfChange} wrote, so garbage means corruption or a bug) on a malformed value.
 */
export function decodeConfChange(bytes: Uint8Array): ConfChange {
  assert(bytes.length >= HEADER_BYTES, `decodeConfChange: ${bytes.length} bytes is too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  assert(version === FORMAT_VERSION, `decodeConfChange: unknown format version ${version}`);
  const type = view.getUint8(1);
  assert(
    type === ConfChangeType.AddNode || type === ConfChangeType.RemoveNode || type === ConfChangeType.AddLearnerNode,
    `decodeConfChange: unknown type ${type}`,
  );
  const nodeId = view.getBigUint64(2);
  const contextLength = view.getUint32(10);
  assert(bytes.length === HEADER_BYTES + contextLength, 'decodeConfChange: length does not match the context length');
  return { type, nodeId, context: bytes.slice(HEADER_BYTES) };
}

/**
 * Why `change` cannot be applied to `confState`, or undefined if it can:
 * - 'removed-node': the ID was removed before; a removed ID never rejoins.
 * - 'conf-change-invalid': NONE as ID, adding an existing voter, adding a learner that is
 *   already a learner or a voter (demotion is not a single-server change), removing a
 *   non-member, or removing the last voter.
 */
export function checkConfChange(confState: ConfState, change: ConfChange): RejectReason | undefined {
  const id = change.nodeId;
  if (id === NONE) return 'conf-change-invalid';
  if (confState.removed.includes(id)) return 'removed-node';
  const isVoter = confState.voters.includes(id);
  const isLearner = confState.learners.includes(id);
  switch (change.type) {
    case ConfChangeType.AddNode:
      return isVoter ? 'conf-change-invalid' : undefined;
    case ConfChangeType.AddLearnerNode:
      return isVoter || isLearner ? 'conf-change-invalid' : undefined;
    case ConfChangeType.RemoveNode:
      if (!isVoter && !isLearner) return 'conf-change-invalid';
      if (isVoter && confState.voters.length === 1) return 'conf-change-invalid';
      return undefined;
    default:
      return 'conf-change-invalid';
  }
}

/** The result of applying a change: the new configuration, or why it was refused (unchanged). */
export type ConfChangeOutcome =
  | { readonly ok: true; readonly confState: ConfState }
  | { readonly ok: false; readonly reason: RejectReason; readonly confState: ConfState };

/**
 * Applies one single-server change (thesis §4.1) to a configuration, returning a new ConfState
 * (the input is not modified). AddNode adds a voter or promotes a learner; AddLearnerNode adds a
 * learner; RemoveNode removes a voter or learner and records the ID in `removed`. Order is kept:
 * new members go last. Invalid changes return the input unchanged with the reason.
 */
export function applyToConfState(confState: ConfState, change: ConfChange): ConfChangeOutcome {
  const reason = checkConfChange(confState, change);
  if (reason !== undefined) return { ok: false, reason, confState };
  const id = change.nodeId;
  const without = (ids: readonly NodeId[]): NodeId[] => ids.filter((other) => other !== id);
  switch (change.type) {
    case ConfChangeType.AddNode:
      return {
        ok: true,
        confState: { voters: [...confState.voters, id], learners: without(confState.learners), removed: confState.removed },
      };
    case ConfChangeType.AddLearnerNode:
      return {
        ok: true,
        confState: { voters: confState.voters, learners: [...confState.learners, id], removed: confState.removed },
      };
    case ConfChangeType.RemoveNode:
      return {
        ok: true,
        confState: {
          voters: without(confState.voters),
          learners: without(confState.learners),
          removed: [...confState.removed, id],
        },
      };
  }
}
