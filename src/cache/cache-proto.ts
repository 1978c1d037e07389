/**
 * proto/cache.proto loaded at run time with protobufjs (as src/transport/raft-proto.ts does for
 * the Raft transport), and the grpc-js service definition of `CachePeer` with explicit
 * serialize/deserialize functions. int64 fields travel as JavaScript numbers: revisions and
 * Unix milliseconds stay far below 2^53.
 *
 * Decoding is the gateway: {@link decodeGetResponse} and friends turn any malformed message
 * into a thrown error, which grpc-js reports to the caller as a failed call (status INTERNAL),
 * so a peer answering garbage is just a failed peer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import type { ServiceDefinition } from '@grpc/grpc-js';

const PROTO_DIRECTORY_CANDIDATES = [path.resolve(__dirname, '..', '..', 'proto'), path.resolve(__dirname, '..', '..', '..', 'proto')];

/** The absolute path of proto/cache.proto (from src/cache or dist/src/cache). */
export const CACHE_PROTO_PATH: string = (() => {
  for (const directory of PROTO_DIRECTORY_CANDIDATES) {
    const candidate = path.join(directory, 'cache.proto');
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`cache.proto not found; looked in ${PROTO_DIRECTORY_CANDIDATES.join(', ')}`);
})();

const root = protobuf.loadSync(CACHE_PROTO_PATH);
const types = {
  GetRequest: root.lookupType('raftkv.cachepb.GetRequest'),
  GetResponse: root.lookupType('raftkv.cachepb.GetResponse'),
  SetRequest: root.lookupType('raftkv.cachepb.SetRequest'),
  SetResponse: root.lookupType('raftkv.cachepb.SetResponse'),
};

/** `CachePeer.Get` request. */
export interface PeerGetRequest {
  readonly group: string;
  readonly key: string;
}
/** `CachePeer.Get` response. */
export interface PeerGetResponse {
  readonly found: boolean;
  readonly value: Buffer;
  readonly modRevision: number;
  readonly watchedRevision: number;
}
/** `CachePeer.Set` request. */
export interface PeerSetRequest {
  readonly group: string;
  readonly key: string;
  readonly value: Buffer;
  /** Absolute expiry in Unix ms; 0 = the owner's default. */
  readonly expire: number;
  readonly isHot: boolean;
  readonly modRevision: number;
}
/** `CachePeer.Set` response. */
export interface PeerSetResponse {
  readonly ok: boolean;
}

function encode(type: protobuf.Type, value: object): Buffer {
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

function decode(type: protobuf.Type, bytes: Buffer): Record<string, unknown> {
  return type.toObject(type.decode(bytes), { longs: Number, bytes: Buffer, defaults: true }) as Record<string, unknown>;
}

function asString(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new Error(`cache.proto: ${field} is not a string`);
  return value;
}
function asNumber(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`cache.proto: ${field} is not a non-negative safe integer`);
  return value;
}
function asBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return Buffer.alloc(0);
}

/** Serialises a Get request. */
export const encodeGetRequest = (request: PeerGetRequest): Buffer => encode(types.GetRequest, request);
/** Parses a Get request; throws on a malformed message. */
export function decodeGetRequest(bytes: Buffer): PeerGetRequest {
  const object = decode(types.GetRequest, bytes);
  return { group: asString(object.group, 'group'), key: asString(object.key, 'key') };
}
/** Serialises a Get response. */
export const encodeGetResponse = (response: PeerGetResponse): Buffer => encode(types.GetResponse, response);
/** Parses a Get response; throws on a malformed message. */
export function decodeGetResponse(bytes: Buffer): PeerGetResponse {
  const object = decode(types.GetResponse, bytes);
  return {
    found: object.found === true,
    value: asBuffer(object.value),
    modRevision: asNumber(object.modRevision, 'mod_revision'),
    watchedRevision: asNumber(object.watchedRevision, 'watched_revision'),
  };
}
/** Serialises a Set request. */
export const encodeSetRequest = (request: PeerSetRequest): Buffer => encode(types.SetRequest, request);
/** Parses a Set request; throws on a malformed message. */
export function decodeSetRequest(bytes: Buffer): PeerSetRequest {
  const object = decode(types.SetRequest, bytes);
  return {
    group: asString(object.group, 'group'),
    key: asString(object.key, 'key'),
    value: asBuffer(object.value),
    expire: asNumber(object.expire, 'expire'),
    isHot: object.isHot === true,
    modRevision: asNumber(object.modRevision, 'mod_revision'),
  };
}
/** Serialises a Set response. */
export const encodeSetResponse = (response: PeerSetResponse): Buffer => encode(types.SetResponse, response);
/** Parses a Set response; throws on a malformed message. */
export function decodeSetResponse(bytes: Buffer): PeerSetResponse {
  return { ok: decode(types.SetResponse, bytes).ok === true };
}

const service = root.lookupService('raftkv.cachepb.CachePeer');
function methodPath(name: string): string {
  const method = service.methods[name];
  if (method === undefined) throw new Error(`cache.proto: CachePeer has no method ${name}`);
  return `/${service.fullName.replace(/^\./, '')}/${method.name}`;
}

/** gRPC path of `CachePeer.Get`. */
export const PEER_GET_PATH: string = methodPath('Get');
/** gRPC path of `CachePeer.Set`. */
export const PEER_SET_PATH: string = methodPath('Set');

/** The grpc-js service definition of `CachePeer` (for `server.addService`). */
export const CACHE_PEER_SERVICE: ServiceDefinition = {
  Get: {
    path: PEER_GET_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeGetRequest,
    requestDeserialize: decodeGetRequest,
    responseSerialize: encodeGetResponse,
    responseDeserialize: decodeGetResponse,
  },
  Set: {
    path: PEER_SET_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeSetRequest,
    requestDeserialize: decodeSetRequest,
    responseSerialize: encodeSetResponse,
    responseDeserialize: decodeSetResponse,
  },
};
