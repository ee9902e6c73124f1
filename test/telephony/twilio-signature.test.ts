import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  signTwilioRequest,
  twilioBodySha256,
  twilioSignaturePayload,
  twilioSignatureUrlVariants,
  verifyTwilioSignature,
  withTwilioBodySha256,
} from '../../shared/telephony/twilio-signature';

/*
 * Vectors are computed here independently with node:crypto from the algorithm of the reference (§1.6),
 * written out longhand; two more come from Twilio's own published samples (api-snippets,
 * security/signature_validation, auth token "12345").
 */
const TOKEN = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
function reference(token: string, url: string, params: Record<string, string | string[]> = {}): string {
  let data = url;
  for (const key of Object.keys(params).sort()) {
    const value = params[key]!;
    if (Array.isArray(value)) for (const v of [...new Set(value)].sort()) data += key + v;
    else data += key + value;
  }
  return createHmac('sha1', Buffer.from(token, 'utf8')).update(Buffer.from(data, 'utf8')).digest('base64');
}

const CALL_FORM = {
  AccountSid: 'AC' + 'a'.repeat(32),
  ApiVersion: '2010-04-01',
  CallSid: 'CA' + 'b'.repeat(32),
  CallStatus: 'ringing',
  Called: '+15005550006',
  Caller: '+14158675309',
  Direction: 'inbound',
  From: '+14158675309',
  To: '+15005550006',
  FromCity: 'SAN FRANCISCO',
  CallToken: '%7B%22parentCallInfoToken%22%3A%22eyJ%22%7D',
};
const URL_ = 'https://voice.example.com/v1/talk/twilio/call/asst_1';

describe("Twilio's published samples", () => {
  const params = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675310', Digits: '1234', From: '+14158675310', To: '+18005551212' };
  const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';

  it('sign and verify reproduce GvWf1cFY/Q7PnoempGyD5oXAezc=', async () => {
    expect(await signTwilioRequest({ authToken: '12345', url, params })).toBe('GvWf1cFY/Q7PnoempGyD5oXAezc=');
    expect(await verifyTwilioSignature({ authToken: '12345', url, params, signature: 'GvWf1cFY/Q7PnoempGyD5oXAezc=' })).toBe(true);
  });

  it('the older sample (other caller number) gives RSOYDt4T1cUTdK1PDd93/VVr8B8=', async () => {
    const older = { ...params, Caller: '+14158675309', From: '+14158675309' };
    expect(await verifyTwilioSignature({ authToken: '12345', url, params: older, signature: 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' })).toBe(true);
    expect(await verifyTwilioSignature({ authToken: '12345', url, params, signature: 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' })).toBe(false);
  });
});

describe('X-Twilio-Signature (§1.6)', () => {
  it('matches an independent HMAC-SHA1 of URL + sorted params, for a record and for a parsed form body', async () => {
    const expected = reference(TOKEN, URL_, CALL_FORM);
    expect(await signTwilioRequest({ authToken: TOKEN, url: URL_, params: CALL_FORM })).toBe(expected);
    const body = new URLSearchParams(Object.entries(CALL_FORM).reverse());
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: body, signature: expected })).toBe(true);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: expected })).toBe(true);
  });

  it('sorts keys by plain code unit order (upper case before lower case, not locale order)', () => {
    expect(twilioSignaturePayload('u', { b: '2', B: '3', a: '1', _x: '4', A1: '5' })).toBe('uA15B3_x4a1b2');
  });

  it('includes every parameter: dropping an unknown one or changing a value invalidates it', async () => {
    const signature = reference(TOKEN, URL_, CALL_FORM);
    const { FromCity: _dropped, ...fewer } = CALL_FORM;
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: fewer, signature })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: { ...CALL_FORM, CallStatus: 'completed' }, signature })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: { ...CALL_FORM, Extra: '' }, signature })).toBe(false);
  });

  it('repeated keys: each unique value, sorted', async () => {
    const params = new URLSearchParams('StatusCallbackEvent=ringing&To=%2B1&StatusCallbackEvent=initiated&StatusCallbackEvent=ringing');
    expect(twilioSignaturePayload('u', params)).toBe('uStatusCallbackEventinitiatedStatusCallbackEventringingTo+1');
    const signature = reference(TOKEN, URL_, { StatusCallbackEvent: ['ringing', 'initiated', 'ringing'], To: '+1' });
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params, signature })).toBe(true);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: { StatusCallbackEvent: ['initiated', 'ringing'], To: '+1' }, signature })).toBe(true);
  });

  it('signs UTF-8 (names, cities) as UTF-8', async () => {
    const params = { CallerName: 'Zoë Ñúñez 😀', FromCity: 'MÜNCHEN' };
    expect(await verifyTwilioSignature({ authToken: 'tökén', url: URL_, params, signature: reference('tökén', URL_, params) })).toBe(true);
  });

  it('keeps the query string exactly as requested (order, encoding): a normalised URL does not verify', async () => {
    const url = 'https://voice.example.com/v1/talk/twilio/event?b=2&a=%20x+y&empty=&a=1';
    const signature = reference(TOKEN, url, CALL_FORM);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url, params: CALL_FORM, signature })).toBe(true);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: 'https://voice.example.com/v1/talk/twilio/event?a=%20x+y&a=1&b=2&empty=', params: CALL_FORM, signature })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: new URL(url).href.replace('+', '%20'), params: CALL_FORM, signature })).toBe(false);
    // Query parameters are not added again as params.
    expect(twilioSignaturePayload(url, {})).toBe(url);
  });

  it('GET webhooks (no form) sign the URL alone', async () => {
    const url = 'https://voice.example.com/hook?CallSid=CA1&From=%2B1';
    expect(await verifyTwilioSignature({ authToken: TOKEN, url, signature: reference(TOKEN, url) })).toBe(true);
  });

  describe('default port: the URL verifies with and without it', () => {
    it.each([
      ['https', 'https://voice.example.com/v1/x?y=1', 'https://voice.example.com:443/v1/x?y=1'],
      ['http', 'http://voice.example.com/v1/x', 'http://voice.example.com:80/v1/x'],
      ['wss (media upgrade)', 'wss://media.example.com/v1/talk/twilio/ctx/c1', 'wss://media.example.com:443/v1/talk/twilio/ctx/c1'],
      ['ws', 'ws://127.0.0.1/v1/talk/twilio/ctx/c1', 'ws://127.0.0.1:80/v1/talk/twilio/ctx/c1'],
      ['IPv6 host', 'https://[2001:db8::1]/hook', 'https://[2001:db8::1]:443/hook'],
      ['user info', 'https://user:pa:ss@voice.example.com/hook', 'https://user:pa:ss@voice.example.com:443/hook'],
      ['no path', 'https://voice.example.com?x=1', 'https://voice.example.com:443?x=1'],
    ])('%s', async (_name, withoutPort, withPort) => {
      expect(twilioSignatureUrlVariants(withoutPort)).toEqual([withoutPort, withPort]);
      expect(twilioSignatureUrlVariants(withPort)).toEqual([withPort, withoutPort]);
      // Twilio signed the port-less form; we know the URL with the port, and the other way round.
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: withPort, params: CALL_FORM, signature: reference(TOKEN, withoutPort, CALL_FORM) })).toBe(true);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: withoutPort, params: CALL_FORM, signature: reference(TOKEN, withPort, CALL_FORM) })).toBe(true);
    });

    it('a non-default port is never dropped or swapped, and a wrong default is not accepted', async () => {
      expect(twilioSignatureUrlVariants('https://voice.example.com:8443/hook')).toEqual(['https://voice.example.com:8443/hook']);
      expect(twilioSignatureUrlVariants('http://voice.example.com:443/hook')).toEqual(['http://voice.example.com:443/hook']);
      expect(twilioSignatureUrlVariants('mailto:x@example.com')).toEqual(['mailto:x@example.com']);
      const signedWithout = reference(TOKEN, 'https://voice.example.com/hook', CALL_FORM);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: 'https://voice.example.com:8443/hook', params: CALL_FORM, signature: signedWithout })).toBe(false);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: 'https://voice.example.com:80/hook', params: CALL_FORM, signature: signedWithout })).toBe(false);
    });

    it('the scheme is part of what is signed (wss:// and https:// are different URLs)', async () => {
      const signature = reference(TOKEN, 'wss://media.example.com/v1/talk/twilio/ctx/c1');
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: 'wss://media.example.com/v1/talk/twilio/ctx/c1', signature })).toBe(true);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: 'https://media.example.com/v1/talk/twilio/ctx/c1', signature })).toBe(false);
    });
  });

  it('refuses a wrong token, a tampered URL, and a missing or empty header or token', async () => {
    const signature = reference(TOKEN, URL_, CALL_FORM);
    expect(await verifyTwilioSignature({ authToken: TOKEN + 'x', url: URL_, params: CALL_FORM, signature })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_ + '2', params: CALL_FORM, signature })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: signature.slice(0, -1) })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: signature + '=' })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: '' })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: null })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: TOKEN, url: URL_, params: CALL_FORM, signature: undefined })).toBe(false);
    expect(await verifyTwilioSignature({ authToken: '', url: URL_, params: CALL_FORM, signature: reference('', URL_, CALL_FORM) })).toBe(false);
    await expect(signTwilioRequest({ authToken: '', url: URL_ })).rejects.toThrow(TypeError);
  });

  describe('JSON bodies: bodySHA256 in the URL', () => {
    const body = '{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}';
    const hash = createHash('sha256').update(body, 'utf8').digest('hex');
    const url = `https://example.com/myapp?bodySHA256=${hash}`;

    it('hashes like the reference and builds the URL', async () => {
      expect(await twilioBodySha256(body)).toBe(hash);
      // The hash of Twilio's own sample body, as printed in its docs.
      expect(hash).toBe('5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9');
      expect(await withTwilioBodySha256('https://example.com/myapp', body)).toBe(url);
      expect(await withTwilioBodySha256('https://example.com/myapp?x=1#f', body)).toBe(`https://example.com/myapp?x=1&bodySHA256=${hash}#f`);
    });

    it('verifies the URL with no params, then the body against the hash', async () => {
      const signature = reference(TOKEN, url);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url, body, signature })).toBe(true);
      // Form params are ignored in this mode.
      expect(await verifyTwilioSignature({ authToken: TOKEN, url, body, params: { a: '1' }, signature })).toBe(true);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url: url.replace('https://example.com', 'https://example.com:443'), body, signature })).toBe(true);
    });

    it('refuses a tampered or missing body, or a signature over the body as params', async () => {
      const signature = reference(TOKEN, url);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url, body: body.replace('3030', '3031'), signature })).toBe(false);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url, signature })).toBe(false);
      expect(await verifyTwilioSignature({ authToken: TOKEN, url, body, signature: reference(TOKEN, url, { CallSid: 'CA1234567890ABCDE' }) })).toBe(false);
    });
  });
});
