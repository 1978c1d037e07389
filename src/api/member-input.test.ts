/** Tests of member ID and peer URL validation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRaftkvError } from '../errors';
import { parseMemberId, parsePeerUrl } from './member-input';

describe('parseMemberId', () => {
  it('accepts decimal 1..2^64-1', () => {
    assert.equal(parseMemberId('1'), 1n);
    assert.equal(parseMemberId('007'), 7n);
    assert.equal(parseMemberId('18446744073709551615'), 18446744073709551615n);
  });
  for (const bad of ['', '0', '-1', '+1', '1.0', '0x1', ' 1', '18446744073709551616', '1'.repeat(41)]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseMemberId(bad), (error) => isRaftkvError(error, 'invalid-member-id'));
    });
  }
});

describe('parsePeerUrl', () => {
  it('normalises valid URLs', () => {
    assert.deepEqual(parsePeerUrl(' http://127.0.0.1:12379\n'), {
      url: 'http://127.0.0.1:12379',
      protocol: 'http:',
      host: '127.0.0.1',
      port: 12379,
    });
    assert.equal(parsePeerUrl('HTTPS://Example.COM:443/').url, 'https://example.com:443');
    assert.equal(parsePeerUrl('http://[::1]:80').url, 'http://[::1]:80');
  });
  for (const bad of [
    '',
    'localhost:2380',
    'ftp://a:1',
    'http://a',
    'http://a:0',
    'http://a:65536',
    'http://a:1/x',
    'http://a:1?q',
    'http://a:1#f',
    'http://u@a:1',
    'http://:1',
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parsePeerUrl(bad), (error) => isRaftkvError(error, 'invalid-peer-url'));
    });
  }
});
