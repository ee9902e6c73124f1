import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKCHANNELS } from '../../shared/config/assistant';
import { createDtmfCollector } from '../../shared/engine/dtmf';
import { createInboundQueue } from '../../shared/engine/inbound-queue';
import { backchannelWordSet, isEcho, joinText, normalisedWords, substantiveWordCount, wordCount } from '../../shared/engine/words';

describe('words', () => {
  it('normalisedWords lower-cases, drops punctuation, splits hyphens and keeps inner apostrophes', () => {
    expect(normalisedWords('Uh-huh,')).toEqual(['uh', 'huh']);
    expect(normalisedWords("  Don't STOP... 'now'! ")).toEqual(["don't", 'stop', 'now']);
    expect(normalisedWords('Room 42, floor 3.5')).toEqual(['room', '42', 'floor', '3', '5']);
    expect(normalisedWords('Ça coûte 5 €')).toEqual(['ça', 'coûte', '5']);
    expect(normalisedWords(' ,.! ')).toEqual([]);
  });

  it('wordCount counts normalised words', () => {
    expect(wordCount('Mm-hmm, okay.')).toBe(3);
    expect(wordCount('')).toBe(0);
  });

  it('substantiveWordCount leaves out backchannel words', () => {
    const set = backchannelWordSet(DEFAULT_BACKCHANNELS);
    expect(set.has('uh')).toBe(true);
    expect(set.has('huh')).toBe(true);
    expect(substantiveWordCount('Uh-huh, yeah okay.', set)).toBe(0);
    expect(substantiveWordCount('Yeah, but wait.', set)).toBe(2);
    expect(substantiveWordCount('Stop', new Set())).toBe(1);
  });

  it('isEcho: every heard word was just spoken by the assistant', () => {
    const spoken = normalisedWords('The weather today is sunny and warm');
    expect(isEcho('the weather today', spoken)).toBe(true);
    expect(isEcho('Sunny and warm.', spoken)).toBe(true);
    expect(isEcho('the weather tomorrow', spoken)).toBe(false);
    expect(isEcho('what about tomorrow', spoken)).toBe(false);
  });

  it('isEcho needs at least one word and something spoken', () => {
    expect(isEcho('', ['hello'])).toBe(false);
    expect(isEcho('...', ['hello'])).toBe(false);
    expect(isEcho('hello', [])).toBe(false);
  });

  it('joinText trims pieces, drops empty ones and joins with single spaces', () => {
    expect(joinText([' Hello ', '', '  ', 'there'])).toBe('Hello there');
    expect(joinText([])).toBe('');
  });
});

describe('dtmf collector', () => {
  const options = { terminator: '#', interDigitTimeoutMs: 2000, maxDigits: 4 };

  it('the terminator ends the sequence (and is not part of it)', () => {
    const c = createDtmfCollector(options);
    expect(c.press('1', 0)).toBeUndefined();
    expect(c.press('2', 100)).toBeUndefined();
    expect(c.press('#', 200)).toBe('12');
    expect(c.nextDeadline()).toBeUndefined();
  });

  it('a terminator with no digits yields nothing', () => {
    const c = createDtmfCollector(options);
    expect(c.press('#', 0)).toBeUndefined();
  });

  it('maxDigits ends the sequence at once', () => {
    const c = createDtmfCollector(options);
    expect(['1', '2', '3'].map((d, i) => c.press(d, i * 100))).toEqual([undefined, undefined, undefined]);
    expect(c.press('4', 300)).toBe('1234');
    expect(c.press('5', 400)).toBeUndefined(); // a new sequence
  });

  it('a pause of interDigitTimeoutMs after the last key ends the sequence (tick at nextDeadline)', () => {
    const c = createDtmfCollector(options);
    c.press('7', 0);
    c.press('8', 1500);
    expect(c.nextDeadline()).toBe(3500);
    expect(c.tick(3499)).toBeUndefined();
    expect(c.tick(3500)).toBe('78');
    expect(c.tick(9000)).toBeUndefined();
    expect(c.nextDeadline()).toBeUndefined();
  });
});

describe('inbound queue', () => {
  it('is first in, first out', () => {
    const q = createInboundQueue<number>(3);
    expect(q.push(1)).toBe(0);
    expect(q.push(2)).toBe(0);
    expect(q.size).toBe(2);
    expect(q.shift()).toBe(1);
    expect(q.shift()).toBe(2);
    expect(q.shift()).toBeUndefined();
    expect(q.size).toBe(0);
  });

  it('when full, drops the oldest item and reports the drop', () => {
    const q = createInboundQueue<number>(3);
    expect([1, 2, 3].map((n) => q.push(n))).toEqual([0, 0, 0]);
    expect(q.push(4)).toBe(1);
    expect(q.push(5)).toBe(1);
    expect(q.size).toBe(3);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([3, 4, 5, undefined]);
  });

  it('keeps order across wrap-around with interleaved push and shift', () => {
    const q = createInboundQueue<number>(4);
    const out: number[] = [];
    let dropped = 0;
    for (let n = 1; n <= 50; n++) {
      dropped += q.push(n);
      if (n % 3 === 0) out.push(q.shift()!);
    }
    for (let v = q.shift(); v !== undefined; v = q.shift()) out.push(v);
    // Every item either came out, in increasing order, or was counted as dropped.
    expect(out).toEqual([...out].sort((a, b) => a - b));
    expect(new Set(out).size).toBe(out.length);
    expect(out.length + dropped).toBe(50);
    expect(out.at(-1)).toBe(50);
  });
});
