/**
 * raftexample's HTTP API (etcd contrib/raftexample/httpapi.go), with its semantics made correct:
 * a write is acknowledged only once committed and applied, and reads are linearizable by default.
 *
 * Routes (the method decides what the path means, exactly as in raftexample):
 *
 * | request                     | meaning                                   | success            |
 * |-----------------------------|-------------------------------------------|--------------------|
 * | `PUT /<key>`, body = value  | store the raw body bytes under the key    | 204                |
 * | `GET /<key>`                | read the key (linearizable)               | 200 raw value; 404 |
 * | `GET /<key>?serializable`   | read the key from this node's state       | 200 raw value; 404 |
 * | `POST /<id>`, body = URL    | add member `id` with that peer URL        | 204                |
 * | `DELETE /<id>`              | remove member `id`                        | 204                |
 * | `GET /-/health`             | `{"health":"true"|"false","reason":...}`  | 200, or 503        |
 * | `GET /-/status`             | node status as JSON                       | 200                |
 * | `GET /-/metrics`            | Prometheus text exposition                | 200                |
 *
 * Keys. As in raftexample (which uses `r.RequestURI`), the key is the request path exactly as
 * sent, INCLUDING the leading slash and WITHOUT percent-decoding: `PUT /my-key` stores key
 * "/my-key", `PUT /a/b` stores "/a/b", `PUT /a%20b` stores "/a%20b". Unlike raftexample the
 * query string is not part of the key (it carries options); a PUT with a query string is refused
 * with 400 rather than silently storing under a shortened key.
 *
 * Reserved prefix. Paths starting with `/-/` belong to the operational endpoints; they are never
 * keys. `PUT /-/anything` is refused with 400 'invalid-key'; an unknown `/-/` path is 404.
 *
 * Read consistency. Default linearizable. Serializable when the query has `serializable` (bare,
 * `=true` or `=1`; `=false`/`=0` mean linearizable) or when the header `X-Raftkv-Consistency` is
 * `serializable`; the query wins when both are given. Any other query parameter is a 400.
 *
 * Members. `<id>` is decimal 1..2^64-1 (400 'invalid-member-id' otherwise); the POST body is a
 * peer URL `http(s)://host:port` (surrounding white space ignored; 400 'invalid-peer-url').
 *
 * Every response carries `X-Raftkv-Applied-Index`: the applied index the answer reflects (the
 * backend's result), or, for errors and operational endpoints, the node's applied index at the
 * time of the answer. Error responses are described in http-errors.ts. Other methods are 405
 * with `Allow`. Bodies over `maxRequestBytes` are refused with 413 before the backend is called,
 * so nothing changes.
 *
 * Deadlines. The API waits at most `requestTimeoutMs` for the backend: a write (PUT, POST,
 * DELETE) still pending then is answered 504 'timeout-maybe-applied' (it was handed to the node
 * and may still be applied); a read is answered 504 'read-timeout'.
 *
 * The returned express app is not listening; the caller owns the server (and its lifetime).
 */
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import {
  RaftkvError,
  invalidKeyError,
  raftkvError,
  readTimeoutError,
  requestTooLargeError,
  timeoutMaybeAppliedError,
} from '../../errors';
import type { NodeId } from '../../raft/types';
import type { RaftkvLogger } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import { parseMemberId, parsePeerUrl } from '../member-input';
import type { HttpBackend, NodeStatus, ReadConsistency } from './backend';
import { sendError } from './http-errors';

/** Options of {@link createHttpApi}. */
export interface HttpApiOptions {
  /** Largest accepted request body in bytes; larger bodies get 413 and change nothing. */
  readonly maxRequestBytes: number;
  /** How long to wait for the backend before answering 504, in milliseconds. */
  readonly requestTimeoutMs: number;
  /** If given, request durations are recorded and `GET /-/metrics` serves its registry. */
  readonly metrics?: Metrics;
  /** If given, unexpected (internal) errors are logged here at warn level. */
  readonly logger?: RaftkvLogger;
}

/** Header that carries the applied index on every response. */
export const APPLIED_INDEX_HEADER = 'X-Raftkv-Applied-Index';
/** Header that selects the read consistency of a GET (`linearizable` or `serializable`). */
export const CONSISTENCY_HEADER = 'X-Raftkv-Consistency';
/** Paths starting with this prefix are operational endpoints, never keys. */
export const RESERVED_PREFIX = '/-/';
/** Methods allowed on key and member paths, in raftexample's order. */
export const KEY_METHODS: readonly string[] = Object.freeze(['PUT', 'GET', 'POST', 'DELETE']);

/** Route names used as the `route` label of the HTTP duration metric (a small fixed set). */
type RouteName = 'kv-put' | 'kv-get' | 'member-add' | 'member-remove' | 'health' | 'status' | 'metrics' | 'other';

/** The operational endpoints under RESERVED_PREFIX; each accepts GET only. */
const OPERATIONAL_ROUTES: Readonly<Record<string, RouteName>> = Object.freeze({
  '/-/health': 'health',
  '/-/status': 'status',
  '/-/metrics': 'metrics',
});

/**
 * Creates the express app serving raftexample's API over `backend` (see the module overview for
 * routes, keys, consistency, errors and deadlines).
 */
export function createHttpApi(backend: HttpBackend, options: HttpApiOptions): express.Express {
  if (!Number.isSafeInteger(options.maxRequestBytes) || options.maxRequestBytes < 1) {
    throw new RangeError(`maxRequestBytes must be a positive integer, got ${options.maxRequestBytes}`);
  }
  if (!Number.isFinite(options.requestTimeoutMs) || options.requestTimeoutMs <= 0) {
    throw new RangeError(`requestTimeoutMs must be positive, got ${options.requestTimeoutMs}`);
  }
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const parseRawBody = express.raw({ type: () => true, limit: options.maxRequestBytes });
  const handlers = new Handlers(backend, options, parseRawBody);
  if (options.metrics !== undefined) app.use(recordDuration(options.metrics));
  app.use((request: Request, response: Response) => handlers.dispatch(request, response));
  // Only reachable if something above throws synchronously outside dispatch's own try/catch.
  app.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    handlers.fail(response, error);
  });
  return app;
}

/** The request handlers, sharing the backend and options. */
class Handlers {
  constructor(
    private readonly backend: HttpBackend,
    private readonly options: HttpApiOptions,
    private readonly parseRawBody: RequestHandler,
  ) {}

  /** Routes one request by path prefix and method (raftexample's ServeHTTP switch). */
  async dispatch(request: Request, response: Response): Promise<void> {
    try {
      const { path, query } = splitTarget(request.originalUrl);
      if (!path.startsWith('/')) throw invalidKeyError('the request target must be a path starting with "/"');
      if (path.startsWith(RESERVED_PREFIX)) return await this.operational(request, response, path);
      switch (request.method) {
        case 'PUT':
          return await this.put(request, response, path, query);
        case 'GET':
          return await this.get(request, response, path, query);
        case 'POST':
          return await this.addMember(request, response, path, query);
        case 'DELETE':
          return await this.removeMember(response, path, query);
        default:
          this.fail(response, raftkvError('method-not-allowed', { method: request.method }), KEY_METHODS);
          return;
      }
    } catch (error) {
      this.fail(response, error);
    }
  }

  /** `PUT /<key>`: store the body; 204 once committed and applied. */
  private async put(request: Request, response: Response, key: string, query: URLSearchParams): Promise<void> {
    setRoute(response, 'kv-put');
    if ([...query.keys()].length > 0) {
      throw new RaftkvError('invalid-request', {
        message: 'PUT takes no query parameters (the query string is not part of the key)',
      });
    }
    const value = await this.readBody(request, response);
    const result = await this.withDeadline(this.backend.put(key, value), 'write');
    response.setHeader(APPLIED_INDEX_HEADER, String(result.appliedIndex));
    response.status(204).end();
  }

  /** `GET /<key>`: 200 with the raw value, or 404. */
  private async get(request: Request, response: Response, key: string, query: URLSearchParams): Promise<void> {
    setRoute(response, 'kv-get');
    const consistency = readConsistency(request, query);
    const result = await this.withDeadline(this.backend.get(key, consistency), 'read');
    response.setHeader(APPLIED_INDEX_HEADER, String(result.appliedIndex));
    if (result.value === undefined) {
      sendError(response, new RaftkvError('key-not-found', { message: `key not found: ${key}` }));
      return;
    }
    response.status(200);
    response.setHeader('Content-Type', 'application/octet-stream');
    response.end(Buffer.from(result.value.buffer, result.value.byteOffset, result.value.byteLength));
  }

  /** `POST /<id>` with a peer URL body: add a member; 204 once the change is applied. */
  private async addMember(request: Request, response: Response, path: string, query: URLSearchParams): Promise<void> {
    setRoute(response, 'member-add');
    rejectQuery(query, 'POST');
    const id = parseMemberId(path.slice(1));
    const body = await this.readBody(request, response);
    const peerUrl = parsePeerUrl(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    const result = await this.withDeadline(this.backend.addMember(id, peerUrl.url), 'write');
    response.setHeader(APPLIED_INDEX_HEADER, String(result.appliedIndex));
    response.status(204).end();
  }

  /** `DELETE /<id>`: remove a member; 204 once the change is applied. */
  private async removeMember(response: Response, path: string, query: URLSearchParams): Promise<void> {
    setRoute(response, 'member-remove');
    rejectQuery(query, 'DELETE');
    const id = parseMemberId(path.slice(1));
    const result = await this.withDeadline(this.backend.removeMember(id), 'write');
    response.setHeader(APPLIED_INDEX_HEADER, String(result.appliedIndex));
    response.status(204).end();
  }

  /** The `/-/` endpoints: GET only; PUT is a reserved-key error; unknown paths are 404. */
  private async operational(request: Request, response: Response, path: string): Promise<void> {
    if (request.method === 'PUT') {
      throw invalidKeyError(
        `keys starting with "${RESERVED_PREFIX}" are reserved for operational endpoints (${path})`,
        path,
      );
    }
    const route = OPERATIONAL_ROUTES[path];
    if (route === undefined) throw new RaftkvError('not-found', { message: `no such endpoint: ${path}` });
    setRoute(response, route);
    if (request.method !== 'GET') {
      this.fail(response, raftkvError('method-not-allowed', { method: request.method }), ['GET']);
      return;
    }
    const status = this.backend.status();
    response.setHeader(APPLIED_INDEX_HEADER, String(status.appliedIndex));
    switch (route) {
      case 'health': {
        const health = this.backend.health();
        response.status(health.ok ? 200 : 503);
        response.json({ health: health.ok ? 'true' : 'false', reason: health.reason ?? '' });
        return;
      }
      case 'status':
        response.status(200).type('application/json').send(`${JSON.stringify(statusToJson(status))}\n`);
        return;
      case 'metrics': {
        const metrics = this.options.metrics;
        if (metrics === undefined) {
          throw new RaftkvError('not-found', { message: 'metrics are not enabled on this server' });
        }
        const text = await metrics.registry.metrics();
        response.status(200).setHeader('Content-Type', metrics.registry.contentType);
        response.end(text);
        return;
      }
      default:
        throw new RaftkvError('not-found', { message: `no such endpoint: ${path}` });
    }
  }

  /** Answers `error` (see http-errors.ts), adding the applied-index header; logs internal errors. */
  fail(response: Response, error: unknown, allow?: readonly string[]): void {
    if (!(error instanceof RaftkvError) || error.code === 'internal') {
      this.options.logger?.warn({ error: describe(error) }, 'internal error in HTTP API');
    }
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const appliedIndex = this.currentAppliedIndex();
    if (appliedIndex !== undefined) response.setHeader(APPLIED_INDEX_HEADER, String(appliedIndex));
    sendError(response, error, allow);
  }

  /** Reads the raw body within maxRequestBytes; an empty body is an empty value. */
  private readBody(request: Request, response: Response): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.parseRawBody(request, response, (error?: unknown) => {
        if (error !== undefined && error !== null) {
          reject(bodyError(error, this.options.maxRequestBytes));
          return;
        }
        const body: unknown = request.body;
        resolve(body instanceof Uint8Array ? body : new Uint8Array(0));
      });
    });
  }

  /** Waits for `operation` at most requestTimeoutMs; then fails with the kind's timeout error. */
  private withDeadline<T>(operation: Promise<T>, kind: 'read' | 'write'): Promise<T> {
    const timeoutMs = this.options.requestTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(kind === 'write' ? timeoutMaybeAppliedError(timeoutMs) : readTimeoutError(timeoutMs)),
        timeoutMs,
      );
    });
    return Promise.race([operation, deadline]).finally(() => clearTimeout(timer));
  }

  /** The node's applied index now, or undefined if the backend cannot tell (for example stopped). */
  private currentAppliedIndex(): number | undefined {
    try {
      return this.backend.status().appliedIndex;
    } catch {
      return undefined;
    }
  }
}

/** Splits a request target into the raw (not percent-decoded) path and the parsed query. */
function splitTarget(target: string): { path: string; query: URLSearchParams } {
  const questionMark = target.indexOf('?');
  if (questionMark < 0) return { path: target, query: new URLSearchParams() };
  return { path: target.slice(0, questionMark), query: new URLSearchParams(target.slice(questionMark + 1)) };
}

/** The consistency a GET asks for (query first, then header); 400 on anything unknown. */
function readConsistency(request: Request, query: URLSearchParams): ReadConsistency {
  for (const name of query.keys()) {
    if (name !== 'serializable') {
      throw new RaftkvError('invalid-request', { message: `unknown query parameter "${name}" (only "serializable")` });
    }
  }
  const flag = query.get('serializable');
  if (flag !== null) {
    if (flag === '' || flag === 'true' || flag === '1') return 'serializable';
    if (flag === 'false' || flag === '0') return 'linearizable';
    throw new RaftkvError('invalid-request', { message: `serializable must be true or false, got "${flag}"` });
  }
  const header = request.get(CONSISTENCY_HEADER);
  if (header === undefined) return 'linearizable';
  const normalised = header.trim().toLowerCase();
  if (normalised === 'linearizable' || normalised === 'serializable') return normalised;
  throw new RaftkvError('invalid-request', {
    message: `${CONSISTENCY_HEADER} must be linearizable or serializable, got "${header}"`,
  });
}

/** Member requests take no query parameters. */
function rejectQuery(query: URLSearchParams, method: string): void {
  if ([...query.keys()].length > 0) {
    throw new RaftkvError('invalid-request', { message: `${method} /<id> takes no query parameters` });
  }
}

/** Translates a body-parser error: 413 becomes 'request-too-large', anything else 'invalid-request'. */
function bodyError(error: unknown, maxRequestBytes: number): RaftkvError {
  const status = (error as { status?: unknown }).status;
  if (status === 413) return requestTooLargeError(maxRequestBytes);
  const message = error instanceof Error ? error.message : String(error);
  return new RaftkvError('invalid-request', { message: `could not read the request body: ${message}`, cause: error });
}

/** The JSON form of a NodeStatus: IDs as decimal strings (they exceed 2^53), no leader as null. */
function statusToJson(status: NodeStatus): Record<string, unknown> {
  return {
    id: status.id.toString(),
    role: status.role,
    leader: idOrNull(status.leader),
    term: status.term,
    commitIndex: status.commitIndex,
    appliedIndex: status.appliedIndex,
    readMode: status.readMode,
    members: status.members.map((member) => ({
      id: member.id.toString(),
      peerUrl: member.peerUrl,
      isLearner: member.isLearner,
    })),
    ...(status.clusterId === undefined ? {} : { clusterId: status.clusterId.toString() }),
    ...(status.lastIndex === undefined ? {} : { lastIndex: status.lastIndex }),
    ...(status.snapshotIndex === undefined ? {} : { snapshotIndex: status.snapshotIndex }),
  };
}

/** A member ID as a decimal string, or null for NONE. */
function idOrNull(id: NodeId): string | null {
  return id === 0n ? null : id.toString();
}

/** Records the route name of a request for the duration metric. */
function setRoute(response: Response, route: RouteName): void {
  response.locals['route'] = route;
}

/** Middleware observing each finished request's duration under its route name. */
function recordDuration(metrics: Metrics): RequestHandler {
  return (request, response, next) => {
    const startNs = process.hrtime.bigint();
    response.on('finish', () => {
      const route = (response.locals['route'] as RouteName | undefined) ?? 'other';
      const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
      metrics.httpRequestSeconds.observe(
        { route, method: KEY_METHODS.includes(request.method) ? request.method : 'other', status: String(response.statusCode) },
        seconds,
      );
    });
    next();
  };
}

/** A loggable description of an unexpected error. */
function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
