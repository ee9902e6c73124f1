import { decodeBase64, encodeBase64 } from './base64';

/**
 * The two JWTs of the Vonage Voice API (telephony reference §2.4), Web Crypto only (runs in workerd and Node):
 * - signed webhooks: Vonage sends `Authorization: Bearer <JWT>` HS256-signed with the account's signature
 *   secret; we check the signature, the algorithm, `iat` freshness, `exp`, the `api_key` / `application_id`
 *   claims against the credential, and `payload_hash` (hex SHA-256 of the body) when present;
 * - REST calls: we sign an RS256 JWT with the application's private key (`application_id`, `iat`, `jti`, `exp`).
 */

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function base64UrlEncode(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

export function base64UrlDecode(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return decodeBase64(padded);
}

const encodeJsonPart = (value: unknown) => base64UrlEncode(utf8.encode(JSON.stringify(value)));

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(text)));
  let hex = '';
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

// ---- signed webhooks (HS256) ------------------------------------------------------------------------------

export interface VonageWebhookClaims {
  readonly iat: number;
  readonly exp?: number;
  readonly jti?: string;
  readonly iss?: string;
  readonly api_key?: string;
  readonly application_id?: string;
  readonly payload_hash?: string;
  readonly [claim: string]: unknown;
}

export type VonageSignatureFailure =
  /** No `Authorization: Bearer` header (Vonage sends unsigned callbacks only on an internal error). */
  | 'missing'
  /** Not three base64url parts of JSON, or not HS256. */
  | 'malformed'
  | 'bad-signature'
  /** `iat` too old or in the future, or `exp` passed. */
  | 'stale'
  /** `api_key` or `application_id` names another account or application than the credential. */
  | 'wrong-account'
  /** `payload_hash` does not match the body. */
  | 'payload-mismatch';

export type VonageSignatureResult = { readonly ok: true; readonly claims: VonageWebhookClaims } | { readonly ok: false; readonly reason: VonageSignatureFailure; readonly detail: string };

export interface VerifyVonageWebhookInput {
  /** The `Authorization` header as received. */
  readonly authorization: string | null | undefined;
  /** The account's signature secret (dashboard → settings), not the API secret. */
  readonly signatureSecret: string;
  /** The raw body ('' for GET). */
  readonly body: string;
  /** The query parameters, for a GET webhook whose `payload_hash` covers them. */
  readonly query?: URLSearchParams;
  /** The credential's API key / application id: when given, the token's claims must match them. */
  readonly apiKey?: string;
  readonly applicationId?: string;
  readonly nowMs: number;
  /** Oldest accepted `iat`; default 5 minutes. */
  readonly maxAgeMs?: number;
  /** Clock skew tolerated for an `iat` in the future; default 60 s. */
  readonly skewMs?: number;
}

const DEFAULT_MAX_AGE_MS = 5 * 60_000;
const DEFAULT_SKEW_MS = 60_000;

/** Checks a Vonage signed webhook. Never throws. */
export async function verifyVonageWebhook(input: VerifyVonageWebhookInput): Promise<VonageSignatureResult> {
  const fail = (reason: VonageSignatureFailure, detail: string): VonageSignatureResult => ({ ok: false, reason, detail });
  const token = /^Bearer\s+(\S+)\s*$/i.exec(input.authorization ?? '')?.[1];
  if (!token) return fail('missing', 'no "Authorization: Bearer <JWT>" header: enable signed webhooks on the Vonage application');
  if (!input.signatureSecret) return fail('bad-signature', 'no signature secret to check the token with');
  const parts = token.split('.');
  if (parts.length !== 3) return fail('malformed', 'the token is not a JWT (three dot-separated parts)');
  const [headerPart, claimsPart, signaturePart] = parts as [string, string, string];
  const header = parseJsonPart(headerPart);
  const claims = parseJsonPart(claimsPart);
  const signature = base64UrlDecode(signaturePart);
  if (!header || !claims || !signature) return fail('malformed', 'the token parts are not base64url JSON');
  // Only HS256: a token may not pick a weaker algorithm (or "none") for itself.
  if (header.alg !== 'HS256') return fail('malformed', `the token is signed with ${JSON.stringify(header.alg)}, not HS256`);

  let valid: boolean;
  try {
    const key = await crypto.subtle.importKey('raw', utf8.encode(input.signatureSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    // verify() compares in constant time.
    valid = await crypto.subtle.verify('HMAC', key, signature as Uint8Array<ArrayBuffer>, utf8.encode(`${headerPart}.${claimsPart}`));
  } catch {
    valid = false;
  }
  if (!valid) return fail('bad-signature', 'the token signature does not match the signature secret');

  const iat = claims.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return fail('malformed', 'the token has no numeric "iat" claim');
  const ageMs = input.nowMs - iat * 1000;
  if (ageMs > (input.maxAgeMs ?? DEFAULT_MAX_AGE_MS)) return fail('stale', `the token was issued ${Math.round(ageMs / 1000)} s ago (replayed, or the clocks disagree)`);
  if (-ageMs > (input.skewMs ?? DEFAULT_SKEW_MS)) return fail('stale', 'the token is issued in the future (check the server clock)');
  if (claims.exp !== undefined && (typeof claims.exp !== 'number' || claims.exp * 1000 <= input.nowMs)) return fail('stale', 'the token has expired');
  if (input.apiKey && claims.api_key !== undefined && claims.api_key !== input.apiKey) return fail('wrong-account', "the token's api_key is not the credential's apiKey");
  if (input.applicationId && claims.application_id !== undefined && claims.application_id !== input.applicationId) {
    return fail('wrong-account', "the token's application_id is not the credential's applicationId");
  }
  if (claims.payload_hash !== undefined) {
    if (typeof claims.payload_hash !== 'string') return fail('malformed', 'the "payload_hash" claim is not a string');
    if (!(await payloadMatches(claims.payload_hash.toLowerCase(), input.body, input.query))) return fail('payload-mismatch', 'the body does not match the token\'s payload_hash');
  }
  return { ok: true, claims: claims as VonageWebhookClaims };
}

/**
 * `payload_hash` is the SHA-256 of the JSON Vonage serialised (compact, keys in the order sent). The raw body
 * is that JSON; a body re-serialised by a proxy is accepted in its compact form, and a GET's hash is taken over
 * its query parameters as a JSON object.
 */
async function payloadMatches(expected: string, body: string, query: URLSearchParams | undefined): Promise<boolean> {
  const candidates = new Set<string>([body]);
  try {
    if (body) candidates.add(JSON.stringify(JSON.parse(body)));
  } catch {
    // not JSON: only the raw form counts
  }
  if (!body && query && [...query.keys()].length > 0) candidates.add(JSON.stringify(Object.fromEntries(query)));
  let matched = false;
  for (const candidate of candidates) matched = (await sha256Hex(candidate)) === expected || matched;
  return matched;
}

function parseJsonPart(part: string): Record<string, unknown> | undefined {
  const bytes = base64UrlDecode(part);
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(utf8Decoder.decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A token as Vonage would sign a webhook (for the simulated peer, fakes and tests). `payload_hash` is the
 * SHA-256 of `body` when one is given.
 */
export async function signVonageWebhook(input: { signatureSecret: string; claims: Record<string, unknown>; body?: string }): Promise<string> {
  const claims = { ...input.claims, ...(input.body !== undefined ? { payload_hash: await sha256Hex(input.body) } : {}) };
  const signingInput = `${encodeJsonPart({ alg: 'HS256', typ: 'JWT' })}.${encodeJsonPart(claims)}`;
  const key = await crypto.subtle.importKey('raw', utf8.encode(input.signatureSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return `${signingInput}.${base64UrlEncode(new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8.encode(signingInput))))}`;
}

// ---- application JWT for the REST API (RS256) -------------------------------------------------------------

export class VonageKeyError extends Error {
  override readonly name = 'VonageKeyError';
}

/**
 * The application's private key for Web Crypto. Vonage hands out PKCS#8 PEM (`BEGIN PRIVATE KEY`); a PKCS#1
 * key (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa` writes) is wrapped into PKCS#8 first, since Web Crypto
 * imports only PKCS#8. Literal `\n` sequences (a key pasted into JSON by hand) count as newlines.
 */
export async function importVonagePrivateKey(pem: string): Promise<CryptoKey> {
  const text = pem.replace(/\\n/g, '\n');
  const match = /-----BEGIN (RSA )?PRIVATE KEY-----([\s\S]*?)-----END (RSA )?PRIVATE KEY-----/.exec(text);
  if (!match) throw new VonageKeyError('the vonage privateKey is not a PEM private key (-----BEGIN PRIVATE KEY-----)');
  const der = decodeBase64(match[2]!.replace(/\s+/g, ''));
  if (!der || der.length === 0) throw new VonageKeyError('the vonage privateKey PEM body is not base64');
  const pkcs8 = match[1] ? wrapPkcs1(der) : der;
  try {
    return await crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  } catch (error) {
    throw new VonageKeyError(`the vonage privateKey is not an RSA private key Web Crypto can import (${(error as Error).message})`, { cause: error });
  }
}

/** PKCS#8 PrivateKeyInfo { version 0, AlgorithmIdentifier rsaEncryption NULL, OCTET STRING pkcs1 }. */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  const version = Uint8Array.of(0x02, 0x01, 0x00);
  const algorithm = Uint8Array.of(0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00);
  const octets = derTlv(0x04, pkcs1);
  return derTlv(0x30, concat(version, algorithm, octets));
}

function derTlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concat(Uint8Array.of(tag, ...length), content);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export interface VonageApplicationJwtInput {
  readonly applicationId: string;
  /** PEM (see importVonagePrivateKey) or an already imported key. */
  readonly privateKey: string | CryptoKey;
  readonly nowMs: number;
  /** Lifetime; default 5 minutes (one REST request needs seconds). */
  readonly ttlSeconds?: number;
}

/** `Authorization: Bearer` for the Voice REST API: RS256 over `application_id`, `iat`, `jti`, `exp`. */
export async function createVonageApplicationJwt(input: VonageApplicationJwtInput): Promise<string> {
  const key = typeof input.privateKey === 'string' ? await importVonagePrivateKey(input.privateKey) : input.privateKey;
  const iat = Math.floor(input.nowMs / 1000);
  const claims = { application_id: input.applicationId, iat, jti: crypto.randomUUID(), exp: iat + (input.ttlSeconds ?? 300) };
  const signingInput = `${encodeJsonPart({ alg: 'RS256', typ: 'JWT' })}.${encodeJsonPart(claims)}`;
  const signature = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key, utf8.encode(signingInput)));
  return `${signingInput}.${base64UrlEncode(signature)}`;
}
