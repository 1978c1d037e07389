/**
 * A gRPC name resolver for @grpc/grpc-js: `etcd:///<service>` resolves to the addresses
 * registered under `/services/<service>/` (keys `/services/<service>/<name>/<host:port>`, as
 * written by src/cache/registration.ts) and follows every change by watch.
 *
 *   registerEtcdResolver(etcdClient);
 *   const client = new grpc.Client('etcd:///cache', credentials, {
 *     'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
 *   });
 *
 * EXPERIMENTAL API. grpc-js exposes resolvers only through `grpc.experimental`, and the listener
 * signature changed at 1.14.0 (before: `listener.onSuccessfulResolution(...)`; since: a function
 * `(endpoints: StatusOr<Endpoint[]>, attributes, serviceConfig | null, resolutionNote) => boolean`
 * built with `experimental.statusOrFromValue`). This file is written against 1.14.x (the project
 * pins ^1.14.7); a grpc-js upgrade must re-check it.
 *
 * An empty service is reported as an UNAVAILABLE resolution error, so calls fail fast (or wait,
 * with waitForReady) instead of hanging on an empty address list.
 */
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { PrefixWatch } from './prefix-watch';

type ResolverListener = grpc.experimental.ResolverListener;
type GrpcUri = grpc.experimental.GrpcUri;

/** The default prefix under which services register. */
export const SERVICES_PREFIX = '/services/';

/** Options of {@link registerEtcdResolver}. */
export interface EtcdResolverOptions {
  /** URI scheme; default `etcd`. */
  readonly scheme?: string;
  /** Registration prefix; default `/services/`. */
  readonly servicesPrefix?: string;
}

/** Parses the `<host:port>` at the end of a registration key; undefined if it is not one. */
export function addressOfServiceKey(key: string, servicePrefix: string): { host: string; port: number } | undefined {
  if (!key.startsWith(servicePrefix)) return undefined;
  const rest = key.slice(servicePrefix.length);
  const slash = rest.lastIndexOf('/');
  const address = slash < 0 ? rest : rest.slice(slash + 1);
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):([0-9]{1,5})$/.exec(address);
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/**
 * Registers the `etcd` scheme (or `options.scheme`) with grpc-js, resolving through `client`.
 * Call once per process and scheme; the client must outlive every channel using the scheme.
 */
export function registerEtcdResolver(client: Etcd3, options: EtcdResolverOptions = {}): void {
  const servicesPrefix = options.servicesPrefix ?? SERVICES_PREFIX;

  class EtcdResolver implements grpc.experimental.Resolver {
    private readonly keys = new Map<string, { host: string; port: number }>();
    private readonly watch: PrefixWatch;
    private readonly service: string;
    private ready = false;
    private reportScheduled = false;
    private destroyed = false;

    constructor(
      target: GrpcUri,
      private readonly listener: ResolverListener,
    ) {
      this.service = target.path.replace(/^\/+/, '');
      const prefix = `${servicesPrefix}${this.service}/`;
      this.watch = new PrefixWatch(client, prefix, true, {
        onSnapshot: (kvs) => {
          this.keys.clear();
          for (const kv of kvs) {
            const address = addressOfServiceKey(kv.key, prefix);
            if (address !== undefined) this.keys.set(kv.key, address);
          }
          this.ready = true;
          this.report();
        },
        onChange: (change) => {
          if (change.type === 'delete') this.keys.delete(change.key);
          else {
            const address = addressOfServiceKey(change.key, prefix);
            if (address !== undefined) this.keys.set(change.key, address);
          }
          this.report();
        },
        onError: (error) => this.reportError(`etcd watch of ${prefix} failed: ${error instanceof Error ? error.message : String(error)}`),
      });
      void this.watch.startRetrying();
    }

    /**
     * grpc-js asks for a fresh resolution from inside its own handling of a result (a load
     * balancer that drops subchannels requests re-resolution synchronously), so answering here
     * synchronously would recurse without end. The answer is deferred and coalesced.
     */
    updateResolution(): void {
      if (this.destroyed || !this.ready || this.reportScheduled) return;
      this.reportScheduled = true;
      setImmediate(() => {
        this.reportScheduled = false;
        this.report();
      });
    }

    destroy(): void {
      this.destroyed = true;
      void this.watch.stop();
    }

    static getDefaultAuthority(target: GrpcUri): string {
      return target.path.replace(/^\/+/, '');
    }

    private report(): void {
      if (this.destroyed) return;
      const seen = new Set<string>();
      const endpoints: grpc.experimental.Endpoint[] = [];
      for (const address of this.keys.values()) {
        const id = `${address.host}:${address.port}`;
        if (seen.has(id)) continue;
        seen.add(id);
        endpoints.push({ addresses: [{ host: address.host, port: address.port }] });
      }
      if (endpoints.length === 0) {
        this.reportError(`no instance of service "${this.service}" is registered`);
        return;
      }
      this.listener(grpc.experimental.statusOrFromValue(endpoints), {}, null, '');
    }

    private reportError(details: string): void {
      if (this.destroyed) return;
      this.listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details }), {}, null, details);
    }
  }

  grpc.experimental.registerResolver(options.scheme ?? 'etcd', EtcdResolver);
}
