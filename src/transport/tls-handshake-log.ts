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
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';

/** One refused handshake. */
export interface RefusedTlsHandshake {
  /** `host:port` of the connecting side, when known. */
  readonly remote: string;
  /**
   * Why: the certificate verification error when there is one (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`
   * for a certificate another CA signed), else the TLS error ("peer did not return a certificate").
   */
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
    watchRefusedHandshakes(listening as TlsServer, listener);
    installed = true;
  }
  return installed;
}

/**
 * Calls `listener` for every TLS handshake a Node TLS (or https, or secure HTTP/2) server refuses.
 * A client refused for its certificate is destroyed before `tlsClientError` fires, so its address
 * is remembered from the `connection` event, keyed by the raw socket the TLS socket wraps.
 */
export function watchRefusedHandshakes(server: TlsServer, listener: (refusal: RefusedTlsHandshake) => void): void {
  const addresses = new WeakMap<object, string>();
  server.on('connection', (raw: Socket) => addresses.set(raw, `${raw.remoteAddress ?? 'unknown'}:${raw.remotePort ?? 0}`));
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    const parent = (socket as unknown as { _parent?: object })._parent;
    const remote =
      (parent === undefined ? undefined : addresses.get(parent)) ??
      (socket.remoteAddress === undefined ? 'unknown' : `${socket.remoteAddress}:${socket.remotePort ?? 0}`);
    const verification = (socket as TLSSocket & { authorizationError?: Error | string | null }).authorizationError;
    const reason = verification === undefined || verification === null ? error.message.trim() : String(verification);
    listener({ remote, reason });
  });
}
