/**
 * The etcd protos (proto/etcd) load with protobufjs and carry etcd v3.4.23's field numbers,
 * types, oneofs, enums and service method names (ETCD_WIRE_NOTES.md §1 and §3.1). A wrong number
 * here would silently break every real etcd client, so a sample is pinned field by field.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

function protoDirectory(): string {
  for (const candidate of [path.resolve(__dirname, '..', '..', 'proto', 'etcd'), path.resolve(__dirname, '..', '..', '..', 'proto', 'etcd')]) {
    if (fs.existsSync(path.join(candidate, 'rpc.proto'))) return candidate;
  }
  throw new Error('proto/etcd not found');
}

// keepCase: field names exactly as in the .proto (as @grpc/proto-loader is used with keepCase: true).
const root = new protobuf.Root().loadSync(path.join(protoDirectory(), 'rpc.proto'), { keepCase: true });

/** The name → number table of an enum, as a plain object. */
function enumValues(name: string): Record<string, number> {
  return { ...root.lookupEnum(name).values };
}

/** name → [id, type, repeated] for every field of a message. */
function fieldsOf(name: string): Record<string, [number, string, boolean]> {
  const type = root.lookupType(name);
  const result: Record<string, [number, string, boolean]> = {};
  for (const field of type.fieldsArray) result[field.name] = [field.id, field.type, field.repeated];
  return result;
}

test('mvccpb.KeyValue and Event match etcd', () => {
  assert.deepEqual(fieldsOf('mvccpb.KeyValue'), {
    key: [1, 'bytes', false],
    create_revision: [2, 'int64', false],
    mod_revision: [3, 'int64', false],
    version: [4, 'int64', false],
    value: [5, 'bytes', false],
    lease: [6, 'int64', false],
  });
  assert.deepEqual(fieldsOf('mvccpb.Event'), {
    type: [1, 'EventType', false],
    kv: [2, 'KeyValue', false],
    prev_kv: [3, 'KeyValue', false],
  });
  assert.deepEqual(enumValues('mvccpb.Event.EventType'), { PUT: 0, DELETE: 1 });
});

test('ResponseHeader, RangeRequest and RangeResponse match etcd', () => {
  assert.deepEqual(fieldsOf('etcdserverpb.ResponseHeader'), {
    cluster_id: [1, 'uint64', false],
    member_id: [2, 'uint64', false],
    revision: [3, 'int64', false],
    raft_term: [4, 'uint64', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.RangeRequest'), {
    key: [1, 'bytes', false],
    range_end: [2, 'bytes', false],
    limit: [3, 'int64', false],
    revision: [4, 'int64', false],
    sort_order: [5, 'SortOrder', false],
    sort_target: [6, 'SortTarget', false],
    serializable: [7, 'bool', false],
    keys_only: [8, 'bool', false],
    count_only: [9, 'bool', false],
    min_mod_revision: [10, 'int64', false],
    max_mod_revision: [11, 'int64', false],
    min_create_revision: [12, 'int64', false],
    max_create_revision: [13, 'int64', false],
  });
  assert.deepEqual(enumValues('etcdserverpb.RangeRequest.SortOrder'), { NONE: 0, ASCEND: 1, DESCEND: 2 });
  assert.deepEqual(enumValues('etcdserverpb.RangeRequest.SortTarget'), { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 });
  assert.deepEqual(fieldsOf('etcdserverpb.RangeResponse'), {
    header: [1, 'ResponseHeader', false],
    kvs: [2, 'mvccpb.KeyValue', true],
    more: [3, 'bool', false],
    count: [4, 'int64', false],
  });
});

test('Compare has the oneof target_union and range_end = 64; an explicit 0 survives a round trip', () => {
  assert.deepEqual(fieldsOf('etcdserverpb.Compare'), {
    result: [1, 'CompareResult', false],
    target: [2, 'CompareTarget', false],
    key: [3, 'bytes', false],
    version: [4, 'int64', false],
    create_revision: [5, 'int64', false],
    mod_revision: [6, 'int64', false],
    value: [7, 'bytes', false],
    lease: [8, 'int64', false],
    range_end: [64, 'bytes', false],
  });
  const compare = root.lookupType('etcdserverpb.Compare');
  assert.deepEqual(compare.oneofs['target_union']?.fieldsArray.map((field) => field.name), ['version', 'create_revision', 'mod_revision', 'value', 'lease']);
  assert.deepEqual(enumValues('etcdserverpb.Compare.CompareResult'), { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 });
  assert.deepEqual(enumValues('etcdserverpb.Compare.CompareTarget'), { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 });
  // Wire bytes of {target: CREATE, key: "k", create_revision: 0 (set)}: tag 2 varint 1, tag 3 "k", tag 5 varint 0.
  const bytes = compare.encode(compare.fromObject({ target: 1, key: Buffer.from('k'), create_revision: 0 })).finish();
  assert.deepEqual(Buffer.from(bytes), Buffer.from([0x10, 0x01, 0x1a, 0x01, 0x6b, 0x28, 0x00]));
  const decoded = compare.toObject(compare.decode(bytes), { oneofs: true, longs: String });
  assert.equal(decoded['target_union'], 'create_revision');
  assert.equal(decoded['create_revision'], '0');
});

test('RequestOp/ResponseOp, Put and DeleteRange match etcd', () => {
  assert.deepEqual(fieldsOf('etcdserverpb.RequestOp'), {
    request_range: [1, 'RangeRequest', false],
    request_put: [2, 'PutRequest', false],
    request_delete_range: [3, 'DeleteRangeRequest', false],
    request_txn: [4, 'TxnRequest', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.PutRequest'), {
    key: [1, 'bytes', false],
    value: [2, 'bytes', false],
    lease: [3, 'int64', false],
    prev_kv: [4, 'bool', false],
    ignore_value: [5, 'bool', false],
    ignore_lease: [6, 'bool', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.DeleteRangeResponse'), {
    header: [1, 'ResponseHeader', false],
    deleted: [2, 'int64', false],
    prev_kvs: [3, 'mvccpb.KeyValue', true],
  });
});

test('WatchRequest, WatchCreateRequest and WatchResponse match etcd', () => {
  assert.deepEqual(fieldsOf('etcdserverpb.WatchRequest'), {
    create_request: [1, 'WatchCreateRequest', false],
    cancel_request: [2, 'WatchCancelRequest', false],
    progress_request: [3, 'WatchProgressRequest', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.WatchCreateRequest'), {
    key: [1, 'bytes', false],
    range_end: [2, 'bytes', false],
    start_revision: [3, 'int64', false],
    progress_notify: [4, 'bool', false],
    filters: [5, 'FilterType', true],
    prev_kv: [6, 'bool', false],
    watch_id: [7, 'int64', false],
    fragment: [8, 'bool', false],
  });
  assert.deepEqual(enumValues('etcdserverpb.WatchCreateRequest.FilterType'), { NOPUT: 0, NODELETE: 1 });
  assert.deepEqual(fieldsOf('etcdserverpb.WatchResponse'), {
    header: [1, 'ResponseHeader', false],
    watch_id: [2, 'int64', false],
    created: [3, 'bool', false],
    canceled: [4, 'bool', false],
    compact_revision: [5, 'int64', false],
    cancel_reason: [6, 'string', false],
    fragment: [7, 'bool', false],
    events: [11, 'mvccpb.Event', true],
  });
});

test('StatusResponse, Member and MemberAdd match etcd', () => {
  assert.deepEqual(fieldsOf('etcdserverpb.StatusResponse'), {
    header: [1, 'ResponseHeader', false],
    version: [2, 'string', false],
    dbSize: [3, 'int64', false],
    leader: [4, 'uint64', false],
    raftIndex: [5, 'uint64', false],
    raftTerm: [6, 'uint64', false],
    raftAppliedIndex: [7, 'uint64', false],
    errors: [8, 'string', true],
    dbSizeInUse: [9, 'int64', false],
    isLearner: [10, 'bool', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.Member'), {
    ID: [1, 'uint64', false],
    name: [2, 'string', false],
    peerURLs: [3, 'string', true],
    clientURLs: [4, 'string', true],
    isLearner: [5, 'bool', false],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.MemberAddRequest'), { peerURLs: [1, 'string', true], isLearner: [2, 'bool', false] });
  assert.deepEqual(fieldsOf('etcdserverpb.MemberAddResponse'), {
    header: [1, 'ResponseHeader', false],
    member: [2, 'Member', false],
    members: [3, 'Member', true],
  });
  assert.deepEqual(fieldsOf('etcdserverpb.SnapshotResponse'), {
    header: [1, 'ResponseHeader', false],
    remaining_bytes: [2, 'uint64', false],
    blob: [3, 'bytes', false],
  });
});

test('services carry etcd 3.4 method names and streaming shapes', () => {
  const methods = (name: string): string[] =>
    root.lookupService(name).methodsArray.map((method) => `${method.name}${method.requestStream ? ' <stream' : ''}${method.responseStream ? ' stream>' : ''}`);
  assert.deepEqual(methods('etcdserverpb.KV'), ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']);
  assert.deepEqual(methods('etcdserverpb.Watch'), ['Watch <stream stream>']);
  assert.deepEqual(methods('etcdserverpb.Lease'), ['LeaseGrant', 'LeaseRevoke', 'LeaseKeepAlive <stream stream>', 'LeaseTimeToLive', 'LeaseLeases']);
  assert.deepEqual(methods('etcdserverpb.Cluster'), ['MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberList', 'MemberPromote']);
  assert.deepEqual(methods('etcdserverpb.Maintenance'), ['Alarm', 'Status', 'Defragment', 'Hash', 'HashKV', 'Snapshot stream>', 'MoveLeader']);
  assert.deepEqual(fieldsOf('etcdserverpb.LeaseKeepAliveResponse'), { header: [1, 'ResponseHeader', false], ID: [2, 'int64', false], TTL: [3, 'int64', false] });
});
