import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import { AzureFramingError, decodeMessage, type AzureMessage } from './framing';

/**
 * What Azure Speech's STT and TTS sockets share: the provider id, hosts per region, handshake headers,
 * and how refusals, closes and malformed frames become ProviderErrors (reference/providers.md §1.5, §2.5).
 */

export const AZURE_ID = 'azure-speech-service';

/** What the runtime may preset for every Azure block (e.g. a media node's `AZURE_SPEECH_SERVICE_REGION`); the block's options win. */
export interface AzureDefaults {
  readonly region?: string;
}

/** Azure regions are lower-case letters and digits (`westeurope`, `eastus2`, `chinaeast2`, `usgovvirginia`). */
export const azureRegionSchema = z.string().regex(/^[a-z][a-z0-9]*$/, 'an Azure region is lower-case letters and digits, e.g. westeurope');

/** The sovereign clouds have their own domains; every other region is on microsoft.com. */
function cloudDomain(region: string): string {
  if (region.startsWith('china')) return 'azure.cn';
  if (region.startsWith('usgov')) return 'azure.us';
  return 'microsoft.com';
}

/**
 * The socket URL: `endpoint` (scheme, host, port and an optional path prefix, e.g. a private endpoint's
 * `https://name.cognitiveservices.azure.com/stt`) replaces `wss://{region}.{service}.speech.{domain}`;
 * http(s) is accepted for ws(s).
 */
export function azureUrl(
  service: 'stt' | 'tts',
  where: string,
  region: string | undefined,
  endpoint: string | undefined,
  path: string,
  query: Readonly<Record<string, string>> = {},
): string {
  let base: string;
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch (cause) {
      throw new ProviderError('AZURE_SPEECH_BAD_ENDPOINT', `the endpoint "${endpoint}" of the ${where} block is not a URL`, false, 'bad-request', { cause });
    }
    const scheme = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
    base = `${scheme}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  } else if (region !== undefined) {
    base = `wss://${region}.${service}.speech.${cloudDomain(region)}`;
  } else {
    throw new ProviderError(
      'AZURE_SPEECH_NO_REGION',
      `${where} needs the Azure region of the Speech resource: set options.region (e.g. "westeurope") or an endpoint in the block`,
      false,
      'bad-request',
    );
  }
  const search = new URLSearchParams(query).toString();
  return `${base}${path}${search ? `?${search}` : ''}`;
}

/** A JSON Web Token (`xxx.yyy.zzz`, base64url): an access token from `/sts/v1.0/issueToken`, not a resource key. */
function isToken(secret: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(secret);
}

/**
 * Handshake headers: the resource key as `Ocp-Apim-Subscription-Key`, or, when the credential is an access
 * token (a JWT), `Authorization: Bearer`; and a fresh `X-ConnectionId` (32 hex digits) for Azure's logs.
 */
export function azureHandshakeHeaders(apiKey: string | undefined, where: string): Record<string, string> {
  if (!apiKey) {
    throw new ProviderError(
      'AZURE_SPEECH_AUTH',
      `no key for ${where}: add an ${AZURE_ID} credential (the Speech resource key) to the project or set AZURE_SPEECH_SERVICE_API_KEY`,
      false,
      'auth',
    );
  }
  const connectionId = crypto.randomUUID().replace(/-/g, '').toUpperCase();
  return isToken(apiKey)
    ? { Authorization: `Bearer ${apiKey}`, 'X-ConnectionId': connectionId }
    : { 'Ocp-Apim-Subscription-Key': apiKey, 'X-ConnectionId': connectionId };
}

/** The text of a refused handshake's body, bounded (Azure answers with plain text or JSON `{error:{message}}`). */
function handshakeDetail(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') {
      const o = parsed as { error?: { message?: unknown } | string; message?: unknown };
      if (typeof o.message === 'string') return o.message.slice(0, 200);
      if (typeof o.error === 'string') return o.error.slice(0, 200);
      if (o.error && typeof o.error.message === 'string') return o.error.message.slice(0, 200);
    }
  } catch {
    // Plain text.
  }
  return text.slice(0, 200);
}

/** A refused upgrade: 401/403 key or region, 429 throttled (retry), 5xx (retry), others bad request. */
export function azureHandshakeError(status: number | undefined, body: string, where: string): ProviderError {
  const said = handshakeDetail(body);
  const detail = said ? `: ${said}` : '';
  if (status === 401 || status === 403) {
    return new ProviderError(
      'AZURE_SPEECH_AUTH',
      `${where} rejected the key (${status})${detail}. Check the ${AZURE_ID} credential of the project and that options.region is the resource's region.`,
      false,
      'auth',
    );
  }
  if (status === 429) return new ProviderError('AZURE_SPEECH_RATE_LIMIT', `${where} is throttling this resource (429)${detail}; retrying`, true, 'rate-limit');
  if (status === 408) return new ProviderError('AZURE_SPEECH_TIMEOUT', `${where} timed out (408)${detail}`, true, 'timeout');
  if (status === undefined || status >= 500) {
    return new ProviderError('AZURE_SPEECH_UNAVAILABLE', `${where} is unavailable (${status ?? 'no response'})${detail}`, true, 'unavailable');
  }
  return new ProviderError('AZURE_SPEECH_BAD_REQUEST', `${where} refused the connection (${status})${detail}. Check the language, mode and options of the block.`, false, 'bad-request');
}

/**
 * A close we did not ask for. These sockets live for a whole call (STT) or many turns (TTS), so even a 1000
 * from the server ends them early: retry, except where the close says our request was wrong:
 * 1007 (invalid payload: bad SSML, audio format, message) and 1008 (policy: key, quota), with their reason text.
 * 1011 (server error) and 1013 ("ResourceExhausted", try again later) are retried.
 */
export function azureCloseError(code: number, reason: string, where: string): ProviderError {
  const said = reason ? ` "${reason.slice(0, 200)}"` : '';
  if (code === 1007 || code === 1002 || code === 1003) {
    return new ProviderError('AZURE_SPEECH_BAD_REQUEST', `${where} closed the socket with ${code}${said}: it did not accept what we sent`, false, 'bad-request');
  }
  if (code === 1008) {
    if (/quota|throttl|too many|rate/i.test(reason)) {
      return new ProviderError('AZURE_SPEECH_RATE_LIMIT', `${where} closed the socket with 1008${said}; retrying`, true, 'rate-limit');
    }
    if (/auth|subscription|key|token|unauthori[sz]ed|forbidden|credential/i.test(reason)) {
      return new ProviderError('AZURE_SPEECH_AUTH', `${where} closed the socket with 1008${said}. Check the ${AZURE_ID} credential of the project.`, false, 'auth');
    }
    return new ProviderError('AZURE_SPEECH_BAD_REQUEST', `${where} closed the socket with 1008${said}`, false, 'bad-request');
  }
  if (code === 1013) return new ProviderError('AZURE_SPEECH_RATE_LIMIT', `${where} is out of capacity (1013${said}); retrying`, true, 'rate-limit');
  const timeout = /idle|timeout|timed out|inactiv/i.test(reason);
  return new ProviderError(timeout ? 'AZURE_SPEECH_TIMEOUT' : 'AZURE_SPEECH_CLOSED', `${where} closed the socket with ${code}${said}; reconnecting`, true, timeout ? 'timeout' : 'unavailable');
}

export function azureProtocolError(message: string): ProviderError {
  return new ProviderError('AZURE_SPEECH_PROTOCOL', message, false, 'protocol');
}

/** A frame as a message, or a protocol error naming what arrived (the bases ignore those and count them). */
export function decodeFrame(data: string | Uint8Array, where: string): AzureMessage | ProviderError {
  const decoded = decodeMessage(data);
  if (decoded instanceof AzureFramingError) return azureProtocolError(`${where} sent a frame that is not an Azure message: ${decoded.message}`);
  return decoded;
}

/** A text message's JSON body, or a protocol error. */
export function jsonBody(message: AzureMessage, where: string): unknown {
  if (typeof message.body !== 'string') return azureProtocolError(`${where} sent ${message.path} as a binary frame`);
  try {
    return JSON.parse(message.body) as unknown;
  } catch {
    return azureProtocolError(`${where} sent ${message.path} with a body that is not JSON: ${message.body.slice(0, 80)}`);
  }
}

/** Ticks (100 ns, Azure's offsets and durations) → milliseconds. */
export function ticksToMs(ticks: number): number {
  return ticks / 10_000;
}

export function zodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
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

/** What the client tells the service about itself in `speech.config` (the SDKs send their name and OS). */
export const AZURE_CLIENT_CONTEXT = Object.freeze({
  system: { name: 'voice-runtime', version: '0.1.0', build: 'TypeScript', lang: 'TypeScript' },
  os: { platform: 'WebStandard', name: 'voice-runtime', version: '0.1.0' },
});
