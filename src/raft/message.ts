/**
 * Message construction for the core: one flat {@link Message} shape for every kind, with zero
 * values for the fields a kind does not use (so the transport can encode it with one schema).
 */
import { NONE, type Message, type MessageType, type NodeId, type StepResult } from './types';
import { EMPTY_BYTES } from './util';

/** The accepted outcome, shared (immutable). */
export const OK: StepResult = Object.freeze({ ok: true });

/** Builds a message with every field at its zero value except those given. */
export function makeMessage(type: MessageType, to: NodeId, fields?: Partial<Message>): Message {
  const message: Message = {
    type,
    to,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
  return fields === undefined ? message : Object.assign(message, fields);
}
