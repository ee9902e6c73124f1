import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../shared/telephony/protocol-error';
import { isVonageWebSocketLeg, normaliseVonageCallStatus, parseVonageAnswerWebhook, parseVonageEvent, vonageConnectNcco, vonageTalkNcco } from '../../shared/telephony/vonage-webhooks';

// Payloads as the telephony reference shows them (§2.1, §2.3).

describe('the Vonage answer webhook (§2.1)', () => {
  it('reads to, from, uuid, conversation_uuid and SIP X-headers, keeping everything raw', () => {
    const params = { to: '447700900000', from: '447700900001', uuid: 'aaaaaaaa-bbbb', conversation_uuid: 'CON-1', 'SipHeader_X-Tenant': 'acme', region_url: 'https://api-eu.vonage.com' };
    expect(parseVonageAnswerWebhook(params)).toEqual({
      uuid: 'aaaaaaaa-bbbb',
      conversationUuid: 'CON-1',
      from: '447700900001',
      to: '447700900000',
      sipHeaders: { 'X-Tenant': 'acme' },
      raw: params,
    });
  });

  it('needs a uuid; a withheld number is an empty from', () => {
    expect(parseVonageAnswerWebhook({ uuid: 'u', to: '1' })).toMatchObject({ from: '' });
    const error = parseVonageAnswerWebhook({ to: '1' });
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).issues).toEqual(['uuid: missing']);
  });
});

describe('Vonage event webhooks (§2.3)', () => {
  it('normalises call states to the runtime vocabulary and leaves other events unapplied', () => {
    const expected: Record<string, string | undefined> = {
      started: 'queued',
      ringing: 'ringing',
      answered: 'in-progress',
      completed: 'completed',
      busy: 'busy',
      cancelled: 'canceled',
      unanswered: 'no-answer',
      timeout: 'no-answer',
      rejected: 'failed',
      failed: 'failed',
      disconnected: undefined,
      machine: undefined,
      human: undefined,
      input: undefined,
    };
    for (const [status, normalised] of Object.entries(expected)) expect(normaliseVonageCallStatus(status), status).toBe(normalised);
  });

  it('parses a completed event with an id that repeats on a retry', () => {
    const raw = { from: '442079460000', to: '447700900000', uuid: 'u1', conversation_uuid: 'CON-1', status: 'completed', direction: 'inbound', timestamp: '2020-03-31T12:00:00.000Z', duration: '42' };
    const event = parseVonageEvent(raw);
    expect(event).toEqual({
      eventId: 'u1:completed:2020-03-31T12:00:00.000Z',
      uuid: 'u1',
      conversationUuid: 'CON-1',
      status: 'completed',
      vonageStatus: 'completed',
      direction: 'inbound',
      from: '442079460000',
      to: '447700900000',
      timestamp: '2020-03-31T12:00:00.000Z',
      occurredAtMs: Date.parse('2020-03-31T12:00:00.000Z'),
      durationSeconds: 42,
      raw,
    });
    expect((parseVonageEvent({ ...raw }) as { eventId: string }).eventId).toBe((event as { eventId: string }).eventId);
  });

  it('refuses an event that names no call, and tells the WebSocket leg from the phone', () => {
    expect(parseVonageEvent({ status: 'answered' })).toBeInstanceOf(ProtocolError);
    expect(parseVonageEvent({ conversation_uuid: 'CON-1', status: 42 })).toBeInstanceOf(ProtocolError);
    expect(isVonageWebSocketLeg({ to: 'wss://media.example.com/v1/talk/vonage/ctx/1' })).toBe(true);
    expect(isVonageWebSocketLeg({ to: '447700900000', from: '442079460000' })).toBe(false);
  });
});

describe('NCCOs', () => {
  it('connect → websocket with content-type, headers and the event URL', () => {
    expect(vonageConnectNcco({ websocketUri: 'wss://m/v1/talk/vonage/ctx/c1', sampleRateHz: 8000, headers: { contextId: 'c1' }, eventUrl: 'https://e/ev' })).toEqual([
      {
        action: 'connect',
        eventUrl: ['https://e/ev'],
        eventMethod: 'POST',
        endpoint: [{ type: 'websocket', uri: 'wss://m/v1/talk/vonage/ctx/c1', 'content-type': 'audio/l16;rate=8000', headers: { contextId: 'c1' } }],
      },
    ]);
    expect(vonageTalkNcco('Sorry')).toEqual([{ action: 'talk', text: 'Sorry' }]);
  });

  it('refuses headers over Vonage\'s 512 bytes', () => {
    expect(() => vonageConnectNcco({ websocketUri: 'wss://m', sampleRateHz: 16000, headers: { big: 'x'.repeat(600) } })).toThrow(/512/);
  });
});
