/**
 * Histories of operations on per-key registers, as recorded by the fault-injection workload
 * and consumed by the linearizability and lost-write checkers.
 *
 * The model (after Jepsen and Knossos): each client invokes an operation at `callTimeMs` and
 * observes its completion at `returnTimeMs`, both read from one monotonic clock. An operation
 * has one of three outcomes:
 * - `ok`: it took effect, exactly once, somewhere between call and return;
 * - `fail`: it definitely did not take effect (for example the connection was refused before
 *   the request was sent, or the server said it was not applied);
 * - `indeterminate`: the client gave up (timeout, reset): it may or may not have taken effect,
 *   at any time after its call, even after the client stopped waiting. For the search its
 *   return time is +∞; the recorded `returnTimeMs` is only when the client gave up.
 *
 * Before checking, {@link prepareForChecking} drops what carries no information: failed
 * operations (a failed GET observed nothing; a failed PUT changed nothing) and indeterminate
 * GETs (a read that may not have happened constrains nothing). Indeterminate PUTs are kept.
 *
 * Histories are persisted as JSON lines (one operation per line) for post-mortems;
 * {@link parseHistoryJsonLines} validates every field, because a history file is an input
 * from outside the program.
 */
import fs from 'node:fs';

/** What an operation does to its key's register. */
export type OperationKind = 'put' | 'get';

/** How an operation ended, as far as the client knows (see the module overview). */
export type OperationOutcome = 'ok' | 'fail' | 'indeterminate';

/**
 * One completed (or abandoned) client operation on one key.
 *
 * Invariants: `callTimeMs <= returnTimeMs`; a `put` carries the (non-null) written value; an
 * `ok` `get` carries the value read, or `null` when the key was absent (HTTP 404).
 */
export interface Operation {
  /** Unique within a history. */
  readonly id: number;
  /** The logical client (a sequential process) that issued it. */
  readonly client: number;
  /** The register it acts on. */
  readonly key: string;
  /** `put` writes `value`; `get` reads it. */
  readonly kind: OperationKind;
  /** The written value (put), or the value read (get; `null` = absent or unknown). */
  readonly value: string | null;
  /** When the client sent the request, in ms on the recorder's monotonic clock. */
  readonly callTimeMs: number;
  /** When the client saw the response or gave up, in ms on the same clock. */
  readonly returnTimeMs: number;
  /** What the client learnt about its effect. */
  readonly outcome: OperationOutcome;
  /** Which server the request went to (`host:port`), for post-mortems; not used by the checkers. */
  readonly server?: string;
}

/**
 * The return time the checkers use: +∞ for an indeterminate operation, which may take effect
 * at any time after its call.
 */
export function effectiveReturnTimeMs(operation: Operation): number {
  return operation.outcome === 'indeterminate' ? Number.POSITIVE_INFINITY : operation.returnTimeMs;
}

/**
 * The operations the linearizability search must explain: drops every failed operation and
 * every indeterminate GET, keeps ok operations and indeterminate PUTs. Order is preserved.
 */
export function prepareForChecking(history: readonly Operation[]): Operation[] {
  return history.filter(
    (operation) =>
      operation.outcome === 'ok' || (operation.outcome === 'indeterminate' && operation.kind === 'put'),
  );
}

/** Splits a history by key, preserving order within each key (P-compositionality). */
export function partitionByKey(history: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const operation of history) {
    let list = byKey.get(operation.key);
    if (list === undefined) {
      list = [];
      byKey.set(operation.key, list);
    }
    list.push(operation);
  }
  return byKey;
}

/** A short human-readable rendering: `#12 c3 put x="v" [10.0, 25.3]ms ok`. */
export function describeOperation(operation: Operation, originMs = 0): string {
  const call = (operation.callTimeMs - originMs).toFixed(1);
  const end =
    operation.outcome === 'indeterminate'
      ? `gave up ${(operation.returnTimeMs - originMs).toFixed(1)}, may apply until ∞`
      : (operation.returnTimeMs - originMs).toFixed(1);
  const value = operation.value === null ? 'absent' : JSON.stringify(operation.value);
  const action =
    operation.kind === 'put'
      ? `put ${JSON.stringify(operation.key)}=${value}`
      : `get ${JSON.stringify(operation.key)} -> ${operation.outcome === 'ok' ? value : '?'}`;
  return `#${operation.id} client ${operation.client} ${action} [${call}, ${end}]ms ${operation.outcome}`;
}

/** A handle on an operation that has been invoked and not yet completed. */
export interface PendingOperation {
  /** The id the completed operation will carry. */
  readonly id: number;
  /** The client that invoked it. */
  readonly client: number;
  /** The key it acts on. */
  readonly key: string;
  /** Its kind. */
  readonly kind: OperationKind;
  /** The value being written (put) or `null` (get, not yet known). */
  readonly value: string | null;
  /** When it was invoked. */
  readonly callTimeMs: number;
  /** Which server the request went to, if the caller said. */
  readonly server?: string;
}

/**
 * Records a history as clients invoke and complete operations. The clock must be monotonic
 * (the default is `performance.now()`), because real-time order is what linearizability is
 * about: a wall clock that steps backwards would invent or hide violations.
 */
export class HistoryRecorder {
  private readonly operations: Operation[] = [];
  private readonly pending = new Map<number, PendingOperation>();
  private nextId = 1;

  /** Creates a recorder reading the given monotonic clock (ms). */
  constructor(private readonly clockMs: () => number = () => performance.now()) {}

  /** Marks the call of an operation; call BEFORE sending the request. */
  invoke(client: number, key: string, kind: OperationKind, value: string | null, server?: string): PendingOperation {
    if (kind === 'put' && value === null) throw new TypeError('a put must carry a value');
    const pending: PendingOperation = {
      id: this.nextId++,
      client,
      key,
      kind,
      value: kind === 'put' ? value : null,
      callTimeMs: this.clockMs(),
      ...(server === undefined ? {} : { server }),
    };
    this.pending.set(pending.id, pending);
    return pending;
  }

  /**
   * Marks the return of an operation; call AFTER the response (or the give-up) was observed.
   * `readValue` is the value a successful get read (`null` = absent); ignored for puts.
   */
  complete(pending: PendingOperation, outcome: OperationOutcome, readValue: string | null = null): Operation {
    if (!this.pending.delete(pending.id)) throw new Error(`operation ${pending.id} is not pending`);
    const operation: Operation = {
      id: pending.id,
      client: pending.client,
      key: pending.key,
      kind: pending.kind,
      value: pending.kind === 'put' ? pending.value : outcome === 'ok' ? readValue : null,
      callTimeMs: pending.callTimeMs,
      returnTimeMs: this.clockMs(),
      outcome,
      ...(pending.server === undefined ? {} : { server: pending.server }),
    };
    this.operations.push(operation);
    return operation;
  }

  /**
   * Every recorded operation, plus operations still pending, which are reported as
   * indeterminate (their clients never learnt the outcome), in call order.
   */
  history(): Operation[] {
    const now = this.clockMs();
    const abandoned: Operation[] = [...this.pending.values()].map((pending) => ({
      ...pending,
      returnTimeMs: now,
      outcome: 'indeterminate' as const,
    }));
    return [...this.operations, ...abandoned].sort((a, b) => a.callTimeMs - b.callTimeMs || a.id - b.id);
  }

  /** The number of operations invoked and not yet completed. */
  get pendingCount(): number {
    return this.pending.size;
  }
}

/** Renders a history as JSON lines, one operation per line, ending with a newline. */
export function formatHistoryJsonLines(history: readonly Operation[]): string {
  return history.map((operation) => JSON.stringify(operation)).join('\n') + (history.length > 0 ? '\n' : '');
}

/** The result of parsing a history file: the operations, or the first problem found. */
export type ParseHistoryResult =
  | { readonly ok: true; readonly history: Operation[] }
  | { readonly ok: false; readonly line: number; readonly reason: string };

/** Parses and validates JSON lines produced by {@link formatHistoryJsonLines}. */
export function parseHistoryJsonLines(text: string): ParseHistoryResult {
  const history: Operation[] = [];
  const seenIds = new Set<number>();
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] ?? '').trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      return { ok: false, line: index + 1, reason: `not JSON: ${(error as Error).message}` };
    }
    const checked = validateOperation(parsed);
    if (typeof checked === 'string') return { ok: false, line: index + 1, reason: checked };
    if (seenIds.has(checked.id)) return { ok: false, line: index + 1, reason: `duplicate id ${checked.id}` };
    seenIds.add(checked.id);
    history.push(checked);
  }
  return { ok: true, history };
}

function validateOperation(value: unknown): Operation | string {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const record = value as Record<string, unknown>;
  const { id, client, key, kind, callTimeMs, returnTimeMs, outcome } = record;
  const operationValue = record['value'];
  if (typeof id !== 'number' || !Number.isInteger(id)) return 'id must be an integer';
  if (typeof client !== 'number' || !Number.isInteger(client)) return 'client must be an integer';
  if (typeof key !== 'string') return 'key must be a string';
  if (kind !== 'put' && kind !== 'get') return "kind must be 'put' or 'get'";
  if (operationValue !== null && typeof operationValue !== 'string') return 'value must be a string or null';
  if (kind === 'put' && operationValue === null) return 'a put must carry a value';
  if (typeof callTimeMs !== 'number' || !Number.isFinite(callTimeMs)) return 'callTimeMs must be a finite number';
  if (typeof returnTimeMs !== 'number' || !Number.isFinite(returnTimeMs)) {
    return 'returnTimeMs must be a finite number';
  }
  if (returnTimeMs < callTimeMs) return 'returnTimeMs is before callTimeMs';
  if (outcome !== 'ok' && outcome !== 'fail' && outcome !== 'indeterminate') {
    return "outcome must be 'ok', 'fail' or 'indeterminate'";
  }
  const server = record['server'];
  if (server !== undefined && typeof server !== 'string') return 'server must be a string';
  return { id, client, key, kind, value: operationValue, callTimeMs, returnTimeMs, outcome, ...(server === undefined ? {} : { server }) };
}

/** Writes a history to a file as JSON lines (synchronously, so a crashing run still leaves it). */
export function saveHistory(filePath: string, history: readonly Operation[]): void {
  fs.writeFileSync(filePath, formatHistoryJsonLines(history));
}

/** Reads and validates a history file; a malformed file throws with its line number. */
export function loadHistory(filePath: string): Operation[] {
  const result = parseHistoryJsonLines(fs.readFileSync(filePath, 'utf8'));
  if (!result.ok) throw new Error(`${filePath}:${result.line}: ${result.reason}`);
  return result.history;
}
