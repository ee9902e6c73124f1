import type { CallStatus } from '../contracts/call-status';
import { ProviderError, type ErrorKind } from '../contracts/errors';
import { DEFAULT_REST_TIMEOUT_MS, restRequest } from './rest-request';
import { createVonageApplicationJwt, VonageKeyError } from './vonage-jwt';
import { normaliseVonageCallStatus } from './vonage-webhooks';

/**
 * Vonage's Voice REST API for outbound calls and transfers (telephony reference §2.4): `POST {api}/v1/calls` with an RS256
 * application JWT, `fetch` only and injectable (Workers, Node, a local fake in tests).
 *
 * Errors are `VonageApiError`s that say what to do: 401/403 → `VONAGE_AUTH` (fix the credential), 429 →
 * `VONAGE_RATE_LIMIT`, 5xx → `VONAGE_UNAVAILABLE` (both retryable), other 4xx → `VONAGE_REJECTED` with
 * Vonage's `title`/`detail`, network failure → `VONAGE_NETWORK`, time-out → `VONAGE_TIMEOUT`, a private key
 * Web Crypto cannot use → `VONAGE_KEY`. After a network failure or time-out Vonage may still have dialled.
 */

export const VONAGE_API_BASE_URL = 'https://api.nexmo.com';
const DEFAULT_REQUEST_TIMEOUT_MS = DEFAULT_REST_TIMEOUT_MS;

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

export interface CreateVonageCallOptions extends VonageRequestOptions {
  /** E.164 with or without "+" (Vonage wants digits only; the "+" is dropped). */
  readonly to: string;
  /** A Vonage number of the application's account. */
  readonly from: string;
  readonly ncco: readonly Record<string, unknown>[];
  /** Where the phone leg's events go. */
  readonly eventUrl?: string;
  /** Ring time in seconds before `unanswered` (Vonage: 60 by default). */
  readonly ringingTimerSeconds?: number;
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
  const body = {
    to: [{ type: 'phone', number: digits(options.to) }],
    from: { type: 'phone', number: digits(options.from) },
    ncco: options.ncco,
    ...(options.eventUrl ? { event_url: [options.eventUrl], event_method: 'POST' } : {}),
    ...(options.ringingTimerSeconds !== undefined ? { ringing_timer: options.ringingTimerSeconds } : {}),
  };
  const { status, json } = await vonageRequest(options, 'POST', '/v1/calls', body, 'create the call');
  const uuid = json?.uuid;
  if (typeof uuid !== 'string' || !uuid) throw new VonageApiError('VONAGE_BAD_RESPONSE', `Vonage answered ${status} without a call uuid`, false, 'protocol', status);
  const callStatus = typeof json?.status === 'string' ? normaliseVonageCallStatus(json.status) : undefined;
  const conversationUuid = json?.conversation_uuid;
  return { uuid, ...(typeof conversationUuid === 'string' ? { conversationUuid } : {}), status: callStatus ?? 'queued', raw: json ?? {} };
}

export interface TransferVonageCallOptions extends VonageRequestOptions {
  /** Vonage's uuid of the live call (the phone leg). */
  readonly uuid: string;
  /** E.164 phone number, or a `sip:` URI. */
  readonly to: string;
}

/**
 * Blind transfer of a live call (`transfer_call`): `PUT {api}/v1/calls/{uuid}` with a `transfer` action to an NCCO
 * that connects the caller to `to`. Our media socket is dropped by Vonage when the new NCCO takes over.
 */
export async function transferVonageCall(options: TransferVonageCallOptions): Promise<void> {
  const endpoint = /^sips?:/i.test(options.to) ? { type: 'sip', uri: options.to } : { type: 'phone', number: digits(options.to) };
  const body = { action: 'transfer', destination: { type: 'ncco', ncco: [{ action: 'connect', endpoint: [endpoint] }] } };
  await vonageRequest(options, 'PUT', `/v1/calls/${encodeURIComponent(options.uuid)}`, body, 'transfer the call');
}

interface VonageRequestOptions {
  readonly applicationId: string;
  /** PKCS#8 (or PKCS#1) PEM of the application's private key. */
  readonly privateKey: string;
  /** Default https://api.nexmo.com. */
  readonly apiBaseUrl?: string;
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
  readonly nowMs?: number;
}

/** One authenticated request to the Voice API: an RS256 application JWT, a time-out, errors mapped to VonageApiError. */
async function vonageRequest(options: VonageRequestOptions, method: string, path: string, body: unknown, what: string): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
  if (!options.applicationId || !options.privateKey) {
    throw new VonageApiError('VONAGE_AUTH', `cannot ${what}: the vonage credential needs applicationId and privateKey`, false, 'auth');
  }
  let jwt: string;
  try {
    jwt = await createVonageApplicationJwt({ applicationId: options.applicationId, privateKey: options.privateKey, nowMs: options.nowMs ?? Date.now() });
  } catch (error) {
    if (error instanceof VonageKeyError) throw new VonageApiError('VONAGE_KEY', `${error.message}: store the application's private key (PEM) as privateKey`, false, 'auth', undefined, { cause: error });
    throw error;
  }
  const base = (options.apiBaseUrl ?? VONAGE_API_BASE_URL).replace(/\/+$/, '');
  const init: RequestInit = {
    method,
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  };
  const sent = await restRequest({ url: `${base}${path}`, init, ...(options.fetch ? { fetch: options.fetch } : {}), timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
  if (!sent.ok) {
    if (sent.failure === 'timeout') throw new VonageApiError('VONAGE_TIMEOUT', `Vonage did not answer within ${sent.timeoutMs} ms (${what}); try again`, true, 'timeout', undefined, { cause: sent.cause });
    throw new VonageApiError('VONAGE_NETWORK', `could not reach Vonage at ${base} to ${what} (${sent.reason}); try again`, true, 'unavailable', undefined, { cause: sent.cause });
  }
  const json = parseJson(sent.text);
  if (!sent.response.ok) throw errorFor(sent.response.status, json, what);
  return { status: sent.response.status, json };
}

function errorFor(status: number, body: Record<string, unknown> | undefined, what: string): VonageApiError {
  const title = typeof body?.title === 'string' ? body.title : undefined;
  const detail = typeof body?.detail === 'string' ? body.detail : undefined;
  const said = `${status}${title ? `: ${title}` : ''}${detail ? ` (${detail})` : ''}`;
  if (status === 401 || status === 403) {
    return new VonageApiError('VONAGE_AUTH', `Vonage refused the application JWT (${said}). Check the vonage credential's applicationId and privateKey.`, false, 'auth', status);
  }
  if (status === 429) return new VonageApiError('VONAGE_RATE_LIMIT', `Vonage is rate-limiting requests (${said}); retry later.`, true, 'rate-limit', status);
  if (status >= 500) return new VonageApiError('VONAGE_UNAVAILABLE', `Vonage failed to ${what} (${said}); retry later.`, true, 'unavailable', status);
  return new VonageApiError('VONAGE_REJECTED', `Vonage refused to ${what} (${said}).`, false, 'bad-request', status);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
