/**
 * A closed-loop load generator: `clients` workers each issue one request at a time for a fixed
 * duration; the figures are completed operations per second and latency percentiles. Every
 * workload of `npm run bench` goes through this one generator, so figures are comparable.
 */
import fs from 'node:fs';
import http from 'node:http';

/** The outcome of one workload. */
export interface LoadResult {
  readonly name: string;
  readonly clients: number;
  readonly operations: number;
  readonly errors: number;
  readonly seconds: number;
  readonly operationsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The first few error descriptions, for the report. */
  readonly errorSamples: readonly string[];
  /** CPU time of the server processes per completed operation (µs), when their PIDs were given. */
  readonly serverCpuMicrosPerOp?: number;
  /** CPU time of this (load generator) process per completed operation (µs). */
  readonly clientCpuMicrosPerOp: number;
  /** How much each of the servers' counters (LoadOptions.counters) grew while measuring. */
  readonly counterDeltas?: Readonly<Record<string, number>>;
  /** Every measured latency (ms), ascending: what {@link combineResults} merges. */
  readonly latenciesMs: readonly number[];
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux we run on). */
const USER_HZ = 100;

/** CPU seconds (user + system) used so far by process `pid`, from /proc; 0 if it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return 0;
  }
}

/** One operation: resolves on success, rejects with a description on failure. */
export type Operation = (client: number, sequence: number) => Promise<void>;

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** Seconds of load before measuring starts (default 1). */
  readonly warmupSeconds?: number;
  /** Server process IDs whose CPU time is accounted per operation. */
  readonly serverPids?: readonly number[];
  /** Reads the servers' counters (e.g. fsyncs); sampled when measuring starts and ends. */
  readonly counters?: () => Promise<Record<string, number>>;
}

/**
 * Runs `operation` from `clients` concurrent workers for `seconds`, after a warm-up; accounts
 * the CPU time this process (and, if given, the server processes) spent per operation.
 */
export async function runLoad(name: string, clients: number, seconds: number, operation: Operation, options: LoadOptions = {}): Promise<LoadResult> {
  const warmupSeconds = options.warmupSeconds ?? 1;
  const serverPids = options.serverPids ?? [];
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const worker = async (client: number) => {
    let sequence = 0;
    while (!stop) {
      const started = performance.now();
      try {
        await operation(client, sequence++);
        if (measuring) latencies.push(performance.now() - started);
      } catch (error) {
        if (measuring) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(String(error instanceof Error ? error.message : error));
        }
      }
    }
  };
  const workers = Array.from({ length: clients }, (_, client) => worker(client));
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000));
  const countersFrom = await options.counters?.();
  measuring = true;
  const measuredFrom = performance.now();
  const clientCpuFrom = process.cpuUsage();
  const serverCpuFrom = serverCpu();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsedSeconds = (performance.now() - measuredFrom) / 1000;
  const clientCpu = process.cpuUsage(clientCpuFrom);
  const serverCpuSeconds = serverCpu() - serverCpuFrom;
  const countersTo = await options.counters?.();
  const counterDeltas = countersFrom === undefined || countersTo === undefined ? undefined : Object.fromEntries(Object.keys(countersTo).map((name) => [name, countersTo[name]! - (countersFrom[name] ?? 0)]));
  stop = true;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  return {
    name,
    clients,
    operations: latencies.length,
    errors,
    seconds: elapsedSeconds,
    operationsPerSecond: latencies.length / elapsedSeconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errorSamples,
    clientCpuMicrosPerOp: latencies.length === 0 ? NaN : (clientCpu.user + clientCpu.system) / latencies.length,
    ...(counterDeltas === undefined ? {} : { counterDeltas }),
    ...(serverPids.length > 0 ? { serverCpuMicrosPerOp: latencies.length === 0 ? NaN : (serverCpuSeconds * 1e6) / latencies.length } : {}),
    latenciesMs: latencies,
  };
}

/** The `q` quantile of ascending `sorted` (NaN when empty). */
function percentile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * One result from several measured runs of the same workload (taken in turns with another
 * system's, see etcd-bench.ts): operations, time, CPU and counters summed, percentiles over
 * every latency of every run.
 */
export function combineResults(name: string, parts: readonly LoadResult[]): LoadResult {
  const first = parts[0];
  if (first === undefined) throw new Error('combineResults: no results');
  const operations = parts.reduce((sum, part) => sum + part.operations, 0);
  const seconds = parts.reduce((sum, part) => sum + part.seconds, 0);
  const latencies = parts.flatMap((part) => part.latenciesMs).sort((a, b) => a - b);
  // Per-operation CPU back to totals, summed, and divided by all the operations again.
  const perOperation = (value: (part: LoadResult) => number | undefined): number | undefined => {
    if (parts.some((part) => value(part) === undefined)) return undefined;
    const total = parts.reduce((sum, part) => sum + (part.operations === 0 ? 0 : value(part)! * part.operations), 0);
    return operations === 0 ? NaN : total / operations;
  };
  const serverCpuMicrosPerOp = perOperation((part) => part.serverCpuMicrosPerOp);
  const counterNames = first.counterDeltas === undefined ? [] : Object.keys(first.counterDeltas);
  const counterDeltas = parts.every((part) => part.counterDeltas !== undefined)
    ? Object.fromEntries(counterNames.map((counter) => [counter, parts.reduce((sum, part) => sum + (part.counterDeltas![counter] ?? 0), 0)]))
    : undefined;
  return {
    name,
    clients: first.clients,
    operations,
    errors: parts.reduce((sum, part) => sum + part.errors, 0),
    seconds,
    operationsPerSecond: operations / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errorSamples: parts.flatMap((part) => part.errorSamples).slice(0, 5),
    clientCpuMicrosPerOp: perOperation((part) => part.clientCpuMicrosPerOp)!,
    ...(counterDeltas === undefined ? {} : { counterDeltas }),
    ...(serverCpuMicrosPerOp === undefined ? {} : { serverCpuMicrosPerOp }),
    latenciesMs: latencies,
  };
}

/** A keep-alive HTTP client for one endpoint; `request` resolves with status and body. */
export class HttpClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly host: string,
    private readonly port: number,
    maxSockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request(method: string, path: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        { host: this.host, port: this.port, method, path, agent: this.agent, headers: body ? { 'content-length': body.length } : {} },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Formats a result as one table row: name | clients | ops/s | p50 | p99 | errors. */
export function formatRow(result: LoadResult): string {
  return `| ${result.name} | ${result.clients} | ${Math.round(result.operationsPerSecond).toLocaleString('en-US')} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${result.errors} |`;
}

/** One measure of a raftkv-beside-etcd table: how to show a result, and the figure the ratio divides. */
export interface Measure<R> {
  readonly name: string;
  cell(result: R): string;
  /** The figure compared (ratio = raftkv / etcd); leave out where a ratio means nothing. */
  figure?(result: R): number | undefined;
}

/**
 * Rows `| measure | raftkv | etcd 3.4 | ratio |` of a side-by-side table. A system's outcome is its
 * result, or a string saying why it has none ('failed: …', 'not installed'), shown in every row.
 */
export function comparisonRows<R>(measures: readonly Measure<R>[], ours: R | string, theirs: R | string): string[] {
  const cell = (outcome: R | string, measure: Measure<R>) => (typeof outcome === 'string' ? outcome : measure.cell(outcome));
  const figure = (outcome: R | string, measure: Measure<R>) => (typeof outcome === 'string' ? undefined : measure.figure?.(outcome));
  return [
    '| measure | raftkv | etcd 3.4 | ratio |',
    '|---|---|---|---|',
    ...measures.map((measure) => {
      const mine = figure(ours, measure);
      const reference = figure(theirs, measure);
      const ratio = mine === undefined || reference === undefined || !Number.isFinite(mine / reference) ? '–' : `${(mine / reference).toFixed(2)}×`;
      return `| ${measure.name} | ${cell(ours, measure)} | ${cell(theirs, measure)} | ${ratio} |`;
    }),
  ];
}
