/**
 * The normaliser and the step comparison on hand-made etcdctl outputs (no processes): they
 * must neutralise what legitimately differs between two servers (IDs, terms, lease IDs,
 * timings, watch batching) and must still REPORT what may not differ (revisions, values,
 * exit codes, nested header fields). A checker that cannot fail proves nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EtcdctlResult } from './etcdctl-runner';
import { countJsonWatchEvents, parseJsonLines, quoteLargeIntegers } from './etcdctl-runner';
import { OutputNormaliser } from './output-normaliser';
import { compareRuns, diffValues, formatDifferences, type RecordedStep } from './step-comparison';

function result(args: readonly string[], stdout: string, stderr = '', exitCode = 0): EtcdctlResult {
  return { args, stdin: undefined, stdout, stderr, exitCode, signal: null, timedOut: false };
}

const putJsonFromServerA =
  '{"header":{"cluster_id":5298435163934787985,"member_id":8645782499530242234,"revision":7,"raft_term":2},"prev_kv":{"key":"aw==","create_revision":2,"mod_revision":3,"version":2,"value":"djI="}}\n';
const putJsonFromServerB =
  '{"header":{"cluster_id":11,"member_id":12058485398423513857,"revision":7,"raft_term":5},"prev_kv":{"key":"aw==","create_revision":2,"mod_revision":3,"version":2,"value":"djI="}}\n';

describe('etcdctl output normaliser', () => {
  it('keeps uint64 digits when parsing JSON (cluster IDs exceed 2^53)', () => {
    assert.equal(quoteLargeIntegers('{"a":10386079443273509696,"b":7,"c":"9999999999999999999"}'), '{"a":"10386079443273509696","b":7,"c":"9999999999999999999"}');
    assert.deepEqual(parseJsonLines('{"x":18446744073709551615}\n\n{"x":1}\n'), [{ x: '18446744073709551615' }, { x: 1 }]);
  });

  it('replaces cluster_id, member_id and raft_term but keeps revisions, in JSON and in -w fields', () => {
    const outputA = new OutputNormaliser().normalise(result(['put', 'k', 'v', '--prev-kv', '-w', 'json'], putJsonFromServerA));
    const outputB = new OutputNormaliser().normalise(result(['put', 'k', 'v', '--prev-kv', '-w', 'json'], putJsonFromServerB));
    assert.deepEqual(diffValues(outputA, outputB), []);
    assert.deepEqual(outputA.stdout, {
      format: 'json',
      documents: [
        {
          header: { cluster_id: '<cluster-id>', member_id: '<member-id>', revision: 7, raft_term: '<raft-term>' },
          prev_kv: { key: 'utf8:k', create_revision: 2, mod_revision: 3, version: 2, value: 'utf8:v2' },
        },
      ],
    });
    const fields = new OutputNormaliser().normalise(result(['txn', '-w', 'fields'], '"ClusterID" : 5298435163934787985\n"Revision" : 23\n"ClusterID" : 0\n"RaftTerm" : 0\n'));
    assert.deepEqual(fields.stdout, { format: 'text', lines: ['"ClusterID" : <cluster-id>', '"Revision" : 23', '"ClusterID" : 0', '"RaftTerm" : 0'] });
  });

  it('reports a revision drift, a value change and a filled nested header', () => {
    const outputA = new OutputNormaliser().normalise(result(['put', 'k', 'v', '--prev-kv', '-w', 'json'], putJsonFromServerA));
    const drifted = putJsonFromServerB.replace('"revision":7', '"revision":8').replace('"value":"djI="', '"value":"djM="');
    const outputB = new OutputNormaliser().normalise(result(['put', 'k', 'v', '--prev-kv', '-w', 'json'], drifted));
    assert.deepEqual(
      diffValues(outputA, outputB).map((difference) => difference.path),
      ['stdout.documents[0].header.revision', 'stdout.documents[0].prev_kv.value'],
    );
    // etcd leaves nested Txn headers empty (ClusterID 0); a server that fills them differs.
    const nestedA = new OutputNormaliser().normalise(result(['txn', '-w', 'fields'], '"ClusterID" : 0\n'));
    const nestedB = new OutputNormaliser().normalise(result(['txn', '-w', 'fields'], '"ClusterID" : 77\n'));
    assert.equal(diffValues(nestedA, nestedB).length, 1);
  });

  it('numbers lease IDs by first appearance across hex text, decimal JSON and command lines', () => {
    const normaliser = new OutputNormaliser();
    const grant = normaliser.normalise(result(['lease', 'grant', '60'], 'lease 694d7b5d1a5b1f0a granted with TTL(60s)\n'));
    assert.deepEqual(grant.stdout, { format: 'text', lines: ['lease <lease-1> granted with TTL(60s)'] });
    const put = normaliser.normalise(result(['put', 'k', 'v', '--lease=694d7b5d1a5b1f0a'], 'OK\n'));
    assert.equal(put.command, 'etcdctl put k v --lease=<lease-1>');
    const decimal = BigInt('0x694d7b5d1a5b1f0a').toString();
    const get = normaliser.normalise(result(['get', 'k', '-w', 'json'], `{"kvs":[{"key":"aw==","lease":${decimal}}]}\n`));
    assert.deepEqual(get.stdout, { format: 'json', documents: [{ kvs: [{ key: 'utf8:k', lease: '<lease-1>' }] }] });
    const second = normaliser.normalise(result(['lease', 'grant', '60'], 'lease 0000000000000002 granted with TTL(60s)\n'));
    assert.deepEqual(second.stdout, { format: 'text', lines: ['lease <lease-2> granted with TTL(60s)'] });
  });

  it('windows the remaining TTL of lease timetolive below the granted TTL, and keeps everything else', () => {
    const timeToLive = (remaining: number, granted = 100, keys = '') =>
      new OutputNormaliser().normalise(result(['lease', 'timetolive', '694d7b5d1a5b1f0a', '--keys'], `lease 694d7b5d1a5b1f0a granted with TTL(${granted}s), remaining(${remaining}s)${keys}\n`));
    assert.deepEqual(diffValues(timeToLive(99), timeToLive(92)), [], 'a few seconds of countdown are not a difference');
    assert.deepEqual(timeToLive(99).stdout, { format: 'text', lines: ['lease <lease-1> granted with TTL(100s), remaining(<granted minus 0..10s>)'] });
    assert.equal(diffValues(timeToLive(99), timeToLive(80)).length, 1, 'far below the granted TTL is reported');
    assert.equal(diffValues(timeToLive(99), timeToLive(101)).length, 1, 'above the granted TTL is reported');
    assert.equal(diffValues(timeToLive(99), timeToLive(99, 60)).length, 1, 'the granted TTL is compared exactly');
    // Attached keys come from a Go map in etcd: their order is not compared, the keys are.
    assert.deepEqual(diffValues(timeToLive(99, 100, ', attached keys([b a])'), timeToLive(98, 100, ', attached keys([a b])')), []);
    assert.equal(diffValues(timeToLive(99, 100, ', attached keys([a b])'), timeToLive(99, 100, ', attached keys([a c])')).length, 1);

    const json = (remaining: number, granted: number, keys: string) =>
      new OutputNormaliser().normalise(
        result(['lease', 'timetolive', '694d7b5d1a5b1f0a', '--keys', '-w', 'json'], `{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4,"id":7587883494367879946,"ttl":${remaining},"granted-ttl":${granted},"keys":${keys}}\n`),
      );
    assert.deepEqual(json(97, 100, '["YQ==","Yg=="]').stdout, {
      format: 'json',
      documents: [{ cluster_id: '<cluster-id>', member_id: '<member-id>', revision: 3, raft_term: '<raft-term>', id: '<lease-1>', ttl: '<granted minus 0..10s>', 'granted-ttl': 100, keys: ['utf8:a', 'utf8:b'] }],
    });
    assert.deepEqual(diffValues(json(97, 100, '["Yg==","YQ=="]'), json(99, 100, '["YQ==","Yg=="]')), []);
    // An unknown lease prints ttl -1, granted-ttl 0: that is a fact, not a countdown.
    assert.equal((json(-1, 0, 'null').stdout as { documents: Array<{ ttl: unknown }> }).documents[0]?.ttl, -1);
    assert.equal(diffValues(json(-1, 0, 'null'), json(0, 0, 'null')).length, 1);
  });

  it('replaces only the target\'s own minimum lease TTL, and only when asked', () => {
    const grantOne = (ttlSeconds: number) => result(['lease', 'grant', '1'], `lease 694d7b5d1a5b1f0a granted with TTL(${ttlSeconds}s)\n`);
    const etcdSide = new OutputNormaliser();
    const raftkvSide = new OutputNormaliser();
    const etcdOutput = etcdSide.replaceMinimumLeaseTtl(etcdSide.normalise(grantOne(2)), 2);
    const raftkvOutput = raftkvSide.replaceMinimumLeaseTtl(raftkvSide.normalise(grantOne(1)), 1);
    assert.deepEqual(diffValues(etcdOutput, raftkvOutput), []);
    assert.deepEqual(etcdOutput.stdout, { format: 'text', lines: ['lease <lease-1> granted with TTL(<minimum lease TTL>)'] });
    // A server that did not raise the TTL to its own minimum still differs.
    const notRaised = new OutputNormaliser();
    assert.equal(diffValues(etcdOutput, notRaised.replaceMinimumLeaseTtl(notRaised.normalise(grantOne(1)), 2)).length, 1);
    // Without the request, the TTL stays a number.
    assert.deepEqual(new OutputNormaliser().normalise(grantOne(2)).stdout, { format: 'text', lines: ['lease <lease-1> granted with TTL(2s)'] });
    const jsonSide = new OutputNormaliser();
    const json = jsonSide.normalise(result(['lease', 'grant', '1', '-w', 'json'], '{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4,"ID":7587883494367879946,"TTL":2,"Error":""}\n'));
    assert.deepEqual((jsonSide.replaceMinimumLeaseTtl(json, 2).stdout as { documents: Array<{ TTL: unknown }> }).documents[0]?.TTL, '<minimum lease TTL>');
    assert.deepEqual((jsonSide.replaceMinimumLeaseTtl(json, 1).stdout as { documents: Array<{ TTL: unknown }> }).documents[0]?.TTL, 2);
  });

  it('drops timings and client log noise but keeps error text and exit codes', () => {
    const stderr =
      '{"level":"warn","ts":"2026-11-21T10:38:39.851Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-0aaab187/127.0.0.1:23791","attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}\nError: etcdserver: key is not provided\n';
    const output = new OutputNormaliser().normalise(result(['put', '', 'x'], '', stderr, 1));
    assert.equal(output.exit, 'exit 1');
    assert.deepEqual(output.stderr, [
      '{"level":"warn","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}',
      'Error: etcdserver: key is not provided',
    ]);
    const health = new OutputNormaliser().normalise(result(['endpoint', 'health'], '127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.507899ms\n'));
    assert.deepEqual(health.stdout, { format: 'text', lines: ['127.0.0.1:2379 is healthy: successfully committed proposal: took = <duration>'] });
  });

  it('flattens watch batches: one response with two events equals two responses with one each', () => {
    const header = '"Header":{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3}';
    const eventOne = '{"kv":{"key":"YQ==","mod_revision":2}}';
    const eventTwo = '{"type":1,"kv":{"key":"YQ==","mod_revision":3}}';
    const batched = `{${header},"Events":[${eventOne},${eventTwo}],"CompactRevision":0,"Canceled":false,"Created":false}\n`;
    const separate = `{${header},"Events":[${eventOne}],"CompactRevision":0,"Canceled":false,"Created":false}\n{${header.replace('9', '10')},"Events":[${eventTwo}],"CompactRevision":0,"Canceled":false,"Created":false}\n`;
    const args = ['watch', 'a', '-w', 'json'];
    assert.deepEqual(diffValues(new OutputNormaliser().normalise(result(args, batched)), new OutputNormaliser().normalise(result(args, separate))), []);
    assert.equal(countJsonWatchEvents(separate), 2);
    assert.equal(countJsonWatchEvents(`${separate}{"Events":[`), 2, 'an unfinished line is not counted');
    const reordered = `{${header},"Events":[${eventTwo},${eventOne}]}\n`;
    assert.equal(diffValues(new OutputNormaliser().normalise(result(args, batched)), new OutputNormaliser().normalise(result(args, reordered))).length > 0, true);
  });

  it('compareRuns names the differing step and field, and reports missing steps', () => {
    const step = (index: number, name: string, lines: string[]): RecordedStep => ({
      index,
      name,
      output: { command: `etcdctl ${name}`, exit: 'exit 0', stdout: { format: 'text', lines }, stderr: [] },
    });
    const runA = [step(1, 'put k', ['OK']), step(2, 'del k', ['1'])];
    const runB = [step(1, 'put k', ['OK']), step(2, 'del k', ['0'])];
    const differences = compareRuns(runA, runB);
    assert.deepEqual(
      differences.map((difference) => [difference.index, difference.name, difference.fields.map((field) => field.path)]),
      [[2, 'del k', ['stdout.lines[0]']]],
    );
    assert.match(formatDifferences(differences, 'etcd', 'raftkv', 2), /step 2 "del k".*\n {2}stdout\.lines\[0\]: A="1" B="0"/);
    assert.equal(compareRuns(runA, runA.slice(0, 1)).length, 1);
  });
});
