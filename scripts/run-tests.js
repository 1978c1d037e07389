#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's own test runner.
// Unit tests (under dist/src, and the benchmark's own under dist/bench) run first and in
// parallel; process-level tests (dist/test) follow, one file at a time, because each starts real
// clusters on a two-core machine.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(full));
    else if (entry.name.endsWith('.test.js')) out.push(full);
  }
  return out.sort();
}

const filter = process.argv.slice(2);
const pick = (files) => (filter.length === 0 ? files : files.filter((f) => filter.some((x) => f.includes(x))));
const groups = [
  { files: pick([...find('dist/src'), ...find('dist/bench')]), concurrency: 2 },
  { files: pick(find('dist/test')), concurrency: 1 },
];
const files = groups.flatMap((g) => g.files);
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}
let status = 0;
for (const group of groups) {
  if (group.files.length === 0) continue;
  const result = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${group.concurrency}`, ...group.files],
    { stdio: 'inherit' },
  );
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
