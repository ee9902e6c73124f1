import { describe, expect, it } from 'vitest';
import {
  AUDIOSOCKET_MAX_PAYLOAD_BYTES,
  audioSocketFrameMs,
  createAudioSocketCodec,
  createAudioSocketSplitter,
  decodeAudioSocketFrame,
  encodeAudioSocketAudio,
  encodeAudioSocketHangup,
} from '../../shared/telephony/audiosocket';

/** Frames written by hand from the reference (§4.1): type, big-endian u16 length, payload. */
const frame = (type: number, payload: number[] | Uint8Array = []) => Uint8Array.from([type, (payload.length >> 8) & 0xff, payload.length & 0xff, ...payload]);
const UUID_BYTES = [0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x11, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01];
const UUID_TEXT = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';

function seeded(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('AudioSocket frame decoding (reference §4.1)', () => {
  it('reads the UUID frame as the canonical lower-case UUID string', () => {
    expect(decodeAudioSocketFrame(frame(0x01, UUID_BYTES))).toEqual({ type: 'uuid', uuid: UUID_TEXT });
    expect(decodeAudioSocketFrame(frame(0x01, [1, 2, 3]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
  });

  it('reads hang-up, DTMF digits and error codes', () => {
    expect(decodeAudioSocketFrame(Uint8Array.from([0, 0, 0]))).toEqual({ type: 'hangup' });
    for (const digit of '0123456789*#ABCD') expect(decodeAudioSocketFrame(frame(0x03, [digit.charCodeAt(0)]))).toEqual({ type: 'dtmf', digit });
    expect(decodeAudioSocketFrame(frame(0x03, ['b'.charCodeAt(0)]))).toEqual({ type: 'dtmf', digit: 'B' });
    expect(decodeAudioSocketFrame(frame(0x03, ['x'.charCodeAt(0)]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(decodeAudioSocketFrame(frame(0x03, [0x31, 0x32]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(decodeAudioSocketFrame(frame(0xff, [0x04]))).toEqual({ type: 'error', code: 4 });
    expect(decodeAudioSocketFrame(frame(0xff))).toEqual({ type: 'error', code: 0 });
  });

  it('reads audio of every slin type at its rate; odd lengths, unknown types and bad headers are errors', () => {
    const rates = [8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000];
    rates.forEach((rate, i) => {
      const decoded = decodeAudioSocketFrame(frame(0x10 + i, [1, 0, 2, 0]));
      expect(decoded).toMatchObject({ type: 'audio', sampleRateHz: rate });
      expect(Array.from((decoded as { pcm: Uint8Array }).pcm)).toEqual([1, 0, 2, 0]);
    });
    expect(decodeAudioSocketFrame(frame(0x10, [1, 2, 3]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(decodeAudioSocketFrame(frame(0x19, [1, 2]))).toMatchObject({ type: 'protocolError', code: 'unknown-event', event: '0x19' });
    expect(decodeAudioSocketFrame(frame(0x02))).toMatchObject({ type: 'protocolError', code: 'unknown-event' });
    expect(decodeAudioSocketFrame(Uint8Array.from([0x10, 0]))).toMatchObject({ type: 'protocolError' });
    expect(decodeAudioSocketFrame(Uint8Array.from([0x10, 0, 4, 1, 2]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
  });
});

describe('AudioSocket encoding (server → Asterisk: hang-up and audio only)', () => {
  it('hang-up is 00 00 00', () => {
    expect(Array.from(encodeAudioSocketHangup())).toEqual([0, 0, 0]);
  });

  it('audio goes out with the type of its rate and a big-endian length; never empty, never half a sample', () => {
    const pcm = new Uint8Array(320).map((_, i) => i & 0xff);
    const at8k = encodeAudioSocketAudio(8000, pcm)!;
    expect(Array.from(at8k.subarray(0, 3))).toEqual([0x10, 0x01, 0x40]);
    expect(at8k.subarray(3)).toEqual(pcm);
    expect(encodeAudioSocketAudio(16000, new Uint8Array(640))![0]).toBe(0x12);
    expect(encodeAudioSocketAudio(44100, new Uint8Array(2))![0]).toBe(0x15);
    expect(encodeAudioSocketAudio(8000, new Uint8Array(0))).toBeUndefined();
    expect(encodeAudioSocketAudio(8000, new Uint8Array(1))).toBeUndefined();
    expect(encodeAudioSocketAudio(8000, new Uint8Array(5))!.length).toBe(3 + 4);
    expect(encodeAudioSocketAudio(11025, new Uint8Array(4))).toBeUndefined();
    expect(audioSocketFrameMs(at8k)).toBe(20);
    expect(audioSocketFrameMs(encodeAudioSocketAudio(16000, new Uint8Array(640))!)).toBe(20);
    expect(audioSocketFrameMs(encodeAudioSocketHangup())).toBe(0);
  });
});

describe('AudioSocket carrier codec', () => {
  it('the UUID frame starts the stream, announcing slin at the connection rate both ways', () => {
    const codec = createAudioSocketCodec(16000);
    expect(codec.decode(frame(0x01, UUID_BYTES))).toEqual({
      type: 'start',
      streamId: UUID_TEXT,
      callId: UUID_TEXT,
      parameters: {},
      format: { input: { encoding: 'pcm16', sampleRateHz: 16000 }, output: { encoding: 'pcm16', sampleRateHz: 16000 } },
    });
    expect(codec.capabilities).toEqual({ marks: false, clear: false });
  });

  it('maps audio, DTMF, hang-up and errors; audio at another rate than the stream is an error, not noise', () => {
    const codec = createAudioSocketCodec(8000);
    expect(codec.decode(frame(0x10, [5, 0]))).toMatchObject({ type: 'media' });
    expect(codec.decode(frame(0x12, [5, 0]))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(codec.decode(frame(0x10))).toEqual({ type: 'ignored' });
    expect(codec.decode(frame(0x03, [0x23]))).toEqual({ type: 'dtmf', digit: '#' });
    expect(codec.decode(frame(0x00))).toEqual({ type: 'stop' });
    expect(codec.decode(frame(0xff, [0x01]))).toEqual({ type: 'stop' });
    expect(codec.decode(frame(0xff, [0x02]))).toMatchObject({ type: 'protocolError', code: 'peer-error' });
    expect(codec.decode(frame(0x42, [1]))).toMatchObject({ type: 'protocolError', code: 'unknown-event' });
    expect(codec.decode('text')).toMatchObject({ type: 'protocolError' });
  });

  it('sends nothing for marks and clears (nothing written can be recalled), and no empty audio frame', () => {
    const codec = createAudioSocketCodec(8000);
    expect(codec.encodeMark('s', 'm')).toBeUndefined();
    expect(codec.encodeClear('s')).toBeUndefined();
    expect(codec.encodeHangup).toBeUndefined();
    expect((codec.encodeMedia('s', new Uint8Array(0)) as Uint8Array).length).toBe(0);
    expect((codec.encodeMedia('s', new Uint8Array(320)) as Uint8Array)[0]).toBe(0x10);
  });
});

describe('AudioSocket stream splitter', () => {
  const stream = () => {
    const frames = [frame(0x01, UUID_BYTES), frame(0x10, new Uint8Array(320).fill(7)), frame(0x03, [0x35]), frame(0x00), frame(0x10, [1, 0])];
    const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of frames) {
      bytes.set(f, at);
      at += f.length;
    }
    return { frames, bytes };
  };

  it('recovers the same frames at every single cut point, and fed byte by byte', () => {
    const { frames, bytes } = stream();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const splitter = createAudioSocketSplitter();
      const out = [...(splitter.push(bytes.subarray(0, cut)) as { frames: Uint8Array[] }).frames, ...(splitter.push(bytes.subarray(cut)) as { frames: Uint8Array[] }).frames];
      expect(out).toEqual(frames);
      expect(splitter.heldBytes).toBe(0);
    }
    const splitter = createAudioSocketSplitter();
    const out: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...splitter.push(bytes.subarray(i, i + 1)).frames);
    expect(out).toEqual(frames);
  });

  it('hands out frames that stay valid after later reads (no buffer reuse)', () => {
    const { frames, bytes } = stream();
    const splitter = createAudioSocketSplitter();
    const first = splitter.push(bytes.subarray(0, 30)).frames;
    splitter.push(bytes.subarray(30));
    expect(first[0]).toEqual(frames[0]);
  });

  it('a declared length over the limit fails the stream: earlier frames still come out, nothing after', () => {
    const splitter = createAudioSocketSplitter({ maxPayloadBytes: 1000 });
    const ok = frame(0x03, [0x31]);
    const result = splitter.push(Uint8Array.from([...ok, 0x10, 0x03, 0xe9, 1, 2, 3]));
    expect(result.ok).toBe(false);
    expect(result.frames).toEqual([ok]);
    expect(!result.ok && result.error.message).toMatch(/1001 payload bytes, over the 1000-byte limit/);
    expect(splitter.push(ok)).toMatchObject({ ok: false, frames: [] });
    // Exactly at the limit is fine, also when the header arrives in pieces.
    const edge = createAudioSocketSplitter({ maxPayloadBytes: 1000 });
    const big = frame(0x10, new Uint8Array(1000));
    expect(edge.push(big.subarray(0, 2))).toEqual({ ok: true, frames: [] });
    expect(edge.push(big.subarray(2))).toEqual({ ok: true, frames: [big] });
    const split = createAudioSocketSplitter({ maxPayloadBytes: 1000 });
    expect(split.push(Uint8Array.from([0x10, 0x03]))).toEqual({ ok: true, frames: [] });
    expect(split.push(Uint8Array.from([0xe9]))).toMatchObject({ ok: false });
  });

  it('fuzz: random bytes in random chunks never throw, and memory stays within one frame', () => {
    const rand = seeded(42);
    for (let run = 0; run < 200; run++) {
      const splitter = createAudioSocketSplitter();
      const codec = createAudioSocketCodec(8000);
      for (let chunkIndex = 0; chunkIndex < 50; chunkIndex++) {
        const chunk = new Uint8Array(Math.floor(rand() * 300)).map(() => Math.floor(rand() * 256));
        const result = splitter.push(chunk);
        // Every frame handed out decodes to something (an event or a protocol error), never a throw.
        for (const f of result.frames) expect(codec.decode(f).type).toBeTypeOf('string');
        expect(splitter.heldBytes).toBeLessThanOrEqual(3 + AUDIOSOCKET_MAX_PAYLOAD_BYTES);
        if (!result.ok) break;
      }
    }
  });

  it('fuzz: valid frames cut at random points come out whole and in order', () => {
    const rand = seeded(7);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 500; i++) {
      const type = [0x00, 0x03, 0x10, 0x12, 0xff][Math.floor(rand() * 5)]!;
      frames.push(frame(type, new Uint8Array(type === 0x00 ? 0 : type === 0x03 ? 1 : Math.floor(rand() * 400))));
    }
    const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of frames) {
      bytes.set(f, at);
      at += f.length;
    }
    const splitter = createAudioSocketSplitter();
    const out: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; ) {
      const n = 1 + Math.floor(rand() * 700);
      out.push(...splitter.push(bytes.subarray(i, i + n)).frames);
      i += n;
    }
    expect(out).toEqual(frames);
  });
});
