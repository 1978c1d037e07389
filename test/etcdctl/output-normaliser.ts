/**
 * Makes the outputs of etcdctl against two different servers comparable, field by field.
 *
 * What is replaced, and why:
 * - `cluster_id`, `member_id`, `raft_term` (JSON headers; `ClusterID`, `MemberID`, `RaftTerm`
 *   in `-w fields`): they identify a cluster, the member that happened to answer and an
 *   election count, none of which two independent clusters share. A non-zero value becomes a
 *   placeholder; a zero stays zero, because etcd leaves nested Txn response headers empty and a
 *   server that filled them would be different.
 * - Lease IDs: each server picks its own. Every distinct ID becomes `<lease-N>` in order of
 *   first appearance, in hex (`lease 694d… granted`), in decimal (`"lease":7587…`) and in
 *   command lines, so "the same lease" still has to be the same lease on both sides.
 * - Timings: `took = 1.2ms`, `remaining(59s)`, and the `ts` and `target` (client UUID) of the
 *   Go client's JSON log lines on stderr.
 * - Watch `-w json` batches: a server may deliver a catch-up as one response or many, so events
 *   are flattened into one list and response headers (whose revision depends on when the
 *   response was sent) are dropped.
 *
 * What is KEPT: revisions (`revision`, `create_revision`, `mod_revision`, `version`, compaction
 * revisions). Both targets start empty and receive the same writes, so they must match.
 * Keys and values (base64 in JSON) are decoded to `utf8:<text>` when that is lossless, only to
 * make diffs readable.
 *
 * One {@link OutputNormaliser} belongs to one target for a whole script run, because lease
 * numbering spans steps.
 */
import { parseJsonLines, wantsJsonOutput, type EtcdctlResult } from './etcdctl-runner';

/** Normalised stdout: parsed JSON documents, flattened watch events, or text lines. */
export type NormalisedStdout =
  | { readonly format: 'json'; readonly documents: unknown[] }
  | { readonly format: 'watch-json'; readonly events: unknown[]; readonly otherResponses: unknown[] }
  | { readonly format: 'text'; readonly lines: string[] };

/** One step's output after normalisation; two targets behave alike iff these are deep-equal. */
export interface NormalisedOutput {
  /** The command line (shell-quoted, lease IDs replaced) and its stdin. */
  readonly command: string;
  /** `exit 0`, `signal SIGTERM` or `killed after timeout`. */
  readonly exit: string;
  readonly stdout: NormalisedStdout;
  /** Lines of stderr, Go client log lines re-serialised without timestamps and client IDs. */
  readonly stderr: string[];
}

const HEADER_PLACEHOLDERS: Readonly<Record<string, string>> = {
  cluster_id: '<cluster-id>',
  member_id: '<member-id>',
  raft_term: '<raft-term>',
  ClusterID: '<cluster-id>',
  MemberID: '<member-id>',
  RaftTerm: '<raft-term>',
};

/** Per-target normaliser; see the module overview for the rules. */
export class OutputNormaliser {
  private readonly leasePlaceholders = new Map<bigint, string>();

  /** The placeholder of a lease ID, allocating the next `<lease-N>` on first sight. */
  leasePlaceholder(leaseId: bigint): string {
    let placeholder = this.leasePlaceholders.get(leaseId);
    if (placeholder === undefined) {
      placeholder = `<lease-${this.leasePlaceholders.size + 1}>`;
      this.leasePlaceholders.set(leaseId, placeholder);
    }
    return placeholder;
  }

  /** Normalises one finished etcdctl run. */
  normalise(result: EtcdctlResult): NormalisedOutput {
    const isLeaseCommand = result.args[0] === 'lease';
    // Register lease IDs announced in text output before anything refers to them.
    if (isLeaseCommand) this.registerHexLeaseIds(result.stdout, result.args[1] === 'list');
    return {
      command: this.normaliseCommand(result),
      exit: describeExit(result),
      stdout: this.normaliseStdout(result, isLeaseCommand),
      stderr: normaliseStderr(result.stderr),
    };
  }

  private normaliseCommand(result: EtcdctlResult): string {
    const words = result.args.map(shellQuote).map((word) => this.replaceKnownHexLeaseIds(word));
    const stdinPart = result.stdin === undefined ? '' : ` <<< ${ansiCQuote(result.stdin)}`;
    return `etcdctl ${words.join(' ')}${stdinPart}`;
  }

  private normaliseStdout(result: EtcdctlResult, isLeaseCommand: boolean): NormalisedStdout {
    if (wantsJsonOutput(result.args)) {
      let documents: unknown[];
      try {
        documents = parseJsonLines(result.stdout);
      } catch {
        // Not JSON (an error or usage text): compare it as text instead.
        return { format: 'text', lines: this.normaliseTextLines(result.stdout, isLeaseCommand) };
      }
      const normalised = documents.map((document) => this.normaliseJson(document, undefined));
      if (result.args[0] === 'watch') return flattenWatchResponses(normalised);
      return { format: 'json', documents: normalised };
    }
    return { format: 'text', lines: this.normaliseTextLines(result.stdout, isLeaseCommand) };
  }

  /** Walks a parsed JSON document, replacing identifiers and decoding bytes. */
  private normaliseJson(value: unknown, fieldName: string | undefined): unknown {
    if (Array.isArray(value)) return value.map((element) => this.normaliseJson(element, fieldName));
    if (value !== null && typeof value === 'object') {
      const output: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(value as Record<string, unknown>)) output[name] = this.normaliseJson(child, name);
      return output;
    }
    if (fieldName === undefined) return value;
    const placeholder = HEADER_PLACEHOLDERS[fieldName];
    if (placeholder !== undefined) return isZero(value) ? value : placeholder;
    if (fieldName === 'lease' || fieldName === 'ID') {
      return isZero(value) || !isInteger(value) ? value : this.leasePlaceholder(BigInt(value as string | number));
    }
    if ((fieldName === 'key' || fieldName === 'value') && typeof value === 'string') return decodeBase64ForReading(value);
    return value;
  }

  private normaliseTextLines(text: string, isLeaseCommand: boolean): string[] {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.map((line) => {
      let output = line
        .replace(/took = [^\s,)]+/g, 'took = <duration>')
        .replace(/remaining\(-?\d+s\)/g, 'remaining(<seconds>)')
        .replace(/^"(ClusterID|MemberID|RaftTerm)" : (\d+)$/, (whole, name: string, digits: string) =>
          digits === '0' ? whole : `"${name}" : ${HEADER_PLACEHOLDERS[name] ?? '<id>'}`,
        )
        .replace(/^"Lease" : (\d+)$/, (whole, digits: string) => (digits === '0' ? whole : `"Lease" : ${this.leasePlaceholder(BigInt(digits))}`));
      if (isLeaseCommand) {
        output = output.replace(/^"ID" : (\d+)$/, (whole, digits: string) => (digits === '0' ? whole : `"ID" : ${this.leasePlaceholder(BigInt(digits))}`));
      }
      return this.replaceKnownHexLeaseIds(output);
    });
  }

  /** Registers the IDs in `lease N granted` lines, and in every line of `lease list`. */
  private registerHexLeaseIds(stdout: string, everyHexLine: boolean): void {
    for (const line of stdout.split('\n')) {
      const granted = /^lease ([0-9a-f]{16}) granted/.exec(line);
      if (granted !== null) this.leasePlaceholder(BigInt(`0x${granted[1]}`));
      else if (everyHexLine && /^[0-9a-f]{16}$/.test(line)) this.leasePlaceholder(BigInt(`0x${line}`));
    }
  }

  /** Replaces every 16-digit hex token that is a lease ID already seen. */
  private replaceKnownHexLeaseIds(text: string): string {
    return text.replace(/\b[0-9a-f]{16}\b/g, (token) => {
      const placeholder = this.leasePlaceholders.get(BigInt(`0x${token}`));
      return placeholder ?? token;
    });
  }
}

/** `exit N`, `signal S` or `killed after timeout`. */
function describeExit(result: EtcdctlResult): string {
  if (result.timedOut) return 'killed after timeout';
  if (result.exitCode !== null) return `exit ${result.exitCode}`;
  return `signal ${result.signal ?? 'unknown'}`;
}

/**
 * Stderr lines; the Go client's JSON log lines (`{"level":"warn","ts":…,"target":…}`) are
 * re-serialised without `ts` and `target`, which carry a time and a random client UUID.
 */
function normaliseStderr(stderr: string): string[] {
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  return lines.map((line) => {
    if (!line.startsWith('{')) return line;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      delete entry.ts;
      delete entry.target;
      return JSON.stringify(entry);
    } catch {
      return line;
    }
  });
}

/** Flattens watch responses into events plus the event-less responses (cancel notices). */
function flattenWatchResponses(responses: unknown[]): NormalisedStdout {
  const events: unknown[] = [];
  const otherResponses: unknown[] = [];
  for (const response of responses) {
    const { Header: _header, Events: responseEvents, ...rest } = response as { Header?: unknown; Events?: unknown[] | null } & Record<string, unknown>;
    if (Array.isArray(responseEvents) && responseEvents.length > 0) events.push(...responseEvents);
    else otherResponses.push(rest);
  }
  return { format: 'watch-json', events, otherResponses };
}

function isZero(value: unknown): boolean {
  return value === 0 || value === '0';
}

function isInteger(value: unknown): boolean {
  return (typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && /^-?\d+$/.test(value));
}

/** `utf8:<text>` if the base64 decodes to printable UTF-8 that re-encodes identically. */
function decodeBase64ForReading(encoded: string): string {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.toString('base64') !== encoded) return encoded;
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes) && /^[\x20-\x7e]*$/.test(text)) return `utf8:${text}`;
  return `base64:${encoded}`;
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function ansiCQuote(text: string): string {
  return `$'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}
