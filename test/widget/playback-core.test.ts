import { describe, expect, it } from 'vitest';
import { createPlaybackCore } from '../../web/widget/playback-core';

const SOURCE = 16_000;
const frame = (value = 8_000) => new Int16Array(320).fill(value);

function player(contextRateHz = 48_000, extra: { capacityMs?: number } = {}) {
  const marks: string[] = [];
  const core = createPlaybackCore({ sourceRateHz: SOURCE, contextRateHz, onMark: (id) => marks.push(id), ...extra });
  const out = new Float32Array(128);
  /** Render `n` quanta; returns the samples that were not silent. */
  const render = (n: number) => {
    let sounding = 0;
    for (let q = 0; q < n; q++) {
      core.render(out);
      for (const v of out) if (v !== 0) sounding++;
    }
    return sounding;
  };
  return { core, marks, render };
}

/** Quanta per 20 ms at 48 kHz: 7.5. */
const quantaFor = (ms: number, rate = 48_000) => Math.ceil((rate * ms) / 1000 / 128);

describe('playback worklet core: jitter buffer, marks, pause and flush', () => {
  it('waits for the start threshold (60 ms) before playing, then plays every sample it received', () => {
    const { core, render } = player();
    core.pushPcm16(frame());
    expect(render(1)).toBe(0);
    expect(core.playing).toBe(false);
    core.pushPcm16(frame());
    core.pushPcm16(frame());
    core.pushPcm16(frame());
    render(1);
    expect(core.playing).toBe(true);
    render(quantaFor(200));
    // 80 ms at 16 kHz, resampled to 48 kHz: 3840 samples less the resampler's look-ahead (a few samples).
    expect(core.stats.samplesReceived).toBe(1_280);
    expect(core.stats.samplesPlayed).toBeGreaterThan(3_840 - 60);
    expect(core.stats.samplesPlayed).toBeLessThanOrEqual(3_840);
    expect(core.buffered).toBe(0);
    expect(core.playing).toBe(false);
  });

  it('plays a short tail once nothing more arrives for as long as the threshold', () => {
    const { core, render } = player();
    core.pushPcm16(frame());
    expect(render(quantaFor(40))).toBe(0);
    expect(render(quantaFor(40))).toBeGreaterThan(900);
  });

  it('answers a mark once the audio before it has played, not before', () => {
    const { core, marks, render } = player();
    for (let i = 0; i < 5; i++) core.pushPcm16(frame());
    core.mark('m1');
    core.pushPcm16(frame());
    core.mark('m2');
    render(quantaFor(60));
    expect(marks).toEqual([]);
    render(quantaFor(50));
    expect(marks).toEqual(['m1']);
    render(quantaFor(40));
    expect(marks).toEqual(['m1', 'm2']);
  });

  it('answers a mark at once when nothing is queued', () => {
    const { core, marks } = player();
    core.mark('idle');
    expect(marks).toEqual(['idle']);
  });

  it('pause holds the audio (silence out, nothing lost); continue plays it on', () => {
    const { core, render } = player();
    for (let i = 0; i < 5; i++) core.pushPcm16(frame());
    render(2);
    const before = core.stats.samplesPlayed;
    core.pause();
    expect(render(quantaFor(100))).toBe(0);
    expect(core.stats.samplesPlayed).toBe(before);
    core.resume();
    render(quantaFor(200));
    expect(core.stats.samplesPlayed).toBeGreaterThan(4_800 - 60);
  });

  it('flush drops everything at once, answers its marks, and the next reply plays from a clean start', () => {
    const { core, marks, render } = player();
    for (let i = 0; i < 10; i++) core.pushPcm16(frame());
    core.mark('a1');
    for (let i = 0; i < 10; i++) core.pushPcm16(frame());
    core.mark('a2');
    render(quantaFor(40));
    const played = core.stats.samplesPlayed;
    expect(played).toBeGreaterThan(0);
    core.pause();
    core.flush();
    expect(marks).toEqual(['a1', 'a2']);
    expect(core.buffered).toBe(0);
    expect(core.stats.flushes).toBe(1);
    // Not paused any more, and nothing left to play.
    expect(render(quantaFor(100))).toBe(0);
    expect(core.stats.samplesPlayed).toBe(played);
    for (let i = 0; i < 4; i++) core.pushPcm16(frame(-8_000));
    expect(render(quantaFor(100))).toBeGreaterThan(3_000);
  });

  it('counts a gap mid-utterance as an underrun, not the end of a reply', () => {
    const { core, render } = player();
    for (let i = 0; i < 4; i++) core.pushPcm16(frame());
    render(quantaFor(100));
    expect(core.stats.underruns).toBe(0);
    // Audio again 100 ms after running dry: the stream stuttered.
    core.pushPcm16(frame());
    expect(core.stats.underruns).toBe(1);
    render(quantaFor(500));
    // A new reply long after the last one ran out is no underrun.
    core.pushPcm16(frame());
    expect(core.stats.underruns).toBe(1);
  });

  it('holds at most its capacity: the oldest audio goes first', () => {
    const { core } = player(16_000, { capacityMs: 100 });
    for (let i = 0; i < 10; i++) core.pushPcm16(frame());
    expect(core.buffered).toBe(1_600);
    expect(core.stats.dropped).toBe(1_600);
  });

  it('scales PCM16 to [-1, 1] without resampling when the rates agree', () => {
    const { core } = player(16_000);
    core.pushPcm16(Int16Array.from([16_384, -32_768, 0, 32_767]));
    for (let i = 0; i < 4; i++) core.pushPcm16(frame(0));
    const out = new Float32Array(128);
    core.render(out);
    expect([...out.subarray(0, 4)]).toEqual([0.5, -1, 0, 32_767 / 32_768]);
  });
});
