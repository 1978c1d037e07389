/**
 * The checker against a brute-force oracle on many small random histories (at most 7
 * operations, one or two keys, seeded). The histories come from simulated executions whose
 * reads are then perturbed, so both linearizable and non-linearizable ones are common; the
 * test asserts it saw plenty of each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizability } from './checker';
import { effectiveReturnTimeMs, formatHistoryJsonLines, prepareForChecking, type Operation, type OperationOutcome } from './history';
import { searchLinearization } from './wing-gong-search';
import { SeededRandom } from './seeded-random';
import { bruteForceLinearizable } from './test-helpers';

const HISTORIES_PER_MODE = 1500;

/**
 * One random history: operations with integer times (so ties happen), a hidden linearization
 * point inside each interval, reads computed from that order and then sometimes corrupted.
 */
function randomHistory(random: SeededRandom, uniqueValues: boolean): Operation[] {
  const count = random.integerBetween(1, 7);
  const keys = random.chance(0.5) ? ['x'] : ['x', 'y'];
  interface Draft {
    operation: Operation;
    pointMs: number;
    applied: boolean;
  }
  const drafts: Draft[] = [];
  for (let index = 0; index < count; index++) {
    const callTimeMs = random.integerBetween(0, 12);
    const returnTimeMs = callTimeMs + random.integerBetween(0, 6);
    const pointMs = callTimeMs + random.nextFloat() * (returnTimeMs - callTimeMs);
    const key = random.pick(keys);
    const isPut = random.chance(0.5);
    const roll = random.nextFloat();
    let outcome: OperationOutcome;
    if (isPut) outcome = roll < 0.65 ? 'ok' : roll < 0.9 ? 'indeterminate' : 'fail';
    else outcome = roll < 0.85 ? 'ok' : roll < 0.95 ? 'fail' : 'indeterminate';
    // An indeterminate put applied at all may apply long after its client gave up.
    const indeterminateApplied = outcome === 'indeterminate' && random.chance(0.5);
    const latePointMs = indeterminateApplied && random.chance(0.5) ? returnTimeMs + random.integerBetween(1, 10) : pointMs;
    const value = uniqueValues ? `v${index}` : `${random.integerBetween(1, 3)}`;
    drafts.push({
      operation: { id: index + 1, client: index, key, kind: isPut ? 'put' : 'get', value: isPut ? value : null, callTimeMs, returnTimeMs, outcome },
      pointMs: latePointMs,
      applied: isPut ? outcome === 'ok' || indeterminateApplied : true,
    });
  }
  const registers = new Map<string, string | null>();
  const writtenValues = drafts.filter((draft) => draft.operation.kind === 'put').map((draft) => draft.operation.value);
  const result: Operation[] = [];
  for (const draft of [...drafts].sort((a, b) => a.pointMs - b.pointMs)) {
    const operation = draft.operation;
    if (operation.kind === 'put') {
      if (draft.applied) registers.set(operation.key, operation.value);
      result.push(operation);
    } else {
      let value = registers.get(operation.key) ?? null;
      if (random.chance(0.3)) value = random.pick([null, 'never-written', ...writtenValues]);
      result.push({ ...operation, value });
    }
  }
  return result.sort((a, b) => a.id - b.id);
}

for (const uniqueValues of [false, true]) {
  test(`the checker agrees with brute force on random small histories (${uniqueValues ? 'unique' : 'repeated'} values)`, () => {
    const random = new SeededRandom(uniqueValues ? 20240611 : 19930401);
    let linearizable = 0;
    let notLinearizable = 0;
    for (let round = 0; round < HISTORIES_PER_MODE; round++) {
      const history = randomHistory(random, uniqueValues);
      const expected = bruteForceLinearizable(history);
      const result = checkLinearizability(history);
      assert.notEqual(result.verdict, 'unknown');
      assert.equal(result.ok, expected, `round ${round}: checker says ${result.verdict}, brute force says ${expected}\n${formatHistoryJsonLines(history)}`);
      if (result.verdict === 'not-linearizable') {
        // The counterexample is itself non-linearizable (checked by the oracle) and minimal.
        assert.equal(bruteForceLinearizable(result.counterexample), false, `round ${round}: counterexample is linearizable`);
        assert.equal(result.counterexampleMinimal, true);
        for (let skip = 0; skip < result.counterexample.length && result.counterexample.length > 1; skip++) {
          const smaller: Operation[] = result.counterexample.filter((_, index) => index !== skip);
          const readsUnwritten = smaller.some(
            (operation) =>
              operation.kind === 'get' &&
              operation.value !== null &&
              !smaller.some((other) => other.kind === 'put' && other.value === operation.value),
          );
          if (!readsUnwritten) assert.equal(bruteForceLinearizable(smaller), true, `round ${round}: not minimal`);
        }
      }
      // The raw search, without the checker's reductions, must agree too (single-key histories).
      const prepared = prepareForChecking(history);
      if (new Set(prepared.map((operation) => operation.key)).size <= 1) {
        const raw = searchLinearization(
          prepared.map((operation) => ({ ...operation, returnTimeMs: effectiveReturnTimeMs(operation) })),
          { maxSteps: 1_000_000, deadlineMs: Number.POSITIVE_INFINITY },
        );
        assert.equal(raw.verdict === 'linearizable', expected, `round ${round}: raw search disagrees`);
      }
      if (expected) linearizable++;
      else notLinearizable++;
    }
    console.log(`brute-force comparison: ${linearizable} linearizable, ${notLinearizable} not`);
    assert.ok(linearizable > HISTORIES_PER_MODE / 5, `only ${linearizable} linearizable histories generated`);
    assert.ok(notLinearizable > HISTORIES_PER_MODE / 10, `only ${notLinearizable} non-linearizable histories generated`);
  });
}
