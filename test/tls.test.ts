/**
 * TLS at process level (issue "etcd v3 API, part 2", TLS point), with throwaway certificates
 * made by `openssl`: a CA signs every node's certificate (SAN IP:127.0.0.1) and a client
 * certificate; a second, unrelated CA signs a "rogue" node certificate.
 *
 * The cluster runs peer TLS (https:// peer URLs, mutual TLS through the harness's TCP proxies)
 * and client TLS. Nodes 1, 2 (and 4) require client certificates (`--trusted-ca-file
 * --client-cert-auth`); node 3 serves TLS without asking for one, so both modes are exercised
 * in one cluster.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import type { Cluster } from '../src/testing/jepsen/cluster';
import { httpRequest } from '../src/testing/jepsen/http-client';
import { waitUntil } from '../src/testing/jepsen/wait-until';
import { clusterIdFor } from '../src/transport/cluster-id';
import { encodeMessageBatch } from '../src/transport/codec';
import { STREAM_METHOD_PATH } from '../src/transport/raft-proto';
import { makeMessage } from '../src/raft/message';
import { MessageType } from '../src/raft/types';
import { DEADLINE_MS, putOk, status, waitForLeader, waitForValue, withCluster } from './support/cluster-helpers';
import { createTestCertificates, type TestCa, type TestCertificates, type TestKeyPair } from '../src/testing/test-certificates';

const run = promisify(execFile);
const ETCDCTL = '/usr/bin/etcdctl';
/** Node IDs that require client certificates. */
const CLIENT_CERT_AUTH_IDS = new Set([1, 2, 4]);

describe('TLS (peer and client)', () => {
  let certificates: TestCertificates;
  let ca: TestCa;
  let clientPair: TestKeyPair;
  let roguePair: TestKeyPair;
  const nodePairs = new Map<number, TestKeyPair>();

  before(() => {
    certificates = createTestCertificates();
    ca = certificates.createCa('raftkv-test-ca');
    for (const id of [1, 2, 3, 4]) nodePairs.set(id, ca.issue(`node-${id}`));
    clientPair = ca.issue('client');
    roguePair = certificates.createCa('rogue-ca').issue('rogue-node');
  });
  after(() => certificates.remove());

  /** Every node's flags: peer TLS (node 4's peer certificate comes from the rogue CA) and client TLS. */
  function flagsFor(id: number, rogueFourth: boolean): string[] {
    const own = nodePairs.get(id)!;
    const peer = id === 4 && rogueFourth ? roguePair : own;
    return [
      '--peer-cert-file', peer.certFile,
      '--peer-key-file', peer.keyFile,
      '--peer-trusted-ca-file', ca.certFile,
      '--cert-file', own.certFile,
      '--key-file', own.keyFile,
      ...(CLIENT_CERT_AUTH_IDS.has(id) ? ['--trusted-ca-file', ca.certFile, '--client-cert-auth'] : []),
    ];
  }

  function withTlsCluster(body: (cluster: Cluster) => Promise<void>): Promise<void> {
    return withCluster(
      3,
      {
        peerScheme: 'https',
        extraFlagsFor: (id) => flagsFor(id, true),
        httpClientTls: { ca: ca.cert, cert: clientPair.cert, key: clientPair.key },
      },
      body,
    );
  }

  function etcdctl(cluster: Cluster, id: number, withClientCertificate: boolean, ...args: string[]): Promise<{ stdout: string }> {
    return run(
      ETCDCTL,
      [
        `--endpoints=https://${cluster.etcdEndpoint(id)}`,
        `--cacert=${ca.certFile}`,
        ...(withClientCertificate ? [`--cert=${clientPair.certFile}`, `--key=${clientPair.keyFile}`] : []),
        '--dial-timeout=3s',
        '--command-timeout=5s',
        ...args,
      ],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 },
    );
  }

  it('three nodes with peer and client TLS: https with the CA, etcd3 and etcdctl with certificates; no client certificate, no entry', async () => {
    await withTlsCluster(async (cluster) => {
      // The harness itself speaks https with the client certificate (health, status, PUT).
      await waitForLeader(cluster);
      await putOk(cluster, 1, '/tls-http', 'over-https');
      await waitForValue(cluster, 3, '/tls-http', 'over-https');

      const client = new Etcd3({
        hosts: [1, 2, 3].map((id) => cluster.etcdEndpoint(id)),
        credentials: { rootCertificate: ca.cert, certChain: clientPair.cert, privateKey: clientPair.key },
        dialTimeout: 5000,
      });
      try {
        await client.put('tls/etcd3').value('from-etcd3');
        assert.equal(await client.get('tls/etcd3').string(), 'from-etcd3');
        assert.equal(await client.get('/tls-http').string(), 'over-https');
      } finally {
        client.close();
      }

      await etcdctl(cluster, 2, true, 'put', 'tls/etcdctl', 'from-etcdctl');
      assert.equal((await etcdctl(cluster, 1, true, 'get', 'tls/etcdctl', '--print-value-only')).stdout.trim(), 'from-etcdctl');
      assert.equal((await etcdctl(cluster, 3, true, 'get', 'tls/etcd3', '--print-value-only')).stdout.trim(), 'from-etcd3');

      // Without a client certificate: refused where --client-cert-auth is on (1), served where it is off (3).
      const noCertificate = { ca: ca.cert };
      const refusedHttps = await httpRequest({ host: '127.0.0.1', port: cluster.httpEndpoint(1).port, tls: noCertificate }, 'GET', '/tls-http', undefined, 5000);
      assert.equal(refusedHttps.kind, 'error', `https without a client certificate got ${JSON.stringify(refusedHttps)}`);
      const plainHttp = await httpRequest({ host: '127.0.0.1', port: cluster.httpEndpoint(1).port }, 'GET', '/tls-http', undefined, 5000);
      assert.equal(plainHttp.kind, 'error', `plain http to an https API got ${JSON.stringify(plainHttp)}`);
      const servedHttps = await httpRequest({ host: '127.0.0.1', port: cluster.httpEndpoint(3).port, tls: noCertificate }, 'GET', '/tls-http', undefined, 5000);
      assert.equal(servedHttps.kind === 'response' ? servedHttps.body : servedHttps.code, 'over-https');

      await assert.rejects(etcdctl(cluster, 1, false, 'get', 'tls/etcd3'));
      assert.equal((await etcdctl(cluster, 3, false, 'get', 'tls/etcd3', '--print-value-only')).stdout.trim(), 'from-etcd3');
      const anonymous = new Etcd3({ hosts: [cluster.etcdEndpoint(1)], credentials: { rootCertificate: ca.cert }, dialTimeout: 2000 });
      try {
        await assert.rejects(anonymous.get('tls/etcd3').string());
      } finally {
        anonymous.close();
      }

      await waitUntil(
        () => cluster.logOf(1).includes('refused HTTP client TLS handshake') && cluster.logOf(1).includes('refused etcd client TLS handshake'),
        { timeoutMs: DEADLINE_MS, description: 'node 1 to log the refused client handshakes' },
      );
    });
  });

  it('a node whose peer certificate another CA signed cannot join, and a gRPC client without a valid certificate cannot send raft messages', async () => {
    await withTlsCluster(async (cluster) => {
      const leader = await waitForLeader(cluster);
      await putOk(cluster, leader, '/before', '1');
      const termBefore = (await status(cluster, leader)).term;

      const rogueId = await cluster.addMember(DEADLINE_MS);
      assert.equal(rogueId, 4);
      await putOk(cluster, leader, '/after', '2');
      await waitForValue(cluster, 1, '/after', '2');

      // Both directions fail at the handshake: 4 → i is refused by i's server (4's certificate is
      // not signed by the peer CA); i → 4 is refused by i's client (4's server certificate is not).
      const refusals = (id: number): number =>
        cluster.logOf(id).split('\n').filter((line) => line.includes('refused peer TLS handshake') && line.includes('UNABLE_TO_VERIFY_LEAF_SIGNATURE')).length;
      await waitUntil(() => [1, 2, 3].every((id) => refusals(id) >= 3), {
        timeoutMs: DEADLINE_MS,
        description: 'nodes 1-3 to refuse at least three handshakes of node 4 (certificate not signed by the peer CA) each',
      });
      for (const id of [1, 2, 3]) {
        assert.match(cluster.logOf(id), /"remote":"4".*"msg":"peer stream broken"|"msg":"peer stream broken".*"remote":"4"/, `node ${id} logs its failed stream to 4`);
      }

      // Node 4 is alive (its client API answers) but learned nothing: no cluster ID, no leader, no entry.
      const rogue = await status(cluster, 4);
      assert.equal(rogue.leader, null);
      assert.equal(rogue.commitIndex, 0);
      assert.equal(rogue.appliedIndex, 0);
      assert.doesNotMatch(cluster.logOf(4), /learned the cluster ID/);
      // The rest of the cluster went on without it.
      assert.ok((await status(cluster, leader)).commitIndex > 0);

      // A raw gRPC client on node 1's real peer port, with correct metadata and a heartbeat of an
      // enormous term: if it were delivered, node 1 would jump to that term.
      const clusterId = clusterIdFor([1n, 2n, 3n], 'raftkv-cluster');
      const hugeTerm = 1_000_000;
      const heartbeat = encodeMessageBatch([makeMessage(MessageType.MsgHeartbeat, 1n, { from: 99n, term: hugeTerm })]);
      const metadata = (): grpc.Metadata => {
        const result = new grpc.Metadata();
        result.set('raftkv-cluster-id', clusterId.toString());
        result.set('raftkv-sender-id', '99');
        result.set('raftkv-target-id', '1');
        return result;
      };
      const target = `127.0.0.1:${cluster.peerPortOf(1)}`;
      const attempt = (credentials: grpc.ChannelCredentials, write: boolean): Promise<{ admitted: boolean; error: grpc.ServiceError | null }> =>
        new Promise((resolve) => {
          const client = new grpc.Client(target, credentials);
          let admitted = false;
          const call = client.makeClientStreamRequest<Buffer, object>(STREAM_METHOD_PATH, (value) => value, () => ({}), metadata(), { deadline: Date.now() + 10_000 }, (error) => {
            client.close();
            resolve({ admitted, error });
          });
          call.on('metadata', () => {
            admitted = true;
            if (!write) call.cancel();
          });
          if (write) {
            call.write(Buffer.from(heartbeat));
            call.end();
          }
        });
      const refusedCredentials: Array<[string, grpc.ChannelCredentials]> = [
        ['plaintext', grpc.credentials.createInsecure()],
        ['TLS without a client certificate', grpc.credentials.createSsl(ca.cert)],
        ['TLS with the rogue CA\'s certificate', grpc.credentials.createSsl(ca.cert, roguePair.key, roguePair.cert)],
      ];
      for (const [name, credentials] of refusedCredentials) {
        const outcome = await attempt(credentials, true);
        assert.equal(outcome.admitted, false, `${name}: the stream must not be admitted`);
        assert.equal(outcome.error?.code, grpc.status.UNAVAILABLE, `${name}: ${outcome.error?.code} ${outcome.error?.details}`);
      }
      // Control: the same client with a certificate the peer CA signed is admitted (then cancels
      // without sending), so the refusals above are the certificate's doing.
      const control = await attempt(grpc.credentials.createSsl(ca.cert, nodePairs.get(2)!.key, nodePairs.get(2)!.cert), false);
      assert.equal(control.admitted, true, `a valid peer certificate must be admitted: ${control.error?.details}`);
      for (const id of [1, 2, 3]) {
        const term = (await status(cluster, id)).term;
        assert.ok(term < hugeTerm && term >= termBefore, `node ${id} is at term ${term}: the forged heartbeat was never delivered`);
      }
    });
  });
});
