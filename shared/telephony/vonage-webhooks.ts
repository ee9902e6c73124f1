import { z } from 'zod';
import type { CallDirection, CallStatus } from '../contracts/call-status';
import { ProtocolError, describeZodIssues } from './protocol-error';
import { vonageContentType, type VonageSampleRate } from './vonage';

/**
 * Vonage's HTTP requests to us and the NCCO we answer, as pure functions (telephony reference §2.1, §2.3):
 * the answer webhook of a call (GET query parameters or a POST JSON body), the event webhook (POST JSON), and
 * the `connect` → `websocket` NCCO. Parsers validate what the runtime relies on, keep everything in `raw`, and
 * return a ProtocolError naming each wrong field, never throw. Signatures are checked before (vonage-jwt.ts).
 */

const PROTOCOL = 'vonage-webhook';

// ---- status vocabulary ------------------------------------------------------------------------------------

const VONAGE_CALL_STATUSES: Readonly<Record<string, CallStatus>> = {
  started: 'queued', // the call is being set up (an outbound call is dialling)
  ringing: 'ringing',
  answered: 'in-progress',
  completed: 'completed',
  busy: 'busy',
  cancelled: 'canceled',
  canceled: 'canceled',
  unanswered: 'no-answer',
  timeout: 'no-answer', // rang out
  rejected: 'failed',
  failed: 'failed',
};

/**
 * Vonage's call status in the runtime's vocabulary; undefined for events that are not a call state
 * (`disconnected` — a WebSocket leg closed, the call itself may go on —, AMD's `machine`/`human`, `input`,
 * `transfer`, `record`, ...): those are stored, never applied.
 */
export function normaliseVonageCallStatus(status: string): CallStatus | undefined {
  const key = status.toLowerCase();
  return Object.hasOwn(VONAGE_CALL_STATUSES, key) ? VONAGE_CALL_STATUSES[key] : undefined;
}

// ---- the answer webhook -----------------------------------------------------------------------------------

/** A flat record of the request parameters: the query of a GET, the JSON body of a POST. */
export type VonageParams = Readonly<Record<string, unknown>>;

const AnswerWebhook = z.object({
  uuid: z.string().min(1, 'must not be empty').max(200),
  conversation_uuid: z.string().max(200).optional(),
  // Present but possibly empty (a withheld number), so only the type is checked.
  from: z.string().max(300).default(''),
  to: z.string().max(300).default(''),
});

export interface VonageAnswerWebhook {
  /** The leg's id: what the REST API and event webhooks name the call by. */
  readonly uuid: string;
  readonly conversationUuid?: string;
  readonly from: string;
  readonly to: string;
  /** `SipHeader_X-…` parameters (custom SIP X-headers), by header name. */
  readonly sipHeaders: Readonly<Record<string, string>>;
  readonly raw: VonageParams;
}

export function parseVonageAnswerWebhook(params: VonageParams): VonageAnswerWebhook | ProtocolError {
  const parsed = AnswerWebhook.safeParse(params);
  if (!parsed.success) return invalid('answer webhook', parsed.error);
  const sipHeaders: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key.startsWith('SipHeader_') && typeof value === 'string') sipHeaders[key.slice('SipHeader_'.length)] = value;
  }
  const { uuid, conversation_uuid: conversationUuid, from, to } = parsed.data;
  return { uuid, ...(conversationUuid ? { conversationUuid } : {}), from, to, sipHeaders, raw: params };
}

// ---- the event webhook ------------------------------------------------------------------------------------

const EventWebhook = z
  .object({
    uuid: z.string().min(1).max(200).optional(),
    conversation_uuid: z.string().min(1).max(200).optional(),
    status: z.string().min(1).max(100).optional(),
    direction: z.string().max(50).optional(),
    timestamp: z.string().max(100).optional(),
    from: z.string().max(1000).optional(),
    to: z.string().max(1000).optional(),
    duration: z.union([z.string(), z.number()]).optional(),
  })
  .refine((event) => event.uuid !== undefined || event.conversation_uuid !== undefined, { message: 'names no call: neither "uuid" nor "conversation_uuid"', path: ['uuid'] });

export interface VonageEvent {
  /** Stable per event, for de-duplication of retries: `{uuid}:{status}:{timestamp}`. */
  readonly eventId: string;
  readonly uuid?: string;
  readonly conversationUuid?: string;
  /** Normalised; undefined when the event is not a call state. */
  readonly status?: CallStatus;
  /** `status` as sent. */
  readonly vonageStatus?: string;
  readonly direction?: CallDirection;
  readonly from?: string;
  readonly to?: string;
  readonly timestamp?: string;
  readonly occurredAtMs?: number;
  readonly durationSeconds?: number;
  readonly raw: VonageParams;
}

export function parseVonageEvent(params: VonageParams): VonageEvent | ProtocolError {
  const parsed = EventWebhook.safeParse(params);
  if (!parsed.success) return invalid('event webhook', parsed.error);
  const event = parsed.data;
  const status = event.status === undefined ? undefined : normaliseVonageCallStatus(event.status);
  const occurredAtMs = event.timestamp === undefined ? Number.NaN : Date.parse(event.timestamp);
  const durationSeconds = event.duration === undefined ? Number.NaN : Number(event.duration);
  const direction: CallDirection | undefined = event.direction === 'inbound' || event.direction === 'outbound' ? event.direction : undefined;
  return {
    eventId: `${event.uuid ?? event.conversation_uuid}:${event.status ?? 'event'}:${event.timestamp ?? ''}`,
    ...optional('uuid', event.uuid),
    ...optional('conversationUuid', event.conversation_uuid),
    ...optional('status', status),
    ...optional('vonageStatus', event.status),
    ...optional('direction', direction),
    ...optional('from', event.from),
    ...optional('to', event.to),
    ...optional('timestamp', event.timestamp),
    ...optional('occurredAtMs', Number.isFinite(occurredAtMs) ? occurredAtMs : undefined),
    ...optional('durationSeconds', Number.isFinite(durationSeconds) ? durationSeconds : undefined),
    raw: params,
  };
}

/** True when the event is about a WebSocket leg (its `to`/`from` is a ws:// or wss:// URI), not a phone. */
export function isVonageWebSocketLeg(event: Pick<VonageEvent, 'to' | 'from'>): boolean {
  return /^wss?:\/\//i.test(event.to ?? '') || /^wss?:\/\//i.test(event.from ?? '');
}

// ---- the NCCO ---------------------------------------------------------------------------------------------

export interface VonageConnectNccoInput {
  /** `wss://host/v1/talk/vonage/ctx/{contextId}`. */
  readonly websocketUri: string;
  readonly sampleRateHz: VonageSampleRate;
  /** Delivered in the first WebSocket message and echoed in the leg's events; ≤ 512 bytes of JSON in all. */
  readonly headers: Readonly<Record<string, string>>;
  /** Where the WebSocket leg's events go (connect failed, disconnected). */
  readonly eventUrl?: string;
}

/** Vonage's limit on the endpoint's `headers`. */
export const VONAGE_MAX_HEADERS_BYTES = 512;

/** `[{ action: 'connect', endpoint: [{ type: 'websocket', uri, content-type, headers }] }]`. */
export function vonageConnectNcco(input: VonageConnectNccoInput): readonly Record<string, unknown>[] {
  const headersBytes = new TextEncoder().encode(JSON.stringify(input.headers)).length;
  if (headersBytes > VONAGE_MAX_HEADERS_BYTES) throw new RangeError(`the NCCO websocket headers take ${headersBytes} bytes; Vonage allows ${VONAGE_MAX_HEADERS_BYTES}`);
  return [
    {
      action: 'connect',
      ...(input.eventUrl ? { eventUrl: [input.eventUrl], eventMethod: 'POST' } : {}),
      endpoint: [{ type: 'websocket', uri: input.websocketUri, 'content-type': vonageContentType(input.sampleRateHz), headers: input.headers }],
    },
  ];
}

/** Says `text` and ends the call (an assistant that cannot take calls, all lines busy). */
export function vonageTalkNcco(text: string): readonly Record<string, unknown>[] {
  return [{ action: 'talk', text }];
}

// ---- helpers ----------------------------------------------------------------------------------------------

function invalid(what: string, error: z.ZodError): ProtocolError {
  const issues = describeZodIssues(error);
  return new ProtocolError(PROTOCOL, 'invalid-webhook', `Vonage ${what}: ${issues.join('; ')}`, undefined, issues);
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
