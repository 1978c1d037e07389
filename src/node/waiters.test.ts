/**
 * Waiters: settling by ID, and deadlines kept by one shared timer (never early, each its own).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Waiters } from './waiters';

const timeout = (label: string) => () => new Error(`timeout ${label}`);

test('a resolved or rejected waiter settles once; unknown IDs are ignored', async () => {
  const waiters = new Waiters<number>();
  const a = waiters.wait(1n, 10_000, timeout('a'));
  const b = waiters.wait(2n, 10_000, timeout('b'));
  assert.throws(() => waiters.wait(1n, 10_000, timeout('again')), /registered twice/);
  waiters.resolve(1n, 7);
  waiters.resolve(1n, 8);
  waiters.reject(2n, new Error('refused'));
  waiters.resolve(3n, 9);
  assert.equal(await a, 7);
  await assert.rejects(b, /refused/);
  assert.equal(waiters.size, 0);
});

test('each waiter times out at its own deadline, not before, whatever the order of registration', async () => {
  const waiters = new Waiters<number>();
  const started = Date.now();
  const settledAfter = (promise: Promise<number>) =>
    promise.then(
      () => ({ ok: true, ms: Date.now() - started }),
      (error: Error) => ({ ok: false, message: error.message, ms: Date.now() - started }),
    );
  const late = settledAfter(waiters.wait(1n, 120, timeout('late')));
  const early = settledAfter(waiters.wait(2n, 40, timeout('early')));
  const resolved = settledAfter(waiters.wait(3n, 60, timeout('resolved')));
  waiters.resolve(3n, 1);
  const results = await Promise.all([late, early, resolved]);
  assert.deepEqual(results.map((r) => ('message' in r ? r.message : 'ok')), ['timeout late', 'timeout early', 'ok']);
  assert.ok(results[0]!.ms >= 119, `late waiter rejected after ${results[0]!.ms} ms`);
  assert.ok(results[1]!.ms >= 39 && results[1]!.ms < 110, `early waiter rejected after ${results[1]!.ms} ms`);
  assert.equal(waiters.size, 0);
});

test('a waiter registered after the timer fired with nothing pending still times out', async () => {
  const waiters = new Waiters<number>();
  const first = waiters.wait(1n, 20, timeout('first'));
  waiters.resolve(1n, 1);
  await first;
  await new Promise((resolve) => setTimeout(resolve, 40));
  await assert.rejects(waiters.wait(2n, 20, timeout('second')), /timeout second/);
});

test('rejectAll rejects every waiter', async () => {
  const waiters = new Waiters<number>();
  const all = [waiters.wait(1n, 10_000, timeout('a')), waiters.wait(2n, 10_000, timeout('b'))];
  waiters.rejectAll(() => new Error('stopped'));
  for (const promise of all) await assert.rejects(promise, /stopped/);
});
