/**
 * etcd's Maintenance service (etcdserverpb.Maintenance) on an {@link EtcdClusterBackend}, after
 * etcd v3.4.23's etcdserver/api/v3rpc/maintenance.go:
 * - Status: version, dbSize, leader, raftIndex, raftTerm, raftAppliedIndex, isLearner, and
 *   `errors: ["etcdserver: no leader"]` when no leader is known (the leader field is then absent);
 * - Snapshot: a server stream of the backend's point-in-time copy in 32 KiB chunks, each with
 *   `remaining_bytes` (bytes still to come after this chunk), then ONE final message whose blob is
 *   the 32-byte SHA-256 of all data sent before it. etcdctl requires `total % 512 == 32`, so the
 *   backend's copy is a multiple of 512 bytes (the node pads its image, see
 *   src/node/snapshot-file.ts);
 * - Alarm: GET lists the alarms; ACTIVATE / DEACTIVATE go through the log. etcd 3.4.23 answers
 *   Alarm without a header (ETCD_WIRE_NOTES.md §3.2), and so does this service;
 * - HashKV: hash and compact revision of the MVCC history up to `revision`;
 * - MoveLeader: leader transfer; a follower answers FailedPrecondition "etcdserver: not leader";
 * - Defragment: compacts this member's storage;
 * - Hash (the whole backend's hash, deprecated in etcd) is not implemented: Unimplemented.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { EtcdClusterBackend } from './cluster-backend';
import { mvccErrorStatus, thrownErrorStatus, toServiceError } from './etcd-errors';
import { int32Field, int64BigIntField, int64NumberField, type ProtoObject } from './etcd-proto';
import { unary } from './cluster-service';
import { encodeHeader } from './kv-codec';
import type { ServiceLogger } from './kv-service';

/** etcd's snapshot send buffer (maintenance.go: 32 KiB). */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;

const ALARM_GET = 0;
const ALARM_ACTIVATE = 1;
const ALARM_DEACTIVATE = 2;

/** Builds the Maintenance service implementation. */
export function createMaintenanceService(backend: EtcdClusterBackend, options: { logger?: ServiceLogger; hasLeader: () => boolean }): grpc.UntypedServiceImplementation {
  const { logger, hasLeader } = options;
  const header = () => {
    const fields = backend.header();
    return encodeHeader(fields, fields.revision);
  };
  return {
    Status: unary(logger, 'Status', hasLeader, async () => {
      const status = await backend.status();
      const response: ProtoObject = {
        header: header(),
        version: status.version,
        dbSize: status.dbSizeBytes,
        raftIndex: status.raftIndex,
        raftTerm: status.raftTerm,
        raftAppliedIndex: status.raftAppliedIndex,
        dbSizeInUse: status.dbSizeInUseBytes,
      };
      if (status.leader !== 0n) response.leader = status.leader.toString();
      if (status.errors.length > 0) response.errors = [...status.errors];
      if (status.isLearner) response.isLearner = true;
      return response;
    }),
    Alarm: unary(logger, 'Alarm', hasLeader, async (request) => {
      const action = int32Field(request, 'action');
      const alarm = { memberId: int64BigIntField(request, 'memberID'), alarm: int32Field(request, 'alarm') };
      const list =
        action === ALARM_GET
          ? backend.alarms()
          : action === ALARM_ACTIVATE || action === ALARM_DEACTIVATE
            ? await backend.changeAlarm(action === ALARM_ACTIVATE ? 'activate' : 'deactivate', alarm)
            : [];
      const response: ProtoObject = {};
      if (list.length > 0) response.alarms = list.map((item) => ({ memberID: item.memberId.toString(), ...(item.alarm === 0 ? {} : { alarm: item.alarm }) }));
      return response;
    }),
    HashKV: (call: grpc.ServerUnaryCall<ProtoObject, ProtoObject>, callback: grpc.sendUnaryData<ProtoObject>) => {
      backend.hashKv(int64NumberField(call.request, 'revision')).then(
        (outcome) => {
          if (!outcome.ok) callback(toServiceError(mvccErrorStatus(outcome.error)));
          else callback(null, { header: encodeHeader(backend.header(), outcome.value.revision), hash: outcome.value.hash, compact_revision: outcome.value.compactRevision });
        },
        (error: unknown) => callback(toServiceError(thrownErrorStatus(error))),
      );
    },
    MoveLeader: unary(logger, 'MoveLeader', hasLeader, async (request) => {
      await backend.moveLeader(int64BigIntField(request, 'targetID'));
      return { header: header() };
    }),
    Defragment: unary(logger, 'Defragment', hasLeader, async () => {
      await backend.defragment();
      return { header: header() };
    }),
    Hash: (_call: grpc.ServerUnaryCall<ProtoObject, ProtoObject>, callback: grpc.sendUnaryData<ProtoObject>) => {
      callback(toServiceError({ code: grpc.status.UNIMPLEMENTED, details: 'raftkv: Hash is not implemented; use HashKV' }));
    },
    Snapshot: (call: grpc.ServerWritableStream<ProtoObject, ProtoObject>) => {
      void streamSnapshot(backend, call, logger);
    },
  };
}

async function streamSnapshot(backend: EtcdClusterBackend, call: grpc.ServerWritableStream<ProtoObject, ProtoObject>, logger: ServiceLogger | undefined): Promise<void> {
  let snapshot;
  try {
    snapshot = await backend.snapshot();
  } catch (error) {
    call.emit('error', toServiceError(thrownErrorStatus(error)));
    return;
  }
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
  });
  try {
    const digest = createHash('sha256');
    let remaining = snapshot.sizeBytes;
    let pending = Buffer.alloc(0);
    const send = async (chunk: Buffer) => {
      remaining -= chunk.length;
      digest.update(chunk);
      if (!call.write({ header: header(backend), remaining_bytes: remaining, blob: chunk })) {
        await new Promise<void>((resolve) => call.once('drain', resolve));
      }
    };
    for await (const piece of snapshot.body) {
      if (cancelled) return;
      pending = pending.length === 0 ? Buffer.from(piece) : Buffer.concat([pending, piece]);
      while (pending.length >= SNAPSHOT_CHUNK_BYTES) {
        await send(pending.subarray(0, SNAPSHOT_CHUNK_BYTES));
        pending = pending.subarray(SNAPSHOT_CHUNK_BYTES);
      }
    }
    if (pending.length > 0) await send(pending);
    if (remaining !== 0) throw new Error(`assertion failed: snapshot body differs from its announced size by ${remaining} bytes`);
    call.write({ header: header(backend), blob: digest.digest() });
    call.end();
  } catch (error) {
    logger?.error({ err: error }, 'etcd Snapshot stream failed');
    call.emit('error', toServiceError(thrownErrorStatus(error)));
  } finally {
    await snapshot.release();
  }
}

function header(backend: EtcdClusterBackend): ProtoObject {
  const fields = backend.header();
  return encodeHeader(fields, fields.revision);
}
