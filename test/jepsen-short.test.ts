/**
 * The short fault-injection run that is part of `npm test` (issue "Linearizable by default"):
 * real node processes, a seeded nemesis (kill -9 and restart, SIGSTOP/SIGCONT, partitions through
 * the per-link proxies, membership changes), concurrent clients recording a history, then the
 * linearizability checker and the lost-write checker. Longer runs: `npm run jepsen -- --seconds 600`.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { FAULT_KINDS, RUN_DEFAULTS, runJepsen } from '../src/testing/jepsen/runner';
import { CLI_PATH } from './support/cluster-helpers';

it('a seeded one-minute run with every fault ends with no violation and no lost write', { timeout: 300_000 }, async () => {
  const lines: string[] = [];
  const summary = await runJepsen({
    ...RUN_DEFAULTS,
    seconds: 45,
    faults: FAULT_KINDS,
    seed: 20261121,
    cliPath: CLI_PATH,
    runDirectory: undefined,
    keepRunDirectory: false,
    extraNodeFlags: ['--snapshot-count', '500'],
    log: (line) => lines.push(line),
  });
  const report = `${summary.report}\n${lines.slice(-20).join('\n')}`;
  assert.equal(summary.error, undefined, report);
  assert.equal(summary.verdict, 'pass', report);
  assert.equal(summary.linearizability?.verdict, 'linearizable', report);
  const faults = Object.values(summary.faultsByKind).reduce((total, count) => total + count, 0);
  assert.ok(faults >= 3, `expected faults to be injected: ${JSON.stringify(summary.faultsByKind)}`);
  const acknowledged = summary.operationsByOutcome['put:ok'] ?? 0;
  assert.ok(acknowledged > 100, `expected a real workload: ${JSON.stringify(summary.operationsByOutcome)}`);
  console.log(summary.report);
});
