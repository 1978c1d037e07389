/**
 * The cache tier's error catalogue and its ONE mapping to HTTP (the house pattern of
 * src/errors.ts + src/api/http/http-errors.ts, kept apart so the cache does not widen the
 * store's catalogue).
 *
 * Every HTTP error of the cache front is `text/plain`, one line `error: <message>\n`, with the
 * stable code in `X-Raftkv-Error-Code` and `Retry-After` where waiting may help.
 */
import type { Response } from 'express';

/** Stable codes of the cache tier's expected failures. */
export type CacheErrorCode =
  | 'unknown-group'
  | 'empty-key'
  | 'invalid-key'
  | 'value-too-large'
  | 'key-not-found'
  | 'not-found'
  | 'method-not-allowed'
  | 'store-unavailable'
  | 'internal';

/** An expected failure with a stable code and a one-line message. */
export class CacheError extends Error {
  constructor(
    readonly code: CacheErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CacheError';
  }
}

/** The HTTP answer of each code; the type makes the table complete. */
export const CACHE_HTTP_ERROR_TABLE: Readonly<Record<CacheErrorCode, { readonly status: number; readonly retryAfterSeconds?: number }>> = Object.freeze({
  'unknown-group': { status: 404 },
  'empty-key': { status: 400 },
  'invalid-key': { status: 400 },
  'value-too-large': { status: 413 },
  'key-not-found': { status: 404 },
  'not-found': { status: 404 },
  'method-not-allowed': { status: 405 },
  'store-unavailable': { status: 503, retryAfterSeconds: 1 },
  internal: { status: 500 },
});

/** Writes `error` as the cache front's error response; anything but a CacheError is 'internal'. */
export function sendCacheError(response: Response, error: unknown, allow?: readonly string[]): void {
  const cacheError = error instanceof CacheError ? error : new CacheError('internal', 'internal error');
  const mapping = CACHE_HTTP_ERROR_TABLE[cacheError.code];
  response.status(mapping.status);
  response.setHeader('Content-Type', 'text/plain; charset=utf-8');
  response.setHeader('X-Raftkv-Error-Code', cacheError.code);
  if (mapping.retryAfterSeconds !== undefined) response.setHeader('Retry-After', String(mapping.retryAfterSeconds));
  if (allow !== undefined) response.setHeader('Allow', allow.join(', '));
  response.end(`error: ${cacheError.message.replace(/[\r\n]+/g, ' ')}\n`);
}
