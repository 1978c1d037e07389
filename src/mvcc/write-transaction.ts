/**
 * One write transaction of the MVCC store (a Put, a DeleteRange or a Txn) and the small KeyValue
 * helpers shared with the store. All writes of a transaction share main revision
 * `beginRevision + 1` and take increasing sub-revisions; each write goes to the key index at once
 * (so later operations of the same txn read their own writes) and to the store's pending batch.
 */
import { valueBytes, valueString, type CurrentValue, type KeyIndex } from './key-index';
import { fromKeyString, resolveRange, toKeyString, type KeyString } from './key-range';
import { encodeRecord } from './record-codec';
import { EventType, NO_LEASE, type DeleteRangeRequest, type DeleteRangeResponse, type KeyValue, type MvccEvent, type PutRequest, type PutResponse, type Revision } from './types';

/** What a transaction needs from the store. */
export interface TransactionTarget {
  /** Stages one record write, updates the index, returns the level operation. */
  stageWrite(key: KeyString, main: Revision, sub: number, tombstone: boolean, record: Buffer, current: CurrentValue | undefined): { type: 'put'; key: Buffer; value: Buffer };
  keyIndex(): KeyIndex;
}

const EMPTY = Buffer.alloc(0);

/**
 * The writes of one transaction (a Put, a DeleteRange or a Txn), all at main revision
 * `beginRevision + 1` with increasing sub-revisions. Changes go to the index at once (so later
 * operations of the same txn read their own writes) and to the store's pending batch.
 */
export class WriteTransaction {
  readonly main: Revision;
  readonly events: MvccEvent[] = [];
  readonly records: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];

  constructor(
    private readonly store: TransactionTarget,
    readonly beginRevision: Revision,
  ) {
    this.main = beginRevision + 1;
  }

  /** The revision this transaction's reads see: its own once it wrote something. */
  viewRevision(): Revision {
    return this.events.length > 0 ? this.main : this.beginRevision;
  }

  /** etcd Put (checks were done before): ignore_value/ignore_lease keep the current ones. */
  put(request: PutRequest): PutResponse {
    const key = toKeyString(request.key);
    const previous = this.store.keyIndex().get(key)?.current;
    const previousKv = previous === undefined ? undefined : currentKeyValue(key, previous);
    // A key missing here despite ignore_* (only reachable through etcd's "\0" delete quirk, where
    // etcd itself panics) is written with an empty value and no lease, identically everywhere.
    const value = request.ignoreValue === true ? (previousKv?.value ?? EMPTY) : Buffer.from(request.value ?? EMPTY);
    const lease = request.ignoreLease === true ? (previous?.lease ?? NO_LEASE) : (request.lease ?? NO_LEASE);
    const current: CurrentValue = {
      createRevision: previous?.createRevision ?? this.main,
      modRevision: this.main,
      version: (previous?.version ?? 0) + 1,
      valueLatin1: request.ignoreValue === true && previous !== undefined ? previous.valueLatin1 : valueString(value),
      lease,
    };
    const sub = this.events.length;
    const record = encodeRecord(false, { key: request.key, createRevision: current.createRevision, version: current.version, lease, value });
    this.records.push(this.store.stageWrite(key, this.main, sub, false, record, current));
    const kv: KeyValue = { key: fromKeyString(key), createRevision: current.createRevision, modRevision: this.main, version: current.version, value, lease };
    this.events.push(previousKv === undefined ? { type: EventType.Put, kv } : { type: EventType.Put, kv, prevKv: previousKv });
    return request.prevKv === true && previousKv !== undefined ? { revision: this.main, prevKv: previousKv } : { revision: this.main };
  }

  /** etcd DeleteRange: tombstones every live key of the range. */
  deleteRange(request: DeleteRangeRequest): DeleteRangeResponse {
    const live: Array<{ key: KeyString; current: CurrentValue }> = [];
    this.store.keyIndex().visit(resolveRange(request.key, request.rangeEnd), (entry) => {
      const current = entry.current;
      if (current !== undefined) live.push({ key: entry.key, current });
      return true;
    });
    const prevKvs: KeyValue[] = [];
    for (const { key, current } of live) {
      const keyBytes = fromKeyString(key);
      const previousKv = currentKeyValue(key, current);
      if (request.prevKv === true) prevKvs.push(previousKv);
      const record = encodeRecord(true, { key: keyBytes, createRevision: 0, version: 0, lease: NO_LEASE, value: EMPTY });
      this.records.push(this.store.stageWrite(key, this.main, this.events.length, true, record, undefined));
      this.events.push({ ...deleteEvent(keyBytes, this.main), prevKv: previousKv });
    }
    const revision = live.length > 0 || this.events.length > 0 ? this.main : this.beginRevision;
    return { revision, deleted: live.length, prevKvs };
  }
}

/** A KeyValue from a key and its cached current value. */
export function currentKeyValue(key: KeyString, current: CurrentValue): KeyValue {
  return { key: fromKeyString(key), createRevision: current.createRevision, modRevision: current.modRevision, version: current.version, value: valueBytes(current.valueLatin1), lease: current.lease };
}

/** A DELETE event's kv: only the key and the deletion's revision (etcd). */
export function deleteEvent(key: Buffer, revision: Revision): MvccEvent {
  return { type: EventType.Delete, kv: { key, createRevision: 0, modRevision: revision, version: 0, value: EMPTY, lease: NO_LEASE } };
}
