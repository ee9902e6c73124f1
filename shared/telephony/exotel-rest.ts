import type { CallStatus } from '../contracts/call-status';
import { ProviderError, type ErrorKind } from '../contracts/errors';
import { encodeBase64 } from './base64';
import { DEFAULT_REST_TIMEOUT_MS, restRequest } from './rest-request';
import { normaliseExotelCallStatus } from './exotel-webhooks';

/**
 * Exotel's REST API for an outbound voice-AI call. The telephony reference (§3) documents the stream, not
 * the REST side; this follows Exotel's "Connect Voice AI" API (developer.exotel.com, AgentStream): one form
 * POST to `{apiBaseUrl}/v1/Accounts/{AccountSid}/Calls/connect.json` with HTTP Basic `apiKey:apiToken`,
 * `From` (the number dialled), `CallerId` (the ExoPhone), `StreamUrl` + `StreamType=bidirectional` (the
 * answered call goes straight to our media socket, no flow), `StatusCallback` with
 * `StatusCallbackEvents[0]=answered` and `[1]=terminal`, and `CustomField` (our call id). The answer's
 * `Call.Sid` and `Call.Status` are read. `fetch` only, injectable (tests point it at a local fake).
 *
 * Errors are `ExotelApiError`s: 401/403 → `EXOTEL_AUTH`; 429 → `EXOTEL_RATE_LIMIT` (retryable); 5xx →
 * `EXOTEL_UNAVAILABLE` (retryable); other 4xx → `EXOTEL_REJECTED` with Exotel's `RestException.Message`;
 * network → `EXOTEL_NETWORK`, time-out → `EXOTEL_TIMEOUT` (retryable: the call may have been placed).
 */

export const EXOTEL_API_BASE_URL = 'https://api.exotel.com';
const DEFAULT_REQUEST_TIMEOUT_MS = DEFAULT_REST_TIMEOUT_MS;

export class ExotelApiError extends ProviderError {
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

export interface CreateExotelCallOptions {
  readonly accountSid: string;
  readonly apiKey: string;
  readonly apiToken: string;
  /** Default https://api.exotel.com (Singapore); https://api.in.exotel.com for Mumbai accounts. */
  readonly apiBaseUrl?: string;
  /** The number dialled (Exotel's `From`). */
  readonly to: string;
  /** The ExoPhone shown to the callee (Exotel's `CallerId`). */
  readonly callerId: string;
  /** Our media socket for this call (`wss://…/v1/talk/exotel/ctx/{id}`), at most 600 characters. */
  readonly streamUrl: string;
  readonly statusCallback?: string;
  /** At most 128 characters; comes back on status callbacks. */
  readonly customField?: string;
  readonly timeLimitSeconds?: number;
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
}

export interface ExotelCallResource {
  readonly callSid: string;
  readonly status: CallStatus;
  readonly raw: Readonly<Record<string, unknown>>;
}

export async function createExotelCall(options: CreateExotelCallOptions): Promise<ExotelCallResource> {
  const problems: string[] = [];
  if (!options.to) problems.push('"to" is empty');
  if (!options.callerId) problems.push('no caller id (ExoPhone): give "from" or store "callerId" in the exotel credential');
  if (!/^wss?:\/\//.test(options.streamUrl) || options.streamUrl.length > 600) problems.push('the stream URL must be ws(s):// and at most 600 characters');
  if (options.customField !== undefined && options.customField.length > 128) problems.push('"customField" is longer than 128 characters');
  if (problems.length) throw new ExotelApiError('EXOTEL_BAD_REQUEST', `cannot create the call: ${problems.join('; ')}`, false, 'bad-request');

  const form = new URLSearchParams({ From: options.to, CallerId: options.callerId, StreamUrl: options.streamUrl, StreamType: 'bidirectional' });
  if (options.statusCallback) {
    form.set('StatusCallback', options.statusCallback);
    form.set('StatusCallbackEvents[0]', 'answered');
    form.set('StatusCallbackEvents[1]', 'terminal');
  }
  if (options.customField) form.set('CustomField', options.customField);
  if (options.timeLimitSeconds !== undefined) form.set('TimeLimit', String(options.timeLimitSeconds));

  const base = (options.apiBaseUrl ?? EXOTEL_API_BASE_URL).replace(/\/+$/, '');
  const url = `${base}/v1/Accounts/${encodeURIComponent(options.accountSid)}/Calls/connect.json`;
  const init: RequestInit = {
    method: 'POST',
    headers: {
      authorization: `Basic ${encodeBase64(new TextEncoder().encode(`${options.apiKey}:${options.apiToken}`))}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: form.toString(),
  };
  const what = 'create the call';
  const sent = await restRequest({ url, init, ...(options.fetch ? { fetch: options.fetch } : {}), timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
  if (!sent.ok) {
    if (sent.failure === 'timeout') throw new ExotelApiError('EXOTEL_TIMEOUT', `Exotel did not answer within ${sent.timeoutMs} ms (${what}); it may still have placed the call`, true, 'timeout', undefined, { cause: sent.cause });
    throw new ExotelApiError('EXOTEL_NETWORK', `could not reach Exotel at ${base} to ${what} (${sent.reason}); try again`, true, 'unavailable', undefined, { cause: sent.cause });
  }
  const { response } = sent;
  const body = parseJson(sent.text);
  if (!response.ok) throw errorFor(response.status, body, options.accountSid);
  const call = (typeof body === 'object' && body !== null ? (body as { Call?: unknown }).Call : undefined) as Record<string, unknown> | undefined;
  const sid = call?.Sid;
  if (typeof sid !== 'string' || sid.length === 0) throw new ExotelApiError('EXOTEL_BAD_RESPONSE', `Exotel answered ${response.status} to ${what} without a Call.Sid`, false, 'protocol', response.status);
  const status = typeof call!.Status === 'string' ? normaliseExotelCallStatus(call!.Status) : undefined;
  return { callSid: sid, status: status ?? 'queued', raw: body as Record<string, unknown> };
}

function errorFor(status: number, body: unknown, accountSid: string): ExotelApiError {
  const exception = (typeof body === 'object' && body !== null ? (body as { RestException?: { Message?: unknown } }).RestException : undefined) ?? {};
  const said = `${status}${typeof exception.Message === 'string' ? `: ${exception.Message.slice(0, 300)}` : ''}`;
  if (status === 401 || status === 403) {
    return new ExotelApiError('EXOTEL_AUTH', `Exotel refused the credentials (${said}). Check the exotel credential (accountSid ${accountSid}, apiKey, apiToken, apiBaseUrl region) of the project.`, false, 'auth', status);
  }
  if (status === 429) return new ExotelApiError('EXOTEL_RATE_LIMIT', `Exotel is rate-limiting call requests (${said}); retry later.`, true, 'rate-limit', status);
  if (status >= 500) return new ExotelApiError('EXOTEL_UNAVAILABLE', `Exotel failed to create the call (${said}); retry later.`, true, 'unavailable', status);
  return new ExotelApiError('EXOTEL_REJECTED', `Exotel rejected the call request (${said}).`, false, 'bad-request', status);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
