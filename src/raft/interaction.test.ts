/**
 * Scripted interaction tests, in the spirit of etcd's testdata: each file in testdata/*.txt is a
 * scenario of commands, each followed by the output it must produce (lines starting with "> ").
 * Lines starting with "#" are comments.
 *
 * Commands:
 *   bootstrap 1 2 3 [pre-vote] [check-quorum] [lease]   new cluster (replaces the current one)
 *   campaign ID | tick ID N | tick-all N | stabilize | deliver
 *   propose ID TEXT              prints ok or the refusal reason
 *   read-index ID CONTEXT        prints ok or the refusal reason
 *   transfer ID TARGET
 *   conf ID add|remove|learner TARGET   proposes a conf change (adds TARGET's node first if new)
 *   partition 1 | 2 3  /  isolate ID  /  heal
 *   status ID                    prints role, term, lead, commit and applied payloads
 *   reads ID                     prints and clears the ReadStates received
 *   leader                       prints the current leader
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Network } from './testing-network';
import { ConfChangeType, ReadOnlyOption, type StepResult } from './types';

const directory = [path.join(__dirname, 'testdata'), path.resolve(__dirname, '../../../src/raft/testdata')].find((d) =>
  fs.existsSync(d),
);

function result(outcome: StepResult): string {
  return outcome.ok ? 'ok' : outcome.reason;
}

function run(net: { current: Network | undefined }, words: string[]): string[] {
  const [command, ...args] = words;
  const n = (i: number): number => Number(args[i]);
  const network = (): Network => {
    assert.ok(net.current, 'no cluster: bootstrap first');
    return net.current;
  };
  switch (command) {
    case 'bootstrap': {
      const ids = args.filter((a) => /^\d+$/.test(a)).map(Number);
      net.current = Network.bootstrap(ids, {
        preVote: args.includes('pre-vote'),
        checkQuorum: args.includes('check-quorum') || args.includes('lease'),
        readOnlyOption: args.includes('lease') ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe,
      });
      return [];
    }
    case 'campaign':
      network().node(n(0)).campaign();
      return [];
    case 'tick':
      network().tick(n(0), n(1));
      return [];
    case 'tick-all':
      network().tickAll(n(0));
      return [];
    case 'stabilize':
      network().stabilize();
      return [];
    case 'deliver':
      network().processReadies();
      return [`delivered ${network().deliver()}`];
    case 'propose':
      return [result(network().propose(n(0), args.slice(1).join(' ')))];
    case 'read-index':
      return [result(network().node(n(0)).readIndex(new TextEncoder().encode(args[1] ?? '')))];
    case 'transfer':
      network().node(n(0)).transferLeader(BigInt(n(1)));
      return [];
    case 'conf': {
      const target = n(2);
      const types: Record<string, ConfChangeType> = {
        add: ConfChangeType.AddNode,
        remove: ConfChangeType.RemoveNode,
        learner: ConfChangeType.AddLearnerNode,
      };
      const type = types[args[1] ?? ''];
      assert.ok(type !== undefined, `unknown conf change ${args[1]}`);
      if (!network().nodes.has(BigInt(target)) && type !== ConfChangeType.RemoveNode) network().add(target);
      return [result(network().node(n(0)).proposeConfChange({ type, nodeId: BigInt(target), context: new Uint8Array() }))];
    }
    case 'partition': {
      const groups: number[][] = [[]];
      for (const a of args) {
        if (a === '|') groups.push([]);
        else groups[groups.length - 1]!.push(Number(a));
      }
      network().partition(...groups);
      return [];
    }
    case 'isolate':
      network().isolate(n(0));
      return [];
    case 'heal':
      network().heal();
      return [];
    case 'status': {
      const member = network().get(n(0));
      const status = member.node.status();
      return [
        `${n(0)}: ${status.softState.role} term=${status.hardState.term} lead=${status.softState.lead} ` +
          `commit=${status.hardState.commit} voters=[${status.confState.voters.join(',')}] applied=[${member.applied.join(',')}]`,
      ];
    }
    case 'reads': {
      const member = network().get(n(0));
      const lines = member.readStates.map((s) => `${new TextDecoder().decode(s.context)}@${s.index}`);
      member.readStates = [];
      return [lines.length === 0 ? '(none)' : lines.join(' ')];
    }
    case 'leader':
      return [`leader ${network().leader() ?? 'none'}`];
    default:
      throw new Error(`unknown command ${String(command)}`);
  }
}

/** Runs one scenario file; returns the actual transcript and the expected one. */
function replay(text: string): { actual: string; expected: string } {
  const net: { current: Network | undefined } = { current: undefined };
  const actual: string[] = [];
  const expected: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('> ')) {
      expected.push(line);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    actual.push(line);
    expected.push(line);
    for (const output of run(net, line.split(/\s+/))) actual.push(`> ${output}`);
  }
  return { actual: actual.join('\n'), expected: expected.join('\n') };
}

test('interaction scenarios (testdata/*.txt)', () => {
  assert.ok(directory, 'testdata directory not found');
  const files = fs.readdirSync(directory).filter((f) => f.endsWith('.txt')).sort();
  assert.ok(files.length >= 3, 'at least three scenarios');
  for (const file of files) {
    const { actual, expected } = replay(fs.readFileSync(path.join(directory, file), 'utf8'));
    assert.equal(actual, expected, `scenario ${file}`);
  }
});

test('the interaction runner detects a wrong expectation (self-test)', () => {
  const { actual, expected } = replay('bootstrap 1 2 3\ncampaign 1\nstabilize\nleader\n> leader 2\n');
  assert.notEqual(actual, expected);
});
