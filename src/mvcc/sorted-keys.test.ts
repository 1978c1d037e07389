/**
 * SortedKeys against a plain sorted array (the model), under seeded random inserts, scans and
 * compactions large enough to split blocks many times; and the cost that made it necessary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SortedKeys } from './sorted-keys';
import { seededRandom } from './test-support';

function collectFrom(set: SortedKeys, start: string, limit: number): string[] {
  const out: string[] = [];
  set.forEachFrom(start, (key) => {
    out.push(key);
    return out.length < limit;
  });
  return out;
}

function modelFrom(model: readonly string[], start: string, limit: number): string[] {
  return model.filter((key) => key >= start).slice(0, limit);
}

for (const seed of [1, 2, 3]) {
  test(`matches a sorted array under random inserts, scans and compactions (seed ${seed})`, () => {
    const random = seededRandom(seed);
    const key = () => String.fromCharCode(...Array.from({ length: 1 + random(6) }, () => 97 + random(4 + seed)));
    const set = new SortedKeys();
    const model = new Set<string>();
    for (let step = 0; step < 20_000; step++) {
      const roll = random(100);
      if (roll < 80) {
        const k = key();
        if (!model.has(k)) {
          model.add(k);
          set.insert(k);
        }
      } else if (roll < 98) {
        const sorted = [...model].sort();
        const start = key();
        const limit = 1 + random(50);
        assert.deepEqual(collectFrom(set, start, limit), modelFrom(sorted, start, limit), `scan from ${start} at step ${step}`);
      } else {
        const drop = key().slice(0, 1);
        set.retain((k) => !k.startsWith(drop));
        for (const k of [...model]) if (k.startsWith(drop)) model.delete(k);
      }
      assert.equal(set.size, model.size);
    }
    assert.deepEqual([...set], [...model].sort());
  });
}

test('a bulk load keeps order and accepts inserts on every side', () => {
  const keys = Array.from({ length: 5000 }, (_, index) => `k${String(index).padStart(5, '0')}`);
  const set = SortedKeys.fromSorted(keys);
  set.insert('a');
  set.insert('k02500x');
  set.insert('z');
  assert.deepEqual(collectFrom(set, 'k025', 3), ['k02500', 'k02500x', 'k02501']);
  assert.equal([...set][0], 'a');
  assert.equal([...set][set.size - 1], 'z');
  assert.equal(set.size, 5003);
});

test('200,000 keys inserted in random order stay cheap (a single sorted array moved gigabytes)', () => {
  const random = seededRandom(7);
  const set = new SortedKeys();
  const seen = new Set<string>();
  while (seen.size < 200_000) {
    const k = `key/${random(1_000_000_000)}`;
    if (seen.has(k)) continue;
    seen.add(k);
    set.insert(k);
  }
  let previous = '';
  let count = 0;
  set.forEachFrom('', (k) => {
    assert.ok(k > previous);
    previous = k;
    count += 1;
    return true;
  });
  assert.equal(count, 200_000);
});
