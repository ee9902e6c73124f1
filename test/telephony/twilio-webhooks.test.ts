import { describe, expect, it } from 'vitest';
import { CALL_STATUSES } from '../../shared/contracts/call-status';
import { ProtocolError } from '../../shared/telephony/protocol-error';
import {
  normaliseTwilioCallStatus,
  normaliseTwilioDirection,
  parseTwilioStatusCallback,
  parseTwilioStreamStatusCallback,
  parseTwilioVoiceWebhook,
} from '../../shared/telephony/twilio-webhooks';

const CALL = 'CA' + '0123456789abcdef'.repeat(2);
const ACCOUNT = 'AC' + 'ABCDEF0123456789'.repeat(2);

/** An inbound call's Voice URL request as Twilio sends it (§1.1), with parameters the runtime does not use. */
const VOICE_FORM =
  `AccountSid=${ACCOUNT}&ApiVersion=2010-04-01&CallSid=${CALL}&CallStatus=ringing&CallToken=%7B%22x%22%3A1%7D` +
  '&Called=%2B15005550006&CalledCountry=US&Caller=%2B14158675309&CallerCountry=US&Direction=inbound' +
  '&From=%2B14158675309&FromCity=SAN+FRANCISCO&FromCountry=US&To=%2B15005550006&ToCountry=US&CallerName=Zo%C3%AB';

describe('call status normalisation', () => {
  it.each([
    ['queued', 'queued'],
    ['initiated', 'queued'],
    ['ringing', 'ringing'],
    ['in-progress', 'in-progress'],
    ['answered', 'in-progress'],
    ['completed', 'completed'],
    ['busy', 'busy'],
    ['no-answer', 'no-answer'],
    ['failed', 'failed'],
    ['canceled', 'canceled'],
    ['cancelled', 'canceled'],
    ['In-Progress', 'in-progress'],
  ])('%s → %s', (twilio, expected) => {
    expect(normaliseTwilioCallStatus(twilio)).toBe(expected);
  });

  it('every result is in the vocabulary; unknown words (and prototype keys) are undefined', () => {
    for (const status of ['queued', 'initiated', 'ringing', 'answered', 'in-progress', 'completed', 'busy', 'no-answer', 'failed', 'canceled']) {
      expect(CALL_STATUSES).toContain(normaliseTwilioCallStatus(status));
    }
    for (const status of ['', 'unknown', 'in progress', 'toString', '__proto__', 'constructor']) expect(normaliseTwilioCallStatus(status)).toBeUndefined();
  });

  it('directions', () => {
    expect(normaliseTwilioDirection('inbound')).toBe('inbound');
    expect(normaliseTwilioDirection('trunking-originating')).toBe('inbound');
    expect(normaliseTwilioDirection('outbound-api')).toBe('outbound');
    expect(normaliseTwilioDirection('outbound-dial')).toBe('outbound');
    expect(normaliseTwilioDirection('trunking-terminating')).toBe('outbound');
    expect(normaliseTwilioDirection('sideways')).toBeUndefined();
  });
});

describe('the voice webhook', () => {
  it('parses a real-shaped form body and keeps every parameter raw', () => {
    const parsed = parseTwilioVoiceWebhook(new URLSearchParams(VOICE_FORM));
    expect(parsed).toEqual({
      callSid: CALL,
      accountSid: ACCOUNT,
      from: '+14158675309',
      to: '+15005550006',
      direction: 'inbound',
      twilioDirection: 'inbound',
      callStatus: 'ringing',
      callerName: 'Zoë',
      raw: Object.fromEntries(new URLSearchParams(VOICE_FORM)),
    });
    expect((parsed as { raw: Record<string, string> }).raw.FromCity).toBe('SAN FRANCISCO');
  });

  it('accepts a plain record, an outbound-api leg with a parent, and an empty (withheld) caller', () => {
    const parsed = parseTwilioVoiceWebhook({ CallSid: CALL, AccountSid: ACCOUNT, From: '', To: 'client:agent', CallStatus: 'in-progress', Direction: 'outbound-api', ParentCallSid: CALL });
    expect(parsed).toMatchObject({ from: '', to: 'client:agent', direction: 'outbound', twilioDirection: 'outbound-api', callStatus: 'in-progress', parentCallSid: CALL });
  });

  it('names every missing or invalid parameter', () => {
    const error = parseTwilioVoiceWebhook({ CallSid: 'CA123', CallStatus: 'weird', Direction: 'sideways', From: '+1' });
    expect(error).toBeInstanceOf(ProtocolError);
    const e = error as ProtocolError;
    expect(e).toMatchObject({ type: 'protocolError', protocol: 'twilio-webhook', code: 'invalid-webhook' });
    expect(e.issues).toEqual([
      'CallSid: must be "CA" followed by 32 hex digits',
      'AccountSid: missing',
      'To: missing',
      'CallStatus: "weird" is not a Twilio call status',
      'Direction: "sideways" is not a Twilio call direction',
    ]);
    expect(e.message).toMatch(/^Twilio voice webhook: CallSid: must be/);
  });

  it('an empty form is an error, not an exception', () => {
    expect(parseTwilioVoiceWebhook(new URLSearchParams())).toBeInstanceOf(ProtocolError);
  });
});

describe('call status callbacks (§1.5)', () => {
  const base = { CallSid: CALL, AccountSid: ACCOUNT, CallbackSource: 'call-progress-events', Direction: 'outbound-api', From: '+1', To: '+2' };

  it('normalises the status and derives a de-duplication id from the sequence number', () => {
    const parsed = parseTwilioStatusCallback(
      new URLSearchParams({ ...base, CallStatus: 'completed', SequenceNumber: '3', Timestamp: 'Tue, 14 Jan 2025 10:11:12 +0000', CallDuration: '42', SipResponseCode: '200', AnsweredBy: 'human' }),
    );
    expect(parsed).toEqual({
      eventId: `${CALL}:3`,
      callSid: CALL,
      accountSid: ACCOUNT,
      status: 'completed',
      twilioStatus: 'completed',
      sequenceNumber: 3,
      timestamp: 'Tue, 14 Jan 2025 10:11:12 +0000',
      occurredAtMs: Date.UTC(2025, 0, 14, 10, 11, 12),
      callDurationSeconds: 42,
      sipResponseCode: 200,
      answeredBy: 'human',
      raw: { ...base, CallStatus: 'completed', SequenceNumber: '3', Timestamp: 'Tue, 14 Jan 2025 10:11:12 +0000', CallDuration: '42', SipResponseCode: '200', AnsweredBy: 'human' },
    });
  });

  it('without a sequence number the id falls back to the status as sent; a redelivery gets the same id', () => {
    const first = parseTwilioStatusCallback({ CallSid: CALL, CallStatus: 'initiated' });
    const again = parseTwilioStatusCallback({ CallSid: CALL, CallStatus: 'initiated' });
    const queued = parseTwilioStatusCallback({ CallSid: CALL, CallStatus: 'queued' });
    expect(first).toMatchObject({ eventId: `${CALL}:initiated`, status: 'queued', twilioStatus: 'initiated' });
    expect((again as { eventId: string }).eventId).toBe((first as { eventId: string }).eventId);
    expect((queued as { eventId: string }).eventId).not.toBe((first as { eventId: string }).eventId);
    expect(first).not.toHaveProperty('occurredAtMs');
  });

  it('an unparseable Timestamp is kept raw without a time', () => {
    expect(parseTwilioStatusCallback({ CallSid: CALL, CallStatus: 'ringing', Timestamp: 'soon' })).toMatchObject({ timestamp: 'soon' });
    expect(parseTwilioStatusCallback({ CallSid: CALL, CallStatus: 'ringing', Timestamp: 'soon' })).not.toHaveProperty('occurredAtMs');
  });

  it('refuses a bad sequence number, an unknown status or a missing CallSid, naming them', () => {
    const error = parseTwilioStatusCallback({ CallStatus: 'exploded', SequenceNumber: 'x' }) as ProtocolError;
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.issues).toEqual(['CallSid: missing', 'CallStatus: "exploded" is not a Twilio call status', 'SequenceNumber: must be a whole number']);
    expect(error.message).toMatch(/^Twilio status callback: /);
  });
});

describe('stream status callbacks (§1.2)', () => {
  it('parses started / stopped / error', () => {
    expect(parseTwilioStreamStatusCallback({ AccountSid: ACCOUNT, CallSid: CALL, StreamSid: 'MZ1', StreamName: 'agent', StreamEvent: 'stream-started', Timestamp: 't' })).toMatchObject({
      eventId: 'MZ1:stream-started',
      callSid: CALL,
      streamSid: 'MZ1',
      streamName: 'agent',
      event: 'stream-started',
      timestamp: 't',
    });
    expect(parseTwilioStreamStatusCallback({ CallSid: CALL, StreamSid: 'MZ1', StreamEvent: 'stream-error', StreamError: 'Stream - WebSocket - Connection Refused' })).toMatchObject({
      event: 'stream-error',
      error: 'Stream - WebSocket - Connection Refused',
    });
    const error = parseTwilioStreamStatusCallback({ CallSid: CALL, StreamSid: 'MZ1', StreamEvent: 'stream-paused' }) as ProtocolError;
    expect(error.issues[0]).toMatch(/^StreamEvent: /);
  });
});
