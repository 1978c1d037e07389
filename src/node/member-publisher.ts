/**
 * Publishes this member's attributes (name and client URLs) through the log after it starts, as
 * etcd's `EtcdServer.publish` does: until they are applied, MemberList shows the member with an
 * empty name (etcdctl prints "unstarted") and no client URLs.
 *
 * The publisher proposes once the applied attributes differ from this member's own, retrying
 * with a capped backoff while there is no leader (a joining member learns its leader only once
 * the leader contacts it); it stops after success, on `stop()`, or when the node is removed or
 * stopped. Publishing again after every start is harmless (the operation overwrites).
 */
import { isRaftkvError } from '../errors';
import type { MemberAttributes } from './cluster-metadata';
import type { RaftServer, RuntimeLogger } from './raft-server';
import type { NodeStateMachine } from './state-machine';

/** Retry backoff bounds in milliseconds. */
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 2000;

/** Publishes `attributes` for `server.id`; returns a function that stops retrying. */
export function publishMemberAttributes(server: RaftServer, stateMachine: NodeStateMachine, attributes: MemberAttributes, logger: RuntimeLogger): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let delayMs = RETRY_INITIAL_MS;
  const published = () => {
    const current = stateMachine.metadata.attributesOf(server.id);
    return current !== undefined && current.name === attributes.name && current.clientUrls.join(',') === attributes.clientUrls.join(',');
  };
  const attempt = async (): Promise<void> => {
    if (stopped || published()) return;
    try {
      await server.proposeClusterOperation({ kind: 'publish-attributes', memberId: server.id, name: attributes.name, clientUrls: [...attributes.clientUrls] });
      logger.info({ name: attributes.name, clientUrls: attributes.clientUrls }, 'published member attributes');
      return;
    } catch (error) {
      if (isRaftkvError(error, 'removed') || isRaftkvError(error, 'stopped')) return;
      logger.debug({ err: error }, 'publishing member attributes failed; retrying');
    }
    if (stopped) return;
    timer = setTimeout(() => void attempt(), delayMs);
    timer.unref();
    delayMs = Math.min(RETRY_MAX_MS, delayMs * 2);
  };
  void attempt();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
