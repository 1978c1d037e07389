/**
 * The etcdctl differential suite (issues "etcd v3 API, part 1" and "part 2"): the same etcdctl 3.4 command
 * script (script.ts) runs against two targets, every step's output is normalised
 * (output-normaliser.ts), and the two runs must be equal step by step, field by field.
 *
 * Target A, the reference, is always a real three-member etcd 3.4; its run is recorded once and
 * shared by the comparisons below.
 * - The first comparison uses a second real etcd (a single member) as target B. Two real etcds
 *   must show ZERO differences; this proves the harness and the normaliser, including that
 *   cluster and member IDs, terms and timings are neutralised while revisions are not.
 * - The second uses raftkv as target B ({@link startRaftkvTarget}). It is skipped, with the
 *   reason, while that factory is still a stub.
 *
 * The reference run is also checked against a few facts of etcd 3.4 (anchors), so that two
 * targets that fail in the same way (e.g. both unreachable) cannot pass as "equal".
 *
 * Set ETCDCTL_DIFFERENTIAL_DUMP_DIRECTORY to a directory to get every run written there as
 * text (one file per target, every step's normalised output), for reading or diffing by hand.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { etcdAvailable } from '../support/etcd-reference';
import { differentialScript, runScript, type ScriptRun } from './script';
import { compareRuns, formatDifferences, renderOutput, type RecordedStep } from './step-comparison';
import { startEtcdTarget, startRaftkvTarget, type EtcdctlTarget } from './targets';

const TEST_TIMEOUT_MS = 120_000;

/** The outcome of running the script against one target, with the target's logs on failure. */
interface TargetRun {
  readonly label: string;
  readonly run: ScriptRun;
}

/** Writes a run to ETCDCTL_DIFFERENTIAL_DUMP_DIRECTORY, if that is set. */
function dumpRun(label: string, run: ScriptRun): void {
  const directory = process.env.ETCDCTL_DIFFERENTIAL_DUMP_DIRECTORY;
  if (directory === undefined || directory === '') return;
  fs.mkdirSync(directory, { recursive: true });
  const text = run.steps.map((step) => `=== step ${step.index} "${step.name}"\n${renderOutput(step.output)}`).join('\n\n');
  fs.writeFileSync(path.join(directory, `${label.replace(/[^A-Za-z0-9.]+/g, '-').replace(/-$/, '')}.txt`), `${text}\n`);
}

/** Runs the whole script (part 1 and leases) against `target` and always stops it; logs are attached to errors. */
async function runAgainst(target: EtcdctlTarget): Promise<TargetRun> {
  try {
    const run = await runScript(target.endpoints, differentialScript(), { minimumLeaseTtlSeconds: target.minimumLeaseTtlSeconds });
    dumpRun(target.label, run);
    return { label: target.label, run };
  } catch (error) {
    throw new Error(`script run against ${target.label} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n--- server logs ---\n${target.diagnostics()}`);
  } finally {
    await target.stop();
  }
}

let referenceRun: Promise<TargetRun> | undefined;

/** The reference run on a fresh three-member etcd, recorded once per test process. */
function recordReference(): Promise<TargetRun> {
  referenceRun ??= startEtcdTarget(3).then(runAgainst);
  return referenceRun;
}

function stepNamed(run: ScriptRun, name: string): RecordedStep {
  const step = run.steps.find((candidate) => candidate.name === name);
  assert.ok(step !== undefined, `the script has no step named "${name}"`);
  return step;
}

function jsonDocumentOf(step: RecordedStep): Record<string, unknown> {
  assert.equal(step.output.stdout.format, 'json', `step "${step.name}" printed no JSON:\n${renderOutput(step.output)}`);
  const [document] = step.output.stdout.format === 'json' ? step.output.stdout.documents : [];
  return document as Record<string, unknown>;
}

/** Facts of etcd 3.4 that the reference run must show (see the module overview). */
function checkReferenceAnchors(reference: TargetRun): void {
  const { run } = reference;
  assert.deepEqual(run.watchesStoppedAtDeadline, [], 'a watch step of the script waited for output etcd never printed: fix its stop condition');
  const put = stepNamed(run, 'put foo/a');
  assert.equal(put.output.exit, 'exit 0', renderOutput(put.output));
  assert.deepEqual(put.output.stdout, { format: 'text', lines: ['OK'] });
  // Nine writes on an empty store (revision 1) end at revision 10; ids are placeholders.
  const get = jsonDocumentOf(stepNamed(run, 'get -w json'));
  assert.deepEqual(get.header, { cluster_id: '<cluster-id>', member_id: '<member-id>', revision: 10, raft_term: '<raft-term>' });
  const limited = jsonDocumentOf(stepNamed(run, 'get --prefix --limit=2 -w json'));
  assert.equal(limited.more, true);
  assert.equal(limited.count, 4);
  const txn = stepNamed(run, 'txn success branch');
  assert.deepEqual(txn.output.stdout, { format: 'text', lines: ['SUCCESS', '', 'OK', '', 'foo/a', '12'] }, renderOutput(txn.output));
  const eof = stepNamed(run, 'txn missing final empty line');
  assert.deepEqual([eof.output.exit, eof.output.stderr], ['exit 3', ['Error: EOF']]);
  const compactedTwice = stepNamed(run, 'compaction twice');
  assert.ok(compactedTwice.output.stderr.includes('Error: etcdserver: mvcc: required revision has been compacted'), renderOutput(compactedTwice.output));
  const future = stepNamed(run, 'compaction future');
  assert.ok(future.output.stderr.includes('Error: etcdserver: mvcc: required revision is a future revision'), renderOutput(future.output));
  const emptyKey = stepNamed(run, 'put empty key');
  assert.ok(emptyKey.output.stderr.includes('Error: etcdserver: key is not provided'), renderOutput(emptyKey.output));
  const live = stepNamed(run, 'watch live --prefix --prev-kv');
  assert.equal(live.output.stdout.format === 'text' ? live.output.stdout.lines.filter((line) => line === 'PUT' || line === 'DELETE').length : -1, 5, renderOutput(live.output));
  // Leases: an unknown lease is "already expired" (TTL -1, not an error); a revoke removes the
  // attached keys; a grant below the minimum is raised to etcd's 2 s, and the placeholder shows it.
  const unknownTimeToLive = stepNamed(run, 'lease timetolive unknown --keys');
  assert.deepEqual([unknownTimeToLive.output.exit, unknownTimeToLive.output.stdout], ['exit 0', { format: 'text', lines: ['lease 000000001234abcd already expired'] }], renderOutput(unknownTimeToLive.output));
  const timeToLive = stepNamed(run, 'lease timetolive --keys');
  assert.deepEqual(timeToLive.output.stdout, { format: 'text', lines: ['lease <lease-1> granted with TTL(100s), remaining(<granted minus 0..10s>), attached keys([lease/a1 lease/a2])'] }, renderOutput(timeToLive.output));
  const revokedKeys = jsonDocumentOf(stepNamed(run, 'get keys of revoked lease -w json'));
  assert.equal(revokedKeys.kvs, undefined, 'the keys of a revoked lease are gone');
  const unknownPut = stepNamed(run, 'put --lease unknown');
  assert.ok(unknownPut.output.stderr.includes('Error: etcdserver: requested lease not found'), renderOutput(unknownPut.output));
  const minimum = stepNamed(run, 'lease grant 1 (below the minimum TTL)');
  assert.ok(minimum.output.stdout.format === 'text' && /^lease <lease-\d+> granted with TTL\(<minimum lease TTL>\)$/.test(minimum.output.stdout.lines.join('\n')), renderOutput(minimum.output));
  const watchCompacted = stepNamed(run, 'watch compacted revision');
  assert.deepEqual(
    [watchCompacted.output.exit, watchCompacted.output.stderr],
    ['exit 5', ['watch was canceled (etcdserver: mvcc: required revision has been compacted)', 'Error: watch is canceled by the server']],
    renderOutput(watchCompacted.output),
  );
}

/** Asserts that the two runs are equal step by step, with the full difference report. */
function assertSameOutputs(reference: TargetRun, other: TargetRun): void {
  const differences = compareRuns(reference.run.steps, other.run.steps);
  assert.ok(reference.run.steps.length > 0, 'the reference run recorded no steps');
  if (differences.length > 0) assert.fail(formatDifferences(differences, reference.label, other.label, reference.run.steps.length));
}

describe('etcdctl differential suite (same script, two targets, outputs compared step by step)', () => {
  const availability = etcdAvailable();
  const skip = availability.available ? false : `etcd/etcdctl binaries missing: ${availability.reason}`;

  it('two real etcd clusters (3 members vs 1 member) print identical normalised outputs', { skip, timeout: TEST_TIMEOUT_MS }, async () => {
    const [reference, single] = await Promise.all([recordReference(), startEtcdTarget(1).then(runAgainst)]);
    checkReferenceAnchors(reference);
    assertSameOutputs(reference, single);
    // The comparison must be able to fail on real data: one revision changed in a copy of B.
    const sabotaged = structuredClone(single.run.steps);
    const target = sabotaged.find((step) => step.name === 'get --prefix --limit=2 -w json');
    assert.ok(target !== undefined && target.output.stdout.format === 'json');
    (target.output.stdout.documents[0] as { header: { revision: number } }).header.revision += 1;
    assert.deepEqual(
      compareRuns(reference.run.steps, sabotaged).map((difference) => [difference.name, difference.fields.map((field) => field.path)]),
      [['get --prefix --limit=2 -w json', ['stdout.documents[0].header.revision']]],
    );
  });

  it('raftkv (3 nodes) prints the same normalised outputs as etcd 3.4', { skip, timeout: TEST_TIMEOUT_MS }, async () => {
    const raftkvTarget = await startRaftkvTarget();
    const [reference, raftkv] = await Promise.all([recordReference(), runAgainst(raftkvTarget)]);
    checkReferenceAnchors(reference);
    assertSameOutputs(reference, raftkv);
  });
});
