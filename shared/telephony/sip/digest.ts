import { md5Hex, toHex } from './md5';
import { SipError, clipForMessage, type SipErrorCode } from './sip-error';

/**
 * SIP digest authentication (RFC 3261 §22, RFC 2617; SHA-256 per RFC 8760 / RFC 7616; reference §6.6):
 * parse challenges and credentials, compute the response, verify a client's credentials. Pure, web-standard.
 */

const PROTOCOL = 'sip-digest';
const err = (code: SipErrorCode, message: string) => new SipError(PROTOCOL, code, message);

/** A header this long is not a digest header; bounds the parse. */
export const DIGEST_MAX_HEADER_CHARS = 4096;

export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';
const ALGORITHMS: readonly DigestAlgorithm[] = ['MD5', 'MD5-sess', 'SHA-256', 'SHA-256-sess'];

export interface DigestChallenge {
  readonly realm: string;
  readonly nonce: string;
  readonly opaque?: string;
  readonly algorithm: DigestAlgorithm;
  /** Offered qop values (`auth`, `auth-int`); empty for an RFC 2069-style challenge. */
  readonly qop: readonly string[];
  readonly stale: boolean;
  readonly domain?: string;
}

export interface DigestCredentials {
  readonly username: string;
  readonly realm: string;
  readonly nonce: string;
  readonly uri: string;
  /** Hex digest as the client sent it. */
  readonly response: string;
  readonly algorithm: DigestAlgorithm;
  readonly cnonce?: string;
  readonly qop?: 'auth';
  /** 8 hex digits. */
  readonly nc?: string;
  readonly opaque?: string;
}

/** `Digest k=v, k="v"` → lower-case parameter map; errors on anything else. */
function parseDigestParams(header: string): Map<string, string> | SipError {
  if (header.length > DIGEST_MAX_HEADER_CHARS) return err('too-large', `header of ${header.length} characters exceeds ${DIGEST_MAX_HEADER_CHARS}`);
  const match = /^\s*(\S+)\s+([\s\S]*)$/.exec(header);
  if (!match) return err('malformed', `expected "Digest <parameters>"; got "${clipForMessage(header)}"`);
  if (match[1]!.toLowerCase() !== 'digest') return err('unsupported', `scheme "${clipForMessage(match[1]!)}" is not Digest`);
  const params = new Map<string, string>();
  const text = match[2]!;
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /[\s,]/.test(text[i]!)) i += 1;
    if (i >= text.length) break;
    const nameMatch = /^([A-Za-z0-9\-_]+)\s*=\s*/.exec(text.slice(i));
    if (!nameMatch) return err('malformed', `bad digest parameter at "${clipForMessage(text.slice(i))}"`);
    const name = nameMatch[1]!.toLowerCase();
    i += nameMatch[0].length;
    let value = '';
    if (text[i] === '"') {
      i += 1;
      let closed = false;
      while (i < text.length) {
        const ch = text[i]!;
        if (ch === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (ch === '"') {
          closed = true;
          i += 1;
          break;
        } else {
          value += ch;
          i += 1;
        }
      }
      if (!closed) return err('malformed', `unterminated quoted value for "${name}"`);
    } else {
      const token = /^[^\s,"]*/.exec(text.slice(i))![0];
      if (!token) return err('malformed', `empty value for "${name}"`);
      value = token;
      i += token.length;
    }
    if (params.has(name)) return err('malformed', `parameter "${name}" appears twice`);
    params.set(name, value);
    while (i < text.length && /\s/.test(text[i]!)) i += 1;
    if (i < text.length && text[i] !== ',') return err('malformed', `expected "," after "${name}"; got "${clipForMessage(text.slice(i))}"`);
  }
  return params;
}

function parseAlgorithm(value: string | undefined): DigestAlgorithm | SipError {
  if (value === undefined) return 'MD5';
  const found = ALGORITHMS.find((a) => a.toLowerCase() === value.toLowerCase());
  return found ?? err('unsupported', `digest algorithm "${clipForMessage(value)}" is not one of ${ALGORITHMS.join(', ')}`);
}

/** A `WWW-Authenticate` / `Proxy-Authenticate` value. */
export function parseDigestChallenge(header: string): DigestChallenge | SipError {
  const params = parseDigestParams(header);
  if (params instanceof SipError) return params;
  const realm = params.get('realm');
  const nonce = params.get('nonce');
  if (realm === undefined) return err('missing', 'challenge has no realm');
  if (!nonce) return err('missing', 'challenge has no nonce');
  const algorithm = parseAlgorithm(params.get('algorithm'));
  if (algorithm instanceof SipError) return algorithm;
  const qop = (params.get('qop') ?? '').split(',').map((q) => q.trim().toLowerCase()).filter(Boolean);
  const opaque = params.get('opaque');
  const domain = params.get('domain');
  return {
    realm, nonce, algorithm, qop,
    stale: (params.get('stale') ?? '').toLowerCase() === 'true',
    ...(opaque !== undefined ? { opaque } : {}),
    ...(domain !== undefined ? { domain } : {}),
  };
}

/** An `Authorization` / `Proxy-Authorization` value. */
export function parseDigestCredentials(header: string): DigestCredentials | SipError {
  const params = parseDigestParams(header);
  if (params instanceof SipError) return params;
  for (const name of ['username', 'realm', 'nonce', 'uri', 'response']) {
    if (params.get(name) === undefined) return err('missing', `credentials have no ${name}`);
  }
  const algorithm = parseAlgorithm(params.get('algorithm'));
  if (algorithm instanceof SipError) return algorithm;
  const qop = params.get('qop')?.toLowerCase();
  if (qop !== undefined && qop !== 'auth') return err('unsupported', `qop "${clipForMessage(qop)}" is not supported (only auth)`);
  const nc = params.get('nc');
  const cnonce = params.get('cnonce');
  if (qop === 'auth') {
    if (!nc || !/^[0-9a-fA-F]{8}$/.test(nc)) return err('malformed', `qop=auth needs nc of 8 hex digits; got "${clipForMessage(nc ?? '')}"`);
    if (!cnonce) return err('missing', 'qop=auth needs a cnonce');
  }
  const response = params.get('response')!;
  if (!/^[0-9a-fA-F]+$/.test(response)) return err('malformed', `response "${clipForMessage(response)}" is not hex`);
  const opaque = params.get('opaque');
  return {
    username: params.get('username')!, realm: params.get('realm')!, nonce: params.get('nonce')!, uri: params.get('uri')!,
    response: response.toLowerCase(), algorithm,
    ...(cnonce !== undefined ? { cnonce } : {}),
    ...(qop === 'auth' ? { qop } : {}),
    ...(nc !== undefined ? { nc } : {}),
    ...(opaque !== undefined ? { opaque } : {}),
  };
}

const encoder = new TextEncoder();

async function hashHex(algorithm: DigestAlgorithm, text: string): Promise<string> {
  if (algorithm.startsWith('MD5')) return md5Hex(text);
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text))));
}

export interface DigestInput {
  readonly algorithm: DigestAlgorithm;
  readonly username: string;
  readonly realm: string;
  readonly password: string;
  readonly method: string;
  readonly uri: string;
  readonly nonce: string;
  readonly qop?: 'auth';
  readonly nc?: string;
  readonly cnonce?: string;
}

/** The `response` value (RFC 2617 §3.2.2.1; RFC 7616 §3.4.1 for SHA-256). */
export async function computeDigestResponse(input: DigestInput): Promise<string | SipError> {
  if (input.qop === 'auth' && (!input.nc || !input.cnonce)) return err('invalid-argument', 'qop=auth needs nc and cnonce');
  if (input.algorithm.endsWith('-sess') && !input.cnonce) return err('invalid-argument', `${input.algorithm} needs a cnonce`);
  const algorithm = input.algorithm;
  let ha1 = await hashHex(algorithm, `${input.username}:${input.realm}:${input.password}`);
  if (algorithm.endsWith('-sess')) ha1 = await hashHex(algorithm, `${ha1}:${input.nonce}:${input.cnonce}`);
  const ha2 = await hashHex(algorithm, `${input.method}:${input.uri}`);
  const tail = input.qop === 'auth' ? `${input.nonce}:${input.nc}:${input.cnonce}:auth:${ha2}` : `${input.nonce}:${ha2}`;
  return hashHex(algorithm, `${ha1}:${tail}`);
}

const quote = (value: string) => `"${value.replace(/(["\\])/g, '\\$1')}"`;

/** The `Authorization` value answering `challenge` (qop=auth when offered, as RFC 3261 §22.4 asks). */
export async function buildAuthorization(
  challenge: DigestChallenge,
  request: { readonly method: string; readonly uri: string; readonly username: string; readonly password: string; readonly cnonce: string; readonly nc?: number },
): Promise<string | SipError> {
  const qop = challenge.qop.includes('auth') ? 'auth' : undefined;
  if (!qop && challenge.qop.length > 0) return err('unsupported', `challenge offers qop ${challenge.qop.join(',')}; only auth is supported`);
  const nc = (request.nc ?? 1).toString(16).padStart(8, '0');
  const response = await computeDigestResponse({
    algorithm: challenge.algorithm, username: request.username, realm: challenge.realm, password: request.password,
    method: request.method, uri: request.uri, nonce: challenge.nonce,
    ...(qop ? { qop, nc, cnonce: request.cnonce } : challenge.algorithm.endsWith('-sess') ? { cnonce: request.cnonce } : {}),
  });
  if (response instanceof SipError) return response;
  const parts = [
    `username=${quote(request.username)}`, `realm=${quote(challenge.realm)}`, `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(request.uri)}`, `response=${quote(response)}`, `algorithm=${challenge.algorithm}`,
  ];
  if (qop || challenge.algorithm.endsWith('-sess')) parts.push(`cnonce=${quote(request.cnonce)}`);
  if (qop) parts.push(`qop=${qop}`, `nc=${nc}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return `Digest ${parts.join(', ')}`;
}

/** Compares two strings in time that depends only on their lengths, so a wrong guess leaks no prefix. */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i += 1) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

export type DigestVerdict =
  | { readonly ok: true }
  /** `stale`: right password, old nonce: challenge again with `stale=true` (RFC 2617 §3.2.1). */
  | { readonly ok: false; readonly reason: 'wrong-realm' | 'wrong-algorithm' | 'unknown-nonce' | 'wrong-response' | 'uri-mismatch' | 'stale' };

/**
 * Checks a client's credentials against the stored password. `nonceIsCurrent` is the caller's nonce store
 * (issued by us, not expired, nc not replayed); the request method and URI bind the response to this request.
 */
export async function verifyDigestCredentials(
  credentials: DigestCredentials,
  expected: { readonly realm: string; readonly password: string; readonly method: string; readonly requestUri: string; readonly nonceIsCurrent: (nonce: string) => 'current' | 'stale' | 'unknown'; readonly algorithms?: readonly DigestAlgorithm[] },
): Promise<DigestVerdict | SipError> {
  if (credentials.realm !== expected.realm) return { ok: false, reason: 'wrong-realm' };
  // The client must use an algorithm we challenged with, or it could downgrade SHA-256 to MD5.
  if (!(expected.algorithms ?? ['MD5']).includes(credentials.algorithm)) return { ok: false, reason: 'wrong-algorithm' };
  const nonceState = expected.nonceIsCurrent(credentials.nonce);
  if (nonceState === 'unknown') return { ok: false, reason: 'unknown-nonce' };
  // RFC 3261 §22.4 leaves uri comparison to the server; a mismatch means the response was made for another request.
  if (credentials.uri !== expected.requestUri) return { ok: false, reason: 'uri-mismatch' };
  const computed = await computeDigestResponse({
    algorithm: credentials.algorithm, username: credentials.username, realm: credentials.realm, password: expected.password,
    method: expected.method, uri: credentials.uri, nonce: credentials.nonce,
    ...(credentials.qop ? { qop: credentials.qop } : {}),
    ...(credentials.nc !== undefined ? { nc: credentials.nc } : {}),
    ...(credentials.cnonce !== undefined ? { cnonce: credentials.cnonce } : {}),
  });
  if (computed instanceof SipError) return computed;
  if (!constantTimeEqual(computed, credentials.response)) return { ok: false, reason: 'wrong-response' };
  return nonceState === 'stale' ? { ok: false, reason: 'stale' } : { ok: true };
}
