import { describe, expect, it } from 'vitest';
import type { TurnDecision, TurnDetector } from '../../shared/contracts/turn';
import { createEndpointing, type EndpointingOptions } from '../../shared/engine/endpointing';

const FRAME_MS = 20;

const DEFAULTS: EndpointingOptions = {
  silenceMs: 500,
  minSpeechMs: 60,
  finalWaitMs: 800,
  sttEndOfTurn: true,
  preemptiveGeneration: false,
  preemptiveSilenceMs: 200,
};

interface Timed {
  readonly atMs: number;
  readonly decision: TurnDecision;
}

/**
 * Drives a detector with VAD frames on a timeline. A frame's `atMs` is its end time, so "voiced from 0 to 400"
 * means frames ending at 20, 40, ..., 400. Every decision is recorded with the input time that produced it.
 */
function driver(options: Partial<EndpointingOptions> = {}) {
  const detector: TurnDetector = createEndpointing({ ...DEFAULTS, ...options });
  const log: Timed[] = [];
  let now = 0;
  const record = (atMs: number, decisions: readonly TurnDecision[]) => {
    for (const decision of decisions) log.push({ atMs, decision });
    return decisions;
  };
  const frames = (voiced: boolean, untilMs: number) => {
    for (let t = now + FRAME_MS; t <= untilMs; t += FRAME_MS) record(t, detector.onInput({ type: 'vad', voiced, atMs: t }));
    now = Math.max(now, untilMs);
  };
  return {
    detector,
    log,
    voiced: (untilMs: number) => frames(true, untilMs),
    silent: (untilMs: number) => frames(false, untilMs),
    interim: (text: string, atMs = now) => record(atMs, detector.onInput({ type: 'interim', text, atMs })),
    final: (text: string, atMs = now) => record(atMs, detector.onInput({ type: 'final', text, atMs })),
    sttEndOfTurn: (text: string | undefined, atMs = now) =>
      record(atMs, detector.onInput(text === undefined ? { type: 'sttEndOfTurn', atMs } : { type: 'sttEndOfTurn', text, atMs })),
    tick: (atMs: number) => {
      now = Math.max(now, atMs);
      return record(atMs, detector.onInput({ type: 'tick', atMs }));
    },
    types: () => log.map((e) => e.decision.type),
    find: <K extends TurnDecision['type']>(type: K) =>
      log.filter((e) => e.decision.type === type) as { atMs: number; decision: Extract<TurnDecision, { type: K }> }[],
  };
}

describe('endpointing: speech start', () => {
  it('needs minSpeechMs of voiced frames before the caller counts as speaking', () => {
    const d = driver({ minSpeechMs: 60 });
    d.voiced(40);
    expect(d.log).toEqual([]);
    d.voiced(60);
    // The speech began at the start of the first voiced frame (frame ending at 20 started at 0).
    expect(d.log).toEqual([{ atMs: 60, decision: { type: 'speechStarted', atMs: 0 } }]);
  });

  it('a voiced blip shorter than minSpeechMs, broken by silence, never starts speech', () => {
    const d = driver({ minSpeechMs: 60 });
    d.voiced(40);
    d.silent(60);
    d.voiced(100); // two more voiced frames: the run restarted at zero, 40 ms < 60 ms
    d.silent(2000);
    expect(d.log).toEqual([]);
    expect(d.detector.nextDeadline()).toBeUndefined();
  });

  it('reports speechStarted once per utterance, not on every voiced frame', () => {
    const d = driver();
    d.voiced(1000);
    expect(d.types()).toEqual(['speechStarted']);
  });
});

describe('endpointing: end of turn', () => {
  it('ends the turn after silenceMs of VAD silence when every word is final', () => {
    const d = driver({ silenceMs: 500 });
    d.voiced(1000);
    d.final('book a table for two', 980);
    d.silent(1480);
    expect(d.types()).toEqual(['speechStarted']);
    d.silent(1500); // 500 ms after the last voiced frame (ending at 1000)
    expect(d.log.slice(1)).toEqual([
      { atMs: 1500, decision: { type: 'speechEnded', atMs: 1000 } },
      { atMs: 1500, decision: { type: 'endOfTurn', text: 'book a table for two', speechEndMs: 1000, sttFinalMs: 980 } },
    ]);
    expect(d.detector.nextDeadline()).toBeUndefined();
  });

  it('joins several finals of one turn with single spaces', () => {
    const d = driver();
    d.voiced(600);
    d.final('  book a table ');
    d.voiced(1200);
    d.final('for two', 1190);
    d.silent(1700);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['book a table for two']);
  });

  it('with an interim pending, asks for a finalize and commits when the final arrives', () => {
    const d = driver();
    d.voiced(1000);
    d.interim('book a tab', 990);
    d.silent(1500);
    expect(d.types()).toEqual(['speechStarted', 'speechEnded', 'finalize']);
    expect(d.find('endOfTurn')).toEqual([]);
    expect(d.detector.nextDeadline()).toBe(1500 + 800);

    d.final('book a table', 1620);
    expect(d.find('endOfTurn')).toEqual([
      { atMs: 1620, decision: { type: 'endOfTurn', text: 'book a table', speechEndMs: 1000, sttFinalMs: 1620 } },
    ]);
    expect(d.detector.nextDeadline()).toBeUndefined();
  });

  it('asks for finalize only once while waiting, even as silence goes on', () => {
    const d = driver();
    d.voiced(1000);
    d.interim('hello');
    d.silent(2000);
    expect(d.find('finalize')).toHaveLength(1);
  });

  it('commits the interim text when the final does not come within finalWaitMs (driven by tick at nextDeadline)', () => {
    const d = driver({ finalWaitMs: 800 });
    d.voiced(1000);
    d.interim('cancel my order', 990);
    d.silent(1500);
    const deadline = d.detector.nextDeadline();
    expect(deadline).toBe(2300);

    expect(d.tick(2299)).toEqual([]);
    expect(d.tick(2300)).toEqual([{ type: 'endOfTurn', text: 'cancel my order', speechEndMs: 1000, sttFinalMs: undefined }]);
    expect(d.detector.nextDeadline()).toBeUndefined();
    expect(d.tick(5000)).toEqual([]);
  });

  it('the late final answering that finalize is dropped, not carried into the next turn', () => {
    const d = driver({ finalWaitMs: 800 });
    d.voiced(1000);
    d.interim('cancel my order', 990);
    d.silent(1500);
    d.tick(2300);
    d.final('cancel my order', 2400); // the STT's answer, too late
    d.voiced(3000);
    d.interim('thanks', 2990);
    d.final('thanks', 3000);
    d.silent(3600);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['cancel my order', 'thanks']);
  });

  it('a final with new words after a timeout commit is kept', () => {
    const d = driver({ finalWaitMs: 800 });
    d.voiced(1000);
    d.interim('cancel my order', 990);
    d.silent(1500);
    d.tick(2300);
    d.final('refund please', 2400);
    d.voiced(3000);
    d.silent(3600);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['cancel my order', 'refund please']);
  });

  it('the timeout commit includes earlier finals before the pending interim', () => {
    const d = driver();
    d.voiced(500);
    d.final('I would like', 480);
    d.voiced(1000);
    d.interim('to order');
    d.silent(1500);
    expect(d.tick(d.detector.nextDeadline()!)).toEqual([
      { type: 'endOfTurn', text: 'I would like to order', speechEndMs: 1000, sttFinalMs: 480 },
    ]);
  });

  it('sound without any words: finalize, then no turn once finalWaitMs has passed', () => {
    const d = driver();
    d.voiced(400); // a cough
    d.silent(900);
    expect(d.types()).toEqual(['speechStarted', 'speechEnded', 'finalize']);
    expect(d.tick(900 + 800)).toEqual([]);
    expect(d.detector.nextDeadline()).toBeUndefined();
    expect(d.find('endOfTurn')).toEqual([]);
  });

  it('an empty final does not count as words', () => {
    const d = driver();
    d.voiced(400);
    d.final('   ');
    d.silent(900);
    expect(d.types()).toEqual(['speechStarted', 'speechEnded', 'finalize']);
  });

  it('a final that arrives while the caller is still speaking does not end the turn', () => {
    const d = driver();
    d.voiced(600);
    expect(d.final('hello')).toEqual([]);
    d.voiced(1000);
    expect(d.find('endOfTurn')).toEqual([]);
  });
});

describe('endpointing: the caller resumes before the commit', () => {
  it('resuming while waiting for the final cancels the wait and keeps the words', () => {
    const d = driver();
    d.voiced(1000);
    d.interim('my number is');
    d.silent(1500);
    expect(d.types()).toEqual(['speechStarted', 'speechEnded', 'finalize']);

    d.voiced(1600); // the caller goes on
    expect(d.detector.nextDeadline()).toBeUndefined();
    expect(d.tick(2300)).toEqual([]); // the old deadline no longer commits
    d.final('my number is', 1610);
    expect(d.find('endOfTurn')).toEqual([]);

    d.interim('five five five');
    d.voiced(2400);
    d.final('five five five', 2390);
    d.silent(2900);
    expect(d.find('endOfTurn').map((e) => e.decision)).toEqual([
      { type: 'endOfTurn', text: 'my number is five five five', speechEndMs: 2400, sttFinalMs: 2390 },
    ]);
    expect(d.find('speechStarted').map((e) => e.decision.atMs)).toEqual([0, 1500]);
  });
});

describe('endpointing: STT end of turn', () => {
  it("ends the turn at once with the STT's text, even while the VAD still hears speech", () => {
    const d = driver();
    d.voiced(800);
    expect(d.sttEndOfTurn('what time is it', 810)).toEqual([
      { type: 'endOfTurn', text: 'what time is it', speechEndMs: 800, sttFinalMs: 810 },
    ]);
  });

  it('without text of its own, uses the words heard so far and keeps the time of the last final', () => {
    const d = driver();
    d.voiced(800);
    d.final('what time', 700);
    d.interim('is it');
    expect(d.sttEndOfTurn(undefined, 820)).toEqual([
      { type: 'endOfTurn', text: 'what time is it', speechEndMs: 800, sttFinalMs: 700 },
    ]);
  });

  it('with no words anywhere, is ignored', () => {
    const d = driver();
    d.voiced(400);
    expect(d.sttEndOfTurn(undefined, 420)).toEqual([]);
    expect(d.sttEndOfTurn('   ', 430)).toEqual([]);
  });

  it('is ignored when sttEndOfTurn is off; the VAD decides instead', () => {
    const d = driver({ sttEndOfTurn: false });
    d.voiced(800);
    d.final('what time is it', 790);
    expect(d.sttEndOfTurn('what time is it', 810)).toEqual([]);
    d.silent(1300);
    expect(d.find('endOfTurn').map((e) => e.atMs)).toEqual([1300]);
  });

  it('the committed turn is forgotten: the next turn starts with no words', () => {
    const d = driver();
    d.voiced(800);
    d.final('first question', 790);
    d.sttEndOfTurn(undefined, 800);
    d.silent(2000);
    d.voiced(3000);
    d.final('second', 2990);
    d.silent(3500);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['first question', 'second']);
  });

  it('reports no speech end for a turn the VAD never heard, not the previous turn end', () => {
    const d = driver();
    d.voiced(1000);
    d.final('hello', 990);
    d.silent(1500);
    expect(d.find('endOfTurn').map((e) => e.decision.speechEndMs)).toEqual([1000]);

    // A quiet caller: the STT hears words, the VAD stays silent.
    d.silent(5000);
    d.sttEndOfTurn('yes please', 5000);
    const second = d.find('endOfTurn')[1]!.decision;
    expect(second.text).toBe('yes please');
    expect(second.speechEndMs).toBeUndefined();
    expect(second.sttFinalMs).toBe(5000);
  });
});

describe('endpointing: preemptive generation', () => {
  it('offers the transcript after preemptiveSilenceMs, before the turn ends', () => {
    const d = driver({ preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 500 });
    d.voiced(1000);
    d.final('book a table', 990);
    d.silent(1180);
    expect(d.find('preemptive')).toEqual([]);
    d.silent(1200);
    expect(d.find('preemptive')).toEqual([{ atMs: 1200, decision: { type: 'preemptive', text: 'book a table' } }]);
    d.silent(1500);
    expect(d.types()).toEqual(['speechStarted', 'preemptive', 'speechEnded', 'endOfTurn']);
    expect(d.find('preemptive')).toHaveLength(1);
  });

  it('includes the interim words in the preemptive text', () => {
    const d = driver({ preemptiveGeneration: true });
    d.voiced(1000);
    d.final('book a table');
    d.interim('for two');
    d.silent(1200);
    expect(d.find('preemptive').map((e) => e.decision.text)).toEqual(['book a table for two']);
  });

  it('is not offered without words, nor when preemptive generation is off', () => {
    const none = driver({ preemptiveGeneration: true });
    none.voiced(1000);
    none.silent(1400);
    expect(none.find('preemptive')).toEqual([]);

    const off = driver({ preemptiveGeneration: false });
    off.voiced(1000);
    off.final('book a table');
    off.silent(1400);
    expect(off.find('preemptive')).toEqual([]);
  });

  it('is discarded when the caller resumes, and offered again with the longer transcript', () => {
    const d = driver({ preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 500 });
    d.voiced(1000);
    d.final('book a table', 990);
    d.silent(1300);
    expect(d.find('preemptive')).toHaveLength(1);

    // 300 ms pause < silenceMs: still the same utterance, so no new speechStarted, but the speculative reply goes.
    d.voiced(1340);
    expect(d.find('discardPreemptive')).toEqual([]); // 40 ms of sound is not yet speech (minSpeechMs 60)
    d.voiced(1360);
    expect(d.log.at(-1)).toEqual({ atMs: 1360, decision: { type: 'discardPreemptive' } });
    expect(d.find('speechStarted')).toHaveLength(1);
    d.voiced(2000);
    d.final('for two', 1990);
    d.silent(2200);
    expect(d.find('preemptive').map((e) => e.decision.text)).toEqual(['book a table', 'book a table for two']);
    d.silent(2500);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['book a table for two']);
    expect(d.find('discardPreemptive')).toHaveLength(1);
  });

  it('is discarded when the caller resumes after the speech ended, while the turn waits for its final', () => {
    const d = driver({ preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 500 });
    d.voiced(1000);
    d.interim('book a table');
    d.silent(1500);
    expect(d.types()).toEqual(['speechStarted', 'preemptive', 'speechEnded', 'finalize']);
    d.voiced(1560);
    expect(d.log.slice(-2).map((e) => e.decision)).toEqual([{ type: 'speechStarted', atMs: 1500 }, { type: 'discardPreemptive' }]);
  });

  it('a resume without an outstanding preemptive does not emit discardPreemptive', () => {
    const d = driver({ preemptiveGeneration: true, preemptiveSilenceMs: 200 });
    d.voiced(1000);
    d.final('book');
    d.silent(1100); // 100 ms pause, shorter than preemptiveSilenceMs
    d.voiced(1200);
    expect(d.find('discardPreemptive')).toEqual([]);
  });
});

describe('endpointing: reset', () => {
  it('forgets the partial turn and its pending deadline', () => {
    const d = driver();
    d.voiced(1000);
    d.interim('half a sentence');
    d.silent(1500);
    expect(d.detector.nextDeadline()).toBe(2300);
    d.detector.reset();
    expect(d.detector.nextDeadline()).toBeUndefined();
    expect(d.tick(2300)).toEqual([]);
    d.voiced(3000);
    d.final('new words');
    d.silent(3500);
    expect(d.find('endOfTurn').map((e) => e.decision.text)).toEqual(['new words']);
  });
});
