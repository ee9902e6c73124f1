/**
 * The call status vocabulary, normalised from every carrier (Twilio, Vonage, Exotel, Asterisk, SIP), with one
 * spelling everywhere: call contexts, conversations, call events.
 */
export const CALL_STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer', 'failed', 'canceled'] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

/** Statuses a call never leaves. */
export const TERMINAL_CALL_STATUSES: readonly CallStatus[] = ['completed', 'busy', 'no-answer', 'failed', 'canceled'];

export type CallDirection = 'inbound' | 'outbound';

export function isCallStatus(value: unknown): value is CallStatus {
  return typeof value === 'string' && (CALL_STATUSES as readonly string[]).includes(value);
}

export function isTerminalCallStatus(status: CallStatus): boolean {
  return TERMINAL_CALL_STATUSES.includes(status);
}
