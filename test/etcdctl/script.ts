/**
 * The etcdctl command script of the differential suite (issues "etcd v3 API, part 1" and
 * "part 2": KV and watch, then leases), and the
 * interpreter that runs it against one target and records each step's normalised output.
 *
 * The script assumes an EMPTY store at revision 1 (a fresh etcd, or a fresh raftkv cluster)
 * and is deterministic: the same writes in the same order, one etcdctl process at a time, so
 * every revision printed must be the same on both targets. Arguments that depend on the state
 * (a revision to compact to, the start revision of a live watch) are computed from the target
 * itself at run time and recorded in the step's command line, so a target whose revisions
 * drift shows up in the command as well as in the output.
 *
 * Step kinds:
 * - `command`: one etcdctl invocation, optionally with stdin (txn). `captureLease` stores the
 *   lease ID the command printed (`lease grant`), for later steps to pass as an argument;
 *   `minimumLeaseTtl` normalises a granted TTL equal to the target's minimum lease TTL (see
 *   {@link OutputNormaliser.replaceMinimumLeaseTtl}; used by ONE step only);
 * - `watch`: start `etcdctl watch …` in the background, run `writes` as recorded commands
 *   meanwhile, wait (with a deadline) until the printed output satisfies `until`, then SIGTERM
 *   it and record what it printed. How the wait ended is part of the record.
 *
 * etcdctl 3.4's non-interactive `txn` reads three sections from stdin (etcdctl/ctlv3/command/
 * txn_command.go): compares, success ops, failure ops, one per line, each section ended by an
 * EMPTY line; reaching EOF inside a section is an error ("Error: EOF", exit 3). So
 * `mod("k") > "0"\n\nput k v2\n\nput k v3\n\n` is complete, and bash's `<<< $'…v3\n'` works
 * only because a here-string appends the final newline. {@link txnInput} builds that format.
 */
import { countJsonWatchEvents, headerRevisionOf, parseJsonLines, runEtcdctl, startEtcdctlWatch, wantsJsonOutput, type EtcdctlResult } from './etcdctl-runner';
import { OutputNormaliser } from './output-normaliser';
import type { RecordedStep } from './step-comparison';

/** What a step may consult to compute its arguments. */
export interface ScriptContext {
  /** The target's current revision (`header.revision` of a Range, which writes nothing). */
  currentRevision(): Promise<number>;
  /** Stores a number for later steps (e.g. the revision compacted to). */
  remember(name: string, value: number): void;
  /** A number stored by an earlier step; throws if there is none. */
  recall(name: string): number;
  /** A lease ID (hex, as etcdctl takes it) captured by an earlier step; throws if there is none. */
  recallLease(name: string): string;
}

/** Fixed arguments, or arguments computed from the target when the step runs. */
export type StepArguments = readonly string[] | ((context: ScriptContext) => Promise<readonly string[]>);

/** When a background watch has printed enough. */
export type WatchStopCondition =
  | { readonly kind: 'json-events'; readonly count: number }
  | { readonly kind: 'line'; readonly line: string };

/** One step of the script. Names are unique; they label steps in difference reports. */
export type ScriptStep =
  | {
      readonly kind: 'command';
      readonly name: string;
      readonly args: StepArguments;
      readonly stdin?: string;
      /** Remember the lease ID granted by this command under this name. */
      readonly captureLease?: string;
      /** Normalise a granted TTL equal to the target's minimum lease TTL (see the overview). */
      readonly minimumLeaseTtl?: boolean;
    }
  | {
      readonly kind: 'watch';
      readonly name: string;
      readonly args: StepArguments;
      readonly writes: readonly (readonly string[])[];
      readonly until: WatchStopCondition;
    };

/** How long a background watch may take to print what it is waiting for. */
const WATCH_DEADLINE_MS = 5000;

/** Builds etcdctl txn's stdin: three sections, each line-per-item and ended by an empty line. */
export function txnInput(compares: readonly string[], success: readonly string[], failure: readonly string[]): string {
  const section = (lines: readonly string[]): string => lines.map((line) => `${line}\n`).join('') + '\n';
  return section(compares) + section(success) + section(failure);
}

const command = (name: string, args: StepArguments, stdin?: string): ScriptStep =>
  stdin === undefined ? { kind: 'command', name, args } : { kind: 'command', name, args, stdin };

/** A `lease grant` step whose printed lease ID is remembered as `leaseName`. */
const grant = (name: string, args: readonly string[], leaseName: string): ScriptStep => ({ kind: 'command', name, args, captureLease: leaseName });

/** A step whose arguments name the lease remembered as `leaseName` (`${lease}` in `args`). */
const withLease = (name: string, leaseName: string, args: (lease: string) => readonly string[]): ScriptStep =>
  command(name, async (context) => args(context.recallLease(leaseName)));

/**
 * The lease ID printed by `lease grant` (`lease <hex> granted …`, or `"ID":<decimal>` with
 * `-w json`), as the hex etcdctl's other lease commands take. Throws if none was printed.
 */
export function grantedLeaseId(result: EtcdctlResult): string {
  if (wantsJsonOutput(result.args)) {
    const [document] = parseJsonLines(result.stdout);
    const id = (document as { ID?: unknown } | undefined)?.ID;
    if (typeof id !== 'number' && typeof id !== 'string') throw new Error(`no lease ID in etcdctl output: ${result.stdout}${result.stderr}`);
    // etcdctl prints and the normaliser recognises lease IDs as 16 hex digits (%016x).
    return BigInt(id).toString(16).padStart(16, '0');
  }
  const granted = /^lease ([0-9a-f]+) granted/m.exec(result.stdout);
  if (granted === null) throw new Error(`no lease ID in etcdctl output: ${result.stdout}${result.stderr}`);
  return granted[1] as string;
}

/** A lease ID no target has granted (etcdctl prints it as 000000001234abcd). */
const UNKNOWN_LEASE = '1234abcd';

/**
 * The part-2 script (issue "etcd v3 API, part 2"): the Lease service through etcdctl 3.4. It runs
 * after {@link partOneScript} and keeps that script's revisions (leased puts and revokes are
 * writes like any other).
 *
 * Two things are arranged so that the outputs do not depend on timing or on which member answers:
 * - `lease list` runs while exactly ONE lease exists. etcd sorts LeaseLeases by expiry
 *   (lease/lessor.go `Leases`), but a follower keeps no expiry times, so with two leases the
 *   order depends on the member etcdctl happens to reach.
 * - The short leases (`lease grant 1`, raised to the minimum TTL) are granted LAST and never used:
 *   they expire on their own within about two seconds, and anything that looked at them later
 *   would race that expiry. They have no keys, so their expiry changes no revision.
 */
export function leaseScript(): ScriptStep[] {
  return [
    // --- grant, and keys attached to leases ------------------------------------------------
    grant('lease grant 100', ['lease', 'grant', '100'], 'a'),
    grant('lease grant 100 -w json', ['lease', 'grant', '100', '-w', 'json'], 'b'),
    withLease('put --lease', 'a', (lease) => ['put', 'lease/a1', 'v1', `--lease=${lease}`]),
    withLease('put --lease -w json', 'a', (lease) => ['put', 'lease/a2', 'v2', `--lease=${lease}`, '-w', 'json']),
    withLease('put --lease second lease', 'b', (lease) => ['put', 'lease/b1', 'v3', `--lease=${lease}`]),
    command('get leased keys -w json', ['get', 'lease/', '--prefix', '-w', 'json']),
    command('get leased key -w fields', ['get', 'lease/a1', '-w', 'fields']),

    // --- time to live (the remaining TTL is windowed, see output-normaliser.ts) -------------
    withLease('lease timetolive', 'a', (lease) => ['lease', 'timetolive', lease]),
    withLease('lease timetolive --keys', 'a', (lease) => ['lease', 'timetolive', lease, '--keys']),
    withLease('lease timetolive --keys -w json', 'a', (lease) => ['lease', 'timetolive', lease, '--keys', '-w', 'json']),
    withLease('lease timetolive without keys -w json', 'b', (lease) => ['lease', 'timetolive', lease, '-w', 'json']),

    // --- revoke: the attached keys go, in one revision -------------------------------------
    withLease('lease revoke', 'b', (lease) => ['lease', 'revoke', lease]),
    command('get key of revoked lease', ['get', 'lease/b1']),
    withLease('lease timetolive revoked', 'b', (lease) => ['lease', 'timetolive', lease]),
    withLease('lease timetolive revoked -w json', 'b', (lease) => ['lease', 'timetolive', lease, '-w', 'json']),

    // --- list and keep-alive (only lease "a" exists now) -----------------------------------
    command('lease list', ['lease', 'list']),
    command('lease list -w json', ['lease', 'list', '-w', 'json']),
    withLease('lease keep-alive --once', 'a', (lease) => ['lease', 'keep-alive', '--once', lease]),
    withLease('lease keep-alive --once -w json', 'a', (lease) => ['lease', 'keep-alive', '--once', lease, '-w', 'json']),
    withLease('lease timetolive after keep-alive --keys', 'a', (lease) => ['lease', 'timetolive', lease, '--keys']),
    withLease('lease revoke -w json', 'a', (lease) => ['lease', 'revoke', lease, '-w', 'json']),
    command('get keys of revoked lease -w json', ['get', 'lease/', '--prefix', '-w', 'json']),
    command('lease list empty', ['lease', 'list']),

    // --- errors ----------------------------------------------------------------------------
    withLease('lease revoke revoked', 'a', (lease) => ['lease', 'revoke', lease]),
    command('lease revoke unknown', ['lease', 'revoke', UNKNOWN_LEASE]),
    withLease('put --lease revoked', 'a', (lease) => ['put', 'lease/late', 'x', `--lease=${lease}`]),
    command('put --lease unknown', ['put', 'lease/late', 'x', `--lease=${UNKNOWN_LEASE}`]),
    command('lease timetolive unknown --keys', ['lease', 'timetolive', UNKNOWN_LEASE, '--keys']),
    command('lease timetolive unknown -w json', ['lease', 'timetolive', UNKNOWN_LEASE, '-w', 'json']),
    command('lease keep-alive --once unknown', ['lease', 'keep-alive', '--once', UNKNOWN_LEASE]),
    command('lease keep-alive --once unknown -w json', ['lease', 'keep-alive', '--once', UNKNOWN_LEASE, '-w', 'json']),
    command('lease grant too large', ['lease', 'grant', '9000000001']),
    command('get after lease errors -w json', ['get', 'lease/', '--prefix', '-w', 'json']),

    // --- below the minimum TTL: raised to the server's minimum (last, see above) -----------
    { kind: 'command', name: 'lease grant 1 (below the minimum TTL)', args: ['lease', 'grant', '1'], minimumLeaseTtl: true },
    { kind: 'command', name: 'lease grant 1 (below the minimum TTL) -w json', args: ['lease', 'grant', '1', '-w', 'json'], minimumLeaseTtl: true },
  ];
}

/** The whole differential script: part 1 (KV, watch), then part 2 (leases). */
export function differentialScript(): ScriptStep[] {
  return [...partOneScript(), ...leaseScript()];
}

/** The part-1 script: put, get, del, txn, watch, compaction and error cases. */
export function partOneScript(): ScriptStep[] {
  return [
    // --- put (a fresh store is at revision 1; each put below adds one) -----------------------
    command('put foo/a', ['put', 'foo/a', '1']), // rev 2
    command('put foo/b', ['put', 'foo/b', '2']), // rev 3
    command('put foo/c', ['put', 'foo/c', '3']), // rev 4
    command('put bar', ['put', 'bar', 'x']), // rev 5
    command('put --prev-kv', ['put', 'foo/a', '10', '--prev-kv']), // rev 6
    command('put --prev-kv -w json', ['put', 'foo/a', '11', '--prev-kv', '-w', 'json']), // rev 7
    command('put -w json', ['put', 'foo/b', '20', '-w', 'json']), // rev 8
    command('put -w fields', ['put', 'zed', 'last', '-w', 'fields']), // rev 9
    command('put key with space', ['put', 'foo/sp ace', 'multi word value']), // rev 10

    // --- get -------------------------------------------------------------------------------
    command('get', ['get', 'foo/a']),
    command('get -w json', ['get', 'foo/a', '-w', 'json']),
    command('get -w fields', ['get', 'foo/a', '-w', 'fields']),
    command('get -w simple --print-value-only', ['get', 'foo/a', '-w', 'simple', '--print-value-only']),
    command('get missing', ['get', 'foo/missing']),
    command('get missing -w json', ['get', 'foo/missing', '-w', 'json']),
    command('get --prefix', ['get', 'foo', '--prefix']),
    command('get --prefix -w json', ['get', 'foo', '--prefix', '-w', 'json']),
    command('get --prefix -w fields', ['get', 'foo', '--prefix', '-w', 'fields']),
    command('get range end', ['get', 'foo/a', 'foo/c']),
    command('get --from-key', ['get', 'foo/b', '--from-key']),
    command('get --from-key empty --keys-only', ['get', '', '--from-key', '--keys-only']),
    command('get --from-key empty --limit -w json', ['get', '', '--from-key', '--limit=3', '-w', 'json']),
    command('get --rev=2 -w json', ['get', 'foo/a', '--rev=2', '-w', 'json']),
    command('get --rev=6', ['get', 'foo/a', '--rev=6']),
    command('get --prefix --rev=4 -w json', ['get', 'foo', '--prefix', '--rev=4', '-w', 'json']),
    command('get --prefix --limit=2 -w json', ['get', 'foo', '--prefix', '--limit=2', '-w', 'json']),
    command('get --prefix --limit=1', ['get', 'foo', '--prefix', '--limit=1']),
    command('get --keys-only', ['get', 'foo', '--prefix', '--keys-only']),
    command('get --keys-only -w json', ['get', 'foo', '--prefix', '--keys-only', '-w', 'json']),
    command('get --order=DESCEND', ['get', 'foo', '--prefix', '--order=DESCEND']),
    command('get --sort-by=KEY DESCEND', ['get', 'foo', '--prefix', '--sort-by=KEY', '--order=DESCEND']),
    command('get --sort-by=CREATE ASCEND -w json', ['get', 'foo', '--prefix', '--sort-by=CREATE', '--order=ASCEND', '-w', 'json']),
    command('get --sort-by=CREATE DESCEND', ['get', 'foo', '--prefix', '--sort-by=CREATE', '--order=DESCEND']),
    command('get --sort-by=MODIFY no order -w json', ['get', 'foo', '--prefix', '--sort-by=MODIFY', '-w', 'json']),
    command('get --sort-by=MODIFY DESCEND', ['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=DESCEND']),
    command('get --sort-by=VERSION ASCEND', ['get', 'foo', '--prefix', '--sort-by=VERSION', '--order=ASCEND']),
    command('get --sort-by=VERSION DESCEND -w json', ['get', 'foo', '--prefix', '--sort-by=VERSION', '--order=DESCEND', '-w', 'json']),
    command('get --sort-by=VALUE ASCEND', ['get', 'foo', '--prefix', '--sort-by=VALUE', '--order=ASCEND']),
    command('get --sort-by=VALUE DESCEND -w json', ['get', 'foo', '--prefix', '--sort-by=VALUE', '--order=DESCEND', '-w', 'json']),
    command('get --sort-by=MODIFY DESCEND --limit=2 -w json', ['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=DESCEND', '--limit=2', '-w', 'json']),
    command('get --keys-only --sort-by=VALUE --limit=2', ['get', 'foo', '--prefix', '--keys-only', '--sort-by=VALUE', '--limit=2']),
    // --count-only arrived in etcdctl 3.5; 3.4 rejects it client-side. Recorded to pin that.
    command('get --count-only (not in 3.4)', ['get', 'foo', '--prefix', '--count-only']),

    // --- del -------------------------------------------------------------------------------
    command('del missing', ['del', 'foo/missing']), // no revision change
    command('del', ['del', 'foo/c']), // rev 11
    command('del --prev-kv', ['del', 'foo/b', '--prev-kv']), // rev 12
    command('put del/1', ['put', 'del/1', 'a']), // rev 13
    command('put del/2', ['put', 'del/2', 'b']), // rev 14
    command('put del/3', ['put', 'del/3', 'c']), // rev 15
    command('del --prefix --prev-kv -w json', ['del', 'del/', '--prefix', '--prev-kv', '-w', 'json']), // rev 16
    command('put r/1', ['put', 'r/1', '1']), // rev 17
    command('put r/2', ['put', 'r/2', '2']), // rev 18
    command('put r/3', ['put', 'r/3', '3']), // rev 19
    command('del range end', ['del', 'r/1', 'r/3']), // rev 20
    command('get after deletes -w json', ['get', '', '--from-key', '-w', 'json']),

    // --- txn (stdin format: see the module overview) ---------------------------------------
    command('txn success branch', ['txn'], txnInput(['mod("foo/a") > "0"'], ['put foo/a 12', 'get foo/a'], ['put foo/a failed'])), // rev 21
    command('txn failure branch -w json', ['txn', '-w', 'json'], txnInput(['value("foo/a") = "nope"'], ['put t/s 1'], ['put t/f 1', 'get foo/a'])), // rev 22
    command('txn version and create compares -w fields', ['txn', '-w', 'fields'], txnInput(['ver("foo/a") = "4"', 'create("foo/a") = "2"'], ['put t/s ok'], [])), // rev 23
    command('txn several compares', ['txn'], txnInput(['mod("foo/a") < "100"', 'value("zed") != "x"', 'ver("missing") = "0"'], ['put t/m yes'], ['put t/m no'])), // rev 24
    command('txn without compares', ['txn', '-w', 'json'], txnInput([], ['put t/e 1', 'put t/e2 2'], [])), // rev 25
    command('txn read-only -w json', ['txn', '-w', 'json'], txnInput([], ['get t --prefix'], [])), // no revision change
    command('txn del --prev-kv', ['txn'], txnInput(['ver("t/e2") > "0"'], ['del t/e2 --prev-kv'], [])), // rev 26
    command('txn duplicate key', ['txn'], txnInput([], ['put t/d 1', 'put t/d 2'], [])),
    command('txn malformed compare', ['txn'], txnInput(['mod(foo) > 0'], [], [])),
    command('txn missing final empty line', ['txn'], 'mod("foo/a") > "0"\n\nput foo/a v2\n\nput foo/a v3\n'),
    command('get after txns -w json', ['get', 't/', '--prefix', '-w', 'json']),

    // --- watch -----------------------------------------------------------------------------
    // Events on foo/ so far: revs 2, 3, 4, 6, 7, 8, 10 (puts), 11, 12 (deletes), 21 (txn put).
    {
      kind: 'watch',
      name: 'watch history --prefix --prev-kv -w json',
      args: ['watch', 'foo', '--prefix', '--rev=1', '--prev-kv', '-w', 'json'],
      writes: [],
      until: { kind: 'json-events', count: 10 },
    },
    {
      kind: 'watch',
      name: 'watch live --prefix --prev-kv',
      args: async (context) => {
        const startRevision = (await context.currentRevision()) + 1;
        context.remember('live-watch-start', startRevision);
        return ['watch', 'live', '--prefix', `--rev=${startRevision}`, '--prev-kv'];
      },
      writes: [
        ['put', 'live/a', '1'],
        ['put', 'live/a', '2'],
        ['put', 'live/b', '3'],
        ['del', 'live/a'],
        ['put', 'live/z', 'end-of-watch'],
      ],
      until: { kind: 'line', line: 'end-of-watch' },
    },
    {
      kind: 'watch',
      name: 'watch single key -w json',
      args: async (context) => ['watch', 'live/a', `--rev=${context.recall('live-watch-start')}`, '-w', 'json'],
      writes: [],
      until: { kind: 'json-events', count: 3 },
    },

    // --- compaction ------------------------------------------------------------------------
    command('compaction', async (context) => {
      const revision = (await context.currentRevision()) - 3;
      context.remember('compacted', revision);
      return ['compaction', String(revision)];
    }),
    command('compaction twice', async (context) => ['compaction', String(context.recall('compacted'))]),
    command('compaction older', async (context) => ['compaction', String(context.recall('compacted') - 1)]),
    command('compaction future', ['compaction', '1000000']),
    command('get --rev compacted', ['get', 'foo/a', '--rev=2']),
    command('get --rev compacted -w json', ['get', 'foo', '--prefix', '--rev=2', '-w', 'json']),
    command('get --rev at compaction -w json', async (context) => ['get', 'foo', '--prefix', `--rev=${context.recall('compacted')}`, '-w', 'json']),
    command('get --rev future', ['get', 'foo/a', '--rev=1000000']),
    command('watch compacted revision', ['watch', 'foo', '--prefix', '--rev=2']),
    command('watch compacted revision -w json', ['watch', 'foo', '--prefix', '--rev=2', '-w', 'json']),
    command('compaction --physical', async (context) => ['compaction', String(await context.currentRevision()), '--physical']),

    // --- errors ----------------------------------------------------------------------------
    command('put empty key', ['put', '', 'x']),
    command('get empty key', ['get', '']),
    command('del empty key', ['del', '']),
    command('put without value', ['put', 'only-key']),
    command('get bad sort target', ['get', 'foo', '--sort-by=BOGUS']),
    command('final state -w json', ['get', '', '--from-key', '-w', 'json']),
  ];
}

/** A script run against one target. */
export interface ScriptRun {
  readonly steps: RecordedStep[];
  /** Names of watch steps that stopped at the deadline instead of their condition. */
  readonly watchesStoppedAtDeadline: string[];
}

/** What {@link runScript} needs to know about the target besides its endpoints. */
export interface ScriptTargetFacts {
  /** The lease TTL the target raises shorter grants to (steps with `minimumLeaseTtl`). */
  readonly minimumLeaseTtlSeconds: number;
}

/**
 * Runs `script` against the target reachable at `endpoints`, one step at a time, and records
 * every step's normalised output (writes performed during a watch are recorded as their own
 * steps, named `<watch> / <write>`, before the watch itself).
 */
export async function runScript(endpoints: readonly string[], script: readonly ScriptStep[], facts: ScriptTargetFacts): Promise<ScriptRun> {
  const normaliser = new OutputNormaliser();
  const remembered = new Map<string, number>();
  const leases = new Map<string, string>();
  const context: ScriptContext = {
    async currentRevision() {
      const probe = await runEtcdctl(endpoints, ['get', 'revision-probe', '-w', 'json']);
      if (probe.exitCode !== 0) throw new Error(`revision probe failed (${probe.exitCode}): ${probe.stderr}`);
      return headerRevisionOf(probe.stdout);
    },
    remember(name, value) {
      remembered.set(name, value);
    },
    recall(name) {
      const value = remembered.get(name);
      if (value === undefined) throw new Error(`script bug: nothing remembered as "${name}"`);
      return value;
    },
    recallLease(name) {
      const lease = leases.get(name);
      if (lease === undefined) throw new Error(`script bug: no lease captured as "${name}"`);
      return lease;
    },
  };
  const steps: RecordedStep[] = [];
  const watchesStoppedAtDeadline: string[] = [];
  const record = (name: string, output: RecordedStep['output']): void => {
    steps.push({ index: steps.length + 1, name, output });
  };
  for (const step of script) {
    const args = typeof step.args === 'function' ? await step.args(context) : step.args;
    if (step.kind === 'command') {
      const result = await runEtcdctl(endpoints, args, step.stdin === undefined ? {} : { stdin: step.stdin });
      if (step.captureLease !== undefined) leases.set(step.captureLease, grantedLeaseId(result));
      const output = normaliser.normalise(result);
      record(step.name, step.minimumLeaseTtl === true ? normaliser.replaceMinimumLeaseTtl(output, facts.minimumLeaseTtlSeconds) : output);
      continue;
    }
    const watch = startEtcdctlWatch(endpoints, args);
    let stopReason: string;
    try {
      for (const write of step.writes) {
        record(`${step.name} / ${write.join(' ')}`, normaliser.normalise(await runEtcdctl(endpoints, write)));
      }
      const until = step.until;
      stopReason = await watch.waitForOutput(
        (stdout) => (until.kind === 'line' ? stdout.split('\n').slice(0, -1).includes(until.line) : countJsonWatchEvents(stdout) >= until.count),
        WATCH_DEADLINE_MS,
      );
    } catch (error) {
      // Always end the watch process, also when a write fails.
      await watch.stop();
      throw error;
    }
    const result = await watch.stop();
    if (stopReason !== 'condition-met') watchesStoppedAtDeadline.push(step.name);
    const output = normaliser.normalise(result);
    record(step.name, { ...output, exit: `${output.exit} (harness stopped waiting: ${stopReason})` });
  }
  return { steps, watchesStoppedAtDeadline };
}
