import type { TtsWordTiming } from '../contracts/tts';
import { joinText, normalisedWords } from './words';

interface Piece {
  readonly text: string;
  startMs: number | undefined;
  endMs: number | undefined;
}

/**
 * Maps one assistant turn's audio back to its text, so an interrupted turn is cut to the words the caller
 * actually heard: word timings when the TTS gives them, else each piece's audio span with its words spread
 * evenly over it.
 */
export function createSpokenText() {
  const pieces: Piece[] = [];
  const words: TtsWordTiming[] = [];
  let producedMs = 0;
  /** Audio produced by earlier TTS streams of this turn (a fallback TTS continues the timeline). */
  let streamOffsetMs = 0;

  return {
    addPiece(text: string): number {
      pieces.push({ text, startMs: undefined, endMs: undefined });
      return pieces.length - 1;
    },
    /** `durationMs` of audio for piece `index` was produced (in order). */
    addAudio(index: number, durationMs: number): void {
      const piece = pieces[index];
      if (!piece) return;
      if (piece.startMs === undefined) piece.startMs = producedMs;
      producedMs += durationMs;
      piece.endMs = producedMs;
    },
    addWords(timings: readonly TtsWordTiming[]): void {
      for (const w of timings) words.push({ word: w.word, startMs: w.startMs + streamOffsetMs, endMs: w.endMs + streamOffsetMs });
    },
    /** A new TTS stream continues this turn: its word timings start at the audio produced so far. */
    startNewStream(): void {
      streamOffsetMs = producedMs;
    },
    get producedMs() {
      return producedMs;
    },
    fullText(): string {
      return joinText(pieces.map((p) => p.text));
    },
    /** The text of the pieces that got audio (all of it, unless a TTS failed with nothing to replace it). */
    voicedText(): string {
      return joinText(pieces.filter((p) => p.startMs !== undefined).map((p) => p.text));
    },
    /** Pieces with no audio yet (to re-send to a fallback TTS). */
    unvoicedPieces(): { index: number; text: string }[] {
      const out: { index: number; text: string }[] = [];
      pieces.forEach((p, index) => {
        if (p.startMs === undefined) out.push({ index, text: p.text });
      });
      return out;
    },
    /** The text whose audio was played up to `heardMs`. A word counts once half of it was played. */
    heardText(heardMs: number): string {
      if (words.length > 0) {
        const heard: string[] = [];
        for (const w of words) if ((w.startMs + w.endMs) / 2 <= heardMs) heard.push(w.word);
        return joinText(heard);
      }
      const heard: string[] = [];
      for (const p of pieces) {
        if (p.startMs === undefined || p.endMs === undefined || p.startMs >= heardMs) break;
        if (p.endMs <= heardMs) {
          heard.push(p.text);
          continue;
        }
        const pieceWords = p.text.split(/\s+/).filter(Boolean);
        const fraction = (heardMs - p.startMs) / (p.endMs - p.startMs);
        const n = Math.floor(fraction * pieceWords.length + 0.5);
        if (n > 0) heard.push(pieceWords.slice(0, n).join(' '));
        break;
      }
      return joinText(heard);
    },
    /** Normalised words of this turn's text (the echo guard compares caller transcripts against them). */
    normalisedWords(): string[] {
      return normalisedWords(this.fullText());
    },
  };
}

export type SpokenText = ReturnType<typeof createSpokenText>;
