/**
 * Tests of the command encoding: round trips over the shapes that matter (empty values, unicode
 * keys, large values, extreme request IDs), rejection of malformed bytes as values, and caller
 * bugs thrown at encode time.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand, isNoOpData, type Command } from './command';

function roundTrip(command: Command): Command {
  const decoded = decodeCommand(encodeCommand(command));
  assert.equal(decoded.ok, true, `decode failed: ${decoded.ok ? '' : decoded.reason}`);
  if (!decoded.ok) throw new Error('unreachable');
  return decoded.command;
}

function assertSameCommand(actual: Command, expected: Command): void {
  assert.equal(actual.requestId, expected.requestId);
  assert.equal(actual.op, expected.op);
  assert.equal(actual.key, expected.key);
  if (expected.op === 'put') {
    assert.ok(actual.value instanceof Uint8Array);
    assert.equal(Buffer.compare(actual.value, expected.value), 0);
  } else {
    assert.equal(actual.value, undefined);
  }
}

describe('command encoding', () => {
  it('round-trips a put and a delete', () => {
    const put: Command = { requestId: 42n, op: 'put', key: 'alpha', value: Buffer.from('one') };
    const del: Command = { requestId: 43n, op: 'delete', key: 'alpha' };
    assertSameCommand(roundTrip(put), put);
    assertSameCommand(roundTrip(del), del);
  });

  it('round-trips an empty value and an empty key', () => {
    const command: Command = { requestId: 1n, op: 'put', key: '', value: new Uint8Array(0) };
    const decoded = roundTrip(command);
    assertSameCommand(decoded, command);
    assert.equal(decoded.value?.byteLength, 0);
  });

  it('round-trips unicode keys', () => {
    for (const key of ['ключ', '鍵/子', 'emoji 🗝️🔑', 'e\u0301', '\u0000nul', 'a'.repeat(70_000)]) {
      const command: Command = { requestId: 7n, op: 'put', key, value: Buffer.from(key) };
      assertSameCommand(roundTrip(command), command);
    }
  });

  it('round-trips a large value', () => {
    const value = Buffer.alloc(8 * 1024 * 1024);
    for (let index = 0; index < value.length; index += 4096) value[index] = index % 251;
    const command: Command = { requestId: 9n, op: 'put', key: 'big', value };
    const encoded = encodeCommand(command);
    assert.equal(encoded.byteLength, 14 + 3 + value.byteLength);
    assertSameCommand(roundTrip(command), command);
  });

  it('round-trips the extreme request IDs', () => {
    for (const requestId of [0n, 1n, (1n << 53n) + 1n, (1n << 64n) - 1n]) {
      const command: Command = { requestId, op: 'delete', key: 'k' };
      assert.equal(roundTrip(command).requestId, requestId);
    }
  });

  it('decodes a put value as a view into the entry bytes (no copy)', () => {
    const encoded = encodeCommand({ requestId: 5n, op: 'put', key: 'k', value: Buffer.from('vvv') });
    const decoded = decodeCommand(encoded);
    assert.ok(decoded.ok && decoded.command.op === 'put');
    assert.equal(decoded.command.value.buffer, encoded.buffer);
  });

  it('writes the format version first', () => {
    const encoded = encodeCommand({ requestId: 5n, op: 'delete', key: 'k' });
    assert.equal(encoded[0], COMMAND_FORMAT_VERSION);
  });

  it('treats empty data as a no-op, not a command', () => {
    assert.equal(isNoOpData(new Uint8Array(0)), true);
    assert.equal(isNoOpData(encodeCommand({ requestId: 1n, op: 'delete', key: '' })), false);
    assert.deepEqual(decodeCommand(new Uint8Array(0)), { ok: false, reason: 'empty' });
  });

  it('rejects malformed bytes with a reason', () => {
    const valid = Buffer.from(encodeCommand({ requestId: 3n, op: 'delete', key: 'key' }));
    const variant = (edit: (bytes: Buffer) => Buffer): Buffer => edit(Buffer.from(valid));
    assert.deepEqual(decodeCommand(variant((b) => ((b[0] = 2), b))), { ok: false, reason: 'unknown-version' });
    assert.deepEqual(decodeCommand(valid.subarray(0, 10)), { ok: false, reason: 'truncated' });
    assert.deepEqual(decodeCommand(valid.subarray(0, valid.length - 1)), { ok: false, reason: 'truncated' });
    assert.deepEqual(decodeCommand(variant((b) => (b.writeUInt32BE(0xffffffff, 10), b))), { ok: false, reason: 'truncated' });
    assert.deepEqual(decodeCommand(variant((b) => ((b[1] = 9), b))), { ok: false, reason: 'unknown-operation' });
    assert.deepEqual(decodeCommand(variant((b) => ((b[14] = 0xff), b))), { ok: false, reason: 'invalid-key' });
    assert.deepEqual(decodeCommand(Buffer.concat([valid, Buffer.from([1])])), { ok: false, reason: 'trailing-bytes' });
  });

  it('never throws on random or mutated bytes, and whatever decodes re-encodes identically', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed >>> 8;
    };
    const valid = encodeCommand({ requestId: 77n, op: 'put', key: 'клю', value: Buffer.from('value') });
    let accepted = 0;
    let rejected = 0;
    for (let round = 0; round < 20_000; round += 1) {
      let bytes: Uint8Array;
      if (round % 2 === 0) {
        bytes = new Uint8Array(random() % 40);
        for (let index = 0; index < bytes.length; index += 1) bytes[index] = random() & 0xff;
      } else {
        // Mutate a valid encoding: flip one byte, then maybe cut the tail.
        bytes = Uint8Array.from(valid);
        bytes[random() % bytes.length] = random() & 0xff;
        if (random() % 3 === 0) bytes = bytes.subarray(0, random() % bytes.length);
      }
      const decoded = decodeCommand(bytes);
      if (decoded.ok) {
        accepted += 1;
        // The format has one spelling: decoding then encoding gives back the same bytes.
        assert.equal(Buffer.compare(Buffer.from(encodeCommand(decoded.command)), Buffer.from(bytes)), 0);
      } else {
        rejected += 1;
      }
    }
    assert.ok(accepted > 0 && rejected > 0, `accepted ${accepted}, rejected ${rejected}`);
  });

  it('throws on caller bugs at encode time', () => {
    assert.throws(() => encodeCommand({ requestId: -1n, op: 'delete', key: 'k' }));
    assert.throws(() => encodeCommand({ requestId: 1n << 64n, op: 'delete', key: 'k' }));
    assert.throws(() => encodeCommand({ requestId: 1n, op: 'delete', key: 'lone \ud800 surrogate' }));
    assert.throws(() => encodeCommand({ requestId: 1n, op: 'delete', key: 'k', value: new Uint8Array(1) } as unknown as Command));
    assert.throws(() => encodeCommand({ requestId: 1n, op: 'put', key: 'k' } as unknown as Command));
  });
});
