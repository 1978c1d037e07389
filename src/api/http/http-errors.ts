/**
 * The HTTP API's ONE mapping from catalogue error codes (src/errors.ts) to HTTP responses.
 *
 * Every error response has the same shape, so clients can rely on it:
 * - status from {@link HTTP_ERROR_TABLE};
 * - `Content-Type: text/plain; charset=utf-8` and a one-line body `error: <message>\n`;
 * - `X-Raftkv-Error-Code: <code>` (the stable code; the message may be reworded);
 * - `Retry-After: <seconds>` when the condition is transient and a retry may succeed;
 * - `Allow` on 405;
 * - `X-Raftkv-Applied-Index` like every other response (set by the caller).
 *
 * Choices worth knowing:
 * - 'conf-change-pending' is 503 with Retry-After (not 409): it is transient, the same request
 *   succeeds once the pending change has been applied.
 * - 'timeout-maybe-applied' is 504 and its body says the write may still be applied;
 *   'not-applied' is 503 and says it was not applied. A client may blindly retry only the latter.
 * - 'stopped' and 'removed' are 503 without Retry-After: this node will not recover by waiting;
 *   use another member.
 */
import type { Response } from 'express';
import { type ErrorCode, RaftkvError } from '../../errors';

/** How one error code is answered over HTTP. */
export interface HttpErrorMapping {
  readonly status: number;
  /** If set, the response carries `Retry-After` with this many seconds. */
  readonly retryAfterSeconds?: number;
}

/** The mapping table: every catalogue code has exactly one HTTP answer (the type enforces it). */
export const HTTP_ERROR_TABLE: Readonly<Record<ErrorCode, HttpErrorMapping>> = Object.freeze({
  'invalid-key': { status: 400 },
  'invalid-member-id': { status: 400 },
  'invalid-peer-url': { status: 400 },
  'invalid-request': { status: 400 },
  'key-not-found': { status: 404 },
  'member-not-found': { status: 404 },
  'not-found': { status: 404 },
  'method-not-allowed': { status: 405 },
  'member-exists': { status: 409 },
  'member-id-removed': { status: 409 },
  'last-voter': { status: 409 },
  'request-too-large': { status: 413 },
  internal: { status: 500 },
  'no-leader': { status: 503, retryAfterSeconds: 1 },
  'conf-change-pending': { status: 503, retryAfterSeconds: 1 },
  'not-applied': { status: 503, retryAfterSeconds: 1 },
  stopped: { status: 503 },
  removed: { status: 503 },
  'timeout-maybe-applied': { status: 504 },
  'read-timeout': { status: 504, retryAfterSeconds: 1 },
  'peer-url-exists': { status: 409 },
  'member-not-learner': { status: 409 },
  'learner-not-ready': { status: 409, retryAfterSeconds: 1 },
  'not-leader': { status: 409 },
  'bad-leader-transferee': { status: 409 },
});

/** Header carrying the stable error code on every error response. */
export const ERROR_CODE_HEADER = 'X-Raftkv-Error-Code';

/**
 * Writes `error` as an HTTP error response (see the module overview for the shape). Anything
 * that is not a RaftkvError is answered as 'internal' with the generic message, so internal
 * details never leak. `allow` sets the `Allow` header (for 405).
 */
export function sendError(response: Response, error: unknown, allow?: readonly string[]): void {
  const raftkvError = error instanceof RaftkvError ? error : new RaftkvError('internal');
  const mapping = HTTP_ERROR_TABLE[raftkvError.code];
  response.status(mapping.status);
  response.setHeader('Content-Type', 'text/plain; charset=utf-8');
  response.setHeader(ERROR_CODE_HEADER, raftkvError.code);
  if (mapping.retryAfterSeconds !== undefined) response.setHeader('Retry-After', String(mapping.retryAfterSeconds));
  if (allow !== undefined) response.setHeader('Allow', allow.join(', '));
  response.end(`error: ${raftkvError.message.replace(/[\r\n]+/g, ' ')}\n`);
}

