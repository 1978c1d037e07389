/** Tests of the error catalogue. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ERROR_CODES,
  ERROR_MESSAGES,
  RaftkvError,
  isRaftkvError,
  memberExistsError,
  notAppliedError,
  raftkvError,
  timeoutMaybeAppliedError,
} from './errors';

describe('error catalogue', () => {
  it('every code has a one-line message', () => {
    assert.ok(ERROR_CODES.length >= 19);
    for (const code of ERROR_CODES) {
      assert.match(ERROR_MESSAGES[code], /^[^\n]+$/, code);
      assert.equal(new RaftkvError(code).message, ERROR_MESSAGES[code]);
    }
  });

  it('carries code, details and cause', () => {
    const cause = new Error('disk');
    const error = new RaftkvError('stopped', { details: { why: 'shutdown' }, cause });
    assert.equal(error.code, 'stopped');
    assert.equal(error.name, 'RaftkvError');
    assert.deepEqual(error.details, { why: 'shutdown' });
    assert.equal(error.cause, cause);
    assert.ok(isRaftkvError(error));
    assert.ok(isRaftkvError(error, 'stopped'));
    assert.ok(!isRaftkvError(error, 'removed'));
    assert.ok(!isRaftkvError(new Error('x')));
    assert.equal(raftkvError('no-leader').details, undefined);
  });

  it('the two failed-write outcomes say different things', () => {
    const maybe = timeoutMaybeAppliedError(5000);
    const not = notAppliedError('proposal-dropped');
    assert.equal(maybe.code, 'timeout-maybe-applied');
    assert.match(maybe.message, /may still be committed and applied/);
    assert.equal(not.code, 'not-applied');
    assert.match(not.message, /not applied \(proposal-dropped\)/);
    assert.deepEqual(not.details, { reason: 'proposal-dropped' });
  });

  it('member helpers keep 64-bit IDs exact', () => {
    const error = memberExistsError(18446744073709551615n);
    assert.match(error.message, /18446744073709551615/);
    assert.deepEqual(error.details, { memberId: '18446744073709551615' });
  });
});
