/**
 * The file-system half of KvStore's crash-safe restore: staging an image in `<dir>.restore`,
 * fsyncing it, and the recovery step at open (the protocol is described in the overview of
 * kv-store.ts).
 */

import { constants as fsConstants } from 'node:fs';
import { access, open as openFile, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger, LogIndex, NodeId } from '../raft/types';
import {
  APPLIED_KEY,
  DATA,
  FORMAT_KEY,
  KEY_COUNT_KEY,
  KV_STORE_FORMAT_VERSION,
  MEMBER_TAG,
  REMOVED_TAG,
  RESTORE_BATCH_BYTES,
  idKey,
  memberValue,
  openDatabase,
  u64,
} from './kv-layout';
import { SnapshotImageDecoder, SnapshotImageError } from './snapshot-image';

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Fsyncs a file or directory. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await openFile(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs every file directly inside `dir` (LevelDB directories are flat), then `dir` itself. */
async function fsyncDirectoryTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) await fsyncPath(join(dir, entry.name));
  }
  await fsyncPath(dir);
}

/**
 * Completes or discards an interrupted restore of the store in `dir`; MUST run before the
 * database in `dir` is opened. See the overview of kv-store.ts for the cases.
 */
export async function recoverInterruptedRestore(dir: string, logger: Logger | undefined): Promise<void> {
  const restoreDir = `${dir}.restore`;
  const oldDir = `${dir}.old`;
  let changed = false;
  if (!(await exists(dir)) && (await exists(oldDir))) {
    if (await exists(restoreDir)) {
      logger?.warn('kv: completing a restore interrupted between its renames', { dir });
      await rename(restoreDir, dir);
    } else {
      logger?.warn('kv: restore directory missing after the first rename; rolling back', { dir });
      await rename(oldDir, dir);
    }
    changed = true;
  }
  if (await exists(restoreDir)) {
    logger?.warn('kv: deleting an unfinished restore', { dir: restoreDir });
    await rm(restoreDir, { recursive: true, force: true });
    changed = true;
  }
  if (await exists(oldDir)) {
    await rm(oldDir, { recursive: true, force: true });
    changed = true;
  }
  if (changed) await fsyncPath(dirname(dir));
}

/**
 * Writes a validated image into a fresh database at `restoreDir`, durably. On any failure the
 * directory is deleted and the error rethrown. Answers the number of user keys staged.
 */
export async function stageImage(restoreDir: string, body: AsyncIterable<Uint8Array>, index: LogIndex): Promise<{ keyCount: number }> {
  const db = await openDatabase(restoreDir);
  let open = true;
  const decoder = new SnapshotImageDecoder(body);
  try {
    const imageIndex = await decoder.readHeader();
    if (imageIndex !== index) {
      throw new SnapshotImageError('index-mismatch', `image applied index ${imageIndex}, restoring at ${index}`);
    }
    const members = new Set<NodeId>();
    let keyCount = 0;
    let batch = db.batch();
    let batchBytes = 0;
    for await (const records of decoder.frames()) {
      for (const record of records) {
        if (record.kind === 'member') {
          members.add(record.id);
          batch.put(idKey(MEMBER_TAG, record.id), memberValue(record));
          batchBytes += 10 + record.peerUrl.length;
        } else if (record.kind === 'removed') {
          if (members.has(record.id)) {
            throw new SnapshotImageError('invalid-membership', `ID ${record.id} is both member and removed`);
          }
          batch.put(idKey(REMOVED_TAG, record.id), new Uint8Array(0));
          batchBytes += 10;
        } else {
          const key = Buffer.allocUnsafe(1 + record.key.byteLength);
          key[0] = DATA;
          key.set(record.key, 1);
          batch.put(key, record.value);
          batchBytes += key.byteLength + record.value.byteLength;
          keyCount += 1;
        }
      }
      if (batchBytes >= RESTORE_BATCH_BYTES) {
        await batch.write();
        batch = db.batch();
        batchBytes = 0;
      }
    }
    batch.put(FORMAT_KEY, u64(KV_STORE_FORMAT_VERSION).subarray(4));
    batch.put(APPLIED_KEY, u64(index));
    batch.put(KEY_COUNT_KEY, u64(keyCount));
    // The last batch is fsynced; the directory tree is fsynced again after closing so the files
    // LevelDB created (tables, manifest, CURRENT) and their directory entries are all durable
    // before the swap makes them the store.
    await batch.write({ sync: true });
    open = false;
    await db.close();
    await fsyncDirectoryTree(restoreDir);
    return { keyCount };
  } catch (error) {
    await decoder.cancel();
    if (open) await db.close().catch(() => undefined);
    await rm(restoreDir, { recursive: true, force: true });
    throw error;
  }
}
