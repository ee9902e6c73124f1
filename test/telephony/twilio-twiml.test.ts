import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/contracts/errors';
import { connectStreamTwiml, escapeXml, hangupTwiml, rejectTwiml, sayAndHangupTwiml } from '../../shared/telephony/twiml';

const DECL = '<?xml version="1.0" encoding="UTF-8"?>';

/** Reads the attributes of every `<Parameter/>` back, undoing the five entities and numeric references. */
function parameters(xml: string): [string, string][] {
  const unescape = (s: string) =>
    s.replace(/&(#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) =>
      e.startsWith('#') ? String.fromCharCode(Number(e.slice(1))) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
    );
  return [...xml.matchAll(/<Parameter name="([^"<>]*)" value="([^"<>]*)"\/>/g)].map((m) => [unescape(m[1]!), unescape(m[2]!)]);
}

describe('TwiML answers (§1.2)', () => {
  it('connects a bidirectional stream with its parameters', () => {
    expect(connectStreamTwiml({ streamUrl: 'wss://media.example.com/v1/talk/twilio/ctx/ctx_1', parameters: { assistantId: 'a1', contextId: 'ctx_1' } })).toBe(
      `${DECL}<Response><Connect><Stream url="wss://media.example.com/v1/talk/twilio/ctx/ctx_1">` +
        '<Parameter name="assistantId" value="a1"/><Parameter name="contextId" value="ctx_1"/></Stream></Connect></Response>',
    );
  });

  it('adds name and a stream status callback (POST by default), and self-closes an empty stream', () => {
    expect(connectStreamTwiml({ streamUrl: 'wss://m.example.com/s', name: 'agent', statusCallback: 'https://app.example.com/stream-status?a=1&b=2' })).toBe(
      `${DECL}<Response><Connect><Stream url="wss://m.example.com/s" name="agent" statusCallback="https://app.example.com/stream-status?a=1&amp;b=2" statusCallbackMethod="POST"/></Connect></Response>`,
    );
    expect(connectStreamTwiml({ streamUrl: 'ws://127.0.0.1:9007/v1/talk/twilio/ctx/c', statusCallback: 'http://x/y', statusCallbackMethod: 'GET' })).toContain('statusCallbackMethod="GET"');
  });

  it('escapes parameter names and values so hostile text cannot change the document', () => {
    const hostile = {
      'a"b': `"/><Hangup/><Parameter name="x" value="`,
      amp: 'Tom & Jerry <tom@example.com>',
      quote: "it's \"quoted\"",
      lines: 'one\ntwo\tthree\r\nfour',
      unicode: 'Zoë 😀 日本',
    };
    const xml = connectStreamTwiml({ streamUrl: 'wss://m.example.com/s', parameters: hostile });
    expect(xml).not.toContain('<Hangup/>');
    expect(xml.match(/<Parameter /g)).toHaveLength(5);
    expect(parameters(xml)).toEqual(Object.entries(hostile));
    expect(xml).toContain('value="one&#10;two&#9;three&#13;&#10;four"');
  });

  it('refuses stream URLs Twilio would reject or change', () => {
    expect(() => connectStreamTwiml({ streamUrl: 'https://m.example.com/s' })).toThrow(ConfigError);
    expect(() => connectStreamTwiml({ streamUrl: 'wss://m.example.com/s?ctx=1' })).toThrow(/query strings/);
    expect(() => connectStreamTwiml({ streamUrl: 'wss://m.example.com/s#f' })).toThrow(ConfigError);
    expect(() => connectStreamTwiml({ streamUrl: 'wss://' })).toThrow(ConfigError);
    expect(() => connectStreamTwiml({ streamUrl: 'WSS://m.example.com/s' })).not.toThrow();
  });

  it('rejects, hangs up, or says a clear failure and hangs up', () => {
    expect(rejectTwiml()).toBe(`${DECL}<Response><Reject reason="rejected"/></Response>`);
    expect(rejectTwiml('busy')).toBe(`${DECL}<Response><Reject reason="busy"/></Response>`);
    expect(hangupTwiml()).toBe(`${DECL}<Response><Hangup/></Response>`);
    expect(sayAndHangupTwiml('Sorry, this number is not configured. <Goodbye> & "bye"')).toBe(
      `${DECL}<Response><Say>Sorry, this number is not configured. &lt;Goodbye&gt; &amp; &quot;bye&quot;</Say><Hangup/></Response>`,
    );
    expect(sayAndHangupTwiml('Hallo', { voice: 'Polly.Marlene', language: 'de-DE' })).toBe(
      `${DECL}<Response><Say voice="Polly.Marlene" language="de-DE">Hallo</Say><Hangup/></Response>`,
    );
  });

  it('escapeXml drops characters XML 1.0 cannot carry and repairs lone surrogates', () => {
    expect(escapeXml('a\u0000b\u0007c\u001fd\ufffee')).toBe('abcde');
    expect(escapeXml('x\ud800y')).toBe('x\ufffdy');
    expect(escapeXml('x\udc00y')).toBe('x\ufffdy');
    expect(escapeXml('😀')).toBe('😀');
    expect(escapeXml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&apos;');
  });
});
