/**
 * Helpers for the tests of src/api/grpc: a server on a {@link LocalEtcdBackend} bound to
 * 127.0.0.1:0, raw grpc-js clients built from the same service definitions (so tests see the
 * exact wire values: 64-bit integers as decimal strings, absent fields absent), a queue over a
 * Watch stream, and polling with a deadline. Used only by tests.
 */
import * as grpc from '@grpc/grpc-js';
import { createEtcdGrpcServer, type EtcdGrpcServer, type EtcdGrpcServerOptions } from './etcd-server';
import { etcdServiceDefinition, type EtcdServiceName, type ProtoObject } from './etcd-proto';
import { LocalEtcdBackend, type LocalEtcdBackendOptions } from './local-backend';

/** A server under test and its backend. */
export interface TestServer {
  readonly backend: LocalEtcdBackend;
  readonly server: EtcdGrpcServer;
  readonly address: string;
  /** Stops the server and destroys the backend. */
  close(): Promise<void>;
}

/** Starts a server on a fresh local backend at 127.0.0.1:0. */
export async function startTestServer(backendOptions: LocalEtcdBackendOptions = {}, serverOptions: EtcdGrpcServerOptions = {}): Promise<TestServer> {
  const backend = await LocalEtcdBackend.create(backendOptions);
  const server = createEtcdGrpcServer(backend, { shutdownGraceMs: 1000, lease: backend, ...serverOptions });
  const port = await server.listen('127.0.0.1', 0);
  return {
    backend,
    server,
    address: `127.0.0.1:${port}`,
    close: async () => {
      await server.stop();
      await backend.destroy();
    },
  };
}

/** A raw client of one etcd service (methods as in the proto). */
export type RawClient = grpc.Client & { [method: string]: grpc.UntypedHandleCall & ((...args: unknown[]) => unknown) };

/** Creates a raw client of `service` at `address` (insecure). Close it with `client.close()`. */
export function rawClient(service: EtcdServiceName, address: string, options: grpc.ClientOptions = {}): RawClient {
  const Constructor = grpc.makeGenericClientConstructor(etcdServiceDefinition(service), service);
  return new Constructor(address, grpc.credentials.createInsecure(), options) as unknown as RawClient;
}

/** The outcome of a unary call: the response or the error (code and details). */
export type UnaryOutcome = { readonly ok: true; readonly response: ProtoObject } | { readonly ok: false; readonly code: grpc.status; readonly details: string };

/** Calls a unary method and resolves with its outcome (never rejects). */
export function callUnary(client: RawClient, method: string, request: ProtoObject, metadata: grpc.Metadata = new grpc.Metadata()): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    const fn = client[method] as unknown as (request: ProtoObject, metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, response?: ProtoObject) => void) => void;
    fn.call(client, request, metadata, (error, response) => {
      if (error !== null) resolve({ ok: false, code: error.code, details: error.details });
      else resolve({ ok: true, response: response ?? {} });
    });
  });
}

/** Calls a unary method and returns the response; throws with the status otherwise. */
export async function callOk(client: RawClient, method: string, request: ProtoObject): Promise<ProtoObject> {
  const outcome = await callUnary(client, method, request);
  if (!outcome.ok) throw new Error(`${method} failed: ${outcome.code} ${outcome.details}`);
  return outcome.response;
}

/** Bytes of a UTF-8 string. */
export function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** Polls `predicate` until true; throws after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A Watch stream opened by a raw client, with its responses queued in arrival order. */
export class WatchStreamProbe {
  readonly responses: ProtoObject[] = [];
  /** Set when the stream ended: the final status. */
  status: grpc.StatusObject | undefined;
  readonly call: grpc.ClientDuplexStream<ProtoObject, ProtoObject>;
  private taken = 0;

  constructor(client: RawClient, metadata: grpc.Metadata = new grpc.Metadata()) {
    const open = client['Watch'] as unknown as (metadata: grpc.Metadata) => grpc.ClientDuplexStream<ProtoObject, ProtoObject>;
    this.call = open.call(client, metadata);
    this.call.on('data', (response: ProtoObject) => this.responses.push(response));
    this.call.on('status', (status: grpc.StatusObject) => {
      this.status = status;
    });
    this.call.on('error', () => undefined);
  }

  /** Sends one WatchRequest. */
  send(request: ProtoObject): void {
    this.call.write(request);
  }

  /** The next response not yet taken (waits up to `timeoutMs`). */
  async next(timeoutMs = 5000): Promise<ProtoObject> {
    await waitUntil(() => this.responses.length > this.taken, timeoutMs, 'a watch response');
    const response = this.responses[this.taken]!;
    this.taken += 1;
    return response;
  }

  /** Responses received and not yet taken. */
  pending(): number {
    return this.responses.length - this.taken;
  }

  /** Waits for the final status. */
  async ended(timeoutMs = 5000): Promise<grpc.StatusObject> {
    await waitUntil(() => this.status !== undefined, timeoutMs, 'the end of the watch stream');
    return this.status!;
  }
}

/** Metadata `hasleader: true`, as etcdctl's watch and keep-alive streams send. */
export function requireLeaderMetadata(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('hasleader', 'true');
  return metadata;
}
