import { describe, expect, it } from 'vitest';
import { createSpokenText } from '../../shared/engine/spoken-text';

describe('spoken text: with word timings', () => {
  function timed() {
    const s = createSpokenText();
    const i = s.addPiece('Your table is booked.');
    s.addAudio(i, 1000);
    s.addWords([
      { word: 'Your', startMs: 0, endMs: 200 },
      { word: 'table', startMs: 200, endMs: 500 },
      { word: 'is', startMs: 500, endMs: 600 },
      { word: 'booked.', startMs: 600, endMs: 1000 },
    ]);
    return s;
  }

  it('a word counts once half of it was played', () => {
    const s = timed();
    expect(s.heardText(0)).toBe('');
    expect(s.heardText(99)).toBe('');
    expect(s.heardText(100)).toBe('Your');
    expect(s.heardText(349)).toBe('Your');
    expect(s.heardText(350)).toBe('Your table');
    expect(s.heardText(799)).toBe('Your table is');
    expect(s.heardText(800)).toBe('Your table is booked.');
    expect(s.heardText(5000)).toBe('Your table is booked.');
  });

  it('a new TTS stream continues the timeline: its word timings are offset by the audio produced so far', () => {
    const s = createSpokenText();
    const a = s.addPiece('Hello there.');
    s.addAudio(a, 600);
    s.addWords([
      { word: 'Hello', startMs: 0, endMs: 300 },
      { word: 'there.', startMs: 300, endMs: 600 },
    ]);
    s.startNewStream(); // fallback TTS: its timings start at its own zero
    const b = s.addPiece('How can I help?');
    s.addAudio(b, 800);
    s.addWords([
      { word: 'How', startMs: 0, endMs: 200 },
      { word: 'can', startMs: 200, endMs: 400 },
      { word: 'I', startMs: 400, endMs: 500 },
      { word: 'help?', startMs: 500, endMs: 800 },
    ]);
    expect(s.producedMs).toBe(1400);
    expect(s.heardText(650)).toBe('Hello there.'); // not "Hello there. How can" as un-offset timings would say
    expect(s.heardText(700)).toBe('Hello there. How');
    expect(s.heardText(1250)).toBe('Hello there. How can I help?');
  });
});

describe('spoken text: without word timings', () => {
  function pieces() {
    const s = createSpokenText();
    const a = s.addPiece('Your table is booked.'); // 4 words over 0..400
    const b = s.addPiece('See you at eight tonight.'); // 5 words over 400..900
    s.addAudio(a, 200);
    s.addAudio(a, 200);
    s.addAudio(b, 500);
    return s;
  }

  it('whole pieces played count in full', () => {
    const s = pieces();
    expect(s.heardText(400)).toBe('Your table is booked.');
    expect(s.heardText(900)).toBe('Your table is booked. See you at eight tonight.');
  });

  it('a partly played piece counts its words in proportion, each word counting from its half', () => {
    const s = pieces();
    expect(s.heardText(49)).toBe('');
    expect(s.heardText(50)).toBe('Your');
    expect(s.heardText(149)).toBe('Your');
    expect(s.heardText(150)).toBe('Your table');
    expect(s.heardText(450)).toBe('Your table is booked. See'); // 50 of 500 ms = half of the first of 5 words
    expect(s.heardText(449)).toBe('Your table is booked.');
    expect(s.heardText(650)).toBe('Your table is booked. See you at');
  });

  it('nothing heard at position 0, and pieces without audio are never heard', () => {
    const s = createSpokenText();
    const a = s.addPiece('One two.');
    s.addPiece('Three four.');
    s.addAudio(a, 200);
    expect(s.heardText(0)).toBe('');
    expect(s.heardText(10_000)).toBe('One two.');
  });
});

describe('spoken text: pieces', () => {
  it('unvoicedPieces lists the pieces with no audio yet, with their indices', () => {
    const s = createSpokenText();
    const a = s.addPiece('First.');
    const b = s.addPiece('Second.');
    const c = s.addPiece('Third.');
    expect([a, b, c]).toEqual([0, 1, 2]);
    s.addAudio(a, 100);
    expect(s.unvoicedPieces()).toEqual([
      { index: 1, text: 'Second.' },
      { index: 2, text: 'Third.' },
    ]);
    s.addAudio(b, 100);
    expect(s.unvoicedPieces()).toEqual([{ index: 2, text: 'Third.' }]);
  });

  it('audio for an unknown piece is ignored', () => {
    const s = createSpokenText();
    s.addPiece('Only one.');
    s.addAudio(5, 300);
    expect(s.producedMs).toBe(0);
    expect(s.unvoicedPieces()).toHaveLength(1);
  });

  it('fullText joins every piece; normalisedWords gives the echo-guard words', () => {
    const s = createSpokenText();
    s.addPiece(' Hello, there! ');
    s.addPiece("It's   ten o'clock.");
    expect(s.fullText()).toBe("Hello, there! It's   ten o'clock.");
    expect(s.normalisedWords()).toEqual(['hello', 'there', "it's", 'ten', "o'clock"]);
  });
});
