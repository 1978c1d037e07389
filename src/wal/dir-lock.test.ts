/**
 * Tests of the WAL directory lock: one live owner at a time, across processes and within one;
 * stale locks (dead owner, or our own PID left by a predecessor) are taken over with a warning.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LOCK_FILE_NAME } from './dir-lock';
import { Wal, WalError } from './wal';
import { CapturingLogger, makeTemporaryDirectory, removeDirectory } from './wal-test-support';

const METADATA = Buffer.from('m');

function isLocked(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => error instanceof WalError && error.code === 'locked' && pattern.test(error.message);
}

/** The PID of a process that has exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0);
  assert.throws(() => process.kill(child.pid, 0), /ESRCH/);
  return child.pid;
}

describe('WAL directory lock', () => {
  let root: string;
  let counter = 0;
  /** A closed WAL in a fresh directory. */
  async function closedWal(): Promise<string> {
    const dir = path.join(root, `wal-${counter++}`);
    await (await Wal.create(dir, { metadata: METADATA })).close();
    return dir;
  }

  before(() => {
    root = makeTemporaryDirectory('wal-lock');
  });
  after(() => {
    removeDirectory(root);
  });

  it('refuses a second open of the same directory in this process until the first closes', async () => {
    const dir = await closedWal();
    const first = await Wal.open(dir);
    await assert.rejects(Wal.open(dir), isLocked(new RegExp(`pid ${process.pid}`)));
    await assert.rejects(Wal.open(`${dir}/./`), isLocked(/this process/));
    await first.wal.close();
    assert.equal(fs.existsSync(path.join(dir, LOCK_FILE_NAME)), false, 'close removes the lock file');
    const second = await Wal.open(dir);
    await second.wal.close();
  });

  it('refuses a directory whose lock names another live process', async () => {
    const dir = await closedWal();
    const lockPath = path.join(dir, LOCK_FILE_NAME);
    fs.writeFileSync(lockPath, `${process.ppid}\n`);
    await assert.rejects(Wal.open(dir), isLocked(new RegExp(`locked by process ${process.ppid}\\b`)));
    assert.equal(fs.readFileSync(lockPath, 'utf8'), `${process.ppid}\n`, 'a live lock is left alone');
    fs.unlinkSync(lockPath);
  });

  it('refuses to create a WAL in a directory locked by another live process', async () => {
    const dir = path.join(root, `wal-${counter++}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, LOCK_FILE_NAME), `${process.ppid}\n`);
    await assert.rejects(Wal.create(dir, { metadata: METADATA }), isLocked(/locked by process/));
    assert.equal(Wal.exists(dir), false);
  });

  it('takes over a lock whose owner is dead, with a warning', async () => {
    const dir = await closedWal();
    const lockPath = path.join(dir, LOCK_FILE_NAME);
    const pid = deadPid();
    fs.writeFileSync(lockPath, `${pid}\n`);
    const logger = new CapturingLogger();
    const opened = await Wal.open(dir, { logger });
    const warning = logger.lines.find((line) => line.message === 'taking over a stale WAL lock');
    assert.equal(warning?.fields?.['previousOwnerPid'], pid);
    assert.equal(fs.readFileSync(lockPath, 'utf8').trim(), String(process.pid));
    await opened.wal.close();
  });

  it('takes over a lock holding our own PID when this process does not hold it', async () => {
    const dir = await closedWal();
    fs.writeFileSync(path.join(dir, LOCK_FILE_NAME), `${process.pid}\n`);
    const opened = await Wal.open(dir);
    await opened.wal.close();
  });

  it('takes over an unreadable (empty) lock file', async () => {
    const dir = await closedWal();
    fs.writeFileSync(path.join(dir, LOCK_FILE_NAME), '');
    const opened = await Wal.open(dir);
    await opened.wal.close();
  });
});
