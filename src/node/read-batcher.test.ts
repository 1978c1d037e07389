/**
 * ReadBatcher: rounds, batching, and contexts that never repeat across incarnations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadBatcher } from './read-batcher';

function recordingBatcher(name: string, retryMs = 60_000): { batcher: ReadBatcher; contexts: string[] } {
  const contexts: string[] = [];
  const batcher = new ReadBatcher(
    {
      issueReadIndex: (context) => {
        contexts.push(Buffer.from(context).toString('latin1'));
        return undefined;
      },
    },
    retryMs,
    name,
  );
  return { batcher, contexts };
}

test('a restarted node (a new batcher with the same name) never reuses a context (soak seed 205)', async () => {
  const before = recordingBatcher('r5');
  const after = recordingBatcher('r5');
  const staleRead = before.batcher.readIndex();
  const freshRead = after.batcher.readIndex();
  staleRead.catch(() => undefined);
  freshRead.catch(() => undefined);
  try {
    assert.equal(before.contexts.length, 1);
    assert.equal(after.contexts.length, 1);
    assert.notEqual(before.contexts[0], after.contexts[0]);
    // The leader's late answer to the previous incarnation's round must not satisfy the new one.
    after.batcher.onReadState({ index: 8005, context: Buffer.from(before.contexts[0]!, 'latin1') });
    let settled = false;
    void freshRead.then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'a foreign context resolved a read');
    after.batcher.onReadState({ index: 8420, context: Buffer.from(after.contexts[0]!, 'latin1') });
    assert.equal(await freshRead, 8420);
  } finally {
    // Stop both batchers even when an assertion failed: their retry timers keep the process alive.
    before.batcher.failAll(new Error('stopped'));
    after.batcher.failAll(new Error('stopped'));
  }
  await assert.rejects(staleRead, /stopped/);
});

test('reads arriving during a round wait for the next round, which starts when the first is answered', async () => {
  const { batcher, contexts } = recordingBatcher('r1');
  const first = batcher.readIndex();
  const second = batcher.readIndex();
  assert.equal(contexts.length, 1, 'one round in flight');
  batcher.onReadState({ index: 10, context: Buffer.from(contexts[0]!, 'latin1') });
  assert.equal(await first, 10);
  assert.equal(contexts.length, 2, 'the waiting read started a new round');
  batcher.onReadState({ index: 12, context: Buffer.from(contexts[1]!, 'latin1') });
  assert.equal(await second, 12);
});

test('callers that gave up are dropped at the next retry, so a long outage does not accumulate them', async () => {
  const { batcher, contexts } = recordingBatcher('r1', 5);
  const abandoned = batcher.readIndex(Date.now() - 1);
  const patient = batcher.readIndex(Date.now() + 60_000);
  try {
    await assert.rejects(abandoned, /deadline passed/);
    assert.equal(batcher.waitingCount, 1, 'only the caller still waiting is kept');
    assert.ok(contexts.length >= 2, 'the unanswered round was retried');
    batcher.onReadState({ index: 7, context: Buffer.from(contexts[contexts.length - 1]!, 'latin1') });
    assert.equal(await patient, 7);
  } finally {
    batcher.failAll(new Error('stopped'));
  }
});
