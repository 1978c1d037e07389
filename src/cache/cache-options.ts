/**
 * The flags of `raftkv cache`, parsed with commander and validated into {@link CacheNodeFlags}.
 * Like src/cli/options.ts it never exits and never prints: it returns the options, or a message
 * with an exit code (0 with the help text for `--help`, 2 with a one-line error).
 */
import { Command, CommanderError } from 'commander';
import { LOG_LEVELS, type LogLevel } from '../observability/logger';
import { DEFAULT_GROUP, GROUP_NAME_PATTERN } from './etcd-store';
import type { CacheGroupConfig } from './cache-node';

/** Validated flags of a cache node (durations in ms, sizes in bytes). */
export interface CacheNodeFlags {
  readonly name: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly endpoints: string[];
  readonly http: { readonly host: string; readonly port: number } | undefined;
  readonly groups: CacheGroupConfig[];
  readonly replicas: number;
  readonly ttlMs: number;
  readonly ttlJitter: number;
  readonly hotFraction: number;
  readonly leaseTtlSeconds: number;
  readonly peerTimeoutMs: number;
  readonly storeTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly logLevel: LogLevel;
}

/** The outcome of {@link parseCacheOptions}. */
export type ParseCacheOptionsResult =
  | { readonly ok: true; readonly options: CacheNodeFlags }
  | { readonly ok: false; readonly message: string; readonly exitCode: number };

const EXAMPLES = `
Groups:
  Group "default" always exists and fronts the store's keyspace: cache key my-key is store key
  /my-key (the key raftexample's PUT /my-key writes). Every other group <g> stores key k under
  /cache/<g>/k. Budgets: --group users:1048576 gives group "users" 1 MiB (default --max-bytes).

Examples:
  $ raftkv cache --name c1 --listen 127.0.0.1:7001 --endpoints 127.0.0.1:2379 --http-port 8001
  $ curl http://127.0.0.1:8001/_cache/default/my-key
  $ curl -XPUT http://127.0.0.1:8001/_cache/users/alice -d '{"age":3}'
  $ curl http://127.0.0.1:8001/_cache/-/stats
`;

class UsageError extends Error {}

/** Parses `argv` (the arguments after `cache`). */
export function parseCacheOptions(argv: readonly string[]): ParseCacheOptionsResult {
  let errorText = '';
  let helpText = '';
  const command = new Command('raftkv cache')
    .description('Run one node of the distributed cache tier in front of an etcd v3 store (raftkv or etcd).')
    .requiredOption('--name <name>', 'this node\'s name (registered as /services/cache/<name>/<listen>)')
    .requiredOption('--listen <host:port>', 'peer gRPC address; also the node\'s identity on the ring (port 0 = any)')
    .requiredOption('--endpoints <list>', 'comma-separated etcd v3 endpoints of the store, host:port')
    .option('--http-port <port>', 'port of the HTTP front (/_cache/...); omitted = no HTTP front')
    .option('--http-host <host>', 'host of the HTTP front', '127.0.0.1')
    .option('--max-bytes <n>', 'byte budget (keys + values) of each group\'s main cache', String(64 * 1024 * 1024))
    .option('--hot-max-bytes <n>', 'byte budget of each group\'s hot cache (default max-bytes/8)')
    .option('--group <name[:bytes]>', 'an extra group (repeatable); optional own budget', collect, [])
    .option('--replicas <n>', 'virtual nodes per member on the hash ring', '100')
    .option('--ttl-seconds <s>', 'time-to-live of a cached entry (a backstop; coherence comes from the watch)', '300')
    .option('--ttl-jitter <fraction>', 'entries live ttl × (1 − jitter × random), jitter in [0, 1)', '0.1')
    .option('--hot-fraction <fraction>', 'probability of keeping a copy of a peer\'s value', '0.1')
    .option('--lease-ttl-seconds <s>', 'TTL of the registration lease: a dead node leaves the rings within it', '10')
    .option('--peer-timeout-ms <ms>', 'deadline of every peer call', '500')
    .option('--store-timeout-ms <ms>', 'deadline of every etcd call', '5000')
    .option('--max-value-bytes <n>', 'largest value accepted by PUT', String(1024 * 1024))
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .addHelpText('after', EXAMPLES)
    .exitOverride()
    .configureOutput({ writeOut: (text) => (helpText += text), writeErr: (text) => (errorText += text) });
  helpText = '';
  try {
    command.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return { ok: false, message: helpText === '' ? command.helpInformation() : helpText, exitCode: 0 };
      return usage((errorText === '' ? error.message : errorText).trim().replace(/\s*\n\s*/g, ' '));
    }
    throw error;
  }
  try {
    return { ok: true, options: validate(command.opts()) };
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    throw error;
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function usage(message: string): ParseCacheOptionsResult {
  return { ok: false, message: `${message} (see raftkv cache --help)`, exitCode: 2 };
}

function validate(raw: Record<string, unknown>): CacheNodeFlags {
  const text = (name: string): string => String(raw[name] ?? '');
  const name = text('name');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError(`error: --name must be 1-64 letters, digits, '_', '.' or '-', got "${name}"`);
  const listen = hostPort('--listen', text('listen'), 0);
  const endpoints = text('endpoints').split(',').map((item) => item.trim());
  if (endpoints.some((item) => item === '')) throw new UsageError('error: --endpoints has an empty entry');
  const maxBytes = integer('--max-bytes', text('maxBytes'), 0);
  const hotMaxBytes = raw.hotMaxBytes === undefined ? Math.floor(maxBytes / 8) : integer('--hot-max-bytes', text('hotMaxBytes'), 0);
  const groups: CacheGroupConfig[] = [{ name: DEFAULT_GROUP, maxBytes, hotMaxBytes }];
  for (const spec of raw.group as string[]) {
    const [groupName = '', bytes] = spec.split(':');
    if (!GROUP_NAME_PATTERN.test(groupName)) throw new UsageError(`error: --group name must match ${GROUP_NAME_PATTERN}, got "${groupName}"`);
    if (groups.some((group) => group.name === groupName)) throw new UsageError(`error: group "${groupName}" is given more than once`);
    const groupBytes = bytes === undefined ? maxBytes : integer(`--group ${groupName}`, bytes, 0);
    groups.push({ name: groupName, maxBytes: groupBytes, hotMaxBytes: raw.hotMaxBytes === undefined ? Math.floor(groupBytes / 8) : hotMaxBytes });
  }
  const logLevel = LOG_LEVELS.find((level) => level === text('logLevel'));
  if (logLevel === undefined) throw new UsageError(`error: --log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const ttlJitter = fraction('--ttl-jitter', text('ttlJitter'));
  if (ttlJitter >= 1) throw new UsageError('error: --ttl-jitter must be below 1');
  return {
    name,
    listen,
    endpoints,
    http: raw.httpPort === undefined ? undefined : { host: text('httpHost'), port: integer('--http-port', text('httpPort'), 0, 65535) },
    groups,
    replicas: integer('--replicas', text('replicas'), 1, 10_000),
    ttlMs: Math.round(positiveNumber('--ttl-seconds', text('ttlSeconds')) * 1000),
    ttlJitter,
    hotFraction: fraction('--hot-fraction', text('hotFraction')),
    leaseTtlSeconds: integer('--lease-ttl-seconds', text('leaseTtlSeconds'), 1),
    peerTimeoutMs: integer('--peer-timeout-ms', text('peerTimeoutMs'), 1),
    storeTimeoutMs: integer('--store-timeout-ms', text('storeTimeoutMs'), 1),
    maxValueBytes: integer('--max-value-bytes', text('maxValueBytes'), 1),
    logLevel,
  };
}

function integer(flag: string, text: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < minimum || value > maximum) throw new UsageError(`error: ${flag} must be an integer ${minimum}..${maximum}, got "${text}"`);
  return value;
}

function positiveNumber(flag: string, text: string): number {
  const value = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value > 0)) throw new UsageError(`error: ${flag} must be a positive number, got "${text}"`);
  return value;
}

function fraction(flag: string, text: string): number {
  const value = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= 0 && value <= 1)) throw new UsageError(`error: ${flag} must be a number in [0, 1], got "${text}"`);
  return value;
}

function hostPort(flag: string, text: string, minimumPort: number): { host: string; port: number } {
  const match = /^([^\s:/[\]]+):([0-9]+)$/.exec(text.trim());
  if (match === null) throw new UsageError(`error: ${flag} must be host:port, got "${text}"`);
  return { host: match[1]!, port: integer(flag, match[2]!, minimumPort, 65535) };
}
