/** Word-level text helpers shared by the turn policies (normalised words, backchannels, echo). */

/** Lower-case words without punctuation; "Uh-huh," → ["uh", "huh"]. */
export function normalisedWords(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().split(/[^\p{L}\p{N}']+/u)) {
    const w = raw.replace(/^'+|'+$/g, '');
    if (w) out.push(w);
  }
  return out;
}

export function wordCount(text: string): number {
  return normalisedWords(text).length;
}

/** The set of words that only ever form backchannels ("uh-huh" contributes "uh" and "huh"). */
export function backchannelWordSet(phrases: readonly string[]): ReadonlySet<string> {
  const set = new Set<string>();
  for (const p of phrases) for (const w of normalisedWords(p)) set.add(w);
  return set;
}

/** Words of `text` that are not backchannels: the ones that can confirm an interruption. */
export function substantiveWordCount(text: string, backchannels: ReadonlySet<string>): number {
  let n = 0;
  for (const w of normalisedWords(text)) if (!backchannels.has(w)) n++;
  return n;
}

/**
 * True when every word of `heard` is one the assistant just spoke: the caller's microphone picked up the
 * assistant's own voice. Order is not required, because a paused and resumed playback echoes a word twice
 * and an STT may drop one; a transcript with any word of the caller's own is not echo. Needs one word.
 */
export function isEcho(heard: string, spoken: readonly string[]): boolean {
  const words = normalisedWords(heard);
  if (words.length === 0 || spoken.length === 0) return false;
  const vocabulary = new Set(spoken);
  return words.every((w) => vocabulary.has(w));
}

/** Join transcript pieces with single spaces. */
export function joinText(pieces: readonly string[]): string {
  return pieces.map((p) => p.trim()).filter(Boolean).join(' ');
}
