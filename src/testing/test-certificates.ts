/**
 * Throwaway certificates for TLS tests, made with the machine's `openssl` in a temp directory:
 * a CA, leaf certificates it signs (SAN IP:127.0.0.1, usable as server and client), and a second,
 * unrelated CA with its own leaf, for "signed by the wrong CA" cases. EC P-256 keys, valid two
 * days. The caller removes the directory with {@link TestCertificates.remove}.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A certificate and its key, as file paths and contents. */
export interface TestKeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** A CA that can sign leaf certificates. */
export interface TestCa {
  readonly certFile: string;
  readonly cert: Buffer;
  /** Signs a new leaf `name` (SAN IP:127.0.0.1, serverAuth and clientAuth). */
  issue(name: string): TestKeyPair;
}

/** A temp directory of certificates. */
export interface TestCertificates {
  readonly directory: string;
  /** Creates a new self-signed CA named `name`. */
  createCa(name: string): TestCa;
  /** Deletes the directory. */
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a fresh temp directory for certificates. */
export function createTestCertificates(): TestCertificates {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-tls-'));
  const leafExtensions = path.join(directory, 'leaf.ext');
  fs.writeFileSync(
    leafExtensions,
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n',
  );
  const file = (name: string): string => path.join(directory, name);
  return {
    directory,
    createCa(caName) {
      openssl(
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
          '-keyout', file(`${caName}.key`), '-out', file(`${caName}.crt`), '-subj', `/CN=${caName}`, '-days', '2'],
        directory,
      );
      return {
        certFile: file(`${caName}.crt`),
        cert: fs.readFileSync(file(`${caName}.crt`)),
        issue(name) {
          openssl(
            ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
              '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`],
            directory,
          );
          openssl(
            ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${caName}.crt`), '-CAkey', file(`${caName}.key`),
              '-CAcreateserial', '-out', file(`${name}.crt`), '-days', '2', '-extfile', leafExtensions],
            directory,
          );
          return {
            certFile: file(`${name}.crt`),
            keyFile: file(`${name}.key`),
            cert: fs.readFileSync(file(`${name}.crt`)),
            key: fs.readFileSync(file(`${name}.key`)),
          };
        },
      };
    },
    remove() {
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}
