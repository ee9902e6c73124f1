import { systemClock, type Clock, type TimerHandle } from '../../shared/contracts/clock';
import { benchCall, percentile } from './harness';

export interface CapacityStep {
  calls: number;
  seconds: number;
  framesOut: number;
  jitterP50Ms: number;
  jitterP99Ms: number;
  cpuPercent: number;
}

/** The engine's clock, recording how late each of its timers fires (event-loop lag seen by the pacer). */
function latenessClock(samples: number[]): Clock {
  return {
    now: systemClock.now,
    setTimeout(fn, ms) {
      const due = systemClock.now() + ms;
      return systemClock.setTimeout(() => {
        samples.push(Math.max(0, systemClock.now() - due));
        fn();
      }, ms) as TimerHandle;
    },
    clearTimeout: systemClock.clearTimeout,
  };
}

/**
 * Concurrent calls in real time on this one process (one core; the energy-based scripted STT stands in for a
 * remote STT): each caller talks every few seconds, the
 * assistant answers, audio flows both ways every 20 ms. Outbound jitter = how late the engine's pacing
 * timers fire; a call is fine while the p99 stays ≤ 5 ms (the 200 ms lead absorbs far more).
 */
export async function benchCapacityStep(calls: number, seconds: number): Promise<CapacityStep> {
  const lateness: number[] = [];
  const engineClock = latenessClock(lateness);
  let framesOut = 0;
  // Calls start spread over one 20 ms frame period, as real calls' packets are: no two calls share a phase
  // by construction (which would make every call's frame land in the same millisecond).
  const running: Awaited<ReturnType<typeof benchCall>>[] = [];
  for (let i = 0; i < calls; i++) {
    running.push(
      await benchCall({
        engineClock,
        worldClock: systemClock,
        reply: 'it is sunny and warm today thanks',
        channel: { markDelayMs: 30, recordPlayed: false },
        scriptedStt: 'what is the weather today',
      }),
    );
    await new Promise((r) => setTimeout(r, 20 / calls));
  }
  lateness.length = 0;
  const talk = running.map(({ fake }, i) => {
    // Stagger the callers so turns do not all line up.
    const handles: ReturnType<typeof setTimeout>[] = [];
    for (let t = 300 + ((i * 137) % 2000); t < seconds * 1000 - 1500; t += 3500) handles.push(setTimeout(() => fake.say('what is the weather today'), t));
    return handles;
  });
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpuBefore);
  const elapsedMs = performance.now() - start;
  for (const handles of talk) handles.forEach(clearTimeout);
  for (const { comm, fake } of running) {
    framesOut += fake.stats.played;
    await comm.end('bench-done');
    fake.stop();
  }
  const sorted = lateness.sort((a, b) => a - b);
  return {
    calls,
    seconds,
    framesOut,
    jitterP50Ms: percentile(sorted, 50),
    jitterP99Ms: percentile(sorted, 99),
    cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
  };
}
