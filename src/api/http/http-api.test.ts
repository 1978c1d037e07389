/**
 * Tests of raftexample's HTTP API against a fake backend, over real sockets on 127.0.0.1:0 with
 * node's fetch. Every response is checked for the applied-index header.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ErrorCode, RaftkvError, notAppliedError, raftkvError, timeoutMaybeAppliedError } from '../../errors';
import { createMetrics, type Metrics } from '../../observability/metrics';
import { Role } from '../../raft/types';
import type { HealthStatus, HttpBackend, NodeStatus, ReadConsistency } from './backend';
import { APPLIED_INDEX_HEADER, createHttpApi } from './http-api';
import { HTTP_ERROR_TABLE } from './http-errors';

/** A backend that keeps keys in a map and records every call; behaviour is overridable. */
class FakeBackend implements HttpBackend {
  readonly keys = new Map<string, Uint8Array>();
  readonly calls: string[] = [];
  appliedIndex = 7;
  healthStatus: HealthStatus = { ok: true };
  failWith: unknown = undefined;
  hang = false;
  readonly consistencies: ReadConsistency[] = [];
  readonly membersAdded: Array<[bigint, string]> = [];
  readonly membersRemoved: bigint[] = [];

  private async outcome(): Promise<void> {
    if (this.hang) await new Promise<never>(() => {});
    if (this.failWith !== undefined) throw this.failWith;
  }

  async put(key: string, value: Uint8Array): Promise<{ appliedIndex: number }> {
    this.calls.push(`put ${key}`);
    await this.outcome();
    this.keys.set(key, value);
    this.appliedIndex += 1;
    return { appliedIndex: this.appliedIndex };
  }

  async get(key: string, consistency: ReadConsistency): Promise<{ value: Uint8Array | undefined; appliedIndex: number }> {
    this.calls.push(`get ${key}`);
    this.consistencies.push(consistency);
    await this.outcome();
    return { value: this.keys.get(key), appliedIndex: this.appliedIndex };
  }

  async addMember(id: bigint, peerUrl: string): Promise<{ appliedIndex: number }> {
    this.calls.push(`addMember ${id}`);
    await this.outcome();
    this.membersAdded.push([id, peerUrl]);
    return { appliedIndex: ++this.appliedIndex };
  }

  async removeMember(id: bigint): Promise<{ appliedIndex: number }> {
    this.calls.push(`removeMember ${id}`);
    await this.outcome();
    this.membersRemoved.push(id);
    return { appliedIndex: ++this.appliedIndex };
  }

  status(): NodeStatus {
    return {
      id: 1n,
      role: Role.Leader,
      leader: 1n,
      term: 3,
      commitIndex: this.appliedIndex + 1,
      appliedIndex: this.appliedIndex,
      members: [
        { id: 1n, peerUrl: 'http://127.0.0.1:12379', isLearner: false },
        { id: 18446744073709551615n, peerUrl: 'http://127.0.0.1:22379', isLearner: true },
      ],
      readMode: 'readindex',
      clusterId: 9007199254740993n,
    };
  }

  health(): HealthStatus {
    return this.healthStatus;
  }
}

interface Harness {
  readonly backend: FakeBackend;
  readonly metrics: Metrics | undefined;
  request(method: string, path: string, init?: { body?: RequestInit['body']; headers?: Record<string, string> }): Promise<Response>;
}

/** Runs `body` against a fresh app listening on 127.0.0.1:0, then closes the server. */
async function withApi(
  body: (harness: Harness) => Promise<void>,
  options: { maxRequestBytes?: number; requestTimeoutMs?: number; metrics?: boolean } = {},
): Promise<void> {
  const backend = new FakeBackend();
  const metrics = options.metrics === false ? undefined : createMetrics({ processMetrics: false });
  const app = createHttpApi(backend, {
    maxRequestBytes: options.maxRequestBytes ?? 1024,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    ...(metrics === undefined ? {} : { metrics }),
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await body({
      backend,
      metrics,
      async request(method, path, init = {}) {
        const requestInit: RequestInit & { duplex?: 'half' } = { method, headers: init.headers ?? {} };
        if (init.body !== undefined) {
          requestInit.body = init.body;
          requestInit.duplex = 'half';
        }
        const response = await fetch(`http://127.0.0.1:${port}${path}`, requestInit);
        assert.match(
          response.headers.get(APPLIED_INDEX_HEADER) ?? '',
          /^[0-9]+$/,
          `${method} ${path} (${response.status}) lacks ${APPLIED_INDEX_HEADER}`,
        );
        return response;
      },
    });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  }
}

/** Asserts an error response: status, code header, one-line plain-text body matching `text`. */
async function assertError(response: Response, status: number, code: ErrorCode, text?: RegExp): Promise<string> {
  const body = await response.text();
  assert.equal(response.status, status, body);
  assert.equal(response.headers.get('x-raftkv-error-code'), code);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(body, /^error: [^\n]+\n$/);
  if (text !== undefined) assert.match(body, text);
  return body;
}

describe('keys: PUT and GET', () => {
  it('PUT stores the raw body under the full request path and answers 204 after put resolves', () =>
    withApi(async ({ backend, request }) => {
      const value = new Uint8Array([0, 255, 10, 13, 200]);
      const response = await request('PUT', '/my-key', { body: value, headers: { 'content-type': 'application/json' } });
      assert.equal(response.status, 204);
      assert.equal(response.headers.get(APPLIED_INDEX_HEADER), '8');
      assert.deepEqual(backend.calls, ['put /my-key']);
      assert.deepEqual(new Uint8Array(backend.keys.get('/my-key') ?? []), value);
    }));

  it('keys keep further slashes and percent-encoding exactly as sent', () =>
    withApi(async ({ backend, request }) => {
      assert.equal((await request('PUT', '/a/b', { body: 'x' })).status, 204);
      assert.equal((await request('PUT', '/a%20b/', { body: 'y' })).status, 204);
      assert.deepEqual([...backend.keys.keys()], ['/a/b', '/a%20b/']);
      const response = await request('GET', '/a/b');
      assert.equal(await response.text(), 'x');
    }));

  it('PUT with an empty body stores an empty value', () =>
    withApi(async ({ backend, request }) => {
      assert.equal((await request('PUT', '/empty')).status, 204);
      assert.equal(backend.keys.get('/empty')?.byteLength, 0);
    }));

  it('PUT with a query string is refused and changes nothing', () =>
    withApi(async ({ backend, request }) => {
      await assertError(await request('PUT', '/k?x=1', { body: 'v' }), 400, 'invalid-request', /query/);
      assert.deepEqual(backend.calls, []);
    }));

  it('GET answers 200 with the raw bytes and the applied index of the read', () =>
    withApi(async ({ backend, request }) => {
      backend.keys.set('/k', new Uint8Array([1, 2, 3, 250]));
      backend.appliedIndex = 42;
      const response = await request('GET', '/k');
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/octet-stream');
      assert.equal(response.headers.get(APPLIED_INDEX_HEADER), '42');
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([1, 2, 3, 250]));
      assert.deepEqual(backend.consistencies, ['linearizable']);
    }));

  it('GET of a missing key is 404 key-not-found', () =>
    withApi(async ({ request }) => {
      await assertError(await request('GET', '/missing'), 404, 'key-not-found', /\/missing/);
    }));

  it('reads are linearizable by default and serializable on request', () =>
    withApi(async ({ backend, request }) => {
      const cases: Array<[string, Record<string, string>, ReadConsistency]> = [
        ['/k', {}, 'linearizable'],
        ['/k?serializable', {}, 'serializable'],
        ['/k?serializable=true', {}, 'serializable'],
        ['/k?serializable=1', {}, 'serializable'],
        ['/k?serializable=false', {}, 'linearizable'],
        ['/k', { 'x-raftkv-consistency': 'serializable' }, 'serializable'],
        ['/k', { 'x-raftkv-consistency': 'Linearizable' }, 'linearizable'],
        ['/k?serializable=false', { 'x-raftkv-consistency': 'serializable' }, 'linearizable'],
      ];
      for (const [path, headers] of cases) {
        assert.equal((await request('GET', path, { headers })).status, 404);
      }
      assert.deepEqual(backend.consistencies, cases.map((testCase) => testCase[2]));
    }));

  it('unknown consistency values and query parameters are 400 and reach no backend', () =>
    withApi(async ({ backend, request }) => {
      await assertError(await request('GET', '/k?serializable=maybe'), 400, 'invalid-request');
      await assertError(await request('GET', '/k?stale'), 400, 'invalid-request', /stale/);
      await assertError(
        await request('GET', '/k', { headers: { 'x-raftkv-consistency': 'eventual' } }),
        400,
        'invalid-request',
        /X-Raftkv-Consistency/,
      );
      assert.deepEqual(backend.calls, []);
    }));
});

describe('request size limit', () => {
  it('a body over maxRequestBytes is 413 and the backend is never called', () =>
    withApi(
      async ({ backend, request }) => {
        await assertError(await request('PUT', '/big', { body: new Uint8Array(101) }), 413, 'request-too-large', /100 bytes/);
        await assertError(await request('POST', '/4', { body: 'x'.repeat(101) }), 413, 'request-too-large');
        assert.deepEqual(backend.calls, []);
        assert.equal(backend.keys.size, 0);
        assert.equal((await request('PUT', '/fits', { body: new Uint8Array(100) })).status, 204);
      },
      { maxRequestBytes: 100 },
    ));

  it('a chunked body (no Content-Length) over the limit is also 413', () =>
    withApi(
      async ({ backend, request }) => {
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let chunk = 0; chunk < 5; chunk++) controller.enqueue(new Uint8Array(40));
            controller.close();
          },
        });
        await assertError(await request('PUT', '/big', { body: stream }), 413, 'request-too-large');
        assert.deepEqual(backend.calls, []);
      },
      { maxRequestBytes: 100 },
    ));
});

describe('members: POST and DELETE', () => {
  it('POST /<id> with a peer URL adds the member and answers 204', () =>
    withApi(async ({ backend, request }) => {
      const response = await request('POST', '/4', { body: 'http://127.0.0.1:42379\n' });
      assert.equal(response.status, 204);
      assert.deepEqual(backend.membersAdded, [[4n, 'http://127.0.0.1:42379']]);
      assert.equal((await request('POST', '/18446744073709551615', { body: 'https://Node-5.example:2380/' })).status, 204);
      assert.deepEqual(backend.membersAdded[1], [18446744073709551615n, 'https://node-5.example:2380']);
    }));

  it('POST and DELETE refuse IDs that are not decimal 1..2^64-1', () =>
    withApi(async ({ backend, request }) => {
      for (const path of ['/0', '/abc', '/-1', '/0x10', '/18446744073709551616', '/4/5', '/']) {
        await assertError(await request('POST', path, { body: 'http://127.0.0.1:42379' }), 400, 'invalid-member-id');
        await assertError(await request('DELETE', path), 400, 'invalid-member-id');
      }
      assert.deepEqual(backend.calls, []);
    }));

  it('POST refuses peer URLs that are not http(s)://host:port', () =>
    withApi(async ({ backend, request }) => {
      for (const body of [
        '',
        'not a url',
        '127.0.0.1:42379',
        'ftp://127.0.0.1:42379',
        'http://127.0.0.1',
        'http://127.0.0.1:0',
        'http://127.0.0.1:70000',
        'http://127.0.0.1:42379/path',
        'http://127.0.0.1:42379?x=1',
        'http://user:pw@127.0.0.1:42379',
      ]) {
        await assertError(await request('POST', '/4', { body }), 400, 'invalid-peer-url');
      }
      assert.deepEqual(backend.calls, []);
    }));

  it('DELETE /<id> removes the member and answers 204', () =>
    withApi(async ({ backend, request }) => {
      const response = await request('DELETE', '/3');
      assert.equal(response.status, 204);
      assert.equal(response.headers.get(APPLIED_INDEX_HEADER), '8');
      assert.deepEqual(backend.membersRemoved, [3n]);
    }));
});

describe('the error mapping table', () => {
  const table: Array<{ error: RaftkvError; method: string; path: string; status: number; retryAfter: string | null; text?: RegExp }> = [
    { error: raftkvError('no-leader'), method: 'PUT', path: '/k', status: 503, retryAfter: '1' },
    { error: raftkvError('no-leader'), method: 'GET', path: '/k', status: 503, retryAfter: '1' },
    { error: timeoutMaybeAppliedError(5000), method: 'PUT', path: '/k', status: 504, retryAfter: null, text: /may still be committed and applied/ },
    { error: notAppliedError('proposal-dropped'), method: 'PUT', path: '/k', status: 503, retryAfter: '1', text: /not applied \(proposal-dropped\)/ },
    { error: raftkvError('stopped'), method: 'PUT', path: '/k', status: 503, retryAfter: null },
    { error: raftkvError('removed'), method: 'GET', path: '/k', status: 503, retryAfter: null },
    { error: raftkvError('read-timeout'), method: 'GET', path: '/k', status: 504, retryAfter: '1', text: /nothing was changed/ },
    { error: raftkvError('member-exists'), method: 'POST', path: '/2', status: 409, retryAfter: null },
    { error: raftkvError('member-id-removed'), method: 'POST', path: '/2', status: 409, retryAfter: null, text: /never rejoin/ },
    { error: raftkvError('conf-change-pending'), method: 'POST', path: '/2', status: 503, retryAfter: '1' },
    { error: raftkvError('member-not-found'), method: 'DELETE', path: '/9', status: 404, retryAfter: null },
    { error: raftkvError('last-voter'), method: 'DELETE', path: '/1', status: 409, retryAfter: null },
    { error: raftkvError('conf-change-pending'), method: 'DELETE', path: '/1', status: 503, retryAfter: '1' },
    { error: timeoutMaybeAppliedError(5000), method: 'DELETE', path: '/1', status: 504, retryAfter: null, text: /may still/ },
  ];
  for (const row of table) {
    it(`${row.method} ${row.path} rejected with ${row.error.code} is ${row.status}`, () =>
      withApi(async ({ backend, request }) => {
        backend.failWith = row.error;
        const body = row.method === 'POST' ? 'http://127.0.0.1:22379' : row.method === 'PUT' ? 'v' : undefined;
        const response = await request(row.method, row.path, body === undefined ? {} : { body });
        await assertError(response, row.status, row.error.code, row.text);
        assert.equal(response.headers.get('retry-after'), row.retryAfter);
        assert.equal(row.status, HTTP_ERROR_TABLE[row.error.code].status);
      }));
  }

  it('a backend failure that is not a RaftkvError is 500 internal and leaks nothing', () =>
    withApi(async ({ backend, request }) => {
      backend.failWith = new Error('secret stack detail');
      const body = await assertError(await request('PUT', '/k', { body: 'v' }), 500, 'internal');
      assert.equal(body, 'error: internal error\n');
    }));

  it('every table entry is an HTTP error status', () => {
    for (const [code, mapping] of Object.entries(HTTP_ERROR_TABLE)) {
      assert.ok(mapping.status >= 400 && mapping.status <= 599, code);
    }
  });
});

describe('deadlines', () => {
  it('a write still pending after requestTimeoutMs is 504 timeout-maybe-applied', () =>
    withApi(
      async ({ backend, request }) => {
        backend.hang = true;
        await assertError(await request('PUT', '/k', { body: 'v' }), 504, 'timeout-maybe-applied', /may still be/);
        await assertError(await request('POST', '/4', { body: 'http://127.0.0.1:42379' }), 504, 'timeout-maybe-applied');
      },
      { requestTimeoutMs: 30 },
    ));

  it('a read still pending after requestTimeoutMs is 504 read-timeout', () =>
    withApi(
      async ({ backend, request }) => {
        backend.hang = true;
        await assertError(await request('GET', '/k'), 504, 'read-timeout', /30 ms/);
      },
      { requestTimeoutMs: 30 },
    ));
});

describe('methods and the reserved prefix', () => {
  it('other methods are 405 with Allow listing PUT, GET, POST, DELETE', () =>
    withApi(async ({ backend, request }) => {
      for (const method of ['PATCH', 'OPTIONS', 'HEAD']) {
        const response = await request(method, '/k');
        assert.equal(response.status, 405);
        assert.equal(response.headers.get('allow'), 'PUT, GET, POST, DELETE');
        assert.equal(response.headers.get('x-raftkv-error-code'), 'method-not-allowed');
      }
      assert.deepEqual(backend.calls, []);
    }));

  it('PUT under /-/ is 400 invalid-key explaining the reservation', () =>
    withApi(async ({ backend, request }) => {
      await assertError(await request('PUT', '/-/health', { body: 'v' }), 400, 'invalid-key', /reserved/);
      await assertError(await request('PUT', '/-/my/key', { body: 'v' }), 400, 'invalid-key', /reserved/);
      assert.deepEqual(backend.calls, []);
    }));

  it('unknown operational paths are 404 and operational endpoints are GET only', () =>
    withApi(async ({ request }) => {
      await assertError(await request('GET', '/-/nothing'), 404, 'not-found', /\/-\/nothing/);
      const response = await request('POST', '/-/status', { body: 'x' });
      await assertError(response, 405, 'method-not-allowed');
      assert.equal(response.headers.get('allow'), 'GET');
    }));
});

describe('operational endpoints', () => {
  it('/-/health is 200 when healthy and 503 with the reason when not', () =>
    withApi(async ({ backend, request }) => {
      const healthy = await request('GET', '/-/health');
      assert.equal(healthy.status, 200);
      assert.deepEqual(await healthy.json(), { health: 'true', reason: '' });
      backend.healthStatus = { ok: false, reason: 'no leader' };
      const unhealthy = await request('GET', '/-/health');
      assert.equal(unhealthy.status, 503);
      assert.deepEqual(await unhealthy.json(), { health: 'false', reason: 'no leader' });
    }));

  it('/-/status is JSON with IDs as decimal strings', () =>
    withApi(async ({ request }) => {
      const response = await request('GET', '/-/status');
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(response.headers.get(APPLIED_INDEX_HEADER), '7');
      assert.deepEqual(await response.json(), {
        id: '1',
        role: 'leader',
        leader: '1',
        term: 3,
        commitIndex: 8,
        appliedIndex: 7,
        readMode: 'readindex',
        members: [
          { id: '1', peerUrl: 'http://127.0.0.1:12379', isLearner: false },
          { id: '18446744073709551615', peerUrl: 'http://127.0.0.1:22379', isLearner: true },
        ],
        clusterId: '9007199254740993',
      });
    }));

  it('/-/status shows no leader as null', () =>
    withApi(async ({ backend, request }) => {
      const status = backend.status();
      backend.status = () => ({ ...status, leader: 0n, role: Role.Follower });
      const json = (await (await request('GET', '/-/status')).json()) as Record<string, unknown>;
      assert.equal(json['leader'], null);
      assert.equal(json['role'], 'follower');
    }));

  it('/-/metrics serves Prometheus text including HTTP durations by route', () =>
    withApi(async ({ request }) => {
      assert.equal((await request('PUT', '/k', { body: 'v' })).status, 204);
      const response = await request('GET', '/-/metrics');
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await response.text();
      for (const name of [
        'raftkv_proposals_total',
        'raftkv_applied_index',
        'raftkv_apply_lag_entries',
        'raftkv_wal_fsync_duration_seconds',
        'raftkv_read_index_duration_seconds',
        'raftkv_http_request_duration_seconds',
      ]) {
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
      }
      assert.match(text, /raftkv_http_request_duration_seconds_count\{route="kv-put",method="PUT",status="204"\} 1/);
    }));

  it('/-/metrics is 404 when the API was created without metrics', () =>
    withApi(async ({ request }) => {
      await assertError(await request('GET', '/-/metrics'), 404, 'not-found', /not enabled/);
    }, { metrics: false }));
});

describe('createHttpApi options', () => {
  it('refuses a non-positive body limit or timeout', () => {
    const backend = new FakeBackend();
    assert.throws(() => createHttpApi(backend, { maxRequestBytes: 0, requestTimeoutMs: 1 }), RangeError);
    assert.throws(() => createHttpApi(backend, { maxRequestBytes: 1, requestTimeoutMs: 0 }), RangeError);
  });
});
