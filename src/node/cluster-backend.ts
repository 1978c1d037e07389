/**
 * etcd's Cluster and Maintenance services on the Raft runtime ({@link EtcdClusterBackend}).
 *
 * Membership goes through the SAME RaftServer methods as the raftexample HTTP API's
 * `POST /<id>` and `DELETE /<id>` (addMember, removeMember), so both APIs share one
 * implementation and one set of checks. What etcd adds on top:
 * - MemberAdd picks a random 64-bit member ID (crypto randomness; never 0, never a current or
 *   removed ID) and refuses a duplicate peer URL;
 * - MemberUpdate is a replicated cluster operation (cluster-entry.ts), not a conf change;
 * - MemberPromote checks on the LEADER that the learner is in sync, as etcd's
 *   `isLearnerReady`: the learner's match index must be at least 90 % of the leader's own. A
 *   follower forwards the call to the leader's etcd endpoint (the client URL the leader
 *   published), because only the leader knows replication progress;
 * - names and client URLs come from the attributes each member publishes after it starts
 *   (member-publisher.ts); a member that has not published has an empty name.
 *
 * Maintenance: Status reads this node's view; Snapshot pins a point-in-time image between two
 * applies and spools it (snapshot-file.ts); alarms are replicated cluster operations; HashKV and
 * Defragment work on the MVCC store; MoveLeader is the core's leader transfer (thesis §3.10).
 *
 * Client URLs are advertised without a scheme (`127.0.0.1:2379`) by default, and an `http://`
 * scheme is stripped when MemberList answers: etcdctl dials MemberList client URLs with the
 * scheme in HTTP/2's `:authority`, which Node's HTTP/2 server rejects with a PROTOCOL_ERROR
 * (ETCD_WIRE_NOTES.md §5); without the scheme `endpoint status --cluster` works.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { HeaderFields } from '../api/grpc/backend';
import type { AlarmEntry, ClusterMember, EtcdClusterBackend, MaintenanceStatus } from '../api/grpc/cluster-backend';
import { RAFTKV_TO_ETCD } from '../api/grpc/etcd-errors';
import { etcdServiceDefinition, type ProtoObject } from '../api/grpc/etcd-proto';
import { RaftkvError, memberNotFoundError } from '../errors';
import type { MvccOutcome } from '../mvcc/errors';
import type { Revision } from '../mvcc/types';
import { NONE, type NodeId } from '../raft/types';
import type { AlarmType } from './cluster-entry';
import type { RaftServer } from './raft-server';
import { spoolSnapshot } from './snapshot-file';
import type { NodeStateMachine } from './state-machine';

/** The version Status reports: the etcd release whose API raftkv reproduces (see docs/CLUSTER.md). */
export const REPORTED_ETCD_VERSION = '3.4.23';

/** etcd's readyPercent for promoting a learner (etcdserver/server.go). */
export const LEARNER_READY_FRACTION = 0.9;

/** Options of {@link RaftClusterBackend}. */
export interface RaftClusterBackendOptions {
  readonly dataDir: string;
  /** ResponseHeader fields (shared with the KV backend). */
  readonly header: () => HeaderFields;
  readonly requestTimeoutMs: number;
}

/** Strips `http://` from an advertised client URL (see the module overview). */
export function schemeLessClientUrl(url: string): string {
  return url.startsWith('http://') ? url.slice('http://'.length) : url;
}

/** The total size of the regular files under `directory` (recursively), in bytes. */
export async function directorySizeBytes(directory: string): Promise<number> {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(directory, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) total += await directorySizeBytes(full);
    else if (entry.isFile()) total += await fs.promises.stat(full).then((stat) => stat.size, () => 0);
  }
  return total;
}

/** Cluster and Maintenance over one running node. */
export class RaftClusterBackend implements EtcdClusterBackend {
  constructor(
    private readonly server: RaftServer,
    private readonly stateMachine: NodeStateMachine,
    private readonly options: RaftClusterBackendOptions,
  ) {}

  header(): HeaderFields {
    return this.options.header();
  }

  async members(): Promise<ClusterMember[]> {
    const members = [...this.stateMachine.members()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return members.map(([id, member]) => {
      const attributes = this.stateMachine.metadata.attributesOf(id);
      return {
        id,
        name: attributes?.name ?? '',
        peerUrls: member.peerUrl === '' ? [] : [member.peerUrl],
        clientUrls: (attributes?.clientUrls ?? []).map(schemeLessClientUrl),
        isLearner: member.isLearner,
      };
    });
  }

  async addMember(peerUrls: readonly string[], isLearner: boolean): Promise<ClusterMember> {
    const peerUrl = peerUrls[0];
    if (peerUrl === undefined) throw new RaftkvError('invalid-peer-url');
    const id = this.newMemberId();
    await this.server.addMember(id, peerUrl, { learner: isLearner });
    return { id, name: '', peerUrls: [peerUrl], clientUrls: [], isLearner };
  }

  async removeMember(id: bigint): Promise<void> {
    await this.server.removeMember(id);
  }

  async updateMember(id: bigint, peerUrls: readonly string[]): Promise<void> {
    if (!this.stateMachine.members().has(id)) throw memberNotFoundError(id);
    const others = [...this.stateMachine.members()].filter(([other]) => other !== id);
    if (others.some(([, member]) => peerUrls.includes(member.peerUrl))) throw new RaftkvError('peer-url-exists');
    await this.server.proposeClusterOperation({ kind: 'update-peer-urls', memberId: id, peerUrls: [...peerUrls] });
  }

  async promoteMember(id: bigint): Promise<void> {
    const member = this.stateMachine.members().get(id);
    if (member === undefined) throw memberNotFoundError(id);
    if (!member.isLearner) throw new RaftkvError('member-not-learner');
    if (!this.server.isLeader()) {
      await this.forwardPromote(id);
      return;
    }
    const progress = this.server.leaderProgress();
    const leaderMatch = progress?.get(this.server.id)?.match ?? 0;
    const learnerMatch = progress?.get(id)?.match ?? 0;
    if (learnerMatch < leaderMatch * LEARNER_READY_FRACTION) {
      throw new RaftkvError('learner-not-ready', { details: { learnerMatch, leaderMatch } });
    }
    // AddNode of a learner promotes it (docs/RAFT.md "Membership").
    await this.server.addMember(id, member.peerUrl);
  }

  async status(): Promise<MaintenanceStatus> {
    const status = this.server.status();
    const dbSizeBytes = await this.dbSizeBytes();
    return {
      version: REPORTED_ETCD_VERSION,
      dbSizeBytes,
      dbSizeInUseBytes: dbSizeBytes,
      leader: status.leader,
      raftIndex: status.commitIndex,
      raftTerm: status.term,
      raftAppliedIndex: status.appliedIndex,
      errors: status.leader === NONE ? ['etcdserver: no leader'] : [],
      isLearner: this.server.currentConfState().learners.includes(this.server.id),
    };
  }

  /** The on-disk size of the MVCC store (etcd's dbSize is its bbolt file's size). */
  dbSizeBytes(): Promise<number> {
    return directorySizeBytes(path.join(this.options.dataDir, 'mvcc'));
  }

  async snapshot(): Promise<{ sizeBytes: number; body: AsyncIterable<Uint8Array>; release(): Promise<void> }> {
    const pinned = await this.server.betweenApplies(() => ({ image: this.stateMachine.writeSnapshot(), revision: this.stateMachine.mvcc.currentRevision() }));
    const header = this.header();
    return spoolSnapshot(path.join(this.options.dataDir, 'tmp'), pinned.value.image, {
      memberId: this.server.id,
      clusterId: header.clusterId,
      appliedIndex: pinned.appliedIndex,
      term: pinned.term,
      revision: pinned.value.revision,
    });
  }

  alarms(): AlarmEntry[] {
    return this.stateMachine.metadata.alarmList().map((alarm) => ({ memberId: alarm.memberId, alarm: alarm.alarm }));
  }

  async changeAlarm(action: 'activate' | 'deactivate', alarm: AlarmEntry): Promise<AlarmEntry[]> {
    if (alarm.alarm === 0) return [];
    const known = this.alarms().some((item) => item.memberId === alarm.memberId && item.alarm === alarm.alarm);
    // etcd answers a DEACTIVATE of an alarm that is not raised with an empty list, without a proposal.
    if (action === 'deactivate' && !known) return [];
    await this.server.proposeClusterOperation({ kind: 'alarm', action, memberId: alarm.memberId, alarm: alarm.alarm as AlarmType });
    return [alarm];
  }

  hashKv(revision: Revision): Promise<MvccOutcome<{ hash: number; compactRevision: Revision; revision: Revision }>> {
    return this.stateMachine.mvcc.hashKv(revision);
  }

  async moveLeader(target: bigint): Promise<void> {
    if (!this.server.isLeader()) throw new RaftkvError('not-leader');
    if (!this.server.currentConfState().voters.includes(target)) throw new RaftkvError('bad-leader-transferee');
    if (target === this.server.id) return;
    await this.server.transferLeadership(target);
  }

  async defragment(): Promise<void> {
    await this.stateMachine.mvcc.defragment();
  }

  private newMemberId(): NodeId {
    const members = this.stateMachine.members();
    const removed = this.stateMachine.removedIds();
    for (;;) {
      const id = randomBytes(8).readBigUInt64BE(0);
      if (id !== 0n && !members.has(id) && !removed.has(id)) return id;
    }
  }

  /** Sends MemberPromote to the leader's published etcd endpoint and relays its answer. */
  private async forwardPromote(id: bigint): Promise<void> {
    const leader = this.server.leaderId();
    if (leader === NONE) throw new RaftkvError('no-leader');
    const target = this.stateMachine.metadata.attributesOf(leader)?.clientUrls[0];
    if (target === undefined) throw new RaftkvError('no-leader', { message: 'the leader has not published its client URL yet; retry' });
    const Client = grpc.makeGenericClientConstructor(etcdServiceDefinition('Cluster'), 'Cluster');
    const client = new Client(schemeLessClientUrl(target), grpc.credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) => {
        const deadline = new Date(Date.now() + this.options.requestTimeoutMs);
        const call = (client as unknown as Record<string, (request: ProtoObject, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null) => void) => void>).MemberPromote!;
        call.call(client, { ID: id.toString() }, new grpc.Metadata(), { deadline }, (error) => {
          if (error === null) resolve();
          else reject(errorFromLeader(error));
        });
      });
    } finally {
      client.close();
    }
  }
}

/** Maps the leader's etcd status back to the catalogue error that produces the same status. */
function errorFromLeader(error: grpc.ServiceError): RaftkvError {
  for (const [code, status] of Object.entries(RAFTKV_TO_ETCD)) {
    if (status !== undefined && status.code === error.code && status.details === error.details) return new RaftkvError(code as RaftkvError['code']);
  }
  return new RaftkvError('no-leader', { message: `forwarding MemberPromote to the leader failed: ${error.details}` });
}
