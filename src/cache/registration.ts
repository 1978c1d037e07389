/**
 * Service registration in etcd: `/services/<service>/<name>/<address>` = `<address>`, attached
 * to a lease that the etcd3 client keeps alive (a keep-alive every TTL/3).
 *
 * If the process dies, keep-alives stop and etcd deletes the key when the lease expires, so a
 * dead node disappears from every ring within its lease TTL. If the lease is lost while the
 * process lives (etcd reports it expired or revoked, e.g. after a long pause or partition), the
 * registration starts over with a new lease, retrying every `retryDelayMs` until it succeeds.
 * `stop()` revokes the lease, which deletes the key at once (a clean shutdown leaves no ghost).
 */
import type { Etcd3, Lease } from 'etcd3';

/** The key under which an instance of `service` registers. */
export function serviceKey(servicesPrefix: string, service: string, name: string, address: string): string {
  return `${servicesPrefix}${service}/${name}/${address}`;
}

/** Options of a {@link ServiceRegistration}. */
export interface RegistrationOptions {
  readonly key: string;
  readonly value: string;
  readonly leaseTtlSeconds: number;
  readonly retryDelayMs?: number;
  /** Called on every (re-)registration and loss, for logging. */
  readonly onEvent?: (event: 'registered' | 'lost' | 'retry', detail?: unknown) => void;
}

/** One registered key kept alive by a lease. */
export class ServiceRegistration {
  private lease: Lease | undefined;
  private stopped = false;
  private registrations = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly options: RegistrationOptions,
  ) {}

  /** How many times the key was (re-)registered. */
  get registrationCount(): number {
    return this.registrations;
  }

  /** The current lease ID (decimal), once registered. */
  async leaseId(): Promise<string | undefined> {
    return this.lease === undefined ? undefined : this.lease.grant();
  }

  /** Registers; resolves once the key is written, retrying until then. */
  async start(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.registerOnce();
        return;
      } catch (error) {
        this.options.onEvent?.('retry', error);
        await new Promise((resolve) => setTimeout(resolve, this.options.retryDelayMs ?? 500));
      }
    }
  }

  /** Revokes the lease (deleting the key). */
  async stop(): Promise<void> {
    this.stopped = true;
    const lease = this.lease;
    this.lease = undefined;
    if (lease !== undefined) await lease.revoke().catch(() => undefined);
  }

  private async registerOnce(): Promise<void> {
    const lease = this.client.lease(this.options.leaseTtlSeconds, { autoKeepAlive: true });
    lease.on('lost', (error) => {
      if (this.lease !== lease || this.stopped) return;
      this.lease = undefined;
      this.options.onEvent?.('lost', error);
      void this.start();
    });
    this.lease = lease;
    try {
      await lease.put(this.options.key).value(this.options.value).exec();
    } catch (error) {
      if (this.lease === lease) this.lease = undefined;
      lease.release();
      throw error;
    }
    if (this.stopped) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.registrations++;
    this.options.onEvent?.('registered');
  }
}
