import type { Clock, TimerHandle } from '../../shared/contracts/clock';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** Let every pending promise continuation run (macrotask boundary: all microtasks drain first). */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Virtual time. `advance` fires due timers in time order, letting promise chains settle after each, so
 * async engine code behaves as it would in real time, only instantly and deterministically.
 *
 * With `realTime: true` (benchmarks) `now()` is the real monotonic clock plus an offset and advancing jumps
 * the offset to the next due timer instead of sleeping: work between timers keeps its real duration, so
 * the engine's own overhead shows in its metrics while a 2-second turn runs in a few milliseconds.
 */
export function createFakeClock(startMs = 0, options: { realTime?: boolean } = {}) {
  const base = options.realTime ? () => performance.now() : () => 0;
  let offset = startMs - base();
  let seq = 0;
  let timers: Timer[] = [];
  const now = () => base() + offset;
  const jumpTo = (at: number) => {
    const gap = at - now();
    if (gap > 0) offset += gap;
  };

  const clock: Clock & {
    advance(ms: number): Promise<void>;
    advanceTo(atMs: number): Promise<void>;
    readonly pending: number;
  } = {
    now,
    setTimeout(fn, ms) {
      const timer = { id: ++seq, at: now() + Math.max(0, ms), fn };
      timers.push(timer);
      return { id: timer.id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      const id = (handle as { id?: number } | undefined)?.id;
      timers = timers.filter((t) => t.id !== id);
    },
    async advance(ms) {
      await clock.advanceTo(now() + ms);
    },
    async advanceTo(target) {
      await settle();
      for (;;) {
        let next: Timer | undefined;
        for (const t of timers) if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
        if (!next) break;
        timers = timers.filter((t) => t !== next);
        jumpTo(next.at);
        next.fn();
        await settle();
      }
      jumpTo(target);
      await settle();
    },
    get pending() {
      return timers.length;
    },
  };
  return clock;
}

export type FakeClock = ReturnType<typeof createFakeClock>;
