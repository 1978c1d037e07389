/**
 * A single-node {@link EtcdBackend} for tests of the gRPC layer: a real MvccStore in a temporary
 * directory, written directly (one apply at a time, with its own Raft index counter) instead of
 * through Raft, and read directly. A switch simulates "no leader": writes and linearizable reads
 * are then refused with RaftkvError 'no-leader' (a real node would wait for a leader until the
 * client's deadline), serializable reads are still served, and `hasLeader()` answers false.
 *
 * Leases: the backend is also a {@link LeaseBackend} with a real {@link Lessor} that is always the
 * primary (a single node is always its own leader); its clock is injectable (`now`) and its scan
 * is driven by tests through `lessor.scan()` (the lessor's scans are not started).
 *
 * Not for production: nothing is replicated.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EtcdBackend, HeaderFields, LeaseBackend, LeaseTimeToLive } from './backend';
import { success } from '../../mvcc/errors';
import { Lessor, prepareLeaseGrant } from '../../lease/lessor';
import { LeaseIdGenerator } from '../../lease/lease-id';
import type { LeaseGrantResponse, LeaseId, LeaseRevokeResponse } from '../../mvcc/types';
import { noLeaderError } from '../../errors';
import type { MvccOutcome } from '../../mvcc/errors';
import { MvccStore } from '../../mvcc/mvcc-store';
import type { MvccWriteRequest, MvccWriteResponse, RangeRequest, RangeResponse } from '../../mvcc/types';
import { WatchHub, type WatchHubOptions } from '../../mvcc/watch-hub';

/** Options of {@link LocalEtcdBackend.create}. */
export interface LocalEtcdBackendOptions {
  /** Default 10386079443273509696n (above 2^53 on purpose, like etcd's default cluster's). */
  readonly clusterId?: bigint;
  /** Default 9372538179322589801n (above 2^53). */
  readonly memberId?: bigint;
  /** Default 2. */
  readonly raftTerm?: number;
  /** Default 1.5 MiB (etcd's --max-request-bytes). */
  readonly maxRequestBytes?: number;
  /** Default 128 (etcd's --max-txn-ops). */
  readonly maxTxnOperations?: number;
  readonly watchHubOptions?: WatchHubOptions;
  /** The lessor's clock in milliseconds (default performance.now()). */
  readonly now?: () => number;
  /** The minimum lease TTL (default 2 s, etcd's with default timings). */
  readonly minLeaseTtlSeconds?: number;
}

/** etcd's default --max-request-bytes: 1.5 MiB. */
export const MAX_REQUEST_BYTES_DEFAULT = 1.5 * 1024 * 1024;

/** The test backend. Create with {@link LocalEtcdBackend.create}; release with {@link destroy}. */
export class LocalEtcdBackend implements EtcdBackend, LeaseBackend {
  readonly maxRequestBytes: number;
  readonly maxTxnOperations: number;
  /** Writes applied so far through this backend (the Raft index counter). */
  appliedIndex = 0;
  private leaderKnown = true;
  private applyChain: Promise<unknown> = Promise.resolve();
  private readonly hub: WatchHub;
  /** The lessor (always primary); tests call `lessor.scan()` to expire leases. */
  readonly lessor: Lessor;
  private readonly leaseIds: LeaseIdGenerator;

  private constructor(
    readonly store: MvccStore,
    private readonly directory: string,
    private readonly options: LocalEtcdBackendOptions,
  ) {
    this.maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES_DEFAULT;
    this.maxTxnOperations = options.maxTxnOperations ?? 128;
    this.hub = new WatchHub(store, options.watchHubOptions);
    const now = options.now ?? (() => performance.now());
    this.leaseIds = new LeaseIdGenerator(options.memberId ?? 9372538179322589801n);
    this.lessor = new Lessor(
      {
        table: store,
        now,
        leadership: () => ({ isLeader: this.leaderKnown, term: this.options.raftTerm ?? 2 }),
        confirmLeadership: async () => {
          if (!this.leaderKnown) throw noLeaderError();
          await this.applyChain;
        },
        propose: (write) => this.write(write),
      },
      { checkpointDriftMs: 1000 },
    );
  }

  /** Opens a fresh store in a new temporary directory. */
  static async create(options: LocalEtcdBackendOptions = {}): Promise<LocalEtcdBackend> {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-grpc-test-'));
    const store = await MvccStore.open(directory, { maxTxnOperations: options.maxTxnOperations ?? 128, enforceLeases: true });
    return new LocalEtcdBackend(store, directory, options);
  }

  /** Simulates losing (false) or regaining (true) the leader. */
  setHasLeader(known: boolean): void {
    this.leaderKnown = known;
  }

  header(): HeaderFields {
    return {
      clusterId: this.options.clusterId ?? 10386079443273509696n,
      memberId: this.options.memberId ?? 9372538179322589801n,
      raftTerm: this.options.raftTerm ?? 2,
      revision: this.store.currentRevision(),
    };
  }

  hasLeader(): boolean {
    return this.leaderKnown;
  }

  async range(request: RangeRequest & { readonly serializable?: boolean }): Promise<MvccOutcome<RangeResponse>> {
    if (request.serializable !== true && !this.leaderKnown) throw noLeaderError();
    // Linearizable: wait for the writes submitted before this read (the ReadIndex analogue).
    if (request.serializable !== true) await this.applyChain.catch(() => undefined);
    return this.store.range(request);
  }

  write(request: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>> {
    if (!this.leaderKnown) return Promise.reject(noLeaderError());
    const applied = this.applyChain.then(async () => {
      this.appliedIndex += 1;
      const result = await this.store.apply(this.appliedIndex, request);
      if (result.skipped || result.outcome === undefined) throw new Error('local backend: an apply was skipped');
      return result.outcome;
    });
    this.applyChain = applied.catch(() => undefined);
    return applied;
  }

  watchHub(): WatchHub {
    return this.hub;
  }

  async leaseGrant(ttlSeconds: number, id: LeaseId): Promise<MvccOutcome<LeaseGrantResponse>> {
    const prepared = prepareLeaseGrant(ttlSeconds, id, this.options.minLeaseTtlSeconds ?? 2, () => this.leaseIds.next());
    if (!prepared.ok) return prepared;
    const outcome = await this.write({ kind: 'leaseGrant', request: prepared.value });
    if (!outcome.ok) return outcome;
    if (outcome.value.kind !== 'leaseGrant') throw new Error('local backend: a grant applied as another kind');
    return success(outcome.value.response);
  }

  async leaseRevoke(id: LeaseId): Promise<MvccOutcome<LeaseRevokeResponse>> {
    const outcome = await this.write({ kind: 'leaseRevoke', request: { id } });
    if (!outcome.ok) return outcome;
    if (outcome.value.kind !== 'leaseRevoke') throw new Error('local backend: a revoke applied as another kind');
    return success(outcome.value.response);
  }

  async leaseRenew(id: LeaseId): Promise<number> {
    const outcome = await this.lessor.renew(id);
    if (outcome.kind === 'not-leader') throw noLeaderError();
    return outcome.kind === 'renewed' ? outcome.ttlSeconds : 0;
  }

  async leaseTimeToLive(id: LeaseId, withKeys: boolean): Promise<LeaseTimeToLive | undefined> {
    await this.applyChain;
    const outcome = this.lessor.timeToLive(id);
    if (outcome.kind === 'not-leader') throw noLeaderError();
    if (outcome.kind === 'not-found') return undefined;
    return { remainingSeconds: outcome.remainingSeconds, grantedTtlSeconds: outcome.grantedTtlSeconds, keys: withKeys ? this.store.leaseKeys(id) : [] };
  }

  async leaseLeases(): Promise<LeaseId[]> {
    await this.applyChain;
    return this.store.leases().map((lease) => lease.id);
  }

  /** Closes the hub and the store and removes the directory. */
  async destroy(): Promise<void> {
    this.hub.close();
    await this.applyChain;
    await this.store.close();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }
}
