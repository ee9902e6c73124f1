import { describe, expect, it } from 'vitest';
import { createCallTimers, type CallTimerOptions } from '../../shared/engine/timers';

const OPTIONS: CallTimerOptions = { idleTimeoutMs: 10_000, maxReprompts: 2, maxDurationMs: 3_600_000 };

function timers(options: Partial<CallTimerOptions> = {}) {
  const t = createCallTimers({ ...OPTIONS, ...options });
  t.onInput({ type: 'callStarted', atMs: 0 });
  return t;
}

describe('call timers: idle', () => {
  it('reprompts after idleTimeoutMs of caller silence once the assistant finished', () => {
    const t = timers();
    t.onInput({ type: 'assistantFinished', atMs: 1000 });
    expect(t.nextDeadline()).toBe(11_000);
    expect(t.onInput({ type: 'tick', atMs: 10_999 })).toEqual([]);
    expect(t.onInput({ type: 'tick', atMs: 11_000 })).toEqual([{ type: 'reprompt', count: 1 }]);
    // Fires once: the idle clock restarts only when the reprompt has been said.
    expect(t.onInput({ type: 'tick', atMs: 30_000 })).toEqual([]);
  });

  it('reprompts maxReprompts times, then hangs up', () => {
    const t = timers({ maxReprompts: 2 });
    const out: unknown[] = [];
    let now = 0;
    for (let round = 0; round < 3; round++) {
      t.onInput({ type: 'assistantFinished', atMs: now });
      now = t.nextDeadline()!;
      out.push(...t.onInput({ type: 'tick', atMs: now }));
      t.onInput({ type: 'assistantStarted', atMs: now }); // the reprompt (or goodbye) is spoken
    }
    expect(out).toEqual([{ type: 'reprompt', count: 1 }, { type: 'reprompt', count: 2 }, { type: 'idleHangup' }]);
  });

  it('with maxReprompts 0, hangs up at the first idle timeout', () => {
    const t = timers({ maxReprompts: 0 });
    t.onInput({ type: 'assistantFinished', atMs: 0 });
    expect(t.onInput({ type: 'tick', atMs: 10_000 })).toEqual([{ type: 'idleHangup' }]);
  });

  it('caller activity disarms the idle clock and resets the reprompt count', () => {
    const t = timers({ maxReprompts: 2 });
    t.onInput({ type: 'assistantFinished', atMs: 0 });
    expect(t.onInput({ type: 'tick', atMs: 10_000 })).toEqual([{ type: 'reprompt', count: 1 }]);
    t.onInput({ type: 'assistantFinished', atMs: 12_000 });
    t.onInput({ type: 'userActivity', atMs: 15_000 });
    expect(t.nextDeadline()).toBe(3_600_000); // only the max duration is left
    expect(t.onInput({ type: 'tick', atMs: 22_000 })).toEqual([]);

    t.onInput({ type: 'assistantFinished', atMs: 30_000 });
    expect(t.onInput({ type: 'tick', atMs: 40_000 })).toEqual([{ type: 'reprompt', count: 1 }]);
  });

  it('the assistant starting to speak disarms the idle clock', () => {
    const t = timers();
    t.onInput({ type: 'assistantFinished', atMs: 0 });
    t.onInput({ type: 'assistantStarted', atMs: 5000 });
    expect(t.onInput({ type: 'tick', atMs: 10_000 })).toEqual([]);
    expect(t.nextDeadline()).toBe(3_600_000);
  });

  it('a later assistantFinished restarts the idle clock from that time', () => {
    const t = timers();
    t.onInput({ type: 'assistantFinished', atMs: 0 });
    t.onInput({ type: 'assistantFinished', atMs: 4000 });
    expect(t.onInput({ type: 'tick', atMs: 10_000 })).toEqual([]);
    expect(t.onInput({ type: 'tick', atMs: 14_000 })).toEqual([{ type: 'reprompt', count: 1 }]);
  });

  it('idleTimeoutMs 0 disables the idle timer', () => {
    const t = timers({ idleTimeoutMs: 0 });
    t.onInput({ type: 'assistantFinished', atMs: 0 });
    expect(t.nextDeadline()).toBe(3_600_000);
    expect(t.onInput({ type: 'tick', atMs: 1_000_000 })).toEqual([]);
  });
});

describe('call timers: max duration', () => {
  it('fires once at callStarted + maxDurationMs and disarms the idle clock', () => {
    const t = createCallTimers({ ...OPTIONS, maxDurationMs: 60_000 });
    t.onInput({ type: 'callStarted', atMs: 5000 });
    t.onInput({ type: 'assistantFinished', atMs: 60_000 });
    expect(t.onInput({ type: 'tick', atMs: 64_999 })).toEqual([]);
    expect(t.onInput({ type: 'tick', atMs: 65_000 })).toEqual([{ type: 'maxDuration' }]);
    expect(t.nextDeadline()).toBeUndefined();
    expect(t.onInput({ type: 'tick', atMs: 70_000 })).toEqual([]);
    expect(t.onInput({ type: 'tick', atMs: 200_000 })).toEqual([]);
  });

  it('nothing fires before the call started', () => {
    const t = createCallTimers(OPTIONS);
    expect(t.nextDeadline()).toBeUndefined();
    expect(t.onInput({ type: 'tick', atMs: 10_000_000 })).toEqual([]);
  });
});

describe('call timers: nextDeadline', () => {
  it('is the earlier of the idle and max-duration deadlines', () => {
    const t = createCallTimers({ ...OPTIONS, idleTimeoutMs: 10_000, maxDurationMs: 60_000 });
    t.onInput({ type: 'callStarted', atMs: 0 });
    expect(t.nextDeadline()).toBe(60_000);
    t.onInput({ type: 'assistantFinished', atMs: 1000 });
    expect(t.nextDeadline()).toBe(11_000);
    t.onInput({ type: 'assistantFinished', atMs: 55_000 });
    expect(t.nextDeadline()).toBe(60_000);
  });
});
