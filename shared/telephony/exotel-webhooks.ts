import { z } from 'zod';
import type { CallStatus } from '../contracts/call-status';
import { ProtocolError, describeZodIssues } from './protocol-error';
import { parseCidr } from '../tools/ip';

/**
 * Exotel's HTTP requests to us, as pure functions: the applet's dynamic stream URL request, call status
 * callbacks, and the checks that stand in for a signature (Exotel signs nothing): HTTP Basic credentials
 * compared in constant time, and an optional IP allow-list of CIDRs. Bad input comes back as a ProtocolError.
 */

const PROTOCOL = 'exotel-webhook';

// ---- the project's exotel credential ----------------------------------------------------------------------

const Cidr = z.string().refine((value) => parseCidr(value) !== undefined, 'must be an IPv4 or IPv6 address or CIDR, e.g. 203.0.113.0/24');

/**
 * `PUT /v1/credentials/<name>` `{ "provider": "exotel", ... }`: the REST credentials (API key and token of
 * the account, for outbound calls), what Exotel must present on our endpoints (`webhookUsername` and
 * `webhookPassword`, default the API key and token), and an optional allow-list of Exotel's addresses.
 */
export const ExotelCredential = z.object({
  accountSid: z.string().min(1).max(100),
  apiKey: z.string().min(1).max(200),
  apiToken: z.string().min(1).max(200),
  /** The region's REST host: https://api.exotel.com (Singapore, default) or https://api.in.exotel.com (Mumbai). */
  apiBaseUrl: z.url().optional(),
  /** The ExoPhone outbound calls show, when `POST /v1/calls` names no `from`. */
  callerId: z.string().min(1).max(32).optional(),
  webhookUsername: z.string().min(1).max(200).optional(),
  webhookPassword: z.string().min(8, 'at least 8 characters').max(200).optional(),
  /** Exotel's egress addresses; empty or absent: any address (Basic auth still applies). */
  allowedIps: z.array(Cidr).max(100).optional(),
  /** The audio Exotel streams (the `sample-rate` query parameter of the stream URL): 8000 (default), 16000 or 24000. */
  sampleRateHz: z.union([z.literal(8000), z.literal(16000), z.literal(24000)]).optional(),
});
export type ExotelCredential = z.output<typeof ExotelCredential>;

/** The stored secret as an ExotelCredential, or the reasons it is not one. */
export function parseExotelCredential(stored: string | undefined): ExotelCredential | { readonly issues: readonly string[] } | undefined {
  if (stored === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(stored);
  } catch {
    return { issues: ['(root): the stored credential is not JSON'] };
  }
  const parsed = ExotelCredential.safeParse(json);
  return parsed.success ? parsed.data : { issues: describeZodIssues(parsed.error) };
}

// ---- HTTP Basic, constant time ----------------------------------------------------------------------------

const utf8 = new TextEncoder();

/**
 * Whether `authorization` is `Basic base64(username:password)` for these credentials. Both sides are hashed
 * (SHA-256) before an XOR compare, so the time taken says nothing about the secret or its length.
 */
export async function checkBasicAuth(authorization: string | undefined, username: string, password: string): Promise<boolean> {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  let presented = '';
  if (match) {
    try {
      presented = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(atob(match[1]!), (c) => c.charCodeAt(0)));
    } catch {
      presented = '';
    }
  }
  const [a, b] = await Promise.all([digest(presented), digest(`${username}:${password}`)]);
  let difference = match ? 0 : 1;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(text)));
}

// ---- IP allow-list ----------------------------------------------------------------------------------------

/** The allow-list check (shared with SIP trunks): shared/tools/ip.ts. */
export { ipAllowed } from '../tools/ip';

// ---- the applet's dynamic stream URL request --------------------------------------------------------------

/** Exotel's call parameters (Passthru-style), all optional: the endpoint answers whatever it is given. */
export interface ExotelCallRequest {
  readonly callSid?: string;
  readonly from?: string;
  readonly to?: string;
  readonly direction?: string;
  readonly customField?: string;
  readonly raw: Readonly<Record<string, string>>;
}

const CallRequest = z.object({
  CallSid: z.string().max(100).optional(),
  CallFrom: z.string().max(64).optional(),
  From: z.string().max(64).optional(),
  CallTo: z.string().max(64).optional(),
  To: z.string().max(64).optional(),
  Direction: z.string().max(40).optional(),
  CustomField: z.string().max(256).optional(),
});

/** The query string and/or form of the dynamic-URL request (Exotel's flow builder sends GET with a query by default). */
export function parseExotelCallRequest(params: Readonly<Record<string, string>>): ExotelCallRequest | ProtocolError {
  const parsed = CallRequest.safeParse(params);
  if (!parsed.success) {
    const issues = describeZodIssues(parsed.error);
    return new ProtocolError(PROTOCOL, 'invalid-webhook', `the stream URL request is malformed: ${issues.join('; ')}`, undefined, issues);
  }
  const p = parsed.data;
  const from = p.CallFrom ?? p.From;
  const to = p.CallTo ?? p.To;
  return {
    ...(p.CallSid ? { callSid: p.CallSid } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    ...(p.Direction ? { direction: p.Direction } : {}),
    ...(p.CustomField ? { customField: p.CustomField } : {}),
    raw: params,
  };
}

/**
 * The dynamic-URL answer (an assumption, stated in docs/channels/exotel.md: Exotel's documentation says only
 * that the applet accepts "an HTTPS endpoint that returns the WSS URL"): `200 application/json {"url": "wss://…"}`.
 */
export function exotelStreamUrlAnswer(url: string): { readonly url: string } {
  return { url };
}

// ---- status callbacks -------------------------------------------------------------------------------------

const EXOTEL_CALL_STATUSES: Readonly<Record<string, CallStatus>> = {
  queued: 'queued',
  ringing: 'ringing',
  'in-progress': 'in-progress',
  answered: 'in-progress',
  completed: 'completed',
  busy: 'busy',
  'no-answer': 'no-answer',
  failed: 'failed',
  canceled: 'canceled',
  cancelled: 'canceled',
};

/** Exotel's `Status` (or `EventType` `answered`) in the runtime's vocabulary; undefined if unknown. */
export function normaliseExotelCallStatus(status: string): CallStatus | undefined {
  const key = status.trim().toLowerCase();
  return Object.hasOwn(EXOTEL_CALL_STATUSES, key) ? EXOTEL_CALL_STATUSES[key] : undefined;
}

export interface ExotelStatusCallback {
  /** Deduplicates Exotel's retries (it retries up to twice on a non-2xx): call sid, event type and status. */
  readonly eventId: string;
  readonly callSid: string;
  readonly status: CallStatus;
  /** `terminal` or `answered` when the request subscribed to events. */
  readonly eventType?: string;
  readonly customField?: string;
  readonly raw: Readonly<Record<string, string>>;
}

const StatusForm = z.object({
  CallSid: z.string().min(1).max(100),
  Status: z.string().max(40).optional(),
  EventType: z.string().max(40).optional(),
  DateUpdated: z.string().max(40).optional(),
  CustomField: z.string().max(256).optional(),
});

/**
 * A status callback (form-encoded by default, JSON when asked for). `Status` is `completed`, `failed`, `busy`
 * or `no-answer` on `terminal`; an `answered` event may carry `in-progress` or no terminal status at all.
 */
export function parseExotelStatusCallback(params: Readonly<Record<string, unknown>>): ExotelStatusCallback | ProtocolError {
  const raw: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === 'string') raw[key] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') raw[key] = String(value);
  }
  const parsed = StatusForm.safeParse(raw);
  if (!parsed.success) {
    const issues = describeZodIssues(parsed.error);
    return new ProtocolError(PROTOCOL, 'invalid-webhook', `the status callback is malformed: ${issues.join('; ')}`, undefined, issues);
  }
  const form = parsed.data;
  const eventType = form.EventType?.toLowerCase();
  const spoken = eventType === 'answered' && (form.Status === undefined || form.Status === '') ? 'answered' : (form.Status ?? '');
  const status = normaliseExotelCallStatus(spoken);
  if (!status) {
    const issue = `Status: "${spoken.slice(0, 40)}" is not an Exotel call status (completed, failed, busy, no-answer, in-progress)`;
    return new ProtocolError(PROTOCOL, 'invalid-webhook', `the status callback is malformed: ${issue}`, undefined, [issue]);
  }
  // DateUpdated ("YYYY-MM-DD HH:mm:ss") names no time zone: it stays in `raw`, and the event is dated on arrival.
  return {
    eventId: `${form.CallSid}:${eventType ?? 'terminal'}:${status}`,
    callSid: form.CallSid,
    status,
    ...(eventType ? { eventType } : {}),
    ...(form.CustomField ? { customField: form.CustomField } : {}),
    raw,
  };
}
