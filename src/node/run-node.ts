/**
 * `raftkv` (node mode): wires one member together and runs it until a signal or its removal.
 *
 * Start-up order: logger and metrics → data directory (WAL lock, recovery or bootstrap) →
 * peer transport (listening on this node's own URL in `--cluster`, or `--listen-peer`) →
 * the Raft server (Ready loop and clock) → the HTTP API. Shutdown (SIGINT/SIGTERM, or this node's
 * removal) runs the same steps backwards: stop taking requests, stop the loop, close the transport,
 * the state machine and finally the WAL. A WAL failure crashes the process at once (exit 1): the
 * next start recovers from disk.
 */
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLogger, toCoreLogger } from '../observability/logger';
import { createMetrics } from '../observability/metrics';
import { createHttpApi } from '../api/http/http-api';
import { createEtcdGrpcServer } from '../api/grpc/etcd-server';
import { WatchHub } from '../mvcc/watch-hub';
import { RaftEtcdBackend } from './etcd-backend';
import { RaftLeaseBackend } from './lease-backend';
import { Lessor, minLeaseTtlSeconds } from '../lease/lessor';
import { LeaseIdGenerator } from '../lease/lease-id';
import { GrpcTransport } from '../transport/transport-grpc';
import type { NodeOptions } from '../cli/options';
import type { Message, NodeId } from '../raft/types';
import { openDurableState, persistLearnedClusterId } from './durable-state';
import { RaftServer } from './raft-server';
import { NodeSnapshots } from './snapshots';
import { initialPeerUrls } from './member-context';
import { createHttpApiServer, etcdServerCredentials, peerTransportCredentials } from './tls-wiring';
import { onRefusedTlsHandshakes } from '../transport/tls-handshake-log';
import { wireClusterServices } from './cluster-wiring';

/** A running node, for tests and for the CLI. */
export interface RunningNode {
  readonly server: RaftServer;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly etcdPort: number;
  /** Resolves when the node has shut down (after a signal, its removal, or `shutdown()`). */
  readonly done: Promise<'signal' | 'removed' | 'shutdown'>;
  shutdown(): Promise<void>;
}

/** Runs a node until it is told to stop; the CLI's entry point. Resolves on a clean shutdown. */
export async function runNode(options: NodeOptions): Promise<void> {
  const node = await startNode(options);
  const onSignal = (signal: NodeJS.Signals) => {
    node.server.emit('signal', signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await node.done;
}

/** Starts a node and returns a handle to it. */
export async function startNode(options: NodeOptions): Promise<RunningNode> {
  const logger = createLogger({ nodeId: options.id, level: options.logLevel });
  const metrics = createMetrics({ defaultLabels: { member: options.id.toString() } });
  const dataDir = path.resolve(options.dataDir);
  const flagPeerUrls = initialPeerUrls(options.cluster);
  const ownUrl = flagPeerUrls.get(options.id);
  const listen = options.listenPeer ?? (ownUrl === undefined ? undefined : hostAndPort(ownUrl));
  if (listen === undefined) throw new Error(`node ${options.id} has no URL in --cluster and no --listen-peer`);

  const state = await openDurableState({
    id: options.id,
    dataDir,
    initialMembers: [...flagPeerUrls.keys()],
    join: options.join,
    clusterToken: options.clusterToken,
    logger,
    maxTxnOperations: options.maxTxnOperations,
  });
  let clusterId = state.clusterId;
  const snapshots = new NodeSnapshots(state.snapshotter, state.stateMachine);

  let server: RaftServer | undefined;
  let leaseBackend: RaftLeaseBackend | undefined;
  const transport = new GrpcTransport({
    selfId: options.id,
    clusterId: state.clusterId,
    listenHost: listen.host,
    listenPort: listen.port,
    handler: {
      onMessage: (message: Message) => server?.step(message),
      reportUnreachable: (id: NodeId) => server?.reportUnreachable(id),
      reportSnapshot: (id: NodeId, outcome: 'finish' | 'failure') => server?.reportSnapshot(id, outcome),
      reportRemoved: (id: NodeId) => server?.reportRemovedByPeer(id),
    },
    isRemoved: (id: NodeId) => state.stateMachine.removedIds().has(id),
    onClusterIdLearned: (learned: bigint) => {
      clusterId = learned;
      persistLearnedClusterId(dataDir, learned);
    },
    snapshotSource: snapshots,
    snapshotSink: snapshots,
    leaseForwardHandler: (request) => (leaseBackend === undefined ? Promise.resolve({ outcome: 'not-leader' as const }) : leaseBackend.handleForwarded(request)),
    // The transport logs `(message, fields)`, the core Logger port; pino wants `(fields, message)`.
    logger: toCoreLogger(logger),
    ...peerTransportCredentials(options.peerTls),
  });
  await transport.start();

  server = new RaftServer({
    options: {
      id: options.id,
      tickMs: options.tickMs,
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      snapshotCount: options.snapshotCount,
      snapshotCatchUpEntries: Math.min(5000, Math.max(10, Math.floor(options.snapshotCount / 2))),
      requestTimeoutMs: options.requestTimeoutMs,
      readMode: options.readMode,
      flagPeerUrls,
    },
    storage: state.storage,
    persistedHardState: state.persistedHardState,
    snapshotIndex: state.snapshotIndex,
    wal: state.wal,
    stateMachine: state.stateMachine,
    snapshots,
    transport,
    logger,
    metrics,
  });
  // Peers known before the log is replayed: the --cluster list and the members on disk.
  for (const [id, url] of flagPeerUrls) if (id !== options.id) transport.addPeer(id, url);
  server.syncPeersWithMembers();
  server.start();

  const app = createHttpApi(server, {
    maxRequestBytes: options.maxRequestBytes,
    requestTimeoutMs: options.requestTimeoutMs,
    metrics,
    logger,
  });
  const watchHub = new WatchHub(state.stateMachine.mvcc);
  // Cluster and Maintenance services, quota and attribute publishing: cluster-wiring.ts.
  const cluster = wireClusterServices(options, server, state.stateMachine, () => etcdBackend.header(), logger);
  const etcdBackend = new RaftEtcdBackend(server, state.stateMachine.mvcc, watchHub, () => clusterId, options.maxRequestBytes, options.maxTxnOperations, cluster.quota);
  const raftServer = server;
  const mvcc = state.stateMachine.mvcc;
  const electionTimeoutMs = options.electionTicks * options.tickMs;
  const heartbeatMs = options.heartbeatTicks * options.tickMs;
  // Only the leader expires leases; the lessor follows leadership by itself (see lessor.ts).
  const lessor = new Lessor(
    {
      table: mvcc,
      now: () => performance.now(),
      leadership: () => ({ isLeader: raftServer.isLeader(), term: raftServer.currentTerm() }),
      confirmLeadership: () => raftServer.linearizableBarrier(),
      propose: async (write) => {
        const result = await raftServer.proposeWrite(write);
        if (result.outcome === undefined) throw new Error('assertion failed: an applied lease write has no outcome');
        return result.outcome;
      },
      logger,
    },
    { checkpointDriftMs: electionTimeoutMs },
  );
  // The scans ride on the Raft tick: every heartbeat interval, at least 20 ms apart.
  const ticksPerScan = Math.max(1, Math.ceil(Math.max(20, heartbeatMs) / options.tickMs));
  lessor.start((scan) => {
    let ticks = 0;
    return raftServer.onTick(() => {
      ticks += 1;
      if (ticks % ticksPerScan === 0) scan();
    });
  });
  leaseBackend = new RaftLeaseBackend({
    server: raftServer,
    mvcc,
    lessor,
    ids: new LeaseIdGenerator(options.id),
    forward: (to, request, deadline) => transport.forwardLease(to, request, deadline),
    header: () => etcdBackend.header(),
    minTtlSeconds: minLeaseTtlSeconds(options),
    requestTimeoutMs: options.requestTimeoutMs,
    retryDelayMs: heartbeatMs,
  });
  const etcd = createEtcdGrpcServer(etcdBackend, {
    lease: leaseBackend,
    additionalServices: cluster.additionalServices,
    logger,
    // etcd cancels `hasleader` watch streams after three election timeouts without a leader.
    noLeaderCancelMs: 3 * options.electionTicks * options.tickMs,
    ...(options.clientTls === undefined ? {} : { serverCredentials: etcdServerCredentials(options.clientTls) }),
  });
  const etcdPort = await etcd.listen(options.etcdHost ?? '0.0.0.0', options.etcdPort);
  const logRefusedClient = (api: string) => (remote: string, reason: string) =>
    logger.warn({ remote, reason }, `refused ${api} client TLS handshake`);
  onRefusedTlsHandshakes(etcd.server, ({ remote, reason }) => logRefusedClient('etcd')(remote, reason));
  const httpServer = createHttpApiServer(app, options.clientTls, logRefusedClient('HTTP'));
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.httpHost, () => resolve());
  });
  const httpPort = (httpServer.address() as AddressInfo).port;
  cluster.startPublishing();
  logger.info(
    { httpPort, etcdPort, clientTls: options.clientTls !== undefined, peerTls: options.peerTls !== undefined, peerListen: `${listen.host}:${transport.port}`, dataDir, readMode: options.readMode },
    'raftkv node started',
  );

  let finished: (reason: 'signal' | 'removed' | 'shutdown') => void = () => undefined;
  const done = new Promise<'signal' | 'removed' | 'shutdown'>((resolve) => {
    finished = resolve;
  });
  let closing: Promise<void> | undefined;
  const shutdown = (reason: 'signal' | 'removed' | 'shutdown'): Promise<void> => {
    closing ??= (async () => {
      logger.info({ reason }, 'shutting down');
      httpServer.close();
      httpServer.closeAllConnections();
      cluster.stop();
      await etcd.stop();
      lessor.stop();
      watchHub.close();
      await server!.stop();
      await transport.stop();
      await state.stateMachine.close();
      await state.wal.close();
      logger.info({ reason }, 'stopped');
      logger.flush?.();
      finished(reason);
    })();
    return closing;
  };
  server.on('signal', () => void shutdown('signal'));
  server.on('removed', () => void shutdown('removed'));
  server.on('fatal', (error: unknown) => {
    logger.fatal({ err: error }, 'fatal storage error: crashing so that the next start recovers from disk');
    logger.flush?.();
    process.exit(1);
  });

  return { server, httpPort, peerPort: transport.port, etcdPort, done, shutdown: () => shutdown('shutdown') };
}

function hostAndPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  const port = Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  return { host, port };
}
