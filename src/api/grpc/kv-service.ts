/**
 * etcd's KV service (etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact) on an
 * {@link EtcdBackend}, with etcd v3.4.23's order of checks (etcdserver/api/v3rpc/key.go,
 * interceptor.go, etcdserver/v3_server.go):
 * 1. `hasleader: true` metadata while the node knows no leader → Unavailable "etcdserver: no leader";
 * 2. decode (kv-codec.ts), then validate (src/mvcc/validate.ts: empty key, ignore_* flags, txn
 *    operation count against backend.maxTxnOperations, duplicate keys);
 * 3. for writes that go through Raft (Put, DeleteRange, Compact, a Txn that writes), an encoded
 *    request larger than backend.maxRequestBytes → InvalidArgument "etcdserver: request is too
 *    large" (etcd measures the proposal, a few bytes more than the request; read-only txns and
 *    ranges are not proposed and not checked, as in etcd);
 * 4. the backend call; its MVCC outcome or rejection is mapped by etcd-errors.ts;
 * 5. the response with etcd's header (kv-codec.ts).
 * A Compact with `physical: true` answers only once the compacted history is gone from disk.
 */
import * as grpc from '@grpc/grpc-js';
import type { EtcdBackend } from './backend';
import { gatewayErrorStatus, mvccErrorStatus, thrownErrorStatus, toServiceError, type EtcdStatus } from './etcd-errors';
import { encodedSizeBytes, type ProtoObject } from './etcd-proto';
import {
  decodeCompactionRequest,
  decodeDeleteRangeRequest,
  decodePutRequest,
  decodeRangeRequest,
  decodeTxnRequest,
  encodeCompactionResponse,
  encodeDeleteRangeResponse,
  encodePutResponse,
  encodeRangeResponse,
  encodeTxnResponse,
  isTxnReadOnly,
} from './kv-codec';
import { requiresLeader } from './leader-monitor';
import type { MvccOutcome } from '../../mvcc/errors';
import type { MvccWriteRequest, MvccWriteResponse } from '../../mvcc/types';
import { validateDeleteRangeRequest, validatePutRequest, validateRangeRequest, validateTxnRequest } from '../../mvcc/validate';

/** Where unexpected failures are reported (a pino logger fits). */
export interface ServiceLogger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** A handler's answer: the response message, or the status to fail with. */
export type HandlerResult = { readonly response: ProtoObject } | { readonly status: EtcdStatus };

function failWith(status: EtcdStatus): HandlerResult {
  return { status };
}

/**
 * Wraps a handler as a grpc-js unary handler: the `hasleader` check first, then the handler; a
 * rejection (RaftkvError or a bug) is mapped by the one table and unexpected ones are logged.
 */
export function unaryHandler(backend: Pick<EtcdBackend, 'hasLeader'>, logger: ServiceLogger | undefined, method: string, handle: (request: ProtoObject) => Promise<HandlerResult>): grpc.handleUnaryCall<ProtoObject, ProtoObject> {
  return (call, callback) => {
    if (requiresLeader(call.metadata) && !backend.hasLeader()) {
      callback(toServiceError(gatewayErrorStatus('hasleader-no-leader')));
      return;
    }
    handle(call.request).then(
      (result) => {
        if ('status' in result) callback(toServiceError(result.status));
        else callback(null, result.response);
      },
      (error: unknown) => {
        const status = thrownErrorStatus(error);
        if (status.code === grpc.status.UNKNOWN) logger?.error({ err: error, method }, 'etcd call failed unexpectedly');
        callback(toServiceError(status));
      },
    );
  };
}

/** Proposes a write after the size check (`sizeBytes`: the encoded request, 0 = not checked). */
async function proposeWrite(backend: EtcdBackend, sizeBytes: number, write: MvccWriteRequest): Promise<MvccOutcome<MvccWriteResponse> | EtcdStatus> {
  if (sizeBytes > backend.maxRequestBytes) return gatewayErrorStatus('request-too-large');
  return backend.write(write);
}

/** The response type of a write of kind K. */
type ResponseOf<K extends MvccWriteResponse['kind']> = Extract<MvccWriteResponse, { kind: K }>['response'];

/** The response of the kind asked for (a backend answering another kind is a bug). */
function responseOfKind<K extends MvccWriteResponse['kind']>(response: MvccWriteResponse, kind: K): ResponseOf<K> {
  if (response.kind !== kind) throw new Error(`backend answered a ${kind} with a ${response.kind}`);
  return response.response as unknown as ResponseOf<K>;
}

/** Runs a write and turns its outcome into a handler result with `encode`. */
async function writeAndEncode<K extends MvccWriteResponse['kind']>(
  backend: EtcdBackend,
  sizeBytes: number,
  write: MvccWriteRequest & { kind: K },
  encode: (response: ResponseOf<K>) => Promise<ProtoObject> | ProtoObject,
): Promise<HandlerResult> {
  const outcome = await proposeWrite(backend, sizeBytes, write);
  if (!('ok' in outcome)) return failWith(outcome);
  if (!outcome.ok) return failWith(mvccErrorStatus(outcome.error));
  return { response: await encode(responseOfKind(outcome.value, write.kind)) };
}

/**
 * The KV service implementation for `server.addService(etcdServiceDefinition('KV'), ...)`.
 * Handler names are etcd's method names.
 */
export function createKvService(backend: EtcdBackend, logger?: ServiceLogger): grpc.UntypedServiceImplementation {
  return {
    Range: unaryHandler(backend, logger, 'Range', async (message) => {
      const request = decodeRangeRequest(message);
      const invalid = validateRangeRequest(request);
      if (invalid !== undefined) return failWith(mvccErrorStatus(invalid));
      const outcome = await backend.range(request);
      if (!outcome.ok) return failWith(mvccErrorStatus(outcome.error));
      return { response: encodeRangeResponse(backend.header(), outcome.value) };
    }),

    Put: unaryHandler(backend, logger, 'Put', async (message) => {
      const request = decodePutRequest(message);
      const invalid = validatePutRequest(request);
      if (invalid !== undefined) return failWith(mvccErrorStatus(invalid));
      return writeAndEncode(backend, encodedSizeBytes(message), { kind: 'put', request }, (response) => encodePutResponse(backend.header(), response));
    }),

    DeleteRange: unaryHandler(backend, logger, 'DeleteRange', async (message) => {
      const request = decodeDeleteRangeRequest(message);
      const invalid = validateDeleteRangeRequest(request);
      if (invalid !== undefined) return failWith(mvccErrorStatus(invalid));
      return writeAndEncode(backend, encodedSizeBytes(message), { kind: 'deleteRange', request }, (response) => encodeDeleteRangeResponse(backend.header(), response));
    }),

    Txn: unaryHandler(backend, logger, 'Txn', async (message) => {
      const request = decodeTxnRequest(message);
      const invalid = validateTxnRequest(request, backend.maxTxnOperations);
      if (invalid !== undefined) return failWith(mvccErrorStatus(invalid));
      // A read-only txn is not proposed in etcd, so it is not subject to the proposal size limit.
      const sizeBytes = isTxnReadOnly(request) ? 0 : encodedSizeBytes(message);
      return writeAndEncode(backend, sizeBytes, { kind: 'txn', request }, (response) => encodeTxnResponse(backend.header(), response));
    }),

    Compact: unaryHandler(backend, logger, 'Compact', async (message) => {
      const request = decodeCompactionRequest(message);
      return writeAndEncode(backend, encodedSizeBytes(message), { kind: 'compact', request }, async (response) => {
        // etcd waits for the physical compaction when asked (v3_server.go Compact).
        if (request.physical === true) await response.physicallyDone;
        // etcd sets the header revision to the store's revision when it answers.
        return encodeCompactionResponse(backend.header(), backend.header().revision);
      });
    }),
  };
}
