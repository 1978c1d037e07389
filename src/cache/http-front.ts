/**
 * The HTTP front of a cache node (express):
 *
 * | request                          | answer                                                  |
 * |----------------------------------|---------------------------------------------------------|
 * | `GET /_cache/<group>/<key>`      | 200 and the raw value; 404 'key-not-found'              |
 * | `PUT /_cache/<group>/<key>`      | 204 once written through to the store                   |
 * | `GET /_cache/-/stats`            | 200 JSON: counters per group and totals, ring members   |
 *
 * The key is everything after `/_cache/<group>/`, percent-decoded (so it may contain `/`).
 * Errors use the one table of cache-errors.ts: unknown group 404 'unknown-group', empty key 400
 * 'empty-key', value over `maxValueBytes` 413 'value-too-large' (the body is not buffered past
 * the limit), store unreachable 503 'store-unavailable', other methods 405 with `Allow`.
 *
 * The app is not listening; the caller owns the server.
 */
import express from 'express';
import type { Request, Response } from 'express';
import { CacheError, sendCacheError } from './cache-errors';
import type { CacheGroup } from './group';

/** What the front needs from its node. */
export interface HttpFrontNode {
  group(name: string): CacheGroup | undefined;
  stats(): object;
}

/** Builds the express app of the cache front. */
export function createCacheHttpApp(node: HttpFrontNode, options: { readonly maxValueBytes: number }): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((request: Request, response: Response) => {
    void handle(node, options, request, response).catch((error: unknown) => sendCacheError(response, error));
  });
  return app;
}

async function handle(node: HttpFrontNode, options: { readonly maxValueBytes: number }, request: Request, response: Response): Promise<void> {
  const rawPath = request.originalUrl.split('?')[0] ?? '';
  if (rawPath === '/_cache/-/stats') {
    if (request.method !== 'GET') return sendCacheError(response, new CacheError('method-not-allowed', `${request.method} is not allowed on ${rawPath}`), ['GET']);
    response.status(200).json(node.stats());
    return;
  }
  const match = /^\/_cache\/([^/]*)(?:\/(.*))?$/.exec(rawPath);
  if (match === null) throw new CacheError('not-found', `no such path ${rawPath}; use /_cache/<group>/<key>`);
  const groupName = decode(match[1] ?? '');
  const key = decode(match[2] ?? '');
  if (request.method !== 'GET' && request.method !== 'PUT') {
    return sendCacheError(response, new CacheError('method-not-allowed', `${request.method} is not allowed; use GET or PUT`), ['GET', 'PUT']);
  }
  const group = node.group(groupName);
  if (group === undefined) throw new CacheError('unknown-group', `unknown group "${groupName}"`);
  if (key === '') throw new CacheError('empty-key', 'the key is empty');
  if (request.method === 'GET') {
    const loaded = await group.get(key);
    if (!loaded.found) throw new CacheError('key-not-found', `key "${key}" not found in group "${groupName}"`);
    response.status(200).setHeader('Content-Type', 'application/octet-stream');
    response.end(loaded.value);
    return;
  }
  const body = await readBody(request, options.maxValueBytes);
  await group.set(key, body);
  response.status(204).end();
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new CacheError('invalid-key', `malformed percent-encoding in "${text}"`);
  }
}

/** Reads the body, refusing (413) as soon as it exceeds `maxBytes` instead of buffering it all. */
function readBody(request: Request, maxBytes: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > maxBytes) {
    request.resume();
    return Promise.reject(new CacheError('value-too-large', `value of ${declared} bytes is over the limit of ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let refused = false;
    request.on('data', (chunk: Buffer) => {
      if (refused) return;
      length += chunk.length;
      if (length > maxBytes) {
        refused = true;
        reject(new CacheError('value-too-large', `value of more than ${maxBytes} bytes is over the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      if (!refused) resolve(Buffer.concat(chunks));
    });
    request.on('error', (error) => reject(error));
  });
}
