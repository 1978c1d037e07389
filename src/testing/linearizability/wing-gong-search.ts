/**
 * The search at the heart of the linearizability checker: Wing & Gong's backtracking search
 * ("Testing and verifying concurrent objects", 1993) with Lowe's memoisation ("Testing for
 * linearizability", 2017), over the history of ONE register.
 *
 * How it works. Every operation contributes a call event and a return event; events are
 * sorted by time, calls before returns at equal times (so operations that touch at an instant
 * count as concurrent, which forgives coarse clocks rather than inventing violations), and
 * threaded onto a doubly-linked list. Walking the list from its head, every call event met
 * before the first return event belongs to an operation that could take effect next: no
 * pending operation has returned yet. The search tries those candidates (reads that match the
 * register greedily, then writes by earliest return time; see the main loop for why both are
 * safe); linearizing one applies it to the register model and "lifts" its two events out of the list
 * (dancing links, so it can be put back in O(1)). Reaching a return event means the operation
 * that returned there has not been linearized although it must have taken effect by then:
 * backtrack. An empty list means every operation has been linearized: success.
 *
 * Lowe's memoisation: two search states with the same SET of linearized operations and the
 * same register value have the same future, so each (set, value) pair is explored once. The
 * set is a bitset; its hash is maintained incrementally (Zobrist hashing: the XOR of a random
 * word per member), and equal hashes are confirmed by comparing the bitsets.
 *
 * Why this is fast on well-behaved histories: when most operations do not overlap, the list
 * offers one or two candidates at a time, the first tried is right, and the search is a pass
 * costing O(n) steps (plus O(n / 32) per cache insertion). Budgets (steps and a deadline)
 * turn pathological histories into an explicit 'unknown' instead of a hang.
 *
 * This module knows nothing of keys, outcomes or explanations; see checker.ts.
 */

/** One operation of a single-register history, as the search sees it. */
export interface SearchOperation {
  /** `put` sets the register to `value`; `get` must observe `value` (null = absent). */
  readonly kind: 'put' | 'get';
  /** The written or read value. */
  readonly value: string | null;
  /** When the operation was invoked. */
  readonly callTimeMs: number;
  /** By when it must have taken effect; `Infinity` for an operation that may never return. */
  readonly returnTimeMs: number;
}

/** Limits that turn a search that would take too long into an 'unknown' result. */
export interface SearchBudget {
  /** The maximum number of search steps (list moves, linearizations and backtracks). */
  readonly maxSteps: number;
  /** Absolute deadline on `performance.now()`, checked every few thousand steps. */
  readonly deadlineMs: number;
}

/** Why a candidate could not be linearized at the search's deepest dead end. */
export interface RejectedCandidate {
  /** Index of the operation in the input array. */
  readonly operation: number;
  /** `model`: a get that would read a different value; `explored`: that state was seen before. */
  readonly reason: 'model' | 'explored';
}

/** The deepest point the search reached before it had to backtrack. */
export interface DeepestDeadEnd {
  /** Indexes of the operations linearized so far, in linearization order. */
  readonly linearized: readonly number[];
  /** The register's value after them. */
  readonly registerValue: string | null;
  /** The operation that returned without having been linearized. */
  readonly blockedBy: number;
  /** The candidates that were pending at that point, and why none of them could go next. */
  readonly candidates: readonly RejectedCandidate[];
}

/** The outcome of a search. */
export type SearchResult =
  | { readonly verdict: 'linearizable'; readonly order: readonly number[]; readonly steps: number }
  | { readonly verdict: 'not-linearizable'; readonly deepest: DeepestDeadEnd; readonly steps: number }
  | {
      readonly verdict: 'unknown';
      readonly reason: 'step-budget' | 'time-budget';
      readonly deepest: DeepestDeadEnd | undefined;
      readonly steps: number;
    };

const TIME_CHECK_INTERVAL_STEPS = 4096;

/** The register model's transition: the new value, or `undefined` if the operation is impossible. */
function stepRegister(state: string | null, operation: SearchOperation): { value: string | null } | undefined {
  if (operation.kind === 'put') return { value: operation.value };
  return operation.value === state ? { value: state } : undefined;
}

/** FNV-1a over UTF-16 code units; only a hash, equality is always confirmed. */
function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Deterministic per-operation Zobrist words (splitmix-style mixing of the index). */
function zobristWord(index: number): number {
  let value = (index + 1) * 0x9e3779b1;
  value = Math.imul(value ^ (value >>> 16), 0x85ebca6b);
  value = Math.imul(value ^ (value >>> 13), 0xc2b2ae35);
  return (value ^ (value >>> 16)) >>> 0;
}

interface CacheEntry {
  readonly bits: Uint32Array;
  readonly state: string | null;
}

/**
 * Searches for a linearization of a single-register history whose initial value is `null`.
 * Deterministic: the same input gives the same result and the same step count.
 */
export function searchLinearization(operations: readonly SearchOperation[], budget: SearchBudget): SearchResult {
  const count = operations.length;
  // Events: call of operation i is 2i, return is 2i + 1; the head sentinel is 2 * count.
  const head = 2 * count;
  const order: number[] = [];
  for (let event = 0; event < 2 * count; event++) order.push(event);
  const eventTime = (event: number): number => {
    const operation = operations[event >> 1] as SearchOperation;
    return (event & 1) === 0 ? operation.callTimeMs : operation.returnTimeMs;
  };
  order.sort((a, b) => {
    const timeA = eventTime(a);
    const timeB = eventTime(b);
    if (timeA !== timeB) return timeA < timeB ? -1 : 1;
    const kindA = a & 1;
    const kindB = b & 1;
    if (kindA !== kindB) return kindA - kindB; // calls (0) before returns (1)
    return a - b;
  });
  const next = new Int32Array(2 * count + 1);
  const previous = new Int32Array(2 * count + 1);
  let last = head;
  for (const event of order) {
    next[last] = event;
    previous[event] = last;
    last = event;
  }
  next[last] = -1;

  const remove = (event: number): void => {
    const before = previous[event] as number;
    const after = next[event] as number;
    next[before] = after;
    if (after !== -1) previous[after] = before;
  };
  const restore = (event: number): void => {
    const before = previous[event] as number;
    const after = next[event] as number;
    next[before] = event;
    if (after !== -1) previous[after] = event;
  };

  const words = Math.max(1, Math.ceil(count / 32));
  const bits = new Uint32Array(words);
  const zobrist = new Uint32Array(count);
  for (let index = 0; index < count; index++) zobrist[index] = zobristWord(index);
  const valueHashes = new Map<string, number>();
  const stateHash = (state: string | null): number => {
    if (state === null) return 0x5bd1e995;
    let hash = valueHashes.get(state);
    if (hash === undefined) {
      hash = hashString(state);
      valueHashes.set(state, hash);
    }
    return hash;
  };
  const cache = new Map<number, CacheEntry[]>();
  /** Inserts (bits, state) unless present; true if it was new. */
  const remember = (setHash: number, state: string | null): boolean => {
    const key = (setHash ^ stateHash(state)) >>> 0;
    const bucket = cache.get(key);
    if (bucket !== undefined) {
      for (const entry of bucket) {
        if (entry.state !== state) continue;
        let equal = true;
        for (let word = 0; word < words; word++) {
          if (entry.bits[word] !== bits[word]) {
            equal = false;
            break;
          }
        }
        if (equal) return false;
      }
      bucket.push({ bits: bits.slice(), state });
    } else {
      cache.set(key, [{ bits: bits.slice(), state }]);
    }
    return true;
  };

  interface Frame {
    readonly call: number;
    readonly stateBefore: string | null;
    /** A read linearized greedily; backtracking never tries alternatives at its level. */
    readonly forced: boolean;
    /** The level's candidate puts in the order tried, and where to resume among them. */
    readonly candidates: readonly number[];
    readonly resumeAt: number;
  }
  const stack: Frame[] = [];
  let state: string | null = null;
  let setHash = 0;
  let steps = 0;
  let deepest: DeepestDeadEnd | undefined;

  const recordDeadEnd = (returnEvent: number): void => {
    if (deepest !== undefined && deepest.linearized.length >= stack.length) return;
    const candidates: RejectedCandidate[] = [];
    for (let event = next[head] as number; event !== -1 && event !== returnEvent; event = next[event] as number) {
      if ((event & 1) !== 0) continue;
      const operation = operations[event >> 1] as SearchOperation;
      candidates.push({
        operation: event >> 1,
        reason: stepRegister(state, operation) === undefined ? 'model' : 'explored',
      });
    }
    deepest = {
      linearized: stack.map((frame) => frame.call >> 1),
      registerValue: state,
      blockedBy: returnEvent >> 1,
      candidates,
    };
  };

  /** Linearizes the operation of `call` next if the model allows it and the state is new. */
  const tryLinearize = (call: number, forced: boolean, candidates: readonly number[], resumeAt: number): boolean => {
    const index = call >> 1;
    const transition = stepRegister(state, operations[index] as SearchOperation);
    if (transition === undefined) return false;
    const word = index >> 5;
    const mask = 1 << (index & 31);
    bits[word] = (bits[word] as number) | mask;
    const nextSetHash = (setHash ^ (zobrist[index] as number)) >>> 0;
    if (!remember(nextSetHash, transition.value)) {
      bits[word] = (bits[word] as number) & ~mask;
      return false;
    }
    stack.push({ call, stateBefore: state, forced, candidates, resumeAt });
    state = transition.value;
    setHash = nextSetHash;
    remove(call);
    remove(call + 1);
    return true;
  };

  let candidates: readonly number[] = [];
  let position = 0;
  /**
   * Undoes linearizations up to and including the most recent free choice, and resumes with
   * the candidate after it. False when nothing is left to undo: no linearization exists.
   */
  const backtrack = (): boolean => {
    for (;;) {
      const frame = stack.pop();
      if (frame === undefined) return false;
      const index = frame.call >> 1;
      state = frame.stateBefore;
      setHash = (setHash ^ (zobrist[index] as number)) >>> 0;
      bits[index >> 5] = (bits[index >> 5] as number) & ~(1 << (index & 31));
      restore(frame.call + 1);
      restore(frame.call);
      if (!frame.forced) {
        candidates = frame.candidates;
        position = frame.resumeAt;
        return true;
      }
    }
  };
  const notLinearizable = (): SearchResult => ({
    verdict: 'not-linearizable',
    deepest: deepest ?? { linearized: [], registerValue: null, blockedBy: 0, candidates: [] },
    steps,
  });
  const returnTimeOf = (event: number): number => (operations[event >> 1] as SearchOperation).returnTimeMs;

  // At each level the candidates are the operations whose call precedes the first return
  // event still in the list. Two refinements over plain call-order Wing–Gong:
  // 1. Greedy reads. If a pending get reads the current value, linearizing it right now is
  //    always safe: every operation still in the list returns at or after that get's call, so
  //    none has to precede it, and a read changes nothing for the operations after it. Hence
  //    a configuration with such a get is solvable iff the configuration after it is, and the
  //    search takes no alternative at that level. Other pending gets cannot go next at all
  //    (they would read a value the register does not hold), so only puts remain.
  // 2. Earliest deadline first. Candidate puts are tried in order of return time: the
  //    operation that must take effect soonest is the likeliest to be next, while a put with
  //    a distant deadline (a slow or indeterminate one) is tried last instead of being
  //    linearized early and dragged through every later configuration.
  let fresh = true;
  while (next[head] !== -1) {
    steps++;
    if (steps > budget.maxSteps) return { verdict: 'unknown', reason: 'step-budget', deepest, steps };
    if (steps % TIME_CHECK_INTERVAL_STEPS === 0 && performance.now() > budget.deadlineMs) {
      return { verdict: 'unknown', reason: 'time-budget', deepest, steps };
    }
    if (fresh) {
      fresh = false;
      let greedy = -1;
      const puts: number[] = [];
      for (let event = next[head] as number; event !== -1 && (event & 1) === 0; event = next[event] as number) {
        const operation = operations[event >> 1] as SearchOperation;
        if (operation.kind === 'put') {
          puts.push(event);
        } else if (operation.value === state) {
          greedy = event;
          break;
        }
      }
      if (greedy !== -1) {
        if (tryLinearize(greedy, true, [], 0)) {
          fresh = true;
          continue;
        }
        // The configuration after that read was explored before and failed, so this one fails.
        if (!backtrack()) return notLinearizable();
        continue;
      }
      puts.sort((a, b) => returnTimeOf(a) - returnTimeOf(b));
      candidates = puts;
      position = 0;
    }
    if (position < candidates.length) {
      const call = candidates[position] as number;
      position++;
      if (tryLinearize(call, false, candidates, position)) fresh = true;
      continue;
    }
    // Every candidate failed: the operation of the first return event cannot be linearized
    // in time. Backtrack.
    let firstReturn = next[head] as number;
    while ((firstReturn & 1) === 0) firstReturn = next[firstReturn] as number;
    recordDeadEnd(firstReturn);
    if (!backtrack()) return notLinearizable();
  }
  return { verdict: 'linearizable', order: stack.map((frame) => frame.call >> 1), steps };
}
