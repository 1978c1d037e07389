/**
 * How one batch of committed entries is split between the membership store and the MVCC store
 * once cluster operations and the NOSPACE alarm are taken into account (used by
 * NodeStateMachine.applyEntries).
 *
 * Walks the entries IN LOG ORDER, so that the outcome never depends on how entries were grouped
 * into batches (which differs between members):
 * - membership changes update a running copy of the membership (so a MemberUpdate sees the
 *   membership as of its own position);
 * - a cluster operation changes the metadata cache and yields membership-store commands; entries
 *   at or below the membership store's durable applied index were applied before a restart and
 *   are skipped (the loaded cache already reflects them);
 * - an MVCC write that needs space while NOSPACE is raised becomes an empty entry for the MVCC
 *   store, and its result is the value error 'no-space'.
 *
 * Known limit: after a crash that fell between the membership batch and the MVCC batch of one
 * apply, the MVCC entries replayed at restart are capped by the alarm state of the (newer)
 * membership store rather than the state at their own index. An alarm change would have to land
 * in exactly that window for this to matter.
 */
import type { ApplyEntry, KvStore } from '../kv/kv-store';
import type { Member } from '../kv/kv-layout';
import type { ApplyInput, ApplyResult } from '../mvcc/mvcc-store';
import type { LogIndex, NodeId } from '../raft/types';
import type { ClusterMetadata } from './cluster-metadata';
import { writeNeedsSpace } from './cluster-metadata';
import type { StateMachineEntry } from './state-machine';

/** The two stores' inputs and the results decided here (refused writes). */
export interface MetadataApplyPlan {
  readonly membershipEntries: ApplyEntry[];
  readonly mvccInputs: ApplyInput[];
  readonly refused: ApplyResult[];
}

/** Splits `entries` (see the module overview). Mutates `metadata` for operations above the durable index. */
export function planMetadataApply(
  entries: readonly StateMachineEntry[],
  metadata: ClusterMetadata,
  membership: KvStore,
  mvccAppliedIndex: LogIndex,
): MetadataApplyPlan {
  const membershipApplied = membership.appliedIndex();
  const running = new Map<NodeId, Member>(membership.members());
  const removed = membership.removedIds();
  const plan: MetadataApplyPlan = { membershipEntries: [], mvccInputs: [], refused: [] };
  for (const entry of entries) {
    const memberChanges = [...(entry.members ?? [])];
    const commands = [];
    if (entry.cluster !== undefined && entry.index > membershipApplied) {
      const effect = metadata.apply(entry.cluster, running);
      commands.push(...effect.commands);
      memberChanges.push(...effect.members);
    }
    for (const change of memberChanges) {
      if (removed.has(change.id)) continue;
      const existing = running.get(change.id);
      switch (change.kind) {
        case 'add':
        case 'promote':
          running.set(change.id, { peerUrl: change.peerUrl ?? existing?.peerUrl ?? '', isLearner: false });
          break;
        case 'add-learner':
          running.set(change.id, { peerUrl: change.peerUrl ?? existing?.peerUrl ?? '', isLearner: true });
          break;
        case 'remove':
          running.delete(change.id);
          removed.add(change.id);
          break;
      }
    }
    plan.membershipEntries.push({ index: entry.index, commands, members: memberChanges });
    const write = entry.write;
    if (write !== undefined && entry.index > mvccAppliedIndex && metadata.isCapped() && writeNeedsSpace(write)) {
      plan.mvccInputs.push({ index: entry.index });
      plan.refused.push({ index: entry.index, skipped: false, outcome: { ok: false, error: 'no-space' }, events: [] });
    } else {
      plan.mvccInputs.push(write === undefined ? { index: entry.index } : { index: entry.index, request: write });
    }
  }
  return plan;
}
