/**
 * The etcd v3 gRPC server of a raftkv node: one grpc-js Server with etcd's KV and Watch services
 * on an {@link EtcdBackend}, with etcd's message size limit (a request may be up to
 * `maxRequestBytes + 512 KiB` on the wire, grpc answers ResourceExhausted beyond; writes above
 * `maxRequestBytes` are refused by the KV service with "etcdserver: request is too large").
 *
 * The Lease service is registered when `options.lease` gives its backend: it has streams
 * (LeaseKeepAlive) that share the server's LeaderMonitor and are ended on `stop()`, so it is
 * built here rather than passed ready-made. Cluster and Maintenance come next: pass them as
 * `options.additionalServices` (or call `server.addService` on the returned server before
 * `listen`), with `etcdServiceDefinition('Cluster' | 'Maintenance')` from etcd-proto.ts. Use
 * etcd-errors.ts for their errors and leader-monitor.ts for `hasleader`.
 */
import * as grpc from '@grpc/grpc-js';
import type { EtcdBackend, LeaseBackend } from './backend';
import { createLeaseService } from './lease-service';
import { ETCD_MESSAGES } from './etcd-errors';
import { etcdServiceDefinition, type EtcdServiceName } from './etcd-proto';
import { createKvService, type ServiceLogger } from './kv-service';
import { LeaderMonitor } from './leader-monitor';
import { createWatchService } from './watch-service';

/** etcd's gRPC overhead allowance on top of --max-request-bytes (embed/serve.go: 512 KiB). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** etcd's default election timeout (1,000 ms); `hasleader` streams give up after three. */
export const NO_LEADER_CANCEL_MS_DEFAULT = 3 * 1000;

/** A service to register next to KV and Watch (Lease, Cluster, Maintenance). */
export interface AdditionalEtcdService {
  readonly name: EtcdServiceName;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/** Options of {@link createEtcdGrpcServer}. */
export interface EtcdGrpcServerOptions {
  readonly logger?: ServiceLogger;
  /** Watch progress notification period (etcd default 10 minutes). */
  readonly progressNotifyIntervalMs?: number;
  /** How long without a leader before `hasleader` streams are cancelled (3 election timeouts). */
  readonly noLeaderCancelMs?: number;
  /** Default: insecure. */
  readonly serverCredentials?: grpc.ServerCredentials;
  /** The Lease service's backend; without it the Lease service is not served. */
  readonly lease?: LeaseBackend;
  /** Cluster, Maintenance implementations (next issue). */
  readonly additionalServices?: readonly AdditionalEtcdService[];
  /** How long {@link EtcdGrpcServer.stop} waits for calls in flight before forcing (default 5,000 ms). */
  readonly shutdownGraceMs?: number;
}

/** A running (or ready to listen) etcd gRPC server. */
export interface EtcdGrpcServer {
  readonly server: grpc.Server;
  /** Binds `host:port` (port 0 = any free port) and resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /**
   * Ends every Watch stream (Unavailable "etcdserver: server stopped"), lets unary calls in
   * flight finish within the grace period, then forces the shutdown. Idempotent.
   */
  stop(): Promise<void>;
}

/** Builds the server with KV and Watch (and any additional services) registered. */
export function createEtcdGrpcServer(backend: EtcdBackend, options: EtcdGrpcServerOptions = {}): EtcdGrpcServer {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': backend.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
    // channelz stays ON for servers: with it off, grpc-js 1.14's forceShutdown() no longer
    // destroys established sessions (they are tracked only in the channelz path), so stop()
    // would leave clients connected.
  });
  const leaderMonitor = new LeaderMonitor(() => backend.hasLeader(), options.noLeaderCancelMs ?? NO_LEADER_CANCEL_MS_DEFAULT);
  const watchService = createWatchService(backend, {
    leaderMonitor,
    ...(options.progressNotifyIntervalMs === undefined ? {} : { progressNotifyIntervalMs: options.progressNotifyIntervalMs }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  server.addService(etcdServiceDefinition('KV'), createKvService(backend, options.logger));
  server.addService(etcdServiceDefinition('Watch'), watchService.implementation);
  const leaseService =
    options.lease === undefined
      ? undefined
      : createLeaseService(options.lease, { leaderMonitor, ...(options.logger === undefined ? {} : { logger: options.logger }) });
  if (leaseService !== undefined) server.addService(etcdServiceDefinition('Lease'), leaseService.implementation);
  for (const service of options.additionalServices ?? []) server.addService(etcdServiceDefinition(service.name), service.implementation);

  let stopping: Promise<void> | undefined;
  return {
    server,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        server.bindAsync(address, options.serverCredentials ?? grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
          if (error !== null) reject(error);
          else resolve(boundPort);
        });
      }),
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        leaderMonitor.close();
        watchService.closeAllStreams({ code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.serverStopped });
        leaseService?.closeAllStreams({ code: grpc.status.UNAVAILABLE, details: ETCD_MESSAGES.serverStopped });
        const force = setTimeout(() => server.forceShutdown(), options.shutdownGraceMs ?? 5000);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopping;
    },
  };
}
