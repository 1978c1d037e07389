/**
 * A value derived from an object once, kept as long as the object lives (the watch path derives
 * per-event keys, stripped events and encodings once however many watchers receive the event).
 */

/** `cache`'s value for `key`, computed by `compute` the first time. */
export function cachedPerObject<K extends object, V>(cache: WeakMap<K, V>, key: K, compute: (key: K) => V): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = compute(key);
    cache.set(key, value);
  }
  return value;
}
