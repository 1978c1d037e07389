/**
 * Helpers shared by the transport tests: message builders, a recording TransportHandler, an
 * in-memory snapshot source and sink, a recording logger and polling with a deadline.
 * Test-only; nothing in production imports this module.
 */
import { createHash } from 'node:crypto';
import { MessageType, type Logger, type Message, type NodeId } from '../raft/types';
import type { SnapshotBody, SnapshotBodyDigest, SnapshotSink, SnapshotSource, TransportHandler } from './transport';
import { makeMessage as makeCoreMessage } from '../raft/message';

/** A message with every field at its zero value except those given (the core's makeMessage). */
export function makeMessage(fields: Partial<Message> & Pick<Message, 'type' | 'to' | 'from'>): Message {
  return makeCoreMessage(fields.type, fields.to, fields);
}

/** A MsgSnap whose snapshot metadata names `index`. */
export function makeSnapshotMessage(from: NodeId, to: NodeId, index: number): Message {
  return makeMessage({
    type: MessageType.MsgSnap,
    from,
    to,
    term: 3,
    snapshot: {
      metadata: { index, term: 3, confState: { voters: [from, to], learners: [], removed: [] } },
      data: new TextEncoder().encode(`snapshot-${index}`),
    },
  });
}

/** A TransportHandler that records everything, for assertions. */
export class RecordingHandler implements TransportHandler {
  readonly messages: Message[] = [];
  readonly unreachable: NodeId[] = [];
  readonly snapshotReports: { id: NodeId; outcome: 'finish' | 'failure' }[] = [];
  /** Peers that reported this node removed. */
  readonly removedBy: NodeId[] = [];
  /** Called on every message before it is recorded (for ordering checks). */
  onEachMessage: (message: Message) => void = () => {};

  onMessage(message: Message): void {
    this.onEachMessage(message);
    this.messages.push(message);
  }

  reportUnreachable(id: NodeId): void {
    this.unreachable.push(id);
  }

  reportSnapshot(id: NodeId, outcome: 'finish' | 'failure'): void {
    this.snapshotReports.push({ id, outcome });
  }

  reportRemoved(id: NodeId): void {
    this.removedBy.push(id);
  }

  /** Messages of one type from one sender, in arrival order. */
  from(id: NodeId, type?: MessageType): Message[] {
    return this.messages.filter((m) => m.from === id && (type === undefined || m.type === type));
  }
}

/** One recorded log line. */
export interface LogRecord {
  level: 'debug' | 'info' | 'warn';
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** A Logger that keeps every line. */
export class RecordingLogger implements Logger {
  readonly records: LogRecord[] = [];
  debug(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'debug', message, fields });
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'warn', message, fields });
  }
  /** Warnings whose message or details contain `text`. */
  warnings(text: string): LogRecord[] {
    return this.records.filter(
      (r) => r.level === 'warn' && (r.message.includes(text) || String(r.fields?.['details'] ?? '').includes(text)),
    );
  }
}

/** Hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A SnapshotSource serving one fixed body, yielded in pieces of `pieceBytes`. `streamed`: as a
 * body still being produced (its digest known only after the last piece); `digestAfterBody`
 * then overrides the digest it reports (to show a receiver refusing a wrong one).
 */
export class FixedSnapshotSource implements SnapshotSource {
  opened = 0;
  constructor(
    private readonly body: Uint8Array,
    private readonly pieceBytes = 1024 * 1024,
    private readonly failOpen = false,
    private readonly streamed?: { readonly digestAfterBody?: SnapshotBodyDigest },
  ) {}

  async open(): Promise<SnapshotBody> {
    this.opened++;
    if (this.failOpen) throw new Error('source cannot open snapshot');
    const { body, pieceBytes, streamed } = this;
    const digest = streamed?.digestAfterBody ?? { bodyBytes: body.length, sha256: sha256Hex(body) };
    if (streamed === undefined) {
      async function* pieces(): AsyncGenerator<Uint8Array> {
        for (let offset = 0; offset < body.length; offset += pieceBytes) yield body.subarray(offset, offset + pieceBytes);
      }
      return { ...digest, body: pieces() };
    }
    let produced: (digest: SnapshotBodyDigest) => void = () => {};
    const digestAfterBody = new Promise<SnapshotBodyDigest>((resolve) => (produced = resolve));
    async function* growing(): AsyncGenerator<Uint8Array> {
      for (let offset = 0; offset < body.length; offset += pieceBytes) {
        await new Promise((resolve) => setImmediate(resolve)); // produced over several turns
        yield body.subarray(offset, offset + pieceBytes);
      }
      produced(digest);
    }
    return { bodyBytes: 0, sha256: '', body: growing(), digestAfterBody };
  }
}

/** The size and digest a sink is to check, whether given upfront or (streamed) after the body. */
export function expectedDigest(expected: SnapshotBodyDigest | (() => SnapshotBodyDigest)): SnapshotBodyDigest {
  return typeof expected === 'function' ? expected() : expected;
}

/**
 * A SnapshotSink that keeps bodies in memory and verifies size and checksum, as the real one
 * must. `beforeEachChunk` can stall it (to show heartbeats still flow).
 */
export class MemorySnapshotSink implements SnapshotSink {
  readonly stored: { message: Message; body: Buffer }[] = [];
  chunkCount = 0;
  constructor(
    private readonly options: { reject?: boolean; beforeEachChunk?: (chunkNumber: number) => Promise<void> } = {},
  ) {}

  async receive(message: Message, expected: SnapshotBodyDigest | (() => SnapshotBodyDigest), chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const pieces: Buffer[] = [];
    for await (const chunk of chunks) {
      this.chunkCount++;
      await this.options.beforeEachChunk?.(this.chunkCount);
      pieces.push(Buffer.from(chunk)); // copy: chunks are views of transport buffers
    }
    const body = Buffer.concat(pieces);
    if (this.options.reject === true) throw new Error('sink refuses every snapshot');
    const { bodyBytes, sha256 } = expectedDigest(expected);
    if (body.length !== bodyBytes) throw new Error(`size mismatch: ${body.length} != ${bodyBytes}`);
    if (sha256Hex(body) !== sha256) throw new Error('checksum mismatch');
    this.stored.push({ message, body });
  }
}

/** A sink that must never be called. */
export const UNUSED_SINK: SnapshotSink = {
  receive: async () => {
    throw new Error('unexpected snapshot');
  },
};

/** A source that must never be called. */
export const UNUSED_SOURCE: SnapshotSource = {
  open: async () => {
    throw new Error('unexpected snapshot');
  },
};

/** Polls `predicate` every few milliseconds until it holds; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, description: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets pending immediates and short timers run (for "nothing happened" checks). */
export async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}
