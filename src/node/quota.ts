/**
 * etcd's backend quota (`--quota-backend-bytes`, etcdserver/quota.go and v3rpc/quota.go): before
 * a write that needs space (a Put, or a Txn with a Put) is proposed, the store's size plus the
 * request's size must stay within the quota. Otherwise this member raises the NOSPACE alarm
 * through the log (once) and the write is refused with 'no-space' ("etcdserver: mvcc: database
 * space exceeded"). While the alarm is raised, every member also refuses such writes at apply
 * time (cluster-metadata.ts), so the refusal does not depend on which member a client talks to.
 * Deletes and compactions are always allowed; after Defragment has given the space back, an
 * operator disarms the alarm (`etcdctl alarm disarm`).
 *
 * The size is the MVCC store's size on disk. Measuring it walks the data directory, so it is never
 * on a write's path once a first figure exists: a check uses the latest figure and, when that is
 * older than `measureIntervalMs`, starts ONE background re-measurement (concurrent checks share
 * it). Only a check that would refuse measures on its own path, so that a refusal never rests on
 * an old figure (after a defragment gave space back, the next write must pass). A profile of 64 concurrent writers showed the old per-check measurement (every check that
 * found the figure stale walked the directory itself) taking over 10 % of the leader's CPU.
 */
import type { MvccWriteRequest } from '../mvcc/types';
import { AlarmType } from './cluster-entry';
import { writeNeedsSpace } from './cluster-metadata';

/** What the quota needs from the node. */
export interface QuotaDependencies {
  /** The store's current size in bytes. */
  readonly sizeBytes: () => Promise<number>;
  /** True if this member's NOSPACE alarm is already raised. */
  readonly alarmRaised: () => boolean;
  /** Raises this member's NOSPACE alarm through the log. */
  readonly raiseAlarm: (alarm: AlarmType) => Promise<void>;
}

/** The quota check of one member. */
export class BackendQuota {
  private measuredAt = Number.NEGATIVE_INFINITY;
  private measuredBytes = 0;
  private measuring: Promise<void> | undefined;

  constructor(
    /** The quota in bytes (etcd's default is 2 GiB). */
    readonly quotaBytes: number,
    private readonly dependencies: QuotaDependencies,
    private readonly measureIntervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Checks `write` (of `requestBytes` encoded bytes) against the quota. Resolves 'no-space' if it
   * must be refused (after raising the alarm), undefined if it may be proposed.
   */
  async check(write: MvccWriteRequest, requestBytes: number): Promise<'no-space' | undefined> {
    if (!writeNeedsSpace(write)) return undefined;
    if (this.measuredAt === Number.NEGATIVE_INFINITY) await this.measure();
    else if (this.now() - this.measuredAt >= this.measureIntervalMs) void this.measure();
    if (this.measuredBytes + requestBytes <= this.quotaBytes) return undefined;
    // A refusal is never based on an old figure (space may have been freed since): measure now.
    this.measuredBytes = await this.dependencies.sizeBytes().catch(() => this.measuredBytes);
    this.measuredAt = this.now();
    if (this.measuredBytes + requestBytes <= this.quotaBytes) return undefined;
    if (!this.dependencies.alarmRaised()) await this.dependencies.raiseAlarm(AlarmType.NoSpace);
    return 'no-space';
  }

  /** Re-measures the store's size; concurrent callers share one measurement. Never rejects. */
  private measure(): Promise<void> {
    this.measuring ??= this.dependencies
      .sizeBytes()
      .then(
        (bytes) => {
          this.measuredBytes = bytes;
        },
        () => undefined,
      )
      .finally(() => {
        this.measuredAt = this.now();
        this.measuring = undefined;
      });
    return this.measuring;
  }
}

/** Rough size of a write: the bytes of its keys and values plus a small overhead per field. */
export function writeCostBytes(write: MvccWriteRequest): number {
  let bytes = 0;
  const visit = (value: unknown): void => {
    if (value instanceof Uint8Array) bytes += value.length + 2;
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(visit);
    else bytes += 2;
  };
  visit(write);
  return bytes;
}
