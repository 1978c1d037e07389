/**
 * batchStreamWrites over a real grpc-js server and client on 127.0.0.1: a burst written in one
 * tick arrives complete and in order, and what was buffered behind the first write went to
 * HTTP/2 in batches rather than one response per send cycle.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { batchStreamWrites } from './stream-writes';

const identity = (value: Buffer) => value;
const METHOD = {
  path: '/test.Burst/Burst',
  requestStream: true,
  responseStream: true,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};

interface Observed {
  installed: boolean;
  /** Sizes of the batches `_writev` was given. */
  readonly batches: number[];
}

/** A server whose one method writes `count` numbered responses in one tick after the first request. */
async function burstServer(count: number, install: boolean): Promise<{ readonly port: number; readonly observed: Observed; readonly server: grpc.Server }> {
  const observed: Observed = { installed: false, batches: [] };
  const server = new grpc.Server();
  server.addService({ Burst: METHOD }, {
    Burst: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      if (install) {
        observed.installed = batchStreamWrites(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
        const writable = call as unknown as { _writev: (chunks: readonly unknown[], callback: () => void) => void };
        const writev = writable._writev;
        writable._writev = (chunks, callback) => {
          observed.batches.push(chunks.length);
          writev(chunks, callback);
        };
      }
      call.once('data', () => {
        for (let index = 0; index < count; index++) {
          const message = Buffer.alloc(64, index % 251);
          message.writeUInt32BE(index, 0);
          call.write(message);
        }
        call.end();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  return { port, observed, server };
}

/** A response's number, or -1 when its body is not the one written with that number. */
function numberOf(message: Buffer): number {
  const index = message.readUInt32BE(0);
  return message.subarray(4).every((byte) => byte === index % 251) ? index : -1;
}

/** Every response of one call, or a failure when the call has not ended within `deadlineMs`. */
async function receiveAll(port: number, deadlineMs = 30_000): Promise<number[]> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const call = client.makeBidiStreamRequest<Buffer, Buffer>(METHOD.path, identity, identity);
    const received: number[] = [];
    call.on('data', (message: Buffer) => received.push(numberOf(message)));
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<void>((resolve, reject) => {
      call.on('status', (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve() : reject(new Error(status.details))));
      call.on('error', reject);
      timer = setTimeout(() => reject(new Error(`the call did not end within ${deadlineMs} ms (${received.length} responses received)`)), deadlineMs);
    });
    call.write(Buffer.from('go'));
    call.end();
    try {
      await ended;
    } finally {
      clearTimeout(timer);
      call.cancel();
    }
    return received;
  } finally {
    client.close();
  }
}

test('a burst of responses arrives complete and in order, handed to HTTP/2 in batches', async () => {
  const count = 2000;
  const { port, observed, server } = await burstServer(count, true);
  try {
    const received = await receiveAll(port);
    assert.equal(observed.installed, true);
    assert.deepEqual(received, Array.from({ length: count }, (_, index) => index));
    // The first response goes through `_write`; everything buffered behind it comes through
    // `_writev`, so far fewer batches than responses.
    const batched = observed.batches.reduce((sum, size) => sum + size, 0);
    assert.ok(batched >= count / 2, `most responses went through _writev (${batched} of ${count})`);
    assert.ok(observed.batches.length < count / 10, `in batches (${observed.batches.length} for ${batched} responses)`);
  } finally {
    server.forceShutdown();
  }
});

test('a call wrapped by a server interceptor keeps grpc-js’s one-at-a-time writes', () => {
  const wrapped = { call: { sendMessage: () => undefined } } as unknown as grpc.ServerDuplexStream<unknown, unknown>;
  assert.equal(batchStreamWrites(wrapped), false);
  assert.equal((wrapped as unknown as { _writev?: unknown })._writev, undefined);
});
