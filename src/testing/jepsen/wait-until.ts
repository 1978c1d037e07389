/**
 * Polling with a deadline: the only way the fault-injection suite waits for something to
 * happen (never a bare sleep used as synchronisation).
 */

/** Resolves after `durationMs`; for pacing and backoff only, never to wait for a condition. */
export function delay(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, durationMs));
}

/**
 * Polls `condition` every `intervalMs` until it returns a value other than `undefined` or
 * `false`, and resolves with that value; rejects with `description` once `timeoutMs` has
 * passed. A condition that throws is treated as "not yet".
 */
export async function waitUntil<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  options: { readonly timeoutMs: number; readonly intervalMs?: number; readonly description: string },
): Promise<T> {
  const deadlineMs = performance.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadlineMs) {
      const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${options.timeoutMs}ms waiting for ${options.description}${cause}`);
    }
    await delay(options.intervalMs ?? 20);
  }
}
