/**
 * The error catalogue: every error that leaves raftkv through an edge (an HTTP or gRPC response,
 * a CLI message, a rejected promise of the node runtime) is a {@link RaftkvError} carrying one of
 * the stable {@link ErrorCode}s listed here.
 *
 * Why one catalogue: clients and operators key on codes, not on wording, so a code never changes
 * meaning once released; each API then owns exactly ONE table that maps codes to its own status
 * vocabulary (HTTP status codes in src/api/http/http-api.ts; etcd's gRPC codes and messages in the
 * gRPC API). Messages may be reworded; codes may not.
 *
 * Expected outcomes inside the Raft core are values, not exceptions (see `RejectReason` in
 * src/raft/types.ts); the node runtime turns them into RaftkvErrors at its edge, for example with
 * {@link notAppliedError}.
 *
 * The two outcomes of a failed write must never be confused:
 * - `timeout-maybe-applied`: the write was proposed to Raft and may STILL be committed and
 *   applied later. A client must not assume it failed (retrying may apply it twice).
 * - `not-applied`: the write definitely was not and will not be applied (refused or dropped
 *   before it reached the log). Retrying is safe.
 */

/**
 * Stable error codes. Each has a one-line human message in {@link ERROR_MESSAGES}.
 * Adding a code is fine; renaming or repurposing one is a breaking change.
 */
export type ErrorCode =
  | 'no-leader'
  | 'timeout-maybe-applied'
  | 'not-applied'
  | 'stopped'
  | 'removed'
  | 'invalid-key'
  | 'invalid-member-id'
  | 'invalid-peer-url'
  | 'invalid-request'
  | 'member-exists'
  | 'member-id-removed'
  | 'member-not-found'
  | 'key-not-found'
  | 'last-voter'
  | 'conf-change-pending'
  | 'request-too-large'
  | 'read-timeout'
  | 'method-not-allowed'
  | 'not-found'
  | 'internal'
  // Cluster and Maintenance (etcd v3 API, part 2)
  | 'peer-url-exists'
  | 'member-not-learner'
  | 'learner-not-ready'
  | 'not-leader'
  | 'bad-leader-transferee';

/** The default one-line message of every code. Sentences without a final full stop. */
export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = Object.freeze({
  'no-leader': 'no leader is known at the moment; retry shortly',
  'timeout-maybe-applied':
    'the request timed out after it was proposed; it may still be committed and applied',
  'not-applied': 'the request was not applied',
  stopped: 'this node is stopped',
  removed: 'this node was removed from the cluster',
  'invalid-key': 'the key is not valid',
  'invalid-member-id': 'the member ID must be a decimal number between 1 and 18446744073709551615',
  'invalid-peer-url': 'the peer URL must be of the form http(s)://host:port',
  'invalid-request': 'the request is not valid',
  'member-exists': 'a member with this ID or peer URL already exists',
  'member-id-removed': 'this member ID was removed before and can never rejoin the cluster',
  'member-not-found': 'no member has this ID',
  'key-not-found': 'the key does not exist',
  'last-voter': 'the last voting member cannot be removed',
  'conf-change-pending': 'another membership change is still pending; retry once it is applied',
  'request-too-large': 'the request body is larger than the configured maximum',
  'read-timeout': 'the read could not be served in time; nothing was changed',
  'method-not-allowed': 'the method is not allowed on this path',
  'not-found': 'no such endpoint',
  internal: 'internal error',
  'peer-url-exists': 'a member with this peer URL already exists',
  'member-not-learner': 'only a learner member can be promoted',
  'learner-not-ready': 'the learner is not yet in sync with the leader; retry once it has caught up',
  'not-leader': 'this node is not the leader',
  'bad-leader-transferee': 'the leader transferee is not a voting member of the cluster',
});

/** Every code, in catalogue order (for exhaustive tests and documentation). */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(ERROR_MESSAGES) as ErrorCode[]);

/** Options of the {@link RaftkvError} constructor. */
export interface RaftkvErrorOptions {
  /** Replaces the catalogue message (keep it one line). */
  readonly message?: string;
  /** Machine-readable context, for example `{ reason: 'proposal-dropped' }` or `{ memberId }`. */
  readonly details?: Record<string, unknown>;
  /** The underlying error, if any (kept for logs; never shown to clients). */
  readonly cause?: unknown;
}

/**
 * An error at an edge of raftkv. `code` is stable; `message` is the catalogue message unless the
 * thrower supplied a more specific one; `details` carries machine-readable context.
 */
export class RaftkvError extends Error {
  /** The stable code from the catalogue. */
  readonly code: ErrorCode;
  /** Machine-readable context; never required to understand the error. */
  readonly details?: Record<string, unknown>;

  /** Creates an error with `code`, the catalogue message unless `options.message` is given. */
  constructor(code: ErrorCode, options: RaftkvErrorOptions = {}) {
    super(
      options.message ?? ERROR_MESSAGES[code],
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'RaftkvError';
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** True if `value` is a {@link RaftkvError} (with `code`, when given). */
export function isRaftkvError(value: unknown, code?: ErrorCode): value is RaftkvError {
  return value instanceof RaftkvError && (code === undefined || value.code === code);
}

/** Creates a {@link RaftkvError} with `code`, its catalogue message and optional details. */
export function raftkvError(code: ErrorCode, details?: Record<string, unknown>): RaftkvError {
  return new RaftkvError(code, details === undefined ? {} : { details });
}

/**
 * `not-applied`: the request definitely was not (and will not be) applied. `reason` is a stable
 * string such as a core `RejectReason` ('proposal-dropped', 'no-leader', ...); it is appended to
 * the message and kept in `details.reason`.
 */
export function notAppliedError(reason: string, details: Record<string, unknown> = {}): RaftkvError {
  return new RaftkvError('not-applied', {
    message: `${ERROR_MESSAGES['not-applied']} (${reason})`,
    details: { ...details, reason },
  });
}

/**
 * `timeout-maybe-applied`: the request was proposed and the caller stopped waiting after
 * `timeoutMs`; it may still be applied.
 */
export function timeoutMaybeAppliedError(timeoutMs: number): RaftkvError {
  return new RaftkvError('timeout-maybe-applied', {
    message: `${ERROR_MESSAGES['timeout-maybe-applied']} (waited ${timeoutMs} ms)`,
    details: { timeoutMs },
  });
}

/** `read-timeout`: a read was not served within `timeoutMs`. */
export function readTimeoutError(timeoutMs: number): RaftkvError {
  return new RaftkvError('read-timeout', {
    message: `${ERROR_MESSAGES['read-timeout']} (waited ${timeoutMs} ms)`,
    details: { timeoutMs },
  });
}

/** `no-leader`, optionally with the term in which no leader is known. */
export function noLeaderError(details?: Record<string, unknown>): RaftkvError {
  return raftkvError('no-leader', details);
}

/** `invalid-key` with a specific explanation. */
export function invalidKeyError(explanation: string, key?: string): RaftkvError {
  return new RaftkvError('invalid-key', {
    message: explanation,
    ...(key === undefined ? {} : { details: { key } }),
  });
}

/** `invalid-member-id` for the text `input` (included in the message, truncated). */
export function invalidMemberIdError(input: string): RaftkvError {
  return new RaftkvError('invalid-member-id', {
    message: `${ERROR_MESSAGES['invalid-member-id']}, got ${JSON.stringify(truncate(input))}`,
    details: { input: truncate(input) },
  });
}

/** `invalid-peer-url` for the text `input`, with why it was refused. */
export function invalidPeerUrlError(input: string, why: string): RaftkvError {
  return new RaftkvError('invalid-peer-url', {
    message: `${ERROR_MESSAGES['invalid-peer-url']} (${why}), got ${JSON.stringify(truncate(input))}`,
    details: { input: truncate(input), why },
  });
}

/** `member-exists`: `memberId` (or its peer URL) is already a member. */
export function memberExistsError(memberId: bigint, peerUrl?: string): RaftkvError {
  return new RaftkvError('member-exists', {
    message: `member ${memberId} (or its peer URL) already exists`,
    details: { memberId: memberId.toString(), ...(peerUrl === undefined ? {} : { peerUrl }) },
  });
}

/** `member-id-removed`: `memberId` was removed before and can never rejoin. */
export function memberIdRemovedError(memberId: bigint): RaftkvError {
  return new RaftkvError('member-id-removed', {
    message: `member ${memberId} was removed before and can never rejoin the cluster`,
    details: { memberId: memberId.toString() },
  });
}

/** `member-not-found`: no member has `memberId`. */
export function memberNotFoundError(memberId: bigint): RaftkvError {
  return new RaftkvError('member-not-found', {
    message: `no member has ID ${memberId}`,
    details: { memberId: memberId.toString() },
  });
}

/** `last-voter`: removing `memberId` would leave no voter. */
export function lastVoterError(memberId: bigint): RaftkvError {
  return new RaftkvError('last-voter', {
    message: `member ${memberId} is the last voting member and cannot be removed`,
    details: { memberId: memberId.toString() },
  });
}

/** `request-too-large`: a body over `limitBytes`. */
export function requestTooLargeError(limitBytes: number): RaftkvError {
  return new RaftkvError('request-too-large', {
    message: `${ERROR_MESSAGES['request-too-large']} (${limitBytes} bytes); nothing was changed`,
    details: { limitBytes },
  });
}

/** Keeps user input quoted in messages short. */
function truncate(text: string): string {
  return text.length <= 64 ? text : `${text.slice(0, 64)}...`;
}
