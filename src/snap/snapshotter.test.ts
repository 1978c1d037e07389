/**
 * Tests of snapshot files: atomic streamed save and load of a large body, skipping corrupt
 * snapshots, verified receipt, leftover temporary files, and release.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Logger, SnapshotMetadata } from '../raft/types';
import { SnapError, Snapshotter } from './snapshotter';
import { waitFor } from '../transport/transport-test-support';

const CHUNK_BYTES = 64 * 1024;

/** `totalBytes` of deterministic pseudo-random bytes, generated chunk by chunk (never all in memory). */
async function* generatedBody(totalBytes: number, seed: string): AsyncIterable<Uint8Array> {
  let block = createHash('sha256').update(seed).digest();
  for (let produced = 0; produced < totalBytes; produced += CHUNK_BYTES) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, totalBytes - produced));
    for (let offset = 0; offset < chunk.length; offset += block.length) {
      block = createHash('sha256').update(block).digest();
      block.copy(chunk, offset);
    }
    yield chunk;
  }
}

async function sha256Of(chunks: AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of chunks) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

function metadataAt(index: number, term: number): SnapshotMetadata {
  return { index, term, confState: { voters: [1n, 0xffff_ffff_ffff_ffffn], learners: [3n], removed: [4n, 5n] } };
}

class WarningLogger implements Logger {
  readonly warnings: string[] = [];
  debug(): void {}
  info(): void {}
  warn(message: string): void {
    this.warnings.push(message);
  }
}

function snapshotNames(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

describe('Snapshotter', () => {
  let root: string;
  let counter = 0;
  const freshDir = (): string => path.join(root, `snap-${counter++}`);

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-snap-'));
  });
  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('saves, lists and loads a 20 MB streamed body', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const bodyBytes = 20 * 1024 * 1024 + 123;
    const expected = await sha256Of(generatedBody(bodyBytes, 'big'));
    const saved = await snapshotter.save(metadataAt(1000, 7), generatedBody(bodyBytes, 'big'));
    assert.deepEqual({ bodyBytes: saved.bodyBytes, sha256: saved.sha256 }, { bodyBytes, sha256: expected.sha256 });
    assert.equal(path.basename(saved.path), '0000000000000007-00000000000003e8.snap');
    assert.deepEqual(snapshotNames(dir), ['0000000000000007-00000000000003e8.snap'], 'no temporary file remains');

    const listed = await new Snapshotter(dir).list();
    assert.deepEqual(listed, [saved]);
    const loaded = await new Snapshotter(dir).loadNewest();
    assert.deepEqual(loaded, saved);
    assert.deepEqual(loaded?.metadata, metadataAt(1000, 7));
    const streamed = await sha256Of(snapshotter.openBody(saved));
    assert.deepEqual(streamed, { sha256: expected.sha256, bytes: bodyBytes });
  });

  it('saves a Uint8Array body and an empty body, read back with readBody', async () => {
    const snapshotter = new Snapshotter(freshDir());
    const small = await snapshotter.save(metadataAt(5, 1), Buffer.from('state machine image'));
    assert.equal((await snapshotter.readBody(small)).toString(), 'state machine image');
    const empty = await snapshotter.save(metadataAt(6, 1), new Uint8Array(0));
    assert.equal((await snapshotter.readBody(empty)).length, 0);
    assert.deepEqual((await snapshotter.list()).map((file) => file.metadata.index), [6, 5]);
  });

  it('skips a corrupt newest snapshot in favour of an older one and renames it aside', async () => {
    const dir = freshDir();
    const logger = new WarningLogger();
    const snapshotter = new Snapshotter(dir, { logger });
    const older = await snapshotter.save(metadataAt(10, 1), generatedBody(300_000, 'older'));
    const newest = await snapshotter.save(metadataAt(20, 2), generatedBody(300_000, 'newest'));
    const bytes = fs.readFileSync(newest.path);
    bytes[bytes.length - 1000] = (bytes[bytes.length - 1000] ?? 0) ^ 1; // inside the body
    fs.writeFileSync(newest.path, bytes);

    // Streaming the body notices the damage at its end.
    await assert.rejects(async () => {
      for await (const chunk of snapshotter.openBody(newest)) void chunk;
    }, (error: unknown) => error instanceof SnapError && error.code === 'corrupt');

    assert.deepEqual(await snapshotter.loadNewest(), older);
    assert.ok(logger.warnings.includes('snapshot file is corrupt; renaming it aside'));
    assert.deepEqual(snapshotNames(dir), ['0000000000000001-000000000000000a.snap', '0000000000000002-0000000000000014.snap.broken']);
  });

  it('does not read the body when the caller says it need not be verified now; reading it later still catches damage', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir, { logger: new WarningLogger() });
    await snapshotter.save(metadataAt(10, 1), generatedBody(300_000, 'older'));
    const newest = await snapshotter.save(metadataAt(20, 2), generatedBody(300_000, 'newest'));
    const bytes = fs.readFileSync(newest.path);
    bytes[bytes.length - 1000] = (bytes[bytes.length - 1000] ?? 0) ^ 1; // inside the body
    fs.writeFileSync(newest.path, bytes);
    const loaded = await snapshotter.loadNewest(() => true, () => false);
    assert.deepEqual(loaded, newest, 'the header and trailer are fine; the body was not read');
    await assert.rejects(async () => {
      for await (const chunk of snapshotter.openBody(loaded!)) void chunk;
    }, (error: unknown) => error instanceof SnapError && error.code === 'corrupt');
    // Without the hash (a consumer checking its own digest), the damaged bytes come through as they are.
    const unverified = await sha256Of(snapshotter.openBody(loaded!, { verify: false }));
    assert.equal(unverified.bytes, 300_000);
    assert.notEqual(unverified.sha256, newest.sha256);
  });

  it('skips a snapshot whose header is damaged', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const older = await snapshotter.save(metadataAt(10, 1), Buffer.from('older'));
    const newest = await snapshotter.save(metadataAt(20, 2), Buffer.from('newest'));
    const bytes = fs.readFileSync(newest.path);
    bytes[20] = (bytes[20] ?? 0) ^ 1; // inside the header JSON
    fs.writeFileSync(newest.path, bytes);
    assert.deepEqual(await snapshotter.list(), [older]);
    assert.deepEqual(await snapshotter.loadNewest(), older);
    assert.ok(fs.existsSync(newest.path.replace(/\.snap$/, '.snap.broken')));
  });

  it('lets the caller skip snapshots it cannot use (no WAL marker) without renaming them', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const older = await snapshotter.save(metadataAt(10, 1), Buffer.from('a'));
    await snapshotter.save(metadataAt(20, 2), Buffer.from('b'));
    assert.deepEqual(await snapshotter.loadNewest((metadata) => metadata.index === 10), older);
    assert.equal(await snapshotter.loadNewest(() => false), undefined);
    assert.equal(snapshotNames(dir).length, 2);
  });

  it('receives a snapshot whose checksum matches, and leaves nothing behind when it does not', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const { sha256 } = await sha256Of(generatedBody(1_000_000, 'leader'));
    await assert.rejects(snapshotter.receive(metadataAt(30, 3), generatedBody(1_000_000, 'tampered'), sha256),
      (error: unknown) => error instanceof SnapError && error.code === 'checksum-mismatch');
    assert.deepEqual(snapshotNames(dir), []);
    assert.equal(await snapshotter.loadNewest(), undefined);

    const received = await snapshotter.receive(metadataAt(30, 3), generatedBody(1_000_000, 'leader'), sha256.toUpperCase());
    assert.equal(received.sha256, sha256);
    assert.deepEqual(await snapshotter.loadNewest(), received);
  });

  it('leaves nothing behind when the body source fails mid-stream', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    async function* failing(): AsyncIterable<Uint8Array> {
      yield Buffer.alloc(1000);
      throw new Error('peer hung up');
    }
    await assert.rejects(snapshotter.save(metadataAt(40, 4), failing()),
      (error: unknown) => error instanceof SnapError && error.code === 'aborted' && /peer hung up/.test(error.message));
    assert.deepEqual(snapshotNames(dir), []);
  });

  it('ignores and removes a leftover temporary file', async () => {
    const dir = freshDir();
    const logger = new WarningLogger();
    const snapshotter = new Snapshotter(dir, { logger });
    const saved = await snapshotter.save(metadataAt(10, 1), Buffer.from('kept'));
    const leftover = path.join(dir, '0000000000000002-0000000000000014.0badf00d.snap.tmp');
    fs.writeFileSync(leftover, Buffer.from('half a snapshot'));
    assert.deepEqual(await snapshotter.list(), [saved]);
    assert.equal(fs.existsSync(leftover), false);
    assert.ok(logger.warnings.includes('removing an unfinished snapshot file'));
  });

  it('does not remove the temporary file of a save in progress', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstChunkWritten: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      firstChunkWritten = resolve;
    });
    async function* slowBody(): AsyncIterable<Uint8Array> {
      yield Buffer.from('first ');
      firstChunkWritten();
      await gate;
      yield Buffer.from('second');
    }
    const saving = snapshotter.save(metadataAt(50, 5), slowBody());
    await started;
    assert.deepEqual(await snapshotter.list(), []);
    assert.equal(snapshotNames(dir).filter((name) => name.endsWith('.snap.tmp')).length, 1);
    release();
    const saved = await saving;
    assert.equal((await snapshotter.readBody(saved)).toString(), 'first second');
  });

  it('lets a reader follow the body of a shared save while it is written, and gives its digest after', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const bodyBytes = 5 * 1024 * 1024 + 17;
    const expected = await sha256Of(generatedBody(bodyBytes, 'live'));
    let producedBytes = 0;
    let readAheadOfSave = false;
    async function* counted(): AsyncIterable<Uint8Array> {
      for await (const chunk of generatedBody(bodyBytes, 'live')) {
        producedBytes += chunk.length;
        yield chunk;
      }
    }
    const metadata = metadataAt(60, 6);
    assert.equal(snapshotter.followSave(metadata), undefined, 'nothing to follow before the save');
    const saving = snapshotter.save(metadata, counted(), { share: true });
    const followed = snapshotter.followSave(metadata);
    assert.ok(followed !== undefined, 'a shared save can be followed as soon as save() returned');
    const hash = createHash('sha256');
    let readBytes = 0;
    for await (const chunk of followed.body) {
      hash.update(chunk);
      readBytes += chunk.length;
      if (producedBytes < bodyBytes) readAheadOfSave = true;
    }
    const saved = await saving;
    assert.deepEqual({ sha256: hash.digest('hex'), bytes: readBytes }, { sha256: expected.sha256, bytes: bodyBytes });
    assert.ok(readAheadOfSave, 'the reader got bytes before the body was complete');
    assert.deepEqual(await followed.digest, { bodyBytes, sha256: saved.sha256 });
    assert.equal(snapshotter.followSave(metadata), undefined, 'a finished save is read with openBody');
    assert.equal(snapshotter.followSave(metadataAt(61, 6)), undefined);
  });

  it('gives a reader that starts in the middle of a shared save the whole body, from its first byte', async () => {
    // How a follower that needs an image joins a transfer already under way (RaftServer imageInFlight).
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const first = Buffer.alloc(3 * 1024 * 1024, 7);
    const second = Buffer.alloc(2 * 1024 * 1024 + 5, 9);
    let releaseSecond!: () => void;
    const secondReleased = new Promise<void>((resolve) => (releaseSecond = resolve));
    async function* gated(): AsyncIterable<Uint8Array> {
      yield first;
      await secondReleased;
      yield second;
    }
    const metadata = metadataAt(62, 6);
    const saving = snapshotter.save(metadata, gated(), { share: true });
    const temporaryBytes = (): number => {
      if (!fs.existsSync(dir)) return 0; // the snapshotter creates its directory on the first save
      const name = snapshotNames(dir).find((candidate) => candidate.endsWith('.snap.tmp'));
      return name === undefined ? 0 : fs.statSync(path.join(dir, name)).size;
    };
    await waitFor(() => temporaryBytes() >= first.length, 'the first part to reach the file');
    const late = snapshotter.followSave(metadata);
    assert.ok(late !== undefined, 'the save is still in progress');
    const reading = (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of late.body) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks);
    })();
    releaseSecond();
    const saved = await saving;
    assert.ok((await reading).equals(Buffer.concat([first, second])), 'every byte, in order, from the first');
    assert.deepEqual(await late.digest, { bodyBytes: first.length + second.length, sha256: saved.sha256 });
  });

  it('fails the reader of a shared save that fails, and does not share an unshared save', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    async function* failing(): AsyncIterable<Uint8Array> {
      yield Buffer.alloc(2 * 1024 * 1024, 1);
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('level scan failed');
    }
    const saving = snapshotter.save(metadataAt(70, 7), failing(), { share: true });
    const followed = snapshotter.followSave(metadataAt(70, 7));
    assert.ok(followed !== undefined);
    const reading = (async () => {
      for await (const chunk of followed.body) void chunk;
    })();
    await Promise.all([
      assert.rejects(saving, /level scan failed/),
      assert.rejects(reading, /level scan failed/),
      assert.rejects(followed.digest, /level scan failed/),
    ]);
    assert.deepEqual(snapshotNames(dir), []);

    const unshared = snapshotter.save(metadataAt(71, 7), Buffer.from('not shared'));
    assert.equal(snapshotter.followSave(metadataAt(71, 7)), undefined);
    await unshared;
  });

  it('accepts a digest known only after the body (a streamed transfer), and refuses a wrong one', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    const { sha256 } = await sha256Of(generatedBody(300_000, 'streamed'));
    let bodyRead = false;
    async function* body(): AsyncIterable<Uint8Array> {
      yield* generatedBody(300_000, 'streamed');
      bodyRead = true;
    }
    const expectedAfter = (digest: string) => (): string => {
      assert.ok(bodyRead, 'the digest is asked for only after the body');
      return digest;
    };
    await assert.rejects(snapshotter.receive(metadataAt(80, 8), body(), expectedAfter('0'.repeat(64))),
      (error: unknown) => error instanceof SnapError && error.code === 'checksum-mismatch');
    assert.deepEqual(snapshotNames(dir), []);
    bodyRead = false;
    const received = await snapshotter.receive(metadataAt(80, 8), body(), expectedAfter(sha256));
    assert.equal(received.sha256, sha256);
  });

  it('releases files older than the kept index, keeping that one, newer ones and at least one', async () => {
    const dir = freshDir();
    const snapshotter = new Snapshotter(dir);
    for (const index of [10, 20, 30, 40]) await snapshotter.save(metadataAt(index, 1), Buffer.from(`at ${index}`));
    await snapshotter.release(30);
    assert.deepEqual((await snapshotter.list()).map((file) => file.metadata.index), [40, 30]);
    await snapshotter.release(1_000);
    assert.deepEqual((await snapshotter.list()).map((file) => file.metadata.index), [40]);
    await snapshotter.release(1_000);
    assert.deepEqual((await snapshotter.list()).map((file) => file.metadata.index), [40]);
  });
});
