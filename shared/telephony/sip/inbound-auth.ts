import { ipAllowed } from '../exotel-webhooks';
import { parseDigestCredentials, verifyDigestCredentials } from './digest';
import { getHeader, type SipRequest } from './message';
import { isSipError } from './sip-error';
import { toHex } from './md5';

/**
 * Who may call a number over SIP: the trunks that may carry it, each with an IP allow-list and/or a digest
 * challenge (the password comes from the credential store, resolved by the caller). Closed by default: no
 * trunk that admits the request → 403.
 */
export interface InboundTrunk {
  readonly name: string;
  /** CIDRs (a bare address is one host); empty: any address, then digest decides. */
  readonly cidrs: readonly string[];
  readonly digest?: { readonly username: string; readonly password: string; readonly realm: string; readonly challenge: 401 | 407 };
}

export type InboundVerdict =
  | { readonly ok: true; readonly trunk: string }
  | { readonly ok: false; readonly status: 403; readonly reason: string }
  /** Answer with this challenge header (a request without credentials, stale or wrong ones). */
  | { readonly ok: false; readonly status: 401 | 407; readonly reason: string; readonly header: readonly [string, string] };

/** Nonces we issue: `<issued ms, hex>.<HMAC-SHA-256 over it>`, stateless so any node can verify its own. */
export interface NonceIssuer {
  issue(nowMs: number): Promise<string>;
  check(nonce: string, nowMs: number): Promise<'current' | 'stale' | 'unknown'>;
}

/** A nonce answers challenges this long; older ones are `stale` (the client retries with the new one). */
export const NONCE_LIFETIME_MS = 5 * 60_000;

export async function createNonceIssuer(secret: Uint8Array, lifetimeMs = NONCE_LIFETIME_MS): Promise<NonceIssuer> {
  const key = await crypto.subtle.importKey('raw', secret as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sign = async (text: string) => toHex(new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(text))).subarray(0, 16));
  return {
    async issue(nowMs) {
      const stamp = Math.floor(nowMs).toString(16);
      return `${stamp}.${await sign(stamp)}`;
    },
    async check(nonce, nowMs) {
      const match = /^([0-9a-f]{1,13})\.([0-9a-f]{32})$/.exec(nonce);
      if (!match) return 'unknown';
      if ((await sign(match[1]!)) !== match[2]) return 'unknown';
      const age = nowMs - parseInt(match[1]!, 16);
      return age >= -60_000 && age <= lifetimeMs ? 'current' : 'stale';
    },
  };
}

/**
 * The verdict for one INVITE from `source`: the first trunk whose allow-list admits the address and whose
 * digest (if it has one) the request's credentials satisfy. When a digest trunk admits the address but the
 * credentials are missing, stale or wrong, the answer is that trunk's challenge.
 */
export async function authorizeInbound(
  request: SipRequest,
  source: string,
  trunks: readonly InboundTrunk[],
  nonces: NonceIssuer,
  nowMs: number,
): Promise<InboundVerdict> {
  if (trunks.length === 0) return { ok: false, status: 403, reason: 'no SIP trunk is configured for this number' };
  let challenge: InboundTrunk | undefined;
  let why = 'the source address is not in any trunk allow-list';
  for (const trunk of trunks) {
    if (trunk.cidrs.length > 0 && !ipAllowed(source, trunk.cidrs)) continue;
    if (!trunk.digest) {
      if (trunk.cidrs.length > 0) return { ok: true, trunk: trunk.name };
      continue; // a trunk with neither check admits nobody (the REST API refuses to store one)
    }
    const header = getHeader(request, trunk.digest.challenge === 407 ? 'Proxy-Authorization' : 'Authorization');
    const verdict = header === undefined ? undefined : await checkDigest(header, request, trunk.digest, nonces, nowMs);
    if (verdict?.ok) return { ok: true, trunk: trunk.name };
    challenge ??= trunk;
    why = verdict ? `digest credentials refused (${verdict.reason})` : 'credentials required';
    if (verdict?.reason === 'stale') return challengeFor(trunk, nonces, nowMs, why, true);
  }
  if (challenge) return challengeFor(challenge, nonces, nowMs, why, false);
  return { ok: false, status: 403, reason: why };
}

async function checkDigest(
  header: string,
  request: SipRequest,
  digest: NonNullable<InboundTrunk['digest']>,
  nonces: NonceIssuer,
  nowMs: number,
): Promise<{ readonly ok: true } | { readonly ok: false; readonly reason: string }> {
  const credentials = parseDigestCredentials(header);
  if (isSipError(credentials)) return { ok: false, reason: 'malformed' };
  if (credentials.username !== digest.username) return { ok: false, reason: 'unknown-user' };
  const nonceState = await nonces.check(credentials.nonce, nowMs);
  const verdict = await verifyDigestCredentials(credentials, {
    realm: digest.realm,
    password: digest.password,
    method: request.method,
    requestUri: request.requestUri.raw,
    nonceIsCurrent: () => nonceState,
    algorithms: ['MD5', 'SHA-256'],
  });
  return isSipError(verdict) ? { ok: false, reason: 'malformed' } : verdict;
}

async function challengeFor(trunk: InboundTrunk, nonces: NonceIssuer, nowMs: number, reason: string, stale: boolean): Promise<InboundVerdict> {
  const digest = trunk.digest!;
  const nonce = await nonces.issue(nowMs);
  const value = `Digest realm="${digest.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  return { ok: false, status: digest.challenge, reason, header: [digest.challenge === 407 ? 'Proxy-Authenticate' : 'WWW-Authenticate', value] };
}
