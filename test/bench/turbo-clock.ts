import type { Clock, TimerHandle } from '../../shared/contracts/clock';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Real time that skips idle waits: `now()` is the real monotonic clock plus an offset, and `advanceTo` jumps
 * the offset forward to the next due timer instead of sleeping. Work done between timers still takes its
 * real duration, so the engine's own overhead shows in its metrics while a 2-second turn runs in a few ms.
 */
export function createTurboClock() {
  let offset = 0;
  let seq = 0;
  let timers: Timer[] = [];
  const now = () => performance.now() + offset;
  const clock: Clock & { advanceTo(atMs: number): Promise<void>; advance(ms: number): Promise<void> } = {
    now,
    setTimeout(fn, ms) {
      const timer = { id: ++seq, at: now() + Math.max(0, ms), fn };
      timers.push(timer);
      return { id: timer.id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      const id = (handle as { id?: number }).id;
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
        const gap = next.at - now();
        if (gap > 0) offset += gap;
        next.fn();
        await settle();
      }
      const gap = target - now();
      if (gap > 0) offset += gap;
      await settle();
    },
  };
  return clock;
}
