/** Unit tests of the Inflights ring buffer (pipelining window by count and bytes). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inflights } from './inflights';

test('Inflights: full by count; freeLE frees everything up to an index, wrapping around the ring', () => {
  const inflights = new Inflights(3, 0);
  inflights.add(1, 10);
  inflights.add(2, 10);
  assert.equal(inflights.full(), false);
  inflights.add(3, 10);
  assert.equal(inflights.full(), true);
  assert.throws(() => inflights.add(4, 1));
  inflights.freeLE(2);
  assert.equal(inflights.count(), 1);
  inflights.add(4, 1);
  inflights.add(5, 1); // wraps
  assert.equal(inflights.count(), 3);
  inflights.freeLE(4);
  assert.equal(inflights.count(), 1);
  assert.equal(inflights.bytes(), 1);
  inflights.freeLE(100);
  assert.equal(inflights.count(), 0);
  assert.equal(inflights.bytes(), 0);
});

test('Inflights: full by bytes when maxBytes > 0; freeFirstOne frees the oldest', () => {
  const inflights = new Inflights(100, 250);
  inflights.add(1, 100);
  inflights.add(2, 100);
  assert.equal(inflights.full(), false);
  inflights.add(3, 100);
  assert.equal(inflights.full(), true);
  inflights.freeFirstOne();
  assert.equal(inflights.full(), false);
  assert.equal(inflights.bytes(), 200);
  assert.throws(() => inflights.add(3, 1), /not above/);
});
