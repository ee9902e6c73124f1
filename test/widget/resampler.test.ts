import { describe, expect, it } from 'vitest';
import { createResampler } from '../../web/widget/resampler';

const sine = (rateHz: number, frequencyHz: number, seconds: number, amplitude = 0.5) => {
  const out = new Float32Array(Math.round(rateHz * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * frequencyHz * i) / rateHz);
  return out;
};

/** Run a whole signal through in blocks of `block` samples (as a worklet would). */
function run(input: Float32Array, inputRateHz: number, outputRateHz: number, block = 128): Float32Array {
  const resampler = createResampler({ inputRateHz, outputRateHz });
  const out: number[] = [];
  const scratch = new Float32Array(4096);
  for (let i = 0; i < input.length; i += block) {
    let n = resampler.process(input.subarray(i, i + block), scratch);
    // A block larger than the scratch space leaves input inside: drain it.
    while (n > 0) {
      for (let k = 0; k < n; k++) out.push(scratch[k]!);
      n = n === scratch.length ? resampler.process(new Float32Array(0), scratch) : 0;
    }
  }
  return Float32Array.from(out);
}

/** RMS over the middle of a signal (away from the start-up edge). */
const rms = (x: Float32Array) => {
  const part = x.subarray(Math.floor(x.length * 0.2), Math.floor(x.length * 0.8));
  return Math.sqrt(part.reduce((s, v) => s + v * v, 0) / part.length);
};
const zeroCrossings = (x: Float32Array) => {
  let n = 0;
  for (let i = 1; i < x.length; i++) if (x[i - 1]! < 0 !== x[i]! < 0) n++;
  return n;
};

describe('widget resampler (windowed sinc, streaming)', () => {
  it.each([
    [48_000, 16_000],
    [44_100, 16_000],
    [16_000, 44_100],
    [16_000, 48_000],
    [24_000, 44_100],
  ])('%i → %i Hz keeps a 1 kHz tone: level, pitch and length', (from, to) => {
    const input = sine(from, 1_000, 1);
    const output = run(input, from, to);
    // One second in, one second out, less the kernel's look-ahead.
    expect(output.length).toBeGreaterThan(to * 0.99);
    expect(output.length).toBeLessThanOrEqual(to);
    expect(rms(output)).toBeCloseTo(0.5 / Math.SQRT2, 2);
    // 1 kHz: 2000 zero crossings a second (pitch unchanged by the rate change).
    expect(Math.abs(zeroCrossings(output.subarray(to * 0.1, to * 0.9)) - 1_600)).toBeLessThanOrEqual(2);
  });

  it('filters what the lower rate cannot carry instead of folding it back (no aliasing)', () => {
    // 10 kHz is above 16 kHz's Nyquist rate: dropping samples would turn it into a 6 kHz tone at full level.
    const output = run(sine(48_000, 10_000, 1), 48_000, 16_000);
    expect(20 * Math.log10(rms(output) / (0.5 / Math.SQRT2))).toBeLessThan(-60);
    // And 44.1 kHz → 16 kHz, 9 kHz (would alias to 7 kHz).
    const output44 = run(sine(44_100, 9_000, 1), 44_100, 16_000);
    expect(20 * Math.log10(rms(output44) / (0.5 / Math.SQRT2))).toBeLessThan(-40);
  });

  it('passes speech frequencies up to 6.5 kHz nearly flat', () => {
    for (const f of [300, 3_000, 6_000, 6_500]) {
      const level = rms(run(sine(48_000, f, 0.5), 48_000, 16_000)) / (0.5 / Math.SQRT2);
      expect(Math.abs(20 * Math.log10(level)), `${f} Hz`).toBeLessThan(0.5);
    }
  });

  it('gives the same output whatever the block sizes (state carries across calls)', () => {
    const input = sine(44_100, 440, 0.3);
    const whole = run(input, 44_100, 16_000, input.length);
    const small = run(input, 44_100, 16_000, 128);
    const odd = run(input, 44_100, 16_000, 37);
    expect(small.length).toBe(whole.length);
    expect(odd.length).toBe(whole.length);
    for (let i = 0; i < whole.length; i++) {
      expect(small[i]).toBeCloseTo(whole[i]!, 6);
      expect(odd[i]).toBeCloseTo(whole[i]!, 6);
    }
  });

  it('keeps input it has no room to write for the next call, and starts clean after reset', () => {
    const resampler = createResampler({ inputRateHz: 48_000, outputRateHz: 16_000 });
    const input = sine(48_000, 1_000, 0.1);
    const small = new Float32Array(10);
    let total = resampler.process(input, small);
    expect(total).toBe(10);
    const rest = new Float32Array(4096);
    total += resampler.process(new Float32Array(0), rest);
    expect(total).toBeGreaterThan(1_600 - 40);
    resampler.reset();
    expect(resampler.process(new Float32Array(0), rest)).toBe(0);
  });

  it('refuses nonsense rates', () => {
    expect(() => createResampler({ inputRateHz: 0, outputRateHz: 16_000 })).toThrow(RangeError);
  });
});
