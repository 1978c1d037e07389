/**
 * etcd's "require leader" behaviour (etcd v3.4.23 etcdserver/api/v3rpc/interceptor.go):
 * - a call whose metadata carries `hasleader: true` (clientv3 `WithRequireLeader`, etcdctl's
 *   watch and keep-alive streams) is refused with Unavailable "etcdserver: no leader" when the
 *   node knows no leader — unary calls and new streams alike;
 * - an already open `hasleader` stream is cancelled with the same error once the leader has been
 *   missing for three election timeouts (`monitorLeader`: it checks every election timeout and
 *   cancels after three consecutive checks without a leader).
 *
 * {@link LeaderMonitor} implements the second rule: streams register a cancel callback; a timer
 * checks `hasLeader()` every `noLeaderCancelMs / 3` and fires the callbacks after three
 * consecutive misses. The timer is unref'd, so it never keeps a process alive.
 */
import type * as grpc from '@grpc/grpc-js';

/** etcd's metadata key and value for "this call requires a leader" (rpctypes.MetadataRequireLeaderKey). */
export const REQUIRE_LEADER_METADATA_KEY = 'hasleader';
/** The value that turns the check on (rpctypes.MetadataHasLeader). */
export const REQUIRE_LEADER_METADATA_VALUE = 'true';

/** True when the call's metadata asks for a leader (`hasleader: true`, first value, as etcd reads it). */
export function requiresLeader(metadata: grpc.Metadata): boolean {
  const values = metadata.get(REQUIRE_LEADER_METADATA_KEY);
  return values.length > 0 && values[0] === REQUIRE_LEADER_METADATA_VALUE;
}

/** etcd's count of election timeouts without a leader before `hasleader` streams are cancelled. */
const NO_LEADER_CHECKS_MAX = 3;

/** Watches leadership and cancels registered streams after a long enough absence of a leader. */
export class LeaderMonitor {
  private readonly streams = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private missedChecks = 0;

  /**
   * @param hasLeader the node's leadership probe
   * @param noLeaderCancelMs how long the leader must be missing (etcd: 3 election timeouts)
   */
  constructor(
    private readonly hasLeader: () => boolean,
    private readonly noLeaderCancelMs: number,
  ) {
    if (!(noLeaderCancelMs > 0)) throw new Error(`noLeaderCancelMs must be positive, got ${noLeaderCancelMs}`);
  }

  /** Registers a stream's cancel callback (called at most once); returns its removal. */
  register(cancel: () => void): () => void {
    this.streams.add(cancel);
    this.ensureTimer();
    return () => {
      this.streams.delete(cancel);
      if (this.streams.size === 0) this.stopTimer();
    };
  }

  /** Stops the timer and forgets every stream (server shutdown). */
  close(): void {
    this.streams.clear();
    this.stopTimer();
  }

  private ensureTimer(): void {
    if (this.timer !== undefined) return;
    this.missedChecks = 0;
    this.timer = setInterval(() => this.check(), Math.max(1, Math.floor(this.noLeaderCancelMs / NO_LEADER_CHECKS_MAX)));
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    if (this.hasLeader()) {
      this.missedChecks = 0;
      return;
    }
    this.missedChecks += 1;
    if (this.missedChecks < NO_LEADER_CHECKS_MAX) return;
    this.missedChecks = 0;
    const cancels = [...this.streams];
    this.streams.clear();
    this.stopTimer();
    for (const cancel of cancels) cancel();
  }
}
