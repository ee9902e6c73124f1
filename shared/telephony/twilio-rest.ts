import type { CallStatus } from '../contracts/call-status';
import { ProviderError } from '../contracts/errors';
import type { ErrorKind } from '../contracts/errors';
import { encodeBase64 } from './base64';
import { DEFAULT_REST_TIMEOUT_MS, restRequest } from './rest-request';
import { escapeXml } from './twiml';
import { normaliseTwilioCallStatus } from './twilio-webhooks';

/**
 * Twilio's REST API for calls (telephony reference §1.7): create an outbound call, end a call. `fetch` only,
 * injectable, so it runs on Workers and Node and tests point it at a local fake (`apiBaseUrl`).
 *
 * Errors are `TwilioApiError`s (ProviderErrors) that say what to do:
 * - 401/403 → `TWILIO_AUTH`, not retryable (fix the credential);
 * - 429 → `TWILIO_RATE_LIMIT`, retryable; 5xx → `TWILIO_UNAVAILABLE`, retryable;
 * - other 4xx → `TWILIO_REJECTED`, not retryable, with Twilio's error `code`, `message` and `more_info`;
 * - network failure → `TWILIO_NETWORK`, time-out → `TWILIO_TIMEOUT`, both retryable;
 * - the caller's abort → `TWILIO_ABORTED`; a 2xx Twilio body we cannot read → `TWILIO_BAD_RESPONSE`.
 * A retryable failure of `createTwilioCall` may still have placed the call (the response was lost): retry it
 * with care (e.g. only after checking the call log), or accept that a retry can dial twice.
 */

export const TWILIO_API_BASE_URL = 'https://api.twilio.com';
const DEFAULT_REQUEST_TIMEOUT_MS = DEFAULT_REST_TIMEOUT_MS;

export type TwilioStatusCallbackEvent = 'initiated' | 'ringing' | 'answered' | 'completed';
export const ALL_TWILIO_STATUS_CALLBACK_EVENTS: readonly TwilioStatusCallbackEvent[] = ['initiated', 'ringing', 'answered', 'completed'];

export interface TwilioRestOptions {
  readonly accountSid: string;
  /** Auth token, or an API key secret when `username` is an API key SID (`SK…`). */
  readonly authToken: string;
  /** Basic-auth user: the account SID unless an API key SID is given. */
  readonly username?: string;
  /** Default `https://api.twilio.com`; a local fake in tests. */
  readonly apiBaseUrl?: string;
  readonly fetch?: typeof fetch;
  /** Per request; default 10 s. */
  readonly requestTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface CreateTwilioCallOptions extends TwilioRestOptions {
  /** E.164, `sip:` URI or `client:` id. */
  readonly to: string;
  /** A Twilio number or verified caller id. */
  readonly from: string;
  /** Inline TwiML for the call (e.g. `<Connect><Stream>`). Exactly one of `twiml` and `url`. */
  readonly twiml?: string;
  /** Where Twilio fetches the call's TwiML. Exactly one of `twiml` and `url`. */
  readonly url?: string;
  /** Method for `url`; Twilio's default is POST. */
  readonly method?: 'GET' | 'POST';
  readonly statusCallback?: string;
  /** Events sent to `statusCallback`; default all four when `statusCallback` is set. */
  readonly statusCallbackEvents?: readonly TwilioStatusCallbackEvent[];
  readonly statusCallbackMethod?: 'GET' | 'POST';
  /** Ring time before `no-answer` (Twilio default 60). */
  readonly timeoutSeconds?: number;
  /** Longest the call may last. */
  readonly timeLimitSeconds?: number;
  readonly machineDetection?: 'Enable' | 'DetectMessageEnd';
}

export interface TwilioCallResource {
  readonly callSid: string;
  readonly status: CallStatus;
  /** Twilio's JSON response. */
  readonly raw: Readonly<Record<string, unknown>>;
}

export class TwilioApiError extends ProviderError {
  constructor(
    code: string,
    message: string,
    retryable: boolean,
    kind: ErrorKind,
    /** HTTP status, when Twilio answered. */
    readonly httpStatus?: number,
    /** Twilio's numeric error code (e.g. 21211 invalid `To`), when it sent one. */
    readonly twilioCode?: number,
    readonly moreInfo?: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, retryable, kind, options);
  }
}

/** Places an outbound call: `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`. Resolves on Twilio's 201. */
export async function createTwilioCall(options: CreateTwilioCallOptions): Promise<TwilioCallResource> {
  const problems: string[] = [];
  if (!options.to) problems.push('"to" is empty');
  if (!options.from) problems.push('"from" is empty');
  if ((options.twiml === undefined) === (options.url === undefined)) problems.push('give exactly one of "twiml" and "url"');
  if (options.statusCallbackEvents && !options.statusCallback) problems.push('"statusCallbackEvents" needs a "statusCallback" URL');
  if (problems.length) throw new TwilioApiError('TWILIO_BAD_REQUEST', `cannot create the call: ${problems.join('; ')}`, false, 'bad-request');

  const form = new URLSearchParams({ To: options.to, From: options.from });
  if (options.twiml !== undefined) form.set('Twiml', options.twiml);
  if (options.url !== undefined) {
    form.set('Url', options.url);
    if (options.method) form.set('Method', options.method);
  }
  if (options.statusCallback) {
    form.set('StatusCallback', options.statusCallback);
    form.set('StatusCallbackMethod', options.statusCallbackMethod ?? 'POST');
    for (const event of options.statusCallbackEvents ?? ALL_TWILIO_STATUS_CALLBACK_EVENTS) form.append('StatusCallbackEvent', event);
  }
  if (options.timeoutSeconds !== undefined) form.set('Timeout', String(options.timeoutSeconds));
  if (options.timeLimitSeconds !== undefined) form.set('TimeLimit', String(options.timeLimitSeconds));
  if (options.machineDetection) form.set('MachineDetection', options.machineDetection);

  return callResource(await twilioPost(options, 'Calls.json', form, 'create the call'), 'create the call', 'queued');
}

/** Ends a call now (`Status=completed`), whatever state it is in. */
export async function hangupTwilioCall(options: TwilioRestOptions & { readonly callSid: string }): Promise<TwilioCallResource> {
  if (!options.callSid) throw new TwilioApiError('TWILIO_BAD_REQUEST', 'cannot end the call: "callSid" is empty', false, 'bad-request');
  const form = new URLSearchParams({ Status: 'completed' });
  return callResource(await twilioPost(options, `Calls/${encodeURIComponent(options.callSid)}.json`, form, 'end the call'), 'end the call', 'completed');
}

/**
 * Redirects a live call to new TwiML: `POST Calls/{CallSid}.json` with `Twiml`. The call leaves what it was
 * doing (a `<Connect><Stream>` ends, so the media stream closes) and runs the new document.
 */
export async function redirectTwilioCall(options: TwilioRestOptions & { readonly callSid: string; readonly twiml: string }): Promise<TwilioCallResource> {
  if (!options.callSid) throw new TwilioApiError('TWILIO_BAD_REQUEST', 'cannot redirect the call: "callSid" is empty', false, 'bad-request');
  if (!options.twiml) throw new TwilioApiError('TWILIO_BAD_REQUEST', 'cannot redirect the call: "twiml" is empty', false, 'bad-request');
  const form = new URLSearchParams({ Twiml: options.twiml });
  return callResource(await twilioPost(options, `Calls/${encodeURIComponent(options.callSid)}.json`, form, 'redirect the call'), 'redirect the call', 'in-progress');
}

/** `<Dial>` TwiML for a transfer target: an E.164 number (`<Number>`) or a SIP URI (`<Sip>`). */
export function dialTwiml(to: string, options: { readonly callerId?: string } = {}): string {
  const target = /^sips?:/i.test(to) ? `<Sip>${escapeXml(to)}</Sip>` : `<Number>${escapeXml(to)}</Number>`;
  const callerId = options.callerId ? ` callerId="${escapeXml(options.callerId)}"` : '';
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Dial${callerId}>${target}</Dial></Response>`;
}

/** Transfers a live call (the assistant's `transfer_call` on Twilio): redirects it to `<Dial>` the target. */
export async function transferTwilioCall(options: TwilioRestOptions & { readonly callSid: string; readonly to: string; readonly callerId?: string }): Promise<TwilioCallResource> {
  if (!/^(\+[1-9][0-9]{6,14}|sips?:\S+)$/i.test(options.to)) {
    throw new TwilioApiError('TWILIO_BAD_REQUEST', `cannot transfer the call: "${options.to}" is neither an E.164 number nor a SIP URI`, false, 'bad-request');
  }
  return redirectTwilioCall({ ...options, twiml: dialTwiml(options.to, options.callerId ? { callerId: options.callerId } : {}) });
}

async function twilioPost(options: TwilioRestOptions, resource: string, form: URLSearchParams, what: string): Promise<unknown> {
  if (!options.accountSid || !options.authToken) {
    throw new TwilioApiError('TWILIO_AUTH', `cannot ${what}: the twilio credential needs accountSid and authToken`, false, 'auth');
  }
  const base = (options.apiBaseUrl ?? TWILIO_API_BASE_URL).replace(/\/+$/, '');
  const url = `${base}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}/${resource}`;
  const credentials = new TextEncoder().encode(`${options.username ?? options.accountSid}:${options.authToken}`);
  const init: RequestInit = {
    method: 'POST',
    headers: {
      authorization: `Basic ${encodeBase64(credentials)}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: form.toString(),
  };

  const sent = await restRequest({ url, init, ...(options.fetch ? { fetch: options.fetch } : {}), timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
  if (!sent.ok) {
    const cause = { cause: sent.cause };
    if (sent.failure === 'timeout') throw new TwilioApiError('TWILIO_TIMEOUT', `Twilio did not answer within ${sent.timeoutMs} ms (${what}); try again`, true, 'timeout', undefined, undefined, undefined, cause);
    if (sent.failure === 'aborted') throw new TwilioApiError('TWILIO_ABORTED', `the request to ${what} was cancelled`, false, 'internal', undefined, undefined, undefined, cause);
    throw new TwilioApiError('TWILIO_NETWORK', `could not reach Twilio at ${base} to ${what} (${sent.reason}); try again`, true, 'unavailable', undefined, undefined, undefined, cause);
  }
  const body = parseJson(sent.text);
  if (sent.response.ok) {
    if (body === undefined) throw new TwilioApiError('TWILIO_BAD_RESPONSE', `Twilio answered ${sent.response.status} to ${what} without a JSON body`, false, 'protocol', sent.response.status);
    return body;
  }
  throw errorFor(sent.response.status, body, what, options);
}

function errorFor(status: number, body: unknown, what: string, options: TwilioRestOptions): TwilioApiError {
  const details = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown; more_info?: unknown };
  const twilioCode = typeof details.code === 'number' ? details.code : undefined;
  const twilioMessage = typeof details.message === 'string' ? details.message : undefined;
  const moreInfo = typeof details.more_info === 'string' ? details.more_info : undefined;
  const said = `${status}${twilioCode === undefined ? '' : `, Twilio error ${twilioCode}`}${twilioMessage ? `: ${twilioMessage}` : ''}`;
  const seeAlso = moreInfo ? ` See ${moreInfo}` : '';
  const make = (code: string, message: string, retryable: boolean, kind: ErrorKind) =>
    new TwilioApiError(code, message + seeAlso, retryable, kind, status, twilioCode, moreInfo);
  if (status === 401 || status === 403) {
    return make('TWILIO_AUTH', `Twilio refused the credentials to ${what} (${said}). Check the twilio credential (accountSid ${options.accountSid}, authToken) of the project.`, false, 'auth');
  }
  if (status === 429) return make('TWILIO_RATE_LIMIT', `Twilio is rate-limiting requests to ${what} (${said}); retry later.`, true, 'rate-limit');
  if (status >= 500) return make('TWILIO_UNAVAILABLE', `Twilio failed to ${what} (${said}); retry later.`, true, 'unavailable');
  const hint = status === 404 ? ' Check the accountSid, the call sid and apiBaseUrl.' : '';
  return make('TWILIO_REJECTED', `Twilio rejected the request to ${what} (${said}).${hint}`, false, 'bad-request');
}

function callResource(body: unknown, what: string, expected: CallStatus): TwilioCallResource {
  const raw = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
  const sid = raw.sid;
  if (typeof sid !== 'string' || !sid.startsWith('CA')) {
    throw new TwilioApiError('TWILIO_BAD_RESPONSE', `Twilio's answer to ${what} has no call sid`, false, 'protocol');
  }
  const status = typeof raw.status === 'string' ? normaliseTwilioCallStatus(raw.status) : undefined;
  return { callSid: sid, status: status ?? expected, raw };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
