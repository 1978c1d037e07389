/**
 * The lint fence around the Raft core: src/raft must stay pure and deterministic.
 * It may import only its own modules, and must not reach for clocks, timers, randomness,
 * the process or any node: module (HOUSE_STYLE "A lint fence keeps src/raft pure").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..', 'src', 'raft');

const forbidden: Array<[RegExp, string]> = [
  [/\bDate\b/, 'Date (a clock)'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b/, 'a timer'],
  [/\bMath\.random\b/, 'Math.random (hidden randomness)'],
  [/\bprocess\./, 'process'],
  [/\bperformance\b/, 'performance (a clock)'],
  [/\brequire\s*\(/, 'require'],
  [/\bcrypto\b/, 'crypto'],
];

function coreFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(full);
    }
  };
  walk(root);
  return out;
}

/** Returns the violations in one source text (exported shape kept local for the self-test). */
function violations(file: string, text: string): string[] {
  const found: string[] = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const [pattern, what] of forbidden) {
    if (pattern.test(code)) found.push(`${file}: uses ${what}`);
  }
  for (const match of code.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)) {
    const spec = match[1] ?? match[2] ?? '';
    if (!spec.startsWith('.')) {
      found.push(`${file}: imports '${spec}' from outside src/raft`);
      continue;
    }
    const target = path.resolve(path.dirname(file), spec);
    if (!target.startsWith(root)) found.push(`${file}: imports '${spec}' from outside src/raft`);
  }
  return found;
}

test('src/raft imports nothing outside itself and touches no clock, timer, randomness or process', () => {
  const files = coreFiles();
  assert.ok(files.length > 0, `no sources found under ${root}`);
  const all = files.flatMap((f) => violations(f, fs.readFileSync(f, 'utf8')));
  assert.deepEqual(all, []);
});

test('the fence catches impure code (checker self-test)', () => {
  const file = path.join(root, 'bad.ts');
  assert.equal(violations(file, "import { x } from './log';\nconst a = 1;").length, 0);
  assert.ok(violations(file, 'const t = Date.now();').length > 0);
  assert.ok(violations(file, 'setTimeout(() => {}, 1);').length > 0);
  assert.ok(violations(file, 'const r = Math.random();').length > 0);
  assert.ok(violations(file, "import fs from 'node:fs';").length > 0);
  assert.ok(violations(file, "import { Wal } from '../wal/wal';").length > 0);
  assert.ok(violations(file, 'if (process.env.X) {}').length > 0);
});
