/**
 * Subcommand dispatch of the `raftkv` binary, kept apart from main.ts so it can be tested without
 * starting a node or exiting the process: the node runner and the output streams are injected,
 * and the result is the exit code.
 *
 *   raftkv [node] [node flags]   run one node (the default; see options.ts for the flags)
 *   raftkv help | --help | -h    show the help
 *   raftkv cache [cache flags]   run one node of the distributed cache tier (src/cache)
 *   raftkv snapshot restore ...  seed a new cluster member from an etcdctl snapshot (snapshot-restore.ts)
 */
import { createLogger, type RaftkvLogger } from '../observability/logger';
import { nodeHelp, parseNodeOptions, USAGE_EXIT_CODE, type NodeOptions } from './options';
import { parseCacheOptions, type CacheNodeFlags } from '../cache/cache-options';
import type * as SnapshotRestoreModule from './snapshot-restore';

/** What the dispatcher needs from the outside world. */
export interface CliDependencies {
  /** Runs a node until it stops; resolves on a clean shutdown, rejects on failure. */
  readonly runNode: (options: NodeOptions) => Promise<void>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The logger used to report a failed node; default the node's JSON logger on stdout. */
  readonly createFailureLogger?: (options: NodeOptions) => RaftkvLogger;
  /** Runs a cache node until it stops (`raftkv cache`); absent: the command is unavailable. */
  readonly runCache?: (options: CacheNodeFlags) => Promise<void>;
  /** True when standard error is a terminal (`raftkv snapshot restore` then shows progress). */
  readonly stderrIsTerminal?: boolean;
}

/** Subcommands that are planned but not there yet; named so that they are not taken for flags. */
const RESERVED_COMMANDS: readonly string[] = [];

const COMMANDS_HELP = `Commands:
  raftkv [node] [options]   run one node (default)
  raftkv help               show this help
  raftkv cache [options]    run a cache node (raftkv cache --help)
  raftkv snapshot restore   seed a new cluster member from an \`etcdctl snapshot save\` file

`;

/**
 * Runs the command line `argv` (without the node and script paths) and returns the exit code:
 * 0 after help or a clean node shutdown, 1 if the node failed, 2 on a usage error.
 */
export async function runCli(argv: string[], dependencies: CliDependencies): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'help' || first === '--help' || first === '-h') {
    dependencies.stdout(`${COMMANDS_HELP}${nodeHelp()}`);
    return 0;
  }
  if (first === 'cache') return runCacheCommand(rest, dependencies);
  if (first === 'snapshot') {
    // Loaded only when used: it pulls in the storage modules.
    const { runSnapshotCommand } = require('./snapshot-restore') as typeof SnapshotRestoreModule;
    return runSnapshotCommand(argv.slice(1), { stdout: dependencies.stdout, stderr: dependencies.stderr, progressOnTerminal: dependencies.stderrIsTerminal === true });
  }
  if (first !== undefined && RESERVED_COMMANDS.includes(first)) {
    dependencies.stderr(`error: raftkv ${first} is not implemented yet (see raftkv help)\n`);
    return USAGE_EXIT_CODE;
  }
  const nodeArguments = first === 'node' ? rest : argv;
  if (first !== undefined && first !== 'node' && !first.startsWith('-')) {
    dependencies.stderr(`error: unknown command '${first}' (see raftkv help)\n`);
    return USAGE_EXIT_CODE;
  }
  const parsed = parseNodeOptions(nodeArguments);
  if (!parsed.ok) {
    if (parsed.exitCode === 0) dependencies.stdout(parsed.message);
    else dependencies.stderr(`${parsed.message}\n`);
    return parsed.exitCode;
  }
  try {
    await dependencies.runNode(parsed.options);
    return 0;
  } catch (error) {
    const logger = (dependencies.createFailureLogger ?? defaultFailureLogger)(parsed.options);
    logger.fatal({ err: error }, 'raftkv node failed');
    logger.flush();
    return 1;
  }
}

/** The node's own JSON logger, so the failure line looks like every other line of the node. */
function defaultFailureLogger(options: NodeOptions): RaftkvLogger {
  return createLogger({ nodeId: options.id, level: options.logLevel === 'silent' ? 'fatal' : options.logLevel });
}

/** `raftkv cache ...`: parse the cache flags and run a cache node. */
async function runCacheCommand(argv: string[], dependencies: CliDependencies): Promise<number> {
  const parsed = parseCacheOptions(argv);
  if (!parsed.ok) {
    if (parsed.exitCode === 0) dependencies.stdout(parsed.message);
    else dependencies.stderr(`${parsed.message}\n`);
    return parsed.exitCode;
  }
  if (dependencies.runCache === undefined) {
    dependencies.stderr('error: raftkv cache is not available in this build\n');
    return 1;
  }
  try {
    await dependencies.runCache(parsed.options);
    return 0;
  } catch (error) {
    dependencies.stderr(`raftkv cache failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
