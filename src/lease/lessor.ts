/**
 * The lessor: etcd's lease expiry, done the etcd way (etcd lease/lessor.go, with the checkpoints
 * of etcd-io/etcd#9888).
 *
 * Two halves:
 * - The REPLICATED half is state-machine data: which leases exist, their granted TTL, their last
 *   checkpointed remaining TTL, and which keys they hold. It lives in the MVCC store (LeaseGrant,
 *   LeaseRevoke and LeaseCheckpoint entries; see src/mvcc/mvcc-store.ts) and is identical on
 *   every replica. {@link LeaseTable} is the read-only view of it used here.
 * - The LEADER-LOCAL half is this class: the expiry time of each lease on the leader's monotonic
 *   clock. Only the leader ("primary", in etcd's words) keeps expiry times; followers keep no
 *   timers at all. Renewals (LeaseKeepAlive) change only this half: they are NOT Raft entries.
 *
 * Expiry. The leader scans whenever the scheduler given to `start` says so (a node: every
 * heartbeat interval, on the Raft tick); an expired lease is revoked by PROPOSING a
 * LeaseRevoke through the log (so its keys disappear on every replica at the same revision). A
 * revoke in flight is re-proposed after `revokeRetryMs` if the lease still exists.
 *
 * Leader changes. A new leader first confirms its leadership and catches up its state machine (a
 * ReadIndex barrier: it has committed an entry of its term and applied everything before it),
 * then becomes primary: every lease expires at now + its checkpointed remaining TTL (the whole TTL
 * if none). To keep checkpoints close to the truth, the primary proposes a LeaseCheckpoint entry
 * for every lease whose actual remaining TTL differs from the checkpointed one by more than
 * `checkpointDriftMs` (in either direction: decay, or a renewal). Hence, with D =
 * checkpointDriftMs and E = the time from the old leader's death to the new leader becoming
 * primary (about one to two election timeouts):
 * - a lease is never expired EARLY by a leader change by more than D (a renewal reaches the log
 *   within one scan plus one commit, so only renewals in that window can be lost);
 * - a lease whose client died expires at most D + E (+ one scan) after its true expiry, i.e. its
 *   keys disappear within TTL + D + E of the client's last renewal. The node uses D = one election
 *   timeout.
 * Renewals are honoured only after a ReadIndex-style confirmation that this node is still the
 * leader of the same term (etcd 3.5 `ensureLeadership`), so a deposed leader cannot renew.
 */
import { failure, success, type MvccOutcome } from '../mvcc/errors';
import { NO_LEASE, type LeaseGrantRequest, type LeaseId, type LeaseState, type MvccWriteRequest, type MvccWriteResponse } from '../mvcc/types';

/** etcd's MaxLeaseTTL: 9,000,000,000 seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * etcd's minimum lease TTL for a timing configuration (etcdserver/server.go):
 * minTTL = ⌊3·electionTicks/2⌋ · heartbeat interval, rounded UP to whole seconds. A lease shorter
 * than that could expire during an ordinary leader election. Defaults (100 ms ticks, election 10
 * ticks, heartbeat 1 tick): 2 s.
 */
export function minLeaseTtlSeconds(timing: { readonly electionTicks: number; readonly heartbeatTicks: number; readonly tickMs: number }): number {
  const minTtlMs = Math.floor((3 * timing.electionTicks) / 2) * timing.heartbeatTicks * timing.tickMs;
  return Math.max(1, Math.ceil(minTtlMs / 1000));
}

/**
 * Turns a client's LeaseGrant into the entry to propose: TTL > MaxLeaseTTL → 'lease-ttl-too-large';
 * the TTL is raised to `minTtlSeconds`; ID 0 → a fresh ID from `nextId` (never 0). The ID is
 * chosen HERE, before proposing, so that every replica applies the same one.
 */
export function prepareLeaseGrant(ttlSeconds: number, requestedId: LeaseId, minTtlSeconds: number, nextId: () => LeaseId): MvccOutcome<LeaseGrantRequest> {
  if (ttlSeconds > MAX_LEASE_TTL_SECONDS) return failure('lease-ttl-too-large');
  let id = requestedId;
  while (id === NO_LEASE) id = nextId();
  return success({ id, ttlSeconds: Math.max(ttlSeconds, minTtlSeconds) });
}

/** The replicated lease state, as the lessor reads it (MvccStore implements it). */
export interface LeaseTable {
  lease(id: LeaseId): LeaseState | undefined;
  leases(): LeaseState[];
}

/** What the lessor needs from the node. */
export interface LessorPorts {
  readonly table: LeaseTable;
  /** Monotonic milliseconds (performance.now() in the node; a fake clock in tests). */
  now(): number;
  /** This node's view: leader or not, and the current term. */
  leadership(): { readonly isLeader: boolean; readonly term: number };
  /**
   * Resolves once this node has confirmed (ReadIndex, thesis §6.4) that it was the leader at a
   * point after the call and has applied everything committed before it; rejects otherwise.
   */
  confirmLeadership(): Promise<void>;
  /** Proposes a write through the log; resolves with its apply-time outcome. */
  propose(write: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>>;
  /** Where unexpected failures go. */
  readonly logger?: { warn(fields: object, message: string): void };
}

/** Tuning of the lessor (milliseconds). */
export interface LessorOptions {
  /** Checkpoint a lease when its remaining TTL drifted this far from the checkpointed one. */
  readonly checkpointDriftMs: number;
  /** Re-propose a revoke that has not taken effect after this long. Default 3,000 ms. */
  readonly revokeRetryMs?: number;
  /** Revokes proposed per scan at most (etcd limits revokes to 1,000/s). Default 500. */
  readonly revokesPerScanMax?: number;
  /** Leases per LeaseCheckpoint entry at most (etcd: 1,000). Default 1,000. */
  readonly checkpointsPerEntryMax?: number;
}

/** The answer to a renewal. */
export type RenewOutcome =
  | { readonly kind: 'renewed'; readonly ttlSeconds: number }
  /** Unknown, revoked, or expired (its revoke is on its way): etcd answers TTL 0. */
  | { readonly kind: 'not-found' }
  /** This node is not (or no longer) the leader: forward to the leader. */
  | { readonly kind: 'not-leader' };

/** The answer to a time-to-live query on the leader. */
export type TimeToLiveOutcome =
  | { readonly kind: 'found'; readonly remainingSeconds: number; readonly grantedTtlSeconds: number }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'not-leader' };

/**
 * Calls `scan` periodically until the returned function is called: what drives the lessor's
 * scans (a node drives them from its Raft tick, so an idle member is not woken by a timer of
 * their own; tests call `scan()` themselves).
 */
export type ScanScheduler = (scan: () => void) => () => void;

/** The leader-local half of the lessor. See the module overview. */
export class Lessor {
  private readonly revokeRetryMs: number;
  private readonly revokesPerScanMax: number;
  private readonly checkpointsPerEntryMax: number;
  /** The term in which this node became primary; undefined while not primary. */
  private primaryTerm: number | undefined;
  private promoting: Promise<void> | undefined;
  /** Expiry (ports.now() ms) per lease, valid in term `expiriesTerm` only. */
  private readonly expiries = new Map<LeaseId, number>();
  private expiriesTerm = -1;
  /** Leases whose revoke was proposed, with the time of the proposal. */
  private readonly revoking = new Map<LeaseId, number>();
  private checkpointInFlight = false;
  private cancelScans: (() => void) | undefined;
  private scanning = false;

  constructor(
    private readonly ports: LessorPorts,
    private readonly options: LessorOptions,
  ) {
    this.revokeRetryMs = options.revokeRetryMs ?? 3000;
    this.revokesPerScanMax = options.revokesPerScanMax ?? 500;
    this.checkpointsPerEntryMax = options.checkpointsPerEntryMax ?? 1000;
  }

  /** Starts the periodic scan, driven by `scheduler`. */
  start(scheduler: ScanScheduler): void {
    if (this.cancelScans !== undefined) return;
    this.cancelScans = scheduler(() => void this.scan());
  }

  /** Stops the scan and forgets the leader-local state. */
  stop(): void {
    this.cancelScans?.();
    this.cancelScans = undefined;
    this.demote();
  }

  /** True once this node is the primary lessor of the current term. */
  isPrimary(): boolean {
    const { isLeader, term } = this.ports.leadership();
    return isLeader && this.primaryTerm === term;
  }

  /**
   * One scan: follow leadership (promote after a confirmed leadership, demote when not leader);
   * as primary, propose revokes for expired leases and a checkpoint for drifted ones. Exposed so
   * tests can drive the lessor with a fake clock.
   */
  async scan(): Promise<void> {
    if (this.scanning) return;
    this.scanning = true;
    try {
      const { isLeader, term } = this.ports.leadership();
      if (!isLeader) {
        this.demote();
        return;
      }
      if (this.primaryTerm !== term) {
        this.primaryTerm = undefined;
        this.promoting ??= this.promote(term).finally(() => {
          this.promoting = undefined;
        });
        return;
      }
      this.expireAndCheckpoint(term);
    } finally {
      this.scanning = false;
    }
  }

  /**
   * Renews lease `id` on the leader: confirms leadership first, then sets its expiry to now +
   * TTL. etcd's answer is the GRANTED TTL.
   */
  async renew(id: LeaseId): Promise<RenewOutcome> {
    const before = this.ports.leadership();
    if (!before.isLeader) return { kind: 'not-leader' };
    try {
      await this.ports.confirmLeadership();
    } catch {
      return { kind: 'not-leader' };
    }
    const after = this.ports.leadership();
    if (!after.isLeader || after.term !== before.term) return { kind: 'not-leader' };
    const lease = this.ports.table.lease(id);
    if (lease === undefined) return { kind: 'not-found' };
    const now = this.ports.now();
    this.syncTerm(after.term);
    if (this.expiryOf(lease, now) <= now) return { kind: 'not-found' };
    this.expiries.set(id, now + lease.ttlSeconds * 1000);
    return { kind: 'renewed', ttlSeconds: lease.ttlSeconds };
  }

  /** Remaining and granted TTL of lease `id`, as the leader sees them (etcd truncates to seconds). */
  timeToLive(id: LeaseId): TimeToLiveOutcome {
    const { isLeader, term } = this.ports.leadership();
    if (!isLeader) return { kind: 'not-leader' };
    const lease = this.ports.table.lease(id);
    if (lease === undefined) return { kind: 'not-found' };
    const now = this.ports.now();
    this.syncTerm(term);
    const remainingMs = this.expiryOf(lease, now) - now;
    return { kind: 'found', remainingSeconds: Math.max(0, Math.floor(remainingMs / 1000)), grantedTtlSeconds: lease.ttlSeconds };
  }

  /** Forgets expiry times set in another term (a renewal of an older term says nothing now). */
  private syncTerm(term: number): void {
    if (this.expiriesTerm === term) return;
    this.expiries.clear();
    this.revoking.clear();
    this.expiriesTerm = term;
  }

  /** The lease's expiry; a lease seen for the first time starts from its checkpointed remaining TTL. */
  private expiryOf(lease: LeaseState, now: number): number {
    let expiry = this.expiries.get(lease.id);
    if (expiry === undefined) {
      expiry = now + effectiveRemainingMs(lease);
      this.expiries.set(lease.id, expiry);
    }
    return expiry;
  }

  private async promote(term: number): Promise<void> {
    try {
      await this.ports.confirmLeadership();
    } catch {
      return;
    }
    const now = this.ports.leadership();
    if (!now.isLeader || now.term !== term) return;
    // Every lease resumes from its checkpointed remaining TTL (renewals already made in this
    // term, if any, are kept).
    this.syncTerm(term);
    this.primaryTerm = term;
  }

  private demote(): void {
    this.primaryTerm = undefined;
    this.expiries.clear();
    this.revoking.clear();
    this.expiriesTerm = -1;
  }

  private expireAndCheckpoint(term: number): void {
    this.syncTerm(term);
    const now = this.ports.now();
    const leases = this.ports.table.leases();
    const present = new Set<LeaseId>();
    const expired: LeaseId[] = [];
    const checkpoints: Array<{ id: LeaseId; remainingMs: number }> = [];
    for (const lease of leases) {
      present.add(lease.id);
      const expiry = this.expiryOf(lease, now);
      if (expiry <= now) {
        const proposedAt = this.revoking.get(lease.id);
        if (proposedAt === undefined || now - proposedAt >= this.revokeRetryMs) expired.push(lease.id);
        continue;
      }
      const actualMs = expiry - now;
      const fullMs = lease.ttlSeconds * 1000;
      if (Math.abs(effectiveRemainingMs(lease) - actualMs) > this.options.checkpointDriftMs) {
        // Close to the whole TTL (just renewed) is recorded as 0 = "the whole TTL", as etcd does.
        checkpoints.push({ id: lease.id, remainingMs: fullMs - actualMs <= this.options.checkpointDriftMs ? 0 : Math.max(1, Math.round(actualMs)) });
      }
    }
    for (const id of [...this.expiries.keys()]) if (!present.has(id)) this.expiries.delete(id);
    for (const id of [...this.revoking.keys()]) if (!present.has(id)) this.revoking.delete(id);

    for (const id of expired.slice(0, this.revokesPerScanMax)) {
      this.revoking.set(id, now);
      this.ports.propose({ kind: 'leaseRevoke', request: { id } }).then(
        (outcome) => {
          if (!outcome.ok && outcome.error !== 'lease-not-found') this.ports.logger?.warn({ lease: id.toString(), error: outcome.error }, 'lease revoke refused');
        },
        (error: unknown) => this.ports.logger?.warn({ lease: id.toString(), err: error }, 'lease revoke not applied; will retry'),
      );
    }
    if (checkpoints.length > 0 && !this.checkpointInFlight) {
      this.checkpointInFlight = true;
      const batches: Array<typeof checkpoints> = [];
      for (let start = 0; start < checkpoints.length; start += this.checkpointsPerEntryMax) batches.push(checkpoints.slice(start, start + this.checkpointsPerEntryMax));
      void Promise.all(batches.map((batch) => this.ports.propose({ kind: 'leaseCheckpoint', request: { checkpoints: batch } })))
        .catch((error: unknown) => this.ports.logger?.warn({ err: error }, 'lease checkpoint not applied; will retry'))
        .finally(() => {
          this.checkpointInFlight = false;
        });
    }
  }
}

/** The remaining TTL a lease resumes from on a new leader: its checkpoint, else the whole TTL. */
export function effectiveRemainingMs(lease: LeaseState): number {
  return lease.remainingMs > 0 ? lease.remainingMs : lease.ttlSeconds * 1000;
}
