import { describe, expect, it } from 'vitest';
import { CAPTURE_FRAME_SAMPLES, createCaptureCore } from '../../web/widget/capture-core';

/** Feed `seconds` of a tone at `rateHz` in 128-sample render quanta; collect the frames. */
function capture(rateHz: number, seconds: number, options: { amplitude?: number; muteAfterFrames?: number } = {}) {
  const frames: Int16Array[] = [];
  const core = createCaptureCore({ contextRateHz: rateHz, onFrame: (f) => frames.push(f) });
  const total = Math.round(rateHz * seconds);
  const quantum = new Float32Array(128);
  for (let start = 0; start < total; start += 128) {
    if (options.muteAfterFrames !== undefined && frames.length >= options.muteAfterFrames) core.setMuted(true);
    for (let i = 0; i < 128; i++) quantum[i] = (options.amplitude ?? 0.5) * Math.sin((2 * Math.PI * 440 * (start + i)) / rateHz);
    core.push(quantum);
  }
  return { frames, core };
}

const peak = (frame: Int16Array) => frame.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('capture worklet core: context-rate quanta → 20 ms PCM16 16 kHz frames', () => {
  it.each([44_100, 48_000, 16_000])('at %i Hz: 50 frames of 320 samples a second, the tone at its level', (rate) => {
    const { frames, core } = capture(rate, 2);
    // 2 s → 100 frames, less the resampler's look-ahead (at most one frame).
    expect(frames.length).toBeGreaterThanOrEqual(99);
    expect(frames.length).toBeLessThanOrEqual(100);
    expect(core.stats.frames).toBe(frames.length);
    for (const frame of frames) expect(frame.length).toBe(CAPTURE_FRAME_SAMPLES);
    // Level: 0.5 full scale ≈ 16384 (within 2 %), in every frame after the first.
    for (const frame of frames.slice(1)) expect(Math.abs(peak(frame) - 16_384)).toBeLessThan(330);
  });

  it('hands over a new array per frame (the worklet transfers it)', () => {
    const { frames } = capture(48_000, 0.2);
    expect(new Set(frames.map((f) => f.buffer)).size).toBe(frames.length);
  });

  it('sends silence while muted, and clips instead of wrapping around', () => {
    const muted = capture(48_000, 1, { muteAfterFrames: 10 });
    expect(peak(muted.frames[5]!)).toBeGreaterThan(10_000);
    for (const frame of muted.frames.slice(11)) expect(peak(frame)).toBe(0);
    expect(muted.frames.length).toBeGreaterThanOrEqual(49);

    const loud = capture(16_000, 0.1, { amplitude: 1.5 });
    const values = loud.frames.flatMap((f) => [...f]);
    expect(Math.max(...values)).toBe(32_767);
    expect(Math.min(...values)).toBe(-32_768);
  });
});
