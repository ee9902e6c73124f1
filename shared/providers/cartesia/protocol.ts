import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';

/**
 * What Cartesia's STT (Ink) and TTS (Sonic) sockets share: base URL, handshake headers, API version, and how
 * HTTP-style status codes (handshake refusals, `status_code` of error frames) become ProviderErrors.
 */

export const CARTESIA_ID = 'cartesia';
export const CARTESIA_BASE_URL = 'wss://api.cartesia.ai';
/**
 * The API version sent as `Cartesia-Version`. 2025-04-16 is the version whose spec documents `X-API-Key`, the
 * `done` close command and the 0–1000 ms `max_buffer_delay_ms` range this adapter relies on; newer versions
 * (2025-11-04, 2026-03-01) can be chosen through the `cartesiaVersion` option.
 */
export const CARTESIA_DEFAULT_VERSION = '2025-04-16';

export const cartesiaVersionSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'a Cartesia API version is a date, e.g. 2025-04-16')
  .default(CARTESIA_DEFAULT_VERSION);

/** `endpoint` replaces scheme, host and port of the vendor's base URL; http(s) is accepted for ws(s). */
export function cartesiaUrl(endpoint: string | undefined, path: string, query: Record<string, string>): string {
  let base: URL;
  try {
    base = new URL(endpoint ?? CARTESIA_BASE_URL);
  } catch (cause) {
    throw new ProviderError('CARTESIA_BAD_ENDPOINT', `the endpoint "${endpoint}" is not a URL`, false, 'bad-request', { cause });
  }
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  const search = new URLSearchParams(query).toString();
  return `${scheme}//${base.host}${path}${search ? `?${search}` : ''}`;
}

/**
 * `X-API-Key` only: it is the 2025-04-16 spec's header and the 2026 docs still accept it next to
 * `Authorization: Bearer`, whereas under the older version a Bearer value is checked as an access token.
 */
export function cartesiaHeaders(apiKey: string, version: string): Record<string, string> {
  return { 'X-API-Key': apiKey, 'Cartesia-Version': version };
}

export function requireCartesiaKey(apiKey: string | undefined, stage: 'STT' | 'TTS'): string {
  if (!apiKey) {
    throw new ProviderError('CARTESIA_AUTH', `no API key for cartesia ${stage}: add a cartesia credential to the project or set CARTESIA_API_KEY`, false, 'auth');
  }
  return apiKey;
}

/** Cartesia wants ISO 639-1 (`en`), blocks usually say `en-US`. */
export function cartesiaLanguage(language: string): string {
  return (language.split(/[-_]/)[0] ?? language).toLowerCase() || 'en';
}

/** One status code (HTTP on the handshake, `status_code` in error frames) → what the engine should do. */
export function cartesiaStatusError(status: number | undefined, detail: string, where: string): ProviderError {
  const said = detail ? `: ${detail}` : '';
  if (status === 401 || status === 403) {
    return new ProviderError('CARTESIA_AUTH', `the API key was rejected (${status})${said}. Check the cartesia credential of the project.`, false, 'auth');
  }
  if (status === 402) return new ProviderError('CARTESIA_QUOTA', `the account is out of credits (402)${said}`, false, 'quota');
  if (status === 429) {
    return new ProviderError('CARTESIA_RATE_LIMIT', `too many concurrent ${where} requests (429)${said}; retrying`, true, 'rate-limit');
  }
  if (status === 408) return new ProviderError('CARTESIA_TIMEOUT', `${where} timed out (408)${said}`, true, 'timeout');
  if (status === undefined || status >= 500) {
    return new ProviderError('CARTESIA_UNAVAILABLE', `${where} is unavailable (${status ?? 'no response'})${said}`, true, 'unavailable');
  }
  return new ProviderError('CARTESIA_BAD_REQUEST', `${where} rejected the request (${status})${said}. Check the model, voice, language and format of the cartesia block.`, false, 'bad-request');
}

/** The message of a refused handshake's body: JSON `{message|error|title}` or plain text, bounded. */
export function handshakeDetail(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown>;
      for (const key of ['message', 'error', 'title', 'detail']) if (typeof o[key] === 'string') return (o[key] as string).slice(0, 200);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return text.slice(0, 200);
}

/**
 * A close we did not ask for. These sockets live for a whole call (STT) or many turns (TTS), so even a 1000
 * from the server ends them early: retry, except for closes that say our frames were wrong.
 */
export function cartesiaCloseError(code: number, reason: string, where: string): ProviderError {
  const said = reason ? ` "${reason}"` : '';
  if (code === 1002 || code === 1003 || code === 1007 || code === 1009 || code === 1010) {
    return new ProviderError('CARTESIA_PROTOCOL', `${where} closed the socket with ${code}${said}: it did not accept what we sent`, false, 'protocol');
  }
  if (code === 1008 && /auth|api.?key|unauthori[sz]ed|forbidden/i.test(reason)) {
    return new ProviderError('CARTESIA_AUTH', `${where} closed the socket with 1008${said}. Check the cartesia credential of the project.`, false, 'auth');
  }
  const timeout = /idle|timeout|timed out|inactiv/i.test(reason);
  return new ProviderError(timeout ? 'CARTESIA_TIMEOUT' : 'CARTESIA_CLOSED', `${where} closed the socket with ${code}${said}; reconnecting`, true, timeout ? 'timeout' : 'unavailable');
}

export function cartesiaProtocolError(message: string, cause?: unknown): ProviderError {
  return new ProviderError('CARTESIA_PROTOCOL', message, false, 'protocol', cause === undefined ? undefined : { cause });
}

/** Parse a text frame as JSON, or a protocol error naming what arrived. */
export function parseJsonFrame(data: string | Uint8Array, where: string): unknown {
  if (typeof data !== 'string') throw cartesiaProtocolError(`${where} sent a binary frame of ${data.byteLength} bytes; only JSON text frames are defined`);
  try {
    return JSON.parse(data) as unknown;
  } catch (cause) {
    throw cartesiaProtocolError(`${where} sent a frame that is not JSON: ${data.slice(0, 80)}`, cause);
  }
}

/** Short, stable fingerprint of a secret: pool keys must tell keys apart without holding them in clear. */
export function keyFingerprint(secret: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < secret.length; i++) {
    hash ^= secret.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/** Zod issues on one line, `path message; ...`. */
export function zodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
}

export function cartesiaOptionsError(error: z.ZodError, where: string): ProviderError {
  return new ProviderError('CARTESIA_BAD_OPTIONS', `the options of the ${where} block are invalid: ${zodIssues(error)}`, false, 'bad-request');
}

/** Error frames of both endpoints (STT: no context; TTS: with `context_id`). */
export const cartesiaErrorFrame = z.object({
  type: z.literal('error'),
  context_id: z.string().nullish(),
  status_code: z.number().nullish(),
  title: z.string().nullish(),
  message: z.string().nullish(),
  error_code: z.string().nullish(),
});

export function cartesiaFrameError(frame: z.infer<typeof cartesiaErrorFrame>, where: string): ProviderError {
  const detail = [frame.title, frame.message, frame.error_code ? `(${frame.error_code})` : undefined].filter(Boolean).join(' ');
  return cartesiaStatusError(frame.status_code ?? 500, detail, where);
}
