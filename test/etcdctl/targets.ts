/**
 * The servers the differential suite can point etcdctl at. A target is a running cluster plus
 * its client endpoints; the suite never cares what is behind them.
 *
 * - {@link startEtcdTarget}: a real etcd 3.4 (one or three members).
 * - {@link startRaftkvTarget}: a three-node raftkv cluster serving the etcd v3 API on
 *   `--etcd-port`.
 */
import { minLeaseTtlSeconds } from '../../src/lease/lessor';
import { startReadyCluster } from '../support/cluster-helpers';
import { EtcdReferenceCluster } from '../support/etcd-reference';

/**
 * etcd's minimum lease TTL with its default timings (--heartbeat-interval 100 ms,
 * --election-timeout 1000 ms, which the reference cluster keeps): ⌈1.5 · 1000 ms⌉ = 2 s
 * (etcd v3.4.23 etcdserver/server.go `minTTL`; ETCD_WIRE_NOTES §3.5).
 */
const ETCD_MINIMUM_LEASE_TTL_SECONDS = 2;

/**
 * The timings of the raftkv target: test-friendly, so shorter than etcd's defaults. raftkv's
 * minimum lease TTL follows them with etcd's formula (docs/LEASES.md): 1 s here.
 */
const RAFTKV_TIMING = { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 } as const;

/** A running cluster that etcdctl can talk to. Always {@link EtcdctlTarget.stop} it. */
export interface EtcdctlTarget {
  /** A label for reports, e.g. "etcd 3.4 (3 members)". */
  readonly label: string;
  /** Client endpoints as `127.0.0.1:PORT`, passed to etcdctl's `--endpoints`. */
  readonly endpoints: readonly string[];
  /** The TTL a grant below the minimum is raised to; it follows the election timeout. */
  readonly minimumLeaseTtlSeconds: number;
  /** Log tails of the servers, for failure reports; call before {@link stop}. */
  diagnostics(): string;
  /** Stops every server process and removes its files. */
  stop(): Promise<void>;
}

/** Starts a fresh real etcd 3.4 cluster of `memberCount` members (empty, at revision 1). */
export async function startEtcdTarget(memberCount: number): Promise<EtcdctlTarget> {
  const cluster = await EtcdReferenceCluster.start({ memberCount });
  return {
    label: `etcd 3.4 (${memberCount} member${memberCount === 1 ? '' : 's'})`,
    endpoints: cluster.endpoints(),
    minimumLeaseTtlSeconds: ETCD_MINIMUM_LEASE_TTL_SECONDS,
    diagnostics: () => cluster.logTails(40),
    stop: () => cluster.stop(),
  };
}

/**
 * Starts a fresh three-node raftkv cluster whose nodes serve the etcd v3 API (real processes,
 * src/testing/jepsen/cluster.ts), resolving once it is ready for etcdctl: a leader is elected
 * and every node serves gRPC. The store is empty at revision 1, like a fresh etcd. Endpoints are
 * scheme-less (ETCD_WIRE_NOTES §5).
 */
export async function startRaftkvTarget(): Promise<EtcdctlTarget> {
  const cluster = await startReadyCluster(3, RAFTKV_TIMING);
  return {
    label: 'raftkv (3 nodes)',
    endpoints: cluster.memberIds().map((id) => cluster.etcdEndpoint(id)),
    minimumLeaseTtlSeconds: minLeaseTtlSeconds(RAFTKV_TIMING),
    diagnostics: () => cluster.logTails(40),
    stop: () => cluster.stop({ removeRunDirectory: true }),
  };
}
