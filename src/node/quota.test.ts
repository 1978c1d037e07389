/**
 * BackendQuota: the size measurement stays off the write path and is shared by concurrent checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendQuota } from './quota';
import type { AlarmType } from './cluster-entry';
import type { MvccWriteRequest } from '../mvcc/types';

const PUT: MvccWriteRequest = { kind: 'put', request: { key: Buffer.from('k'), value: Buffer.from('v') } };
const DELETE: MvccWriteRequest = { kind: 'deleteRange', request: { key: Buffer.from('k') } };

function harness(initialBytes: number) {
  const state = { bytes: initialBytes, measurements: 0, now: 0, alarms: [] as AlarmType[], raised: false };
  const pending: Array<() => void> = [];
  const quota = new BackendQuota(
    1000,
    {
      sizeBytes: () =>
        new Promise<number>((resolve) => {
          state.measurements++;
          pending.push(() => resolve(state.bytes));
        }),
      alarmRaised: () => state.raised,
      raiseAlarm: async (alarm) => {
        state.alarms.push(alarm);
        state.raised = true;
      },
    },
    100,
    () => state.now,
  );
  const settle = async () => {
    for (let round = 0; round < 5; round++) {
      while (pending.length > 0) pending.shift()!();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  };
  return { quota, state, settle };
}

test('concurrent first checks share one measurement', async () => {
  const { quota, state, settle } = harness(10);
  const checks = Array.from({ length: 64 }, () => quota.check(PUT, 10));
  await settle();
  assert.deepEqual(await Promise.all(checks), Array(64).fill(undefined));
  assert.equal(state.measurements, 1);
});

test('a stale figure is refreshed in the background, once, without blocking the check', async () => {
  const { quota, state, settle } = harness(10);
  const first = quota.check(PUT, 10);
  await settle();
  await first;
  state.now = 150;
  state.bytes = 995;
  // The check answers from the old figure (it does not wait for the slow measurement) …
  assert.equal(await Promise.race([quota.check(PUT, 10), new Promise((resolve) => setTimeout(() => resolve('blocked'), 50))]), undefined);
  assert.equal(await quota.check(PUT, 10), undefined);
  assert.equal(state.measurements, 2, 'two stale checks started one measurement');
  await settle();
  // … and once the new figure is in, a write that does not fit is measured again, then refused,
  // and the alarm is raised once.
  const refusals = [quota.check(PUT, 10), quota.check(PUT, 10)];
  await settle();
  assert.deepEqual(await Promise.all(refusals), ['no-space', 'no-space']);
  assert.deepEqual(state.alarms.length, 1);
});

test('a refusal is never based on an old figure: space freed since the last measurement lets the write through', async () => {
  const { quota, state, settle } = harness(995);
  const first = quota.check(PUT, 10);
  await settle();
  assert.equal(await first, 'no-space');
  state.bytes = 100; // compaction + defragment gave the space back
  const next = quota.check(PUT, 10);
  await settle();
  assert.equal(await next, undefined);
});

test('writes that free space are never checked', async () => {
  const { quota, state } = harness(5000);
  assert.equal(await quota.check(DELETE, 10), undefined);
  assert.equal(state.measurements, 0);
});
