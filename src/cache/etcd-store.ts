/**
 * The store behind the cache, reached with the `etcd3` client: it works against any etcd v3
 * endpoint (a real etcd, or raftkv's etcd API).
 *
 * Key mapping (docs/CACHE.md): group `default` fronts the store's own keyspace, so the cache key
 * `my-key` is the store key `/my-key` — the key raftexample's `PUT /my-key` writes. Any other
 * group `<g>` lives under `/cache/<g>/`: cache key `k` is store key `/cache/<g>/k`.
 *
 * Reads are linearizable (etcd3's default Range, no `serializable`); writes are plain Puts.
 */
import type { Etcd3 } from 'etcd3';
import type { GroupStore, LoadedValue } from './group';

/** The name of the group that fronts the store's own keyspace. */
export const DEFAULT_GROUP = 'default';

/** The store prefix of a group's keys. */
export function storePrefixOf(group: string): string {
  return group === DEFAULT_GROUP ? '/' : `/cache/${group}/`;
}

/** Group names: letters, digits, `_`, `.` and `-`, not starting with `-` (which is reserved). */
export const GROUP_NAME_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;

/** {@link GroupStore} for one group over an etcd client. */
export class EtcdGroupStore implements GroupStore {
  readonly prefix: string;

  constructor(
    private readonly client: Etcd3,
    group: string,
  ) {
    this.prefix = storePrefixOf(group);
  }

  /** Linearizable read of the group key. */
  async load(key: string): Promise<LoadedValue> {
    const response = await this.client.get(this.prefix + key).exec();
    const kv = response.kvs[0];
    if (kv === undefined) return { found: false, value: Buffer.alloc(0), modRevision: 0 };
    return { found: true, value: Buffer.from(kv.value), modRevision: Number(kv.mod_revision) };
  }

  /** Put; resolves with the revision of the write. */
  async write(key: string, value: Buffer): Promise<number> {
    const response = await this.client.put(this.prefix + key).value(value).exec();
    return Number(response.header.revision);
  }
}
