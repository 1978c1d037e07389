/**
 * Wires etcd's Cluster and Maintenance services, the backend quota and the attribute publisher
 * into one node (called from run-node.ts, kept here so run-node's own changes stay small).
 */
import type { HeaderFields } from '../api/grpc/backend';
import type { AdditionalEtcdService } from '../api/grpc/etcd-server';
import { createClusterService } from '../api/grpc/cluster-service';
import { createMaintenanceService } from '../api/grpc/maintenance-service';
import type { ServiceLogger } from '../api/grpc/kv-service';
import type { NodeOptions } from '../cli/options';
import { NONE } from '../raft/types';
import { RaftClusterBackend } from './cluster-backend';
import { AlarmType } from './cluster-entry';
import { publishMemberAttributes } from './member-publisher';
import { BackendQuota } from './quota';
import type { RaftServer, RuntimeLogger } from './raft-server';
import type { NodeStateMachine } from './state-machine';

/** What run-node needs: the services to register, the quota for the KV backend, and a stop hook. */
export interface ClusterWiring {
  readonly backend: RaftClusterBackend;
  readonly additionalServices: readonly AdditionalEtcdService[];
  readonly quota: BackendQuota;
  /** Starts publishing this member's attributes (call once the server runs). */
  startPublishing(): void;
  /** Stops the publisher's retries. */
  stop(): void;
}

/** Builds the Cluster/Maintenance wiring of one node. */
export function wireClusterServices(
  options: NodeOptions,
  server: RaftServer,
  stateMachine: NodeStateMachine,
  header: () => HeaderFields,
  logger: RuntimeLogger & ServiceLogger,
): ClusterWiring {
  const backend = new RaftClusterBackend(server, stateMachine, { dataDir: options.dataDir, header, requestTimeoutMs: options.requestTimeoutMs });
  const hasLeader = () => server.leaderId() !== NONE;
  const quota = new BackendQuota(options.quotaBackendBytes, {
    sizeBytes: () => backend.dbSizeBytes(),
    alarmRaised: () => stateMachine.metadata.alarmList().some((alarm) => alarm.memberId === server.id && alarm.alarm === AlarmType.NoSpace),
    raiseAlarm: async (alarm) => {
      logger.warn({ quotaBackendBytes: options.quotaBackendBytes }, 'backend quota exceeded: raising the NOSPACE alarm');
      await backend.changeAlarm('activate', { memberId: server.id, alarm });
    },
  });
  let stopPublisher: (() => void) | undefined;
  return {
    backend,
    additionalServices: [
      { name: 'Cluster', implementation: createClusterService(backend, { logger, hasLeader }) },
      { name: 'Maintenance', implementation: createMaintenanceService(backend, { logger, hasLeader }) },
    ],
    quota,
    startPublishing: () => {
      stopPublisher ??= publishMemberAttributes(server, stateMachine, { name: options.name, clientUrls: options.advertiseClientUrls }, logger);
    },
    stop: () => stopPublisher?.(),
  };
}
