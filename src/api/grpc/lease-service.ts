/**
 * etcd's Lease service (etcdserverpb.Lease: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
 * LeaseTimeToLive, LeaseLeases) on a {@link LeaseBackend}, with etcd v3.4.23's wire behaviour
 * (etcdserver/api/v3rpc/lease.go; ETCD_WIRE_NOTES.md §3.5):
 * - LeaseGrant → {header, ID, TTL}: TTL raised to the minimum TTL; > 9,000,000,000 → OutOfRange
 *   "etcdserver: too large lease TTL"; a taken client-chosen ID → FailedPrecondition
 *   "etcdserver: lease already exists".
 * - LeaseRevoke → {header}; unknown → NotFound "etcdserver: requested lease not found".
 * - LeaseKeepAlive: a bidirectional stream; each request {ID} gets {header, ID, TTL} with the
 *   GRANTED TTL, or TTL 0 (absent) for an unknown or expired lease — not an error. The header is
 *   made BEFORE the renewal, as etcd does. Requests of one stream are answered in order. A
 *   cluster-level failure (no leader until the deadline, ...) ends the stream with etcd's status.
 * - LeaseTimeToLive → {header, ID, TTL (remaining), grantedTTL, keys if asked}; unknown → OK with
 *   TTL -1.
 * - LeaseLeases → {header, leases: [{ID}]}.
 * `hasleader: true` metadata: unary calls and new KeepAlive streams are refused with Unavailable
 * "etcdserver: no leader" while no leader is known, and open `hasleader` KeepAlive streams are
 * cancelled by the LeaderMonitor after three election timeouts without one.
 */
import * as grpc from '@grpc/grpc-js';
import type { LeaseBackend } from './backend';
import { gatewayErrorStatus, mvccErrorStatus, thrownErrorStatus, toServiceError, type EtcdStatus } from './etcd-errors';
import { boolField, int64BigIntField, int64NumberField, type ProtoObject } from './etcd-proto';
import { encodeHeader } from './kv-codec';
import { unaryHandler, type ServiceLogger } from './kv-service';
import { requiresLeader, type LeaderMonitor } from './leader-monitor';

/** The Lease service and a way to end its streams. */
export interface LeaseService {
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Ends every open KeepAlive stream with `status` (server shutdown). */
  closeAllStreams(status: EtcdStatus): void;
}

/** Options of {@link createLeaseService}. */
export interface LeaseServiceOptions {
  readonly leaderMonitor: LeaderMonitor;
  readonly logger?: ServiceLogger;
}

/** Builds the Lease service for `server.addService(etcdServiceDefinition('Lease'), ...)`. */
export function createLeaseService(backend: LeaseBackend, options: LeaseServiceOptions): LeaseService {
  const streams = new Set<(status: EtcdStatus) => void>();
  const header = () => {
    const fields = backend.header();
    return encodeHeader(fields, fields.revision);
  };
  const implementation: grpc.UntypedServiceImplementation = {
    LeaseGrant: unaryHandler(backend, options.logger, 'LeaseGrant', async (message) => {
      const outcome = await backend.leaseGrant(int64NumberField(message, 'TTL'), int64BigIntField(message, 'ID'));
      if (!outcome.ok) return { status: mvccErrorStatus(outcome.error) };
      return { response: { header: header(), ID: outcome.value.id, TTL: outcome.value.ttlSeconds } };
    }),

    LeaseRevoke: unaryHandler(backend, options.logger, 'LeaseRevoke', async (message) => {
      const outcome = await backend.leaseRevoke(int64BigIntField(message, 'ID'));
      if (!outcome.ok) return { status: mvccErrorStatus(outcome.error) };
      return { response: { header: header() } };
    }),

    LeaseTimeToLive: unaryHandler(backend, options.logger, 'LeaseTimeToLive', async (message) => {
      const id = int64BigIntField(message, 'ID');
      const found = await backend.leaseTimeToLive(id, boolField(message, 'keys'));
      if (found === undefined) return { response: { header: header(), ID: id, TTL: -1 } };
      const response: ProtoObject = { header: header(), ID: id, TTL: found.remainingSeconds, grantedTTL: found.grantedTtlSeconds };
      if (found.keys.length > 0) response['keys'] = found.keys;
      return { response };
    }),

    LeaseLeases: unaryHandler(backend, options.logger, 'LeaseLeases', async () => {
      const ids = await backend.leaseLeases();
      return { response: { header: header(), leases: ids.map((id) => ({ ID: id })) } };
    }),

    LeaseKeepAlive: (call: grpc.ServerDuplexStream<ProtoObject, ProtoObject>) => {
      if (requiresLeader(call.metadata) && !backend.hasLeader()) {
        call.emit('error', toServiceError(gatewayErrorStatus('hasleader-no-leader')));
        return;
      }
      let closed = false;
      const releases: Array<() => void> = [];
      const release = () => {
        if (closed) return;
        closed = true;
        for (const done of releases.splice(0)) done();
      };
      const fail = (status: EtcdStatus) => {
        if (closed) return;
        release();
        call.emit('error', toServiceError(status));
      };
      streams.add(fail);
      releases.push(() => streams.delete(fail));
      if (requiresLeader(call.metadata)) releases.push(options.leaderMonitor.register(() => fail(gatewayErrorStatus('hasleader-no-leader'))));
      // One renewal at a time, in request order (etcd's recvLoop is sequential too).
      let chain: Promise<void> = Promise.resolve();
      call.on('data', (request: ProtoObject) => {
        const id = int64BigIntField(request, 'ID');
        chain = chain.then(async () => {
          if (closed) return;
          const responseHeader = header();
          try {
            const ttlSeconds = await backend.leaseRenew(id);
            if (!closed) call.write(ttlSeconds > 0 ? { header: responseHeader, ID: id, TTL: ttlSeconds } : { header: responseHeader, ID: id });
          } catch (error) {
            const status = thrownErrorStatus(error);
            if (status.code === grpc.status.UNKNOWN) options.logger?.error({ err: error, method: 'LeaseKeepAlive' }, 'etcd call failed unexpectedly');
            fail(status);
          }
        });
      });
      call.on('end', () => {
        void chain.then(() => {
          if (closed) return;
          release();
          call.end();
        });
      });
      call.on('cancelled', release);
      call.on('close', release);
      call.on('error', release);
    },
  };
  return {
    implementation,
    closeAllStreams: (status) => {
      for (const fail of [...streams]) fail(status);
    },
  };
}
