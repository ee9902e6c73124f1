import { describe, expect, it } from 'vitest';
import { type AudioFrame, MULAW_8K } from '../../shared/audio/format';
import type { Channel } from '../../shared/contracts/channel';
import type { TimerHandle } from '../../shared/contracts/clock';
import { createPlayout, type PlayoutOptions } from '../../shared/engine/playout';
import { createFakeClock, type FakeClock } from '../fakes/clock';

const FRAME_MS = 20;

/** A 20 ms μ-law frame whose bytes all hold `index`, so the channel can tell which frame it was handed. */
const frame = (index: number): AudioFrame => ({ format: MULAW_8K, data: new Uint8Array(160).fill(index) });

interface FakeChannelOptions {
  readonly marks?: boolean;
  /**
   * With marks: report each mark back once the far end has played the audio before it, plus this network
   * delay. A `clear()` returns the pending marks at once (as Twilio does), still after the delay.
   * Undefined: marks are only reported when the test calls `deliverMark`.
   */
  readonly markLatencyMs?: number;
}

/**
 * A channel that records every call with the fake clock's time, and models the far end as a player that plays
 * what it was given in real time.
 */
function createFakeChannel(clock: FakeClock, options: FakeChannelOptions = {}) {
  const played: { atMs: number; index: number }[] = [];
  const clears: number[] = [];
  const marks: { atMs: number; name: string }[] = [];
  const pending = new Map<string, TimerHandle>();
  let farEndAt = 0;
  let onMark: (name: string) => void = () => {};

  const report = (name: string, delayMs: number) => {
    const handle = clock.setTimeout(() => {
      pending.delete(name);
      onMark(name);
    }, delayMs);
    pending.set(name, handle);
  };

  const channel: Channel = {
    id: 'fake-channel',
    outputFormat: MULAW_8K,
    capabilities: { marks: options.marks ?? false, transfer: false },
    start() {},
    play(f) {
      played.push({ atMs: clock.now(), index: f.data[0]! });
      farEndAt = Math.max(farEndAt, clock.now()) + FRAME_MS;
    },
    clear() {
      clears.push(clock.now());
      farEndAt = clock.now();
      if (options.markLatencyMs === undefined) return;
      for (const [name, handle] of [...pending]) {
        clock.clearTimeout(handle);
        report(name, options.markLatencyMs);
      }
    },
    mark(name) {
      marks.push({ atMs: clock.now(), name });
      if (options.markLatencyMs !== undefined) report(name, Math.max(0, farEndAt - clock.now()) + options.markLatencyMs);
    },
    hangup: async () => {},
  };
  return {
    channel,
    played,
    clears,
    marks,
    /** Where the far end's played audio ends, by its own clock model. */
    farEndAt: () => farEndAt,
    connect: (sink: (name: string) => void) => (onMark = sink),
    deliverMark: (name: string) => onMark(name),
    /** Frames handed over at or before `atMs`. */
    playedBy: (atMs: number) => played.filter((p) => p.atMs <= atMs).length,
  };
}

const OPTIONS: PlayoutOptions = { leadMs: 60, markIntervalMs: 40, frameMs: FRAME_MS, maxBufferedMs: 10_000 };

function setup(options: Partial<PlayoutOptions> = {}, channelOptions: FakeChannelOptions = {}) {
  const clock = createFakeClock();
  const fake = createFakeChannel(clock, channelOptions);
  const firstAudio: { turnId: number; atMs: number }[] = [];
  const done: { turnId: number; atMs: number }[] = [];
  const playout = createPlayout(
    fake.channel,
    clock,
    { ...OPTIONS, ...options },
    {
      onFirstAudioOut: (turnId, atMs) => firstAudio.push({ turnId, atMs }),
      onPlayoutDone: (turnId, atMs) => done.push({ turnId, atMs }),
    },
  );
  fake.connect((name) => playout.onMark(name));
  const enqueueFrames = (turnId: number, from: number, to: number) => {
    const accepted: boolean[] = [];
    for (let i = from; i < to; i++) accepted.push(playout.enqueue(turnId, frame(i)));
    return accepted;
  };
  return { clock, fake, playout, firstAudio, done, enqueueFrames, indices: () => fake.played.map((p) => p.index) };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('playout: pacing', () => {
  it('hands the channel at most leadMs ahead of real time, and keeps that lead full', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    playout.endInput(1);
    expect(fake.played.length).toBe(3);
    for (let t = 0; t <= 500; t += 10) {
      await clock.advanceTo(t);
      const aheadMs = fake.playedBy(t) * FRAME_MS - t;
      expect(aheadMs, `at ${t} ms`).toBeLessThanOrEqual(60);
      if (fake.playedBy(t) < 20) expect(aheadMs, `at ${t} ms`).toBeGreaterThanOrEqual(40);
    }
    // Frame i goes out when frame i-3 has finished playing.
    expect(fake.played).toEqual(range(0, 20).map((i) => ({ index: i, atMs: Math.max(0, (i - 2) * FRAME_MS) })));
  });

  it('the first frame goes out synchronously in enqueue; onFirstAudioOut reports that time, once', async () => {
    const { clock, fake, playout, firstAudio } = setup();
    await clock.advanceTo(100);
    playout.begin(7);
    await clock.advanceTo(250);
    expect(firstAudio).toEqual([]);
    playout.enqueue(7, frame(0));
    expect(fake.played).toEqual([{ atMs: 250, index: 0 }]);
    expect(firstAudio).toEqual([{ turnId: 7, atMs: 250 }]);
    playout.enqueue(7, frame(1));
    await clock.advanceTo(400);
    playout.enqueue(7, frame(2));
    expect(firstAudio).toHaveLength(1);
  });

  it('after an underrun, new audio goes out at once, not at the old schedule', async () => {
    const { clock, fake, playout, enqueueFrames } = setup();
    playout.begin(1);
    enqueueFrames(1, 0, 2);
    await clock.advanceTo(1000);
    enqueueFrames(1, 2, 6);
    expect(fake.played.slice(2)).toEqual([
      { atMs: 1000, index: 2 },
      { atMs: 1000, index: 3 },
      { atMs: 1000, index: 4 },
    ]);
    await clock.advanceTo(1020);
    expect(fake.played.at(-1)).toEqual({ atMs: 1020, index: 5 });
  });

  it('refuses frames of another turn, before any turn, and after endInput', () => {
    const { fake, playout } = setup();
    expect(playout.enqueue(1, frame(0))).toBe(false); // no turn yet
    playout.begin(2);
    expect(playout.enqueue(1, frame(1))).toBe(false);
    expect(playout.enqueue(3, frame(2))).toBe(false);
    expect(playout.enqueue(2, frame(3))).toBe(true);
    playout.endInput(2);
    expect(playout.enqueue(2, frame(4))).toBe(false);
    expect(fake.played.map((p) => p.index)).toEqual([3]);
  });

  it('refuses frames beyond maxBufferedMs of unheard audio, and accepts more as it is heard', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60, maxBufferedMs: 100 }); // 5 frames
    playout.begin(1);
    expect(enqueueFrames(1, 0, 7)).toEqual([true, true, true, true, true, false, false]);
    await clock.advanceTo(40); // frames 0 and 1 have played
    expect(enqueueFrames(1, 10, 13)).toEqual([true, true, false]);
    playout.endInput(1);
    await clock.advanceTo(1000);
    expect(fake.played.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 10, 11]);
  });

  it('bufferedAheadMs is the audio not yet handed to the channel', () => {
    const { playout, enqueueFrames } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 10);
    expect(playout.bufferedAheadMs()).toBe(7 * FRAME_MS);
  });
});

describe('playout: done', () => {
  it('fires onPlayoutDone at the real-time end of the last frame, not before', async () => {
    const { clock, playout, enqueueFrames, done } = setup();
    playout.begin(1);
    enqueueFrames(1, 0, 5);
    playout.endInput(1);
    await clock.advanceTo(99);
    expect(done).toEqual([]);
    await clock.advanceTo(100);
    expect(done).toEqual([{ turnId: 1, atMs: 100 }]);
    expect(playout.active).toBe(false);
    await clock.advanceTo(5000);
    expect(done).toHaveLength(1);
  });

  it('does not fire while more input may come, however long it has been silent', async () => {
    const { clock, playout, enqueueFrames, done } = setup();
    playout.begin(1);
    enqueueFrames(1, 0, 5);
    await clock.advanceTo(2000);
    expect(done).toEqual([]);
    playout.endInput(1);
    expect(done).toEqual([{ turnId: 1, atMs: 2000 }]);
  });

  it('with marks, waits for the far end: done when the final mark is reported', async () => {
    const { clock, fake, playout, enqueueFrames, done } = setup({ markIntervalMs: 40 }, { marks: true });
    playout.begin(1);
    enqueueFrames(1, 0, 6);
    playout.endInput(1);
    await clock.advanceTo(300); // the clock says everything played at 120, no mark has come back
    expect(done).toEqual([]);
    expect(fake.marks.length).toBeGreaterThan(0);
    fake.deliverMark(fake.marks.at(-1)!.name);
    expect(done).toEqual([{ turnId: 1, atMs: 300 }]);
  });

  it('with marks that never come, the clock decides after a grace period of one second', async () => {
    const { clock, playout, enqueueFrames, done } = setup({ markIntervalMs: 40 }, { marks: true });
    playout.begin(1);
    enqueueFrames(1, 0, 6); // ends at 120 by the clock
    playout.endInput(1);
    await clock.advanceTo(1119);
    expect(done).toEqual([]);
    await clock.advanceTo(1200);
    expect(done).toHaveLength(1);
    expect(done[0]!.atMs).toBeGreaterThanOrEqual(1120);
    expect(done[0]!.atMs).toBeLessThanOrEqual(1160);
  });

  it('with a far end that reports marks as it plays, done comes at the real end (the clock is trusted one interval past the last mark)', async () => {
    const { clock, playout, enqueueFrames, done } = setup({ markIntervalMs: 100 }, { marks: true, markLatencyMs: 30 });
    playout.begin(1);
    enqueueFrames(1, 0, 13); // 260 ms; the tail of 3 frames is past the last 5-frame mark
    playout.endInput(1);
    await clock.advanceTo(2000);
    expect(done).toEqual([{ turnId: 1, atMs: 260 }]);
  });
});

describe('playout: pause and resume', () => {
  it('pause clears the channel and returns the heard position; resume re-sends exactly the unheard frames, in order', async () => {
    const { clock, fake, playout, enqueueFrames, done } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    playout.endInput(1);
    await clock.advanceTo(110);
    // Handed over: frames 0..7 (until 160); the far end has fully played 5 of them.
    expect(fake.played.length).toBe(8);
    expect(playout.pause()).toBe(100);
    expect(fake.clears).toEqual([110]);
    expect(playout.paused).toBe(true);
    expect(playout.heardMs()).toBe(100);

    await clock.advanceTo(1000);
    expect(fake.played.length).toBe(8); // nothing while paused
    expect(done).toEqual([]);

    playout.resume();
    expect(fake.played.slice(8).map((p) => p.atMs)).toEqual([1000, 1000, 1000]);
    await clock.advanceTo(3000);
    const resent = fake.played.slice(8).map((p) => p.index);
    expect(resent).toEqual(range(5, 20));
    // Every frame reached the far end, and none was heard twice: the heard prefix plus the replay is the whole turn.
    expect([...range(0, 5), ...resent]).toEqual(range(0, 20));
    expect(done).toEqual([{ turnId: 1, atMs: 1000 + 15 * FRAME_MS }]);
  });

  it('frames produced while paused are kept and played after the resume', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 4);
    await clock.advanceTo(50);
    expect(playout.pause()).toBe(40);
    expect(enqueueFrames(1, 4, 8)).toEqual([true, true, true, true]);
    expect(fake.played.length).toBe(4);
    playout.resume();
    playout.endInput(1);
    await clock.advanceTo(1000);
    expect(fake.played.slice(4).map((p) => p.index)).toEqual(range(2, 8));
  });

  it('pause with nothing unheard at the far end does not clear it', async () => {
    const { clock, fake, playout, enqueueFrames } = setup();
    playout.begin(1);
    enqueueFrames(1, 0, 3);
    await clock.advanceTo(500);
    expect(playout.pause()).toBe(60);
    expect(fake.clears).toEqual([]);
  });

  it('a second pause changes nothing and returns the same position', async () => {
    const { clock, fake, playout, enqueueFrames } = setup();
    playout.begin(1);
    enqueueFrames(1, 0, 10);
    await clock.advanceTo(30);
    const heard = playout.pause();
    await clock.advanceTo(500);
    expect(playout.pause()).toBe(heard);
    expect(fake.clears).toHaveLength(1);
  });

  it('after pause and resume, the tail is confirmed by a new end mark (not left to the grace period)', async () => {
    const { clock, fake, playout, enqueueFrames, done } = setup({ leadMs: 60, markIntervalMs: 100 }, { marks: true, markLatencyMs: 30 });
    playout.begin(1);
    enqueueFrames(1, 0, 13);
    playout.endInput(1);
    await clock.advanceTo(215); // every frame handed over (the last at 200), the end mark already sent
    expect(fake.played.length).toBe(13);
    const heardMs = playout.pause();
    await clock.advanceTo(220);
    playout.resume();
    const resumedAt = 220;
    const tailEndAt = resumedAt + (13 - heardMs / FRAME_MS) * FRAME_MS;
    await clock.advanceTo(3000);
    expect(done).toHaveLength(1);
    // The far end reports the last mark 30 ms after the tail ends.
    expect(done[0]!.atMs).toBe(tailEndAt + 30);
  });
});

describe('playout: marks', () => {
  it('without a confirming mark, the heard position trusts the clock at most one mark interval', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60, markIntervalMs: 40 }, { marks: true });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    await clock.advanceTo(110); // by the clock 5 frames played
    expect(playout.heardMs()).toBe(40); // no mark yet: 2 frames (one interval)
    const upTo4 = fake.marks.find((m) => m.name.endsWith('.4'));
    expect(upTo4).toBeDefined();
    fake.deliverMark(upTo4!.name);
    expect(playout.heardMs()).toBe(100);
  });

  it('marks sent before a pause are ignored once it happened (old epoch)', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60, markIntervalMs: 40 }, { marks: true });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    await clock.advanceTo(110);
    fake.deliverMark(fake.marks.find((m) => m.name.endsWith('.2'))!.name);
    const before = fake.marks.slice();
    expect(playout.pause()).toBe(80); // confirmed 2 + one interval
    // The far end answers the clear with the marks it still held.
    for (const m of before) fake.deliverMark(m.name);
    expect(playout.heardMs()).toBe(80);
    await clock.advanceTo(200);
    playout.resume();
    for (const m of before) fake.deliverMark(m.name);
    // By the clock nothing of the replay has played yet: still 80 ms, not the old marks' 160 ms.
    expect(playout.heardMs()).toBe(80);
  });

  it('ignores marks of other turns and names it did not send', async () => {
    const { clock, playout, enqueueFrames } = setup({ leadMs: 60, markIntervalMs: 40 }, { marks: true });
    playout.begin(2);
    enqueueFrames(2, 0, 20);
    await clock.advanceTo(110);
    playout.onMark('p1.1.8');
    playout.onMark('greeting-done');
    playout.onMark('p2.1.x');
    expect(playout.heardMs()).toBe(40);
  });
});

describe('playout: cancel and new turns', () => {
  it('cancel clears the channel, returns the heard position, and stops the turn', async () => {
    const { clock, fake, playout, enqueueFrames, done } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    await clock.advanceTo(70);
    expect(playout.cancel()).toBe(60);
    expect(fake.clears).toEqual([70]);
    expect(playout.active).toBe(false);
    const count = fake.played.length;
    await clock.advanceTo(2000);
    expect(fake.played.length).toBe(count);
    expect(playout.enqueue(1, frame(99))).toBe(false);
    playout.endInput(1);
    expect(done).toEqual([]);
  });

  it('cancel while paused returns the paused position and does not clear again', async () => {
    const { clock, fake, playout, enqueueFrames } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    await clock.advanceTo(110);
    const heard = playout.pause();
    await clock.advanceTo(800);
    expect(playout.cancel()).toBe(heard);
    expect(fake.clears).toHaveLength(1);
  });

  it('a new turn clears what the far end still holds of the previous one and starts afresh', async () => {
    const { clock, fake, playout, enqueueFrames, firstAudio, done } = setup({ leadMs: 60 });
    playout.begin(1);
    enqueueFrames(1, 0, 20);
    await clock.advanceTo(30);
    playout.begin(2);
    expect(fake.clears).toEqual([30]);
    expect(playout.enqueue(1, frame(50))).toBe(false);
    enqueueFrames(2, 100, 103);
    playout.endInput(2);
    await clock.advanceTo(1000);
    expect(fake.played.filter((p) => p.atMs >= 30).map((p) => p.index)).toEqual([100, 101, 102]);
    expect(firstAudio).toEqual([
      { turnId: 1, atMs: 0 },
      { turnId: 2, atMs: 30 },
    ]);
    expect(done).toEqual([{ turnId: 2, atMs: 90 }]);
  });
});
