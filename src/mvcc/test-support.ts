/**
 * Test helpers for src/mvcc: a store in a temporary directory with an auto-incrementing Raft index,
 * and short constructors for requests. Used only by tests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MvccStore, type MvccStoreOptions } from './mvcc-store';
import type { MvccOutcome } from './errors';
import type {
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  MvccWriteRequest,
  MvccWriteResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from './types';

/** Bytes of a UTF-8 string. */
export function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** A store under test with helpers that apply one request per Raft index. */
export class TestStore {
  index = 0;

  private constructor(
    public store: MvccStore,
    readonly directory: string,
    private readonly options: MvccStoreOptions,
  ) {}

  /** Opens a fresh store in a new temporary directory. */
  static async create(options: MvccStoreOptions = {}): Promise<TestStore> {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'mvcc-test-'));
    const store = await MvccStore.open(directory, options);
    return new TestStore(store, directory, options);
  }

  /** Closes and reopens the store (the index counter continues from the durable applied index). */
  async reopen(): Promise<void> {
    await this.store.close();
    this.store = await MvccStore.open(this.directory, this.options);
    this.index = this.store.appliedIndex();
  }

  /** Closes the store and removes its directory. */
  async destroy(): Promise<void> {
    await this.store.close();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }

  /** Applies one write at the next index and returns its outcome. */
  async write(request: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse>> {
    this.index += 1;
    const result = await this.store.apply(this.index, request);
    if (result.skipped || result.outcome === undefined) throw new Error('unexpected skip');
    return result.outcome;
  }

  async put(key: string, value: string, extra: Omit<PutRequest, 'key' | 'value'> = {}): Promise<PutResponse> {
    return unwrap(await this.write({ kind: 'put', request: { key: bytes(key), value: bytes(value), ...extra } }), 'put');
  }

  async putRaw(request: PutRequest): Promise<MvccOutcome<MvccWriteResponse>> {
    return this.write({ kind: 'put', request });
  }

  async del(key: string, rangeEnd?: Buffer, prevKv = false): Promise<DeleteRangeResponse> {
    const request: DeleteRangeRequest = { key: bytes(key), ...(rangeEnd === undefined ? {} : { rangeEnd }), prevKv };
    return unwrap(await this.write({ kind: 'deleteRange', request }), 'deleteRange');
  }

  async txn(request: TxnRequest): Promise<MvccOutcome<TxnResponse>> {
    const outcome = await this.write({ kind: 'txn', request });
    return outcome.ok ? { ok: true, value: unwrap(outcome, 'txn') } : outcome;
  }

  async compact(revision: number): Promise<MvccOutcome<CompactionResponse>> {
    const outcome = await this.write({ kind: 'compact', request: { revision } });
    return outcome.ok ? { ok: true, value: unwrap(outcome, 'compact') } : outcome;
  }

  async get(request: RangeRequest): Promise<RangeResponse> {
    const outcome = await this.store.range(request);
    if (!outcome.ok) throw new Error(`range failed: ${outcome.error}`);
    return outcome.value;
  }

  /** Keys of a range as strings. */
  async keys(request: RangeRequest): Promise<string[]> {
    return (await this.get(request)).kvs.map((kv) => kv.key.toString('utf8'));
  }
}

type ResponseOf<K extends MvccWriteResponse['kind']> = Extract<MvccWriteResponse, { kind: K }>['response'];

/** The response of a successful write of kind `kind`; throws otherwise. */
export function unwrap<K extends MvccWriteResponse['kind']>(outcome: MvccOutcome<MvccWriteResponse>, kind: K): ResponseOf<K> {
  if (!outcome.ok) throw new Error(`write failed: ${outcome.error}`);
  if (outcome.value.kind !== kind) throw new Error(`expected ${kind}, got ${outcome.value.kind}`);
  return outcome.value.response as ResponseOf<K>;
}

/** A seeded PRNG (mulberry32): integers in [0, n). */
export function seededRandom(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n: number) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(value * n);
  };
}
