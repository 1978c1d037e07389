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

test('each waiter times out at its own deadline, not before, whatever the order of registration', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const waiters = new Waiters<number>(() => Date.now());
  const settled: string[] = [];
  const record = (promise: Promise<number>) =>
    promise.then(
      () => settled.push(`ok at ${Date.now()}`),
      (error: Error) => settled.push(`${error.message} at ${Date.now()}`),
    );
  const all = [record(waiters.wait(1n, 120, timeout('late'))), record(waiters.wait(2n, 40, timeout('early'))), record(waiters.wait(3n, 60, timeout('resolved')))];
  waiters.resolve(3n, 1);
  return (async () => {
    await flush();
    assert.deepEqual(settled, ['ok at 0']);
    t.mock.timers.tick(39);
    await flush();
    assert.deepEqual(settled, ['ok at 0'], 'nothing times out before its deadline');
    t.mock.timers.tick(1);
    await flush();
    assert.deepEqual(settled, ['ok at 0', 'timeout early at 40']);
    t.mock.timers.tick(79);
    await flush();
    assert.equal(settled.length, 2, 'the late waiter is still pending at 119 ms');
    t.mock.timers.tick(1);
    await Promise.all(all);
    assert.deepEqual(settled, ['ok at 0', 'timeout early at 40', 'timeout late at 120']);
    assert.equal(waiters.size, 0);
  })();
});

test('a waiter registered after the timer fired with nothing pending still times out', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const waiters = new Waiters<number>(() => Date.now());
  const first = waiters.wait(1n, 20, timeout('first'));
  waiters.resolve(1n, 1);
  await first;
  t.mock.timers.tick(40); // the timer armed for the first waiter fires and finds nothing
  const second = waiters.wait(2n, 20, timeout('second'));
  t.mock.timers.tick(20);
  await assert.rejects(second, /timeout second/);
});

/** Lets settled promises run their callbacks. */
async function flush(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await Promise.resolve();
}

test('rejectAll rejects every waiter', async () => {
  const waiters = new Waiters<number>();
  const all = [waiters.wait(1n, 10_000, timeout('a')), waiters.wait(2n, 10_000, timeout('b'))];
  waiters.rejectAll(() => new Error('stopped'));
  for (const promise of all) await assert.rejects(promise, /stopped/);
});
