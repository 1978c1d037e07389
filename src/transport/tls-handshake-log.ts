/**
 * Reports TLS handshakes a grpc-js server refused (a client without a certificate, or with one
 * the trusted CA did not sign), so that an operator sees who knocked and why.
 *
 * grpc-js refuses such connections silently: Node's TLS server emits `tlsClientError` and grpc-js
 * does not listen. grpc-js offers no public hook for it, so this reaches its listening HTTP/2
 * servers through the private `http2Servers` map (grpc-js 1.14). If a later grpc-js changes
 * that shape, nothing breaks: the function returns false and refusals are simply not logged
 * (the refusal itself is enforced by Node's TLS layer, not by this module).
 */
import type * as grpc from '@grpc/grpc-js';
import type { TLSSocket } from 'node:tls';

/** One refused handshake. */
export interface RefusedTlsHandshake {
  /** `host:port` of the connecting side, when known. */
  readonly remote: string;
  /** The TLS error, e.g. "peer did not return a certificate" or "certificate signature failure". */
  readonly reason: string;
}

/**
 * Calls `listener` for every TLS handshake `server` refuses from now on. Call it AFTER the
 * server's `bindAsync` resolved (the listening sockets exist only then). Returns whether the
 * hook could be installed.
 */
export function onRefusedTlsHandshakes(server: grpc.Server, listener: (refusal: RefusedTlsHandshake) => void): boolean {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) return false;
  let installed = false;
  for (const listening of http2Servers.keys()) {
    if (typeof (listening as { on?: unknown }).on !== 'function') continue;
    (listening as NodeJS.EventEmitter).on('tlsClientError', (error: Error, socket: TLSSocket) => {
      const remote = socket.remoteAddress === undefined ? 'unknown' : `${socket.remoteAddress}:${socket.remotePort ?? 0}`;
      listener({ remote, reason: error.message });
    });
    installed = true;
  }
  return installed;
}
