import { describe, expect, it } from 'vitest';
import { ALAW_8K, MULAW_8K } from '../../shared/audio/format';
import {
  ASTERISK_MAX_MESSAGE_BYTES,
  createAsteriskWsCodec,
  decodeAsteriskEvent,
  encodeAsteriskCommand,
} from '../../shared/telephony/asterisk-ws';
import { ProtocolError } from '../../shared/telephony/protocol-error';

// Messages as chan_websocket writes them (telephony reference §5.3 and Asterisk's WebSocket.md): plain text
// `NAME key:value …` and JSON `{"event":"NAME",…}`.

const PLAIN_START = 'MEDIA_START connection_id:e226e283-c90a-4ea9-9e37-389000b9ef47 channel:WebSocket/media_connection1-00000001 channel_id:1761245643.1 format:ulaw optimal_frame_size:160 ptime:20';
const JSON_START = JSON.stringify({
  event: 'MEDIA_START',
  connection_id: 'e226e283-c90a-4ea9-9e37-389000b9ef47',
  channel: 'WebSocket/media_connection1-00000001',
  channel_id: '1761245643.1',
  format: 'slin16',
  optimal_frame_size: 640,
  ptime: 20,
  channel_variables: { CALLERID_NUM: '5551234', DIALSTATUS: '', NUMERIC: 5 },
});

function expectError(result: unknown, code: string, mentions?: RegExp): ProtocolError {
  expect(result).toBeInstanceOf(ProtocolError);
  const error = result as ProtocolError;
  expect(error.protocol).toBe('asterisk-websocket');
  expect(error.code).toBe(code);
  if (mentions) expect(error.message).toMatch(mentions);
  return error;
}

describe('Asterisk → us events, both control formats', () => {
  it('decodes MEDIA_START in plain text (older releases omit channel_id and ptime)', () => {
    expect(decodeAsteriskEvent(PLAIN_START)).toEqual({
      controlFormat: 'plain-text',
      message: {
        event: 'MEDIA_START',
        connectionId: 'e226e283-c90a-4ea9-9e37-389000b9ef47',
        channel: 'WebSocket/media_connection1-00000001',
        channelId: '1761245643.1',
        format: 'ulaw',
        optimalFrameSize: 160,
        ptimeMs: 20,
        channelVariables: {},
      },
    });
    const old = decodeAsteriskEvent('MEDIA_START connection_id:abc channel:WebSocket/connectionid format:ulaw optimal_frame_size:160');
    expect(old).toMatchObject({ message: { event: 'MEDIA_START', connectionId: 'abc', channelId: '', format: 'ulaw', optimalFrameSize: 160 } });
  });

  it('decodes MEDIA_START in JSON, pretty-printed too, keeping string channel variables only', () => {
    const decoded = decodeAsteriskEvent(JSON.stringify(JSON.parse(JSON_START), null, 2));
    expect(decoded).toMatchObject({
      controlFormat: 'json',
      message: { event: 'MEDIA_START', format: 'slin16', optimalFrameSize: 640, ptimeMs: 20, channelVariables: { CALLERID_NUM: '5551234', DIALSTATUS: '' } },
    });
    expect((decoded as { message: { channelVariables: object } }).message.channelVariables).not.toHaveProperty('NUMERIC');
  });

  it('decodes DTMF_END, XOFF/XON, marks, buffering, drained, status and error events', () => {
    expect(decodeAsteriskEvent('DTMF_END digit:5 channel_id:1761245643.1')).toEqual({ controlFormat: 'plain-text', message: { event: 'DTMF_END', digit: '5', channelId: '1761245643.1' } });
    expect(decodeAsteriskEvent('DTMF_END digit:a')).toMatchObject({ message: { digit: 'A' } });
    expect(decodeAsteriskEvent('{"event":"DTMF_END","channel_id":"1.2","digit":"#"}')).toEqual({ controlFormat: 'json', message: { event: 'DTMF_END', digit: '#', channelId: '1.2' } });
    expect(decodeAsteriskEvent('MEDIA_XOFF')).toEqual({ controlFormat: 'plain-text', message: { event: 'MEDIA_XOFF' } });
    expect(decodeAsteriskEvent('{"event":"MEDIA_XON","channel_id":"1.2"}')).toEqual({ controlFormat: 'json', message: { event: 'MEDIA_XON', channelId: '1.2' } });
    expect(decodeAsteriskEvent('MEDIA_MARK_PROCESSED m17')).toMatchObject({ message: { event: 'MEDIA_MARK_PROCESSED', correlationId: 'm17' } });
    expect(decodeAsteriskEvent('MEDIA_MARK_PROCESSED')).toMatchObject({ message: { event: 'MEDIA_MARK_PROCESSED', correlationId: '' } });
    expect(decodeAsteriskEvent('{"event":"MEDIA_MARK_PROCESSED","channel_id":"1.2","correlation_id":"m3"}')).toMatchObject({ message: { correlationId: 'm3', channelId: '1.2' } });
    expect(decodeAsteriskEvent('MEDIA_BUFFERING_COMPLETED file-1')).toMatchObject({ message: { event: 'MEDIA_BUFFERING_COMPLETED', correlationId: 'file-1' } });
    expect(decodeAsteriskEvent('QUEUE_DRAINED')).toMatchObject({ message: { event: 'QUEUE_DRAINED' } });
    expect(decodeAsteriskEvent('STATUS queue_length:43 xon_level:800 xoff_level:900 queue_full:false bulk_media:true media_paused:false')).toEqual({
      controlFormat: 'plain-text',
      message: { event: 'STATUS', queueLength: 43, xonLevel: 800, xoffLevel: 900, queueFull: false, bulkMedia: true, mediaPaused: false },
    });
    expect(decodeAsteriskEvent('{"event":"STATUS","channel_id":"1.2","queue_length":0,"xon_level":800,"xoff_level":900,"queue_full":true,"bulk_media":false,"media_paused":true}')).toMatchObject({
      message: { queueFull: true, mediaPaused: true },
    });
    expect(decodeAsteriskEvent('ERROR channel_id:1.2 error_text:FLUSH_MEDIA not supported in passthrough mode')).toEqual({
      controlFormat: 'plain-text',
      message: { event: 'ERROR', channelId: '1.2', errorText: 'FLUSH_MEDIA not supported in passthrough mode' },
    });
  });

  it('returns typed errors for malformed messages, never throws', () => {
    expectError(decodeAsteriskEvent(''), 'invalid-message');
    expectError(decodeAsteriskEvent('{"event":"MEDIA_START"'), 'bad-json');
    expectError(decodeAsteriskEvent('[1,2]'), 'unknown-event');
    expectError(decodeAsteriskEvent('{"command":"HANGUP"}'), 'invalid-message', /"event"/);
    expectError(decodeAsteriskEvent('media_start format:ulaw optimal_frame_size:160'), 'unknown-event', /case-sensitive/);
    expectError(decodeAsteriskEvent(`${'X'.repeat(500)} a:b`), 'unknown-event', /…/);
    expectError(decodeAsteriskEvent('MEDIA_START format:ulaw'), 'invalid-message', /optimal_frame_size/);
    expectError(decodeAsteriskEvent('MEDIA_START format:ulaw optimal_frame_size:-5'), 'invalid-message');
    expectError(decodeAsteriskEvent(`MEDIA_START format:ulaw optimal_frame_size:${ASTERISK_MAX_MESSAGE_BYTES + 1}`), 'invalid-message');
    expectError(decodeAsteriskEvent('DTMF_END digit:55'), 'invalid-message', /DTMF/);
    expectError(decodeAsteriskEvent('STATUS queue_length:many'), 'invalid-message');
    for (const junk of ['{', '{}', 'null', '\u0000\u0001', '{"event":42}', 'MEDIA_START :::: ::', '{"event":"MEDIA_START","format":{},"optimal_frame_size":"x"}']) {
      expect(() => decodeAsteriskEvent(junk)).not.toThrow();
      expect(decodeAsteriskEvent(junk)).toBeInstanceOf(ProtocolError);
    }
  });
});

describe('us → Asterisk commands', () => {
  it('spells each command in the channel’s control format', () => {
    expect(encodeAsteriskCommand('plain-text', { command: 'FLUSH_MEDIA' })).toBe('FLUSH_MEDIA');
    expect(encodeAsteriskCommand('plain-text', { command: 'MARK_MEDIA', correlationId: 'm1' })).toBe('MARK_MEDIA m1');
    expect(encodeAsteriskCommand('plain-text', { command: 'STOP_MEDIA_BUFFERING' })).toBe('STOP_MEDIA_BUFFERING');
    expect(JSON.parse(encodeAsteriskCommand('json', { command: 'HANGUP' }))).toEqual({ command: 'HANGUP' });
    expect(JSON.parse(encodeAsteriskCommand('json', { command: 'STOP_MEDIA_BUFFERING', correlationId: 'a"b' }))).toEqual({ command: 'STOP_MEDIA_BUFFERING', correlation_id: 'a"b' });
  });
});

describe('the carrier codec (one per connection)', () => {
  it('turns MEDIA_START into a start with the announced format, and answers in the format Asterisk used', () => {
    const plain = createAsteriskWsCodec();
    const start = plain.decode(PLAIN_START);
    expect(start).toEqual({
      type: 'start',
      streamId: 'e226e283-c90a-4ea9-9e37-389000b9ef47',
      callId: '1761245643.1',
      parameters: {},
      format: { input: MULAW_8K, output: MULAW_8K },
    });
    expect(plain.encodeClear('s')).toBe('FLUSH_MEDIA');
    expect(plain.encodeHangup!('s')).toBe('HANGUP');
    expect(plain.encodeMark('s', 'p1.1.10')).toBe('MARK_MEDIA m1');
    // A repeated MEDIA_START changes nothing (the framing of a running call stays).
    expect(plain.decode(PLAIN_START.replace('optimal_frame_size:160', 'optimal_frame_size:320'))).toEqual({ type: 'ignored' });
    expect(plain.optimalFrameSize).toBe(160);

    const json = createAsteriskWsCodec();
    expect(json.decode(JSON_START)).toMatchObject({ type: 'start', format: { input: { encoding: 'pcm16', sampleRateHz: 16_000 } }, parameters: { CALLERID_NUM: '5551234' } });
    expect(JSON.parse(json.encodeClear('s') as string)).toEqual({ command: 'FLUSH_MEDIA' });
    expect(JSON.parse(json.encodeHangup!('s') as string)).toEqual({ command: 'HANGUP' });
    expect(json.controlFormat).toBe('json');

    expect(createAsteriskWsCodec().decode(PLAIN_START.replace('format:ulaw', 'format:alaw'))).toMatchObject({ format: { output: ALAW_8K } });
    expect(createAsteriskWsCodec().decode(PLAIN_START.replace('format:ulaw', 'format:slin24').replace(':160', ':960'))).toMatchObject({ format: { output: { encoding: 'pcm16', sampleRateHz: 24_000 } } });
  });

  it('refuses codecs it cannot carry with the dial-string fix', () => {
    expectError(createAsteriskWsCodec().decode(PLAIN_START.replace('format:ulaw', 'format:opus')), 'invalid-message', /c\(slin16\)/);
    expectError(createAsteriskWsCodec().decode(PLAIN_START.replace('format:ulaw', 'format:constructor')), 'invalid-message');
  });

  it('maps binary frames to media, DTMF to dtmf, XOFF/XON to flow, and ignores events it has no use for', () => {
    const codec = createAsteriskWsCodec();
    codec.decode(PLAIN_START);
    const bytes = Uint8Array.from({ length: 160 }, (_, i) => i);
    const media = codec.decode(bytes);
    expect(media).toEqual({ type: 'media', audio: bytes });
    bytes[0] = 99;
    expect((media as { audio: Uint8Array }).audio[0]).toBe(0); // a copy: the channel may hold it
    expect(codec.decode(new Uint8Array(0))).toEqual({ type: 'ignored' });
    expect(codec.decode('DTMF_END digit:7 channel_id:1.1')).toEqual({ type: 'dtmf', digit: '7' });
    expect(codec.decode('MEDIA_XOFF')).toEqual({ type: 'flow', paused: true });
    expect(codec.decode('MEDIA_XON')).toEqual({ type: 'flow', paused: false });
    expect(codec.decode('QUEUE_DRAINED')).toEqual({ type: 'ignored' });
    expect(codec.decode('ERROR channel_id:1.1 error_text:Unable to parse JSON command')).toEqual({ type: 'ignored' });
  });

  it('maps MEDIA_MARK_PROCESSED back to the mark name; a flush forgets pending marks (Asterisk drops them silently)', () => {
    const codec = createAsteriskWsCodec();
    codec.decode(JSON_START);
    const first = JSON.parse(codec.encodeMark('s', 'p1.1.10') as string);
    const second = JSON.parse(codec.encodeMark('s', 'p1.1.20') as string);
    expect(first).toEqual({ command: 'MARK_MEDIA', correlation_id: 'm1' });
    expect(codec.decode(JSON.stringify({ event: 'MEDIA_MARK_PROCESSED', channel_id: '1', correlation_id: second.correlation_id }))).toEqual({ type: 'mark', name: 'p1.1.20' });
    // Answered once only.
    expect(codec.decode(JSON.stringify({ event: 'MEDIA_MARK_PROCESSED', correlation_id: second.correlation_id }))).toEqual({ type: 'ignored' });
    codec.encodeClear('s');
    expect(codec.decode(JSON.stringify({ event: 'MEDIA_MARK_PROCESSED', correlation_id: 'm1' }))).toEqual({ type: 'ignored' });
    // Marks with long or odd names still fit a 128-byte command.
    expect((codec.encodeMark('s', 'x y "z" '.repeat(40)) as string).length).toBeLessThan(128);
  });

  it('keeps pending marks bounded', () => {
    const codec = createAsteriskWsCodec();
    codec.decode(PLAIN_START);
    for (let i = 0; i < 1000; i++) codec.encodeMark('s', `n${i}`);
    expect(codec.decode('MEDIA_MARK_PROCESSED m1')).toEqual({ type: 'ignored' });
    expect(codec.decode('MEDIA_MARK_PROCESSED m1000')).toEqual({ type: 'mark', name: 'n999' });
  });

  it('sends 20 ms frames as they are, and re-cuts other sizes into whole optimal frames (nothing dropped)', () => {
    const codec = createAsteriskWsCodec();
    codec.decode(PLAIN_START);
    const frame = new Uint8Array(160).fill(7);
    expect(codec.encodeMedia('s', frame)).toBe(frame);
    expect((codec.encodeMedia('s', new Uint8Array(480)) as Uint8Array).length).toBe(480);

    // Asterisk announcing 30 ms frames (240 bytes of ulaw): 20 ms frames go out as 0, 240, 240, 0, … bytes.
    const odd = createAsteriskWsCodec();
    odd.decode(PLAIN_START.replace('optimal_frame_size:160', 'optimal_frame_size:240'));
    const sent: number[] = [];
    const all: number[] = [];
    for (let i = 0; i < 6; i++) {
      const out = odd.encodeMedia('s', Uint8Array.from({ length: 160 }, (_, j) => (i * 160 + j) & 0xff)) as Uint8Array;
      sent.push(out.length);
      all.push(...out);
    }
    expect(sent).toEqual([0, 240, 240, 0, 240, 240]);
    expect(all).toEqual(Array.from({ length: 960 }, (_, j) => j & 0xff));
    // A clear drops the held rest with the rest of the queue.
    odd.encodeMedia('s', new Uint8Array(160));
    odd.encodeClear('s');
    expect((odd.encodeMedia('s', new Uint8Array(480)) as Uint8Array).length).toBe(480);
  });

  it('never sends a message over chan_websocket’s 65 500-byte limit', () => {
    const codec = createAsteriskWsCodec();
    codec.decode(PLAIN_START);
    const out = codec.encodeMedia('s', new Uint8Array(100_000)) as Uint8Array;
    expect(out.length).toBeLessThanOrEqual(ASTERISK_MAX_MESSAGE_BYTES);
    expect(out.length % 160).toBe(0);
  });
});
