/** Tests of the `raftkv` subcommand dispatch with an injected node runner. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../observability/logger';
import { type CliDependencies, runCli } from './commands';
import type { NodeOptions } from './options';

/** Dependencies that record output, node runs and failure log lines. */
function fakeDependencies(runNode: (options: NodeOptions) => Promise<void> = async () => {}) {
  const recorded = { stdout: '', stderr: '', logLines: [] as string[], runs: [] as NodeOptions[] };
  const dependencies: CliDependencies = {
    runNode: async (options) => {
      recorded.runs.push(options);
      await runNode(options);
    },
    stdout: (text) => {
      recorded.stdout += text;
    },
    stderr: (text) => {
      recorded.stderr += text;
    },
    createFailureLogger: (options) =>
      createLogger({
        nodeId: options.id,
        level: 'info',
        destination: new Writable({
          write(chunk: Buffer, _encoding, callback) {
            recorded.logLines.push(chunk.toString('utf8'));
            callback();
          },
        }),
      }),
  };
  return { dependencies, recorded };
}

describe('runCli', () => {
  it('runs a node with the parsed flags (with or without the word "node") and exits 0 after it stops', async () => {
    const { dependencies, recorded } = fakeDependencies();
    assert.equal(await runCli(['--id=1', '--port', '12380'], dependencies), 0);
    assert.equal(await runCli(['node', '--id=1', '--port', '12381'], dependencies), 0);
    assert.deepEqual(recorded.runs.map((options) => options.port), [12380, 12381]);
    assert.equal(recorded.stderr, '');
  });

  it('a rejected runNode is logged as one JSON line with the node ID and exits 1', async () => {
    const { dependencies, recorded } = fakeDependencies(async () => {
      throw new Error('address in use');
    });
    assert.equal(await runCli(['--id', '1'], dependencies), 1);
    assert.equal(recorded.logLines.length, 1);
    const line = JSON.parse(recorded.logLines[0] ?? '') as Record<string, unknown>;
    assert.equal(line['level'], 'fatal');
    assert.equal(line['nodeId'], '1');
    assert.equal(line['msg'], 'raftkv node failed');
    assert.match(JSON.stringify(line['err']), /address in use/);
  });

  it('help, --help and -h print the commands and the node flags to stdout', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const { dependencies, recorded } = fakeDependencies();
      assert.equal(await runCli(argv, dependencies), 0);
      assert.match(recorded.stdout, /raftkv cache/);
      assert.match(recorded.stdout, /--cluster <urls>/);
      assert.deepEqual(recorded.runs, []);
    }
  });

  it('usage errors go to stderr as one line with exit code 2 and start nothing', async () => {
    const { dependencies, recorded } = fakeDependencies();
    assert.equal(await runCli(['--id', 'x'], dependencies), 2);
    assert.equal(await runCli(['frobnicate'], dependencies), 2);
    assert.equal(await runCli(['cache', 'start'], dependencies), 2);
    assert.deepEqual(recorded.stderr.split('\n'), [
      'error: --id: the member ID must be a decimal number between 1 and 18446744073709551615, got "x" (see raftkv --help)',
      "error: unknown command 'frobnicate' (see raftkv help)",
      "error: required option '--name <name>' not specified (see raftkv cache --help)",
      '',
    ]);
    assert.deepEqual(recorded.runs, []);
  });

  it('raftkv snapshot: help, usage errors (exit 2), and a restore failure (exit 1) that writes nothing', async () => {
    const { dependencies, recorded } = fakeDependencies();
    assert.equal(await runCli(['snapshot', '--help'], dependencies), 0);
    assert.match(recorded.stdout, /raftkv snapshot restore FILE --data-dir DIR --id N --cluster URLS/);
    assert.match(recorded.stdout, /cannot read raftkv snapshots/);
    assert.equal(await runCli(['snapshot', 'status', 'x'], dependencies), 2);
    assert.equal(await runCli(['snapshot', 'restore', 'x'], dependencies), 2);
    assert.equal(await runCli(['snapshot', 'restore', 'x', '--data-dir', 'd', '--id', '3', '--cluster', 'http://127.0.0.1:1'], dependencies), 2);
    const missing = `/tmp/raftkv-no-such-snapshot-${process.pid}`;
    assert.equal(await runCli(['snapshot', 'restore', missing, '--data-dir', `${missing}.dir`, '--id', '1', '--cluster', 'http://127.0.0.1:1'], dependencies), 1);
    assert.match(recorded.stderr, /snapshot restore failed/);
    assert.deepEqual(recorded.runs, []);
  });
});
