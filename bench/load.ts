/**
 * A closed-loop load generator: `clients` workers each issue one request at a time for a fixed
 * duration; the figures are completed operations per second and latency percentiles. Every
 * workload of `npm run bench` goes through this one generator, so figures are comparable.
 */
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
}

/** One operation: resolves on success, rejects with a description on failure. */
export type Operation = (client: number, sequence: number) => Promise<void>;

/** Runs `operation` from `clients` concurrent workers for `seconds`, after `warmupSeconds`. */
export async function runLoad(name: string, clients: number, seconds: number, operation: Operation, warmupSeconds = 1): Promise<LoadResult> {
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
  measuring = true;
  const measuredFrom = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsedSeconds = (performance.now() - measuredFrom) / 1000;
  stop = true;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  const percentile = (q: number) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!);
  return {
    name,
    clients,
    operations: latencies.length,
    errors,
    seconds: elapsedSeconds,
    operationsPerSecond: latencies.length / elapsedSeconds,
    p50Ms: percentile(0.5),
    p99Ms: percentile(0.99),
    errorSamples,
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
