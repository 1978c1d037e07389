/**
 * Differential check against a REAL etcd 3.4 (/usr/bin/etcd, started by this test on free
 * 127.0.0.1 ports): the same sequence of raw KV requests is sent to etcd and to raftkv's server,
 * and the outcomes are compared field by field — responses (with absent/present fields) and
 * errors (code and exact message).
 *
 * Normalised, and why: cluster_id, member_id and raft_term differ by nature, so only their
 * presence is compared. Everything else is compared exactly, revisions included: both stores start
 * at revision 1, so the k-th write is revision k + 1 on both (checked by the first test), and the
 * revisions written in requests below are etcd's own numbers.
 * Skipped, with a message, when /usr/bin/etcd is not installed.
 */
import { test, after, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { bytes, callUnary, rawClient, startTestServer, WatchStreamProbe, type RawClient, type TestServer, type UnaryOutcome } from './test-support';
import type { ProtoObject } from './etcd-proto';

const ETCD_BINARY = '/usr/bin/etcd';
const etcdMissing = !fs.existsSync(ETCD_BINARY);
const skip = etcdMissing ? `${ETCD_BINARY} is not installed: the differential check against a real etcd is skipped` : false;

/** One server under comparison. */
interface Target {
  readonly name: string;
  readonly kv: RawClient;
  readonly watch: RawClient;
}

let etcdProcess: ChildProcess | undefined;
let etcdDirectory: string | undefined;
let ours: TestServer | undefined;
const targets: Target[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address() as net.AddressInfo;
      probe.close(() => resolve(address.port));
    });
  });
}

before(async () => {
  if (etcdMissing) return;
  etcdDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-etcd-differential-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  etcdProcess = spawn(
    ETCD_BINARY,
    [
      '--data-dir', path.join(etcdDirectory, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
    ],
    { stdio: 'ignore' },
  );
  const etcdKv = rawClient('KV', `127.0.0.1:${clientPort}`);
  let ready = false;
  const deadline = Date.now() + 20_000;
  while (!ready && Date.now() < deadline) {
    ready = (await callUnary(etcdKv, 'Range', { key: bytes('ready') })).ok;
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(ready, 'etcd did not become ready within 20 s');
  ours = await startTestServer();
  targets.push(
    { name: 'etcd', kv: etcdKv, watch: rawClient('Watch', `127.0.0.1:${clientPort}`) },
    { name: 'raftkv', kv: rawClient('KV', ours.address), watch: rawClient('Watch', ours.address) },
  );
});

after(async () => {
  for (const target of targets) {
    target.kv.close();
    target.watch.close();
  }
  await ours?.close();
  if (etcdProcess !== undefined && etcdProcess.exitCode === null) {
    const exited = new Promise((resolve) => etcdProcess!.once('exit', resolve));
    etcdProcess.kill('SIGTERM');
    await exited;
  }
  if (etcdDirectory !== undefined) fs.rmSync(etcdDirectory, { recursive: true, force: true });
});

const IDENTITY_FIELDS = new Set(['cluster_id', 'member_id', 'raft_term']);

/** Masks the identity fields of a response (only their presence is compared); the rest is kept as is. */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => normalise(item));
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const result: ProtoObject = {};
  for (const [field, fieldValue] of Object.entries(value)) {
    result[field] = IDENTITY_FIELDS.has(field) ? '<present>' : normalise(fieldValue);
  }
  return result;
}

/** Sends the same request to every target and asserts the normalised outcomes are equal. */
async function same(method: string, request: ProtoObject, label: string): Promise<UnaryOutcome> {
  const outcomes: unknown[] = [];
  let last: UnaryOutcome | undefined;
  for (const target of targets) {
    const outcome = await callUnary(target.kv, method, request);
    last = outcome;
    outcomes.push(outcome.ok ? { ok: true, response: normalise(outcome.response) } : outcome);
  }
  assert.deepEqual(outcomes[1], outcomes[0], `${label}: raftkv differs from etcd`);
  return last!;
}

test('fresh stores agree: both are at revision 1, and compacting at it is allowed once', { skip }, async () => {
  const fresh = await same('Range', { key: bytes('anything') }, 'fresh store');
  assert.ok(fresh.ok);
  assert.equal((fresh.response['header'] as ProtoObject)['revision'], '1', 'an empty store is at revision 1');
  const compacted = await same('Compact', { revision: 1 }, 'compact a fresh store at its current revision');
  assert.ok(compacted.ok);
  const again = await same('Compact', { revision: 1 }, 'compact a fresh store at its current revision again');
  assert.ok(!again.ok);
});

test('puts and ranges with every option agree with etcd', { skip }, async () => {
  // Writes 1..9 (revisions 2..10): distinct versions, values, create and mod revisions (no sort ties).
  await same('Put', { key: bytes('k/a'), value: bytes('3') }, 'put 1');
  await same('Put', { key: bytes('k/b'), value: bytes('1') }, 'put 2');
  await same('Put', { key: bytes('k/b'), value: bytes('5'), prev_kv: true }, 'put 3 prev_kv');
  await same('Put', { key: bytes('k/c'), value: bytes('2') }, 'put 4');
  await same('Put', { key: bytes('k/c'), value: bytes('4') }, 'put 5');
  await same('Put', { key: bytes('k/c'), value: bytes('0'), prev_kv: true }, 'put 6 prev_kv');
  await same('Put', { key: bytes('foo'), value: bytes('x') }, 'put 7');
  await same('Put', { key: bytes('fop'), value: bytes('y') }, 'put 8');
  await same('Put', { key: bytes('k/a'), value: bytes('9') }, 'put 9');
  const prefix = { key: bytes('k/'), range_end: bytes('k0') };
  await same('Range', { key: bytes('k/a') }, 'single key');
  await same('Range', { key: bytes('nothing') }, 'missing key');
  await same('Range', prefix, 'prefix');
  await same('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]) }, 'from-key all');
  await same('Range', { key: bytes('foo'), range_end: Buffer.from([0]) }, 'from foo');
  await same('Range', { ...prefix, limit: 2 }, 'limit');
  await same('Range', { ...prefix, limit: 5 }, 'limit above count');
  for (const target of [0, 1, 2, 3, 4]) {
    for (const order of [0, 1, 2]) {
      await same('Range', { ...prefix, sort_target: target, sort_order: order }, `sort target ${target} order ${order}`);
      await same('Range', { ...prefix, sort_target: target, sort_order: order, limit: 1 }, `sort target ${target} order ${order} limit 1`);
    }
  }
  await same('Range', { ...prefix, keys_only: true }, 'keys_only');
  await same('Range', { ...prefix, count_only: true }, 'count_only');
  await same('Range', { ...prefix, count_only: true, limit: 1 }, 'count_only with limit');
  await same('Range', { ...prefix, min_mod_revision: 6 }, 'min_mod_revision');
  await same('Range', { ...prefix, max_mod_revision: 6 }, 'max_mod_revision');
  await same('Range', { ...prefix, min_create_revision: 3 }, 'min_create_revision');
  await same('Range', { ...prefix, max_create_revision: 3, limit: 1 }, 'max_create_revision with limit');
  await same('Range', { ...prefix, revision: 5 }, 'past revision');
  await same('Range', { ...prefix, revision: 5, sort_order: 2, sort_target: 3 }, 'past revision sorted');
  await same('Range', { ...prefix, revision: 101 }, 'future revision');
  await same('Range', { range_end: bytes('z') }, 'empty key');
});

test('deletes, txns and their errors agree with etcd', { skip }, async () => {
  await same('DeleteRange', { key: bytes('missing') }, 'delete missing');
  await same('DeleteRange', { key: bytes('fo'), range_end: bytes('fp'), prev_kv: true }, 'delete range prev_kv'); // write 10 = revision 11
  await same('DeleteRange', {}, 'delete empty key');
  const put = (key: string, value: string) => ({ request_put: { key: bytes(key), value: bytes(value) } });
  const range = (key: string) => ({ request_range: { key: bytes(key) } });
  await same('Txn', {}, 'empty txn');
  await same('Txn', { success: [range('k/a')] }, 'read-only txn');
  await same(
    'Txn',
    {
      compare: [
        { key: bytes('k/a'), target: 0, result: 0, version: 2 },
        { key: bytes('k/b'), target: 2, result: 1, mod_revision: 2 },
        { key: bytes('k/c'), target: 3, result: 3, value: bytes('zzz') },
        { key: bytes('k/'), range_end: bytes('k0'), target: 1, result: 2, create_revision: 101 },
      ],
      success: [put('t/1', 'a'), range('t/1'), { request_delete_range: { key: bytes('k/a'), prev_kv: true } }, { request_txn: { success: [range('k/b')] } }],
      failure: [range('k/a')],
    },
    'txn success path', // write 11 = revision 12
  );
  await same(
    'Txn',
    { compare: [{ key: bytes('absent'), target: 1, result: 0, create_revision: 1 }], success: [put('never', '1')], failure: [range('k/b'), put('t/2', 'b')] },
    'txn failure path', // write 12 = revision 13
  );
  await same('Txn', { compare: [{ key: bytes('absent'), target: 1, result: 0, create_revision: 0 }], success: [range('absent')] }, 'explicit zero create_revision');
  await same('Txn', { compare: [{ key: bytes('absent'), target: 3, result: 0, value: bytes('') }] }, 'value compare on a missing key');
  await same('Txn', { success: Array.from({ length: 129 }, (_, index) => range(`x${index}`)) }, 'too many operations');
  await same('Txn', { success: Array.from({ length: 128 }, (_, index) => range(`x${index}`)) }, '128 operations');
  await same('Txn', { success: [put('d', '1'), put('d', '2')] }, 'duplicate put');
  await same('Txn', { success: [{ request_delete_range: { key: bytes('d'), range_end: bytes('e') } }, put('d1', '2')] }, 'put in deleted range');
  await same('Txn', { success: [{}] }, 'empty request op');
  await same('Txn', { compare: [{ target: 0, result: 0 }] }, 'compare with empty key');
  await same('Txn', { success: [{ request_range: { key: bytes('k/b'), revision: 101 } }] }, 'txn range future revision');
  await same('Put', { key: bytes('nokey'), ignore_value: true }, 'ignore_value on a missing key');
  await same('Put', { key: bytes('k/b'), value: bytes('v'), ignore_value: true }, 'ignore_value with a value');
  await same('Put', { key: bytes('k/b'), ignore_value: true, prev_kv: true }, 'ignore_value keeps the value'); // write 13 = revision 14
});

test('compaction and reads around it agree with etcd', { skip }, async () => {
  await same('Compact', { revision: 101 }, 'compact future');
  await same('Compact', { revision: 6, physical: true }, 'compact');
  await same('Compact', { revision: 6 }, 'compact again');
  await same('Compact', { revision: 4 }, 'compact below');
  await same('Range', { key: bytes('k/'), range_end: bytes('k0'), revision: 5 }, 'range below compaction');
  await same('Range', { key: bytes('k/'), range_end: bytes('k0'), revision: 6 }, 'range at compaction');
  await same('Txn', { success: [{ request_range: { key: bytes('k/b'), revision: 5 } }] }, 'txn range below compaction');
});

test('watch streams agree with etcd: history replay with prev_kv, compacted start, ids, cancel, progress', { skip }, async () => {
  const probes = targets.map((target) => new WatchStreamProbe(target.watch));
  try {
    /** Sends the same request on both streams and compares the next `count` responses. */
    const exchange = async (request: ProtoObject | undefined, count: number, label: string) => {
      const seen: unknown[][] = [];
      for (const probe of probes) {
        if (request !== undefined) probe.send(request);
        const responses: unknown[] = [];
        for (let taken = 0; taken < count; taken += 1) responses.push(normalise(await probe.next()));
        seen.push(responses);
      }
      assert.deepEqual(seen[1], seen[0], `${label}: raftkv differs from etcd`);
    };
    await exchange({ create_request: { key: bytes('k/'), range_end: bytes('k0'), start_revision: 7, prev_kv: true } }, 2, 'history replay');
    await exchange({ create_request: { key: bytes('k/b'), start_revision: 3 } }, 2, 'compacted start');
    await exchange({ create_request: { key: bytes('w'), watch_id: 7 } }, 1, 'client-chosen id');
    await exchange({ create_request: { key: bytes('w'), watch_id: 7 } }, 1, 'duplicate id');
    await exchange({ create_request: { key: bytes('w'), range_end: bytes('a') } }, 1, 'empty range');
    await exchange({ create_request: {} }, 1, 'empty key, automatic id');
    await exchange({ cancel_request: { watch_id: 7 } }, 1, 'cancel');
    for (const probe of probes) probe.send({ cancel_request: { watch_id: 99 } });
    await exchange({ progress_request: {} }, 1, 'unknown cancel is silent; progress');
    await same('Put', { key: bytes('k/z'), value: bytes('live') }, 'live put');
    await exchange(undefined, 1, 'live event (the empty-key watcher watches only "\\0")');
  } finally {
    for (const probe of probes) probe.call.end();
  }
});
