/**
 * The etcd v3 protos (proto/etcd/rpc.proto and kv.proto) loaded at run time with protobufjs, and
 * grpc-js service definitions built from them with explicit serializers — no generated code and
 * no @grpc/proto-loader.
 *
 * Message shape: a decoded message is a plain object as protobufjs `toObject` produces it with
 * `{ keepCase: true, longs: String, oneofs: true }` and without defaults:
 * - field names exactly as in the .proto (`range_end`, `create_revision`, ...);
 * - 64-bit integers (int64 and uint64) are DECIMAL STRINGS, signed or unsigned as declared, so
 *   cluster_id 10386079443273509696 and lease IDs above 2^53 survive exactly;
 * - bytes are Buffers; enums are numbers;
 * - a field absent on the wire is absent from the object, and each oneof has a virtual property
 *   naming the member that was set (`target_union: 'create_revision'` for an explicit 0), so
 *   presence is never lost.
 * Messages to encode use the same names; 64-bit fields accept a number, a decimal string or a
 * bigint (converted here). Zero values should simply be left out, as Go's proto3 encoder does.
 *
 * The .proto directory is found relative to this file, for both the TypeScript sources
 * (src/api/grpc) and the compiled output (dist/src/api/grpc).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

/** Candidate locations of proto/etcd: from src/api/grpc, then from dist/src/api/grpc. */
const PROTO_DIRECTORY_CANDIDATES = [
  path.resolve(__dirname, '..', '..', '..', 'proto', 'etcd'),
  path.resolve(__dirname, '..', '..', '..', '..', 'proto', 'etcd'),
];

/** The absolute path of proto/etcd/rpc.proto. Throws (a packaging bug) when neither layout has it. */
export const ETCD_RPC_PROTO_PATH: string = findRpcProto();

function findRpcProto(): string {
  for (const directory of PROTO_DIRECTORY_CANDIDATES) {
    const candidate = path.join(directory, 'rpc.proto');
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`proto/etcd/rpc.proto not found; looked in ${PROTO_DIRECTORY_CANDIDATES.join(', ')}`);
}

/** The parsed etcd protos (packages `etcdserverpb` and `mvccpb`), field names as in the files. */
export const etcdProtoRoot: protobuf.Root = new protobuf.Root().loadSync(ETCD_RPC_PROTO_PATH, { keepCase: true });

/** A decoded (or to-be-encoded) protobuf message in the shape described in the module overview. */
export type ProtoObject = { [field: string]: unknown };

/** The etcd v3 services of rpc.proto. */
export type EtcdServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance';

const CONVERSION_OPTIONS: protobuf.IConversionOptions = { longs: String, oneofs: true };

/** Holds the size of the encoded request a message was decoded from (see {@link encodedSizeBytes}). */
const ENCODED_SIZE_BYTES = Symbol('encodedSizeBytes');

/** Encodes and decodes one message type. */
export interface MessageCodec {
  /** The protobuf type's full name, e.g. `etcdserverpb.RangeRequest`. */
  readonly typeName: string;
  /** Encodes a message (64-bit fields as numbers, decimal strings or bigints). */
  encode(message: ProtoObject): Buffer;
  /** Decodes bytes into the plain shape of the module overview. Throws on malformed input. */
  decode(bytes: Uint8Array): ProtoObject;
}

const codecs = new Map<string, MessageCodec>();

/** The codec of a message type of the etcd protos, e.g. `etcdserverpb.WatchResponse`. */
export function messageCodec(typeName: string): MessageCodec {
  const cached = codecs.get(typeName);
  if (cached !== undefined) return cached;
  const type = etcdProtoRoot.lookupType(typeName);
  const codec: MessageCodec = {
    typeName,
    encode: (message) => {
      const bytes = type.encode(withoutBigints(message) as ProtoObject).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode: (bytes) => {
      const object = type.toObject(type.decode(bytes), CONVERSION_OPTIONS) as ProtoObject;
      Object.defineProperty(object, ENCODED_SIZE_BYTES, { value: bytes.byteLength, enumerable: false });
      return object;
    },
  };
  codecs.set(typeName, codec);
  return codec;
}

/** The size in bytes of the encoded message `message` was decoded from (0 if it was not decoded). */
export function encodedSizeBytes(message: ProtoObject): number {
  const size = (message as { [ENCODED_SIZE_BYTES]?: number })[ENCODED_SIZE_BYTES];
  return size ?? 0;
}

/**
 * protobufjs writes 64-bit fields from numbers, strings or Long-like `{low, high}` objects, not
 * bigints: turn bigints into their two 32-bit halves (two's complement for negative int64), which
 * protobufjs takes as they are (a decimal string would be parsed again on every encode).
 */
function withoutBigints(value: unknown): unknown {
  if (typeof value === 'bigint') return { low: Number(BigInt.asUintN(32, value)) | 0, high: Number(BigInt.asUintN(32, value >> 32n)) | 0, unsigned: value >= 0n };
  if (Array.isArray(value)) return value.map(withoutBigints);
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  const result: ProtoObject = {};
  for (const [field, fieldValue] of Object.entries(value)) result[field] = withoutBigints(fieldValue);
  return result;
}

/**
 * A grpc-js service definition of one etcd service, with method names and paths exactly as
 * etcd's (`/etcdserverpb.KV/Range`, ...). Requests and responses are {@link ProtoObject}s, so the
 * same definition serves the server and test clients (`grpc.makeGenericClientConstructor`).
 */
export function etcdServiceDefinition(serviceName: EtcdServiceName): grpc.ServiceDefinition {
  const service = etcdProtoRoot.lookupService(`etcdserverpb.${serviceName}`);
  const definition: Record<string, grpc.MethodDefinition<ProtoObject, ProtoObject>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const requestCodec = messageCodec(method.resolvedRequestType!.fullName.replace(/^\./, ''));
    const responseCodec = messageCodec(method.resolvedResponseType!.fullName.replace(/^\./, ''));
    definition[method.name] = {
      path: `/etcdserverpb.${serviceName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (message: ProtoObject) => requestCodec.encode(message),
      requestDeserialize: (bytes: Buffer) => requestCodec.decode(bytes),
      // A Buffer is a response the service already encoded (the watch service shares the
      // encoding of an event between every watcher that receives it): sent as it is.
      responseSerialize: (message: ProtoObject | Buffer) => (Buffer.isBuffer(message) ? message : responseCodec.encode(message)),
      responseDeserialize: (bytes: Buffer) => responseCodec.decode(bytes),
      originalName: method.name,
    };
  }
  return definition as grpc.ServiceDefinition;
}

// ---------------------------------------------------------------------------------------------
// Field readers for the gateway decode (a decoded message has already the right wire types; these
// only pick defaults and convert representations).
// ---------------------------------------------------------------------------------------------

/** A bytes field (absent → empty). */
export function bytesField(message: ProtoObject, field: string): Buffer {
  const value = message[field];
  return Buffer.isBuffer(value) ? value : value instanceof Uint8Array ? Buffer.from(value) : Buffer.alloc(0);
}

/** A bool field (absent → false). */
export function boolField(message: ProtoObject, field: string): boolean {
  return message[field] === true;
}

/** An enum or 32-bit field (absent → 0). */
export function int32Field(message: ProtoObject, field: string): number {
  const value = message[field];
  return typeof value === 'number' ? value : 0;
}

/**
 * An int64 field as a JavaScript number (absent → 0). For revisions, limits and counts: values
 * beyond 2^53 lose precision but keep their sign and magnitude, which is all the checks need
 * (such a revision is a future revision).
 */
export function int64NumberField(message: ProtoObject, field: string): number {
  const value = message[field];
  if (typeof value === 'string') return Number(value);
  return typeof value === 'number' ? value : 0;
}

/** A 64-bit field as an exact bigint (absent → 0n): lease, member and cluster IDs. */
export function int64BigIntField(message: ProtoObject, field: string): bigint {
  const value = message[field];
  if (typeof value === 'string') return BigInt(value);
  return typeof value === 'number' ? BigInt(value) : 0n;
}

/** A message field (absent → undefined). */
export function messageField(message: ProtoObject, field: string): ProtoObject | undefined {
  const value = message[field];
  return value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && !Array.isArray(value) ? (value as ProtoObject) : undefined;
}

/** A repeated message field (absent → []). */
export function repeatedMessageField(message: ProtoObject, field: string): ProtoObject[] {
  const value = message[field];
  return Array.isArray(value) ? (value as ProtoObject[]) : [];
}

/** A repeated enum field (absent → []). */
export function repeatedInt32Field(message: ProtoObject, field: string): number[] {
  const value = message[field];
  return Array.isArray(value) ? value.filter((item): item is number => typeof item === 'number') : [];
}

/** The name of the member set in a oneof (undefined when none is set). */
export function oneofCase(message: ProtoObject, oneof: string): string | undefined {
  const value = message[oneof];
  return typeof value === 'string' ? value : undefined;
}
