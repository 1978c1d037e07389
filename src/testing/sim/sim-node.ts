/**
 * One simulated server: its durable "disk", its state machine, and its (volatile) Raft core.
 *
 * The disk is a MemoryStorage that the simulator writes exactly as the runtime contract in
 * types.ts (`Ready`) prescribes; it survives crashes. Everything else the process holds — the
 * RawNode with its unstable entries and pending messages — is lost on a crash. The state
 * machine is either durable (its applied index is written together with its data, as the kv
 * store keeps it in level) or volatile (rebuilt from the snapshot and the log on restart, as
 * raftexample does); the simulator chooses per run.
 *
 * The state machine is deliberately tiny: a digest chained over every applied entry (index,
 * term, content). Equal digests at an index mean equal histories up to it, which is exactly what
 * state machine safety asks; its snapshot image is that digest plus the index and term.
 */
import type { MemoryStorage } from '../../raft/storage';
import { NONE, Role, type ConfState, type Entry, type NodeId, type RaftNode, type Term } from '../../raft/types';
import type { DurableLogView } from './checkers';
import { entryHash } from './checkers';
import { chainDigest, EMPTY_DIGEST } from './digest';

/** The state machine's image: what it has applied, condensed. Also its snapshot format. */
export interface StateMachineImage {
  readonly index: number;
  readonly term: Term;
  readonly digest: string;
}

/** The empty state machine. */
export const EMPTY_IMAGE: StateMachineImage = Object.freeze({ index: 0, term: 0, digest: EMPTY_DIGEST });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a state-machine image as snapshot data. */
export function encodeImage(image: StateMachineImage): Uint8Array {
  return encoder.encode(`${image.index}/${image.term}/${image.digest}`);
}

/** Decodes snapshot data; an empty snapshot (index 0) decodes to the empty image. */
export function decodeImage(data: Uint8Array): StateMachineImage {
  if (data.length === 0) return EMPTY_IMAGE;
  const [index, term, digest] = decoder.decode(data).split('/');
  if (index === undefined || term === undefined || digest === undefined) throw new Error('decodeImage: malformed snapshot data');
  return { index: Number(index), term: Number(term), digest };
}

/** The image after applying `entry` to `image`. Entries must be applied in index order. */
export function applyToImage(image: StateMachineImage, entry: Entry): StateMachineImage {
  if (entry.index !== image.index + 1) {
    throw new Error(`state machine: applying index ${entry.index} after ${image.index} (a gap or a repeat)`);
  }
  return { index: entry.index, term: entry.term, digest: chainDigest(image.digest, `${entry.index}:${entry.term}:${entryHash(entry)}`) };
}

/** A DurableLogView over a MemoryStorage (the node's disk). */
export function storageView(storage: MemoryStorage): DurableLogView {
  return {
    snapshotIndex: () => storage.firstIndex() - 1,
    lastIndex: () => storage.lastIndex(),
    termAt: (index) => {
      const term = storage.term(index);
      return typeof term === 'number' ? term : undefined;
    },
  };
}

/** Where a node's process is. */
export type NodeStatus = 'up' | 'crashed' | 'stopped';

/** One simulated server. The simulator owns all transitions. */
export class SimNode {
  /** The volatile core; undefined while crashed or stopped. */
  raw: RaftNode | undefined;
  status: NodeStatus = 'up';
  /** Bumped at each start, so reports meant for an earlier incarnation are ignored. */
  incarnation = 0;
  /** The state machine's current image (volatile copy of the durable one if durable). */
  image: StateMachineImage = EMPTY_IMAGE;
  /** The state machine's durable image (only meaningful when `durableStateMachine`). */
  durableImage: StateMachineImage = EMPTY_IMAGE;
  /** The configuration after the last applied conf change (or restored snapshot). */
  confState: ConfState = { voters: [], learners: [], removed: [] };
  /** Index at which `confState` was reached. */
  confStateIndex = 0;
  /** Last index handed to the core as applied (for contiguity checks). */
  appliedIndex = 0;
  /** Observed from Ready.softState. */
  role: Role = Role.Follower;
  lead: NodeId = NONE;
  /** Term observed from the latest Ready.hardState (or the disk at start). */
  term: Term = 0;
  /** Relative tick rate (clock skew): the chance of ticking in a given tick slot. */
  tickRate = 1;
  /** Index of the latest snapshot this node created itself. */
  lastSnapshotIndex = 0;
  /** Sabotage: the disk drops HardState.vote for this node. */
  forgetsVote = false;
  /** The node has applied its own removal (raftexample stops then). */
  removedSelf = false;
  readonly view: DurableLogView;

  constructor(readonly id: NodeId, readonly storage: MemoryStorage, readonly durableStateMachine: boolean) {
    this.view = storageView(storage);
  }

  /** True when the process runs. */
  get isUp(): boolean {
    return this.status === 'up' && this.raw !== undefined;
  }
}
