/**
 * One cache node: the wiring of groups, ring, peers, etcd and the two servers.
 *
 * Start-up order matters and is the contract of {@link CacheNode.start}:
 * 1. every group's store prefix is WATCHED (created, from the next revision) BEFORE anything can
 *    be loaded, so no change can slip between a load and the watch that keeps it coherent;
 * 2. the peer gRPC server listens (its address is the node's identity on the ring);
 * 3. discovery reads `/services/cache/` and watches it from the next revision; every change
 *    rebuilds the ring (this node is always on its own ring, even before its key is visible);
 * 4. the node registers `/services/cache/<name>/<address>` with a kept-alive lease;
 * 5. the HTTP front listens.
 * `stop()` undoes this in reverse: the lease is revoked first so peers drop the node at once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { CACHE_PEER_SERVICE, type PeerGetRequest, type PeerGetResponse, type PeerSetRequest, type PeerSetResponse } from './cache-proto';
import { CacheError } from './cache-errors';
import { EtcdGroupStore } from './etcd-store';
import { CacheGroup, type GroupStats, type OwnerChoice, type PeerPicker } from './group';
import { HashRing } from './hash-ring';
import { createCacheHttpApp } from './http-front';
import { GrpcPeerClient } from './peer-client';
import { PrefixWatch } from './prefix-watch';
import { ServiceRegistration, serviceKey } from './registration';
import { SERVICES_PREFIX } from './etcd-resolver';

/** The service name cache nodes register under (`/services/cache/...`). */
export const CACHE_SERVICE = 'cache';

/** One group's configuration. */
export interface CacheGroupConfig {
  readonly name: string;
  readonly maxBytes: number;
  readonly hotMaxBytes: number;
}

/** Everything a node needs; sizes in bytes, durations in ms. */
export interface CacheNodeOptions {
  readonly name: string;
  /** Where the peer gRPC server listens; this `host:port` is the node's ring identity. Port 0 picks one. */
  readonly listen: { readonly host: string; readonly port: number };
  /** etcd endpoints (`host:port` or URLs). */
  readonly endpoints: readonly string[];
  /** HTTP front; `port` 0 picks one, undefined disables it. */
  readonly http: { readonly host: string; readonly port: number } | undefined;
  readonly groups: readonly CacheGroupConfig[];
  readonly replicas: number;
  readonly ttlMs: number;
  readonly ttlJitter: number;
  readonly hotFraction: number;
  readonly leaseTtlSeconds: number;
  readonly peerTimeoutMs: number;
  /** Deadline of every unary etcd call (loads, writes, lease grants). */
  readonly storeTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly logger: Logger;
}

/** A member as discovery sees it. */
export interface RingMember {
  readonly name: string;
  readonly address: string;
}

/** A running cache node. */
export class CacheNode implements PeerPicker {
  private readonly client: Etcd3;
  private readonly groups = new Map<string, CacheGroup>();
  private readonly groupWatches: PrefixWatch[] = [];
  private readonly peers = new Map<string, GrpcPeerClient>();
  private readonly members = new Map<string, RingMember>();
  private ring: HashRing;
  private server: grpc.Server | undefined;
  private httpServer: http.Server | undefined;
  private discovery: PrefixWatch | undefined;
  private registration: ServiceRegistration | undefined;
  private ringVersion = 0;
  /** `host:port` of the peer server (the ring identity); set by start. */
  address = '';
  /** `host:port` of the HTTP front, if any; set by start. */
  httpAddress: string | undefined;

  private constructor(private readonly options: CacheNodeOptions) {
    this.client = new Etcd3({
      hosts: options.endpoints.map((endpoint) => (/^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`)),
      dialTimeout: options.storeTimeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.storeTimeoutMs }),
    });
    this.ring = new HashRing([], options.replicas);
  }

  /** Starts a node (see the module overview for the order); on failure everything is undone. */
  static async start(options: CacheNodeOptions): Promise<CacheNode> {
    const node = new CacheNode(options);
    try {
      await node.startInOrder();
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  /** The group named `name`. */
  group(name: string): CacheGroup | undefined {
    return this.groups.get(name);
  }

  /** The etcd client (shared, e.g. with a resolver). */
  get etcd(): Etcd3 {
    return this.client;
  }

  /** {@link PeerPicker}: the owner of `key` on the current ring. */
  pick(key: string): OwnerChoice {
    const owner = this.ring.ownerOf(key);
    if (owner === undefined || owner === this.address) return { self: true };
    let peer = this.peers.get(owner);
    if (peer === undefined) {
      peer = new GrpcPeerClient(owner, this.options.peerTimeoutMs);
      this.peers.set(owner, peer);
    }
    return { self: false, peer };
  }

  /** The ring's members (addresses, sorted). */
  ringMembers(): readonly string[] {
    return this.ring.members;
  }

  /** Counters per group, their totals, and the ring. */
  stats(): object {
    const groups: Record<string, GroupStats> = {};
    const totals: Record<string, number> = {};
    for (const [name, group] of this.groups) {
      const stats = group.stats();
      groups[name] = stats;
      for (const [field, value] of Object.entries(stats)) {
        if (field !== 'watchedRevision') totals[field] = (totals[field] ?? 0) + value;
      }
    }
    return {
      name: this.options.name,
      address: this.address,
      httpAddress: this.httpAddress ?? null,
      ring: { version: this.ringVersion, replicas: this.options.replicas, members: [...this.ring.members] },
      members: [...this.members.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
      totals,
      groups,
    };
  }

  /** Stops in reverse order: revoke the lease, close servers, watches, peers and the etcd client. Idempotent. */
  async stop(): Promise<void> {
    await this.registration?.stop();
    this.registration = undefined;
    const httpServer = this.httpServer;
    this.httpServer = undefined;
    if (httpServer !== undefined) {
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) server.forceShutdown();
    await this.discovery?.stop();
    this.discovery = undefined;
    for (const watch of this.groupWatches.splice(0)) await watch.stop();
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    this.client.close();
  }

  private async startInOrder(): Promise<void> {
    const { logger } = this.options;
    // 1. Groups and their coherence watches.
    for (const config of this.options.groups) {
      const store = new EtcdGroupStore(this.client, config.name);
      const group = new CacheGroup({
        name: config.name,
        maxBytes: config.maxBytes,
        hotMaxBytes: config.hotMaxBytes,
        ttlMs: this.options.ttlMs,
        ttlJitter: this.options.ttlJitter,
        hotFraction: this.options.hotFraction,
        maxValueBytes: this.options.maxValueBytes,
        store,
        picker: this,
        onPeerError: (address, error) => logger.debug({ peer: address, err: error }, 'peer call failed; falling back to a local load'),
      });
      this.groups.set(config.name, group);
      let first = true;
      const watch = new PrefixWatch(this.client, store.prefix, false, {
        onSnapshot: () => {
          // After a reset (watch cancelled, e.g. compacted) changes may have been missed.
          if (!first) {
            logger.warn({ group: config.name }, 'group watch re-established; cache cleared');
            group.clear();
          }
          first = false;
        },
        onChange: (change) => {
          const key = change.key.slice(store.prefix.length);
          if (key !== '') group.applyChange({ ...change, key });
        },
        onError: (error) => logger.warn({ group: config.name, err: error }, 'group watch failed'),
      });
      this.groupWatches.push(watch);
      await watch.start();
    }
    // 2. Peer server.
    const server = new grpc.Server();
    server.addService(CACHE_PEER_SERVICE, {
      Get: (call: grpc.ServerUnaryCall<PeerGetRequest, PeerGetResponse>, callback: grpc.sendUnaryData<PeerGetResponse>) => {
        const group = this.groups.get(call.request.group);
        if (group === undefined) return callback({ code: grpc.status.NOT_FOUND, details: `unknown group "${call.request.group}"` });
        group.serveForPeer(call.request.key).then(
          (answer) => callback(null, answer),
          (error: unknown) => callback({ code: peerErrorCode(error), details: error instanceof Error ? error.message : String(error) }),
        );
      },
      Set: (call: grpc.ServerUnaryCall<PeerSetRequest, PeerSetResponse>, callback: grpc.sendUnaryData<PeerSetResponse>) => {
        const group = this.groups.get(call.request.group);
        if (group === undefined) return callback({ code: grpc.status.NOT_FOUND, details: `unknown group "${call.request.group}"` });
        try {
          callback(null, { ok: group.acceptFromPeer(call.request) });
        } catch (error) {
          callback({ code: peerErrorCode(error), details: error instanceof Error ? error.message : String(error) });
        }
      },
    });
    this.server = server;
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.options.listen.host}:${this.options.listen.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error === null ? resolve(bound) : reject(error),
      ),
    );
    this.address = `${this.options.listen.host}:${port}`;
    this.rebuildRing();
    // 3. Discovery.
    const prefix = `${SERVICES_PREFIX}${CACHE_SERVICE}/`;
    const memberOf = (key: string): RingMember | undefined => {
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash <= 0 || slash === rest.length - 1) return undefined;
      return { name: rest.slice(0, slash), address: rest.slice(slash + 1) };
    };
    this.discovery = new PrefixWatch(this.client, prefix, true, {
      onSnapshot: (kvs) => {
        this.members.clear();
        for (const kv of kvs) {
          const member = memberOf(kv.key);
          if (member !== undefined) this.members.set(kv.key, member);
        }
        this.rebuildRing();
      },
      onChange: (change) => {
        if (change.type === 'delete') this.members.delete(change.key);
        else {
          const member = memberOf(change.key);
          if (member !== undefined) this.members.set(change.key, member);
        }
        this.rebuildRing();
      },
      onError: (error) => logger.warn({ err: error }, 'discovery watch failed'),
    });
    await this.discovery.start();
    // 4. Registration.
    this.registration = new ServiceRegistration(this.client, {
      key: serviceKey(SERVICES_PREFIX, CACHE_SERVICE, this.options.name, this.address),
      value: this.address,
      leaseTtlSeconds: this.options.leaseTtlSeconds,
      onEvent: (event, detail) => {
        if (event === 'registered') logger.info({ address: this.address }, 'registered');
        else logger.warn({ err: detail }, event === 'lost' ? 'registration lease lost; registering again' : 'registration failed; retrying');
      },
    });
    await this.registration.start();
    // 5. HTTP front.
    if (this.options.http !== undefined) {
      const httpServer = http.createServer(createCacheHttpApp(this, { maxValueBytes: this.options.maxValueBytes }));
      this.httpServer = httpServer;
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(this.options.http!.port, this.options.http!.host, () => resolve());
      });
      const bound = httpServer.address() as AddressInfo;
      this.httpAddress = `${this.options.http.host}:${bound.port}`;
    }
    logger.info({ address: this.address, http: this.httpAddress, ring: this.ring.members }, 'cache node started');
  }

  private rebuildRing(): void {
    const addresses = new Set([...this.members.values()].map((member) => member.address));
    addresses.add(this.address);
    const ring = new HashRing(addresses, this.options.replicas);
    const changed = ring.members.join(',') !== this.ring.members.join(',');
    this.ring = ring;
    if (!changed) return;
    this.ringVersion++;
    for (const [address, peer] of this.peers) {
      if (!addresses.has(address)) {
        peer.close();
        this.peers.delete(address);
      }
    }
    this.options.logger.info({ ring: ring.members, version: this.ringVersion }, 'ring changed');
  }
}

function peerErrorCode(error: unknown): grpc.status {
  if (error instanceof CacheError) {
    if (error.code === 'empty-key' || error.code === 'invalid-key') return grpc.status.INVALID_ARGUMENT;
    if (error.code === 'store-unavailable') return grpc.status.UNAVAILABLE;
  }
  return grpc.status.INTERNAL;
}
