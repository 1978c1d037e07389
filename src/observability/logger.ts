/**
 * Structured logging for a raftkv node, on pino.
 *
 * Every event is one JSON line carrying the node's member ID (`nodeId`, a decimal string), the
 * level name and an ISO-8601 time, for example:
 * `{"level":"info","time":"2025-01-01T00:00:00.000Z","pid":1,"nodeId":"1","msg":"became leader","term":2}`.
 *
 * Member IDs, lease IDs and cluster IDs are 64-bit `bigint`s. `JSON.stringify` throws on a bigint,
 * and pino's fallback writes it as a bare JSON number, which JavaScript readers round above 2^53.
 * So every bigint in a log call, however deeply nested in plain objects and arrays, is written as
 * a decimal STRING (see {@link toLoggable}). Logging never throws because of a bigint.
 *
 * {@link toCoreLogger} adapts a pino logger to the Raft core's small `Logger` port
 * (src/raft/types.ts), whose calls are `(message, fields)` rather than pino's `(fields, message)`.
 */
import pino from 'pino';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import type { Logger as CoreLogger, NodeId } from '../raft/types';

/** Log levels accepted by `--log-level`, from most to least verbose. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The logger type used throughout raftkv outside the core. */
export type RaftkvLogger = PinoLogger;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** This node's member ID; written on every line as a decimal string. */
  readonly nodeId: NodeId;
  readonly level: LogLevel;
  /** Where lines go; default standard output (synchronously written by pino's default). */
  readonly destination?: DestinationStream;
}

/**
 * Creates the node's logger: one JSON line per event with `nodeId`, level names instead of
 * numbers, ISO times, and bigint-safe fields (in log calls and in `child()` bindings).
 */
export function createLogger(options: LoggerOptions): RaftkvLogger {
  const pinoOptions: pino.LoggerOptions = {
    level: options.level,
    base: { pid: process.pid, nodeId: options.nodeId.toString() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      bindings: (bindings) => toLoggable(bindings) as Record<string, unknown>,
      log: (object) => toLoggable(object) as Record<string, unknown>,
    },
  };
  const logger = options.destination === undefined ? pino(pinoOptions) : pino(pinoOptions, options.destination);
  // pino applies `formatters.bindings` to the base bindings only, not to `child()` bindings, and
  // its fallback would write a bigint binding as a (rounded) number. So convert them on the way
  // in. Children inherit this method (pino creates them with Object.create), grandchildren too.
  const pinoChild = logger.child;
  logger.child = function child(this: RaftkvLogger, bindings, childOptions) {
    return pinoChild.call(this, toLoggable(bindings) as pino.Bindings, childOptions);
  } as typeof logger.child;
  return logger;
}

/**
 * Returns `value` with every bigint replaced by its decimal string, walking plain objects and
 * arrays (to a depth of 8; cycles are left to pino's safe serialiser). Other objects (Errors,
 * Buffers, Dates, Maps) are returned unchanged so pino's serialisers still see them.
 */
export function toLoggable(value: unknown, depth = 0): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (depth >= 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    return value.some((item) => typeof item === 'bigint' || (item !== null && typeof item === 'object'))
      ? value.map((item) => toLoggable(item, depth + 1))
      : value;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return value;
  const result: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) result[key] = toLoggable(field, depth + 1);
  return result;
}

/**
 * Adapts a pino logger to the core's `Logger` port: `logger.info(message, fields)` becomes
 * `pino.info(fields, message)`.
 */
export function toCoreLogger(logger: RaftkvLogger): CoreLogger {
  return {
    debug: (message, fields) => (fields === undefined ? logger.debug(message) : logger.debug(fields, message)),
    info: (message, fields) => (fields === undefined ? logger.info(message) : logger.info(fields, message)),
    warn: (message, fields) => (fields === undefined ? logger.warn(message) : logger.warn(fields, message)),
  };
}
