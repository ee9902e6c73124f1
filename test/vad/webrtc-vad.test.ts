import { beforeAll, describe, expect, it } from 'vitest';
import { loadWasmModulesNode } from '../../media-node/audio/wasm-node';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import { ConfigError } from '../../shared/contracts/errors';
import type { VadFactory } from '../../shared/contracts/vad';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';
import { concat, harmonicTone, pieces, sineTone, whiteNoise } from '../audio/test-signals';
import { requireEspeak, speak16k } from './espeak';

const RATE = 16_000;
const FRAME = 320;
const MODES = [0, 1, 2, 3] as const;
const silence = (frames: number) => new Int16Array(frames * FRAME);

let vads: VadFactory;
let resamplers: ResamplerFactory;
beforeAll(async () => {
  const modules = await loadWasmModulesNode();
  vads = await createWebRtcVadFactory(modules.fvad);
  resamplers = await createSpeexResamplerFactory(modules.speexResampler);
});

/** Decisions (1/0) for each 20 ms frame of `signal`, from a fresh VAD. */
async function decisions(signal: Int16Array, mode: 0 | 1 | 2 | 3): Promise<number[]> {
  const vad = await vads({ threshold: 0.5, webrtcMode: mode });
  const out: number[] = [];
  for (const frame of pieces(signal, FRAME)) if (frame.length === FRAME) out.push(await vad.process(frame));
  vad.close();
  return out;
}
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

describe('webrtc VAD (libfvad)', () => {
  it.each(MODES)('mode %i: digital silence is never voice', async (mode) => {
    expect(sum(await decisions(silence(250), mode))).toBe(0);
  });

  it.each(MODES)('mode %i: a voiced-speech-like harmonic burst (f0 100–220 Hz, 0.1–0.7 FS) is voice in every frame', async (mode) => {
    for (const f0 of [100, 150, 220]) {
      for (const peak of [0.1, 0.3, 0.7]) {
        const voiced = await decisions(concat([silence(25), harmonicTone(RATE, f0, 50 * FRAME, peak)]), mode);
        expect(sum(voiced.slice(0, 25)), `silence before f0 ${f0} @ ${peak}`).toBe(0);
        expect(sum(voiced.slice(25)), `f0 ${f0} Hz @ ${peak} FS`).toBe(50);
      }
    }
  });

  // What the engine's scenario tests may rely on: steady pure tones are *not* a dependable speech stand-in,
  // because libfvad adapts its noise model to a steady tone. Measured with a 300 ms burst after 1 s of silence.
  it.each([0, 1] as const)('mode %i: a 300 ms pure-tone burst at 0.2 FS is voice for every tone 300–3400 Hz', async (mode) => {
    for (let frequencyHz = 300; frequencyHz <= 3_400; frequencyHz += 100) {
      const voiced = await decisions(concat([silence(50), sineTone(RATE, frequencyHz, 15 * FRAME, 0.2)]), mode);
      expect(sum(voiced.slice(50)), `${frequencyHz} Hz`).toBeGreaterThanOrEqual(14);
    }
  });

  it('steady 500–800 Hz tones at 0.3 FS are learnt as noise: voice for only the first ~100 ms (modes 0–2)', async () => {
    for (const mode of [0, 1, 2] as const) {
      for (const frequencyHz of [500, 600, 700, 800]) {
        const voiced = await decisions(concat([silence(50), sineTone(RATE, frequencyHz, 15 * FRAME, 0.3)]), mode);
        expect(sum(voiced.slice(50)), `${frequencyHz} Hz, mode ${mode}`).toBeLessThanOrEqual(6);
      }
    }
    // The same tones at 0.2 FS in mode 0 are voiced throughout: the effect depends on level as well as pitch.
    expect(sum((await decisions(concat([silence(50), sineTone(RATE, 700, 15 * FRAME, 0.2)]), 0)).slice(50))).toBe(15);
  });

  it('voice ends within 200 ms of the burst (libfvad hangover), then stays unvoiced', async () => {
    for (const mode of MODES) {
      const voiced = await decisions(concat([harmonicTone(RATE, 150, 50 * FRAME, 0.3), silence(100)]), mode);
      const tail = voiced.slice(50);
      expect(sum(tail.slice(10)), `mode ${mode}`).toBe(0);
      expect(tail[0], `mode ${mode}: hangover frame`).toBe(1);
    }
  });

  it('white noise at 0.25 FS counts as voice (it is an energy-and-spectrum detector, not a speech model)', async () => {
    expect(sum(await decisions(whiteNoise(50 * FRAME, 0.25), 0))).toBeGreaterThanOrEqual(45);
  });

  it('eSpeak NG speech padded with 1 s of silence: most speech frames voiced, no silence voiced', async (ctx) => {
    const skip = await requireEspeak();
    if (skip) return ctx.skip(skip);
    const speech = await speak16k('The quick brown fox jumps over the lazy dog. Please call me back tomorrow.', resamplers);
    const speechFrames = Math.floor(speech.length / FRAME);
    for (const mode of MODES) {
      const voiced = await decisions(concat([silence(50), speech.subarray(0, speechFrames * FRAME), silence(50)]), mode);
      expect(sum(voiced.slice(0, 50)), `mode ${mode}: leading silence`).toBe(0);
      expect(sum(voiced.slice(50, 50 + speechFrames)) / speechFrames, `mode ${mode}: speech`).toBeGreaterThan(0.8);
      expect(sum(voiced.slice(50 + speechFrames + 10)), `mode ${mode}: trailing silence after hangover`).toBe(0);
    }
  });

  it('accepts 10, 20 and 30 ms frames and rejects other lengths with a clear error', async () => {
    const vad = await vads({ threshold: 0.5, webrtcMode: 0 });
    for (const samples of [160, 320, 480]) expect(vad.process(new Int16Array(samples))).toBe(0);
    for (const samples of [0, 240, 321, 640]) {
      expect(() => vad.process(new Int16Array(samples))).toThrow(/VAD_FRAME_LENGTH: .*160, 320 or 480 samples\), got/);
    }
    vad.close();
    expect(() => vad.process(new Int16Array(320))).toThrow(/VAD_CLOSED/);
  });

  it('rejects a mode outside 0..3', async () => {
    await expect(vads({ threshold: 0.5, webrtcMode: 4 as 0 })).rejects.toThrow(ConfigError);
  });

  it('reset() keeps 16 kHz and the mode (libfvad itself falls back to 8 kHz / mode 0)', async () => {
    const signal = concat([harmonicTone(RATE, 150, 20 * FRAME, 0.05), silence(5), sineTone(RATE, 1_500, 20 * FRAME, 0.3)]);
    const fresh = await decisions(signal, 3);
    const vad = await vads({ threshold: 0.5, webrtcMode: 3 });
    for (const frame of pieces(whiteNoise(40 * FRAME, 0.4), FRAME)) vad.process(frame);
    vad.reset();
    const afterReset: number[] = [];
    for (const frame of pieces(signal, FRAME)) afterReset.push(await vad.process(frame));
    vad.close();
    expect(afterReset).toEqual(fresh);
    expect(fresh).not.toEqual(await decisions(signal, 0)); // mode 3 really differs from mode 0 on this signal
  });

  it('many VADs share one WASM instance without sharing state', async () => {
    const loud = harmonicTone(RATE, 150, 30 * FRAME, 0.3);
    const quiet = silence(30);
    const pool = await Promise.all(Array.from({ length: 100 }, () => vads({ threshold: 0.5, webrtcMode: 2 })));
    const totals = pool.map(() => 0);
    for (let frame = 0; frame < 30; frame++) {
      pool.forEach((vad, i) => {
        const source = i % 2 === 0 ? loud : quiet;
        totals[i]! += vad.process(source.subarray(frame * FRAME, (frame + 1) * FRAME)) as number;
      });
    }
    pool.forEach((vad) => vad.close());
    expect(totals.filter((_, i) => i % 2 === 0)).toEqual(Array(50).fill(30));
    expect(totals.filter((_, i) => i % 2 === 1)).toEqual(Array(50).fill(0));
  });
});
