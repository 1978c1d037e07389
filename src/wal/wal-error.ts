/**
 * The one error type of the write-ahead log.
 *
 * Every failure of a WAL operation rejects with a {@link WalError}. Its `code` is stable and is
 * what callers branch on; the message is for humans. The node runtime treats every WalError as
 * fatal: it crashes the process and recovers from disk, because a log that failed to write or
 * fsync is in an unknown state (the "fsyncgate" lesson: after a failed fsync the kernel may have
 * dropped the dirty pages, so retrying the fsync can succeed without the data being durable).
 */

/**
 * Stable codes of {@link WalError}.
 * - `corrupt`: a record failed its checks somewhere other than a repairable torn tail, or the
 *   segments do not form a valid log. Start-up must stop; an operator has to look.
 * - `locked`: another live process (or another Wal in this process) holds the directory.
 * - `io`: a read, write, fsync, rename or unlink failed. After a failed write the Wal is poisoned.
 * - `poisoned`: an earlier write or fsync failed; this Wal refuses all further work.
 * - `closed`: the Wal was closed.
 * - `exists`: `Wal.create` found segments already present.
 * - `not-found`: `Wal.open` found no segments.
 */
export type WalErrorCode = 'corrupt' | 'locked' | 'io' | 'poisoned' | 'closed' | 'exists' | 'not-found';

/** Where an error happened, and what caused it. */
export interface WalErrorDetails {
  /** The file concerned (a segment, the lock file or the directory). */
  readonly file?: string;
  /** Byte offset inside `file` (for `corrupt`: the start of the bad record). */
  readonly offset?: number;
  readonly cause?: unknown;
}

/**
 * A failure of the write-ahead log. `code` is stable; `file` and `offset` locate corruption (both
 * are also spelled out in the message, so a log line alone is enough to find the bad bytes).
 */
export class WalError extends Error {
  override readonly name = 'WalError';
  readonly code: WalErrorCode;
  readonly file?: string;
  readonly offset?: number;

  constructor(code: WalErrorCode, message: string, details: WalErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.file !== undefined) this.file = details.file;
    if (details.offset !== undefined) this.offset = details.offset;
  }
}

/** The message of an unknown thrown value, for wrapping it into a WalError. */
export function describeCause(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
