import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKCHANNELS } from '../../shared/config/assistant';
import { createInterruptionPolicy, type InterruptionDecision, type InterruptionOptions } from '../../shared/engine/interruption';
import { normalisedWords } from '../../shared/engine/words';

const FRAME_MS = 20;

const DEFAULTS: InterruptionOptions = {
  enabled: true,
  mode: 'words',
  minSpeechMs: 200,
  minWords: 1,
  vadOnlyConfirmMs: 600,
  falseInterruptionMs: 1500,
  backchannels: DEFAULT_BACKCHANNELS,
  echoGuard: true,
  dtmfBargeIn: true,
};

/** A policy on a timeline of 20 ms VAD frames (`atMs` = frame end), recording every decision with its time. */
function driver(options: Partial<InterruptionOptions> = {}, assistantSaid = 'The weather today is sunny and warm') {
  let recent = normalisedWords(assistantSaid);
  const policy = createInterruptionPolicy({ ...DEFAULTS, ...options }, () => recent);
  const log: { atMs: number; decision: InterruptionDecision }[] = [];
  let now = 0;
  const record = (atMs: number, decisions: readonly InterruptionDecision[]) => {
    for (const decision of decisions) log.push({ atMs, decision });
    return decisions;
  };
  const frames = (voiced: boolean, untilMs: number) => {
    const out: InterruptionDecision[] = [];
    for (let t = now + FRAME_MS; t <= untilMs; t += FRAME_MS) out.push(...record(t, policy.onInput({ type: 'vad', voiced, atMs: t })));
    now = Math.max(now, untilMs);
    return out;
  };
  return {
    policy,
    log,
    setRecent: (text: string) => (recent = normalisedWords(text)),
    active: (turnId: number) => record(now, policy.onInput({ type: 'assistantActive', turnId, atMs: now })),
    idle: (turnId: number) => record(now, policy.onInput({ type: 'assistantIdle', turnId, atMs: now })),
    voiced: (untilMs: number) => frames(true, untilMs),
    silent: (untilMs: number) => frames(false, untilMs),
    transcript: (text: string) => record(now, policy.onInput({ type: 'transcript', text, atMs: now })),
    dtmf: () => record(now, policy.onInput({ type: 'dtmf', atMs: now })),
    tick: (atMs: number) => {
      now = Math.max(now, atMs);
      return record(atMs, policy.onInput({ type: 'tick', atMs }));
    },
    types: () => log.map((e) => e.decision.type),
  };
}

describe('interruption: pause', () => {
  it('pauses after minSpeechMs of continuous caller speech while the assistant is active', () => {
    const d = driver({ minSpeechMs: 200 });
    d.active(1);
    expect(d.voiced(180)).toEqual([]);
    expect(d.policy.phase).toBe('active');
    expect(d.voiced(200)).toEqual([{ type: 'pause', turnId: 1 }]);
    expect(d.policy.phase).toBe('paused');
    expect(d.voiced(400)).toEqual([]); // once
  });

  it('speech broken by silence does not add up to minSpeechMs', () => {
    const d = driver({ minSpeechMs: 200 });
    d.active(1);
    d.voiced(120);
    d.silent(140);
    d.voiced(320); // 180 ms since the gap
    expect(d.log).toEqual([]);
    d.voiced(340);
    expect(d.log).toEqual([{ atMs: 340, decision: { type: 'pause', turnId: 1 } }]);
  });

  it('does not pause while the assistant is idle, nor after its turn went idle', () => {
    const d = driver();
    d.voiced(1000);
    expect(d.log).toEqual([]);
    d.silent(1100);
    d.active(3);
    d.idle(3);
    d.voiced(2000);
    expect(d.log).toEqual([]);
    expect(d.policy.phase).toBe('idle');
  });

  it('ignores assistantIdle of another turn', () => {
    const d = driver();
    d.active(4);
    d.idle(3);
    expect(d.policy.phase).toBe('active');
    d.voiced(200);
    expect(d.log).toEqual([{ atMs: 200, decision: { type: 'pause', turnId: 4 } }]);
  });

  it('does nothing when interruptions are disabled: no pause, no confirm', () => {
    const d = driver({ enabled: false });
    d.active(1);
    d.voiced(1000);
    d.transcript('stop right there');
    expect(d.log).toEqual([]);
  });

  it('decisions carry the id of the current assistant turn', () => {
    const d = driver();
    d.active(1);
    d.idle(1);
    d.active(2);
    d.voiced(200);
    d.transcript('hold on');
    expect(d.log.map((e) => e.decision)).toEqual([
      { type: 'pause', turnId: 2 },
      { type: 'confirm', turnId: 2 },
    ]);
  });
});

describe('interruption: confirm on words', () => {
  it('confirms when the transcript has minWords words that are not backchannels', () => {
    const d = driver({ minWords: 2 });
    d.active(1);
    d.voiced(200);
    expect(d.transcript('stop')).toEqual([]);
    expect(d.transcript('yeah stop')).toEqual([]); // "yeah" is a backchannel: still one word
    expect(d.transcript('stop please')).toEqual([{ type: 'confirm', turnId: 1 }]);
    expect(d.policy.phase).toBe('idle');
  });

  it('words before the pause confirm at once, and the pause comes first', () => {
    const d = driver();
    d.active(1);
    d.voiced(60); // speech, but not yet minSpeechMs
    expect(d.transcript('wait')).toEqual([
      { type: 'pause', turnId: 1 },
      { type: 'confirm', turnId: 1 },
    ]);
  });

  it.each(['yeah', 'uh-huh', 'okay', 'mm-hmm', 'Yeah, okay.', 'Uh huh', 'mhm right'])('the backchannel %j does not confirm', (text) => {
    const d = driver();
    d.active(1);
    d.voiced(200);
    expect(d.transcript(text)).toEqual([]);
    expect(d.policy.phase).toBe('paused');
  });

  it('a backchannel followed by real words confirms', () => {
    const d = driver();
    d.active(1);
    d.voiced(200);
    expect(d.transcript('okay but')).toEqual([{ type: 'confirm', turnId: 1 }]);
  });

  it('after confirming, further transcripts decide nothing', () => {
    const d = driver();
    d.active(1);
    d.voiced(200);
    d.transcript('stop');
    expect(d.transcript('stop now please')).toEqual([]);
    expect(d.voiced(1000)).toEqual([]);
  });

  it('ignores transcripts that arrive before any caller speech in this assistant turn (a late final of the last utterance)', () => {
    const d = driver();
    d.voiced(400);
    d.silent(1000);
    d.active(1);
    expect(d.transcript('tell me about the weather')).toEqual([]);
    expect(d.policy.phase).toBe('active');
    d.voiced(1020); // one voiced frame: the caller is talking again
    expect(d.transcript('actually never mind')).toEqual([
      { type: 'pause', turnId: 1 },
      { type: 'confirm', turnId: 1 },
    ]);
  });

  it('a caller already speaking when the assistant turn starts counts as speech in this turn', () => {
    const d = driver();
    d.voiced(100);
    d.active(1);
    expect(d.transcript('no wait')).toEqual([
      { type: 'pause', turnId: 1 },
      { type: 'confirm', turnId: 1 },
    ]);
  });
});

describe('interruption: echo guard', () => {
  it("the assistant's own recent words coming back do not confirm; the caller's own words do", () => {
    const d = driver({}, 'The weather today is sunny and warm');
    d.active(1);
    d.voiced(200);
    expect(d.transcript('the weather today').map((x) => x.type)).not.toContain('confirm');
    expect(d.transcript('Sunny and warm.').map((x) => x.type)).not.toContain('confirm');
    const decisions = d.transcript('what about tomorrow');
    expect(decisions.map((x) => x.type)).toContain('confirm');
    expect(decisions.every((x) => x.turnId === 1)).toBe(true);
  });

  it('reads the recent words at decision time', () => {
    const d = driver({}, 'Hello');
    d.active(1);
    d.voiced(200);
    d.setRecent('Your table is booked for eight');
    expect(d.transcript('booked for eight').map((x) => x.type)).not.toContain('confirm');
  });

  it('with the echo guard off, the echo confirms like any words', () => {
    const d = driver({ echoGuard: false }, 'The weather today is sunny and warm');
    d.active(1);
    d.voiced(200);
    expect(d.transcript('the weather today')).toEqual([{ type: 'confirm', turnId: 1 }]);
  });
});

describe('interruption: false interruption', () => {
  it('resumes falseInterruptionMs after the pause when nothing confirmed (tick at nextDeadline)', () => {
    const d = driver({ falseInterruptionMs: 1500 });
    d.active(1);
    d.voiced(200);
    d.transcript('mm-hmm');
    d.silent(400);
    expect(d.policy.nextDeadline()).toBe(1700);
    expect(d.tick(1699)).toEqual([]);
    expect(d.tick(1700)).toEqual([{ type: 'resume', turnId: 1 }]);
    expect(d.policy.phase).toBe('active');
    expect(d.policy.nextDeadline()).toBeUndefined();
  });

  it('after a resume, new speech of minSpeechMs pauses again', () => {
    const d = driver();
    d.active(1);
    d.voiced(200);
    d.silent(1700);
    d.tick(1700);
    d.voiced(1880);
    expect(d.types()).toEqual(['pause', 'resume']);
    d.voiced(1900);
    expect(d.types()).toEqual(['pause', 'resume', 'pause']);
  });

  it('does not resume while the caller is still voiced; resumes on the first silent frame after the window', () => {
    const d = driver({ falseInterruptionMs: 1500 });
    d.active(1);
    d.voiced(200);
    d.voiced(1700);
    expect(d.tick(1700)).toEqual([]);
    expect(d.voiced(2000)).toEqual([]);
    expect(d.policy.phase).toBe('paused');
    expect(d.silent(2020)).toEqual([{ type: 'resume', turnId: 1 }]);
  });

  it('a silent frame inside the window does not resume by itself', () => {
    const d = driver({ falseInterruptionMs: 1500 });
    d.active(1);
    d.voiced(200);
    expect(d.silent(1680)).toEqual([]);
    expect(d.policy.phase).toBe('paused');
  });

  it('never asks for a tick that can only do nothing while the caller is still speaking', () => {
    // The engine arms one timer at the earliest nextDeadline of its policies and ticks them when it fires. A
    // deadline left in the past while the tick refuses to act would re-arm a zero-delay timer in a loop.
    const d = driver({ falseInterruptionMs: 1500 });
    d.active(1);
    d.voiced(200);
    d.voiced(1700);
    expect(d.tick(1700)).toEqual([]);
    const deadline = d.policy.nextDeadline();
    expect(deadline === undefined || deadline > 1700).toBe(true);
    // Once the caller stops inside the window, the deadline is back and the resume comes on time.
    const e = driver({ falseInterruptionMs: 1500 });
    e.active(1);
    e.voiced(200);
    e.voiced(1000);
    e.silent(1020);
    expect(e.policy.nextDeadline()).toBe(1700);
    expect(e.tick(1700)).toEqual([{ type: 'resume', turnId: 1 }]);
  });

  it('a tick does nothing when not paused', () => {
    const d = driver();
    d.active(1);
    expect(d.tick(10_000)).toEqual([]);
    expect(d.policy.nextDeadline()).toBeUndefined();
  });
});

describe('interruption: vad-only mode', () => {
  it('confirms after vadOnlyConfirmMs of continuous speech, with no words at all', () => {
    const d = driver({ mode: 'vad-only', minSpeechMs: 200, vadOnlyConfirmMs: 600 });
    d.active(1);
    d.voiced(580);
    expect(d.log).toEqual([{ atMs: 200, decision: { type: 'pause', turnId: 1 } }]);
    d.voiced(600);
    expect(d.log.slice(1)).toEqual([{ atMs: 600, decision: { type: 'confirm', turnId: 1 } }]);
    expect(d.policy.phase).toBe('idle');
  });

  it('speech broken before vadOnlyConfirmMs does not confirm and is resumed after the window', () => {
    const d = driver({ mode: 'vad-only', minSpeechMs: 200, vadOnlyConfirmMs: 600 });
    d.active(1);
    d.voiced(400);
    d.silent(420);
    d.voiced(800); // 380 ms run
    d.silent(1680);
    expect(d.types()).toEqual(['pause']);
    expect(d.tick(1700)).toEqual([{ type: 'resume', turnId: 1 }]);
  });

  it('in words mode, long speech alone never confirms', () => {
    const d = driver({ mode: 'words' });
    d.active(1);
    d.voiced(5000);
    expect(d.types()).toEqual(['pause']);
  });
});

describe('interruption: DTMF barge-in', () => {
  it('a key press while the assistant is active pauses and confirms at once', () => {
    const d = driver();
    d.active(5);
    expect(d.dtmf()).toEqual([
      { type: 'pause', turnId: 5 },
      { type: 'confirm', turnId: 5 },
    ]);
  });

  it('while paused, a key press confirms without a second pause', () => {
    const d = driver();
    d.active(5);
    d.voiced(200);
    expect(d.dtmf()).toEqual([{ type: 'confirm', turnId: 5 }]);
  });

  it('is ignored when idle or when DTMF barge-in is off', () => {
    const idle = driver();
    expect(idle.dtmf()).toEqual([]);
    const off = driver({ dtmfBargeIn: false });
    off.active(1);
    expect(off.dtmf()).toEqual([]);
    expect(off.policy.phase).toBe('active');
  });
});
