import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../shared/telephony/protocol-error';
import {
  createVonageCarrierCodec,
  decodeVonageMessage,
  encodeVonageAudio,
  encodeVonageClear,
  encodeVonageNotify,
  parseVonageContentType,
  VONAGE_L16_16K,
  VONAGE_L16_8K,
} from '../../shared/telephony/vonage';

// Wire shapes from the telephony reference §2.2 (and Vonage's WebSockets guide it cites), typed by hand.

function expectError(result: unknown, code: string, mentions?: RegExp): ProtocolError {
  expect(result).toBeInstanceOf(ProtocolError);
  const error = result as ProtocolError;
  expect(error.protocol).toBe('vonage-websocket');
  expect(error.code).toBe(code);
  if (mentions) expect(error.message).toMatch(mentions);
  return error;
}

const connected16k = '{"event":"websocket:connected","content-type":"audio/l16;rate=16000","callUuid":"abc","tenant":"acme","age":40,"address":{"city":"NYC"}}';

describe('Vonage → server messages (§2.2)', () => {
  it('decodes websocket:connected: the rate from content-type, the flattened headers as strings', () => {
    expect(decodeVonageMessage(connected16k)).toEqual({
      type: 'connected',
      sampleRateHz: 16000,
      headers: { callUuid: 'abc', tenant: 'acme', age: '40', address: '{"city":"NYC"}' },
    });
    expect(decodeVonageMessage('{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}')).toMatchObject({ sampleRateHz: 8000, headers: {} });
  });

  it('reads content-type tolerantly but refuses what is not L16 at a known rate', () => {
    expect(parseVonageContentType('Audio/L16; rate=16000')).toBe(16000);
    expect(parseVonageContentType('audio/l16;rate=8000')).toBe(8000);
    expect(parseVonageContentType('audio/l16;rate=44100')).toBeUndefined();
    expect(parseVonageContentType('audio/pcmu;rate=8000')).toBeUndefined();
    expectError(decodeVonageMessage('{"event":"websocket:connected","content-type":"audio/x-mulaw"}'), 'invalid-message', /unsupported content-type/);
    expectError(decodeVonageMessage('{"event":"websocket:connected"}'), 'invalid-message', /content-type/);
  });

  it('decodes DTMF in both shapes (top-level digit, nested dtmf.digit), upper-casing A-D', () => {
    expect(decodeVonageMessage('{"event":"websocket:dtmf","digit":"5","duration":260}')).toEqual({ type: 'dtmf', digit: '5', durationMs: 260 });
    expect(decodeVonageMessage('{"event":"websocket:dtmf","dtmf":{"digit":"#","duration":100}}')).toEqual({ type: 'dtmf', digit: '#', durationMs: 100 });
    expect(decodeVonageMessage('{"event":"websocket:dtmf","digit":"a"}')).toEqual({ type: 'dtmf', digit: 'A' });
    expectError(decodeVonageMessage('{"event":"websocket:dtmf","digit":"55"}'), 'invalid-message');
    expectError(decodeVonageMessage('{"event":"websocket:dtmf"}'), 'invalid-message');
  });

  it('decodes notify (payload echoed verbatim) and cleared', () => {
    expect(decodeVonageMessage('{"event":"websocket:notify","payload":{"mark":"m1","n":2}}')).toEqual({ type: 'notify', payload: { mark: 'm1', n: 2 } });
    expect(decodeVonageMessage('{"event":"websocket:cleared"}')).toEqual({ type: 'cleared' });
    expectError(decodeVonageMessage('{"event":"websocket:notify"}'), 'invalid-message');
  });

  it('returns errors, never throws, on bad text', () => {
    expectError(decodeVonageMessage('not json'), 'bad-json');
    expectError(decodeVonageMessage('[1,2]'), 'bad-json');
    expectError(decodeVonageMessage('{"no":"event"}'), 'invalid-message');
    expectError(decodeVonageMessage(`{"event":"${'x'.repeat(500)}"}`), 'unknown-event', /…/);
  });

  it('decodes binary as L16 audio (a copy), refusing empty or odd-length frames', () => {
    const frame = new Uint8Array(640).map((_, i) => i & 0xff);
    const decoded = decodeVonageMessage(frame);
    expect(decoded).toEqual({ type: 'audio', pcm: frame });
    frame[0] = 99;
    expect((decoded as { pcm: Uint8Array }).pcm[0]).toBe(0);
    expectError(decodeVonageMessage(new Uint8Array(0)), 'invalid-message');
    expectError(decodeVonageMessage(new Uint8Array(321)), 'invalid-message', /even/);
  });
});

describe('server → Vonage messages (§2.2)', () => {
  it('sends exactly one 20 ms frame per message: a short frame padded with silence, a long one cut', () => {
    const short = encodeVonageAudio(16000, new Uint8Array(100).fill(7));
    expect(short.byteLength).toBe(640);
    expect([...short.subarray(0, 100)].every((b) => b === 7)).toBe(true);
    expect([...short.subarray(100)].every((b) => b === 0)).toBe(true);
    expect(encodeVonageAudio(8000, new Uint8Array(320)).byteLength).toBe(320);
    expect(encodeVonageAudio(8000, new Uint8Array(1000)).byteLength).toBe(320);
    const exact = new Uint8Array(640);
    expect(encodeVonageAudio(16000, exact)).not.toBe(exact); // a fresh buffer: the socket may still hold the last one
  });

  it('notify and clear are the documented JSON actions', () => {
    expect(JSON.parse(encodeVonageNotify({ mark: 'utt-1' }))).toEqual({ action: 'notify', payload: { mark: 'utt-1' } });
    expect(JSON.parse(encodeVonageClear())).toEqual({ action: 'clear' });
  });
});

describe('the Vonage carrier codec', () => {
  it('turns connected into a start that announces the format; audio before it is an error', () => {
    const codec = createVonageCarrierCodec();
    expect(codec.inputFormat).toEqual(VONAGE_L16_16K);
    expectError(codec.decode(new Uint8Array(640)), 'invalid-message', /before websocket:connected/);
    expect(codec.decode('{"event":"websocket:connected","content-type":"audio/l16;rate=8000","callUuid":"leg-1","contextId":"ctx-1"}')).toEqual({
      type: 'start',
      streamId: 'leg-1',
      callId: 'leg-1',
      parameters: { callUuid: 'leg-1', contextId: 'ctx-1' },
      format: { input: VONAGE_L16_8K, output: VONAGE_L16_8K },
    });
    expect(codec.decode(new Uint8Array(320))).toEqual({ type: 'media', audio: new Uint8Array(320) });
    // The format is fixed for the connection: our frames are 320 bytes from now on, a second connected changes nothing.
    expect((codec.encodeMedia('leg-1', new Uint8Array(10)) as Uint8Array).byteLength).toBe(320);
    expect(codec.decode(connected16k)).toEqual({ type: 'ignored' });
    expect((codec.encodeMedia('leg-1', new Uint8Array(10)) as Uint8Array).byteLength).toBe(320);
  });

  it('maps DTMF, our notifies (marks) and cleared; a notify without our mark is ignored', () => {
    const codec = createVonageCarrierCodec();
    codec.decode('{"event":"websocket:connected","content-type":"audio/l16;rate=16000","contextId":"ctx-9"}');
    expect(codec.decode('{"event":"websocket:dtmf","digit":"9"}')).toEqual({ type: 'dtmf', digit: '9' });
    // Our own actions are not Vonage events.
    expectError(codec.decode(codec.encodeMark('s', 'turn.1.40') as string), 'invalid-message');
    expectError(codec.decode('{"action":"clear"}'), 'invalid-message');
    expect(codec.decode('{"event":"websocket:notify","payload":{"mark":"turn.1.40"}}')).toEqual({ type: 'mark', name: 'turn.1.40' });
    expect(codec.decode('{"event":"websocket:notify","payload":{"other":1}}')).toEqual({ type: 'ignored' });
    expect(codec.decode('{"event":"websocket:cleared"}')).toEqual({ type: 'ignored' });
    expect(JSON.parse(codec.encodeMark('s', 'x') as string)).toEqual({ action: 'notify', payload: { mark: 'x' } });
    expect(codec.encodeClear('s')).toBe('{"action":"clear"}');
  });

  it('names the stream by the callUuid header, else contextId, else "vonage"', () => {
    const start = (headers: string) => {
      const codec = createVonageCarrierCodec();
      return codec.decode(`{"event":"websocket:connected","content-type":"audio/l16;rate=16000"${headers}}`);
    };
    expect(start(',"contextId":"ctx-1"')).toMatchObject({ streamId: 'ctx-1' });
    expect(start('')).toMatchObject({ streamId: 'vonage', parameters: {} });
  });
});
