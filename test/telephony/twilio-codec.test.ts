import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../shared/telephony/protocol-error';
import {
  TWILIO_MEDIA_FORMAT,
  decodeTwilioMessage,
  decodeTwilioOutbound,
  encodeTwilioClear,
  encodeTwilioInbound,
  encodeTwilioMark,
  encodeTwilioMedia,
  twilioCarrierCodec,
} from '../../shared/telephony/twilio';
import type { TwilioInbound } from '../../shared/telephony/twilio';

const STREAM = 'MZ' + '0123456789abcdef'.repeat(2);
const CALL = 'CA' + 'fedcba9876543210'.repeat(2);
const ACCOUNT = 'AC' + '0'.repeat(32);
const frame = (length = 160) => Uint8Array.from({ length }, (_, i) => (i * 37 + 11) & 0xff);
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

function expectError(result: unknown, code: string, mentions?: RegExp): ProtocolError {
  expect(result).toBeInstanceOf(ProtocolError);
  const error = result as ProtocolError;
  expect(error.type).toBe('protocolError');
  expect(error.code).toBe(code);
  expect(error.protocol).toBe('twilio-media-streams');
  if (mentions) expect(error.message).toMatch(mentions);
  return error;
}

describe('Twilio → server frames, as the reference documents them (§1.3)', () => {
  it('decodes connected', () => {
    expect(decodeTwilioMessage('{"event":"connected","protocol":"Call","version":"1.0.0"}')).toEqual({ type: 'connected', protocol: 'Call', version: '1.0.0' });
  });

  it('decodes start with its tracks, media format and custom parameters', () => {
    const text = JSON.stringify({
      event: 'start',
      sequenceNumber: '1',
      start: {
        accountSid: ACCOUNT,
        streamSid: STREAM,
        callSid: CALL,
        tracks: ['inbound'],
        customParameters: { tenant: 'acme', contextId: 'ctx_1' },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: STREAM,
    });
    expect(decodeTwilioMessage(text)).toEqual({
      type: 'start',
      sequenceNumber: 1,
      streamSid: STREAM,
      callSid: CALL,
      accountSid: ACCOUNT,
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRateHz: 8000, channels: 1 },
      customParameters: { tenant: 'acme', contextId: 'ctx_1' },
    });
  });

  it('decodes media: numeric strings become numbers, the payload becomes the raw μ-law bytes', () => {
    const bytes = frame();
    const text = `{"event":"media","sequenceNumber":"4","streamSid":"${STREAM}","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"${b64(bytes)}"}}`;
    expect(decodeTwilioMessage(text)).toEqual({ type: 'media', sequenceNumber: 4, streamSid: STREAM, track: 'inbound', chunk: 2, timestampMs: 5, payload: bytes });
  });

  it('decodes a payload of any length (not only 160 bytes), including empty', () => {
    for (const length of [0, 1, 2, 3, 159, 161, 320, 8000]) {
      const decoded = decodeTwilioMessage(`{"event":"media","sequenceNumber":"9","streamSid":"${STREAM}","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"${b64(frame(length))}"}}`);
      expect(decoded.type === 'media' && decoded.payload).toEqual(frame(length));
    }
  });

  it('decodes dtmf, mark and stop', () => {
    expect(decodeTwilioMessage(`{"event":"dtmf","streamSid":"${STREAM}","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}`)).toEqual({
      type: 'dtmf',
      sequenceNumber: 5,
      streamSid: STREAM,
      digit: '1',
      track: 'inbound_track',
    });
    expect(decodeTwilioMessage(`{"event":"dtmf","streamSid":"${STREAM}","sequenceNumber":"6","dtmf":{"digit":"b"}}`)).toMatchObject({ digit: 'B' });
    expect(decodeTwilioMessage(`{"event":"mark","sequenceNumber":"4","streamSid":"${STREAM}","mark":{"name":"my label"}}`)).toEqual({
      type: 'mark',
      sequenceNumber: 4,
      streamSid: STREAM,
      name: 'my label',
    });
    expect(decodeTwilioMessage(`{"event":"stop","sequenceNumber":"5","streamSid":"${STREAM}","stop":{"accountSid":"${ACCOUNT}","callSid":"${CALL}"}}`)).toEqual({
      type: 'stop',
      sequenceNumber: 5,
      streamSid: STREAM,
      accountSid: ACCOUNT,
      callSid: CALL,
    });
  });

  it('ignores fields it does not know (Twilio adds fields without notice)', () => {
    const decoded = decodeTwilioMessage(`{"event":"mark","sequenceNumber":"4","streamSid":"${STREAM}","mark":{"name":"a","extra":1},"future":{"x":true}}`);
    expect(decoded).toEqual({ type: 'mark', sequenceNumber: 4, streamSid: STREAM, name: 'a' });
  });

  it('fills the documented fixed values when start omits them (tracks, parameters, media format)', () => {
    const decoded = decodeTwilioMessage(JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM, callSid: CALL } }));
    expect(decoded).toMatchObject({ type: 'start', tracks: ['inbound'], customParameters: {}, mediaFormat: TWILIO_MEDIA_FORMAT });
  });

  it('accepts JSON numbers where Twilio sends numeric strings (tolerant reader)', () => {
    const decoded = decodeTwilioMessage(JSON.stringify({ event: 'media', sequenceNumber: 7, streamSid: STREAM, media: { track: 'outbound', chunk: 3, timestamp: 40, payload: '' } }));
    expect(decoded).toMatchObject({ type: 'media', sequenceNumber: 7, chunk: 3, timestampMs: 40, track: 'outbound' });
  });

  it('decodes the payload into a caller buffer when it fits, else allocates', () => {
    const buffer = new Uint8Array(200);
    const text = encodeTwilioInbound({ type: 'media', sequenceNumber: 2, streamSid: STREAM, track: 'inbound', chunk: 1, timestampMs: 0, payload: frame() });
    const decoded = decodeTwilioMessage(text, { payloadBuffer: buffer });
    expect(decoded.type === 'media' && decoded.payload.buffer).toBe(buffer.buffer);
    expect(decoded.type === 'media' && decoded.payload).toEqual(frame());
    const small = decodeTwilioMessage(text, { payloadBuffer: new Uint8Array(100) });
    expect(small.type === 'media' && small.payload.length).toBe(160);
    expect(small.type === 'media' && small.payload.buffer.byteLength).toBe(160);
  });
});

describe('round trips through the simulator-side encoder', () => {
  const messages: TwilioInbound[] = [
    { type: 'connected', protocol: 'Call', version: '1.0.0' },
    {
      type: 'start',
      sequenceNumber: 1,
      streamSid: STREAM,
      callSid: CALL,
      accountSid: ACCOUNT,
      tracks: ['inbound', 'outbound'],
      mediaFormat: TWILIO_MEDIA_FORMAT,
      customParameters: { 'quote"d': 'value <&> "é"', empty: '' },
    },
    { type: 'media', sequenceNumber: 2, streamSid: STREAM, track: 'inbound', chunk: 1, timestampMs: 20, payload: frame() },
    { type: 'dtmf', sequenceNumber: 3, streamSid: STREAM, digit: '#', track: 'inbound_track' },
    { type: 'mark', sequenceNumber: 4, streamSid: STREAM, name: 'turn-3:chunk-"7"\n' },
    { type: 'stop', sequenceNumber: 5, streamSid: STREAM, accountSid: ACCOUNT, callSid: CALL },
  ];
  it.each(messages.map((m) => [m.type, m] as const))('%s', (_type, message) => {
    const text = encodeTwilioInbound(message);
    expect(JSON.parse(text).event).toBe(message.type);
    expect(decodeTwilioMessage(text)).toEqual(message);
  });

  it('sends sequenceNumber, chunk and timestamp as strings, like Twilio', () => {
    const json = JSON.parse(encodeTwilioInbound(messages[2]!));
    expect(json).toMatchObject({ sequenceNumber: '2', media: { chunk: '1', timestamp: '20', track: 'inbound' } });
  });
});

describe('server → Twilio frames (§1.4)', () => {
  it('media carries only event, streamSid and the base64 payload of the raw bytes (no WAV header)', () => {
    const bytes = frame();
    const text = encodeTwilioMedia(STREAM, bytes);
    expect(JSON.parse(text)).toEqual({ event: 'media', streamSid: STREAM, media: { payload: b64(bytes) } });
    expect(new Uint8Array(Buffer.from(JSON.parse(text).media.payload, 'base64'))).toEqual(bytes);
  });

  it('mark and clear', () => {
    expect(JSON.parse(encodeTwilioMark(STREAM, 'utt-17'))).toEqual({ event: 'mark', streamSid: STREAM, mark: { name: 'utt-17' } });
    expect(JSON.parse(encodeTwilioClear(STREAM))).toEqual({ event: 'clear', streamSid: STREAM });
  });

  it('escapes names and sids so the frame stays valid JSON', () => {
    const name = 'a"b\\c\n\u0001é😀';
    expect(JSON.parse(encodeTwilioMark('MZ"x', name))).toEqual({ event: 'mark', streamSid: 'MZ"x', mark: { name } });
    // Alternating sids (two calls in one process) never mix up the cached JSON form.
    expect(JSON.parse(encodeTwilioMedia('MZ1', frame(3))).streamSid).toBe('MZ1');
    expect(JSON.parse(encodeTwilioMedia('MZ2', frame(3))).streamSid).toBe('MZ2');
    expect(JSON.parse(encodeTwilioClear('MZ1')).streamSid).toBe('MZ1');
  });

  it('decodeTwilioOutbound reads them back (what the simulator plays)', () => {
    expect(decodeTwilioOutbound(encodeTwilioMedia(STREAM, frame()))).toEqual({ type: 'media', streamSid: STREAM, payload: frame() });
    expect(decodeTwilioOutbound(encodeTwilioMark(STREAM, 'm1'))).toEqual({ type: 'mark', streamSid: STREAM, name: 'm1' });
    expect(decodeTwilioOutbound(encodeTwilioClear(STREAM))).toEqual({ type: 'clear', streamSid: STREAM });
    expectError(decodeTwilioOutbound(`{"event":"start","streamSid":"${STREAM}"}`), 'unknown-event', /media, mark or clear/);
    expectError(decodeTwilioOutbound(`{"event":"media","streamSid":"${STREAM}","media":{"payload":"%%%%"}}`), 'bad-base64');
    expectError(decodeTwilioOutbound('{"event":"clear"}'), 'invalid-message', /streamSid/);
  });
});

describe('malformed frames become a ProtocolError value, never an exception', () => {
  const media = (media: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    JSON.stringify({ event: 'media', sequenceNumber: '4', streamSid: STREAM, media: { track: 'inbound', chunk: '2', timestamp: '5', payload: 'AAAA', ...media }, ...top });

  it.each([
    ['empty text', ''],
    ['truncated JSON', '{"event":"media",'],
    ['not JSON at all', 'hello'],
  ])('bad JSON: %s', (_name, text) => {
    expectError(decodeTwilioMessage(text), 'bad-json', /not valid JSON/);
  });

  it.each([
    ['an array', '[{"event":"media"}]'],
    ['a number', '42'],
    ['null', 'null'],
    ['a string', '"media"'],
  ])('JSON that is not an object: %s', (_name, text) => {
    expectError(decodeTwilioMessage(text), 'bad-json', /not an object/);
  });

  it('no event, or an event that is not a string', () => {
    expectError(decodeTwilioMessage('{"streamSid":"MZ1"}'), 'invalid-message', /no "event"/);
    expect(expectError(decodeTwilioMessage('{"event":7}'), 'invalid-message').issues).toEqual(['event: expected a string, got a number']);
  });

  it('unknown events, including server-only ones and a huge name (clipped in the message)', () => {
    expectError(decodeTwilioMessage('{"event":"clear","streamSid":"MZ1"}'), 'unknown-event', /no "clear" event/);
    const error = expectError(decodeTwilioMessage(JSON.stringify({ event: 'x'.repeat(5000) })), 'unknown-event');
    expect(error.message.length).toBeLessThan(200);
    expect(error.event).toHaveLength(5000);
  });

  it.each([
    ['media without streamSid', media({}, { streamSid: undefined }), /streamSid/],
    ['media with an empty streamSid', media({}, { streamSid: '' }), /streamSid/],
    ['media without payload', media({ payload: undefined }), /media\.payload/],
    ['media without the media object', JSON.stringify({ event: 'media', sequenceNumber: '1', streamSid: STREAM }), /media/],
    ['a numeric payload', media({ payload: 5 }), /media\.payload/],
    ['a non-numeric chunk', media({ chunk: 'abc' }), /media\.chunk/],
    ['a negative timestamp', media({ timestamp: '-5' }), /media\.timestamp/],
    ['a fractional sequenceNumber', media({}, { sequenceNumber: 1.5 }), /sequenceNumber/],
    ['a missing sequenceNumber', media({}, { sequenceNumber: undefined }), /sequenceNumber/],
    ['an unknown track', media({ track: 'sideways' }), /media\.track/],
    ['dtmf with two digits', `{"event":"dtmf","streamSid":"${STREAM}","sequenceNumber":"5","dtmf":{"digit":"12"}}`, /dtmf\.digit/],
    ['dtmf with a letter that is no key', `{"event":"dtmf","streamSid":"${STREAM}","sequenceNumber":"5","dtmf":{"digit":"x"}}`, /dtmf\.digit/],
    ['dtmf without digit', `{"event":"dtmf","streamSid":"${STREAM}","sequenceNumber":"5","dtmf":{}}`, /dtmf\.digit/],
    ['mark without name', `{"event":"mark","sequenceNumber":"4","streamSid":"${STREAM}","mark":{}}`, /mark\.name/],
    ['mark with a numeric name', `{"event":"mark","sequenceNumber":"4","streamSid":"${STREAM}","mark":{"name":4}}`, /mark\.name/],
    ['start without callSid', JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM } }), /start\.callSid/],
    ['start without the start object', JSON.stringify({ event: 'start', sequenceNumber: '1', streamSid: STREAM }), /start/],
    ['tracks as a string', JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM, callSid: CALL, tracks: 'inbound' } }), /start\.tracks/],
    ['empty tracks', JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM, callSid: CALL, tracks: [] } }), /start\.tracks/],
    [
      'a non-string custom parameter',
      JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM, callSid: CALL, customParameters: { n: 1 } } }),
      /start\.customParameters\.n/,
    ],
    [
      'a sample rate sent as text',
      JSON.stringify({ event: 'start', sequenceNumber: '1', start: { accountSid: ACCOUNT, streamSid: STREAM, callSid: CALL, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: '8000', channels: 1 } } }),
      /start\.mediaFormat\.sampleRate/,
    ],
    ['stop without streamSid', '{"event":"stop","sequenceNumber":"5","stop":{}}', /streamSid/],
    ['connected with a numeric version', '{"event":"connected","protocol":"Call","version":1}', /version/],
  ])('invalid message: %s', (_name, text, mentions) => {
    const error = expectError(decodeTwilioMessage(text), 'invalid-message', mentions);
    expect(error.issues.length).toBeGreaterThan(0);
    expect(error.event).toBe(JSON.parse(text).event);
  });

  it.each([
    ['characters outside the alphabet', '%%%%'],
    ['a length no base64 has', 'AAAAA'],
    ['embedded whitespace', 'AAAA AAAA'],
    ['URL-safe characters', 'ab-_'],
    ['padding in the middle', 'AA==AAAA'],
  ])('bad base64: %s', (_name, payload) => {
    const error = expectError(decodeTwilioMessage(media({ payload })), 'bad-base64', /payload is not valid base64/);
    expect(error.event).toBe('media');
  });

  it('never throws on 5 000 random mutations of valid frames', () => {
    const valid = [
      encodeTwilioInbound({ type: 'media', sequenceNumber: 2, streamSid: STREAM, track: 'inbound', chunk: 1, timestampMs: 20, payload: frame(12) }),
      encodeTwilioInbound({ type: 'start', sequenceNumber: 1, streamSid: STREAM, callSid: CALL, accountSid: ACCOUNT, tracks: ['inbound'], mediaFormat: TWILIO_MEDIA_FORMAT, customParameters: { a: 'b' } }),
      encodeTwilioInbound({ type: 'mark', sequenceNumber: 4, streamSid: STREAM, name: 'm' }),
    ];
    let state = 12345;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    const junk = '{}[]":,0aZ=\\ \u0000é';
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      const base = valid[i % valid.length]!;
      const chars = [...base];
      for (let k = 1 + (next() % 3); k > 0; k--) {
        const at = next() % chars.length;
        const op = next() % 3;
        if (op === 0) chars.splice(at, 1);
        else if (op === 1) chars.splice(at, 0, junk[next() % junk.length]!);
        else chars[at] = junk[next() % junk.length]!;
      }
      const text = chars.join('');
      let result: unknown;
      expect(() => (result = decodeTwilioMessage(text)), text).not.toThrow();
      if (result instanceof ProtocolError) errors++;
      else expect(['connected', 'start', 'media', 'dtmf', 'mark', 'stop']).toContain((result as { type: string }).type);
    }
    expect(errors).toBeGreaterThan(1000);
  });
});

describe('twilioCarrierCodec (what the media node channel uses)', () => {
  const codec = twilioCarrierCodec;

  it('is μ-law 8 kHz both ways with marks and clear', () => {
    expect(codec.inputFormat).toEqual({ encoding: 'mulaw', sampleRateHz: 8000 });
    expect(codec.outputFormat).toEqual({ encoding: 'mulaw', sampleRateHz: 8000 });
    expect(codec.capabilities).toEqual({ marks: true, clear: true });
  });

  it('maps the stream to carrier events', () => {
    expect(codec.decode('{"event":"connected","protocol":"Call","version":"1.0.0"}')).toEqual({ type: 'ignored' });
    const start = encodeTwilioInbound({ type: 'start', sequenceNumber: 1, streamSid: STREAM, callSid: CALL, accountSid: ACCOUNT, tracks: ['inbound'], mediaFormat: TWILIO_MEDIA_FORMAT, customParameters: { k: 'v' } });
    expect(codec.decode(start)).toEqual({ type: 'start', streamId: STREAM, callId: CALL, parameters: { k: 'v' } });
    expect(codec.decode(encodeTwilioInbound({ type: 'media', sequenceNumber: 2, streamSid: STREAM, track: 'inbound', chunk: 1, timestampMs: 0, payload: frame() }))).toEqual({ type: 'media', audio: frame() });
    expect(codec.decode(encodeTwilioInbound({ type: 'media', sequenceNumber: 3, streamSid: STREAM, track: 'outbound', chunk: 1, timestampMs: 0, payload: frame() }))).toEqual({ type: 'ignored' });
    expect(codec.decode(encodeTwilioInbound({ type: 'dtmf', sequenceNumber: 4, streamSid: STREAM, digit: '7' }))).toEqual({ type: 'dtmf', digit: '7' });
    expect(codec.decode(encodeTwilioInbound({ type: 'mark', sequenceNumber: 5, streamSid: STREAM, name: 'n' }))).toEqual({ type: 'mark', name: 'n' });
    expect(codec.decode(encodeTwilioInbound({ type: 'stop', sequenceNumber: 6, streamSid: STREAM }))).toEqual({ type: 'stop' });
  });

  it('each media event owns its audio (events may be queued before the channel starts)', () => {
    const a = codec.decode(encodeTwilioInbound({ type: 'media', sequenceNumber: 2, streamSid: STREAM, track: 'inbound', chunk: 1, timestampMs: 0, payload: frame() }));
    const b = codec.decode(encodeTwilioInbound({ type: 'media', sequenceNumber: 3, streamSid: STREAM, track: 'inbound', chunk: 2, timestampMs: 20, payload: new Uint8Array(160) }));
    expect(a.type === 'media' && b.type === 'media' && a.audio.buffer !== b.audio.buffer).toBe(true);
    expect(a.type === 'media' && a.audio).toEqual(frame());
  });

  it('reports binary frames, malformed frames and a non-μ-law start as protocol errors', () => {
    expect(codec.decode(new Uint8Array([1, 2, 3]))).toMatchObject({ type: 'protocolError', code: 'bad-json' });
    expect(codec.decode('nope')).toMatchObject({ type: 'protocolError', code: 'bad-json' });
    const start = encodeTwilioInbound({
      type: 'start',
      sequenceNumber: 1,
      streamSid: STREAM,
      callSid: CALL,
      accountSid: ACCOUNT,
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/l16', sampleRateHz: 16000, channels: 1 },
      customParameters: {},
    });
    expect(codec.decode(start)).toMatchObject({ type: 'protocolError', code: 'invalid-message', message: expect.stringMatching(/audio\/l16 16000 Hz/) });
  });

  it('encodes like the plain encoders', () => {
    expect(codec.encodeMedia(STREAM, frame())).toBe(encodeTwilioMedia(STREAM, frame()));
    expect(codec.encodeMark(STREAM, 'x')).toBe(encodeTwilioMark(STREAM, 'x'));
    expect(codec.encodeClear(STREAM)).toBe(encodeTwilioClear(STREAM));
  });
});
