import { describe, expect, it } from 'vitest';
import {
  ALAW_SILENCE,
  MULAW_SILENCE,
  alawDecode,
  alawDecodeSample,
  alawEncode,
  alawEncodeSample,
  mulawDecode,
  mulawDecodeSample,
  mulawEncode,
  mulawEncodeSample,
} from '../../shared/audio/g711';

/*
 * An independent reference written from the structure of the G.711 quantisation tables (decision intervals
 * per segment), not from the compress/expand formulas the module uses. μ-law works on a 14-bit magnitude
 * (sample >> 2), A-law on a 12-bit one (sample >> 4); negatives use the one's complement as in G.191.
 */
const MULAW_SEGMENT_ENDS = [31, 95, 223, 479, 991, 2015, 4063]; // segment s+1 starts here; last ends at 8159

function mulawIntervals(): { lower: number[]; recon: number[] } {
  const lower = [0];
  const recon = [0];
  for (let j = 1; j < 16; j++) {
    lower.push(1 + 2 * (j - 1));
    recon.push(2 * j);
  }
  for (let s = 1; s < 8; s++) {
    const step = 2 << s;
    for (let j = 0; j < 16; j++) {
      const low = MULAW_SEGMENT_ENDS[s - 1]! + j * step;
      lower.push(low);
      recon.push(low + step / 2);
    }
  }
  return { lower, recon };
}

function alawIntervals(): { lower: number[]; recon: number[] } {
  const lower: number[] = [];
  const recon: number[] = [];
  for (let n = 0; n < 32; n++) {
    lower.push(n);
    recon.push(n + 0.5);
  }
  for (let s = 2; s < 8; s++) {
    const step = 1 << (s - 1);
    for (let j = 0; j < 16; j++) {
      const low = (16 << (s - 1)) + j * step;
      lower.push(low);
      recon.push(low + step / 2);
    }
  }
  return { lower, recon };
}

const MU = mulawIntervals();
const A = alawIntervals();

function intervalOf(lower: number[], magnitude: number): number {
  let n = 0;
  while (n + 1 < lower.length && lower[n + 1]! <= magnitude) n++;
  return n;
}

function referenceMulawEncode(sample: number): number {
  const magnitude = Math.min((sample < 0 ? ~sample : sample) >> 2, 8158);
  const n = intervalOf(MU.lower, magnitude);
  return (sample >= 0 ? 0xff : 0x7f) - n;
}

function referenceMulawDecode(code: number): number {
  const n = (code >= 0x80 ? 0xff : 0x7f) - code;
  const value = MU.recon[n]! * 4;
  return code >= 0x80 || value === 0 ? value : -value;
}

function referenceAlawEncode(sample: number): number {
  const n = intervalOf(A.lower, (sample < 0 ? ~sample : sample) >> 4);
  return (sample >= 0 ? 0x80 | n : n) ^ 0x55;
}

function referenceAlawDecode(code: number): number {
  const bits = code ^ 0x55;
  const value = A.recon[bits & 0x7f]! * 16;
  return bits & 0x80 ? value : -value;
}

const ALL_INT16 = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('G.711 μ-law', () => {
  it('decodes the standard end points', () => {
    expect(mulawDecodeSample(0xff)).toBe(0);
    expect(mulawDecodeSample(0x7f)).toBe(0);
    expect(mulawDecodeSample(0x80)).toBe(32124);
    expect(mulawDecodeSample(0x00)).toBe(-32124);
    expect(mulawDecodeSample(0xfe)).toBe(8);
    expect(mulawDecodeSample(0xef)).toBe(132); // first code of segment 1: 4 * 33
  });

  it('matches the reference decision tables for every code and every int16 sample', () => {
    for (let code = 0; code < 256; code++) expect(mulawDecodeSample(code), `code ${code}`).toBe(referenceMulawDecode(code));
    const out = new Uint8Array(ALL_INT16.length);
    mulawEncode(ALL_INT16, out);
    for (let i = 0; i < ALL_INT16.length; i++) {
      const sample = ALL_INT16[i]!;
      if (out[i] !== referenceMulawEncode(sample)) expect(out[i], `sample ${sample}`).toBe(referenceMulawEncode(sample));
    }
  });

  it('re-encodes every decoded code to itself, except negative zero 0x7F which becomes 0xFF', () => {
    const pcm = new Int16Array(256);
    const back = new Uint8Array(256);
    mulawDecode(ALL_CODES, pcm);
    mulawEncode(pcm, back);
    for (let code = 0; code < 256; code++) expect(back[code], `code ${code}`).toBe(code === 0x7f ? 0xff : code);
  });

  it('encodes zero, full scale and the reference’s one’s-complement negatives', () => {
    expect(mulawEncodeSample(0)).toBe(MULAW_SILENCE);
    expect(mulawEncodeSample(32767)).toBe(0x80);
    expect(mulawEncodeSample(-32768)).toBe(0x00);
    expect(mulawEncodeSample(-1)).toBe(0x7f);
    expect(mulawEncodeSample(-4)).toBe(0x7f);
    expect(mulawEncodeSample(-5)).toBe(0x7e);
    expect(mulawEncodeSample(3)).toBe(0xff);
    expect(mulawEncodeSample(4)).toBe(0xfe);
    expect(mulawEncodeSample(100_000)).toBe(0x80); // out of range clips
  });

  it('round-trips monotonically with error within half a quantisation step', () => {
    let previous = -Infinity;
    for (const sample of ALL_INT16) {
      const code = mulawEncodeSample(sample);
      const decoded = mulawDecodeSample(code);
      if (decoded < previous) expect(decoded, `monotonic at ${sample}`).toBeGreaterThanOrEqual(previous);
      previous = decoded;
      const exponent = (~code >> 4) & 0x07;
      const halfStep = (8 << exponent) / 2;
      // 4 more for the two bits dropped before quantising; above the top level the coder clips.
      if (Math.abs(sample) <= 32124 + halfStep) {
        if (Math.abs(decoded - sample) > halfStep + 4) expect(Math.abs(decoded - sample), `sample ${sample}`).toBeLessThanOrEqual(halfStep + 4);
      } else if (code !== (sample > 0 ? 0x80 : 0x00)) {
        expect(code, `clipping at ${sample}`).toBe(sample > 0 ? 0x80 : 0x00);
      }
    }
  });
});

describe('G.711 A-law', () => {
  it('decodes the standard end points', () => {
    expect(alawDecodeSample(0xd5)).toBe(8);
    expect(alawDecodeSample(0x55)).toBe(-8);
    expect(alawDecodeSample(0xaa)).toBe(32256);
    expect(alawDecodeSample(0x2a)).toBe(-32256);
    expect(alawDecodeSample(0xd4)).toBe(24);
  });

  it('matches the reference decision tables for every code and every int16 sample', () => {
    for (let code = 0; code < 256; code++) expect(alawDecodeSample(code), `code ${code}`).toBe(referenceAlawDecode(code));
    const out = new Uint8Array(ALL_INT16.length);
    alawEncode(ALL_INT16, out);
    for (let i = 0; i < ALL_INT16.length; i++) {
      const sample = ALL_INT16[i]!;
      if (out[i] !== referenceAlawEncode(sample)) expect(out[i], `sample ${sample}`).toBe(referenceAlawEncode(sample));
    }
  });

  it('re-encodes every decoded code to itself', () => {
    const pcm = new Int16Array(256);
    const back = new Uint8Array(256);
    alawDecode(ALL_CODES, pcm);
    alawEncode(pcm, back);
    expect(Array.from(back)).toEqual(Array.from(ALL_CODES));
  });

  it('encodes zero and full scale', () => {
    expect(alawEncodeSample(0)).toBe(ALAW_SILENCE);
    expect(alawEncodeSample(-1)).toBe(0x55);
    expect(alawEncodeSample(15)).toBe(0xd5);
    expect(alawEncodeSample(16)).toBe(0xd4);
    expect(alawEncodeSample(32767)).toBe(0xaa);
    expect(alawEncodeSample(-32768)).toBe(0x2a);
    expect(alawEncodeSample(-100_000)).toBe(0x2a);
  });

  it('round-trips monotonically with error within half a quantisation step', () => {
    let previous = -Infinity;
    for (const sample of ALL_INT16) {
      const code = alawEncodeSample(sample);
      const decoded = alawDecodeSample(code);
      if (decoded < previous) expect(decoded, `monotonic at ${sample}`).toBeGreaterThanOrEqual(previous);
      previous = decoded;
      const exponent = ((code ^ 0x55) >> 4) & 0x07;
      const halfStep = (16 << Math.max(0, exponent - 1)) / 2;
      if (Math.abs(decoded - sample) > halfStep) expect(Math.abs(decoded - sample), `sample ${sample}`).toBeLessThanOrEqual(halfStep);
    }
  });
});

describe('G.711 array forms', () => {
  it('convert only `length` items and leave the rest of the output untouched', () => {
    const pcm = Int16Array.from([0, 1000, -1000, 32767]);
    const out = new Uint8Array(4).fill(0x11);
    expect(mulawEncode(pcm, out, 2)).toBe(2);
    expect(Array.from(out)).toEqual([0xff, mulawEncodeSample(1000), 0x11, 0x11]);
    const decoded = new Int16Array(4).fill(7);
    expect(alawDecode(Uint8Array.from([0xd5, 0x55, 0xaa]), decoded, 1)).toBe(1);
    expect(Array.from(decoded)).toEqual([8, 7, 7, 7]);
  });

  it('reject an output that is too short instead of writing past it', () => {
    expect(() => mulawDecode(new Uint8Array(4), new Int16Array(3))).toThrow(RangeError);
    expect(() => alawEncode(new Int16Array(4), new Uint8Array(4), 5)).toThrow(RangeError);
  });
});
