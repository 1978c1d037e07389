/**
 * Helpers shared by the WAL's tests: temporary directories, entries, a capturing logger and a
 * file opener that counts calls and fails on demand. Test-only; nothing in production imports it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EntryType, type Entry, type Logger } from '../raft/types';
import { openRealWalFile, type WalFile, type WalFileOpener } from './wal-segment';

/** Creates a fresh temporary directory; remove it with `removeDirectory`. */
export function makeTemporaryDirectory(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `raftkv-${prefix}-`));
}

/** Removes a directory tree. */
export function removeDirectory(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Entries `first`..`last` at `term`, with data naming their index and term. */
export function makeEntries(first: number, last: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = first; index <= last; index++) {
    entries.push({ term, index, type: EntryType.Normal, data: Buffer.from(`entry ${index} term ${term}`) });
  }
  return entries;
}

/** Entries reduced to comparable plain values. */
export function describeEntries(entries: readonly Entry[]): Array<[number, number, number, string]> {
  return entries.map((entry) => [entry.index, entry.term, entry.type, Buffer.from(entry.data).toString('utf8')]);
}

/** A logger that remembers what it was told. */
export class CapturingLogger implements Logger {
  readonly lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  debug(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'debug', message, ...(fields === undefined ? {} : { fields }) });
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', message, ...(fields === undefined ? {} : { fields }) });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', message, ...(fields === undefined ? {} : { fields }) });
  }
  warnings(): string[] {
    return this.lines.filter((line) => line.level === 'warn').map((line) => line.message);
  }
}

/** A file opener over the real file system that counts writes and fsyncs and can fail them. */
export class InstrumentedFiles {
  writeCalls = 0;
  datasyncCalls = 0;
  failWrites = false;
  failDatasyncs = false;

  readonly open: WalFileOpener = async (filePath, flags) => {
    const real = await openRealWalFile(filePath, flags);
    const files = this;
    const wrapped: WalFile = {
      async write(buffer, offset, length, position) {
        files.writeCalls++;
        if (files.failWrites) throw Object.assign(new Error('injected write failure'), { code: 'EIO' });
        return real.write(buffer, offset, length, position);
      },
      async datasync() {
        files.datasyncCalls++;
        if (files.failDatasyncs) throw Object.assign(new Error('injected fdatasync failure'), { code: 'EIO' });
        return real.datasync();
      },
      sync: () => real.sync(),
      truncate: (length) => real.truncate(length),
      close: () => real.close(),
    };
    return wrapped;
  };

  resetCounts(): void {
    this.writeCalls = 0;
    this.datasyncCalls = 0;
  }
}

/** Segment file paths of `dir`, in sequence order. */
export function segmentPaths(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.endsWith('.wal')).sort().map((name) => path.join(dir, name));
}
