/**
 * The Raft core's public API. Everything else in src/raft is internal.
 *
 * See docs/RAFT.md for the contract (what the caller must do with a Ready, restart, bootstrap,
 * membership, reads, refusal reasons) and types.ts for the values that cross the boundary.
 */
export * from './types';
export { RawNode } from './raw-node';
export { MemoryStorage } from './storage';
export { bootstrapEntries } from './bootstrap';
export { encodeConfChange, decodeConfChange, checkConfChange, applyToConfState } from './conf-change';
export type { ConfChangeOutcome } from './conf-change';
export { RaftConfigError, DEFAULT_LEASE_DRIFT_MARGIN_TICKS } from './config';
export { RaftAssertionError, entrySizeBytes, payloadSizeBytes, ENTRY_OVERHEAD_BYTES } from './util';
