/**
 * Cuts the LLM's token stream into speakable pieces for TTS. The first piece goes out at the first clause
 * boundary, or after `firstMaxChars` at a space when the model writes no punctuation (so speech starts
 * early); later pieces at sentence ends, or at clause ends once they are long.
 * A boundary counts only when whitespace follows it, so "3.5" and "e.g." mid-stream are not cut.
 */
export interface ChunkerOptions {
  /** Shortest first piece (characters) worth sending at a clause boundary. */
  readonly firstMinChars: number;
  /** The first piece is cut at a space once this long without a boundary (voice starts sooner). */
  readonly firstMaxChars: number;
  /** Later pieces are cut at clause boundaries once this long. */
  readonly clauseMinChars: number;
  /** Hard cut at a space when a piece grows this long without punctuation. */
  readonly maxChars: number;
}

export const DEFAULT_CHUNKER: ChunkerOptions = { firstMinChars: 12, firstMaxChars: 48, clauseMinChars: 60, maxChars: 220 };

const SENTENCE_END = new Set(['.', '!', '?', '…', '。', '！', '？']);
const CLAUSE_END = new Set([',', ';', ':', '—', '–', '、', '，']);
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'dr', 'st', 'vs', 'etc', 'e.g', 'i.e', 'jr', 'sr']);

export function createChunker(options: ChunkerOptions = DEFAULT_CHUNKER) {
  let buffer = '';
  let emitted = 0;

  function cutIndex(): number {
    // The first usable boundary followed by whitespace, within maxChars: the same cut whether the text came
    // token by token or in one block (push() loops, so a block yields every piece it holds).
    const limit = emitted === 0 ? Math.min(options.firstMaxChars, options.maxChars) : options.maxChars;
    const end = Math.min(buffer.length - 1, limit - 1);
    for (let i = 0; i < end; i++) {
      const ch = buffer[i]!;
      const next = buffer[i + 1]!;
      if (next !== ' ' && next !== '\n' && next !== '\t') continue;
      const len = i + 1;
      if (SENTENCE_END.has(ch)) {
        if (ch === '.' && isAbbreviation(buffer, i)) continue;
        return len;
      } else if (CLAUSE_END.has(ch)) {
        if (len >= (emitted === 0 ? options.firstMinChars : options.clauseMinChars)) return len;
      } else if (ch === '\n' && len >= options.firstMinChars) {
        return len;
      }
    }
    if (buffer.length >= limit) {
      const space = buffer.lastIndexOf(' ', limit - 1);
      if (space > 0) return space + 1;
    }
    return -1;
  }

  return {
    /** Add LLM text; returns the pieces ready to speak (usually none or one). */
    push(text: string): string[] {
      buffer += text;
      const out: string[] = [];
      for (;;) {
        const cut = cutIndex();
        if (cut <= 0) break;
        const piece = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut);
        if (piece) {
          out.push(piece);
          emitted++;
        }
      }
      return out;
    },
    /** The LLM is done: whatever is left is the last piece. */
    flush(): string[] {
      const piece = buffer.trim();
      buffer = '';
      if (!piece) return [];
      emitted++;
      return [piece];
    },
    reset(): void {
      buffer = '';
      emitted = 0;
    },
  };
}

function isAbbreviation(text: string, dotIndex: number): boolean {
  let start = dotIndex;
  while (start > 0 && /[A-Za-z.]/.test(text[start - 1]!)) start--;
  const word = text.slice(start, dotIndex).toLowerCase();
  return ABBREVIATIONS.has(word) || /^[a-z]$/.test(word);
}

export type Chunker = ReturnType<typeof createChunker>;
