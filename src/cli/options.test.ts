/** Tests of node-mode flag parsing: raftexample's defaults, both flag forms, every validation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { type NodeOptions, parseDurationMs, parseNodeOptions } from './options';

const CLUSTER = 'http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379';

/** Parses `argv`, asserting success. */
function parse(argv: string[]): NodeOptions {
  const result = parseNodeOptions(argv);
  if (!result.ok) assert.fail(`expected ${JSON.stringify(argv)} to parse, got: ${result.message}`);
  return result.options;
}

/** Parses `argv`, asserting a usage error (exit code 2, one line) that matches `pattern`. */
function parseError(argv: string[], pattern: RegExp): string {
  const result = parseNodeOptions(argv);
  if (result.ok) assert.fail(`expected ${JSON.stringify(argv)} to be refused`);
  assert.equal(result.exitCode, 2);
  assert.doesNotMatch(result.message, /\n/, 'usage errors are one line');
  assert.match(result.message, /^error: /);
  assert.match(result.message, pattern);
  return result.message;
}

describe('defaults', () => {
  it('match raftexample for its flags and the documented values for the rest', () => {
    assert.deepEqual(parse([]), {
      id: 1n,
      cluster: ['http://127.0.0.1:9021'],
      port: 9121,
      httpHost: undefined,
      etcdPort: 2379,
      etcdHost: undefined,
      maxTxnOperations: 128,
      join: false,
      dataDir: path.resolve('raftkv-1'),
      snapshotCount: 10000,
      tickMs: 100,
      electionTicks: 10,
      heartbeatTicks: 1,
      maxRequestBytes: 1572864,
      requestTimeoutMs: 5000,
      readMode: 'readindex',
      clusterToken: 'raftkv-cluster',
      listenPeer: { host: '127.0.0.1', port: 9021 },
      logLevel: 'info',
      name: 'raftkv-1',
      advertiseClientUrls: ['127.0.0.1:2379'],
      quotaBackendBytes: 2147483648,
    });
  });

  it('--name, --advertise-client-urls (with or without a scheme) and --quota-backend-bytes', () => {
    const options = parse(['--name', 'alpha', '--advertise-client-urls', 'http://10.0.0.1:2379,10.0.0.2:2379', '--quota-backend-bytes', '1048576']);
    assert.equal(options.name, 'alpha');
    assert.deepEqual(options.advertiseClientUrls, ['http://10.0.0.1:2379', '10.0.0.2:2379']);
    assert.equal(options.quotaBackendBytes, 1048576);
    assert.deepEqual(parse(['--etcd-host', '127.0.0.2', '--etcd-port', '3379']).advertiseClientUrls, ['127.0.0.2:3379']);
    const bad = parseNodeOptions(['--advertise-client-urls', 'http://x']);
    assert.equal(bad.ok, false);
  });

  it('the data directory and the peer listener follow --id', () => {
    const options = parse(['--id', '2', '--cluster', CLUSTER, '--port', '22380']);
    assert.equal(options.id, 2n);
    assert.equal(options.dataDir, path.join(process.cwd(), 'raftkv-2'));
    assert.deepEqual(options.listenPeer, { host: '127.0.0.1', port: 22379 });
    assert.equal(options.port, 22380);
  });
});

describe('flag forms', () => {
  it('accepts --flag value and --flag=value alike', () => {
    const spaced = parse(['--id', '2', '--cluster', CLUSTER, '--request-timeout', '500ms', '--read-mode', 'lease']);
    const joined = parse(['--id=2', `--cluster=${CLUSTER}`, '--request-timeout=500ms', '--read-mode=lease']);
    assert.deepEqual(joined, spaced);
    assert.equal(joined.requestTimeoutMs, 500);
    assert.equal(joined.readMode, 'lease');
  });

  it('parses every flag', () => {
    const options = parse([
      '--id=3',
      `--cluster=${CLUSTER}`,
      '--port=32380',
      '--http-host=127.0.0.1',
      '--data-dir=/tmp/raftkv-three',
      '--snapshot-count=50',
      '--tick-ms=20',
      '--election-ticks=20',
      '--heartbeat-ticks=2',
      '--max-request-bytes=4096',
      '--request-timeout=2s',
      '--cluster-token=test-token',
      '--listen-peer=0.0.0.0:32379',
      '--log-level=debug',
    ]);
    assert.equal(options.httpHost, '127.0.0.1');
    assert.equal(options.dataDir, '/tmp/raftkv-three');
    assert.equal(options.snapshotCount, 50);
    assert.equal(options.tickMs, 20);
    assert.equal(options.electionTicks, 20);
    assert.equal(options.heartbeatTicks, 2);
    assert.equal(options.maxRequestBytes, 4096);
    assert.equal(options.requestTimeoutMs, 2000);
    assert.equal(options.clusterToken, 'test-token');
    assert.deepEqual(options.listenPeer, { host: '0.0.0.0', port: 32379 });
    assert.equal(options.logLevel, 'debug');
  });

  it('normalises peer URLs and accepts IPv6', () => {
    const options = parse(['--cluster', 'HTTP://LOCALHOST:2380/,http://[::1]:2381', '--id', '2']);
    assert.deepEqual(options.cluster, ['http://localhost:2380', 'http://[::1]:2381']);
    assert.deepEqual(options.listenPeer, { host: '::1', port: 2381 });
  });

  it('--join allows an ID beyond --cluster when --listen-peer says where to listen', () => {
    const options = parse(['--id', '4', '--cluster', CLUSTER, '--join', '--listen-peer', '[::1]:42379']);
    assert.equal(options.join, true);
    assert.deepEqual(options.listenPeer, { host: '::1', port: 42379 });
  });

  it('--join with the new member listed in --cluster (raftexample style) needs nothing else', () => {
    const options = parse(['--id', '4', '--cluster', `${CLUSTER},http://127.0.0.1:42379`, '--port', '42380', '--join']);
    assert.deepEqual(options.listenPeer, { host: '127.0.0.1', port: 42379 });
  });

  it('accepts the largest 64-bit ID with --join', () => {
    const options = parse(['--id', '18446744073709551615', '--join', '--listen-peer', '127.0.0.1:5000']);
    assert.equal(options.id, 18446744073709551615n);
  });
});

describe('durations', () => {
  it('accepts ms, s, m and bare milliseconds', () => {
    assert.equal(parseDurationMs('--request-timeout', '5s'), 5000);
    assert.equal(parseDurationMs('--request-timeout', '500ms'), 500);
    assert.equal(parseDurationMs('--request-timeout', '1.5s'), 1500);
    assert.equal(parseDurationMs('--request-timeout', '1m'), 60000);
    assert.equal(parseDurationMs('--request-timeout', '250'), 250);
  });

  for (const bad of ['', 's', '5h', '-1s', '0', '0ms', '5 s', 'soon', '1e3']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      parseError([`--request-timeout=${bad}`], /--request-timeout must be a duration/);
    });
  }
});

describe('validation errors (exit code 2, one line)', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--id', 'one'], /--id: the member ID must be a decimal number/],
    [['--id', '0'], /--id: the member ID/],
    [['--id', '-1'], /--id: the member ID/],
    [['--id', '0x10'], /--id: the member ID/],
    [['--id', '18446744073709551616', '--join', '--listen-peer', '127.0.0.1:1'], /--id: the member ID/],
    [['--id', '4', '--cluster', CLUSTER], /--id 4 is out of range: --cluster lists 3 member\(s\).*--join/],
    [['--id', '4', '--cluster', CLUSTER, '--join'], /--listen-peer <host:port> is required/],
    [['--cluster', 'http://127.0.0.1'], /--cluster: .*port is missing/],
    [['--cluster', '127.0.0.1:2380'], /--cluster: the peer URL/],
    [['--cluster', 'ftp://127.0.0.1:2380'], /--cluster: .*scheme must be http or https/],
    [['--cluster', 'http://127.0.0.1:2380/path'], /--cluster: .*path is not allowed/],
    [['--cluster', 'http://127.0.0.1:2380,'], /--cluster: entry 2 is empty/],
    [['--cluster', 'http://127.0.0.1:2380,http://127.0.0.1:2380/'], /more than once/],
    [['--port', 'http'], /--port must be an integer 1\.\.65535/],
    [['--port', '0'], /--port must be an integer 1\.\.65535/],
    [['--port', '65536'], /--port must be an integer 1\.\.65535/],
    [['--snapshot-count', '0'], /--snapshot-count must be an integer at least 1/],
    [['--tick-ms', '10.5'], /--tick-ms must be an integer/],
    [['--election-ticks', '0'], /--election-ticks must be an integer at least 1/],
    [['--heartbeat-ticks', '0'], /--heartbeat-ticks must be an integer at least 1/],
    [['--heartbeat-ticks', '10'], /--heartbeat-ticks \(10\) must be less than --election-ticks \(10\)/],
    [['--election-ticks', '3', '--heartbeat-ticks', '5'], /must be less than --election-ticks/],
    [['--max-request-bytes', '1.5MiB'], /--max-request-bytes must be an integer/],
    [['--read-mode', 'stale'], /--read-mode must be readindex or lease/],
    [['--log-level', 'loud'], /--log-level must be one of trace, debug/],
    [['--cluster-token', ' '], /--cluster-token must not be empty/],
    [['--data-dir', ''], /--data-dir must not be empty/],
    [['--listen-peer', '127.0.0.1'], /--listen-peer must be host:port/],
    [['--listen-peer', 'http://127.0.0.1:1'], /--listen-peer must be host:port/],
    [['--listen-peer', '127.0.0.1:99999'], /--listen-peer must be an integer 1\.\.65535/],
    [['--bogus'], /unknown option '--bogus'/],
    [['--port'], /argument missing/],
    [['stray'], /too many arguments/],
  ];
  for (const [argv, pattern] of cases) {
    it(`${argv.join(' ')}`, () => {
      const message = parseError(argv, pattern);
      assert.match(message, /\(see raftkv --help\)$/);
    });
  }
});

describe('--help', () => {
  it('returns the help text with exit code 0, naming every flag and showing examples', () => {
    for (const flag of ['--help', '-h']) {
      const result = parseNodeOptions([flag]);
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.exitCode, 0);
      for (const name of [
        '--id',
        '--cluster',
        '--port',
        '--http-host',
        '--etcd-port',
        '--etcd-host',
        '--max-txn-ops',
        '--join',
        '--data-dir',
        '--snapshot-count',
        '--tick-ms',
        '--election-ticks',
        '--heartbeat-ticks',
        '--max-request-bytes',
        '--request-timeout',
        '--read-mode',
        '--cluster-token',
        '--listen-peer',
        '--log-level',
      ]) {
        assert.ok(result.message.includes(name), `help mentions ${name}`);
      }
      assert.match(result.message, /Examples:/);
      assert.match(result.message, /--id 2 --cluster http:\/\/127\.0\.0\.1:12379,http:\/\/127\.0\.0\.1:22379,http:\/\/127\.0\.0\.1:32379 --port 22380/);
      assert.match(result.message, /-XPOST -d http:\/\/127\.0\.0\.1:42379/);
      assert.match(result.message, /--join/);
    }
  });
});
