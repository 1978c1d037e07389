/**
 * The simulator in the test suite: a fixed set of seeds with every fault on (`all`), each run
 * through the faulty phase and the liveness phase, plus a determinism check (a seed replays
 * event for event). A failure prints the replay command and the violation with its context.
 *
 * Budget: about 15 s on a two-core machine (240 seeds × 4,000 time units).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFailure, replayCommand } from './main';
import { buildRun, runSeed } from './run';
import { parseFaults } from './workload';

const SEED_FIRST = 1;
const SEED_COUNT = 240;
const STEPS = 4000;

test(`${SEED_COUNT} seeds with all faults keep every invariant and recover after healing`, () => {
  const faults = parseFaults('all');
  const failures: string[] = [];
  let committed = 0;
  let crashes = 0;
  let partitions = 0;
  let snapshotsInstalled = 0;
  let confChanges = 0;
  for (let seed = SEED_FIRST; seed < SEED_FIRST + SEED_COUNT; seed++) {
    const result = runSeed({ seed, steps: STEPS, faults });
    committed += result.committedIndex;
    crashes += result.simulator.crashes;
    partitions += result.workload.partitions;
    snapshotsInstalled += result.simulator.snapshotsInstalled;
    confChanges += result.workload.confChangesAccepted;
    if (!result.ok) failures.push(formatFailure(result, replayCommand(seed, STEPS, undefined, 'all')));
  }
  assert.deepEqual(failures, [], failures.join('\n\n'));
  // The runs must actually exercise the system, not idle.
  assert.ok(committed > SEED_COUNT * 100, `committed ${committed}`);
  assert.ok(crashes > SEED_COUNT, `crashes ${crashes}`);
  assert.ok(partitions > SEED_COUNT / 2, `partitions ${partitions}`);
  assert.ok(snapshotsInstalled > SEED_COUNT / 2, `snapshots installed ${snapshotsInstalled}`);
  assert.ok(confChanges > SEED_COUNT, `conf changes ${confChanges}`);
});

test('a seed replays exactly: the same settings, counters and events', () => {
  const faults = parseFaults('all');
  const first = buildRun({ seed: 4242, steps: 1500, faults });
  const second = buildRun({ seed: 4242, steps: 1500, faults });
  for (let step = 0; step < 1500; step++) {
    first.workload.step();
    first.simulator.runTimeUnit();
    second.workload.step();
    second.simulator.runTimeUnit();
  }
  assert.equal(first.settings, second.settings);
  assert.deepEqual(first.simulator.counters, second.simulator.counters);
  assert.deepEqual(first.workload.counters, second.workload.counters);
  assert.deepEqual(first.simulator.recentEvents(), second.simulator.recentEvents());
  const other = runSeed({ seed: 4243, steps: 1500, faults });
  const same = runSeed({ seed: 4242, steps: 1500, faults });
  assert.notDeepEqual(other.simulator, same.simulator);
});

test('with no faults every seed stays safe and live', () => {
  const faults = parseFaults('none');
  for (let seed = 1; seed <= 20; seed++) {
    const result = runSeed({ seed, steps: 2000, faults });
    assert.equal(result.ok, true, formatFailure(result, replayCommand(seed, 2000, undefined, 'none')));
    assert.equal(result.simulator.crashes, 0);
    assert.ok(result.committedIndex > 20, `seed ${seed} committed only ${result.committedIndex}`);
  }
});

test('fault lists parse; unknown kinds are refused; all means every kind', () => {
  assert.equal(parseFaults('none').size, 0);
  assert.deepEqual([...parseFaults('loss,crash')], ['loss', 'crash']);
  assert.equal(parseFaults('all').has('torn-snapshot-write'), true);
  assert.equal(parseFaults('all,torn-snapshot-write').has('torn-snapshot-write'), true);
  assert.equal(parseFaults('everything').has('torn-snapshot-write'), true);
  assert.throws(() => parseFaults('loss,gremlins'), /unknown fault kind/);
});
