/**
 * `raftkv cache`: runs one cache node until SIGINT or SIGTERM, then stops it cleanly (revoking
 * its registration lease, so the other nodes drop it at once). Prints one JSON log line
 * `cache node started` with the bound addresses (useful with port 0).
 */
import pino from 'pino';
import { CacheNode } from './cache-node';
import type { CacheNodeFlags } from './cache-options';

/** Runs a node; resolves after a signal-triggered clean stop, rejects if it cannot start. */
export async function runCache(flags: CacheNodeFlags): Promise<void> {
  const logger = pino({
    level: flags.logLevel,
    base: { pid: process.pid, cacheNode: flags.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
  const node = await CacheNode.start({ ...flags, logger });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await node.stop();
  logger.info('stopped');
  logger.flush();
}
