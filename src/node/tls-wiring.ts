/**
 * Turns the validated TLS options (src/cli/tls-options.ts) into the credentials and servers the
 * node runs with: mutual-TLS credentials for the peer transport, TLS credentials for the etcd
 * gRPC API, and an http or https server for the HTTP API. Files were read and checked at
 * start-up; nothing here touches the file system.
 */
import http from 'node:http';
import https from 'node:https';
import * as grpc from '@grpc/grpc-js';
import type { ClientTlsOptions, PeerTlsOptions } from '../cli/tls-options';
import { watchRefusedHandshakes } from '../transport/tls-handshake-log';

/**
 * Credentials of the peer transport: with peer TLS, the server REQUIRES a client certificate
 * signed by the peer CA (`checkClientCertificate = true`) and every outgoing call presents this
 * node's certificate and verifies the peer's against the same CA. Without it, nothing (the
 * transport's insecure defaults).
 */
export function peerTransportCredentials(
  peerTls: PeerTlsOptions | undefined,
): { serverCredentials?: grpc.ServerCredentials; channelCredentials?: grpc.ChannelCredentials } {
  if (peerTls === undefined) return {};
  return {
    serverCredentials: grpc.ServerCredentials.createSsl(peerTls.trustedCa, [{ private_key: peerTls.key, cert_chain: peerTls.cert }], true),
    channelCredentials: grpc.credentials.createSsl(peerTls.trustedCa, peerTls.key, peerTls.cert),
  };
}

/** Server credentials of the etcd gRPC API; undefined (insecure) without client TLS. */
export function etcdServerCredentials(clientTls: ClientTlsOptions | undefined): grpc.ServerCredentials | undefined {
  if (clientTls === undefined) return undefined;
  return grpc.ServerCredentials.createSsl(
    clientTls.trustedCa ?? null,
    [{ private_key: clientTls.key, cert_chain: clientTls.cert }],
    clientTls.clientCertAuth,
  );
}

/**
 * The server of the HTTP API: plain http without client TLS; https with it, which with client
 * certificate authentication refuses (at the handshake) every client whose certificate the
 * trusted CA did not sign. `onRefusedHandshake` hears of each refusal.
 */
export function createHttpApiServer(
  app: http.RequestListener,
  clientTls: ClientTlsOptions | undefined,
  onRefusedHandshake: (remote: string, reason: string) => void,
): http.Server | https.Server {
  if (clientTls === undefined) return http.createServer(app);
  const server = https.createServer(
    {
      cert: clientTls.cert,
      key: clientTls.key,
      ...(clientTls.trustedCa === undefined ? {} : { ca: clientTls.trustedCa }),
      requestCert: clientTls.clientCertAuth,
      rejectUnauthorized: clientTls.clientCertAuth,
    },
    app,
  );
  watchRefusedHandshakes(server, ({ remote, reason }) => onRefusedHandshake(remote, reason));
  return server;
}
