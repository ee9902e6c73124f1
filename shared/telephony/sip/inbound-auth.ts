import { ipAllowed } from '../../tools/ip';
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

/**
 * Nonces we issue: `<issued ms, hex>.<random>.<HMAC-SHA-256 over both and the request's binding>`. Bound to the call
 * (Call-ID and source address: the retry after a challenge keeps its Call-ID), so a captured Authorization
 * header is useless for another call or from elsewhere; and used once (`consume`), so it cannot be replayed.
 */
export interface NonceIssuer {
  issue(nowMs: number, binding: string): Promise<string>;
  check(nonce: string, nowMs: number, binding: string): Promise<'current' | 'stale' | 'unknown'>;
  /** Marks an accepted nonce used; false when it already was (a replay). */
  consume(nonce: string, nowMs: number): boolean;
}

/** Used nonces remembered (each for its lifetime); beyond it the oldest go, which only makes them stale sooner. */
const MAX_USED_NONCES = 10_000;

/** A nonce answers challenges this long; older ones are `stale` (the client retries with the new one). */
export const NONCE_LIFETIME_MS = 5 * 60_000;

export async function createNonceIssuer(secret: Uint8Array, lifetimeMs = NONCE_LIFETIME_MS): Promise<NonceIssuer> {
  const key = await crypto.subtle.importKey('raw', secret as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sign = async (text: string) => toHex(new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(text))).subarray(0, 16));
  /** Nonce → when it stops mattering (insertion order = age order). */
  const used = new Map<string, number>();
  return {
    async issue(nowMs, binding) {
      // A random part too: two challenges of one call in the same millisecond are two nonces.
      const stamp = `${Math.floor(nowMs).toString(16)}.${toHex(crypto.getRandomValues(new Uint8Array(6)))}`;
      return `${stamp}.${await sign(`${stamp}|${binding}`)}`;
    },
    async check(nonce, nowMs, binding) {
      const match = /^(([0-9a-f]{1,13})\.[0-9a-f]{12})\.([0-9a-f]{32})$/.exec(nonce);
      if (!match) return 'unknown';
      if ((await sign(`${match[1]!}|${binding}`)) !== match[3]) return 'unknown';
      const age = nowMs - parseInt(match[2]!, 16);
      return age >= -60_000 && age <= lifetimeMs && !used.has(nonce) ? 'current' : 'stale';
    },
    consume(nonce, nowMs) {
      for (const [old, until] of used) {
        if (until > nowMs && used.size < MAX_USED_NONCES) break;
        used.delete(old);
      }
      if (used.has(nonce)) return false;
      used.set(nonce, nowMs + lifetimeMs + 60_000);
      return true;
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
  const binding = `${request.callId}|${source}`;
  let challenge: InboundTrunk | undefined;
  let why = 'the source address is not in any trunk allow-list';
  for (const trunk of trunks) {
    if (trunk.cidrs.length > 0 && !ipAllowed(source, trunk.cidrs)) continue;
    if (!trunk.digest) {
      if (trunk.cidrs.length > 0) return { ok: true, trunk: trunk.name };
      continue; // a trunk with neither check admits nobody (the REST API refuses to store one)
    }
    const header = getHeader(request, trunk.digest.challenge === 407 ? 'Proxy-Authorization' : 'Authorization');
    const verdict = header === undefined ? undefined : await checkDigest(header, request, trunk.digest, nonces, nowMs, binding);
    if (verdict?.ok) return { ok: true, trunk: trunk.name };
    challenge ??= trunk;
    why = verdict ? `digest credentials refused (${verdict.reason})` : 'credentials required';
    if (verdict?.reason === 'stale') return challengeFor(trunk, nonces, nowMs, binding, why, true);
  }
  if (challenge) return challengeFor(challenge, nonces, nowMs, binding, why, false);
  return { ok: false, status: 403, reason: why };
}

async function checkDigest(
  header: string,
  request: SipRequest,
  digest: NonNullable<InboundTrunk['digest']>,
  nonces: NonceIssuer,
  nowMs: number,
  binding: string,
): Promise<{ readonly ok: true } | { readonly ok: false; readonly reason: string }> {
  const credentials = parseDigestCredentials(header);
  if (isSipError(credentials)) return { ok: false, reason: 'malformed' };
  if (credentials.username !== digest.username) return { ok: false, reason: 'unknown-user' };
  // We challenge with qop="auth": a response without it (RFC 2069 style) binds no client nonce.
  if (credentials.qop !== 'auth') return { ok: false, reason: 'qop-required' };
  const nonceState = await nonces.check(credentials.nonce, nowMs, binding);
  const verdict = await verifyDigestCredentials(credentials, {
    realm: digest.realm,
    password: digest.password,
    method: request.method,
    requestUri: request.requestUri.raw,
    nonceIsCurrent: () => nonceState,
    algorithms: ['MD5', 'SHA-256'],
  });
  if (isSipError(verdict)) return { ok: false, reason: 'malformed' };
  if (verdict.ok && !nonces.consume(credentials.nonce, nowMs)) return { ok: false, reason: 'stale' };
  return verdict;
}

async function challengeFor(trunk: InboundTrunk, nonces: NonceIssuer, nowMs: number, binding: string, reason: string, stale: boolean): Promise<InboundVerdict> {
  const digest = trunk.digest!;
  const nonce = await nonces.issue(nowMs, binding);
  const value = `Digest realm="${digest.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  return { ok: false, status: digest.challenge, reason, header: [digest.challenge === 407 ? 'Proxy-Authenticate' : 'WWW-Authenticate', value] };
}
