/**
 * Builders shared by the checker tests: terse construction of operations and a brute-force
 * linearizability oracle that tries every order (only for histories of a handful of operations).
 */
import { effectiveReturnTimeMs, prepareForChecking, type Operation, type OperationOutcome } from './history';

let nextTestId = 1;

/** A put of `value` to `key` over [callTimeMs, returnTimeMs]. */
export function put(
  key: string,
  value: string,
  callTimeMs: number,
  returnTimeMs: number,
  outcome: OperationOutcome = 'ok',
  client = 0,
): Operation {
  return { id: nextTestId++, client, key, kind: 'put', value, callTimeMs, returnTimeMs, outcome };
}

/** A get of `key` that read `value` (`null` = absent) over [callTimeMs, returnTimeMs]. */
export function get(
  key: string,
  value: string | null,
  callTimeMs: number,
  returnTimeMs: number,
  outcome: OperationOutcome = 'ok',
  client = 0,
): Operation {
  return { id: nextTestId++, client, key, kind: 'get', value, callTimeMs, returnTimeMs, outcome };
}

/**
 * The oracle: true iff some total order of the prepared operations respects real time
 * (a before b whenever a returned before b was called) and the semantics of per-key registers
 * starting absent. Indeterminate PUTs may be placed anywhere after their call, which includes
 * "at the very end", i.e. never observed. Exponential: use on at most ~8 operations.
 */
export function bruteForceLinearizable(history: readonly Operation[]): boolean {
  const operations = prepareForChecking(history);
  const used = new Array<boolean>(operations.length).fill(false);
  const state = new Map<string, string | null>();
  const search = (placed: number): boolean => {
    if (placed === operations.length) return true;
    for (let index = 0; index < operations.length; index++) {
      if (used[index]) continue;
      const candidate = operations[index] as Operation;
      // Every unplaced operation that returned before the candidate was called must go first.
      const blocked = operations.some(
        (other, otherIndex) =>
          !used[otherIndex] && otherIndex !== index && effectiveReturnTimeMs(other) < candidate.callTimeMs,
      );
      if (blocked) continue;
      const before = state.has(candidate.key) ? (state.get(candidate.key) ?? null) : null;
      if (candidate.kind === 'get' && candidate.value !== before) continue;
      used[index] = true;
      if (candidate.kind === 'put') state.set(candidate.key, candidate.value);
      const found = search(placed + 1);
      state.set(candidate.key, before);
      used[index] = false;
      if (found) return true;
    }
    return false;
  };
  return search(0);
}
