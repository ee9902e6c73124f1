import { describe, expect, it } from 'vitest';
import { createChunker, DEFAULT_CHUNKER, type ChunkerOptions } from '../../shared/engine/chunker';

/** Push `tokens` one by one, then flush; returns every piece in order. */
function chunk(tokens: readonly string[], options: ChunkerOptions = DEFAULT_CHUNKER): string[] {
  const c = createChunker(options);
  const out: string[] = [];
  for (const t of tokens) out.push(...c.push(t));
  out.push(...c.flush());
  return out;
}

/** Tokens the way an LLM streams them: words with their trailing whitespace. */
const words = (text: string) => text.match(/\S+\s*/g) ?? [];
const chars = (text: string) => [...text];

describe('chunker: first piece', () => {
  it('goes out at the first clause boundary once it is at least firstMinChars long', () => {
    const c = createChunker({ firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 220 });
    expect(c.push('Sure, no problem, ')).toEqual(['Sure, no problem,']);
  });

  it('a clause boundary before firstMinChars is passed over', () => {
    const c = createChunker({ firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 220 });
    expect(c.push('Yes, ')).toEqual([]);
    expect(c.push('I can do that, ')).toEqual(['Yes, I can do that,']);
  });

  it('waits for the whitespace after the boundary', () => {
    const c = createChunker();
    expect(c.push('Absolutely right,')).toEqual([]);
    expect(c.push(' I')).toEqual(['Absolutely right,']);
  });
});

describe('chunker: later pieces', () => {
  it('are cut at sentence ends', () => {
    expect(chunk(words('Hello there. How are you today? I am fine! Thanks.'))).toEqual([
      'Hello there.',
      'How are you today?',
      'I am fine!',
      'Thanks.',
    ]);
  });

  it('are cut at a clause boundary only once they are clauseMinChars long', () => {
    const options = { firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 40, maxChars: 220 };
    expect(chunk(words('Okay, that works. First, the short part, then a rather longer clause goes here, and the rest.'), options)).toEqual([
      'Okay, that works.',
      'First, the short part, then a rather longer clause goes here,',
      'and the rest.',
    ]);
  });

  it('a newline paragraph break is a boundary', () => {
    expect(chunk(words('Here is the list\n\n- first item'))).toEqual(['Here is the list', '- first item']);
  });
});

describe('chunker: things that are not boundaries', () => {
  it('does not cut inside a number', () => {
    expect(chunk(words('The rate is 3.5 percent today. Anything else?'))).toEqual(['The rate is 3.5 percent today.', 'Anything else?']);
  });

  it('does not cut after abbreviations or initials', () => {
    expect(chunk(words('Your appointment with Dr. Smith is at noon. Bring your card.'))).toEqual([
      'Your appointment with Dr. Smith is at noon.',
      'Bring your card.',
    ]);
    expect(chunk(words('Bring documents, e.g. a passport, to the desk. Thank you.'), { firstMinChars: 40, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 220 })).toEqual([
      'Bring documents, e.g. a passport, to the desk.',
      'Thank you.',
    ]);
    expect(chunk(words('It was written by J. R. Tolkien in England. Next question.'))).toEqual([
      'It was written by J. R. Tolkien in England.',
      'Next question.',
    ]);
  });
});

describe('chunker: maxChars', () => {
  it('cuts a piece that grows to maxChars without punctuation at its last space, never longer', () => {
    const options = { firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 30 };
    const text = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen';
    const pieces = chunk(words(text), options);
    expect(pieces.length).toBeGreaterThan(2);
    for (const p of pieces) expect(p.length).toBeLessThanOrEqual(30);
    expect(pieces.join(' ')).toBe(text);
    // Cut at spaces only: no word is split.
    for (const p of pieces) for (const w of p.split(' ')) expect(text.split(' ')).toContain(w);
  });

  it('keeps pieces within maxChars even when the text arrives in one block with sentence ends far apart', () => {
    const options = { firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 60 };
    const text = 'This first sentence is fairly long and runs on a bit. The second is just as long and also runs on. A third.';
    const pieces = chunk([text], options);
    for (const p of pieces) expect(p.length).toBeLessThanOrEqual(60);
    expect(pieces.join(' ')).toBe(text);
  });
});

describe('chunker: flush and reset', () => {
  it('flush returns the rest as the last piece, then nothing', () => {
    const c = createChunker();
    expect(c.push('Hello there. And then')).toEqual(['Hello there.']);
    expect(c.flush()).toEqual(['And then']);
    expect(c.flush()).toEqual([]);
  });

  it('flush of only whitespace returns nothing', () => {
    const c = createChunker();
    c.push('Hello there. ');
    expect(c.flush()).toEqual([]);
  });

  it('reset forgets the buffer and makes the next piece a first piece again', () => {
    const c = createChunker({ firstMinChars: 12, firstMaxChars: 1000, clauseMinChars: 60, maxChars: 220 });
    c.push('Some unfinished');
    c.reset();
    expect(c.push('Right away sir, ')).toEqual(['Right away sir,']);
    expect(c.flush()).toEqual([]);
  });
});

describe('chunker: streaming granularity does not change the pieces', () => {
  const texts = [
    'Sure, I can help with that. Your order number is 12.5 thousand, e.g. the big one. Dr. Smith will call you at 3 p.m. today! Anything else?',
    'Okay. Let me check, one moment, the calendar for next week; there are three slots, Monday at nine, Tuesday at ten, and Friday at noon. Which one suits you best?',
    'Hello! How can I help you today?',
  ];
  for (const text of texts) {
    it(`same pieces token by token, character by character and as one block: ${JSON.stringify(text.slice(0, 24))}`, () => {
      const whole = chunk([text]);
      expect(chunk(words(text))).toEqual(whole);
      expect(chunk(chars(text))).toEqual(whole);
      expect(whole.join(' ')).toBe(text);
    });
  }

  it('a text pushed in one block still starts with its first clause', () => {
    expect(chunk(['Sure thing then, let me look that up for you. It will take a second.'])).toEqual([
      'Sure thing then,',
      'let me look that up for you.',
      'It will take a second.',
    ]);
  });
});

describe('first piece without punctuation', () => {
  it('is cut at a space once firstMaxChars long, so speech starts before the model reaches a boundary', () => {
    const text = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';
    const c = createChunker({ firstMinChars: 12, firstMaxChars: 30, clauseMinChars: 60, maxChars: 220 });
    const pieces: string[] = [];
    for (const token of text.match(/\S+\s*/g)!) pieces.push(...c.push(token));
    expect(pieces).toEqual(['once upon a time there was a']);
    // Later pieces wait for a boundary again (up to maxChars).
    expect(c.flush()).toEqual(['dragon and the dragon was warm and the dragon was sunny']);
  });

  it('a "No." at the start of a sentence is a sentence end', () => {
    const c = createChunker();
    expect(c.push('No. I do not think so. ')).toEqual(['No.', 'I do not think so.']);
  });
});
