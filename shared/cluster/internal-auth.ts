/**
 * Signed node-to-node requests (the edge asking a media node to pre-warm a call): HMAC-SHA256 with the
 * deployment's INTERNAL_SECRET, Web Crypto only, so the Worker signs and the node verifies with this one file.
 *
 * Signed text: `METHOD\nPATH\nTIMESTAMP\nBODY`
 *   - METHOD upper case; PATH the route path with its query, as the receiving app routes it (`/internal/prewarm`),
 *     not a full URL, so a proxy or a different public host in front of the node does not break it;
 *   - TIMESTAMP epoch milliseconds as a decimal integer, sent in `X-Internal-Timestamp`;
 *   - BODY the exact body bytes as UTF-8 text (empty for none).
 * The signature goes in `X-Internal-Signature` as `v1=<64 lower-case hex digits>` (the prefix leaves room for
 * a future scheme without ambiguity).
 *
 * Checks on receipt: both headers present and well formed; the timestamp within ±60 s of the receiver's clock
 * (nodes and the edge run NTP-synced clocks; the node registry already relies on that); the MAC verified with
 * `crypto.subtle.verify`, which compares in constant time (never a string `===` on hex). Replay inside the
 * window is refused by an optional `ReplayGuard` (the node keeps one in memory): a captured request could
 * otherwise be re-sent for up to a minute.
 */

/** The node route the edge calls once it chose a node for a new call (media-node/internal-routes.ts). */
export const PREWARM_PATH = '/internal/prewarm';

export const INTERNAL_TIMESTAMP_HEADER = 'X-Internal-Timestamp';
export const INTERNAL_SIGNATURE_HEADER = 'X-Internal-Signature';
/** How far the sender's timestamp may be from the receiver's clock, either way. */
export const INTERNAL_MAX_SKEW_MS = 60_000;
/** Both ends refuse a shorter secret: it would be guessable offline from one captured request. */
export const MIN_INTERNAL_SECRET_LENGTH = 32;

const SIGNATURE_PREFIX = 'v1=';
const SIGNATURE = /^v1=([0-9a-f]{64})$/;
const TIMESTAMP = /^\d{1,16}$/;

export interface InternalRequestParts {
  readonly method: string;
  /** Path and query as the receiving app routes it, e.g. `/internal/prewarm`. */
  readonly path: string;
  /** The exact body text ('' for none). */
  readonly body: string;
}

export type InternalAuthFailure = 'missing' | 'malformed' | 'stale' | 'bad-signature' | 'replayed';
export type InternalAuthResult = { readonly ok: true } | { readonly ok: false; readonly reason: InternalAuthFailure };

/** Remembers signatures seen within the skew window (see `createReplayGuard`). */
export interface ReplayGuard {
  /** True the first time `signature` is presented within its window; false for a repeat. */
  firstUse(signature: string, timestampMs: number, nowMs: number): boolean;
}

const keys = new Map<string, Promise<CryptoKey>>();

/** One imported key per secret (importKey is async; signing a burst of pre-warms should not redo it). */
function hmacKey(secret: string): Promise<CryptoKey> {
  if (typeof secret !== 'string' || secret.length < MIN_INTERNAL_SECRET_LENGTH) {
    return Promise.reject(new RangeError(`INTERNAL_SECRET must be at least ${MIN_INTERNAL_SECRET_LENGTH} characters`));
  }
  let key = keys.get(secret);
  if (!key) {
    key = globalThis.crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    // A handful of secrets per process at most (rotation); the bound is only a guard.
    if (keys.size >= 8) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

function signedText(parts: InternalRequestParts, timestamp: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${parts.method.toUpperCase()}\n${parts.path}\n${timestamp}\n${parts.body}`);
}

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** The two headers that sign this request now. */
export async function signInternalRequest(secret: string, parts: InternalRequestParts, nowMs: number = Date.now()): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(nowMs));
  const mac = await globalThis.crypto.subtle.sign('HMAC', await hmacKey(secret), signedText(parts, timestamp));
  return { [INTERNAL_TIMESTAMP_HEADER]: timestamp, [INTERNAL_SIGNATURE_HEADER]: `${SIGNATURE_PREFIX}${toHex(new Uint8Array(mac))}` };
}

export interface VerifyInternalOptions {
  readonly timestamp: string | null | undefined;
  readonly signature: string | null | undefined;
  readonly nowMs?: number;
  readonly replayGuard?: ReplayGuard;
}

/** Whether the request carries a valid, fresh signature by the holder of `secret`. Never throws for bad input. */
export async function verifyInternalRequest(secret: string, parts: InternalRequestParts, options: VerifyInternalOptions): Promise<InternalAuthResult> {
  const { timestamp, signature } = options;
  if (!timestamp || !signature) return { ok: false, reason: 'missing' };
  const match = SIGNATURE.exec(signature.trim().toLowerCase());
  if (!TIMESTAMP.test(timestamp) || !match) return { ok: false, reason: 'malformed' };
  const nowMs = options.nowMs ?? Date.now();
  const timestampMs = Number(timestamp);
  if (Math.abs(nowMs - timestampMs) > INTERNAL_MAX_SKEW_MS) return { ok: false, reason: 'stale' };
  const valid = await globalThis.crypto.subtle.verify('HMAC', await hmacKey(secret), fromHex(match[1]!), signedText(parts, timestamp));
  if (!valid) return { ok: false, reason: 'bad-signature' };
  // Only a valid signature is remembered: garbage cannot fill the guard.
  if (options.replayGuard && !options.replayGuard.firstUse(match[1]!, timestampMs, nowMs)) return { ok: false, reason: 'replayed' };
  return { ok: true };
}

/**
 * An in-memory replay guard: a signature is remembered until its timestamp leaves the skew window. Bounded:
 * past `maxEntries` live signatures the oldest is forgotten (that one could then be replayed once within
 * its remaining window; the bound is far above any real pre-warm rate).
 */
export function createReplayGuard(options: { maxEntries?: number; windowMs?: number } = {}): ReplayGuard & { readonly size: number } {
  const maxEntries = options.maxEntries ?? 10_000;
  const windowMs = options.windowMs ?? INTERNAL_MAX_SKEW_MS;
  const seen = new Map<string, number>(); // signature → forget after (epoch ms)
  return {
    get size() {
      return seen.size;
    },
    firstUse(signature, timestampMs, nowMs) {
      for (const [key, forgetAt] of seen) {
        if (forgetAt > nowMs) continue;
        seen.delete(key);
      }
      if (seen.has(signature)) return false;
      while (seen.size >= maxEntries) {
        const oldest = seen.keys().next();
        if (oldest.done) break;
        seen.delete(oldest.value);
      }
      seen.set(signature, timestampMs + windowMs);
      return true;
    },
  };
}
