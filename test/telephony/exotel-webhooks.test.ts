import { describe, expect, it } from 'vitest';
import { checkBasicAuth, ipAllowed, parseExotelCallRequest, parseExotelCredential, parseExotelStatusCallback } from '../../shared/telephony/exotel-webhooks';
import { parseIp } from '../../shared/tools/ip';

const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

describe('HTTP Basic check', () => {
  it('accepts exactly the stored pair', async () => {
    expect(await checkBasicAuth(basic('key', 'token-123'), 'key', 'token-123')).toBe(true);
    expect(await checkBasicAuth(`basic   ${btoa('key:token-123')}`, 'key', 'token-123')).toBe(true);
    expect(await checkBasicAuth(basic('key', 'token-124'), 'key', 'token-123')).toBe(false);
    expect(await checkBasicAuth(basic('kez', 'token-123'), 'key', 'token-123')).toBe(false);
    expect(await checkBasicAuth(undefined, 'key', 'token-123')).toBe(false);
    expect(await checkBasicAuth('Bearer key:token-123', 'key', 'token-123')).toBe(false);
    expect(await checkBasicAuth('Basic !!!', 'key', 'token-123')).toBe(false);
  });
});

describe('IP allow-list', () => {
  it('matches IPv4 and IPv6 CIDRs (IPv4-mapped IPv6 read as IPv4) and fails closed on unknown addresses', () => {
    expect(ipAllowed('203.0.113.7', ['203.0.113.0/24'])).toBe(true);
    expect(ipAllowed('203.0.114.7', ['203.0.113.0/24'])).toBe(false);
    expect(ipAllowed('::ffff:203.0.113.7', ['203.0.113.0/28'])).toBe(true);
    expect(ipAllowed('203.0.113.17', ['203.0.113.0/28'])).toBe(false);
    expect(ipAllowed('10.1.2.3', ['10.1.2.3'])).toBe(true);
    expect(ipAllowed('2001:db8::1', ['2001:db8::/32'])).toBe(true);
    expect(ipAllowed('2001:db9::1', ['2001:db8::/32'])).toBe(false);
    expect(ipAllowed('2001:db8::1', ['0.0.0.0/0'])).toBe(false);
    expect(ipAllowed(undefined, ['0.0.0.0/0'])).toBe(false);
    expect(ipAllowed('not-an-ip', ['0.0.0.0/0'])).toBe(false);
    expect(parseIp('::1')).toEqual(Uint8Array.from([...new Array(15).fill(0), 1]));
    expect(parseIp('1.2.3.256')).toBeUndefined();
  });
});

describe('the stored credential', () => {
  it('needs accountSid, apiKey and apiToken; checks CIDRs and the sample rate', () => {
    expect(parseExotelCredential(JSON.stringify({ accountSid: 'acme1', apiKey: 'k', apiToken: 't', allowedIps: ['203.0.113.0/24'], sampleRateHz: 16000 }))).toMatchObject({ sampleRateHz: 16000 });
    expect(parseExotelCredential(undefined)).toBeUndefined();
    const bad = parseExotelCredential(JSON.stringify({ accountSid: 'acme1', apiKey: 'k', allowedIps: ['300.0.0.0/8'], sampleRateHz: 44100 }));
    expect(bad && 'issues' in bad ? bad.issues.join('\n') : '').toMatch(/apiToken[\s\S]*allowedIps\.0[\s\S]*sampleRateHz/);
  });
});

describe('Exotel requests', () => {
  it('reads the dynamic-URL request (CallFrom/CallTo or From/To)', () => {
    expect(parseExotelCallRequest({ CallSid: 'abc', CallFrom: '09876543210', CallTo: '08047491899', CustomField: 'x' })).toMatchObject({
      callSid: 'abc',
      from: '09876543210',
      to: '08047491899',
      customField: 'x',
    });
    expect(parseExotelCallRequest({})).toMatchObject({ raw: {} });
  });

  it('normalises status callbacks and names each event for deduplication', () => {
    expect(parseExotelStatusCallback({ CallSid: 'abc', Status: 'completed', EventType: 'terminal', DateUpdated: '2024-01-15 14:30:45' })).toMatchObject({
      callSid: 'abc',
      status: 'completed',
      eventId: 'abc:terminal:completed',
    });
    expect(parseExotelStatusCallback({ CallSid: 'abc', Status: 'no-answer' })).toMatchObject({ status: 'no-answer' });
    expect(parseExotelStatusCallback({ CallSid: 'abc', EventType: 'answered' })).toMatchObject({ status: 'in-progress', eventId: 'abc:answered:in-progress' });
    expect(parseExotelStatusCallback({ CallSid: 'abc', Status: 'exploded' })).toMatchObject({ type: 'protocolError', code: 'invalid-webhook' });
    expect(parseExotelStatusCallback({ Status: 'completed' })).toMatchObject({ type: 'protocolError' });
  });
});
