import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combineResults, type LoadResult } from './load';

/** A measured run: `latencies` (ms) completed in `seconds`, with per-operation CPU and counters. */
function run(latencies: number[], seconds: number, serverCpu: number, clientCpu: number, fsyncs: number, errors = 0): LoadResult {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    name: 'x',
    clients: 64,
    operations: sorted.length,
    errors,
    seconds,
    operationsPerSecond: sorted.length / seconds,
    p50Ms: sorted[Math.floor(0.5 * sorted.length)]!,
    p99Ms: sorted[Math.floor(0.99 * sorted.length)]!,
    errorSamples: errors > 0 ? ['boom'] : [],
    serverCpuMicrosPerOp: serverCpu,
    clientCpuMicrosPerOp: clientCpu,
    counterDeltas: { fsyncs },
    latenciesMs: sorted,
  };
}

test('combineResults: throughput is all operations over all time, not the mean of the turns', () => {
  // 300 operations in 1 s, then 100 in 4 s: 80/s overall (the mean of 300/s and 25/s would be 162.5).
  const fast = run(Array.from({ length: 300 }, () => 1), 1, 100, 200, 30);
  const slow = run(Array.from({ length: 100 }, () => 9), 4, 300, 400, 50, 2);
  const combined = combineResults('raftkv Put', [fast, slow]);
  assert.equal(combined.name, 'raftkv Put');
  assert.equal(combined.operations, 400);
  assert.equal(combined.seconds, 5);
  assert.equal(combined.operationsPerSecond, 80);
  assert.equal(combined.errors, 2);
  assert.deepEqual(combined.errorSamples, ['boom']);
  assert.deepEqual(combined.counterDeltas, { fsyncs: 80 });
  // CPU per operation weighted by operations: (300×100 + 100×300) / 400.
  assert.equal(combined.serverCpuMicrosPerOp, 150);
  assert.equal(combined.clientCpuMicrosPerOp, 250);
});

test('combineResults: percentiles are taken over every latency of every turn', () => {
  // Over the union: the median is b's 2 (a's alone is 1), the p99 a's tail (the mean of the turns' p99s is 26).
  const a = run([...Array.from({ length: 98 }, () => 1), 50, 50], 1, 1, 1, 0);
  const b = run(Array.from({ length: 100 }, () => 2), 1, 1, 1, 0);
  const combined = combineResults('c', [a, b]);
  assert.equal(combined.p50Ms, 2);
  assert.equal(combined.p99Ms, 50);
  assert.equal(combined.latenciesMs.length, 200);
  assert.ok(combined.latenciesMs.every((value, index) => index === 0 || combined.latenciesMs[index - 1]! <= value), 'ascending');
});

test('combineResults: without server CPU figures there is none in the result, and no turns is an error', () => {
  const { serverCpuMicrosPerOp: _dropped, ...withoutServer } = run([1, 2, 3], 1, 5, 5, 0);
  const combined = combineResults('c', [withoutServer, withoutServer]);
  assert.equal('serverCpuMicrosPerOp' in combined, false);
  assert.throws(() => combineResults('c', []), /no results/);
});
