/**
 * Loads proto/raft.proto at run time with protobufjs and exposes the reflected types the codec
 * needs, plus the gRPC method paths of the RaftTransport service.
 *
 * There is no generated code: the .proto file is the single source of truth and is parsed once,
 * when this module is first imported. The file is found relative to the package root, so the
 * same code works from the TypeScript sources (src/transport, run with tsx) and from the compiled
 * output (dist/src/transport).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** Candidate locations of the proto directory: from src/transport, then from dist/src/transport. */
const PROTO_DIRECTORY_CANDIDATES = [
  path.resolve(__dirname, '..', '..', 'proto'),
  path.resolve(__dirname, '..', '..', '..', 'proto'),
];

/**
 * The absolute path of proto/raft.proto. Throws (a packaging bug) when neither layout has it.
 */
export const RAFT_PROTO_PATH: string = findRaftProto();

function findRaftProto(): string {
  for (const directory of PROTO_DIRECTORY_CANDIDATES) {
    const candidate = path.join(directory, 'raft.proto');
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`raft.proto not found; looked in ${PROTO_DIRECTORY_CANDIDATES.join(', ')}`);
}

const root = protobuf.loadSync(RAFT_PROTO_PATH);

/** The reflected protobuf types of raft.proto (package `raftkv.raftpb`). */
export const raftProtoTypes = {
  Message: root.lookupType('raftkv.raftpb.Message'),
  MessageBatch: root.lookupType('raftkv.raftpb.MessageBatch'),
  SnapshotChunk: root.lookupType('raftkv.raftpb.SnapshotChunk'),
  StreamAck: root.lookupType('raftkv.raftpb.StreamAck'),
  SnapshotAck: root.lookupType('raftkv.raftpb.SnapshotAck'),
  LeaseForwardRequest: root.lookupType('raftkv.raftpb.LeaseForwardRequest'),
  LeaseForwardResponse: root.lookupType('raftkv.raftpb.LeaseForwardResponse'),
} as const;

const service = root.lookupService('raftkv.raftpb.RaftTransport');

function methodPath(name: string): string {
  const method = service.methods[name];
  if (method === undefined) throw new Error(`raft.proto: RaftTransport has no method ${name}`);
  // The gRPC path is "/<package>.<Service>/<Method>".
  return `/${service.fullName.replace(/^\./, '')}/${method.name}`;
}

/** gRPC path of `RaftTransport.Stream` (client-streaming MessageBatch → StreamAck). */
export const STREAM_METHOD_PATH: string = methodPath('Stream');
/** gRPC path of `RaftTransport.SendSnapshot` (client-streaming SnapshotChunk → SnapshotAck). */
export const SEND_SNAPSHOT_METHOD_PATH: string = methodPath('SendSnapshot');
/** gRPC path of `RaftTransport.LeaseForward` (unary LeaseForwardRequest → LeaseForwardResponse). */
export const LEASE_FORWARD_METHOD_PATH: string = methodPath('LeaseForward');
