import type { TtsWordTiming } from '../../contracts/tts';

/**
 * ElevenLabs sends, with each audio chunk, the characters it voices and their start/duration in ms
 * *relative to that chunk*. This tracker turns those into utterance-relative word timings (a word may
 * straddle two chunks) and, by counting the characters voiced against the characters sent per piece, tells
 * which piece a chunk starts in. Whitespace is not counted: the server may collapse or drop it.
 */

export interface CharAlignment {
  readonly chars: readonly string[];
  readonly charStartTimesMs: readonly number[];
  /** Absent: each character lasts until the next one starts. */
  readonly charDurationsMs?: readonly number[];
}

export interface ChunkAlignmentResult {
  /** The piece the chunk's first voiced character belongs to (undefined before any piece was sent). */
  readonly textIndex: number | undefined;
  /** Words completed by this chunk, in utterance time. */
  readonly words: TtsWordTiming[];
}

export interface AlignmentTracker {
  /** Text sent for the engine's piece `index`. */
  addPiece(index: number, text: string): void;
  /** One audio chunk of `durationMs` and its alignment (if the server sent one). */
  chunk(durationMs: number, alignment: CharAlignment | undefined): ChunkAlignmentResult;
  /** The utterance ended: the word still open, if any. */
  finish(): TtsWordTiming[];
}

const WHITESPACE = /\s/;

function countVoiced(text: string): number {
  let n = 0;
  for (const ch of text) if (!WHITESPACE.test(ch)) n++;
  return n;
}

export function createAlignmentTracker(): AlignmentTracker {
  /** Per piece: its index and the running count of non-space characters up to its end. */
  const pieces: { index: number; endCount: number }[] = [];
  let sentCount = 0;
  let voicedCount = 0;
  let chunkStartMs = 0;
  let open: { text: string; startMs: number; endMs: number } | undefined;
  let lastIndex: number | undefined;

  function pieceAt(position: number): number | undefined {
    for (const piece of pieces) if (piece.endCount > position) return piece.index;
    return pieces.at(-1)?.index;
  }

  function close(out: TtsWordTiming[]): void {
    if (open) out.push({ word: open.text, startMs: Math.round(open.startMs), endMs: Math.round(open.endMs) });
    open = undefined;
  }

  return {
    addPiece(index, text) {
      sentCount += countVoiced(text);
      pieces.push({ index, endCount: sentCount });
    },

    chunk(durationMs, alignment) {
      // A chunk voicing characters belongs to the piece of its first one; one voicing none (silence, spaces,
      // no alignment) continues the previous chunk's piece.
      const voices = alignment?.chars.some((ch) => ch !== '' && !WHITESPACE.test(ch)) ?? false;
      const textIndex = voices || lastIndex === undefined ? pieceAt(voicedCount) : lastIndex;
      lastIndex = textIndex;
      const words: TtsWordTiming[] = [];
      if (alignment) {
        const { chars, charStartTimesMs: starts, charDurationsMs: durations } = alignment;
        for (let i = 0; i < chars.length; i++) {
          const ch = chars[i]!;
          const startMs = chunkStartMs + starts[i]!;
          const lengthMs = durations?.[i] ?? Math.max(0, (starts[i + 1] ?? starts[i]!) - starts[i]!);
          if (ch === '' || WHITESPACE.test(ch)) {
            close(words);
            continue;
          }
          voicedCount += countVoiced(ch);
          if (open) {
            open.text += ch;
            open.endMs = Math.max(open.endMs, startMs + lengthMs);
          } else {
            open = { text: ch, startMs, endMs: startMs + lengthMs };
          }
        }
      }
      chunkStartMs += durationMs;
      return { textIndex, words };
    },

    finish() {
      const words: TtsWordTiming[] = [];
      close(words);
      return words;
    },
  };
}
