/**
 * Small helpers shared by the core's tests (pure; no I/O): message builders and a way to build a
 * node over a hand-made log.
 */
import { bootstrapEntries } from './bootstrap';
import { makeMessage } from './message';
import { MemoryStorage } from './storage';
import { Network, type NetworkOptions } from './testing-network';
import { EntryType, NONE, type Entry, type Message, type MessageType } from './types';

/** A message from `from` to `to` with the given fields (others zero). */
export function msg(type: MessageType, from: number, to: number, fields: Partial<Message> = {}): Message {
  return makeMessage(type, BigInt(to), { from: BigInt(from), ...fields });
}

/** A Normal entry at (index, term) with text payload. */
export function entry(index: number, term: number, text = ''): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(text) };
}

/**
 * A network holding only node `id` whose storage has the bootstrap entries for `voters`, then
 * `extra` entries, and the given hard state (term defaults to the last entry's term).
 */
export function loneWithLog(
  id: number,
  voters: readonly number[],
  extra: readonly Entry[],
  hardState: { term: number; commit?: number },
  options: NetworkOptions = {},
): Network {
  const network = new Network(options);
  const storage = new MemoryStorage();
  const ids = voters.map((voter) => BigInt(voter));
  storage.append(bootstrapEntries(ids));
  storage.append(extra);
  storage.setHardState({ term: hardState.term, vote: NONE, commit: hardState.commit ?? ids.length });
  network.add(id, storage);
  network.processReadies();
  return network;
}
