/**
 * Validation of membership input that arrives from outside: member IDs and peer URLs.
 *
 * Used by every gateway that accepts them (the HTTP API's `POST /<id>` and `DELETE /<id>`, the
 * CLI's `--id` and `--cluster`), so a value is checked once, the same way everywhere, and then
 * trusted. Failures throw a {@link RaftkvError} with code 'invalid-member-id' or
 * 'invalid-peer-url'.
 */
import { invalidMemberIdError, invalidPeerUrlError } from '../errors';

/** The largest member ID: etcd member IDs are unsigned 64-bit integers. */
export const MEMBER_ID_MAX = (1n << 64n) - 1n;

/**
 * Parses a member ID written in decimal: 1 to 2^64-1, digits only (no sign, no spaces, no hex;
 * leading zeros are accepted). 0 is refused because it means "no node" in Raft.
 * @throws RaftkvError 'invalid-member-id'
 */
export function parseMemberId(text: string): bigint {
  if (!/^[0-9]{1,40}$/.test(text)) throw invalidMemberIdError(text);
  const id = BigInt(text);
  if (id < 1n || id > MEMBER_ID_MAX) throw invalidMemberIdError(text);
  return id;
}

/** A validated peer URL. */
export interface PeerUrl {
  /** Normalised form `scheme://host:port` (lower-case scheme and host, no trailing slash). */
  readonly url: string;
  readonly protocol: 'http:' | 'https:';
  /** Host name or address as written in a URL (IPv6 addresses keep their brackets). */
  readonly host: string;
  readonly port: number;
}

/**
 * Parses a peer URL: `http://host:port` or `https://host:port` with an explicit port in
 * 1..65535 and nothing else (no credentials, no path other than "/", no query, no fragment).
 * Surrounding white space is ignored.
 * @throws RaftkvError 'invalid-peer-url'
 */
export function parsePeerUrl(text: string): PeerUrl {
  const input = text.trim();
  let parsed: URL;
  try {
    parsed = new URL(input);
  } catch {
    throw invalidPeerUrlError(input, 'not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidPeerUrlError(input, `scheme must be http or https, not ${parsed.protocol.replace(/:$/, '')}`);
  }
  if (parsed.username !== '' || parsed.password !== '') throw invalidPeerUrlError(input, 'credentials are not allowed');
  if (parsed.pathname !== '/' && parsed.pathname !== '') throw invalidPeerUrlError(input, 'a path is not allowed');
  if (parsed.search !== '' || parsed.hash !== '' || /[?#]/.test(input)) {
    throw invalidPeerUrlError(input, 'a query or fragment is not allowed');
  }
  if (parsed.hostname === '') throw invalidPeerUrlError(input, 'the host is missing');
  // URL drops a port equal to the scheme's default, so look for it in the text itself.
  const authority = input.slice(input.indexOf('//') + 2).split('/')[0] ?? '';
  const portMatch = /:([0-9]+)$/.exec(authority);
  if (portMatch === null || portMatch[1] === undefined) throw invalidPeerUrlError(input, 'the port is missing');
  const port = Number(portMatch[1]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidPeerUrlError(input, 'the port must be 1..65535');
  const protocol = parsed.protocol;
  return { url: `${protocol}//${parsed.hostname}:${port}`, protocol, host: parsed.hostname, port };
}
