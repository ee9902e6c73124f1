import { describe, expect, it } from 'vitest';
import { FrameOverflowError, createFrameAssembler } from '../../shared/audio/frame-assembler';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, pcm16View } from '../../shared/audio/format';
import type { AudioFormat, AudioFrame } from '../../shared/audio/format';

/** Small seeded PRNG (mulberry32) so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function byteStream(length: number, seed: number): Uint8Array {
  const next = random(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}

function concat(frames: AudioFrame[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((sum, f) => sum + f.data.length, 0));
  let offset = 0;
  for (const frame of frames) {
    out.set(frame.data, offset);
    offset += frame.data.length;
  }
  return out;
}

describe('frame assembler', () => {
  it.each<[string, AudioFormat, number]>([
    ['pcm16 16 kHz', PIPELINE_FORMAT, 640],
    ['μ-law 8 kHz', MULAW_8K, 160],
    ['A-law 8 kHz', ALAW_8K, 160],
  ])('cuts random-sized %s chunks into exact 20 ms frames that reproduce the stream', (_name, format, frameBytes) => {
    for (const seed of [1, 2, 3]) {
      const stream = byteStream(frameBytes * 37 + 123, seed);
      const next = random(seed + 100);
      const assembler = createFrameAssembler(format);
      expect(assembler.frameBytes).toBe(frameBytes);
      const frames: AudioFrame[] = [];
      let offset = 0;
      while (offset < stream.length) {
        const size = Math.min(stream.length - offset, Math.floor(next() * frameBytes * 3)); // 0 .. 3 frames, odd too
        const error = assembler.push(stream.subarray(offset, offset + size), (frame) => frames.push(frame));
        expect(error).toBeUndefined();
        offset += size;
        expect(assembler.bufferedBytes).toBe(offset - frames.length * frameBytes);
      }
      expect(frames).toHaveLength(37);
      for (const frame of frames) {
        expect(frame.format).toBe(format);
        expect(frame.data.length).toBe(frameBytes);
      }
      const joined = concat(frames);
      expect(joined.length).toBe(37 * frameBytes);
      expect(joined.findIndex((byte, i) => byte !== stream[i]), 'first differing byte').toBe(-1);
      expect(assembler.bufferedBytes).toBe(123);
    }
  });

  it('rejoins PCM16 samples split across chunks at odd byte boundaries', () => {
    const samples = Int16Array.from({ length: 640 }, (_, i) => (i * 997) % 65536 - 32768);
    const bytes = new Uint8Array(samples.buffer);
    const assembler = createFrameAssembler(PIPELINE_FORMAT);
    const frames: AudioFrame[] = [];
    for (let offset = 0; offset < bytes.length; offset += 7) {
      assembler.push(bytes.subarray(offset, offset + 7), (frame) => frames.push(frame));
    }
    expect(frames).toHaveLength(2);
    expect(Array.from(pcm16View(frames[0]!.data))).toEqual(Array.from(samples.subarray(0, 320)));
    expect(Array.from(pcm16View(frames[1]!.data))).toEqual(Array.from(samples.subarray(320, 640)));
  });

  it('gives frames their own bytes, so the caller may reuse its chunk buffer', () => {
    const assembler = createFrameAssembler(MULAW_8K);
    const chunk = new Uint8Array(200).fill(1);
    const frames: AudioFrame[] = [];
    assembler.push(chunk, (frame) => frames.push(frame));
    chunk.fill(9);
    assembler.push(chunk.subarray(0, 120), (frame) => frames.push(frame));
    expect(frames).toHaveLength(2);
    expect(frames[0]!.data.every((b) => b === 1)).toBe(true);
    expect(Array.from(frames[1]!.data.subarray(0, 40))).toEqual(new Array(40).fill(1));
    expect(Array.from(frames[1]!.data.subarray(40))).toEqual(new Array(120).fill(9));
  });

  it('honours a custom frame length', () => {
    const assembler = createFrameAssembler(PIPELINE_FORMAT, { frameMs: 10 });
    const frames: AudioFrame[] = [];
    assembler.push(new Uint8Array(1000), (frame) => frames.push(frame));
    expect(frames.map((f) => f.data.length)).toEqual([320, 320, 320]);
    expect(assembler.bufferedBytes).toBe(40);
  });

  it('refuses a push beyond maxBufferedMs with a typed error and keeps its state', () => {
    const assembler = createFrameAssembler(MULAW_8K, { maxBufferedMs: 100 }); // 800 bytes
    const frames: AudioFrame[] = [];
    expect(assembler.push(new Uint8Array(50).fill(3), (frame) => frames.push(frame))).toBeUndefined();
    const error = assembler.push(new Uint8Array(751), (frame) => frames.push(frame));
    expect(error).toBeInstanceOf(FrameOverflowError);
    expect(error?.code).toBe('AUDIO_FRAME_OVERFLOW');
    expect(error?.maxBufferedBytes).toBe(800);
    expect(error?.bufferedBytes).toBe(50);
    expect(frames).toHaveLength(0);
    expect(assembler.bufferedBytes).toBe(50);
    // Exactly at the limit is fine, and the earlier tail is still in front.
    expect(assembler.push(new Uint8Array(750).fill(4), (frame) => frames.push(frame))).toBeUndefined();
    expect(frames).toHaveLength(5);
    expect(Array.from(frames[0]!.data.subarray(0, 50))).toEqual(new Array(50).fill(3));
    expect(frames[0]!.data[50]).toBe(4);
  });

  it.each<[string, AudioFormat, number]>([
    ['pcm16', PIPELINE_FORMAT, 0x00],
    ['μ-law', MULAW_8K, 0xff],
    ['A-law', ALAW_8K, 0xd5],
  ])('flush pads the %s tail with that encoding’s silence', (_name, format, silence) => {
    const assembler = createFrameAssembler(format);
    assembler.push(new Uint8Array(10).fill(0x42), () => expect.unreachable());
    const frame = assembler.flush(true);
    expect(frame?.data.length).toBe(assembler.frameBytes);
    expect(Array.from(frame!.data.subarray(0, 10))).toEqual(new Array(10).fill(0x42));
    expect(frame!.data.subarray(10).every((b) => b === silence)).toBe(true);
    expect(assembler.bufferedBytes).toBe(0);
    expect(assembler.flush(true)).toBeUndefined();
  });

  it('flush without padding returns a short frame of whole samples', () => {
    const assembler = createFrameAssembler(PIPELINE_FORMAT);
    assembler.push(Uint8Array.from([1, 2, 3, 4, 5]), () => expect.unreachable());
    const frame = assembler.flush(false);
    expect(Array.from(frame!.data)).toEqual([1, 2, 3, 4]); // the dangling half sample is dropped
    expect(assembler.flush(false)).toBeUndefined();
  });

  it('flush drops a lone half sample rather than inventing one', () => {
    const assembler = createFrameAssembler(PIPELINE_FORMAT);
    assembler.push(Uint8Array.from([7]), () => expect.unreachable());
    expect(assembler.flush(true)).toBeUndefined();
  });

  it('reset drops the buffered tail', () => {
    const assembler = createFrameAssembler(MULAW_8K);
    assembler.push(new Uint8Array(100).fill(1), () => expect.unreachable());
    assembler.reset();
    expect(assembler.bufferedBytes).toBe(0);
    const frames: AudioFrame[] = [];
    assembler.push(new Uint8Array(160).fill(2), (frame) => frames.push(frame));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.data.every((b) => b === 2)).toBe(true);
  });
});
