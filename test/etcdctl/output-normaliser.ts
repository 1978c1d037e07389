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
 * - Timings: `took = 1.2ms`, and the `ts` and `target` (client UUID) of the Go client's JSON log
 *   lines on stderr.
 * - The REMAINING TTL of `lease timetolive` (`remaining(99s)` in text, `"ttl"` in `-w json`): it
 *   ticks down between commands, so the two targets print it a few seconds apart. Only that
 *   number is replaced, and only when it lies within {@link REMAINING_TTL_WINDOW_SECONDS} below
 *   the granted TTL printed next to it: it becomes `<granted minus 0..10s>`. Any other value
 *   (above the granted TTL, far below it, `-1` for an unknown lease) is kept and compared.
 *   The granted TTL itself is always kept.
 * - The attached keys of `lease timetolive --keys` (`attached keys([k1 k2])`, `"keys"`) are
 *   SORTED: etcd collects them from a Go map (lease/lessor.go `Lease.Keys` over `itemSet`), so
 *   their order differs from call to call even between two etcds. Which keys, and how many,
 *   is still compared.
 * - Lease IDs also appear as `"id"` in the `-w json` output of `lease timetolive` and
 *   `lease list` (clientv3's JSON tags), and are numbered the same way there.
 * - Only on request, for one step ({@link OutputNormaliser.replaceMinimumLeaseTtl}): a granted
 *   TTL equal to the target's MINIMUM lease TTL, which follows each server's election timeout.
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

/**
 * How far below the granted TTL a remaining TTL may be and still count as "the same": well
 * above the few seconds the script spends between a grant (or keep-alive) and a time-to-live,
 * and far below the 100 s leases the script grants, so a server that forgot to count down or
 * reported a wrong remaining time would still show up.
 */
export const REMAINING_TTL_WINDOW_SECONDS = 10;

/** The placeholder of a remaining TTL inside the window (see the module overview). */
const REMAINING_TTL_PLACEHOLDER = `<granted minus 0..${REMAINING_TTL_WINDOW_SECONDS}s>`;

/** The placeholder of a granted TTL equal to the target's minimum lease TTL. */
export const MINIMUM_LEASE_TTL_PLACEHOLDER = '<minimum lease TTL>';

/** `remaining` as a placeholder if it lies within the window below `granted`, else unchanged. */
function remainingTtlWithinWindow(granted: number, remaining: number): number | string {
  const elapsed = granted - remaining;
  // remaining -1 is "unknown lease" (with granted 0), never a time: it is always kept.
  return remaining >= 0 && elapsed >= 0 && elapsed <= REMAINING_TTL_WINDOW_SECONDS ? REMAINING_TTL_PLACEHOLDER : remaining;
}

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
      const normalised = documents.map((document) => this.normaliseJson(document, undefined, isLeaseCommand));
      if (result.args[0] === 'watch') return flattenWatchResponses(normalised);
      if (isLeaseCommand && result.args[1] === 'timetolive') return { format: 'json', documents: normalised.map(normaliseRemainingTtlJson) };
      return { format: 'json', documents: normalised };
    }
    return { format: 'text', lines: this.normaliseTextLines(result.stdout, isLeaseCommand) };
  }

  /** Walks a parsed JSON document, replacing identifiers and decoding bytes. */
  private normaliseJson(value: unknown, fieldName: string | undefined, isLeaseCommand: boolean): unknown {
    if (Array.isArray(value)) return value.map((element) => this.normaliseJson(element, fieldName, isLeaseCommand));
    if (value !== null && typeof value === 'object') {
      const output: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(value as Record<string, unknown>)) output[name] = this.normaliseJson(child, name, isLeaseCommand);
      return output;
    }
    if (fieldName === undefined) return value;
    const placeholder = HEADER_PLACEHOLDERS[fieldName];
    if (placeholder !== undefined) return isZero(value) ? value : placeholder;
    if (fieldName === 'lease' || fieldName === 'ID' || (isLeaseCommand && fieldName === 'id')) {
      return isZero(value) || !isInteger(value) ? value : this.leasePlaceholder(BigInt(value as string | number));
    }
    // `keys`: the attached keys of `lease timetolive --keys -w json`, one base64 string each.
    if ((fieldName === 'key' || fieldName === 'value' || fieldName === 'keys') && typeof value === 'string') return decodeBase64ForReading(value);
    return value;
  }

  private normaliseTextLines(text: string, isLeaseCommand: boolean): string[] {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.map((line) => {
      let output = line
        .replace(/took = [^\s,)]+/g, 'took = <duration>')
        .replace(/granted with TTL\((\d+)s\), remaining\((-?\d+)s\)/, (_whole, granted: string, remaining: string) => {
          const windowed = remainingTtlWithinWindow(Number(granted), Number(remaining));
          return `granted with TTL(${granted}s), remaining(${typeof windowed === 'number' ? `${windowed}s` : windowed})`;
        })
        .replace(/attached keys\(\[(.*)\]\)$/, (_whole, keys: string) => `attached keys([${sortAttachedKeys(keys)}])`)
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

  /**
   * Replaces a granted TTL equal to `minimumTtlSeconds` (the target's minimum lease TTL) by
   * {@link MINIMUM_LEASE_TTL_PLACEHOLDER}: `TTL(2s)` in text, `"TTL": 2` in `-w json`. For the ONE
   * step that grants a TTL below the minimum: etcd raises it to ⌈1.5 election timeouts⌉ (2 s with
   * its defaults), raftkv to the same formula over its own, shorter, test timings, so the printed
   * numbers legitimately differ while "raised to this server's minimum" must hold on both. Any
   * other TTL (e.g. the requested 1 s left unraised) is kept and compared.
   */
  replaceMinimumLeaseTtl(output: NormalisedOutput, minimumTtlSeconds: number): NormalisedOutput {
    const stdout = output.stdout;
    if (stdout.format === 'text') {
      const lines = stdout.lines.map((line) => line.replace(new RegExp(`(granted with TTL\\()${minimumTtlSeconds}s\\)`), `$1${MINIMUM_LEASE_TTL_PLACEHOLDER})`));
      return { ...output, stdout: { format: 'text', lines } };
    }
    if (stdout.format === 'json') {
      const documents = stdout.documents.map((document) => {
        const fields = document as Record<string, unknown>;
        return fields.TTL === minimumTtlSeconds ? { ...fields, TTL: MINIMUM_LEASE_TTL_PLACEHOLDER } : document;
      });
      return { ...output, stdout: { format: 'json', documents } };
    }
    return output;
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

/**
 * A `lease timetolive -w json` document with `ttl` (remaining) windowed against `granted-ttl`
 * and its `keys` sorted (see the module overview).
 */
function normaliseRemainingTtlJson(document: unknown): unknown {
  const fields = { ...(document as Record<string, unknown>) };
  if (Array.isArray(fields.keys)) fields.keys = [...(fields.keys as unknown[])].sort(compareAsStrings);
  const granted = fields['granted-ttl'];
  const remaining = fields.ttl;
  if (typeof granted === 'number' && typeof remaining === 'number') fields.ttl = remainingTtlWithinWindow(granted, remaining);
  return fields;
}

/**
 * The keys of `attached keys([…])`, sorted. etcdctl prints them with Go's `%s` of a []string,
 * i.e. separated by single spaces; keys containing spaces cannot be told apart there, and the
 * script attaches none.
 */
function sortAttachedKeys(keys: string): string {
  return keys === '' ? keys : keys.split(' ').sort(compareAsStrings).join(' ');
}

function compareAsStrings(left: unknown, right: unknown): number {
  const [a, b] = [String(left), String(right)];
  return a < b ? -1 : a > b ? 1 : 0;
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
