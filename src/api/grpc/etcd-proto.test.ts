/**
 * The run-time etcd proto codecs: 64-bit values round-trip exactly (cluster_id above 2^53, lease
 * IDs, negative watch ids), oneof presence survives (an explicitly set 0), the gateway decode
 * keeps only the Compare member matching the target, and the service definitions carry etcd's
 * method paths and stream flags.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { encodedSizeBytes, etcdServiceDefinition, int64BigIntField, messageCodec } from './etcd-proto';
import { decodeCompare, decodePutRequest, decodeRequestOp } from './kv-codec';
import { CompareTarget } from '../../mvcc/types';

test('uint64 and int64 fields round-trip without loss', () => {
  const header = messageCodec('etcdserverpb.ResponseHeader');
  const bytes = header.encode({ cluster_id: 10386079443273509696n, member_id: '18446744073709551615', revision: 42, raft_term: 7 });
  assert.deepEqual({ ...header.decode(bytes) }, { cluster_id: '10386079443273509696', member_id: '18446744073709551615', revision: '42', raft_term: '7' });
  const watch = messageCodec('etcdserverpb.WatchResponse');
  assert.equal(watch.decode(watch.encode({ watch_id: -1 }))['watch_id'], '-1');
  const put = messageCodec('etcdserverpb.PutRequest');
  const decoded = put.decode(put.encode({ key: Buffer.from('k'), lease: 7587862342341525889n }));
  assert.equal(int64BigIntField(decoded, 'lease'), 7587862342341525889n);
  assert.equal(decodePutRequest(decoded).lease, 7587862342341525889n);
  assert.equal(encodedSizeBytes(decoded), put.encode({ key: Buffer.from('k'), lease: 7587862342341525889n }).length);
});

test('oneof presence: an explicitly set 0 is kept; a member not matching the target is ignored', () => {
  const compare = messageCodec('etcdserverpb.Compare');
  const explicitZero = compare.decode(compare.encode({ key: Buffer.from('k'), target: CompareTarget.Create, create_revision: 0 }));
  assert.equal(explicitZero['target_union'], 'create_revision');
  assert.equal(decodeCompare(explicitZero).createRevision, 0);
  const absent = compare.decode(compare.encode({ key: Buffer.from('k'), target: CompareTarget.Create }));
  assert.equal(absent['target_union'], undefined);
  assert.equal(decodeCompare(absent).createRevision, undefined);
  const mismatched = compare.decode(compare.encode({ key: Buffer.from('k'), target: CompareTarget.Mod, version: 3 }));
  assert.equal(decodeCompare(mismatched).modRevision, undefined);
  assert.equal(decodeCompare(mismatched).version, undefined);
  const operation = messageCodec('etcdserverpb.RequestOp');
  assert.deepEqual(decodeRequestOp(operation.decode(operation.encode({}))), { kind: 'empty' });
  assert.equal(decodeRequestOp(operation.decode(operation.encode({ request_put: {} }))).kind, 'put');
});

test('service definitions use etcd paths and stream flags', () => {
  const kv = etcdServiceDefinition('KV');
  assert.deepEqual(Object.keys(kv), ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']);
  assert.equal(kv['Range']!.path, '/etcdserverpb.KV/Range');
  assert.equal(kv['Range']!.requestStream, false);
  const watch = etcdServiceDefinition('Watch')['Watch']!;
  assert.equal(watch.path, '/etcdserverpb.Watch/Watch');
  assert.equal(watch.requestStream && watch.responseStream, true);
  assert.equal(etcdServiceDefinition('Lease')['LeaseKeepAlive']!.path, '/etcdserverpb.Lease/LeaseKeepAlive');
});
