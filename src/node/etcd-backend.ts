/**
 * The etcd v3 API's view of a node (src/api/grpc/backend.ts `EtcdBackend`), implemented on the
 * Raft runtime and the MVCC store: writes are proposed through the log and answered with the
 * outcome computed when they were applied; linearizable ranges wait for a ReadIndex barrier and
 * then read this node's own store (on followers too); watches are served from the local store.
 */
import type { EtcdBackend, HeaderFields } from '../api/grpc/backend';
import type { MvccOutcome } from '../mvcc/errors';
import type { MvccStore } from '../mvcc/mvcc-store';
import type { MvccWriteRequest, MvccWriteResponse, RangeRequest, RangeResponse } from '../mvcc/types';
import type { WatchHub } from '../mvcc/watch-hub';
import { NONE } from '../raft/types';
import type { RaftServer } from './raft-server';
import { writeCostBytes, type BackendQuota } from './quota';

/** An EtcdBackend over one running node. */
export class RaftEtcdBackend implements EtcdBackend {
  constructor(
    private readonly server: RaftServer,
    private readonly mvcc: MvccStore,
    private readonly hub: WatchHub,
    private readonly clusterId: () => bigint,
    readonly maxRequestBytes: number,
    readonly maxTxnOperations: number,
    /** `--quota-backend-bytes` (quota.ts); checked before proposing writes that need space. */
    private readonly quota?: BackendQuota,
  ) {}

  header(): HeaderFields {
    return { clusterId: this.clusterId(), memberId: this.server.id, raftTerm: this.server.currentTerm(), revision: this.mvcc.currentRevision() };
  }

  hasLeader(): boolean {
    return this.server.leaderId() !== NONE;
  }

  async range(request: RangeRequest & { readonly serializable?: boolean }): Promise<MvccOutcome<RangeResponse>> {
    if (request.serializable !== true) await this.server.linearizableBarrier();
    return this.mvcc.range(request);
  }

  async write(request: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>> {
    if (this.quota !== undefined && (await this.quota.check(request, writeCostBytes(request))) === 'no-space') return { ok: false, error: 'no-space' };
    const result = await this.server.proposeWrite(request);
    if (result.outcome === undefined) throw new Error('assertion failed: an applied MVCC write has no outcome');
    return result.outcome;
  }

  watchHub(): WatchHub {
    return this.hub;
  }
}
