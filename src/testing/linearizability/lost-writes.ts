/**
 * The lost-write checker: after the cluster has healed, the final (linearizable) read of each
 * key must be explained by the writes the clients saw acknowledged.
 *
 * The rule, per key. Let an acknowledged PUT be one with outcome `ok`, and let T be the
 * latest call time of any acknowledged PUT to the key (the call of "the last acknowledged
 * PUT" in real time). A PUT w (ok or indeterminate) is "current" if it was not over by T:
 * `returnTime(w) >= T`, with an indeterminate PUT's return time taken as +∞. The final value
 * must be written by a current PUT. Why: if w returned before the last acknowledged PUT q was
 * called, q takes effect after w in every linearization, so w's value can only be the final
 * value if it was written again, which unique values rule out. Consequences:
 * - if no PUT to the key was acknowledged, the final value may be absent or the value of any
 *   PUT that was not reported as failed;
 * - if some PUT was acknowledged, "absent" is a lost write;
 * - a final value written only by a FAILED PUT means a write reported as not applied was
 *   applied;
 * - a final value nobody wrote is corruption.
 * It assumes, like the workload, that every PUT writes a unique value. A key that had PUTs
 * but no final read is reported too: the check could not be made.
 *
 * This complements the linearizability checker: it needs only the final reads, so it still
 * says something when the full search is 'unknown', and it states the durability property
 * ("no acknowledged write is lost across crashes and partitions") in its own words.
 */
import { describeOperation, effectiveReturnTimeMs, type Operation } from './history';

/** The value of one key read after the cluster healed (`null` = absent). */
export interface FinalRead {
  /** The key read. */
  readonly key: string;
  /** The value read; `null` when the key was absent. */
  readonly value: string | null;
}

/** One key whose final value is not explained by its writes. */
export interface LostWriteViolation {
  /** The key. */
  readonly key: string;
  /** What went wrong (see the module overview). */
  readonly kind: 'lost-write' | 'failed-write-applied' | 'unwritten-value' | 'no-final-read';
  /** The final value read, `null` when absent or not read. */
  readonly finalValue: string | null;
  /** The acknowledged PUT with the latest call time, if any. */
  readonly lastAcknowledgedPut: Operation | undefined;
  /** The PUT(s) that wrote the final value, if any. */
  readonly writers: readonly Operation[];
  /** A human-readable account. */
  readonly explanation: string;
}

/** The checker's verdict. */
export type LostWriteResult =
  | { readonly ok: true; readonly keysChecked: number }
  | { readonly ok: false; readonly keysChecked: number; readonly violations: readonly LostWriteViolation[] };

/**
 * Checks that each key's final value is written by a PUT that was acknowledged last or was
 * concurrent with or after the last acknowledged PUT. Keys checked: every key with a PUT in
 * the history, plus every key with a final read.
 */
export function checkLostWrites(history: readonly Operation[], finalReads: readonly FinalRead[]): LostWriteResult {
  const putsByKey = new Map<string, Operation[]>();
  for (const operation of history) {
    if (operation.kind !== 'put') continue;
    const list = putsByKey.get(operation.key) ?? [];
    list.push(operation);
    putsByKey.set(operation.key, list);
  }
  const finalByKey = new Map<string, string | null>();
  for (const read of finalReads) finalByKey.set(read.key, read.value);
  const keys = [...new Set([...putsByKey.keys(), ...finalByKey.keys()])].sort();
  const violations: LostWriteViolation[] = [];
  for (const key of keys) {
    const puts = putsByKey.get(key) ?? [];
    const acknowledged = puts.filter((operation) => operation.outcome === 'ok');
    let lastAcknowledgedPut: Operation | undefined;
    for (const operation of acknowledged) {
      if (lastAcknowledgedPut === undefined || operation.callTimeMs > lastAcknowledgedPut.callTimeMs) {
        lastAcknowledgedPut = operation;
      }
    }
    const lastDescription =
      lastAcknowledgedPut === undefined ? 'no PUT was acknowledged' : `the last acknowledged PUT is ${describeOperation(lastAcknowledgedPut)}`;
    if (!finalByKey.has(key)) {
      violations.push({
        key,
        kind: 'no-final-read',
        finalValue: null,
        lastAcknowledgedPut,
        writers: [],
        explanation: `key ${JSON.stringify(key)} had ${puts.length} PUT(s) but no final read succeeded; ${lastDescription}.`,
      });
      continue;
    }
    const finalValue = finalByKey.get(key) ?? null;
    if (finalValue === null) {
      if (lastAcknowledgedPut !== undefined) {
        violations.push({
          key,
          kind: 'lost-write',
          finalValue,
          lastAcknowledgedPut,
          writers: [],
          explanation: `key ${JSON.stringify(key)} is absent after healing, but ${lastDescription}.`,
        });
      }
      continue;
    }
    const writers = puts.filter((operation) => operation.value === finalValue);
    const applicable = writers.filter((operation) => operation.outcome !== 'fail');
    if (writers.length === 0) {
      violations.push({
        key,
        kind: 'unwritten-value',
        finalValue,
        lastAcknowledgedPut,
        writers,
        explanation: `key ${JSON.stringify(key)} holds ${JSON.stringify(finalValue)}, which no PUT wrote.`,
      });
      continue;
    }
    if (applicable.length === 0) {
      violations.push({
        key,
        kind: 'failed-write-applied',
        finalValue,
        lastAcknowledgedPut,
        writers,
        explanation:
          `key ${JSON.stringify(key)} holds ${JSON.stringify(finalValue)}, written only by ` +
          `${writers.map((operation) => describeOperation(operation)).join('; ')}, which was reported as not applied.`,
      });
      continue;
    }
    if (lastAcknowledgedPut === undefined) continue;
    const deadlineMs = lastAcknowledgedPut.callTimeMs;
    const current = applicable.filter((operation) => effectiveReturnTimeMs(operation) >= deadlineMs);
    if (current.length === 0) {
      violations.push({
        key,
        kind: 'lost-write',
        finalValue,
        lastAcknowledgedPut,
        writers: applicable,
        explanation:
          `key ${JSON.stringify(key)} holds ${JSON.stringify(finalValue)} from ` +
          `${applicable.map((operation) => describeOperation(operation)).join('; ')}, which returned before ` +
          `${lastDescription.replace('the last acknowledged PUT is ', '')} was called: that acknowledged write was lost.`,
      });
    }
  }
  return violations.length === 0
    ? { ok: true, keysChecked: keys.length }
    : { ok: false, keysChecked: keys.length, violations };
}
