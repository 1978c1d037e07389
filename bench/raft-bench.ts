/**
 * Raft core throughput benchmark (`npm run bench:raft`).
 *
 * A three-node cluster in one process with no I/O and no faults: MemoryStorage as the disk,
 * messages handed straight from one node's Ready to the next node's `step`. Each round proposes
 * `BATCH_ENTRIES` entries of `ENTRY_BYTES` bytes on the leader, then drives Readies and messages
 * until the leader has applied all of them. Prints committed entries per second over about
 * `DURATION_SECONDS` and the p50/p99 latency of a round. The target is ≥ 100,000 entries/s.
 */
import { bootstrapEntries } from '../src/raft/bootstrap';
import { decodeConfChange } from '../src/raft/conf-change';
import { RawNode } from '../src/raft/raw-node';
import { MemoryStorage } from '../src/raft/storage';
import { EntryType, NONE, ReadOnlyOption, Role, type Message, type NodeId } from '../src/raft/types';
import { Prng } from '../src/testing/sim/prng';

const BATCH_ENTRIES = 1000;
const ENTRY_BYTES = 256;
const DURATION_SECONDS = 5;
const TARGET_ENTRIES_PER_SECOND = 100_000;

interface BenchNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function buildCluster(): BenchNode[] {
  const voters = [1n, 2n, 3n];
  const entries = bootstrapEntries(voters);
  const prng = new Prng(1);
  return voters.map((id) => {
    const storage = new MemoryStorage();
    storage.append(entries);
    storage.setHardState({ term: 1, vote: NONE, commit: entries.length });
    const random = prng.fork();
    const raw = new RawNode({
      id,
      electionTicks: 10,
      heartbeatTicks: 1,
      storage,
      applied: 0,
      maxSizePerMsgBytes: 1024 * 1024,
      maxInflightMessages: 256,
      maxInflightBytes: 0,
      maxUncommittedEntriesBytes: 0,
      maxCommittedSizePerReadyBytes: 64 * 1024 * 1024,
      checkQuorum: false,
      preVote: false,
      readOnlyOption: ReadOnlyOption.Safe,
      random: (n) => random.int(n),
    });
    return { id, raw, storage, applied: 0 };
  });
}

/** Handles every pending Ready and delivers every message until the cluster is quiet. */
function pump(nodes: BenchNode[], byId: Map<NodeId, BenchNode>): void {
  const queue: Message[] = [];
  for (;;) {
    let progressed = false;
    for (const node of nodes) {
      if (!node.raw.hasReady()) continue;
      progressed = true;
      const ready = node.raw.ready();
      if (ready.snapshot !== undefined) node.storage.applySnapshot(ready.snapshot);
      if (ready.entries.length > 0) node.storage.append(ready.entries);
      if (ready.hardState !== undefined) node.storage.setHardState(ready.hardState);
      for (const message of ready.messages) queue.push(message);
      for (const entry of ready.committedEntries) {
        if (entry.type === EntryType.ConfChange) node.raw.applyConfChange(decodeConfChange(entry.data));
        node.applied = entry.index;
      }
      node.raw.advance();
    }
    while (queue.length > 0) {
      progressed = true;
      const message = queue.shift()!;
      byId.get(message.to)!.raw.step(message);
    }
    if (!progressed) return;
  }
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? 0;
}

function main(): void {
  const nodes = buildCluster();
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const leader = nodes[0]!;
  pump(nodes, byId);
  leader.raw.campaign();
  pump(nodes, byId);
  if (leader.raw.status().softState.role !== Role.Leader) throw new Error('bench: node 1 did not become leader');
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  const latencies: number[] = [];
  let committed = 0;
  const started = performance.now();
  while (performance.now() - started < DURATION_SECONDS * 1000) {
    const roundStart = performance.now();
    const target = leader.storage.lastIndex() + BATCH_ENTRIES;
    for (let i = 0; i < BATCH_ENTRIES; i++) {
      const result = leader.raw.propose(payload);
      if (!result.ok) throw new Error(`bench: proposal refused (${result.reason})`);
    }
    pump(nodes, byId);
    if (leader.applied < target) throw new Error(`bench: round did not commit (applied ${leader.applied}, wanted ${target})`);
    for (const node of nodes) {
      if (node.applied < target) throw new Error(`bench: n${node.id} applied only ${node.applied} of ${target}`);
    }
    committed += BATCH_ENTRIES;
    latencies.push(performance.now() - roundStart);
    // Keep memory flat, as a runtime taking snapshots would.
    for (const node of nodes) {
      const compactTo = node.applied - 1000;
      if (compactTo > node.storage.firstIndex()) node.storage.compact(compactTo);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const rate = committed / seconds;
  console.log(`raft-bench: 3 nodes, in memory, ${BATCH_ENTRIES} x ${ENTRY_BYTES}-byte entries per round, ${latencies.length} rounds in ${seconds.toFixed(2)} s`);
  console.log(`  committed entries/s: ${Math.round(rate).toLocaleString('en-US')} (target ${TARGET_ENTRIES_PER_SECOND.toLocaleString('en-US')}: ${rate >= TARGET_ENTRIES_PER_SECOND ? 'met' : 'NOT met'})`);
  console.log(`  applied index per node: ${nodes.map((node) => `n${node.id}=${node.applied}`).join(' ')} (followers must match the leader)`);
  console.log(`  batch latency: p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms`);
}

main();
