/**
 * The tone alphabet: each word of the test vocabulary is a pure tone of its own frequency (300–3375 Hz, so it
 * survives μ-law at 8 kHz). Fake callers speak by playing tones; the fake STT hears words only from the
 * audio it really receives, and the fake TTS speaks tones, so "what the caller heard" is decoded from the
 * audio that really reached the far end. Audio lost anywhere means words lost.
 */
export const VOCABULARY = [
  'hello', 'what', 'is', 'the', 'weather', 'today', 'tell', 'me', 'a', 'joke',
  'stop', 'wait', 'no', 'yeah', 'okay', 'uh-huh', 'mm-hmm', 'sure', 'it', 'sunny',
  'and', 'warm', 'here', 'story', 'once', 'upon', 'time', 'there', 'was', 'dragon',
  'thanks', 'goodbye', 'are', 'you', 'still', 'sorry', 'trouble', 'again', 'hi', 'welcome',
] as const;

export const UNKNOWN_WORD = '<unk>';
const BASE_HZ = 300;
const STEP_HZ = 75;
export const TONE_AMPLITUDE = 0.2 * 32767;
/** Silence between two words: two frames, so at least one whole frame is silent whatever the alignment. */
export const WORD_GAP_MS = 40;

const FREQUENCIES = [...VOCABULARY.map((_, i) => BASE_HZ + STEP_HZ * i), BASE_HZ + STEP_HZ * VOCABULARY.length];
const WORD_INDEX = new Map<string, number>(VOCABULARY.map((w, i) => [w, i]));

export function normaliseWord(word: string): string {
  return word.toLowerCase().replace(/[^a-z'-]/g, '');
}

export function toneHz(word: string): number {
  return FREQUENCIES[WORD_INDEX.get(normaliseWord(word)) ?? VOCABULARY.length]!;
}

/** How long a word's tone lasts: longer words take longer, like speech. */
export function wordToneMs(word: string): number {
  return 120 + 10 * normaliseWord(word).length;
}

export function splitWords(text: string): string[] {
  return text.split(/\s+/).map(normaliseWord).filter(Boolean);
}

export interface WordSpan {
  readonly word: string;
  readonly startMs: number;
  readonly endMs: number;
}

const synthesized = new Map<string, { pcm: Int16Array; spans: WordSpan[] }>();

/**
 * PCM16 for a sequence of words at `sampleRateHz`, with a word gap after each word; and the word spans.
 * Results are cached (read them, never write to them): benchmarks speak the same lines thousands of times.
 */
export function synthesizeWords(words: readonly string[], sampleRateHz: number): { pcm: Int16Array; spans: WordSpan[] } {
  const key = `${sampleRateHz}|${words.join(' ')}`;
  let cached = synthesized.get(key);
  if (!cached) {
    cached = synthesize(words, sampleRateHz);
    if (synthesized.size < 1000) synthesized.set(key, cached);
  }
  return cached;
}

function synthesize(words: readonly string[], sampleRateHz: number): { pcm: Int16Array; spans: WordSpan[] } {
  let totalMs = 0;
  for (const w of words) totalMs += wordToneMs(w) + WORD_GAP_MS;
  const pcm = new Int16Array(Math.round((totalMs * sampleRateHz) / 1000));
  const spans: WordSpan[] = [];
  let offset = 0;
  let ms = 0;
  for (const w of words) {
    const n = Math.round((wordToneMs(w) * sampleRateHz) / 1000);
    const step = (2 * Math.PI * toneHz(w)) / sampleRateHz;
    for (let i = 0; i < n && offset + i < pcm.length; i++) {
      // 2 ms fade in/out keeps the spectrum clean at word edges.
      const edge = Math.min(1, i / (sampleRateHz / 500), (n - i) / (sampleRateHz / 500));
      pcm[offset + i] = Math.round(TONE_AMPLITUDE * edge * Math.sin(step * i));
    }
    spans.push({ word: WORD_INDEX.has(normaliseWord(w)) ? normaliseWord(w) : UNKNOWN_WORD, startMs: ms, endMs: ms + wordToneMs(w) });
    offset += Math.round(((wordToneMs(w) + WORD_GAP_MS) * sampleRateHz) / 1000);
    ms += wordToneMs(w) + WORD_GAP_MS;
  }
  return { pcm, spans };
}

/**
 * Streaming decoder: 20 ms frames in, words out. A frame is classified by the strongest alphabet tone
 * (Goertzel); a word is a run of ≥ 2 frames of one tone, ended by a silent frame or another tone.
 */
export function createToneDecoder(sampleRateHz: number, onWord: (word: string) => void) {
  const coefficients = FREQUENCIES.map((f) => 2 * Math.cos((2 * Math.PI * f) / sampleRateHz));
  let runIndex = -1;
  let runFrames = 0;
  const SILENCE_RMS = 300;

  function endRun(): void {
    if (runIndex >= 0 && runFrames >= 2) onWord(runIndex < VOCABULARY.length ? VOCABULARY[runIndex]! : UNKNOWN_WORD);
    runIndex = -1;
    runFrames = 0;
  }

  function classify(frame: Int16Array): number {
    let energy = 0;
    for (let i = 0; i < frame.length; i++) energy += frame[i]! * frame[i]!;
    if (Math.sqrt(energy / frame.length) < SILENCE_RMS) return -1;
    let best = -1;
    let bestPower = 0;
    for (let k = 0; k < coefficients.length; k++) {
      const c = coefficients[k]!;
      let s1 = 0;
      let s2 = 0;
      for (let i = 0; i < frame.length; i++) {
        const s0 = frame[i]! + c * s1 - s2;
        s2 = s1;
        s1 = s0;
      }
      const power = s1 * s1 + s2 * s2 - c * s1 * s2;
      if (power > bestPower) {
        bestPower = power;
        best = k;
      }
    }
    return best;
  }

  return {
    /** One 20 ms frame of PCM16 at `sampleRateHz`. */
    push(frame: Int16Array): void {
      const index = classify(frame);
      if (index === -1) return endRun();
      if (index === runIndex) {
        runFrames++;
        return;
      }
      endRun();
      runIndex = index;
      runFrames = 1;
    },
    /** End of audio: a word still sounding counts. */
    flush(): void {
      endRun();
    },
    /** True while a tone is sounding. */
    get inWord() {
      return runIndex >= 0;
    },
  };
}

/** Decode a whole PCM16 buffer into words. */
export function decodeWords(pcm: Int16Array, sampleRateHz: number): string[] {
  const words: string[] = [];
  const decoder = createToneDecoder(sampleRateHz, (w) => words.push(w));
  const frame = Math.round(sampleRateHz / 50);
  for (let i = 0; i + frame <= pcm.length; i += frame) decoder.push(pcm.subarray(i, i + frame));
  decoder.flush();
  return words;
}
