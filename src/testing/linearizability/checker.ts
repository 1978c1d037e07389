/**
 * The linearizability checker for histories of per-key registers (the raftexample API: PUT
 * and GET of a key; a key starts absent).
 *
 * Pipeline:
 * 1. {@link prepareForChecking} drops failed operations and indeterminate GETs.
 * 2. P-compositionality (Herlihy & Wing 1990, §3.3 "locality"): a history of many registers is
 *    linearizable iff each key's sub-history is, so each key is checked on its own. This is
 *    what keeps the search small: the cost grows with the concurrency within one key, not with
 *    the whole history.
 * 3. Per key, two cheap, verdict-preserving reductions before the search:
 *    - a GET that read a value no kept PUT wrote is a violation by itself (reported at once,
 *      naming the failed PUT that wrote it, if one did);
 *    - an indeterminate PUT whose value is unique among the key's PUTs: if no GET read the
 *      value, it is dropped (it may simply not have taken effect, and "not taking effect" is
 *      always a valid choice for it when nobody saw it); if some GET read it, it certainly took
 *      effect before the earliest such GET returned, so that time replaces its +∞ return.
 *      Without this, every indeterminate PUT stays a candidate until the end of the history
 *      and the search branches on each of them.
 * 4. The Wing–Gong search with Lowe's memoisation (wing-gong-search.ts), under a per-key step
 *    and time budget. Exceeding it yields an explicit 'unknown', never a hang.
 * 5. For a violation, the key's history is shrunk (delta debugging, within its own budget) to
 *    a counterexample where removing any single operation makes it linearizable, and explained
 *    in words. Shrinking never removes a PUT whose value a remaining GET read, so the
 *    counterexample stays meaningful (a stale read keeps its two writes).
 */
import {
  describeOperation,
  effectiveReturnTimeMs,
  partitionByKey,
  prepareForChecking,
  type Operation,
} from './history';
import { searchLinearization, type DeepestDeadEnd, type SearchOperation, type SearchResult } from './wing-gong-search';

/** Budgets and switches for {@link checkLinearizability}. */
export interface CheckOptions {
  /** Search steps allowed per key before the key is 'unknown'. Default 20,000,000. */
  readonly maxStepsPerKey?: number;
  /** Wall time allowed per key's search before it is 'unknown'. Default 20,000 ms. */
  readonly timeBudgetMsPerKey?: number;
  /** Whether to shrink a violation to a 1-minimal counterexample. Default true. */
  readonly shrink?: boolean;
  /** Wall time allowed for shrinking one key's violation. Default 5,000 ms. */
  readonly shrinkTimeBudgetMs?: number;
}

/** What the checker did for one key. */
export interface KeyReport {
  /** The key. */
  readonly key: string;
  /** Operations on the key after dropping failed ones and indeterminate GETs. */
  readonly operationCount: number;
  /** Indeterminate PUTs nobody observed, dropped before the search. */
  readonly droppedUnobservedIndeterminatePuts: number;
  /** The key's verdict. */
  readonly verdict: 'linearizable' | 'not-linearizable' | 'unknown';
  /** Search steps spent on the key (excluding shrinking). */
  readonly steps: number;
  /** Wall time spent on the key, shrinking included. */
  readonly elapsedMs: number;
}

/** The checker's verdict on a whole history. */
export type LinearizabilityResult =
  | { readonly ok: true; readonly verdict: 'linearizable'; readonly keys: readonly KeyReport[] }
  | {
      readonly ok: false;
      readonly verdict: 'not-linearizable';
      /** The first key (in key order) whose sub-history is not linearizable. */
      readonly key: string;
      /** Every key found not linearizable. */
      readonly failingKeys: readonly string[];
      /** A non-linearizable sub-history of `key`, in call order. */
      readonly counterexample: readonly Operation[];
      /** True if removing any one operation of the counterexample makes it linearizable. */
      readonly counterexampleMinimal: boolean;
      /** The longest linearization found for `key`'s full sub-history, in linearization order. */
      readonly longestLinearizablePrefix: readonly Operation[];
      /** A human-readable account of the violation. */
      readonly explanation: string;
      readonly keys: readonly KeyReport[];
    }
  | {
      readonly ok: false;
      readonly verdict: 'unknown';
      /** Keys whose search ran out of budget (no key was found not linearizable). */
      readonly unknownKeys: readonly string[];
      readonly explanation: string;
      readonly keys: readonly KeyReport[];
    };

const DEFAULT_MAX_STEPS_PER_KEY = 20_000_000;
const DEFAULT_TIME_BUDGET_MS_PER_KEY = 20_000;
const DEFAULT_SHRINK_TIME_BUDGET_MS = 5_000;

/** One key's history reduced for the search, with the mapping back to the recorded operations. */
interface ReducedKeyHistory {
  readonly searchOperations: SearchOperation[];
  readonly sources: Operation[];
  readonly droppedUnobservedIndeterminatePuts: number;
}

/** The outcome of examining one key's (prepared) operations. */
type KeyExamination =
  | { readonly verdict: 'linearizable'; readonly steps: number; readonly dropped: number }
  | {
      readonly verdict: 'not-linearizable';
      readonly steps: number;
      readonly dropped: number;
      /** Set when the violation is a read of a value that no kept PUT wrote. */
      readonly unwrittenRead: Operation | undefined;
      readonly deepest: DeepestDeadEnd | undefined;
      readonly sources: readonly Operation[];
    }
  | { readonly verdict: 'unknown'; readonly steps: number; readonly dropped: number; readonly reason: string };

/** Applies the indeterminate-PUT reduction described in the module overview. */
function reduceKeyHistory(operations: readonly Operation[]): ReducedKeyHistory {
  const putCountByValue = new Map<string, number>();
  const earliestReadReturnByValue = new Map<string, number>();
  for (const operation of operations) {
    if (operation.value === null) continue;
    if (operation.kind === 'put') {
      putCountByValue.set(operation.value, (putCountByValue.get(operation.value) ?? 0) + 1);
    } else if (operation.outcome === 'ok') {
      const earliest = earliestReadReturnByValue.get(operation.value);
      if (earliest === undefined || operation.returnTimeMs < earliest) {
        earliestReadReturnByValue.set(operation.value, operation.returnTimeMs);
      }
    }
  }
  const searchOperations: SearchOperation[] = [];
  const sources: Operation[] = [];
  let dropped = 0;
  for (const operation of operations) {
    let returnTimeMs = effectiveReturnTimeMs(operation);
    if (operation.kind === 'put' && operation.outcome === 'indeterminate' && operation.value !== null) {
      if (putCountByValue.get(operation.value) === 1) {
        const observedBy = earliestReadReturnByValue.get(operation.value);
        if (observedBy === undefined) {
          dropped++;
          continue;
        }
        returnTimeMs = Math.max(operation.callTimeMs, observedBy);
      }
    }
    searchOperations.push({
      kind: operation.kind,
      value: operation.value,
      callTimeMs: operation.callTimeMs,
      returnTimeMs,
    });
    sources.push(operation);
  }
  return { searchOperations, sources, droppedUnobservedIndeterminatePuts: dropped };
}

/** Finds an ok GET that read a value no operation in `operations` writes. */
function findUnwrittenRead(operations: readonly Operation[]): Operation | undefined {
  const written = new Set<string>();
  for (const operation of operations) {
    if (operation.kind === 'put' && operation.value !== null) written.add(operation.value);
  }
  return operations.find(
    (operation) => operation.kind === 'get' && operation.value !== null && !written.has(operation.value),
  );
}

function examineKey(operations: readonly Operation[], maxSteps: number, deadlineMs: number): KeyExamination {
  const reduced = reduceKeyHistory(operations);
  const dropped = reduced.droppedUnobservedIndeterminatePuts;
  const unwrittenRead = findUnwrittenRead(operations);
  if (unwrittenRead !== undefined) {
    return { verdict: 'not-linearizable', steps: 0, dropped, unwrittenRead, deepest: undefined, sources: reduced.sources };
  }
  const result: SearchResult = searchLinearization(reduced.searchOperations, { maxSteps, deadlineMs });
  switch (result.verdict) {
    case 'linearizable':
      return { verdict: 'linearizable', steps: result.steps, dropped };
    case 'not-linearizable':
      return {
        verdict: 'not-linearizable',
        steps: result.steps,
        dropped,
        unwrittenRead: undefined,
        deepest: result.deepest,
        sources: reduced.sources,
      };
    case 'unknown':
      return { verdict: 'unknown', steps: result.steps, dropped, reason: result.reason };
  }
}

/**
 * Shrinks a non-linearizable key history by delta debugging: removes chunks of operations,
 * halving the chunk size down to one, keeping a removal only if the rest is still (provably)
 * not linearizable and every remaining GET still reads a value some remaining PUT wrote.
 * Returns the smallest failing history found and whether it is 1-minimal.
 */
function shrinkCounterexample(
  operations: readonly Operation[],
  blockedByReturnTimeMs: number | undefined,
  deadlineMs: number,
  maxStepsPerCheck: number,
): { counterexample: Operation[]; minimal: boolean } {
  const stillFails = (candidate: readonly Operation[]): boolean => {
    if (findUnwrittenRead(candidate) !== undefined) return false;
    return examineKey(candidate, maxStepsPerCheck, deadlineMs).verdict === 'not-linearizable';
  };
  let current = [...operations].sort((a, b) => a.callTimeMs - b.callTimeMs || a.id - b.id);
  // Linearizability is prefix-closed, so the history cut where the search got stuck usually
  // still fails; try that big cut first.
  if (blockedByReturnTimeMs !== undefined) {
    const prefix = current.filter((operation) => operation.callTimeMs <= blockedByReturnTimeMs);
    if (prefix.length < current.length && stillFails(prefix)) current = prefix;
  }
  let chunk = Math.max(1, Math.ceil(current.length / 2));
  for (;;) {
    let removedAny = false;
    for (let start = 0; start < current.length; ) {
      if (performance.now() > deadlineMs) return { counterexample: current, minimal: false };
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (candidate.length > 0 && stillFails(candidate)) {
        current = candidate;
        removedAny = true;
      } else {
        start += chunk;
      }
    }
    if (chunk === 1 && !removedAny) return { counterexample: current, minimal: true };
    if (!removedAny) chunk = Math.max(1, Math.ceil(chunk / 2));
  }
}

function describeValue(value: string | null): string {
  return value === null ? 'absent' : JSON.stringify(value);
}

/** Explains why a (small) non-linearizable key history is not linearizable. */
function explainCounterexample(
  key: string,
  counterexample: readonly Operation[],
  minimal: boolean,
  allOperations: readonly Operation[],
  maxSteps: number,
): string {
  const origin = Math.min(...counterexample.map((operation) => operation.callTimeMs));
  const lines: string[] = [];
  lines.push(`key ${JSON.stringify(key)} is not linearizable.`);
  lines.push(
    `Counterexample (${counterexample.length} operation${counterexample.length === 1 ? '' : 's'}` +
      `${minimal ? '; removing any one of them makes it linearizable' : '; not fully shrunk'}),` +
      ` times in ms relative to the first call:`,
  );
  for (const operation of counterexample) lines.push(`  ${describeOperation(operation, origin)}`);
  const unwritten = findUnwrittenRead(counterexample);
  if (unwritten !== undefined) {
    const failedWriter = allOperations.find(
      (operation) => operation.kind === 'put' && operation.value === unwritten.value,
    );
    lines.push(
      failedWriter === undefined
        ? `#${unwritten.id} read ${describeValue(unwritten.value)}, which no PUT to this key ever wrote.`
        : `#${unwritten.id} read ${describeValue(unwritten.value)}, written only by #${failedWriter.id}, ` +
            `which was reported as ${failedWriter.outcome === 'fail' ? 'FAILED (definitely not applied)' : failedWriter.outcome}.`,
    );
    return lines.join('\n');
  }
  const examination = examineKey(counterexample, maxSteps, performance.now() + DEFAULT_SHRINK_TIME_BUDGET_MS);
  if (examination.verdict !== 'not-linearizable' || examination.deepest === undefined) return lines.join('\n');
  const { deepest, sources } = examination;
  const source = (index: number): Operation => sources[index] as Operation;
  const prefix = deepest.linearized.map((index) => {
    const operation = source(index);
    return operation.kind === 'put' ? `#${operation.id} put ${describeValue(operation.value)}` : `#${operation.id} get`;
  });
  lines.push(
    prefix.length === 0
      ? 'No operation can be linearized first.'
      : `Longest linearizable prefix: ${prefix.join(', ')}; the register then holds ${describeValue(deepest.registerValue)}.`,
  );
  const blocked = source(deepest.blockedBy);
  lines.push(
    `#${blocked.id} returned at ${(blocked.returnTimeMs - origin).toFixed(1)}ms, so it must take effect by then, ` +
      `but none of the operations pending at that point can be linearized next:`,
  );
  for (const candidate of deepest.candidates) {
    const operation = source(candidate.operation);
    lines.push(
      candidate.reason === 'model'
        ? `  #${operation.id} would read ${describeValue(operation.value)} but the register holds ${describeValue(deepest.registerValue)};`
        : `  #${operation.id} could go next, but every continuation from there fails (already explored);`,
    );
  }
  lines.push('Every other order of these operations either contradicts real time or the register: no linearization exists.');
  return lines.join('\n');
}

/**
 * Checks that a history of per-key registers (initially absent) is linearizable.
 * Deterministic for a given history and budget; keys are examined in sorted order.
 */
export function checkLinearizability(history: readonly Operation[], options: CheckOptions = {}): LinearizabilityResult {
  const maxSteps = options.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY;
  const timeBudgetMs = options.timeBudgetMsPerKey ?? DEFAULT_TIME_BUDGET_MS_PER_KEY;
  const byKey = partitionByKey(prepareForChecking(history));
  const allByKey = partitionByKey(history);
  const keys: KeyReport[] = [];
  const failingKeys: string[] = [];
  const unknown: Array<{ key: string; reason: string }> = [];
  let firstFailure:
    | { key: string; counterexample: Operation[]; minimal: boolean; prefix: Operation[]; explanation: string }
    | undefined;
  for (const key of [...byKey.keys()].sort()) {
    const operations = byKey.get(key) ?? [];
    const startedMs = performance.now();
    const examination = examineKey(operations, maxSteps, startedMs + timeBudgetMs);
    if (examination.verdict === 'not-linearizable') {
      failingKeys.push(key);
      if (firstFailure === undefined) {
        const deepest = examination.deepest;
        const prefix = deepest === undefined ? [] : deepest.linearized.map((index) => examination.sources[index] as Operation);
        let counterexample: Operation[];
        let minimal: boolean;
        if (examination.unwrittenRead !== undefined) {
          counterexample = [examination.unwrittenRead];
          minimal = true;
        } else if (options.shrink === false) {
          counterexample = [...operations].sort((a, b) => a.callTimeMs - b.callTimeMs || a.id - b.id);
          minimal = false;
        } else {
          const blocked = deepest === undefined ? undefined : examination.sources[deepest.blockedBy];
          const shrunk = shrinkCounterexample(
            operations,
            blocked === undefined ? undefined : effectiveReturnTimeMs(blocked),
            performance.now() + (options.shrinkTimeBudgetMs ?? DEFAULT_SHRINK_TIME_BUDGET_MS),
            maxSteps,
          );
          counterexample = shrunk.counterexample;
          minimal = shrunk.minimal;
        }
        const explanation = explainCounterexample(key, counterexample, minimal, allByKey.get(key) ?? [], maxSteps);
        firstFailure = { key, counterexample, minimal, prefix, explanation };
      }
    } else if (examination.verdict === 'unknown') {
      unknown.push({ key, reason: examination.reason });
    }
    keys.push({
      key,
      operationCount: operations.length,
      droppedUnobservedIndeterminatePuts: examination.dropped,
      verdict: examination.verdict,
      steps: examination.steps,
      elapsedMs: performance.now() - startedMs,
    });
  }
  if (firstFailure !== undefined) {
    return {
      ok: false,
      verdict: 'not-linearizable',
      key: firstFailure.key,
      failingKeys,
      counterexample: firstFailure.counterexample,
      counterexampleMinimal: firstFailure.minimal,
      longestLinearizablePrefix: firstFailure.prefix,
      explanation: firstFailure.explanation,
      keys,
    };
  }
  if (unknown.length > 0) {
    return {
      ok: false,
      verdict: 'unknown',
      unknownKeys: unknown.map((entry) => entry.key),
      explanation:
        'The search ran out of budget for ' +
        unknown.map((entry) => `${JSON.stringify(entry.key)} (${entry.reason})`).join(', ') +
        '; no violation was found, but linearizability is not established. Raise the budget or ' +
        'reduce concurrency per key.',
      keys,
    };
  }
  return { ok: true, verdict: 'linearizable', keys };
}
