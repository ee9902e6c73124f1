import { beforeAll, describe, expect, it } from 'vitest';
import { loadWasmModulesNode } from '../../media-node/audio/wasm-node';
import { ConfigError } from '../../shared/contracts/errors';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import type { SpeexResamplerFactory } from '../../shared/audio/resampler';
import { concat, decibels, pieces, rms, sineTone, toneAmplitude, whiteNoise } from './test-signals';

const RATES = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
const PAIRS = RATES.flatMap((a) => RATES.filter((b) => b !== a).map((b) => [a, b] as const));
const AUDIOSOCKET_RATES = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000];
// The pairs the pipeline meets most, used where checking all 30 pairs would only add time.
const KEY_PAIRS = [
  [48_000, 8_000],
  [44_100, 16_000],
  [8_000, 16_000],
  [22_050, 16_000],
  [16_000, 24_000],
  [16_000, 8_000],
  [48_000, 16_000],
] as const;

const AMPLITUDE = 0.5; // −6 dBFS
const frameOf = (rateHz: number) => rateHz / 50; // 20 ms (every rate here divides evenly)

let factory: SpeexResamplerFactory;
beforeAll(async () => {
  factory = await createSpeexResamplerFactory((await loadWasmModulesNode()).speexResampler);
});

/** Streams `input` through a fresh resampler in 20 ms frames, as a channel would. */
function resampleInFrames(input: Int16Array, inRate: number, outRate: number): Int16Array {
  const resampler = factory.create(inRate, outRate);
  const out = concat(pieces(input, frameOf(inRate)).map((frame) => resampler.process(frame)));
  resampler.destroy();
  return out;
}

/** Level in dB (re. the input tone) after the filter has settled (the first 100 ms are skipped). */
function toneLevelDb(inRate: number, outRate: number, frequencyHz: number, measureHz = frequencyHz): number {
  const out = resampleInFrames(sineTone(inRate, frequencyHz, frameOf(inRate) * 25, AMPLITUDE), inRate, outRate);
  return decibels(toneAmplitude(out, outRate, measureHz, outRate / 10) / AMPLITUDE);
}

describe('speex resampler (quality 7): frequency response', () => {
  it.each(PAIRS)('%i → %i Hz: tones up to 0.45 × the lower rate pass within 0.5 dB', (inRate, outRate) => {
    const lower = Math.min(inRate, outRate);
    for (const fraction of [0.02, 0.1, 0.25, 0.4, 0.45]) {
      const levelDb = toneLevelDb(inRate, outRate, fraction * lower);
      expect(Math.abs(levelDb), `${fraction} × ${lower} Hz came out at ${levelDb.toFixed(2)} dB`).toBeLessThan(0.5);
    }
  });

  const downsampling = PAIRS.filter(([a, b]) => b < a);
  it.each(downsampling)('%i → %i Hz: tones above the output Nyquist are attenuated by at least 50 dB', (inRate, outRate) => {
    const nyquist = outRate / 2;
    const tones = [1.05 * nyquist, 1.3 * nyquist, 0.95 * (inRate / 2)].filter((f) => f > nyquist && f < inRate / 2);
    for (const frequencyHz of tones) {
      const out = resampleInFrames(sineTone(inRate, frequencyHz, frameOf(inRate) * 25, AMPLITUDE), inRate, outRate);
      // Whatever survives (aliases land anywhere below Nyquist) counts: compare total RMS with the tone's.
      const levelDb = decibels(rms(out, outRate / 10) / (AMPLITUDE / Math.SQRT2));
      expect(levelDb, `${frequencyHz.toFixed(0)} Hz leaked at ${levelDb.toFixed(1)} dB`).toBeLessThan(-50);
    }
  });

  const upsampling = PAIRS.filter(([a, b]) => b > a);
  it.each(upsampling)('%i → %i Hz: the image above the input Nyquist is attenuated by at least 50 dB', (inRate, outRate) => {
    for (const fraction of [0.3, 0.4]) {
      const frequencyHz = fraction * inRate;
      const imageDb = toneLevelDb(inRate, outRate, frequencyHz, inRate - frequencyHz);
      expect(imageDb, `image of ${frequencyHz} Hz at ${imageDb.toFixed(1)} dB`).toBeLessThan(-50);
    }
  });
});

describe('speex resampler: streaming', () => {
  it.each(KEY_PAIRS)('%i → %i Hz: 7-sample pieces give exactly the output of 20 ms frames', (inRate, outRate) => {
    const input = whiteNoise(inRate, 0.3, inRate); // 1 s
    const byFrames = resampleInFrames(input, inRate, outRate);
    const resampler = factory.create(inRate, outRate);
    const byPieces = concat(
      pieces(input, 7).map((piece) => {
        const out = resampler.process(piece);
        expect(out.length).toBeLessThanOrEqual(resampler.maxOutputSamples(piece.length));
        return out;
      }),
    );
    resampler.destroy();
    expect(byPieces.length).toBe(outRate);
    expect(byPieces).toEqual(byFrames);
  });

  it.each(KEY_PAIRS)('%i → %i Hz: every 20 ms frame gives exactly 20 ms, over 5,000 frames (no drift)', (inRate, outRate) => {
    const resampler = factory.create(inRate, outRate);
    const frame = whiteNoise(frameOf(inRate), 0.3, 7);
    const output = new Int16Array(resampler.maxOutputSamples(frame.length));
    const counts = new Set<number>();
    let total = 0;
    for (let i = 0; i < 5_000; i++) {
      const produced = resampler.processInto(frame, output);
      counts.add(produced);
      total += produced;
    }
    resampler.destroy();
    expect([...counts]).toEqual([frameOf(outRate)]);
    expect(total).toBe(5_000 * frameOf(outRate));
  });

  it('accepts every AudioSocket rate pair (8 to 192 kHz) and keeps 20 ms framing', () => {
    for (const inRate of AUDIOSOCKET_RATES) {
      for (const outRate of AUDIOSOCKET_RATES) {
        const resampler = factory.create(inRate, outRate);
        const frame = sineTone(inRate, 440, frameOf(inRate), 0.3);
        let total = 0;
        for (let i = 0; i < 5; i++) total += resampler.process(frame).length;
        resampler.destroy();
        expect(total, `${inRate} → ${outRate}`).toBe(5 * frameOf(outRate));
      }
    }
  });

  it('many concurrent streams in the one shared instance stay independent (and survive heap growth)', () => {
    // 1,500 streams (about 17 KB each) need more than the instance's initial 16 MiB, so memory grows meanwhile.
    const inRate = 44_100;
    const outRate = 8_000;
    const memoryBefore = factory.wasmMemoryBytes();
    const streams = Array.from({ length: 1_500 }, () => factory.create(inRate, outRate));
    expect(factory.wasmMemoryBytes()).toBeGreaterThan(memoryBefore);
    const inputs = streams.map((_, i) => sineTone(inRate, 200 + i, frameOf(inRate) * 3, 0.4));
    const outputs = streams.map(() => [] as Int16Array[]);
    for (let frame = 0; frame < 3; frame++) {
      streams.forEach((stream, i) => outputs[i]?.push(stream.process(pieces(inputs[i]!, frameOf(inRate))[frame]!)));
    }
    streams.forEach((stream) => stream.destroy());
    for (const i of [0, 777, 1_499]) {
      expect(concat(outputs[i]!)).toEqual(resampleInFrames(inputs[i]!, inRate, outRate));
    }
  });

  it('passes equal rates through unchanged (no filter delay)', () => {
    const input = whiteNoise(320, 0.5, 3);
    const resampler = factory.create(16_000, 16_000);
    expect(resampler.process(input)).toEqual(input);
    resampler.destroy();
  });
});

describe('speex resampler: errors', () => {
  it.each([7_999, 192_001, 0, -16_000, 16_000.5, Number.NaN])('rejects %s Hz with a clear ConfigError', (rate) => {
    expect(() => factory.create(rate, 16_000)).toThrow(ConfigError);
    expect(() => factory.create(16_000, rate)).toThrow(/RESAMPLER_RATE: output sample rate .* from 8000 to 192000/);
  });

  it('refuses an output buffer smaller than maxOutputSamples', () => {
    const resampler = factory.create(8_000, 48_000);
    expect(() => resampler.processInto(new Int16Array(160), new Int16Array(100))).toThrow(/RESAMPLER_OUTPUT_FULL/);
    resampler.destroy();
  });

  it('destroy() frees the stream; using it afterwards throws, destroying twice does not', () => {
    const resampler = factory.create(48_000, 16_000);
    resampler.destroy();
    expect(() => resampler.destroy()).not.toThrow();
    expect(() => resampler.process(new Int16Array(960))).toThrow(/RESAMPLER_DESTROYED/);
  });

  it('destroy() returns the memory: 5,000 create/destroy cycles do not grow the heap', () => {
    factory.create(192_000, 8_000).destroy();
    const memoryBefore = factory.wasmMemoryBytes();
    for (let i = 0; i < 5_000; i++) factory.create(192_000, 8_000).destroy();
    expect(factory.wasmMemoryBytes()).toBe(memoryBefore);
    const resampler = factory.create(192_000, 8_000);
    expect(resampler.process(new Int16Array(3_840)).length).toBe(160);
    resampler.destroy();
  });
});
