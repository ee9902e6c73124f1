import type { CallStatus } from '../contracts/call-status';
import { ProviderError, type ErrorKind } from '../contracts/errors';
import { createVonageApplicationJwt, VonageKeyError } from './vonage-jwt';
import { normaliseVonageCallStatus } from './vonage-webhooks';

/**
 * Vonage's Voice REST API for outbound calls (telephony reference §2.4): `POST {api}/v1/calls` with an RS256
 * application JWT, `fetch` only and injectable (Workers, Node, a local fake in tests).
 *
 * Errors are `VonageApiError`s that say what to do: 401/403 → `VONAGE_AUTH` (fix the credential), 429 →
 * `VONAGE_RATE_LIMIT`, 5xx → `VONAGE_UNAVAILABLE` (both retryable), other 4xx → `VONAGE_REJECTED` with
 * Vonage's `title`/`detail`, network failure → `VONAGE_NETWORK`, time-out → `VONAGE_TIMEOUT`, a private key
 * Web Crypto cannot use → `VONAGE_KEY`. After a network failure or time-out Vonage may still have dialled.
 */

export const VONAGE_API_BASE_URL = 'https://api.nexmo.com';
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export class VonageApiError extends ProviderError {
  constructor(
    code: string,
    message: string,
    retryable: boolean,
    kind: ErrorKind,
    readonly httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, retryable, kind, options);
  }
}

export interface CreateVonageCallOptions {
  readonly applicationId: string;
  /** PKCS#8 (or PKCS#1) PEM of the application's private key. */
  readonly privateKey: string;
  /** Default https://api.nexmo.com. */
  readonly apiBaseUrl?: string;
  /** E.164 with or without "+" (Vonage wants digits only; the "+" is dropped). */
  readonly to: string;
  /** A Vonage number of the application's account. */
  readonly from: string;
  readonly ncco: readonly Record<string, unknown>[];
  /** Where the phone leg's events go. */
  readonly eventUrl?: string;
  /** Ring time in seconds before `unanswered` (Vonage: 60 by default). */
  readonly ringingTimerSeconds?: number;
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
  readonly nowMs?: number;
}

export interface VonageCallResource {
  readonly uuid: string;
  readonly conversationUuid?: string;
  readonly status: CallStatus;
  readonly raw: Readonly<Record<string, unknown>>;
}

const digits = (number: string) => number.replace(/^\+/, '');

/** Places an outbound call; resolves on Vonage's 201 `{ uuid, status, direction, conversation_uuid }`. */
export async function createVonageCall(options: CreateVonageCallOptions): Promise<VonageCallResource> {
  if (!options.applicationId || !options.privateKey) {
    throw new VonageApiError('VONAGE_AUTH', 'cannot create the call: the vonage credential needs applicationId and privateKey', false, 'auth');
  }
  let jwt: string;
  try {
    jwt = await createVonageApplicationJwt({ applicationId: options.applicationId, privateKey: options.privateKey, nowMs: options.nowMs ?? Date.now() });
  } catch (error) {
    if (error instanceof VonageKeyError) throw new VonageApiError('VONAGE_KEY', `${error.message}: store the application's private key (PEM) as privateKey`, false, 'auth', undefined, { cause: error });
    throw error;
  }
  const body = {
    to: [{ type: 'phone', number: digits(options.to) }],
    from: { type: 'phone', number: digits(options.from) },
    ncco: options.ncco,
    ...(options.eventUrl ? { event_url: [options.eventUrl], event_method: 'POST' } : {}),
    ...(options.ringingTimerSeconds !== undefined ? { ringing_timer: options.ringingTimerSeconds } : {}),
  };
  const base = (options.apiBaseUrl ?? VONAGE_API_BASE_URL).replace(/\/+$/, '');
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  let response: Response;
  let text: string;
  try {
    const init: RequestInit = {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: controller.signal,
    };
    response = options.fetch ? await options.fetch(`${base}/v1/calls`, init) : await fetch(`${base}/v1/calls`, init);
    text = await response.text();
  } catch (error) {
    if (timedOut) throw new VonageApiError('VONAGE_TIMEOUT', `Vonage did not answer within ${timeoutMs} ms (create the call); try again`, true, 'timeout', undefined, { cause: error });
    const reason = error instanceof Error ? error.message : String(error);
    throw new VonageApiError('VONAGE_NETWORK', `could not reach Vonage at ${base} to create the call (${reason}); try again`, true, 'unavailable', undefined, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  const json = parseJson(text);
  if (!response.ok) throw errorFor(response.status, json);
  const uuid = json?.uuid;
  if (typeof uuid !== 'string' || !uuid) throw new VonageApiError('VONAGE_BAD_RESPONSE', `Vonage answered ${response.status} without a call uuid`, false, 'protocol', response.status);
  const status = typeof json?.status === 'string' ? normaliseVonageCallStatus(json.status) : undefined;
  const conversationUuid = json?.conversation_uuid;
  return { uuid, ...(typeof conversationUuid === 'string' ? { conversationUuid } : {}), status: status ?? 'queued', raw: json ?? {} };
}

function errorFor(status: number, body: Record<string, unknown> | undefined): VonageApiError {
  const title = typeof body?.title === 'string' ? body.title : undefined;
  const detail = typeof body?.detail === 'string' ? body.detail : undefined;
  const said = `${status}${title ? `: ${title}` : ''}${detail ? ` (${detail})` : ''}`;
  if (status === 401 || status === 403) {
    return new VonageApiError('VONAGE_AUTH', `Vonage refused the application JWT (${said}). Check the vonage credential's applicationId and privateKey.`, false, 'auth', status);
  }
  if (status === 429) return new VonageApiError('VONAGE_RATE_LIMIT', `Vonage is rate-limiting calls (${said}); retry later.`, true, 'rate-limit', status);
  if (status >= 500) return new VonageApiError('VONAGE_UNAVAILABLE', `Vonage failed to create the call (${said}); retry later.`, true, 'unavailable', status);
  return new VonageApiError('VONAGE_REJECTED', `Vonage rejected the call (${said}).`, false, 'bad-request', status);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
