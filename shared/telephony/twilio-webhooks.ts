import { z } from 'zod';
import type { CallDirection, CallStatus } from '../contracts/call-status';
import { ProtocolError, describeZodIssues } from './protocol-error';

/**
 * Twilio's HTTP requests to us, as pure parsers (telephony reference §1.1, §1.2, §1.5): the voice webhook of
 * an incoming call, call status callbacks and stream status callbacks. Each takes the form parameters
 * (after the signature has been checked), validates what the runtime relies on, and keeps every parameter in
 * `raw` (Twilio adds parameters without notice). Bad input is returned as a ProtocolError naming each
 * wrong parameter, never thrown.
 */

const PROTOCOL = 'twilio-webhook';

/** Form parameters as received: a parsed body or a plain record. */
export type TwilioForm = URLSearchParams | Readonly<Record<string, string>>;

/** A flat record of the form; for a repeated key the last value wins (Twilio does not repeat these keys). */
export function twilioFormToRecord(params: TwilioForm): Record<string, string> {
  if (params instanceof URLSearchParams) return Object.fromEntries(params);
  return { ...params };
}

// ---- call status ------------------------------------------------------------------------------------------

const TWILIO_CALL_STATUSES: Readonly<Record<string, CallStatus>> = {
  queued: 'queued',
  initiated: 'queued', // StatusCallbackEvent `initiated`: Twilio is dialling
  ringing: 'ringing',
  'in-progress': 'in-progress',
  answered: 'in-progress', // StatusCallbackEvent `answered`
  completed: 'completed',
  busy: 'busy',
  'no-answer': 'no-answer',
  failed: 'failed',
  canceled: 'canceled',
  cancelled: 'canceled',
};

/** Twilio's call status (or status-callback event name) in the runtime's vocabulary; undefined if unknown. */
export function normaliseTwilioCallStatus(status: string): CallStatus | undefined {
  return Object.hasOwn(TWILIO_CALL_STATUSES, status.toLowerCase()) ? TWILIO_CALL_STATUSES[status.toLowerCase()] : undefined;
}

/** `inbound` (and SIP-trunk `trunking-originating`) is inbound; `outbound-api`, `outbound-dial`, `trunking-terminating` outbound. */
export function normaliseTwilioDirection(direction: string): CallDirection | undefined {
  if (direction === 'inbound' || direction === 'trunking-originating') return 'inbound';
  if (direction === 'outbound-api' || direction === 'outbound-dial' || direction === 'trunking-terminating') return 'outbound';
  return undefined;
}

// ---- schemas ----------------------------------------------------------------------------------------------

const callSid = z.string().regex(/^CA[0-9a-fA-F]{32}$/, 'must be "CA" followed by 32 hex digits');
const accountSid = z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be "AC" followed by 32 hex digits');
const callStatus = z
  .string()
  .transform((value, ctx) => {
    const status = normaliseTwilioCallStatus(value);
    if (status === undefined) ctx.addIssue({ code: 'custom', message: `"${clip(value)}" is not a Twilio call status` });
    return status ?? 'failed';
  });
const direction = z.string().transform((value, ctx) => {
  const normalised = normaliseTwilioDirection(value);
  if (normalised === undefined) ctx.addIssue({ code: 'custom', message: `"${clip(value)}" is not a Twilio call direction` });
  return normalised ?? 'inbound';
});
const whole = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a whole number')
  .transform(Number);
/** Present in the form but possibly empty (e.g. an anonymous caller), so only its presence is required. */
const party = z.string();

const VoiceWebhookForm = z.object({
  CallSid: callSid,
  AccountSid: accountSid,
  From: party,
  To: party,
  CallStatus: callStatus,
  Direction: direction,
});

const StatusCallbackForm = z.object({
  CallSid: callSid,
  AccountSid: accountSid.optional(),
  CallStatus: callStatus,
  SequenceNumber: whole.optional(),
  CallDuration: whole.optional(),
  SipResponseCode: whole.optional(),
});

const StreamStatusForm = z.object({
  CallSid: callSid,
  AccountSid: accountSid.optional(),
  StreamSid: z.string().min(1, 'must not be empty'),
  StreamEvent: z.enum(['stream-started', 'stream-stopped', 'stream-error']),
});

// ---- the voice webhook ------------------------------------------------------------------------------------

export interface TwilioVoiceWebhook {
  readonly callSid: string;
  readonly accountSid: string;
  /** E.164, `client:name` or a SIP URI, as sent. */
  readonly from: string;
  readonly to: string;
  readonly direction: CallDirection;
  /** As sent: `inbound`, `outbound-api`, `outbound-dial`, `trunking-*`. */
  readonly twilioDirection: string;
  readonly callStatus: CallStatus;
  readonly parentCallSid?: string;
  readonly callerName?: string;
  readonly forwardedFrom?: string;
  /** Every parameter received. */
  readonly raw: Readonly<Record<string, string>>;
}

/** The Voice URL request of a call (§1.1). */
export function parseTwilioVoiceWebhook(params: TwilioForm): TwilioVoiceWebhook | ProtocolError {
  const raw = twilioFormToRecord(params);
  const parsed = VoiceWebhookForm.safeParse(raw);
  if (!parsed.success) return invalid('voice webhook', parsed.error);
  const form = parsed.data;
  return {
    callSid: form.CallSid,
    accountSid: form.AccountSid,
    from: form.From,
    to: form.To,
    direction: form.Direction,
    twilioDirection: raw.Direction ?? '',
    callStatus: form.CallStatus,
    ...optional('parentCallSid', raw.ParentCallSid),
    ...optional('callerName', raw.CallerName),
    ...optional('forwardedFrom', raw.ForwardedFrom),
    raw,
  };
}

// ---- call status callbacks --------------------------------------------------------------------------------

export interface TwilioStatusCallback {
  /** Stable per event, for de-duplication: `{CallSid}:{SequenceNumber}`, or `{CallSid}:{CallStatus}` without one. */
  readonly eventId: string;
  readonly callSid: string;
  readonly accountSid?: string;
  readonly status: CallStatus;
  /** `CallStatus` as sent. */
  readonly twilioStatus: string;
  /** Order of this call's callbacks, lowest first. */
  readonly sequenceNumber?: number;
  /** `Timestamp` as sent (RFC 2822). */
  readonly timestamp?: string;
  /** `Timestamp` in epoch ms, when it parses. */
  readonly occurredAtMs?: number;
  readonly callDurationSeconds?: number;
  readonly sipResponseCode?: number;
  /** With answering-machine detection: `human`, `machine_start`, … */
  readonly answeredBy?: string;
  readonly raw: Readonly<Record<string, string>>;
}

/** A call status callback (§1.5). */
export function parseTwilioStatusCallback(params: TwilioForm): TwilioStatusCallback | ProtocolError {
  const raw = twilioFormToRecord(params);
  const parsed = StatusCallbackForm.safeParse(raw);
  if (!parsed.success) return invalid('status callback', parsed.error);
  const form = parsed.data;
  const twilioStatus = raw.CallStatus ?? '';
  const occurredAtMs = raw.Timestamp === undefined ? Number.NaN : Date.parse(raw.Timestamp);
  return {
    eventId: `${form.CallSid}:${form.SequenceNumber ?? twilioStatus}`,
    callSid: form.CallSid,
    ...optional('accountSid', form.AccountSid),
    status: form.CallStatus,
    twilioStatus,
    ...optional('sequenceNumber', form.SequenceNumber),
    ...optional('timestamp', raw.Timestamp),
    ...optional('occurredAtMs', Number.isFinite(occurredAtMs) ? occurredAtMs : undefined),
    ...optional('callDurationSeconds', form.CallDuration),
    ...optional('sipResponseCode', form.SipResponseCode),
    ...optional('answeredBy', raw.AnsweredBy),
    raw,
  };
}

// ---- stream status callbacks ------------------------------------------------------------------------------

export interface TwilioStreamStatusCallback {
  /** `{StreamSid}:{StreamEvent}`: each stream starts and stops once. */
  readonly eventId: string;
  readonly callSid: string;
  readonly accountSid?: string;
  readonly streamSid: string;
  readonly streamName?: string;
  readonly event: 'stream-started' | 'stream-stopped' | 'stream-error';
  /** `StreamError`, on `stream-error`. */
  readonly error?: string;
  readonly timestamp?: string;
  readonly raw: Readonly<Record<string, string>>;
}

/** The `<Stream statusCallback>` request (§1.2). */
export function parseTwilioStreamStatusCallback(params: TwilioForm): TwilioStreamStatusCallback | ProtocolError {
  const raw = twilioFormToRecord(params);
  const parsed = StreamStatusForm.safeParse(raw);
  if (!parsed.success) return invalid('stream status callback', parsed.error);
  const form = parsed.data;
  return {
    eventId: `${form.StreamSid}:${form.StreamEvent}`,
    callSid: form.CallSid,
    ...optional('accountSid', form.AccountSid),
    streamSid: form.StreamSid,
    ...optional('streamName', raw.StreamName),
    event: form.StreamEvent,
    ...optional('error', raw.StreamError),
    ...optional('timestamp', raw.Timestamp),
    raw,
  };
}

// ---- helpers ----------------------------------------------------------------------------------------------

function invalid(what: string, error: z.ZodError): ProtocolError {
  const issues = describeZodIssues(error);
  return new ProtocolError(PROTOCOL, 'invalid-webhook', `Twilio ${what}: ${issues.join('; ')}`, undefined, issues);
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
