/**
 * Bootstrapping a new cluster.
 *
 * Every initial member appends the same {@link bootstrapEntries} to its empty storage and
 * persists HardState `{ term: 1, vote: NONE, commit: n }`, then starts a RawNode with applied 0.
 * The first Ready hands the entries out as committed; the runtime applies them like any other
 * conf change (`applyConfChange`), which is how the node learns its configuration. Until then the
 * configuration is empty, so the node does not campaign.
 *
 * A node joining an existing cluster starts with EMPTY storage and no bootstrap entries: its
 * configuration is empty, it never campaigns, and it accepts MsgApp/MsgSnap from the leader once
 * the cluster has added it (AddNode / AddLearnerNode).
 */
import { encodeConfChange } from './conf-change';
import { ConfChangeType, EntryType, NONE, type Entry, type NodeId } from './types';
import { assert } from './util';

/**
 * The bootstrap log of a new cluster: one ConfChange(AddNode) entry per voter, in the given order,
 * at term 1 and indexes 1..n, with an empty context. Byte-identical on every member given the same
 * list. Asserts a non-empty list of distinct IDs, none of them NONE.
 */
export function bootstrapEntries(voters: readonly NodeId[]): Entry[] {
  assert(voters.length > 0, 'bootstrapEntries: no voters');
  assert(new Set(voters).size === voters.length, 'bootstrapEntries: duplicate voter IDs');
  return voters.map((nodeId, position) => {
    assert(nodeId !== NONE, 'bootstrapEntries: NONE is not a node ID');
    return {
      term: 1,
      index: position + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId, context: new Uint8Array(0) }),
    };
  });
}
