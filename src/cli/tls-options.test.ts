/**
 * The TLS flags: what each combination means, and one-line errors that name the flag and the
 * file for every misconfiguration (checked at start-up, before anything listens).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { nodeHelp, parseNodeOptions } from './options';
import { createTestCertificates, type TestCa, type TestCertificates, type TestKeyPair } from '../testing/test-certificates';

const HTTPS_CLUSTER = ['--cluster', 'https://127.0.0.1:2380'];

describe('TLS flags', () => {
  let certificates: TestCertificates;
  let ca: TestCa;
  let node: TestKeyPair;
  let other: TestKeyPair;

  before(() => {
    certificates = createTestCertificates();
    ca = certificates.createCa('ca');
    node = ca.issue('node');
    other = ca.issue('other');
  });
  after(() => certificates.remove());

  function usageError(args: string[], pattern: RegExp): void {
    const result = parseNodeOptions(args);
    assert.equal(result.ok, false, `expected an error for ${args.join(' ')}`);
    if (result.ok) return;
    assert.equal(result.exitCode, 2);
    assert.doesNotMatch(result.message, /\n/, 'one line');
    assert.match(result.message, /^error: /);
    assert.match(result.message, pattern);
  }

  it('without TLS flags, options carry no TLS', () => {
    const result = parseNodeOptions([]);
    assert.ok(result.ok);
    assert.equal(result.options.clientTls, undefined);
    assert.equal(result.options.peerTls, undefined);
  });

  it('client TLS: cert and key serve TLS; a trusted CA (as in etcd) or --client-cert-auth requires client certificates', () => {
    const serverOnly = parseNodeOptions(['--cert-file', node.certFile, '--key-file', node.keyFile]);
    assert.ok(serverOnly.ok);
    assert.deepEqual(serverOnly.options.clientTls, { cert: node.cert, key: node.key, trustedCa: undefined, clientCertAuth: false });
    for (const extra of [['--trusted-ca-file', ca.certFile], ['--trusted-ca-file', ca.certFile, '--client-cert-auth']]) {
      const mutual = parseNodeOptions(['--cert-file', node.certFile, '--key-file', node.keyFile, ...extra]);
      assert.ok(mutual.ok);
      assert.equal(mutual.options.clientTls?.clientCertAuth, true);
      assert.deepEqual(mutual.options.clientTls?.trustedCa, ca.cert);
    }
  });

  it('peer TLS: all three files, https:// peer URLs', () => {
    const result = parseNodeOptions([
      ...HTTPS_CLUSTER,
      '--peer-cert-file', node.certFile, '--peer-key-file', node.keyFile, '--peer-trusted-ca-file', ca.certFile, '--peer-client-cert-auth',
    ]);
    assert.ok(result.ok);
    assert.deepEqual(result.options.peerTls, { cert: node.cert, key: node.key, trustedCa: ca.cert });
  });

  it('refuses a certificate without its key, and the reverse', () => {
    usageError(['--cert-file', node.certFile], /--cert-file given without --key-file/);
    usageError(['--key-file', node.keyFile], /--key-file given without --cert-file/);
    usageError([...HTTPS_CLUSTER, '--peer-cert-file', node.certFile, '--peer-trusted-ca-file', ca.certFile], /--peer-cert-file and --peer-trusted-ca-file given without --peer-key-file/);
  });

  it('refuses client-certificate flags without client TLS, and --client-cert-auth without a CA', () => {
    usageError(['--trusted-ca-file', ca.certFile], /--trusted-ca-file needs --cert-file and --key-file/);
    usageError(['--cert-file', node.certFile, '--key-file', node.keyFile, '--client-cert-auth'], /--client-cert-auth needs --trusted-ca-file/);
    usageError(['--peer-client-cert-auth'], /--peer-client-cert-auth needs --peer-cert-file/);
  });

  it('names the flag and the file that cannot be read or parsed, or a key that is not the certificate\'s', () => {
    const missing = path.join(certificates.directory, 'missing.pem');
    usageError(['--cert-file', missing, '--key-file', node.keyFile], new RegExp(`--cert-file: cannot read ${missing}: ENOENT`));
    usageError(['--cert-file', node.certFile, '--key-file', node.keyFile, '--trusted-ca-file', missing], new RegExp(`--trusted-ca-file: cannot read ${missing}`));
    const garbage = path.join(certificates.directory, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    usageError(['--cert-file', garbage, '--key-file', node.keyFile], new RegExp(`--cert-file: ${garbage} is not a PEM certificate`));
    usageError(['--cert-file', node.certFile, '--key-file', garbage], new RegExp(`--key-file: ${garbage} is not a PEM private key`));
    usageError(
      [...HTTPS_CLUSTER, '--peer-cert-file', node.certFile, '--peer-key-file', other.keyFile, '--peer-trusted-ca-file', ca.certFile],
      new RegExp(`--peer-key-file: ${other.keyFile} is not the private key of --peer-cert-file ${node.certFile}`),
    );
    usageError(
      [...HTTPS_CLUSTER, '--peer-cert-file', node.certFile, '--peer-key-file', node.keyFile, '--peer-trusted-ca-file', garbage],
      new RegExp(`--peer-trusted-ca-file: ${garbage} is not a PEM certificate bundle`),
    );
  });

  it('peer URLs must be https:// exactly when peer TLS is on', () => {
    usageError(['--peer-cert-file', node.certFile, '--peer-key-file', node.keyFile, '--peer-trusted-ca-file', ca.certFile], /--cluster URL http:\/\/127\.0\.0\.1:9021 must be https:\/\/ when peer TLS is on/);
    usageError(HTTPS_CLUSTER, /--cluster URL https:\/\/127\.0\.0\.1:2380 is https:\/\/ but peer TLS is off/);
  });

  it('--help documents every TLS flag', () => {
    const help = nodeHelp();
    for (const flag of ['--cert-file', '--key-file', '--trusted-ca-file', '--client-cert-auth', '--peer-cert-file', '--peer-key-file', '--peer-trusted-ca-file', '--peer-client-cert-auth']) {
      assert.match(help, new RegExp(`${flag}\\b`), flag);
    }
  });
});
