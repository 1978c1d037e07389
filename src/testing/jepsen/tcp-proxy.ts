/**
 * A controllable TCP proxy for fault injection: it listens on 127.0.0.1 and forwards every
 * accepted connection to one target host:port, in one of four modes that can be switched at
 * any time and apply to existing connections at once:
 * - `pass`: bytes flow both ways as soon as they arrive;
 * - `drop`: a blackhole, like a partition where packets vanish. New connections are accepted
 *   but not connected onwards; bytes in both directions are held, not delivered, and their
 *   sources are paused (so memory stays bounded by the sockets' buffers). End-of-stream and
 *   resets are held too: across a partition nobody learns that the other side went away.
 *   When the mode changes back, what was held is delivered in order, as TCP retransmission
 *   would after a partition heals (if the endpoints' own timeouts have not closed it first).
 *   Bytes are never discarded from the middle of a stream: TCP never does that, and a
 *   corrupted HTTP/2 stream is not a network fault worth testing.
 * - `reject`: every existing connection is reset on both sides and new connections are reset
 *   on accept, like a host that answers with RST;
 * - `delay(ms)`: each chunk is delivered `delayMs` after it arrived, order preserved.
 *
 * A proxy carries the connections initiated from its listening side; the bytes answered on
 * those connections flow back through it too. So dropping the proxy (j→i) silences every
 * connection node j opened to node i, in both directions.
 */
import net from 'node:net';

/** How the proxy treats traffic (see the module overview). */
export type ProxyMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'reject' }
  | { readonly kind: 'delay'; readonly delayMs: number };

/** Where a proxy listens and what it forwards to. */
export interface TcpProxyOptions {
  /** The target's host. */
  readonly targetHost: string;
  /** The target's port. */
  readonly targetPort: number;
  /** The port to listen on (0 = pick a free one). Listens on 127.0.0.1 only. */
  readonly listenPort?: number;
  /** The initial mode; `pass` by default. */
  readonly mode?: ProxyMode;
}

/** Counters for tests and post-mortems. */
export interface TcpProxyStatistics {
  /** Connections accepted so far. */
  readonly connectionsAccepted: number;
  /** Connections currently open. */
  readonly connectionsOpen: number;
  /** Bytes received from either side. */
  readonly bytesReceived: number;
  /** Bytes written to either side. */
  readonly bytesDelivered: number;
}

/** A chunk of bytes, or the end of the stream (`null`), waiting to be delivered. */
interface QueuedItem {
  readonly chunk: Buffer | null;
  dueTimeMs: number;
}

/** One direction of one proxied connection: from `source` to `sink`. */
class Direction {
  readonly queue: QueuedItem[] = [];
  timer: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    /** Where bytes come from; the upstream socket is known only once it is created. */
    public source: net.Socket | undefined,
    readonly sink: () => net.Socket | undefined,
  ) {}

  pauseSource(): void {
    this.source?.pause();
  }

  resumeSource(): void {
    this.source?.resume();
  }
}

/** A proxied connection: the accepted client socket and, once connected, the upstream one. */
class ProxiedConnection {
  upstream: net.Socket | undefined;
  upstreamConnecting = false;
  closed = false;
  readonly toTarget: Direction;
  readonly toClient: Direction;

  constructor(readonly client: net.Socket) {
    this.toTarget = new Direction(client, () => this.upstream);
    this.toClient = new Direction(undefined, () => client);
  }
}

/** A running proxy. Create with {@link TcpProxy.start}; always {@link TcpProxy.close} it. */
export class TcpProxy {
  private currentMode: ProxyMode;
  private readonly connections = new Set<ProxiedConnection>();
  private connectionsAccepted = 0;
  private bytesReceived = 0;
  private bytesDelivered = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly options: TcpProxyOptions,
  ) {
    this.currentMode = options.mode ?? { kind: 'pass' };
  }

  /** Starts listening on 127.0.0.1 and resolves once the port is bound. */
  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const server = net.createServer({ pauseOnConnect: true });
    const proxy = new TcpProxy(server, options);
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  /** The port the proxy listens on. */
  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  /** The current mode. */
  get mode(): ProxyMode {
    return this.currentMode;
  }

  /** Counters since start. */
  get statistics(): TcpProxyStatistics {
    return {
      connectionsAccepted: this.connectionsAccepted,
      connectionsOpen: this.connections.size,
      bytesReceived: this.bytesReceived,
      bytesDelivered: this.bytesDelivered,
    };
  }

  /** Switches mode; applies to existing connections immediately. */
  setMode(mode: ProxyMode): void {
    if (mode.kind === 'delay' && !(mode.delayMs >= 0)) throw new RangeError('delayMs must be >= 0');
    this.currentMode = mode;
    for (const connection of [...this.connections]) {
      if (mode.kind === 'reject') {
        this.destroy(connection, true);
        continue;
      }
      if (mode.kind === 'drop') continue; // sources pause themselves on their next chunk
      // Leaving drop: release what was held, due now (plus the delay).
      const nowMs = performance.now();
      const delayMs = mode.kind === 'delay' ? mode.delayMs : 0;
      for (const direction of [connection.toTarget, connection.toClient]) {
        for (const item of direction.queue) item.dueTimeMs = Math.max(item.dueTimeMs, nowMs + delayMs);
      }
      this.ensureUpstream(connection);
      this.pump(connection, connection.toTarget);
      this.pump(connection, connection.toClient);
    }
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const connection of [...this.connections]) this.destroy(connection, false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.connectionsAccepted++;
    if (this.currentMode.kind === 'reject') {
      client.resetAndDestroy();
      return;
    }
    const connection = new ProxiedConnection(client);
    this.connections.add(connection);
    client.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.receive(connection, connection.toTarget, chunk));
    client.on('end', () => this.receive(connection, connection.toTarget, null));
    client.on('error', () => this.receive(connection, connection.toTarget, null));
    client.on('close', () => this.receive(connection, connection.toTarget, null));
    this.ensureUpstream(connection);
    client.resume();
  }

  /** Connects onwards unless dropping (a blackholed SYN never arrives). */
  private ensureUpstream(connection: ProxiedConnection): void {
    if (connection.upstream !== undefined || connection.upstreamConnecting || connection.closed) return;
    if (this.currentMode.kind === 'drop' || this.currentMode.kind === 'reject') return;
    connection.upstreamConnecting = true;
    const upstream = net.connect({ host: this.options.targetHost, port: this.options.targetPort });
    upstream.setNoDelay(true);
    connection.toClient.source = upstream;
    upstream.on('connect', () => {
      connection.upstreamConnecting = false;
      connection.upstream = upstream;
      this.pump(connection, connection.toTarget);
    });
    upstream.on('data', (chunk: Buffer) => this.receive(connection, connection.toClient, chunk));
    upstream.on('end', () => this.receive(connection, connection.toClient, null));
    upstream.on('error', () => {
      // Target unreachable or reset: the client sees a reset, as it would without the proxy.
      if (connection.upstream === undefined) this.destroy(connection, true);
      else this.receive(connection, connection.toClient, null);
    });
    upstream.on('close', () => this.receive(connection, connection.toClient, null));
  }

  private receive(connection: ProxiedConnection, direction: Direction, chunk: Buffer | null): void {
    if (connection.closed) return;
    if (chunk === null) {
      if (direction.ended) return;
      direction.ended = true;
    } else {
      this.bytesReceived += chunk.length;
    }
    const mode = this.currentMode;
    const delayMs = mode.kind === 'delay' ? mode.delayMs : 0;
    const nowMs = performance.now();
    const previousDueMs = direction.queue[direction.queue.length - 1]?.dueTimeMs ?? 0;
    direction.queue.push({ chunk, dueTimeMs: Math.max(previousDueMs, nowMs + delayMs) });
    if (mode.kind === 'drop') {
      direction.pauseSource();
      return;
    }
    this.pump(connection, direction);
  }

  /** Delivers every due item of a direction, in order; re-arms a timer for the rest. */
  private pump(connection: ProxiedConnection, direction: Direction): void {
    if (connection.closed || this.currentMode.kind === 'drop') return;
    const sink = direction.sink();
    if (sink === undefined) return; // upstream not connected yet; 'connect' pumps again
    if (direction.timer !== undefined) {
      clearTimeout(direction.timer);
      direction.timer = undefined;
    }
    const nowMs = performance.now();
    while (direction.queue.length > 0) {
      const item = direction.queue[0] as QueuedItem;
      if (item.dueTimeMs > nowMs) {
        direction.timer = setTimeout(() => {
          direction.timer = undefined;
          this.pump(connection, direction);
        }, Math.ceil(item.dueTimeMs - nowMs));
        break;
      }
      direction.queue.shift();
      if (item.chunk === null) {
        // The source ended or went away: close the whole connection once delivered so far.
        this.destroy(connection, false);
        return;
      }
      this.bytesDelivered += item.chunk.length;
      if (!sink.write(item.chunk)) {
        direction.pauseSource();
        sink.once('drain', () => {
          if (this.currentMode.kind !== 'drop') direction.resumeSource();
        });
      }
    }
    if (direction.queue.length === 0 && !direction.ended && sink.writableNeedDrain === false) {
      direction.resumeSource();
    }
  }

  private destroy(connection: ProxiedConnection, reset: boolean): void {
    if (connection.closed) return;
    connection.closed = true;
    this.connections.delete(connection);
    for (const direction of [connection.toTarget, connection.toClient]) {
      if (direction.timer !== undefined) clearTimeout(direction.timer);
      direction.queue.length = 0;
    }
    const sockets = [connection.client, connection.toClient.source];
    for (const socket of new Set(sockets)) {
      if (socket === undefined || socket.destroyed) continue;
      if (reset) socket.resetAndDestroy();
      else socket.end(() => socket.destroy());
    }
  }
}
