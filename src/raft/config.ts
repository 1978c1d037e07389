/**
 * Validation of a node's {@link Config}, and the defaults the core fills in.
 *
 * The core refuses nonsense at construction (throws {@link RaftConfigError}) rather than
 * behaving strangely later: a configuration is a deployment decision, and a wrong one is a bug.
 */
import { NONE, ReadOnlyOption, type Config, type Logger } from './types';

/** Thrown by `new RawNode(config)` when the configuration is invalid. */
export class RaftConfigError extends Error {
  override name = 'RaftConfigError';
}

/**
 * Default lease drift margin (lease-based reads): 2 ticks. The lease lasts
 * `electionTicks - margin` of the leader's ticks from the send tick of the heartbeat round a
 * quorum acknowledged; a follower refuses votes for `electionTicks` of ITS ticks after receiving
 * it, of which at least `electionTicks - 1` tick intervals are whole (tick quantisation costs one
 * tick). So a margin of 1 already needs perfectly equal tick rates; 2 tolerates a leader ticking
 * up to (electionTicks - 1)/(electionTicks - 2) times slower than its followers (12.5% with
 * electionTicks = 10). Raise it for clocks you trust less.
 */
export const DEFAULT_LEASE_DRIFT_MARGIN_TICKS = 2;

/** A logger that drops everything (the default). */
export const SILENT_LOGGER: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
};

/**
 * Throws {@link RaftConfigError} unless `config` is sane: id not NONE; integer tick counts with
 * 0 < heartbeatTicks < electionTicks; a positive in-flight window; non-negative byte limits;
 * lease-based reads only with checkQuorum, and a drift margin in [1, electionTicks).
 */
export function validateConfig(config: Config): void {
  const fail = (message: string): never => {
    throw new RaftConfigError(message);
  };
  if (typeof config.id !== 'bigint' || config.id === NONE || config.id < 0n) fail('id must be a positive bigint (not NONE)');
  if (!Number.isInteger(config.electionTicks) || config.electionTicks < 2) fail('electionTicks must be an integer ≥ 2');
  if (!Number.isInteger(config.heartbeatTicks) || config.heartbeatTicks < 1) fail('heartbeatTicks must be an integer ≥ 1');
  if (config.heartbeatTicks >= config.electionTicks) fail('heartbeatTicks must be < electionTicks');
  if (!Number.isInteger(config.maxInflightMessages) || config.maxInflightMessages < 1) {
    fail('maxInflightMessages must be an integer ≥ 1');
  }
  for (const key of ['maxSizePerMsgBytes', 'maxInflightBytes', 'maxUncommittedEntriesBytes', 'maxCommittedSizePerReadyBytes'] as const) {
    const value = config[key];
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) fail(`${key} must be a number ≥ 0`);
  }
  if (typeof config.random !== 'function') fail('random must be a function');
  if (config.applied !== undefined && (!Number.isInteger(config.applied) || config.applied < 0)) {
    fail('applied must be a non-negative integer');
  }
  if (config.readOnlyOption !== ReadOnlyOption.Safe && config.readOnlyOption !== ReadOnlyOption.LeaseBased) {
    fail(`unknown readOnlyOption ${String(config.readOnlyOption)}`);
  }
  if (config.readOnlyOption === ReadOnlyOption.LeaseBased && !config.checkQuorum) {
    fail('lease-based reads require checkQuorum (followers must refuse votes while the leader is alive)');
  }
  const margin = config.leaseDriftMarginTicks;
  if (margin !== undefined && (!Number.isInteger(margin) || margin < 1 || margin >= config.electionTicks)) {
    fail('leaseDriftMarginTicks must be an integer in [1, electionTicks)');
  }
}

/**
 * The effective lease drift margin: `config.leaseDriftMarginTicks`, else
 * {@link DEFAULT_LEASE_DRIFT_MARGIN_TICKS} capped at electionTicks - 1.
 */
export function effectiveLeaseDriftMarginTicks(config: Config): number {
  return config.leaseDriftMarginTicks ?? Math.min(DEFAULT_LEASE_DRIFT_MARGIN_TICKS, config.electionTicks - 1);
}
