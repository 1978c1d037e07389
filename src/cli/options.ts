/**
 * The flags of `raftkv` in node mode, parsed with commander and validated into {@link NodeOptions}.
 *
 * raftexample's four flags keep their names and defaults (`--id 1`,
 * `--cluster http://127.0.0.1:9021`, `--port 9121`, `--join`); the rest configure what
 * raftexample hard-codes. Both `--flag value` and `--flag=value` are accepted.
 *
 * `parseNodeOptions` never exits the process and never writes to the console: it returns either
 * the options or a message with the exit code the caller should use (0 for `--help`, whose
 * message is the help text for standard output; 2 for a usage error, whose message is one line
 * for standard error). Every value is checked here, at the gateway, so the runtime can trust it.
 */
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { RaftkvError } from '../errors';
import { parseMemberId, parsePeerUrl } from '../api/member-input';
import type { ReadMode } from '../api/http/backend';
import { LOG_LEVELS, type LogLevel } from '../observability/logger';
import type { NodeId } from '../raft/types';
import { addTlsOptions, TlsOptionsError, validateTlsOptions, type ClientTlsOptions, type PeerTlsOptions, type RawTlsOptions } from './tls-options';

/** Validated options of one node. Durations are in milliseconds; sizes in bytes. */
export interface NodeOptions {
  /** This node's member ID (1-based position in `cluster` for an initial member). */
  readonly id: NodeId;
  /** Peer URLs of the initial members, normalised; member i+1 is `cluster[i]`. */
  readonly cluster: string[];
  /** Port of the HTTP key-value API. */
  readonly port: number;
  /** Host the HTTP API listens on; undefined means every interface (as raftexample). */
  readonly httpHost: string | undefined;
  /** Port of the etcd v3 gRPC API (etcd's default client port 2379). */
  readonly etcdPort: number;
  /** Host the etcd v3 gRPC API listens on; undefined means every interface (as etcd's 0.0.0.0). */
  readonly etcdHost: string | undefined;
  /** etcd's --max-txn-ops: operations allowed in one Txn (must be equal on every member). */
  readonly maxTxnOperations: number;
  /** Join an existing cluster (the member was added with `POST /<id>` first). */
  readonly join: boolean;
  /** Data directory (WAL, snapshots, state machine); absolute. */
  readonly dataDir: string;
  /** Applied entries between two snapshots. */
  readonly snapshotCount: number;
  /** Length of one Raft tick in milliseconds. */
  readonly tickMs: number;
  /** Election timeout in ticks (randomised in [electionTicks, 2*electionTicks)). */
  readonly electionTicks: number;
  /** Heartbeat interval in ticks; always less than electionTicks. */
  readonly heartbeatTicks: number;
  /** Largest accepted request body in bytes. */
  readonly maxRequestBytes: number;
  /** How long a request may wait for Raft before timing out, in milliseconds. */
  readonly requestTimeoutMs: number;
  /** How linearizable reads are served. */
  readonly readMode: ReadMode;
  /** Mixed into the cluster ID so that separate clusters never talk to each other by mistake. */
  readonly clusterToken: string;
  /** Where the peer transport listens (host without IPv6 brackets). */
  readonly listenPeer: { readonly host: string; readonly port: number };
  readonly logLevel: LogLevel;
  /** TLS of the client APIs (`--cert-file` ...); absent means plain HTTP and insecure gRPC. */
  readonly clientTls?: ClientTlsOptions;
  /** Mutual TLS of the peer transport (`--peer-cert-file` ...); absent means insecure. */
  readonly peerTls?: PeerTlsOptions;
  /** etcd's --name: published in MemberList (default `raftkv-<id>`). */
  readonly name: string;
  /**
   * Client URLs this member publishes for MemberList (etcd's --advertise-client-urls), as given;
   * default `<etcd host>:<etcd port>` without a scheme (127.0.0.1 when listening everywhere).
   */
  readonly advertiseClientUrls: string[];
  /** etcd's --quota-backend-bytes: the MVCC store size that raises the NOSPACE alarm (2 GiB). */
  readonly quotaBackendBytes: number;
}

/** The outcome of {@link parseNodeOptions}. */
export type ParseNodeOptionsResult =
  | { readonly ok: true; readonly options: NodeOptions }
  /** exitCode 0: `message` is help text for standard output; otherwise a one-line error. */
  | { readonly ok: false; readonly message: string; readonly exitCode: number };

/** Exit code of a command-line usage error (as commander and most Unix tools). */
export const USAGE_EXIT_CODE = 2;

/** Defaults, as raftexample where it has the flag. */
export const NODE_DEFAULTS = Object.freeze({
  id: '1',
  cluster: 'http://127.0.0.1:9021',
  port: '9121',
  etcdPort: '2379',
  maxTxnOperations: '128',
  snapshotCount: '10000',
  tickMs: '100',
  electionTicks: '10',
  heartbeatTicks: '1',
  maxRequestBytes: String(1.5 * 1024 * 1024),
  requestTimeout: '5s',
  readMode: 'readindex',
  clusterToken: 'raftkv-cluster',
  logLevel: 'info',
  quotaBackendBytes: String(2 * 1024 * 1024 * 1024),
});

const READ_MODES: readonly ReadMode[] = ['readindex', 'lease'];

const EXAMPLES = `
Examples:
  Single node (raftexample's defaults; data in ./raftkv-1):
    $ raftkv
    $ curl -L http://127.0.0.1:9121/my-key -XPUT -d hello
    $ curl -L http://127.0.0.1:9121/my-key

  Three-node cluster on one machine (the Procfile; run all three with \`npm start\`):
    $ raftkv --id 1 --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379 --port 12380
    $ raftkv --id 2 --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379 --port 22380
    $ raftkv --id 3 --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379 --port 32380

  Joining a fourth node: add it through any member, then start it with --join:
    $ curl -L http://127.0.0.1:12380/4 -XPOST -d http://127.0.0.1:42379
    $ raftkv --id 4 --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379,http://127.0.0.1:42379 --port 42380 --join

  Removing it again:
    $ curl -L http://127.0.0.1:12380/4 -XDELETE
`;

/** Builds the commander definition of node mode (also used for `raftkv help`). */
export function nodeCommand(): Command {
  const command = new Command('raftkv')
    .description('Run one raftkv node: a Raft-replicated key-value store with raftexample\'s HTTP API.')
    .usage('[options]')
    .option('--id <id>', 'member ID of this node, decimal 1..2^64-1; initial members are numbered by their position in --cluster', NODE_DEFAULTS.id)
    .option('--cluster <urls>', 'comma-separated peer URLs (http(s)://host:port) of the initial members, in ID order', NODE_DEFAULTS.cluster)
    .option('--port <port>', 'port of the HTTP key-value API', NODE_DEFAULTS.port)
    .option('--http-host <host>', 'host the HTTP API listens on (default: every interface)')
    .option('--etcd-port <port>', 'port of the etcd v3 gRPC API (etcdctl, etcd3, clientv3)', NODE_DEFAULTS.etcdPort)
    .option('--etcd-host <host>', 'host the etcd v3 gRPC API listens on (default: every interface)')
    .option('--max-txn-ops <count>', 'most operations in one etcd Txn, as etcd\'s --max-txn-ops', NODE_DEFAULTS.maxTxnOperations)
    .option('--join', 'join an existing cluster (after adding this member with POST /<id>)', false)
    .option('--data-dir <dir>', 'data directory for the WAL, snapshots and state (default: raftkv-<id> in the current directory)')
    .option('--snapshot-count <entries>', 'applied entries between snapshots', NODE_DEFAULTS.snapshotCount)
    .option('--tick-ms <ms>', 'length of one Raft tick in milliseconds', NODE_DEFAULTS.tickMs)
    .option('--election-ticks <ticks>', 'election timeout in ticks', NODE_DEFAULTS.electionTicks)
    .option('--heartbeat-ticks <ticks>', 'heartbeat interval in ticks; must be less than --election-ticks', NODE_DEFAULTS.heartbeatTicks)
    .option('--max-request-bytes <bytes>', 'largest accepted request body in bytes (1.5 MiB)', NODE_DEFAULTS.maxRequestBytes)
    .option('--request-timeout <duration>', 'how long a request may wait for Raft: 5s, 500ms, 1m, or a number of milliseconds', NODE_DEFAULTS.requestTimeout)
    .option('--read-mode <mode>', 'how linearizable reads are served: readindex (always safe) or lease (needs bounded clock drift)', NODE_DEFAULTS.readMode)
    .option('--cluster-token <token>', 'token mixed into the cluster ID; clusters with different tokens refuse each other', NODE_DEFAULTS.clusterToken)
    .option('--listen-peer <host:port>', 'where the peer transport listens (default: host and port of this node\'s URL in --cluster)')
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, NODE_DEFAULTS.logLevel)
    .option('--name <name>', 'member name shown by etcd MemberList (default: raftkv-<id>)')
    .option('--advertise-client-urls <urls>', 'comma-separated etcd client URLs published in MemberList; an http:// scheme is stripped there (default: <etcd host>:<etcd port>)')
    .option('--quota-backend-bytes <bytes>', 'MVCC store size at which the NOSPACE alarm is raised and writes are refused (2 GiB)', NODE_DEFAULTS.quotaBackendBytes);
  addTlsOptions(command);
  command
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false)
    .addHelpText('after', EXAMPLES);
  return command;
}

/** The help text of node mode (flags and examples). */
export function nodeHelp(): string {
  const result = parseNodeOptions(['--help']);
  return result.ok ? '' : result.message;
}

/**
 * Parses node-mode arguments (without the `node` and script paths: `process.argv.slice(2)`).
 * Never exits and never prints; see {@link ParseNodeOptionsResult}.
 */
export function parseNodeOptions(argv: string[]): ParseNodeOptionsResult {
  const command = nodeCommand();
  let helpText = '';
  let errorText = '';
  command.exitOverride().configureOutput({
    writeOut: (text) => {
      helpText += text;
    },
    writeErr: (text) => {
      errorText += text;
    },
    outputError: (text, write) => write(text),
  });
  try {
    command.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return { ok: false, message: helpText, exitCode: 0 };
      return usageError(oneLine(errorText === '' ? error.message : errorText));
    }
    throw error;
  }
  try {
    return { ok: true, options: validate(command.opts<RawOptions>()) };
  } catch (error) {
    if (error instanceof UsageError) return usageError(error.message);
    if (error instanceof TlsOptionsError) return usageError(`error: ${error.message}`);
    if (error instanceof RaftkvError) return usageError(`error: ${error.message}`);
    throw error;
  }
}

/** The options as commander hands them over: strings, except the boolean --join. */
interface RawOptions extends RawTlsOptions {
  id: string;
  cluster: string;
  port: string;
  httpHost?: string;
  etcdPort: string;
  etcdHost?: string;
  maxTxnOps: string;
  join: boolean;
  dataDir?: string;
  snapshotCount: string;
  tickMs: string;
  electionTicks: string;
  heartbeatTicks: string;
  maxRequestBytes: string;
  requestTimeout: string;
  readMode: string;
  clusterToken: string;
  listenPeer?: string;
  logLevel: string;
  name?: string;
  advertiseClientUrls?: string;
  quotaBackendBytes: string;
}

/** A validation failure; its message is the one-line error shown to the user. */
class UsageError extends Error {}

/** Checks every option and the relations between them. */
function validate(raw: RawOptions): NodeOptions {
  const id = parseFlag('--id', () => parseMemberId(raw.id));
  const cluster = parseCluster(raw.cluster);
  const join = raw.join;
  const ownUrl = id <= BigInt(cluster.length) ? cluster[Number(id) - 1] : undefined;
  if (ownUrl === undefined && !join) {
    throw new UsageError(
      `error: --id ${id} is out of range: --cluster lists ${cluster.length} member(s), so --id must be 1..${cluster.length} (or use --join)`,
    );
  }
  const listenPeer =
    raw.listenPeer !== undefined ? parseHostPort('--listen-peer', raw.listenPeer) : ownUrl !== undefined ? hostPortOfUrl(ownUrl) : undefined;
  if (listenPeer === undefined) {
    throw new UsageError(`error: --id ${id} has no URL in --cluster, so --listen-peer <host:port> is required`);
  }
  const electionTicks = parseInteger('--election-ticks', raw.electionTicks, 1);
  const heartbeatTicks = parseInteger('--heartbeat-ticks', raw.heartbeatTicks, 1);
  if (heartbeatTicks >= electionTicks) {
    throw new UsageError(
      `error: --heartbeat-ticks (${heartbeatTicks}) must be less than --election-ticks (${electionTicks})`,
    );
  }
  const readMode = READ_MODES.find((mode) => mode === raw.readMode);
  if (readMode === undefined) throw new UsageError(`error: --read-mode must be readindex or lease, got "${raw.readMode}"`);
  const logLevel = LOG_LEVELS.find((level) => level === raw.logLevel);
  if (logLevel === undefined) {
    throw new UsageError(`error: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${raw.logLevel}"`);
  }
  if (raw.clusterToken.trim() === '') throw new UsageError('error: --cluster-token must not be empty');
  if (raw.dataDir !== undefined && raw.dataDir.trim() === '') throw new UsageError('error: --data-dir must not be empty');
  if (raw.httpHost !== undefined && raw.httpHost.trim() === '') throw new UsageError('error: --http-host must not be empty');
  if (raw.etcdHost !== undefined && raw.etcdHost.trim() === '') throw new UsageError('error: --etcd-host must not be empty');
  const { clientTls, peerTls } = validateTlsOptions(raw, cluster);
  if (raw.name !== undefined && raw.name.trim() === '') throw new UsageError('error: --name must not be empty');
  const etcdPort = parseInteger('--etcd-port', raw.etcdPort, 1, 65535);
  const advertiseClientUrls = parseClientUrls(raw.advertiseClientUrls, raw.etcdHost, etcdPort);
  return {
    ...(clientTls === undefined ? {} : { clientTls }),
    ...(peerTls === undefined ? {} : { peerTls }),
    name: raw.name ?? `raftkv-${id}`,
    advertiseClientUrls,
    quotaBackendBytes: parseInteger('--quota-backend-bytes', raw.quotaBackendBytes, 1),
    id,
    cluster,
    port: parseInteger('--port', raw.port, 1, 65535),
    httpHost: raw.httpHost,
    etcdPort,
    etcdHost: raw.etcdHost,
    maxTxnOperations: parseInteger('--max-txn-ops', raw.maxTxnOps, 1),
    join,
    dataDir: path.resolve(raw.dataDir ?? `raftkv-${id}`),
    snapshotCount: parseInteger('--snapshot-count', raw.snapshotCount, 1),
    tickMs: parseInteger('--tick-ms', raw.tickMs, 1),
    electionTicks,
    heartbeatTicks,
    maxRequestBytes: parseInteger('--max-request-bytes', raw.maxRequestBytes, 1),
    requestTimeoutMs: parseDurationMs('--request-timeout', raw.requestTimeout),
    readMode,
    clusterToken: raw.clusterToken,
    listenPeer,
    logLevel,
  };
}

/**
 * Parses `--advertise-client-urls`: `host:port` or `http(s)://host:port`, comma-separated. The
 * default is this node's etcd endpoint without a scheme (ETCD_WIRE_NOTES.md §5).
 */
function parseClientUrls(text: string | undefined, etcdHost: string | undefined, etcdPort: number): string[] {
  if (text === undefined) {
    const host = etcdHost === undefined || etcdHost === '0.0.0.0' || etcdHost === '::' ? '127.0.0.1' : etcdHost.includes(':') ? `[${etcdHost}]` : etcdHost;
    return [`${host}:${etcdPort}`];
  }
  return text.split(',').map((item) => {
    const url = item.trim();
    if (!/^(https?:\/\/)?(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):[0-9]{1,5}$/.test(url)) {
      throw new UsageError(`error: --advertise-client-urls: "${url}" is not host:port or http(s)://host:port`);
    }
    return url;
  });
}

/** Runs a member-input parser, prefixing its error with the flag's name. */
function parseFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof RaftkvError) throw new UsageError(`error: ${flag}: ${error.message}`);
    throw error;
  }
}

/** Parses `--cluster`: one or more distinct peer URLs separated by commas. */
function parseCluster(text: string): string[] {
  const urls = text.split(',').map((item, index) => {
    if (item.trim() === '') throw new UsageError(`error: --cluster: entry ${index + 1} is empty`);
    return parseFlag('--cluster', () => parsePeerUrl(item)).url;
  });
  const seen = new Set<string>();
  for (const url of urls) {
    if (seen.has(url)) throw new UsageError(`error: --cluster lists ${url} more than once`);
    seen.add(url);
  }
  return urls;
}

/** Parses a decimal integer (digits only) in [minimum, maximum]. */
function parseInteger(flag: string, text: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < minimum || value > maximum) {
    const range = maximum === Number.MAX_SAFE_INTEGER ? `at least ${minimum}` : `${minimum}..${maximum}`;
    throw new UsageError(`error: ${flag} must be an integer ${range}, got "${text}"`);
  }
  return value;
}

/**
 * Parses a duration into whole milliseconds: a number of milliseconds (`1500`), or a number with
 * a unit `ms`, `s` or `m` (`500ms`, `5s`, `1.5s`, `1m`). Must be at least 1 ms.
 */
export function parseDurationMs(flag: string, text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(text.trim());
  const multiplier = match === null ? Number.NaN : match[2] === 's' ? 1000 : match[2] === 'm' ? 60_000 : 1;
  const milliseconds = match === null ? Number.NaN : Math.round(Number(match[1]) * multiplier);
  if (!Number.isSafeInteger(milliseconds) || milliseconds < 1) {
    throw new UsageError(`error: ${flag} must be a duration such as 5s, 500ms, 1m or a number of milliseconds, got "${text}"`);
  }
  return milliseconds;
}

/** Parses `host:port` (IPv6 in brackets: `[::1]:2380`); the host is returned without brackets. */
function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):([0-9]+)$/.exec(text.trim());
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new UsageError(`error: ${flag} must be host:port (IPv6 as [::1]:2380), got "${text}"`);
  }
  return { host: stripBrackets(match[1]), port: parseInteger(flag, match[2], 1, 65535) };
}

/** Host (without IPv6 brackets) and port of an already validated peer URL. */
function hostPortOfUrl(url: string): { host: string; port: number } {
  const parsed = parsePeerUrl(url);
  return { host: stripBrackets(parsed.host), port: parsed.port };
}

/** `[::1]` → `::1`; other hosts unchanged. */
function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Joins commander's (possibly multi-line) error text into one line. */
function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

/** A usage-error result with a pointer to the help. */
function usageError(message: string): ParseNodeOptionsResult {
  return { ok: false, message: `${message} (see raftkv --help)`, exitCode: USAGE_EXIT_CODE };
}
