/**
 * etcd's Cluster service (etcdserverpb.Cluster: MemberList, MemberAdd, MemberRemove,
 * MemberUpdate, MemberPromote) on an {@link EtcdClusterBackend}, as etcd v3.4.23's
 * etcdserver/api/v3rpc/member.go answers:
 * - every reply's header carries cluster_id, member_id and raft_term but NO revision
 *   (member.go `header()`; ETCD_WIRE_NOTES.md §1 "member list");
 * - MemberAdd validates the peer URLs (InvalidArgument "etcdserver: given member URLs are
 *   invalid"), picks a random 64-bit ID in the backend, and answers the new member and the list;
 * - errors come from the one table, etcd-errors.ts.
 * Member IDs are uint64 on the wire: decimal strings here, bigints in the backend.
 */
import * as grpc from '@grpc/grpc-js';
import { parsePeerUrl } from '../member-input';
import type { ClusterMember, EtcdClusterBackend } from './cluster-backend';
import { thrownErrorStatus, toServiceError } from './etcd-errors';
import { boolField, int64BigIntField, type ProtoObject } from './etcd-proto';
import { encodeHeader } from './kv-codec';
import type { ServiceLogger } from './kv-service';
import { requiresLeader } from './leader-monitor';

/** A header without revision (etcd's Cluster replies). */
export function clusterHeader(backend: EtcdClusterBackend): ProtoObject {
  return encodeHeader(backend.header(), 0);
}

/** Encodes etcdserverpb.Member (zero values left out, as Go's encoder does). */
export function encodeMember(member: ClusterMember): ProtoObject {
  const message: ProtoObject = { ID: member.id.toString() };
  if (member.name !== '') message.name = member.name;
  if (member.peerUrls.length > 0) message.peerURLs = [...member.peerUrls];
  if (member.clientUrls.length > 0) message.clientURLs = [...member.clientUrls];
  if (member.isLearner) message.isLearner = true;
  return message;
}

/**
 * Wraps an async handler as a grpc-js unary handler with etcd's `hasleader` rule and the error
 * table. `hasLeader` is asked only when the call requires a leader.
 */
export function unary(
  logger: ServiceLogger | undefined,
  method: string,
  hasLeader: () => boolean,
  handle: (request: ProtoObject, call: grpc.ServerUnaryCall<ProtoObject, ProtoObject>) => Promise<ProtoObject>,
): grpc.handleUnaryCall<ProtoObject, ProtoObject> {
  return (call, callback) => {
    if (requiresLeader(call.metadata) && !hasLeader()) {
      callback(toServiceError({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' }));
      return;
    }
    handle(call.request, call).then(
      (response) => callback(null, response),
      (error: unknown) => {
        const status = thrownErrorStatus(error);
        if (status.code === grpc.status.UNKNOWN) logger?.error({ err: error, method }, 'etcd call failed unexpectedly');
        callback(toServiceError(status));
      },
    );
  };
}

function peerUrlsOf(request: ProtoObject): string[] {
  const raw = request.peerURLs;
  const urls = Array.isArray(raw) ? raw.filter((url): url is string => typeof url === 'string') : [];
  // parsePeerUrl throws 'invalid-peer-url', mapped to "etcdserver: given member URLs are invalid".
  if (urls.length === 0) parsePeerUrl('');
  return urls.map((url) => parsePeerUrl(url).url);
}

/** Builds the Cluster service implementation. */
export function createClusterService(backend: EtcdClusterBackend, options: { logger?: ServiceLogger; hasLeader: () => boolean }): grpc.UntypedServiceImplementation {
  const { logger, hasLeader } = options;
  const listResponse = async () => ({ header: clusterHeader(backend), members: (await backend.members()).map(encodeMember) });
  return {
    MemberList: unary(logger, 'MemberList', hasLeader, listResponse),
    MemberAdd: unary(logger, 'MemberAdd', hasLeader, async (request) => {
      const member = await backend.addMember(peerUrlsOf(request), boolField(request, 'isLearner'));
      return { header: clusterHeader(backend), member: encodeMember(member), members: (await backend.members()).map(encodeMember) };
    }),
    MemberRemove: unary(logger, 'MemberRemove', hasLeader, async (request) => {
      await backend.removeMember(int64BigIntField(request, 'ID'));
      return listResponse();
    }),
    MemberUpdate: unary(logger, 'MemberUpdate', hasLeader, async (request) => {
      await backend.updateMember(int64BigIntField(request, 'ID'), peerUrlsOf(request));
      return listResponse();
    }),
    MemberPromote: unary(logger, 'MemberPromote', hasLeader, async (request) => {
      await backend.promoteMember(int64BigIntField(request, 'ID'));
      return listResponse();
    }),
  };
}
