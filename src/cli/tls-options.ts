/**
 * The TLS flags of node mode, with etcd's names and meaning, and the loading of their files.
 *
 * Client side (the etcd v3 gRPC API and the HTTP API):
 * - `--cert-file` and `--key-file` (both or neither): serve both client APIs over TLS
 *   (the HTTP API becomes https).
 * - `--trusted-ca-file`: the CA that client certificates must chain to. As in etcd
 *   (client/pkg/transport TLSInfo.ServerConfig), giving a trusted CA REQUIRES and verifies a client
 *   certificate, whether or not `--client-cert-auth` is also given.
 * - `--client-cert-auth`: require client certificates; needs `--trusted-ca-file` (etcd would fall
 *   back to the system roots; we refuse to guess).
 *
 * Peer side (the gRPC peer transport, server and client):
 * - `--peer-cert-file`, `--peer-key-file` and `--peer-trusted-ca-file`: all three or none. With
 *   them, peer traffic is mutual TLS: every node presents its certificate, and each side verifies
 *   the other's against the peer CA (the server requests and verifies client certificates), so a
 *   node without a certificate signed by the peer CA can neither send nor receive raft messages.
 *   Every `--cluster` URL must then be https://.
 * - `--peer-client-cert-auth`: accepted for etcd compatibility; peer TLS is always mutual here,
 *   so it is the default and cannot be switched off (given without peer TLS it is an error).
 *
 * Every file is read and parsed HERE, when the options are validated at start-up: a missing or
 * unreadable file, a PEM that does not parse, or a key that does not belong to its certificate
 * fails at once with a one-line error naming the flag and the file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { Command } from 'commander';

/** Client-API TLS (etcd gRPC and HTTP), with the files' contents. */
export interface ClientTlsOptions {
  /** PEM certificate chain the client APIs present. */
  readonly cert: Buffer;
  /** PEM private key of `cert`. */
  readonly key: Buffer;
  /** PEM CA bundle client certificates must chain to; set exactly when `clientCertAuth`. */
  readonly trustedCa: Buffer | undefined;
  /** Whether clients must present a certificate signed by `trustedCa`. */
  readonly clientCertAuth: boolean;
}

/** Peer TLS (the gRPC transport); always mutual, see the module overview. */
export interface PeerTlsOptions {
  /** PEM certificate chain this node presents to peers, as server and as client. */
  readonly cert: Buffer;
  /** PEM private key of `cert`. */
  readonly key: Buffer;
  /** PEM CA bundle every peer certificate must chain to. */
  readonly trustedCa: Buffer;
}

/** The TLS flags as commander hands them over. */
export interface RawTlsOptions {
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  clientCertAuth?: boolean;
  peerCertFile?: string;
  peerKeyFile?: string;
  peerTrustedCaFile?: string;
  peerClientCertAuth?: boolean;
}

/** A TLS validation failure; its message is one line, without the `error: ` prefix. */
export class TlsOptionsError extends Error {}

/** Registers the TLS flags on the node command. */
export function addTlsOptions(command: Command): Command {
  return command
    .option('--cert-file <path>', 'PEM certificate of the client APIs; with --key-file, the etcd API uses TLS and the HTTP API is https')
    .option('--key-file <path>', 'PEM private key of --cert-file')
    .option('--trusted-ca-file <path>', 'PEM CA bundle for client certificates; as in etcd, giving it requires a client certificate signed by it')
    .option('--client-cert-auth', 'require client certificates signed by --trusted-ca-file (needs --trusted-ca-file)')
    .option('--peer-cert-file <path>', 'PEM certificate of this node for peer traffic (server and client); needs --peer-key-file and --peer-trusted-ca-file, and https:// URLs in --cluster')
    .option('--peer-key-file <path>', 'PEM private key of --peer-cert-file')
    .option('--peer-trusted-ca-file <path>', 'PEM CA bundle every peer certificate must be signed by (peers verify each other)')
    .option('--peer-client-cert-auth', 'require peer client certificates: always on with peer TLS (accepted for etcd compatibility)');
}

/**
 * Validates the TLS flags and loads their files. `clusterUrls` are the normalised `--cluster`
 * URLs: with peer TLS they must all be https://, without it none may be.
 * Throws {@link TlsOptionsError} with a one-line message.
 */
export function validateTlsOptions(
  raw: RawTlsOptions,
  clusterUrls: readonly string[],
): { readonly clientTls: ClientTlsOptions | undefined; readonly peerTls: PeerTlsOptions | undefined } {
  return { clientTls: validateClientTls(raw), peerTls: validatePeerTls(raw, clusterUrls) };
}

function validateClientTls(raw: RawTlsOptions): ClientTlsOptions | undefined {
  requirePair('--cert-file', raw.certFile, '--key-file', raw.keyFile);
  if (raw.certFile === undefined || raw.keyFile === undefined) {
    if (raw.trustedCaFile !== undefined) throw new TlsOptionsError('--trusted-ca-file needs --cert-file and --key-file (client TLS)');
    if (raw.clientCertAuth === true) throw new TlsOptionsError('--client-cert-auth needs --cert-file, --key-file and --trusted-ca-file');
    return undefined;
  }
  if (raw.clientCertAuth === true && raw.trustedCaFile === undefined) {
    throw new TlsOptionsError('--client-cert-auth needs --trusted-ca-file (the CA client certificates must be signed by)');
  }
  const { cert, key } = loadKeyPair('--cert-file', raw.certFile, '--key-file', raw.keyFile);
  const trustedCa = raw.trustedCaFile === undefined ? undefined : loadCaBundle('--trusted-ca-file', raw.trustedCaFile);
  return { cert, key, trustedCa, clientCertAuth: trustedCa !== undefined };
}

function validatePeerTls(raw: RawTlsOptions, clusterUrls: readonly string[]): PeerTlsOptions | undefined {
  const given = [
    ['--peer-cert-file', raw.peerCertFile],
    ['--peer-key-file', raw.peerKeyFile],
    ['--peer-trusted-ca-file', raw.peerTrustedCaFile],
  ] as const;
  const missing = given.filter(([, value]) => value === undefined).map(([flag]) => flag);
  if (missing.length === given.length) {
    if (raw.peerClientCertAuth === true) {
      throw new TlsOptionsError('--peer-client-cert-auth needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file');
    }
    const secure = clusterUrls.find((url) => url.startsWith('https://'));
    if (secure !== undefined) {
      throw new TlsOptionsError(`--cluster URL ${secure} is https:// but peer TLS is off (give --peer-cert-file, --peer-key-file and --peer-trusted-ca-file)`);
    }
    return undefined;
  }
  if (missing.length > 0) {
    const present = given.filter(([, value]) => value !== undefined).map(([flag]) => flag);
    throw new TlsOptionsError(`${present.join(' and ')} given without ${missing.join(' and ')}: peer TLS needs all three`);
  }
  const plain = clusterUrls.find((url) => !url.startsWith('https://'));
  if (plain !== undefined) throw new TlsOptionsError(`--cluster URL ${plain} must be https:// when peer TLS is on`);
  const { cert, key } = loadKeyPair('--peer-cert-file', raw.peerCertFile as string, '--peer-key-file', raw.peerKeyFile as string);
  return { cert, key, trustedCa: loadCaBundle('--peer-trusted-ca-file', raw.peerTrustedCaFile as string) };
}

function requirePair(certFlag: string, certFile: string | undefined, keyFlag: string, keyFile: string | undefined): void {
  if (certFile !== undefined && keyFile === undefined) throw new TlsOptionsError(`${certFlag} given without ${keyFlag}`);
  if (keyFile !== undefined && certFile === undefined) throw new TlsOptionsError(`${keyFlag} given without ${certFlag}`);
}

/** Reads a file whole; the error names the flag and the file. */
function readFlagFile(flag: string, file: string): Buffer {
  if (file.trim() === '') throw new TlsOptionsError(`${flag} must not be empty`);
  try {
    return fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new TlsOptionsError(`${flag}: cannot read ${file}: ${code}`);
  }
}

/** Reads a certificate and its key and checks that they parse and belong together. */
function loadKeyPair(certFlag: string, certFile: string, keyFlag: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const cert = readFlagFile(certFlag, certFile);
  const key = readFlagFile(keyFlag, keyFile);
  let certificate: crypto.X509Certificate;
  try {
    certificate = new crypto.X509Certificate(cert);
  } catch {
    throw new TlsOptionsError(`${certFlag}: ${certFile} is not a PEM certificate`);
  }
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch {
    throw new TlsOptionsError(`${keyFlag}: ${keyFile} is not a PEM private key (encrypted keys are not supported)`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsOptionsError(`${keyFlag}: ${keyFile} is not the private key of ${certFlag} ${certFile}`);
  }
  return { cert, key };
}

/** Reads a PEM CA bundle and checks that it parses. */
function loadCaBundle(flag: string, file: string): Buffer {
  const bundle = readFlagFile(flag, file);
  try {
    new crypto.X509Certificate(bundle);
    tls.createSecureContext({ ca: bundle });
  } catch {
    throw new TlsOptionsError(`${flag}: ${file} is not a PEM certificate bundle`);
  }
  return bundle;
}
