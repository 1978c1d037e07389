/**
 * The etcd Lease API's view of a node ({@link LeaseBackend}), on the Raft runtime, the MVCC store
 * (which holds the replicated lease table) and the {@link Lessor} (the leader's expiry times):
 * - LeaseGrant / LeaseRevoke are proposed through the log (this node picks the lease ID and
 *   raises the TTL to the minimum BEFORE proposing, so every replica applies the same grant);
 * - LeaseKeepAlive renewals and LeaseTimeToLive are answered by the LEADER's lessor: on the
 *   leader directly (after it confirmed its leadership with a ReadIndex round), on a follower by
 *   forwarding them over the peer transport (`RaftTransport.LeaseForward`). They are not logged;
 * - LeaseLeases and the keys of LeaseTimeToLive are read from this node's own table after a
 *   ReadIndex barrier (so they reflect every grant, revoke and put acknowledged before the call).
 */
import type { HeaderFields, LeaseBackend, LeaseTimeToLive } from '../api/grpc/backend';
import { noLeaderError, readTimeoutError } from '../errors';
import { success, type MvccOutcome } from '../mvcc/errors';
import type { MvccStore } from '../mvcc/mvcc-store';
import type { LeaseGrantResponse, LeaseId, LeaseRevokeResponse, MvccWriteRequest, MvccWriteResponse } from '../mvcc/types';
import { prepareLeaseGrant, type Lessor } from '../lease/lessor';
import type { LeaseIdGenerator } from '../lease/lease-id';
import { NONE, type NodeId } from '../raft/types';
import type { LeaseForwardRequest, LeaseForwardResponse } from '../transport/lease-forward';
import type { RaftServer } from './raft-server';

/** Sends a forwarded lease request to the leader (GrpcTransport.forwardLease). */
export type LeaseForwarder = (to: NodeId, request: LeaseForwardRequest, deadline: number) => Promise<LeaseForwardResponse>;

/** What {@link RaftLeaseBackend} is built from. */
export interface RaftLeaseBackendDeps {
  readonly server: RaftServer;
  readonly mvcc: MvccStore;
  readonly lessor: Lessor;
  readonly ids: LeaseIdGenerator;
  readonly forward: LeaseForwarder;
  readonly header: () => HeaderFields;
  readonly minTtlSeconds: number;
  readonly requestTimeoutMs: number;
  /** How long to wait before asking again after a 'not-leader' answer or a failed forward. */
  readonly retryDelayMs: number;
}

/** The Lease backend of one running node. */
export class RaftLeaseBackend implements LeaseBackend {
  constructor(private readonly deps: RaftLeaseBackendDeps) {}

  header(): HeaderFields {
    return this.deps.header();
  }

  hasLeader(): boolean {
    return this.deps.server.leaderId() !== NONE;
  }

  async leaseGrant(ttlSeconds: number, id: LeaseId): Promise<MvccOutcome<LeaseGrantResponse>> {
    const prepared = prepareLeaseGrant(ttlSeconds, id, this.deps.minTtlSeconds, () => this.deps.ids.next());
    if (!prepared.ok) return prepared;
    const outcome = await this.write({ kind: 'leaseGrant', request: prepared.value });
    if (!outcome.ok) return outcome;
    if (outcome.value.kind !== 'leaseGrant') throw new Error(`assertion failed: a leaseGrant applied as ${outcome.value.kind}`);
    return success(outcome.value.response);
  }

  async leaseRevoke(id: LeaseId): Promise<MvccOutcome<LeaseRevokeResponse>> {
    const outcome = await this.write({ kind: 'leaseRevoke', request: { id } });
    if (!outcome.ok) return outcome;
    if (outcome.value.kind !== 'leaseRevoke') throw new Error(`assertion failed: a leaseRevoke applied as ${outcome.value.kind}`);
    return success(outcome.value.response);
  }

  async leaseRenew(id: LeaseId): Promise<number> {
    const answer = await this.askLeader({ op: 'renew', id });
    return answer.outcome === 'found' ? answer.ttlSeconds : 0;
  }

  async leaseTimeToLive(id: LeaseId, withKeys: boolean): Promise<LeaseTimeToLive | undefined> {
    const answer = await this.askLeader({ op: 'time-to-live', id });
    if (answer.outcome !== 'found') return undefined;
    let keys: Buffer[] = [];
    if (withKeys) {
      await this.deps.server.linearizableBarrier();
      keys = this.deps.mvcc.leaseKeys(id);
    }
    return { remainingSeconds: answer.ttlSeconds, grantedTtlSeconds: answer.grantedTtlSeconds, keys };
  }

  async leaseLeases(): Promise<LeaseId[]> {
    await this.deps.server.linearizableBarrier();
    return this.deps.mvcc.leases().map((lease) => lease.id);
  }

  /**
   * Answers a lease request forwarded by a follower (the transport's LeaseForward handler): only
   * this node's lessor, and only while it is the leader.
   */
  async handleForwarded(request: LeaseForwardRequest): Promise<LeaseForwardResponse> {
    return this.askLocalLessor(request);
  }

  private async askLocalLessor(request: LeaseForwardRequest): Promise<LeaseForwardResponse> {
    if (request.op === 'renew') {
      const outcome = await this.deps.lessor.renew(request.id);
      if (outcome.kind === 'renewed') return { outcome: 'found', ttlSeconds: outcome.ttlSeconds, grantedTtlSeconds: outcome.ttlSeconds };
      return { outcome: outcome.kind };
    }
    const outcome = this.deps.lessor.timeToLive(request.id);
    if (outcome.kind === 'found') return { outcome: 'found', ttlSeconds: outcome.remainingSeconds, grantedTtlSeconds: outcome.grantedTtlSeconds };
    return { outcome: outcome.kind };
  }

  /**
   * Asks the leader's lessor: locally when this node leads, else over the peer transport. Retries
   * after 'not-leader' answers and failed calls until the request deadline; then rejects with
   * 'no-leader' (no leader known) or 'read-timeout' ("etcdserver: request timed out").
   */
  private async askLeader(request: LeaseForwardRequest): Promise<Exclude<LeaseForwardResponse, { outcome: 'not-leader' }>> {
    const { server } = this.deps;
    const deadline = Date.now() + this.deps.requestTimeoutMs;
    for (;;) {
      const leader = server.leaderId();
      if (leader === NONE) {
        if (Date.now() >= deadline) throw noLeaderError();
        await server.awaitLeader(deadline);
        continue;
      }
      let answer: LeaseForwardResponse | undefined;
      try {
        answer = leader === server.id ? await this.askLocalLessor(request) : await this.deps.forward(leader, request, deadline);
      } catch {
        answer = undefined;
      }
      if (answer !== undefined && answer.outcome !== 'not-leader') return answer;
      if (Date.now() >= deadline) throw readTimeoutError(this.deps.requestTimeoutMs);
      await server.awaitLeader(Math.min(deadline, Date.now() + this.deps.retryDelayMs), true);
    }
  }

  private async write(request: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>> {
    const result = await this.deps.server.proposeWrite(request);
    if (result.outcome === undefined) throw new Error('assertion failed: an applied lease write has no outcome');
    return result.outcome;
  }
}
