import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';

/**
 * What Sarvam's streaming STT (`/speech-to-text/ws`) and TTS (`/text-to-speech/ws`) sockets share: base URL,
 * the `Api-Subscription-Key` handshake header, language codes, and how status codes (refused handshakes,
 * `code` of error frames) and close frames become ProviderErrors (reference/providers.md §1.7, §2.6).
 */

export const SARVAM_ID = 'sarvamai';
export const SARVAM_BASE_URL = 'wss://api.sarvam.ai';
const CODE = 'SARVAMAI';
const MAX_DETAIL_CHARS = 200;

/** `endpoint` replaces scheme, host and port of the vendor's base URL; http(s) is accepted for ws(s). */
export function sarvamUrl(endpoint: string | undefined, path: string, query: Record<string, string>): string {
  let base: URL;
  try {
    base = new URL(endpoint ?? SARVAM_BASE_URL);
  } catch (cause) {
    throw new ProviderError(`${CODE}_BAD_ENDPOINT`, `the endpoint "${endpoint}" is not a URL`, false, 'bad-request', { cause });
  }
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  const search = new URLSearchParams(query).toString();
  return `${scheme}//${base.host}${path}${search ? `?${search}` : ''}`;
}

/** Server-side runtimes send the key as a header (browsers would use the `api-subscription-key.<key>` subprotocol). */
export function sarvamHeaders(apiKey: string): Record<string, string> {
  return { 'Api-Subscription-Key': apiKey };
}

export function requireSarvamKey(apiKey: string | undefined, stage: 'STT' | 'TTS'): string {
  if (!apiKey) {
    throw new ProviderError(`${CODE}_AUTH`, `no API key for sarvamai ${stage}: add a sarvamai credential to the project or set SARVAMAI_API_KEY`, false, 'auth');
  }
  return apiKey;
}

/**
 * Base languages Sarvam serves, all as `<base>-IN` (Odia is `od`, not ISO's `or`). The TTS accepts the first
 * eleven; STT (saaras:v3) all of them.
 */
const SARVAM_BASES = ['en', 'hi', 'bn', 'gu', 'kn', 'ml', 'mr', 'od', 'pa', 'ta', 'te', 'as', 'ur', 'ne', 'kok', 'ks', 'sd', 'sa', 'sat', 'mni', 'brx', 'mai', 'doi'];
const BASE_ALIASES: Readonly<Record<string, string>> = { or: 'od' };
const AUTO = new Set(['', 'auto', 'unknown', 'multi', 'detect']);

/**
 * The block's language as Sarvam's BCP-47 code: a known base language (any region: `en`, `en-US`, `hi`)
 * becomes `<base>-IN`, the only region Sarvam serves; `auto`/`unknown`/empty becomes `autoAs` (STT:
 * `unknown` = detect; TTS needs a language, `en-IN`); anything else is passed through for the server to judge.
 */
export function sarvamLanguage(language: string, autoAs: string): string {
  const trimmed = language.trim();
  if (AUTO.has(trimmed.toLowerCase())) return autoAs;
  const raw = (trimmed.split(/[-_]/)[0] ?? '').toLowerCase();
  const base = BASE_ALIASES[raw] ?? raw;
  return SARVAM_BASES.includes(base) ? `${base}-IN` : trimmed;
}

const AUTH_TEXT = /api.?key|subscription.?key|unauthori[sz]ed|forbidden|authenticat|credential/i;

/** One status code (HTTP on the handshake, numeric `code` of an error frame) → what the engine should do. */
export function sarvamStatusError(status: number | undefined, detail: string, where: string): ProviderError {
  const said = detail ? `: ${detail}` : '';
  if (status === 401 || status === 403) {
    return new ProviderError(`${CODE}_AUTH`, `${where} rejected the API key (${status})${said}. Check the sarvamai credential of the project.`, false, 'auth');
  }
  if (status === 402) return new ProviderError(`${CODE}_QUOTA`, `the sarvamai account is out of credits (402)${said}`, false, 'quota');
  if (status === 429) return new ProviderError(`${CODE}_RATE_LIMIT`, `${where} is rate-limiting (429)${said}; retrying`, true, 'rate-limit');
  if (status === 408) return new ProviderError(`${CODE}_TIMEOUT`, `${where} timed out (408)${said}`, true, 'timeout');
  if (status === undefined || status >= 500) {
    return new ProviderError(`${CODE}_UNAVAILABLE`, `${where} is unavailable (${status ?? 'no response'})${said}`, true, 'unavailable');
  }
  return new ProviderError(
    `${CODE}_BAD_REQUEST`,
    `${where} rejected the request (${status})${said}. Check the model, language, voice and options of the sarvamai block.`,
    false,
    'bad-request',
  );
}

/** The message of a refused handshake's body: JSON (`{error:{message}}`, `{message}`, `{detail}`) or text, bounded. */
export function handshakeDetail(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown>;
      const nested = o.error && typeof o.error === 'object' ? (o.error as Record<string, unknown>) : undefined;
      for (const value of [nested?.message, o.message, o.error, o.detail]) if (typeof value === 'string' && value) return value.slice(0, MAX_DETAIL_CHARS);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return text.slice(0, MAX_DETAIL_CHARS);
}

/**
 * An error frame's `code` and text → ProviderError. The code is an integer (TTS spec), a numeric string
 * (STT spec) or, should it ever be, a word: numeric codes are read as HTTP statuses; otherwise the text
 * decides, and an error nobody recognises is retryable (a new connection may well work).
 */
export function sarvamFrameError(code: unknown, text: string, where: string): ProviderError {
  const numeric = typeof code === 'number' ? code : typeof code === 'string' && /^\d{3}$/.test(code.trim()) ? Number(code) : undefined;
  const detail = [typeof code === 'string' && numeric === undefined ? code : '', text].filter(Boolean).join(' ').slice(0, MAX_DETAIL_CHARS);
  if (numeric !== undefined && numeric >= 400 && numeric < 600) return sarvamStatusError(numeric, detail, where);
  if (AUTH_TEXT.test(detail)) return sarvamStatusError(403, detail, where);
  if (/rate.?limit|too many|concurren/i.test(detail)) return sarvamStatusError(429, detail, where);
  if (/credit|quota|balance/i.test(detail)) return sarvamStatusError(402, detail, where);
  if (/timeout|timed out|too long|inactiv/i.test(detail)) return sarvamStatusError(408, detail, where);
  if (/invalid|unsupported|not supported|compatible|must be|required|too large|exceeds/i.test(detail)) return sarvamStatusError(400, detail, where);
  return new ProviderError(`${CODE}_SERVER_ERROR`, `${where} reported an error (${detail || 'no detail'}); reconnecting`, true, 'unavailable');
}

/**
 * A close we did not ask for. STT sockets live for the whole call and TTS sockets for many turns, so even a
 * 1000 from the server ends them early: retryable, except for closes that say our frames were wrong or the
 * key was refused.
 */
export function sarvamCloseError(code: number, reason: string, where: string): ProviderError {
  const said = reason ? ` "${reason}"` : '';
  if (code === 1002 || code === 1003 || code === 1007 || code === 1009 || code === 1010) {
    return new ProviderError(`${CODE}_BAD_REQUEST`, `${where} closed the socket with ${code}${said}: it did not accept what we sent`, false, 'bad-request');
  }
  if ((code === 1008 || code === 4001 || code === 4003) && AUTH_TEXT.test(reason)) {
    return new ProviderError(`${CODE}_AUTH`, `${where} closed the socket with ${code}${said}. Check the sarvamai credential of the project.`, false, 'auth');
  }
  const timeout = /idle|timeout|timed out|inactiv/i.test(reason);
  return new ProviderError(timeout ? `${CODE}_TIMEOUT` : `${CODE}_CLOSED`, `${where} closed the socket with ${code}${said}; reconnecting`, true, timeout ? 'timeout' : 'unavailable');
}

/** Frames we cannot read: the socket bases count and skip kind 'protocol' (one bad frame never ends a call). */
export function sarvamProtocolError(message: string, cause?: unknown): ProviderError {
  return new ProviderError(`${CODE}_PROTOCOL`, message, false, 'protocol', cause === undefined ? undefined : { cause });
}

/** A text frame as an object with a string `type`, or a protocol error naming what arrived. */
export function parseTypedFrame(data: string | Uint8Array, where: string): { type: string; data: unknown; raw: Record<string, unknown> } {
  if (typeof data !== 'string') throw sarvamProtocolError(`${where} sent a binary frame of ${data.byteLength} bytes; only JSON text frames are defined`);
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (cause) {
    throw sarvamProtocolError(`${where} sent a frame that is not JSON: ${data.slice(0, 80)}`, cause);
  }
  if (!json || typeof json !== 'object' || typeof (json as { type?: unknown }).type !== 'string') {
    throw sarvamProtocolError(`${where} sent a frame without a type: ${data.slice(0, 80)}`);
  }
  const raw = json as Record<string, unknown>;
  return { type: raw.type as string, data: raw.data, raw };
}

/** Error frames of both endpoints: `data.message` (TTS spec, field reports) or `data.error` (STT spec), `code` number or string. */
export const sarvamErrorData = z.object({
  message: z.string().nullish(),
  error: z.string().nullish(),
  code: z.union([z.number(), z.string()]).nullish(),
  request_id: z.string().nullish(),
});

export function errorFromFrame(data: unknown, where: string): ProviderError {
  const parsed = sarvamErrorData.safeParse(data ?? {});
  if (!parsed.success) throw sarvamProtocolError(`${where} sent a malformed error frame`);
  const { message, error, code } = parsed.data;
  return sarvamFrameError(code ?? undefined, [message, error].filter(Boolean).join(' '), where);
}

/** Zod issues on one line, `path message; ...`. */
export function zodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
}

export function sarvamOptionsError(error: z.ZodError, where: string): ProviderError {
  return new ProviderError(`${CODE}_BAD_OPTIONS`, `the options of the ${where} block are invalid: ${zodIssues(error)}`, false, 'bad-request');
}

/** Short, stable fingerprint of a secret: pool keys must tell keys apart without holding them in clear. */
export function keyFingerprint(secret: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < secret.length; i++) hash = Math.imul(hash ^ secret.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}
