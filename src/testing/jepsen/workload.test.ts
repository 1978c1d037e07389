/** The workload's classification of HTTP outcomes into ok / fail / indeterminate. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpOutcome } from './http-client';
import { classifyGet, classifyPut, keyPath } from './workload';

const response = (status: number, body = '', errorCode?: string): HttpOutcome => ({ kind: 'response', status, body, errorCode });
const failure = (code: string, maybeSent: boolean): HttpOutcome => ({ kind: 'error', code, maybeSent, message: code });

test('PUT outcomes: only what certainly did not apply is a failure', () => {
  assert.equal(classifyPut(response(204)), 'ok');
  assert.equal(classifyPut(response(503, 'error: the request was not applied (no-leader)\n', 'not-applied')), 'fail');
  assert.equal(classifyPut(response(400, '', 'invalid-key')), 'fail');
  assert.equal(classifyPut(failure('ECONNREFUSED', false)), 'fail');
  assert.equal(classifyPut(response(504, '', 'timeout-maybe-applied')), 'indeterminate');
  assert.equal(classifyPut(response(503, '', 'stopped')), 'indeterminate');
  assert.equal(classifyPut(response(500, '', 'internal')), 'indeterminate');
  assert.equal(classifyPut(failure('TIMEOUT', true)), 'indeterminate');
  assert.equal(classifyPut(failure('ECONNRESET', true)), 'indeterminate');
});

test('GET outcomes: 200 and key-not-found are reads; the rest observed nothing', () => {
  assert.deepEqual(classifyGet(response(200, 'w1-3')), { outcome: 'ok', value: 'w1-3' });
  assert.deepEqual(classifyGet(response(404, '', 'key-not-found')), { outcome: 'ok', value: null });
  assert.deepEqual(classifyGet(response(404, '', 'not-found')), { outcome: 'fail', value: null });
  assert.deepEqual(classifyGet(response(504, '', 'read-timeout')), { outcome: 'indeterminate', value: null });
  assert.deepEqual(classifyGet(failure('ECONNREFUSED', false)), { outcome: 'fail', value: null });
});

test('keys map to paths', () => {
  assert.equal(keyPath('key-a'), '/key-a');
});
