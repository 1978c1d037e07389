import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { clusterIdFor } from './cluster-id';

describe('clusterIdFor', () => {
  it('is a non-zero 64-bit value that ignores member order', () => {
    const id = clusterIdFor([3n, 1n, 0xfedcba9876543210n], 'token');
    assert.ok(id > 0n && id < 1n << 64n);
    assert.equal(clusterIdFor([0xfedcba9876543210n, 3n, 1n], 'token'), id);
  });

  it('matches a value computed independently (sha256 of count, sorted IDs, token)', () => {
    // SHA-256 over 00..02 | 00..01 | 00..02 | "abc", first 8 bytes big-endian.
    const input = Buffer.concat([
      Buffer.from('0000000000000002', 'hex'),
      Buffer.from('0000000000000001', 'hex'),
      Buffer.from('0000000000000002', 'hex'),
      Buffer.from('abc'),
    ]);
    const expected = createHash('sha256').update(input).digest().readBigUInt64BE(0);
    assert.equal(clusterIdFor([2n, 1n], 'abc'), expected);
  });

  it('differs with the token and with the members', () => {
    const base = clusterIdFor([1n, 2n, 3n], 'a');
    assert.notEqual(clusterIdFor([1n, 2n, 3n], 'b'), base);
    assert.notEqual(clusterIdFor([1n, 2n, 4n], 'a'), base);
    assert.notEqual(clusterIdFor([1n, 2n], 'a'), base);
    // The member count is hashed, so moving bytes between IDs and token cannot collide.
    assert.notEqual(clusterIdFor([1n], '\0\0\0\0\0\0\0\x02'), clusterIdFor([1n, 2n], ''));
  });

  it('refuses an empty list, duplicates, 0 and IDs beyond 64 bits', () => {
    assert.throws(() => clusterIdFor([], 't'), /at least one member/);
    assert.throws(() => clusterIdFor([1n, 1n], 't'), /duplicate/);
    assert.throws(() => clusterIdFor([0n], 't'), /outside/);
    assert.throws(() => clusterIdFor([1n << 64n], 't'), /outside/);
  });
});
