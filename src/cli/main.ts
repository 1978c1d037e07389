#!/usr/bin/env node
/**
 * The `raftkv` binary (package.json `bin`): hands the command line to the dispatcher in
 * commands.ts with the real node runner and the process's streams, then exits with its code.
 *
 * The node runtime (`runNode` from src/node/run-node.ts) is loaded only when a node is actually
 * started, so `raftkv --help` and usage errors answer at once without loading it.
 * The process exits explicitly once the command is done, after standard output has drained, so
 * that a node that has shut down (or failed) never lingers on a leftover handle.
 */
import type * as RunNodeModule from '../node/run-node';
import type * as RunCacheModule from '../cache/run-cache';
import { runCli } from './commands';

runCli(process.argv.slice(2), {
  runNode: (options) => (require('../node/run-node') as typeof RunNodeModule).runNode(options),
  runCache: (options) => (require('../cache/run-cache') as typeof RunCacheModule).runCache(options),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stderrIsTerminal: process.stderr.isTTY === true,
}).then(
  (exitCode) => exit(exitCode),
  (error: unknown) => {
    process.stderr.write(`raftkv: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    exit(1);
  },
);

/** Exits with `exitCode` once standard output has been flushed. */
function exit(exitCode: number): void {
  process.stdout.write('', () => process.exit(exitCode));
}
