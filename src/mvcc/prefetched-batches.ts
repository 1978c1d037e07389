/**
 * Batches from a level iterator, the next one already being read while the caller works on the
 * current one (level reads on the thread pool): one promise per batch instead of per record, and
 * the read overlapped with the decoding. Used wherever the whole record range is scanned (the
 * key index rebuild at open, snapshot images).
 */
export async function* prefetchedBatches<T>(source: { nextv(size: number): Promise<T[]> }, size: number): AsyncGenerator<T[]> {
  let next = source.nextv(size);
  try {
    for (let batch = await next; batch.length > 0; batch = await next) {
      next = source.nextv(size);
      yield batch;
    }
  } finally {
    // A caller that stops early must not close the iterator under a read still in flight.
    await next.catch(() => undefined);
  }
}
