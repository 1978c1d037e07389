/**
 * An exclusive, advisory lock on a data directory, so that two processes never append to one WAL.
 *
 * Node has no flock(2), so the lock is a file holding the owner's PID:
 * 1. The PID is written to a private temporary file, which is then hard-linked to the lock name.
 *    link(2) fails with EEXIST if the lock exists, and the lock appears with its content already
 *    complete, so nobody ever reads a half-written lock.
 * 2. If the lock exists, its PID is checked with `process.kill(pid, 0)`. A live PID other than
 *    ours means the directory is taken: WalError 'locked' naming the PID.
 * 3. A dead PID (or an unreadable lock, which only a crash can leave) is stale: it is removed
 *    with a warning and the link is retried.
 * 4. A lock holding OUR OWN PID is stale too, unless this process already holds the directory
 *    (tracked in memory): in containers a restarted server often gets the same PID as the process
 *    that died, so "our PID" usually means "our predecessor's lock".
 *
 * Caveats, documented because they are real:
 * - PID reuse: if the owner died and an unrelated process now has its PID, the lock looks alive
 *   and the directory stays locked until that process exits or an operator removes the lock file.
 *   That errs on the safe side.
 * - Takeover race: two processes that see the same stale lock at the same moment can both remove
 *   it; one of them may then remove the other's fresh lock. Starting two servers on one directory
 *   at the same instant after a crash is outside what this lock protects against.
 * - The lock is advisory and local: it means nothing on a network file system shared by hosts.
 */
import * as fs from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../raft/types';
import { describeCause, WalError } from './wal-error';

/** Name of the lock file inside the locked directory. */
export const LOCK_FILE_NAME = 'raftkv.lock';

/** Directories (resolved real paths) locked by this process. */
const heldDirectories = new Set<string>();

/** A held lock on one directory. Release it exactly once. */
export class DirLock {
  private released = false;

  private constructor(
    /** Real path of the locked directory. */
    readonly dir: string,
    /** Path of the lock file. */
    readonly lockPath: string,
  ) {}

  /**
   * Takes the lock on `dir` (which must exist). Rejects with WalError 'locked' if another live
   * process, or another holder in this process, has it; 'io' if the file system fails.
   */
  static async acquire(dir: string, logger: Logger): Promise<DirLock> {
    let realDir: string;
    try {
      realDir = fs.realpathSync(dir);
    } catch (cause) {
      throw new WalError('io', `cannot resolve ${dir}: ${describeCause(cause)}`, { file: dir, cause });
    }
    const lockPath = path.join(realDir, LOCK_FILE_NAME);
    if (heldDirectories.has(realDir)) {
      throw new WalError('locked', `${realDir} is locked by this process (pid ${process.pid}) already`, { file: lockPath });
    }
    // Reserve synchronously, so two acquisitions in this process cannot interleave.
    heldDirectories.add(realDir);
    try {
      await linkLockFile(realDir, lockPath, logger);
    } catch (error) {
      heldDirectories.delete(realDir);
      throw error;
    }
    return new DirLock(realDir, lockPath);
  }

  /** Removes the lock file (if it still names this process) and forgets the directory. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldDirectories.delete(this.dir);
    try {
      if (readLockOwner(this.lockPath) === process.pid) await fsPromises.unlink(this.lockPath);
    } catch (cause) {
      if (!isErrorCode(cause, 'ENOENT')) {
        throw new WalError('io', `cannot remove lock ${this.lockPath}: ${describeCause(cause)}`, { file: this.lockPath, cause });
      }
    }
  }
}

async function linkLockFile(dir: string, lockPath: string, logger: Logger): Promise<void> {
  const temporaryPath = path.join(dir, `${LOCK_FILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsPromises.writeFile(temporaryPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
    // Two attempts: the first may find a stale lock and remove it.
    for (let attempt = 0; ; attempt++) {
      try {
        await fsPromises.link(temporaryPath, lockPath);
        return;
      } catch (cause) {
        if (!isErrorCode(cause, 'EEXIST')) throw cause;
      }
      const owner = readLockOwner(lockPath);
      if (owner !== undefined && owner !== process.pid && isProcessAlive(owner)) {
        throw new WalError('locked', `${dir} is locked by process ${owner} (lock file ${lockPath})`, { file: lockPath });
      }
      if (attempt >= 1) {
        throw new WalError('locked', `${dir}: could not take over the stale lock ${lockPath}`, { file: lockPath });
      }
      logger.warn('taking over a stale WAL lock', {
        lockPath,
        previousOwnerPid: owner ?? 'unreadable',
        reason: owner === undefined ? 'unreadable lock file' : owner === process.pid ? 'our own pid, left by an earlier process' : 'owner is not running',
      });
      try {
        await fsPromises.unlink(lockPath);
      } catch (cause) {
        if (!isErrorCode(cause, 'ENOENT')) throw cause;
      }
    }
  } catch (cause) {
    if (cause instanceof WalError) throw cause;
    throw new WalError('io', `cannot lock ${dir}: ${describeCause(cause)}`, { file: lockPath, cause });
  } finally {
    await fsPromises.rm(temporaryPath, { force: true });
  }
}

/** The PID in a lock file; undefined if missing or unreadable. */
function readLockOwner(lockPath: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockPath, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether a process with this PID exists (EPERM: it exists but belongs to another user). */
function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (cause) {
    return isErrorCode(cause, 'EPERM');
  }
}

function isErrorCode(cause: unknown, code: string): boolean {
  return typeof cause === 'object' && cause !== null && (cause as { code?: unknown }).code === code;
}
