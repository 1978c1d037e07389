/**
 * The checker on long, well-behaved histories: 5,000 operations from 10 sequential clients
 * over 5 keys, with the overlap a real workload has. Asserts the verdicts only and prints the
 * time (no timed assertions: a slow machine must not fail the build).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizability } from './checker';
import type { Operation } from './history';
import { SeededRandom } from './seeded-random';

/**
 * Simulates `clientCount` sequential clients against an atomic store: each operation takes
 * effect at a random instant inside its interval, so the history is linearizable by
 * construction. A fraction of puts time out (indeterminate); half of those took effect, some of
 * them long after the client gave up.
 */
function simulateWorkload(
  random: SeededRandom,
  operationCount: number,
  clientCount: number,
  keys: readonly string[],
  timeoutFraction = 0.02,
): Operation[] {
  interface Draft {
    operation: Operation;
    pointMs: number;
    applied: boolean;
  }
  const clientClocksMs = new Array<number>(clientCount).fill(0);
  const drafts: Draft[] = [];
  for (let index = 0; index < operationCount; index++) {
    const client = index % clientCount;
    const callTimeMs = (clientClocksMs[client] ?? 0) + random.integerBetween(0, 3);
    const returnTimeMs = callTimeMs + random.integerBetween(1, 20);
    clientClocksMs[client] = returnTimeMs;
    const isPut = random.chance(0.5);
    const timedOut = isPut && random.chance(timeoutFraction);
    drafts.push({
      operation: {
        id: index + 1,
        client,
        key: random.pick(keys),
        kind: isPut ? 'put' : 'get',
        value: isPut ? `value-${index}` : null,
        callTimeMs,
        returnTimeMs,
        outcome: timedOut ? 'indeterminate' : 'ok',
      },
      pointMs:
        timedOut && random.chance(0.5)
          ? returnTimeMs + random.integerBetween(0, 500)
          : callTimeMs + random.nextFloat() * (returnTimeMs - callTimeMs),
      applied: !timedOut || random.chance(0.5),
    });
  }
  const registers = new Map<string, string | null>();
  const history: Operation[] = [];
  for (const draft of drafts.sort((a, b) => a.pointMs - b.pointMs)) {
    const operation = draft.operation;
    if (operation.kind === 'put') {
      if (draft.applied) registers.set(operation.key, operation.value);
      history.push(operation);
    } else {
      history.push({ ...operation, value: registers.get(operation.key) ?? null });
    }
  }
  return history.sort((a, b) => a.callTimeMs - b.callTimeMs);
}

test('5,000 well-behaved operations over 5 keys are checked quickly and accepted', () => {
  const history = simulateWorkload(new SeededRandom(7), 5000, 10, ['a', 'b', 'c', 'd', 'e']);
  const startedMs = performance.now();
  const result = checkLinearizability(history);
  const elapsedMs = performance.now() - startedMs;
  console.log(
    `checked ${history.length} operations in ${elapsedMs.toFixed(0)}ms; steps per key: ` +
      result.keys.map((report) => `${report.key}=${report.steps}`).join(' '),
  );
  assert.equal(result.verdict, 'linearizable');
});

test('5,000 operations from 10 clients on ONE key, 5% of puts timing out, are accepted', () => {
  const history = simulateWorkload(new SeededRandom(9), 5000, 10, ['hot'], 0.05);
  const startedMs = performance.now();
  const result = checkLinearizability(history);
  const elapsedMs = performance.now() - startedMs;
  console.log(`checked ${history.length} operations on one key in ${elapsedMs.toFixed(0)}ms, ${result.keys[0]?.steps} steps`);
  assert.equal(result.verdict, 'linearizable');
});

test('one stale read hidden among 5,000 operations is found and shrunk', () => {
  const history = simulateWorkload(new SeededRandom(8), 5000, 10, ['a', 'b', 'c', 'd', 'e']);
  // Find the last two acknowledged puts to "c" that do not overlap, then read the older value
  // after both.
  const puts = history.filter((operation) => operation.key === 'c' && operation.kind === 'put' && operation.outcome === 'ok');
  const newer = puts[puts.length - 1] as Operation;
  const older = [...puts].reverse().find((operation) => operation.returnTimeMs < newer.callTimeMs) as Operation;
  const endMs = Math.max(...history.map((operation) => operation.returnTimeMs));
  const stale: Operation = {
    id: history.length + 1,
    client: 99,
    key: 'c',
    kind: 'get',
    value: older.value,
    callTimeMs: endMs + 1,
    returnTimeMs: endMs + 2,
    outcome: 'ok',
  };
  const startedMs = performance.now();
  const result = checkLinearizability([...history, stale]);
  console.log(`found the stale read in ${(performance.now() - startedMs).toFixed(0)}ms`);
  assert.ok(result.verdict === 'not-linearizable');
  assert.equal(result.key, 'c');
  assert.ok(result.counterexample.some((operation) => operation.id === stale.id));
  assert.ok(result.counterexample.length <= 4, `counterexample has ${result.counterexample.length} operations`);
  console.log(result.explanation);
});
