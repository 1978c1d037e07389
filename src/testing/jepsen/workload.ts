/**
 * The workload: concurrent clients doing PUT and GET on a small set of keys against random
 * nodes over raftexample's HTTP API, recording every operation into a history.
 *
 * Each worker is a sequential process (one request at a time). Every PUT writes a value that is
 * unique in the run (`w<worker>-<sequence>`), which both checkers rely on. When an operation
 * ends indeterminate, the worker continues as a NEW logical client, as in Jepsen: the old
 * client's operation stays open forever, and a client never has two operations open.
 *
 * Classification (see {@link classifyPut} and {@link classifyGet}):
 * - PUT 204 → ok. 503 with code `not-applied` and any 4xx → fail (the server says it did not
 *   and will not apply it). Connection refused → fail (nothing was sent). 504, any other
 *   5xx, timeouts and resets → indeterminate.
 * - GET 200 → ok with the body; 404 with code `key-not-found` (or no code) → ok, absent.
 *   Anything else → fail or indeterminate; both are dropped before checking.
 * Being conservative matters: calling a write that was applied "fail" would make the
 * checkers report a violation that is not there, while "indeterminate" is always sound.
 */
import type { HistoryRecorder, OperationOutcome } from '../linearizability/history';
import type { SeededRandom } from '../linearizability/seeded-random';
import { httpRequest, type HttpEndpoint, type HttpOutcome } from './http-client';
import { delay } from './wait-until';

/** The outcome of a PUT as the history records it. */
export function classifyPut(outcome: HttpOutcome): OperationOutcome {
  if (outcome.kind === 'error') return outcome.maybeSent ? 'indeterminate' : 'fail';
  if (outcome.status === 204 || outcome.status === 200) return 'ok';
  if (outcome.status === 503 && outcome.errorCode === 'not-applied') return 'fail';
  if (outcome.status >= 400 && outcome.status < 500) return 'fail';
  return 'indeterminate';
}

/** The outcome of a GET and the value read (`null` = absent). */
export function classifyGet(outcome: HttpOutcome): { outcome: OperationOutcome; value: string | null } {
  if (outcome.kind === 'error') return { outcome: outcome.maybeSent ? 'indeterminate' : 'fail', value: null };
  if (outcome.status === 200) return { outcome: 'ok', value: outcome.body };
  if (outcome.status === 404 && (outcome.errorCode === undefined || outcome.errorCode === 'key-not-found')) {
    return { outcome: 'ok', value: null };
  }
  if (outcome.status >= 400 && outcome.status < 500) return { outcome: 'fail', value: null };
  return { outcome: 'indeterminate', value: null };
}

/** The HTTP path of a workload key. Keys must not be numeric: `/<number>` is a member path. */
export function keyPath(key: string): string {
  return `/${encodeURIComponent(key)}`;
}

/** What the workload does. */
export interface WorkloadOptions {
  /** The nodes a client may talk to right now (membership changes during a run). */
  readonly endpoints: () => readonly HttpEndpoint[];
  /** The keys (non-numeric). */
  readonly keys: readonly string[];
  /** Concurrent workers. */
  readonly workerCount: number;
  /** Probability that an operation is a GET. */
  readonly readFraction: number;
  /** Client-side timeout per request; past it the operation is indeterminate. */
  readonly requestTimeoutMs: number;
  /** Pause between a worker's operations (pacing, not synchronisation). */
  readonly thinkTimeMs: number;
  /** Source of every choice. */
  readonly random: SeededRandom;
  /** Where operations are recorded. */
  readonly recorder: HistoryRecorder;
  /** Polled between operations; the workload returns once it is true. */
  readonly shouldStop: () => boolean;
}

/** Counts of what the workload did. */
export interface WorkloadStatistics {
  /** Operations by `kind:outcome`, e.g. `put:ok`. */
  readonly operationsByOutcome: Record<string, number>;
  /** Logical clients used (workers plus one per indeterminate operation). */
  readonly clientCount: number;
}

/** Runs the workload until `shouldStop()`; resolves once every worker has finished. */
export async function runWorkload(options: WorkloadOptions): Promise<WorkloadStatistics> {
  const operationsByOutcome: Record<string, number> = {};
  let nextClient = 0;
  const count = (label: string): void => {
    operationsByOutcome[label] = (operationsByOutcome[label] ?? 0) + 1;
  };
  const worker = async (workerIndex: number, random: SeededRandom): Promise<void> => {
    let client = nextClient++;
    let sequence = 0;
    while (!options.shouldStop()) {
      const endpoints = options.endpoints();
      if (endpoints.length === 0) {
        await delay(options.thinkTimeMs + 10);
        continue;
      }
      const endpoint = random.pick(endpoints);
      const key = random.pick(options.keys);
      let outcome: OperationOutcome;
      if (random.chance(options.readFraction)) {
        const pending = options.recorder.invoke(client, key, 'get', null, `${endpoint.host}:${endpoint.port}`);
        const result = classifyGet(await httpRequest(endpoint, 'GET', keyPath(key), undefined, options.requestTimeoutMs));
        options.recorder.complete(pending, result.outcome, result.value);
        outcome = result.outcome;
        count(`get:${outcome}`);
      } else {
        const value = `w${workerIndex}-${sequence++}`;
        const pending = options.recorder.invoke(client, key, 'put', value, `${endpoint.host}:${endpoint.port}`);
        outcome = classifyPut(await httpRequest(endpoint, 'PUT', keyPath(key), value, options.requestTimeoutMs));
        options.recorder.complete(pending, outcome);
        count(`put:${outcome}`);
      }
      if (outcome === 'indeterminate') client = nextClient++;
      if (options.thinkTimeMs > 0) await delay(options.thinkTimeMs);
    }
  };
  const workers: Promise<void>[] = [];
  for (let index = 0; index < options.workerCount; index++) workers.push(worker(index, options.random.fork()));
  await Promise.all(workers);
  return { operationsByOutcome, clientCount: nextClient };
}
