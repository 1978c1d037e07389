/**
 * The gRPC client of one peer cache node (`CachePeer` in proto/cache.proto).
 *
 * EVERY call carries a deadline (`deadlineMs`, 500 ms by default in the CLI): a dead or hanging
 * peer costs a request at most that long, after which the group falls back to a local load.
 * A malformed answer fails the call (the response deserializer throws; grpc-js reports it as
 * INTERNAL), so garbage is handled like any other failure.
 */
import * as grpc from '@grpc/grpc-js';
import {
  PEER_GET_PATH,
  PEER_SET_PATH,
  decodeGetResponse,
  decodeSetResponse,
  encodeGetRequest,
  encodeSetRequest,
  type PeerGetResponse,
  type PeerSetRequest,
  type PeerSetResponse,
} from './cache-proto';
import type { PeerClient } from './group';

/** A `CachePeer` client for one address; close it when the peer leaves the ring. */
export class GrpcPeerClient implements PeerClient {
  private readonly client: grpc.Client;

  constructor(
    readonly address: string,
    private readonly deadlineMs: number,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      // Reconnect quickly to a peer that comes back; the ring decides whether we try at all.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.enable_channelz': 0,
    });
  }

  /** `CachePeer.Get` with the deadline. */
  get(group: string, key: string): Promise<PeerGetResponse> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(PEER_GET_PATH, encodeGetRequest, decodeGetResponse, { group, key }, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }, (error, response) => {
        if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
        else resolve(response);
      });
    });
  }

  /** `CachePeer.Set` with the deadline. */
  set(request: PeerSetRequest): Promise<PeerSetResponse> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(PEER_SET_PATH, encodeSetRequest, decodeSetResponse, request, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }, (error, response) => {
        if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
        else resolve(response);
      });
    });
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
