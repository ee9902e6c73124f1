import { describe, expect, it } from 'vitest';
import { MULAW_8K } from '../../shared/audio/format';
import {
  createExotelCarrierCodec,
  createExotelChunker,
  decodeExotelMessage,
  encodeExotelClear,
  encodeExotelMark,
  encodeExotelMedia,
  EXOTEL_DEFAULT_FORMAT,
  type ExotelOutgoing,
} from '../../shared/telephony/exotel';

// Frames as the reference (§3) shows them: snake_case, numbers as strings.
const START = {
  event: 'start',
  sequence_number: '1',
  stream_sid: 'MZ1',
  start: {
    stream_sid: 'MZ1',
    call_sid: 'CA1',
    account_sid: 'AC1',
    from: '+919876543210',
    to: '+918047491899',
    custom_parameters: { key1: 'value1' },
    media_format: { encoding: 'audio/x-raw', sample_rate: '8000', bit_rate: '16' },
  },
};
const withFormat = (media_format: Record<string, string>) => JSON.stringify({ ...START, start: { ...START.start, media_format } });

describe('decodeExotelMessage (Exotel → server)', () => {
  it('reads connected, start (PCM16 8 kHz, custom parameters), media, dtmf, mark and stop', () => {
    expect(decodeExotelMessage('{"event":"connected"}')).toEqual({ type: 'connected' });
    expect(decodeExotelMessage(JSON.stringify(START))).toMatchObject({
      type: 'start',
      streamSid: 'MZ1',
      callSid: 'CA1',
      from: '+919876543210',
      customParameters: { key1: 'value1' },
      format: { encoding: 'pcm16', sampleRateHz: 8000 },
    });
    const media = decodeExotelMessage('{"event":"media","sequence_number":"3","stream_sid":"MZ1","media":{"chunk":"2","timestamp":"200","payload":"AAEC"}}');
    expect(media).toMatchObject({ type: 'media', chunk: 2, timestampMs: 200, payload: new Uint8Array([0, 1, 2]) });
    expect(decodeExotelMessage('{"event":"dtmf","sequence_number":"7","stream_sid":"MZ1","dtmf":{"digit":"5","duration":"100"}}')).toMatchObject({ type: 'dtmf', digit: '5', durationMs: 100 });
    expect(decodeExotelMessage('{"event":"mark","sequence_number":"15","stream_sid":"MZ1","mark":{"name":"utt-3"}}')).toMatchObject({ type: 'mark', name: 'utt-3' });
    expect(decodeExotelMessage('{"event":"stop","sequence_number":"40","stream_sid":"MZ1","stop":{"call_sid":"CA1","account_sid":"AC1","reason":"callended"}}')).toMatchObject({
      type: 'stop',
      reason: 'callended',
    });
  });

  it('branches on media_format: 16/24 kHz PCM, μ-law in its spellings, L16 with a rate parameter; refuses the rest', () => {
    expect(decodeExotelMessage(withFormat({ encoding: 'audio/x-raw', sample_rate: '16000', bit_rate: '16' }))).toMatchObject({ format: { encoding: 'pcm16', sampleRateHz: 16000 } });
    expect(decodeExotelMessage(withFormat({ encoding: 'audio/x-raw', sample_rate: '24000' }))).toMatchObject({ format: { encoding: 'pcm16', sampleRateHz: 24000 } });
    expect(decodeExotelMessage(withFormat({ encoding: 'audio/x-mulaw', sample_rate: '8000' }))).toMatchObject({ format: MULAW_8K });
    expect(decodeExotelMessage(withFormat({ encoding: 'audio/x-mulaw;rate=8000' }))).toMatchObject({ format: MULAW_8K });
    expect(decodeExotelMessage(withFormat({ encoding: 'audio/L16;rate=16000' }))).toMatchObject({ format: { encoding: 'pcm16', sampleRateHz: 16000 } });
    expect(decodeExotelMessage(JSON.stringify({ ...START, start: { ...START.start, media_format: undefined } }))).toMatchObject({ format: EXOTEL_DEFAULT_FORMAT });
    const unsupported: Record<string, string>[] = [{ encoding: 'audio/opus' }, { encoding: 'audio/x-raw', sample_rate: '44100' }, { encoding: 'audio/x-raw', sample_rate: '8000', bit_rate: '8' }];
    for (const bad of unsupported) {
      expect(decodeExotelMessage(withFormat(bad))).toMatchObject({ type: 'protocolError', code: 'invalid-message', event: 'start' });
    }
  });

  it('returns typed errors for bad frames, never throws', () => {
    expect(decodeExotelMessage('not json')).toMatchObject({ type: 'protocolError', code: 'bad-json' });
    expect(decodeExotelMessage('[1]')).toMatchObject({ code: 'bad-json' });
    expect(decodeExotelMessage('{"event":"dance"}')).toMatchObject({ code: 'unknown-event' });
    expect(decodeExotelMessage('{"event":"media","sequence_number":"3","stream_sid":"MZ1","media":{"chunk":"2","timestamp":"200","payload":"!!!"}}')).toMatchObject({ code: 'bad-base64' });
    expect(decodeExotelMessage('{"event":"media","sequence_number":"x","stream_sid":"MZ1","media":{}}')).toMatchObject({ code: 'invalid-message' });
    expect(decodeExotelMessage('{"event":"dtmf","sequence_number":"7","stream_sid":"MZ1","dtmf":{"digit":"55"}}')).toMatchObject({ code: 'invalid-message' });
  });
});

describe('encoding (server → Exotel)', () => {
  it('writes snake_case media, mark and clear', () => {
    expect(JSON.parse(encodeExotelMedia('MZ1', new Uint8Array([0, 1, 2])))).toEqual({ event: 'media', stream_sid: 'MZ1', media: { payload: 'AAEC' } });
    expect(JSON.parse(encodeExotelMark('MZ1', 'p1.1.5'))).toEqual({ event: 'mark', stream_sid: 'MZ1', mark: { name: 'p1.1.5' } });
    expect(JSON.parse(encodeExotelClear('MZ1'))).toEqual({ event: 'clear', stream_sid: 'MZ1' });
  });

  it('the carrier codec announces the start format and remembers the stream', () => {
    const codec = createExotelCarrierCodec();
    expect(codec.decode(new Uint8Array(4))).toMatchObject({ type: 'protocolError' });
    expect(codec.decode(withFormat({ encoding: 'audio/x-raw', sample_rate: '16000' }))).toMatchObject({
      type: 'start',
      streamId: 'MZ1',
      format: { input: { encoding: 'pcm16', sampleRateHz: 16000 }, output: { encoding: 'pcm16', sampleRateHz: 16000 } },
    });
    expect(codec.streamSid).toBe('MZ1');
    expect(codec.streamFormat.sampleRateHz).toBe(16000);
    expect(codec.decode('{"event":"connected"}')).toEqual({ type: 'ignored' });
  });
});

describe('createExotelChunker (Exotel chunk rules: multiples of 320, 3 200 to 100 000 bytes)', () => {
  const frame = (bytes: number, value = 7) => new Uint8Array(bytes).fill(value);
  const sizes = (items: ExotelOutgoing[]) => items.map((i) => (i.kind === 'media' ? i.audio.length : i.text));

  it('batches 20 ms frames into valid chunks and keeps marks behind the audio before them', () => {
    const chunker = createExotelChunker({ silenceByte: () => 0 });
    const out: ExotelOutgoing[] = [];
    for (let i = 0; i < 5; i++) out.push(...chunker.audio(frame(320)));
    out.push(...chunker.text('m1'));
    for (let i = 0; i < 5; i++) out.push(...chunker.audio(frame(320)));
    // The tenth frame makes 3 200 bytes: one chunk, then the mark queued after the fifth frame.
    expect(sizes(out)).toEqual([3200, 'm1']);
    out.push(...chunker.audio(frame(320)));
    expect(chunker.pendingBytes).toBe(320);
    // Every chunk a multiple of 320 within bounds.
    for (const item of out) if (item.kind === 'media') expect(item.audio.length % 320).toBe(0);
  });

  it('flush pads the rest with silence to the minimum and releases held marks; a mark with nothing pending goes at once', () => {
    const chunker = createExotelChunker({ silenceByte: () => 0xff });
    expect(sizes(chunker.text('first'))).toEqual(['first']);
    chunker.audio(frame(160, 1));
    chunker.text('end');
    const out = chunker.flush();
    expect(sizes(out)).toEqual([3200, 'end']);
    const audio = (out[0] as { audio: Uint8Array }).audio;
    expect(audio[159]).toBe(1);
    expect(audio[160]).toBe(0xff);
    expect(chunker.pendingBytes).toBe(0);
    expect(chunker.flush()).toEqual([]);
  });

  it('rounds a large rest up to a multiple of 320; clear forgets audio and marks; too much pending is refused', () => {
    const chunker = createExotelChunker({ silenceByte: () => 0, maxPendingBytes: 6400 });
    chunker.audio(frame(3000));
    chunker.text('gone');
    chunker.clear();
    expect(chunker.flush()).toEqual([]);
    chunker.audio(frame(3100));
    chunker.audio(frame(200)); // 3 300 pending → a 3 200 chunk goes, 100 stay
    expect(chunker.pendingBytes).toBe(100);
    expect(sizes(chunker.audio(frame(6400)))).toEqual([]); // refused: beyond the pending bound
    expect(chunker.droppedBytes).toBe(6400);
    chunker.audio(frame(3300)); // 3 400 → 3 200 out, 200 left
    expect(sizes(chunker.flush())).toEqual([3200]);
  });
});
