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
 * True when every word of `heard` appears, in order and contiguously, in `spoken`: the caller's microphone
 * picked up the assistant's own voice. Needs at least one word.
 */
export function isEcho(heard: string, spoken: readonly string[]): boolean {
  const words = normalisedWords(heard);
  if (words.length === 0 || spoken.length < words.length) return false;
  outer: for (let i = 0; i + words.length <= spoken.length; i++) {
    for (let j = 0; j < words.length; j++) if (spoken[i + j] !== words[j]) continue outer;
    return true;
  }
  return false;
}

/** Join transcript pieces with single spaces. */
export function joinText(pieces: readonly string[]): string {
  return pieces.map((p) => p.trim()).filter(Boolean).join(' ');
}
