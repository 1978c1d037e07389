/**
 * Rebuilds raft's durable state from the records of the WAL, in write order.
 *
 * Overwrite rule (Raft §5.3): an entries batch starting at index i REPLACES the entry at i and
 * every entry after it, because a new leader truncated this follower's conflicting suffix. The
 * result is always one contiguous run of entries.
 *
 * Gap rule: the writer only accepts a batch that starts at or below its "last index" + 1, where
 * the last index is that of the last entry written, raised by any snapshot marker written since
 * (after installing a leader's snapshot at index S, the log continues at S + 1). Replay tracks the
 * same value, starting from the first retained segment's first index - 1 (which is what the writer
 * had when it started that segment), and treats a batch beyond it as corruption: records were
 * lost. A batch that jumps past the retained entries but is covered by a marker starts a fresh
 * run; the entries it leaves behind are covered by the snapshot.
 */
import type { Entry, HardState, LogIndex } from '../raft/types';
import {
  decodeEntriesPayload,
  decodeHardStatePayload,
  decodeSegmentHeaderPayload,
  decodeSnapshotMarkerPayload,
  RecordType,
  type SnapshotMarker,
} from './wal-record';
import { corruptRecord, type ScannedRecord } from './wal-segment';

/** The zero HardState: what a WAL that never saved one reports. */
export const ZERO_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0n, commit: 0 });

/** Accumulates state while the segments are read. */
export class LogReplay {
  /** Surviving entries, contiguous, in index order. */
  entries: Entry[] = [];
  hardState: HardState | undefined;
  readonly snapshotMarkers: SnapshotMarker[] = [];
  /** The writer's last index as of the records replayed so far (see the gap rule). */
  lastIndex: LogIndex;

  constructor(firstSegmentFirstIndex: LogIndex) {
    this.lastIndex = Math.max(0, firstSegmentFirstIndex - 1);
  }

  /** Applies one entries batch (contiguous, non-empty) found at `file`:`offset`. */
  applyEntries(batch: Entry[], file: string, offset: number): void {
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (first === undefined || last === undefined) throw corruptRecord(file, offset, 'empty entries batch');
    if (first.index > this.lastIndex + 1) {
      throw corruptRecord(file, offset, `entries start at index ${first.index} but the log ends at ${this.lastIndex}: records are missing`);
    }
    const retainedFirst = this.entries[0];
    if (retainedFirst === undefined || first.index < retainedFirst.index || first.index > retainedFirst.index + this.entries.length) {
      // No retained entries, a truncation below all of them, or a jump covered by a snapshot marker.
      this.entries = batch;
    } else {
      this.entries.length = first.index - retainedFirst.index;
      for (const entry of batch) this.entries.push(entry);
    }
    this.lastIndex = last.index;
  }

  /** Applies one hard state: the last one wins. */
  applyHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /** Applies one snapshot marker. */
  applySnapshotMarker(marker: SnapshotMarker): void {
    this.snapshotMarkers.push(marker);
    this.lastIndex = Math.max(this.lastIndex, marker.index);
  }
}

/** A segment as replay needs it: its identity (from its file name) and path. */
export interface ReplaySegment {
  readonly sequence: number;
  readonly firstIndex: LogIndex;
  readonly path: string;
}

/**
 * Checks a segment's preamble and applies its records to `replay`. Returns the WAL's metadata
 * (from the first segment; every later one must carry identical bytes).
 */
export function replaySegment(
  segment: ReplaySegment,
  records: readonly ScannedRecord[],
  metadata: Buffer | undefined,
  replay: LogReplay,
): Buffer {
  const header = records[0];
  const metadataRecord = records[1];
  if (header === undefined || header.type !== RecordType.SegmentHeader) {
    throw corruptRecord(segment.path, header?.offset ?? 0, 'segment does not start with a segment header');
  }
  const decodedHeader = decodeSegmentHeaderPayload(header.payload);
  if (typeof decodedHeader === 'string') throw corruptRecord(segment.path, header.offset, decodedHeader);
  if (decodedHeader.sequence !== segment.sequence || decodedHeader.firstIndex !== segment.firstIndex) {
    throw corruptRecord(segment.path, header.offset,
      `header says sequence ${decodedHeader.sequence}, first index ${decodedHeader.firstIndex}; the file name disagrees`);
  }
  if (metadataRecord === undefined || metadataRecord.type !== RecordType.Metadata) {
    throw corruptRecord(segment.path, metadataRecord?.offset ?? header.offset, 'segment header is not followed by metadata');
  }
  if (metadata !== undefined && !metadata.equals(metadataRecord.payload)) {
    throw corruptRecord(segment.path, metadataRecord.offset, 'metadata differs from that of earlier segments');
  }
  for (const record of records.slice(2)) {
    const { payload, offset } = record;
    switch (record.type) {
      case RecordType.Entries: {
        const entries = decodeEntriesPayload(payload);
        if (typeof entries === 'string') throw corruptRecord(segment.path, offset, entries);
        replay.applyEntries(entries, segment.path, offset);
        break;
      }
      case RecordType.HardState: {
        const hardState = decodeHardStatePayload(payload);
        if (typeof hardState === 'string') throw corruptRecord(segment.path, offset, hardState);
        replay.applyHardState(hardState);
        break;
      }
      case RecordType.SnapshotMarker: {
        const marker = decodeSnapshotMarkerPayload(payload);
        if (typeof marker === 'string') throw corruptRecord(segment.path, offset, marker);
        replay.applySnapshotMarker(marker);
        break;
      }
      case RecordType.SegmentHeader:
      case RecordType.Metadata:
        throw corruptRecord(segment.path, offset, `record type ${record.type} in the middle of a segment`);
    }
  }
  return metadata ?? Buffer.from(metadataRecord.payload);
}
