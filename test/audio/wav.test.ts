import { describe, expect, it } from 'vitest';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT } from '../../shared/audio/format';
import type { AudioFormat } from '../../shared/audio/format';
import { WavError, decodeWav, encodeWav } from '../../shared/audio/wav';
import type { DecodedWav, WavErrorCode } from '../../shared/audio/wav';

const ascii = (text: string): number[] => Array.from(text, (c) => c.charCodeAt(0));
const u16 = (value: number): number[] => [value & 0xff, (value >> 8) & 0xff];
const u32 = (value: number): number[] => [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];

/** A chunk as the RIFF spec lays it out, with its pad byte after an odd body. */
function chunk(id: string, body: number[], declaredSize = body.length): number[] {
  return [...ascii(id), ...u32(declaredSize), ...body, ...(body.length & 1 ? [0] : [])];
}

function fmtBody(code: number, channels: number, rateHz: number, bits: number): number[] {
  const align = (channels * bits) / 8;
  return [...u16(code), ...u16(channels), ...u32(rateHz), ...u32(rateHz * align), ...u16(align), ...u16(bits)];
}

function riff(...chunks: number[][]): Uint8Array {
  const body = [...ascii('WAVE'), ...chunks.flat()];
  return Uint8Array.from([...ascii('RIFF'), ...u32(body.length), ...body]);
}

function decoded(bytes: Uint8Array): DecodedWav {
  const result = decodeWav(bytes);
  if (result instanceof WavError) throw result;
  return result;
}

function expectError(bytes: Uint8Array, code: WavErrorCode): WavError {
  const result = decodeWav(bytes);
  expect(result).toBeInstanceOf(WavError);
  expect((result as WavError).code).toBe(code);
  expect((result as WavError).message.startsWith(`${code}: `)).toBe(true);
  return result as WavError;
}

describe('encodeWav', () => {
  it('writes the canonical 44-byte PCM16 header', () => {
    const data = Uint8Array.from([1, 2, 3, 4]);
    const bytes = encodeWav(PIPELINE_FORMAT, data);
    expect(Array.from(bytes)).toEqual([
      ...ascii('RIFF'), ...u32(40), ...ascii('WAVE'),
      ...ascii('fmt '), ...u32(16), ...u16(1), ...u16(1), ...u32(16000), ...u32(32000), ...u16(2), ...u16(16),
      ...ascii('data'), ...u32(4), 1, 2, 3, 4,
    ]);
  });

  it('writes G.711 with an 18-byte fmt, a fact chunk and a pad byte after odd data', () => {
    const bytes = encodeWav(MULAW_8K, Uint8Array.from([0xff, 0x7f, 0x00]));
    expect(Array.from(bytes)).toEqual([
      ...ascii('RIFF'), ...u32(4 + 26 + 12 + 8 + 4), ...ascii('WAVE'),
      ...ascii('fmt '), ...u32(18), ...u16(7), ...u16(1), ...u32(8000), ...u32(8000), ...u16(1), ...u16(8), ...u16(0),
      ...ascii('fact'), ...u32(4), ...u32(3),
      ...ascii('data'), ...u32(3), 0xff, 0x7f, 0x00, 0,
    ]);
    expect(bytes[20]).toBe(7);
    expect(encodeWav(ALAW_8K, new Uint8Array(2))[20]).toBe(6);
  });

  it('refuses PCM16 data that ends inside a sample', () => {
    expect(() => encodeWav(PIPELINE_FORMAT, new Uint8Array(3))).toThrow(WavError);
  });
});

describe('decodeWav', () => {
  it.each<[string, AudioFormat, number]>([
    ['pcm16 16 kHz', PIPELINE_FORMAT, 640],
    ['μ-law 8 kHz', MULAW_8K, 161],
    ['A-law 8 kHz', ALAW_8K, 33],
    ['pcm16 24 kHz', { encoding: 'pcm16', sampleRateHz: 24_000 }, 2],
  ])('round-trips %s', (_name, format, length) => {
    const data = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);
    const wav = decoded(encodeWav(format, data));
    expect(wav.format).toEqual(format);
    expect(Array.from(wav.data)).toEqual(Array.from(data));
  });

  it('decodes an empty data chunk', () => {
    expect(decoded(encodeWav(MULAW_8K, new Uint8Array(0))).data.length).toBe(0);
  });

  it('skips unknown chunks, odd-sized ones included, before and after fmt', () => {
    const bytes = riff(
      chunk('LIST', [...ascii('INFOISFT'), 3, 0, 0, 0, 0x41, 0x42, 0x43]), // 15 bytes: padded
      chunk('fmt ', fmtBody(1, 1, 8000, 16)),
      chunk('junk', [1, 2, 3]),
      chunk('data', [0x10, 0x00, 0xf0, 0xff]),
      chunk('LIST', [1]),
    );
    const wav = decoded(bytes);
    expect(wav.format).toEqual({ encoding: 'pcm16', sampleRateHz: 8000 });
    expect(Array.from(wav.data)).toEqual([0x10, 0x00, 0xf0, 0xff]);
  });

  it('accepts a data chunk before the fmt chunk', () => {
    const wav = decoded(riff(chunk('data', [0xd5, 0x55]), chunk('fmt ', fmtBody(6, 1, 8000, 8))));
    expect(wav.format).toEqual(ALAW_8K);
    expect(Array.from(wav.data)).toEqual([0xd5, 0x55]);
  });

  it('reads a file that sits inside a larger buffer at an odd offset', () => {
    const file = encodeWav(MULAW_8K, Uint8Array.from([1, 2, 3]));
    const host = new Uint8Array(file.length + 10);
    host.set(file, 5);
    const wav = decoded(host.subarray(5, 5 + file.length));
    expect(Array.from(wav.data)).toEqual([1, 2, 3]);
  });

  it('reads WAVE_FORMAT_EXTENSIBLE wrapping PCM', () => {
    const pcmSubtype = [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
    const extensible = [...fmtBody(0xfffe, 1, 48000, 16), ...u16(22), ...u16(16), ...u32(4), ...pcmSubtype];
    const wav = decoded(riff(chunk('fmt ', extensible), chunk('data', [1, 2])));
    expect(wav.format).toEqual({ encoding: 'pcm16', sampleRateHz: 48000 });
    const floatSubtype = [0x03, ...pcmSubtype.slice(1)];
    const float = [...fmtBody(0xfffe, 1, 48000, 32), ...u16(22), ...u16(32), ...u32(4), ...floatSubtype];
    expectError(riff(chunk('fmt ', float), chunk('data', [1, 2, 3, 4])), 'WAV_UNSUPPORTED');
  });

  it('treats a streaming writer’s unknown data size as "to the end of the file"', () => {
    const bytes = riff(chunk('fmt ', fmtBody(7, 1, 8000, 8)), [...ascii('data'), ...u32(0xffffffff), 9, 8, 7]);
    expect(Array.from(decoded(bytes).data)).toEqual([9, 8, 7]);
  });

  it('says when the bytes are not a RIFF/WAVE file', () => {
    expectError(new Uint8Array(0), 'WAV_NOT_RIFF');
    expectError(Uint8Array.from(ascii('ID3\u0004 not a wave file')), 'WAV_NOT_RIFF');
    expectError(Uint8Array.from([...ascii('RIFF'), ...u32(4), ...ascii('AVI ')]), 'WAV_NOT_RIFF');
    const rifx = expectError(Uint8Array.from([...ascii('RIFX'), ...u32(4), ...ascii('WAVE')]), 'WAV_NOT_RIFF');
    expect(rifx.message).toContain('RIFX');
  });

  it('says which format is unsupported', () => {
    const float = expectError(riff(chunk('fmt ', fmtBody(3, 1, 16000, 32)), chunk('data', [0, 0, 0, 0])), 'WAV_UNSUPPORTED');
    expect(float.message).toContain('format code 3');
    const stereo = expectError(riff(chunk('fmt ', fmtBody(1, 2, 16000, 16)), chunk('data', [0, 0, 0, 0])), 'WAV_UNSUPPORTED');
    expect(stereo.message).toContain('2 channels');
    expectError(riff(chunk('fmt ', fmtBody(1, 1, 16000, 8)), chunk('data', [0])), 'WAV_UNSUPPORTED');
    expectError(riff(chunk('fmt ', fmtBody(7, 1, 8000, 16)), chunk('data', [0, 0])), 'WAV_UNSUPPORTED');
  });

  it('says when the file is truncated', () => {
    const full = encodeWav(PIPELINE_FORMAT, new Uint8Array(640));
    const cut = expectError(full.subarray(0, full.length - 100), 'WAV_TRUNCATED');
    expect(cut.message).toContain('640');
    expectError(full.subarray(0, 8), 'WAV_TRUNCATED');
    expectError(riff(chunk('fmt ', fmtBody(1, 1, 16000, 16)), chunk('data', [1, 2, 3])), 'WAV_TRUNCATED'); // half a sample
    expectError(riff([...ascii('fmt '), ...u32(16), ...fmtBody(1, 1, 16000, 16).slice(0, 10)]), 'WAV_TRUNCATED');
  });

  it('says which chunk is missing or malformed', () => {
    expect(expectError(riff(chunk('data', [0, 0])), 'WAV_MISSING_CHUNK').message).toContain("'fmt '");
    expect(expectError(riff(chunk('fmt ', fmtBody(1, 1, 16000, 16))), 'WAV_MISSING_CHUNK').message).toContain("'data'");
    expectError(riff(chunk('fmt ', fmtBody(1, 1, 16000, 16).slice(0, 14)), chunk('data', [0, 0])), 'WAV_MALFORMED');
    const badAlign = fmtBody(1, 1, 16000, 16);
    badAlign[12] = 4;
    expectError(riff(chunk('fmt ', badAlign), chunk('data', [0, 0])), 'WAV_MALFORMED');
    expectError(riff(chunk('fmt ', fmtBody(1, 1, 0, 16)), chunk('data', [0, 0])), 'WAV_MALFORMED');
  });
});
