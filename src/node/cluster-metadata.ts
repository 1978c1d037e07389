/**
 * Replicated cluster metadata that is not Raft configuration: each member's published attributes
 * (name, client URLs) and the raised alarms. Changed only by applying {@link ClusterOperation}
 * entries, identically on every member.
 *
 * Storage: two keys of the membership store (src/kv KvStore, whose user-key space is otherwise
 * unused since the MVCC store became the keyspace), written as KvStore commands in the SAME
 * batch as the entry that changed them, so they share its durable applied index, travel in its
 * snapshot image, and are restored with it:
 *   `cluster/attributes` → JSON `{ "<member id>": { name, clientUrls } }`
 *   `cluster/alarms`     → JSON `[{ memberId, alarm }]`
 * The values are small (a few hundred bytes per member) and rewritten whole on each change.
 *
 * NOSPACE (etcd's capped applier, etcdserver/apply.go `applierV3Capped`): while a NOSPACE alarm is
 * raised, a Put, or a Txn with a Put in any branch, is refused AT APPLY TIME with 'no-space'.
 * Because the alarm list is replicated, every member refuses the same entries. Deletes and
 * compactions still apply, so space can be freed.
 */
import type { Command } from '../kv/command';
import type { KvStore, MemberChange } from '../kv/kv-store';
import type { MvccWriteRequest, RequestOp, TxnRequest } from '../mvcc/types';
import type { NodeId } from '../raft/types';
import { AlarmType, type AlarmMember, type ClusterOperation } from './cluster-entry';

/** What a member publishes about itself. */
export interface MemberAttributes {
  readonly name: string;
  readonly clientUrls: readonly string[];
}

/** The membership store key of the attributes map. */
export const ATTRIBUTES_KEY = 'cluster/attributes';
/** The membership store key of the alarm list. */
export const ALARMS_KEY = 'cluster/alarms';

/** The effect of one operation on the membership store. */
export interface MetadataEffect {
  readonly commands: readonly Command[];
  readonly members: readonly MemberChange[];
}

/** The in-memory cache of the metadata, and how operations change it. */
export class ClusterMetadata {
  private attributes = new Map<NodeId, MemberAttributes>();
  private alarms: AlarmMember[] = [];

  /** (Re)loads the cache from the membership store (at open and after a snapshot restore). */
  async load(store: KvStore): Promise<void> {
    this.attributes = new Map();
    this.alarms = [];
    const attributes = await store.get(ATTRIBUTES_KEY);
    if (attributes !== undefined) {
      const parsed = JSON.parse(Buffer.from(attributes).toString('utf8')) as Record<string, MemberAttributes>;
      for (const [id, value] of Object.entries(parsed)) this.attributes.set(BigInt(id), { name: value.name, clientUrls: [...value.clientUrls] });
    }
    const alarms = await store.get(ALARMS_KEY);
    if (alarms !== undefined) {
      const parsed = JSON.parse(Buffer.from(alarms).toString('utf8')) as Array<{ memberId: string; alarm: number }>;
      this.alarms = parsed.map((item) => ({ memberId: BigInt(item.memberId), alarm: item.alarm as AlarmType }));
    }
  }

  /** The attributes `id` published, or undefined (etcdctl shows such a member as "unstarted"). */
  attributesOf(id: NodeId): MemberAttributes | undefined {
    return this.attributes.get(id);
  }

  /** The raised alarms, in the order they were raised. */
  alarmList(): readonly AlarmMember[] {
    return [...this.alarms];
  }

  /** True while a NOSPACE alarm is raised: writes that need space are refused. */
  isCapped(): boolean {
    return this.alarms.some((alarm) => alarm.alarm === AlarmType.NoSpace);
  }

  /**
   * Applies `operation` to the cache and returns what to write to the membership store in the
   * entry's batch. `members` MUST be the membership as of this entry's position in the log (an
   * update of an unknown member is then a no-op, deterministically on every node).
   */
  apply(operation: ClusterOperation, members: ReadonlyMap<NodeId, { peerUrl: string; isLearner: boolean }>): MetadataEffect {
    switch (operation.kind) {
      case 'publish-attributes':
        // Recorded for any ID (MemberList shows only current members), so the outcome never
        // depends on how entries were grouped into apply batches.
        this.attributes.set(operation.memberId, { name: operation.name, clientUrls: [...operation.clientUrls] });
        return { commands: [this.attributesCommand()], members: [] };
      case 'update-peer-urls': {
        const member = members.get(operation.memberId);
        const peerUrl = operation.peerUrls[0];
        if (member === undefined || peerUrl === undefined) return { commands: [], members: [] };
        return { commands: [], members: [{ kind: member.isLearner ? 'add-learner' : 'add', id: operation.memberId, peerUrl }] };
      }
      case 'alarm': {
        const same = (alarm: AlarmMember) => alarm.memberId === operation.memberId && alarm.alarm === operation.alarm;
        if (operation.action === 'activate') {
          if (!this.alarms.some(same)) this.alarms.push({ memberId: operation.memberId, alarm: operation.alarm });
        } else {
          this.alarms = this.alarms.filter((alarm) => !same(alarm));
        }
        return { commands: [this.alarmsCommand()], members: [] };
      }
    }
  }

  private attributesCommand(): Command {
    const record: Record<string, MemberAttributes> = {};
    for (const [id, value] of this.attributes) record[id.toString()] = value;
    return { requestId: 0n, op: 'put', key: ATTRIBUTES_KEY, value: Buffer.from(JSON.stringify(record), 'utf8') };
  }

  private alarmsCommand(): Command {
    const list = this.alarms.map((alarm) => ({ memberId: alarm.memberId.toString(), alarm: alarm.alarm }));
    return { requestId: 0n, op: 'put', key: ALARMS_KEY, value: Buffer.from(JSON.stringify(list), 'utf8') };
  }
}

/** True if applying `write` may need space: a Put, or a Txn with a Put in any branch (etcd quota "cost"). */
export function writeNeedsSpace(write: MvccWriteRequest): boolean {
  if (write.kind === 'put') return true;
  if (write.kind === 'txn') return txnHasPut(write.request);
  return false;
}

function txnHasPut(request: TxnRequest): boolean {
  const has = (operation: RequestOp): boolean => operation.kind === 'put' || (operation.kind === 'txn' && txnHasPut(operation.request));
  return (request.success ?? []).some(has) || (request.failure ?? []).some(has);
}
