/**
 * The servers the differential suite can point etcdctl at. A target is a running cluster plus
 * its client endpoints; the suite never cares what is behind them.
 *
 * - {@link startEtcdTarget}: a real etcd 3.4 (one or three members).
 * - {@link startRaftkvTarget}: a three-node raftkv cluster serving the etcd v3 API on
 *   `--etcd-port`.
 */
import { DEADLINE_MS, startCluster, waitForLeader } from '../support/cluster-helpers';
import { EtcdReferenceCluster } from '../support/etcd-reference';

/** A running cluster that etcdctl can talk to. Always {@link EtcdctlTarget.stop} it. */
export interface EtcdctlTarget {
  /** A label for reports, e.g. "etcd 3.4 (3 members)". */
  readonly label: string;
  /** Client endpoints as `127.0.0.1:PORT`, passed to etcdctl's `--endpoints`. */
  readonly endpoints: readonly string[];
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
  const cluster = await startCluster(3);
  try {
    await cluster.waitUntilHealthy(DEADLINE_MS);
    await waitForLeader(cluster);
  } catch (error) {
    await cluster.stop({ removeRunDirectory: true });
    throw error;
  }
  return {
    label: 'raftkv (3 nodes)',
    endpoints: cluster.memberIds().map((id) => cluster.etcdEndpoint(id)),
    diagnostics: () => cluster.logTails(40),
    stop: () => cluster.stop({ removeRunDirectory: true }),
  };
}
