/**
 * A single-node {@link EtcdBackend} for tests of the gRPC layer: a real MvccStore in a temporary
 * directory, written directly (one apply at a time, with its own Raft index counter) instead of
 * through Raft, and read directly. A switch simulates "no leader": writes and linearizable reads
 * are then refused with RaftkvError 'no-leader' (a real node would wait for a leader until the
 * client's deadline), serializable reads are still served, and `hasLeader()` answers false.
 *
 * Not for production: nothing is replicated.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EtcdBackend, HeaderFields } from './backend';
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
}

/** etcd's default --max-request-bytes: 1.5 MiB. */
export const MAX_REQUEST_BYTES_DEFAULT = 1.5 * 1024 * 1024;

/** The test backend. Create with {@link LocalEtcdBackend.create}; release with {@link destroy}. */
export class LocalEtcdBackend implements EtcdBackend {
  readonly maxRequestBytes: number;
  readonly maxTxnOperations: number;
  /** Writes applied so far through this backend (the Raft index counter). */
  appliedIndex = 0;
  private leaderKnown = true;
  private applyChain: Promise<unknown> = Promise.resolve();
  private readonly hub: WatchHub;

  private constructor(
    readonly store: MvccStore,
    private readonly directory: string,
    private readonly options: LocalEtcdBackendOptions,
  ) {
    this.maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES_DEFAULT;
    this.maxTxnOperations = options.maxTxnOperations ?? 128;
    this.hub = new WatchHub(store, options.watchHubOptions);
  }

  /** Opens a fresh store in a new temporary directory. */
  static async create(options: LocalEtcdBackendOptions = {}): Promise<LocalEtcdBackend> {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-grpc-test-'));
    const store = await MvccStore.open(directory, { maxTxnOperations: options.maxTxnOperations ?? 128 });
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

  /** Closes the hub and the store and removes the directory. */
  async destroy(): Promise<void> {
    this.hub.close();
    await this.applyChain;
    await this.store.close();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }
}
