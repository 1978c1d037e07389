/**
 * The TCP proxy with real sockets on 127.0.0.1: an echo server behind it, a client in front,
 * and every mode switched on live connections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { TcpProxy } from './tcp-proxy';
import { waitUntil } from './wait-until';

/** An echo server that counts connections and bytes. */
async function startEchoServer(): Promise<{ server: net.Server; port: number; stats: { connections: number; bytes: number } }> {
  const stats = { connections: 0, bytes: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    stats.connections++;
    sockets.add(socket);
    socket.on('data', (chunk) => {
      stats.bytes += chunk.length;
      socket.write(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('close', () => {
    for (const socket of sockets) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return { server, port: address.port, stats };
}

/** A client socket that accumulates what it receives and notes when it closed. */
async function connectClient(port: number): Promise<{ socket: net.Socket; received: () => string; closed: () => boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let received = '';
  let closed = false;
  socket.on('data', (chunk) => (received += chunk.toString()));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', () => resolve());
  });
  return { socket, received: () => received, closed: () => closed };
}

async function withProxy(body: (proxy: TcpProxy, echo: Awaited<ReturnType<typeof startEchoServer>>) => Promise<void>): Promise<void> {
  const echo = await startEchoServer();
  const proxy = await TcpProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port });
  try {
    await body(proxy, echo);
  } finally {
    await proxy.close();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  }
}

const WAIT = { timeoutMs: 5000 };

test('pass forwards bytes both ways', async () => {
  await withProxy(async (proxy) => {
    const client = await connectClient(proxy.port);
    client.socket.write('hello');
    await waitUntil(() => client.received() === 'hello', { ...WAIT, description: 'echo' });
    assert.equal(proxy.statistics.connectionsOpen, 1);
    client.socket.destroy();
  });
});

test('drop holds bytes of an existing connection until the partition heals', async () => {
  await withProxy(async (proxy, echo) => {
    const client = await connectClient(proxy.port);
    client.socket.write('a');
    await waitUntil(() => client.received() === 'a', { ...WAIT, description: 'first echo' });
    proxy.setMode({ kind: 'drop' });
    const receivedBefore = proxy.statistics.bytesReceived;
    client.socket.write('held');
    await waitUntil(() => proxy.statistics.bytesReceived === receivedBefore + 4, { ...WAIT, description: 'proxy to receive' });
    assert.equal(echo.stats.bytes, 1, 'nothing crossed the partition');
    assert.equal(client.received(), 'a');
    assert.equal(client.closed(), false, 'the connection stays open');
    proxy.setMode({ kind: 'pass' });
    await waitUntil(() => client.received() === 'aheld', { ...WAIT, description: 'held bytes after healing' });
    client.socket.destroy();
  });
});

test('drop blackholes new connections: the target sees nothing until healing', async () => {
  await withProxy(async (proxy, echo) => {
    proxy.setMode({ kind: 'drop' });
    const client = await connectClient(proxy.port);
    client.socket.write('syn?');
    await waitUntil(() => proxy.statistics.bytesReceived === 4, { ...WAIT, description: 'proxy to receive' });
    assert.equal(echo.stats.connections, 0);
    proxy.setMode({ kind: 'pass' });
    await waitUntil(() => client.received() === 'syn?', { ...WAIT, description: 'echo after healing' });
    assert.equal(echo.stats.connections, 1);
    client.socket.destroy();
  });
});

test('drop stops replies on the way back too', async () => {
  await withProxy(async (proxy, echo) => {
    const client = await connectClient(proxy.port);
    client.socket.write('x');
    await waitUntil(() => client.received() === 'x', { ...WAIT, description: 'first echo' });
    // Let the request through, then drop before the reply: use a delay so the reply is
    // still in flight inside the proxy when the mode switches.
    proxy.setMode({ kind: 'delay', delayMs: 300 });
    client.socket.write('y');
    await waitUntil(() => echo.stats.bytes === 2, { ...WAIT, description: 'request to reach the target' });
    proxy.setMode({ kind: 'drop' });
    const deliveredBefore = proxy.statistics.bytesDelivered;
    await waitUntil(() => proxy.statistics.bytesReceived === 4, { ...WAIT, description: 'reply to reach the proxy' });
    assert.equal(proxy.statistics.bytesDelivered, deliveredBefore);
    assert.equal(client.received(), 'x');
    proxy.setMode({ kind: 'pass' });
    await waitUntil(() => client.received() === 'xy', { ...WAIT, description: 'reply after healing' });
    client.socket.destroy();
  });
});

test('reject resets existing and new connections; pass accepts again', async () => {
  await withProxy(async (proxy) => {
    const existing = await connectClient(proxy.port);
    existing.socket.write('1');
    await waitUntil(() => existing.received() === '1', { ...WAIT, description: 'echo' });
    proxy.setMode({ kind: 'reject' });
    await waitUntil(() => existing.closed(), { ...WAIT, description: 'existing connection to close' });
    const rejected = await connectClient(proxy.port);
    await waitUntil(() => rejected.closed(), { ...WAIT, description: 'new connection to close' });
    assert.equal(proxy.statistics.connectionsOpen, 0);
    proxy.setMode({ kind: 'pass' });
    const fresh = await connectClient(proxy.port);
    fresh.socket.write('2');
    await waitUntil(() => fresh.received() === '2', { ...WAIT, description: 'echo after reject' });
    fresh.socket.destroy();
  });
});

test('delay holds each chunk for the delay in each direction, in order', async () => {
  await withProxy(async (proxy) => {
    const client = await connectClient(proxy.port);
    const delayMs = 150;
    proxy.setMode({ kind: 'delay', delayMs });
    const startedMs = performance.now();
    client.socket.write('one,');
    client.socket.write('two,');
    client.socket.write('three');
    await waitUntil(() => client.received() === 'one,two,three', { ...WAIT, description: 'delayed echo' });
    const elapsedMs = performance.now() - startedMs;
    assert.ok(elapsedMs >= 2 * delayMs - 2, `round trip took ${elapsedMs}ms, expected at least ${2 * delayMs}ms`);
    client.socket.destroy();
  });
});

test('a proxy to a dead target closes the client connection', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const proxy = await TcpProxy.start({ targetHost: '127.0.0.1', targetPort: deadPort });
  try {
    const client = await connectClient(proxy.port);
    await waitUntil(() => client.closed(), { ...WAIT, description: 'client to be closed' });
  } finally {
    await proxy.close();
  }
});
