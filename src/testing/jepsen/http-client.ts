/**
 * A minimal HTTP client for the fault-injection suite, built on node:http so that every way a
 * request can end is told apart: a response (status, body, the stable error-code header), a
 * connection refused before anything was sent, a timeout, or a reset after sending. The
 * workload needs exactly that distinction to classify an operation as ok, failed or
 * indeterminate. Each request uses a fresh connection (no keep-alive): a pooled socket to a
 * node that was killed or partitioned would blur "not sent" and "sent, no answer".
 */
import http from 'node:http';
import https from 'node:https';

/** Header carrying raftkv's stable error code on error responses (src/api/http/http-errors.ts). */
export const ERROR_CODE_HEADER = 'x-raftkv-error-code';

/** Where a node's HTTP API listens. */
export interface HttpEndpoint {
  readonly host: string;
  readonly port: number;
  /** Speak https, verifying the server against `ca` (and presenting `cert`/`key` if given). */
  readonly tls?: HttpClientTls;
}

/** PEM material of an https client. */
export interface HttpClientTls {
  /** CA bundle the server's certificate must chain to. */
  readonly ca: Buffer;
  /** Client certificate, for servers that require one (with `key`). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** How a request ended. */
export type HttpOutcome =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly body: string;
      /** The `X-Raftkv-Error-Code` header, if present. */
      readonly errorCode: string | undefined;
    }
  | {
      readonly kind: 'error';
      /** `ECONNREFUSED`, `ECONNRESET`, `TIMEOUT`, ... */
      readonly code: string;
      /** False only when the request certainly never left this process (connection refused). */
      readonly maybeSent: boolean;
      readonly message: string;
    };

/** Sends one request and resolves with how it ended; never rejects. */
export function httpRequest(
  endpoint: HttpEndpoint,
  method: string,
  path: string,
  body: string | undefined,
  timeoutMs: number,
): Promise<HttpOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: HttpOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = (endpoint.tls === undefined ? http : https).request(
      {
        ...(endpoint.tls === undefined ? {} : { ca: endpoint.tls.ca, cert: endpoint.tls.cert, key: endpoint.tls.key }),
        host: endpoint.host,
        port: endpoint.port,
        method,
        path,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const header = response.headers[ERROR_CODE_HEADER];
          settle({
            kind: 'response',
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            errorCode: typeof header === 'string' ? header : undefined,
          });
        });
        response.on('error', (error: NodeJS.ErrnoException) =>
          settle({ kind: 'error', code: error.code ?? 'ERESPONSE', maybeSent: true, message: error.message }),
        );
      },
    );
    const timer = setTimeout(() => {
      settle({ kind: 'error', code: 'TIMEOUT', maybeSent: true, message: `no response within ${timeoutMs}ms` });
      request.destroy();
    }, timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'EREQUEST';
      settle({ kind: 'error', code, maybeSent: code !== 'ECONNREFUSED', message: error.message });
    });
    request.end(body);
  });
}
