import type { DocumentChunk } from '../contracts/knowledge';

/**
 * Documents to plain text (text, Markdown, HTML), then to chunks for the index. Chunks are built from whole
 * paragraphs, then whole sentences, packed up to `maxChars`; a sentence longer than that is cut between
 * words (a single word longer still is cut hard). Each chunk after the first repeats the last sentences of
 * the previous one, up to `overlapChars`, so an answer that straddles a boundary is still found in one
 * passage. No chunk exceeds `maxChars`.
 */

export interface ChunkOptions {
  /** Longest chunk, in characters. */
  readonly maxChars?: number;
  /** Most characters of the previous chunk repeated at the start of the next (whole sentences only). */
  readonly overlapChars?: number;
}

export const DEFAULT_CHUNK_CHARS = 800;
export const DEFAULT_OVERLAP_CHARS = 160;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '–',
  mdash: '—',
  hellip: '…',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
  eacute: 'é',
  egrave: 'è',
  agrave: 'à',
  ccedil: 'ç',
  uuml: 'ü',
  ouml: 'ö',
  auml: 'ä',
  szlig: 'ß',
};

function codePoint(n: number): string {
  return Number.isInteger(n) && n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : '\uFFFD';
}

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, body: string) => {
    if (body[0] === '#') return codePoint(body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10));
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole;
  });
}

const BLOCK_TAGS = 'p|div|section|article|header|footer|main|aside|nav|li|ul|ol|dl|dt|dd|h[1-6]|tr|table|thead|tbody|blockquote|pre|figure|figcaption|form|fieldset|address|hr';

/** `<!-- … -->` → a space; an unclosed comment runs to the end of the input. */
function dropComments(html: string): string {
  let out = '';
  let from = 0;
  for (;;) {
    const start = html.indexOf('<!--', from);
    if (start < 0) return out + html.slice(from);
    out += html.slice(from, start) + ' ';
    const end = html.indexOf('-->', start + 4);
    if (end < 0) return out;
    from = end + 3;
  }
}

const RAW_OPEN = /<(script|style|head|noscript|template|svg)\b/gi;

/** `<script …>…</script>` (and style, head, noscript, template, svg) → a space; an unclosed one runs to the end. */
function dropRawBlocks(html: string): string {
  let out = '';
  let from = 0;
  for (;;) {
    RAW_OPEN.lastIndex = from;
    const open = RAW_OPEN.exec(html);
    if (!open) return out + html.slice(from);
    out += html.slice(from, open.index) + ' ';
    const close = new RegExp(`</${open[1]!}\\s*>`, 'gi');
    close.lastIndex = open.index + open[0].length;
    const end = close.exec(html);
    if (!end) return out;
    from = end.index + end[0].length;
  }
}

/** HTML → plain text: scripts, styles, comments and the head dropped; block elements become paragraph breaks. */
export function htmlToText(html: string): string {
  // Linear scans and patterns only: a tag or block that is never closed must not make this quadratic
  // (`[^<>]*` stops at the next `<`, so every start scans at most to the next tag).
  let text = dropRawBlocks(dropComments(html))
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(new RegExp(`</?(?:${BLOCK_TAGS})\\b[^<>]*>`, 'gi'), '\n\n')
    .replace(/<\/?(td|th)\b[^<>]*>/gi, ' ')
    .replace(/<[^<>]*>/g, '');
  text = decodeEntities(text);
  return normaliseWhitespace(text);
}

const isLineBreak = (ch: string) => ch === '\n' || ch === '\r' || ch === '\u2028' || ch === '\u2029';
const isSpace = (ch: string) => /\s/.test(ch);

/**
 * Emphasis markers dropped, their text kept, in one left-to-right pass and linear time: what
 * `/(d1|d2)(.+?)\1/g` (or, `flanking`, `/(d1|d2)(\S(?:.*?\S)?)\1/g`) would replace with `$2`, without the
 * regex's quadratic search for a closing marker that is not there.
 */
function stripPaired(line: string, delimiters: readonly string[], flanking: boolean): string {
  if (!delimiters.some((d) => line.includes(d))) return line;
  const n = line.length;
  // next[k][p]: the first closing delimiter k at or after p with no line break in between (-1: none).
  const next = delimiters.map((d) => {
    const table = new Int32Array(n + 1).fill(-1);
    for (let p = n - 1; p >= 0; p--) {
      const closes = line.startsWith(d, p) && (!flanking || (p > 0 && !isSpace(line[p - 1]!)));
      table[p] = closes ? p : isLineBreak(line[p]!) ? -1 : table[p + 1]!;
    }
    return table;
  });
  let out = '';
  let i = 0;
  while (i < n) {
    let matched = false;
    for (let k = 0; k < delimiters.length; k++) {
      const d = delimiters[k]!;
      if (!line.startsWith(d, i)) continue;
      const start = i + d.length;
      if (start >= n) break;
      const first = line[start]!;
      if (isLineBreak(first) || (flanking && isSpace(first))) break;
      // `.+?` takes the nearest closer; `\S(?:.*?\S)?` first tries two or more characters (the optional group is
      // greedy), and only then the single one.
      let end = flanking ? (start + 1 < n && !isLineBreak(line[start + 1]!) ? next[k]![start + 2]! : -1) : next[k]![start + 1]!;
      if (end < 0 && flanking && line.startsWith(d, start + 1)) end = start + 1;
      if (end < 0) break;
      out += line.slice(start, end);
      i = end + d.length;
      matched = true;
      break;
    }
    if (!matched) out += line[i++];
  }
  return out;
}

/** Markdown → plain text: markup dropped, the words of links, images (alt text), code and tables kept. */
export function markdownToText(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let fence: string | undefined;
  for (const raw of lines) {
    const fenceMatch = /^\s*(```+|~~~+)/.exec(raw);
    if (fenceMatch) {
      const marker = fenceMatch[1]!;
      if (fence === undefined) fence = marker[0]!;
      else if (marker[0] === fence) fence = undefined;
      out.push('');
      continue;
    }
    if (fence !== undefined) {
      out.push(raw);
      continue;
    }
    let line = raw;
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.push('');
      continue;
    }
    if (/^\s*(?:\|\s*)?:?-{2,}:?(?:\s*\|\s*:?-{2,}:?)*(?:\s*\|)?\s*$/.test(line)) continue; // table separator row
    if (/^\s*(=+|-+)\s*$/.test(line)) continue; // setext underline
    line = line
      .replace(/^\s{0,3}#{1,6}\s+/, '')
      .replace(/(?<!\s)\s+#+\s*$/, '')
      .replace(/^\s*(>\s?)+/, '')
      .replace(/^\s*([-*+]|\d+[.)])\s+(\[[ xX]\]\s+)?/, '')
      .replace(/!\[([^[\]]*)\]\([^)[]*\)/g, '$1')
      .replace(/\[([^[\]]+)\]\([^)[]*\)/g, '$1')
      .replace(/\[([^[\]]+)\]\[[^[\]]*\]/g, '$1')
      .replace(/^\s*\[[^\]]+\]:\s+\S+.*$/, '')
      .replace(/<[^<>]+>/g, '');
    line = stripPaired(line, ['**', '__'], false);
    line = stripPaired(line, ['*', '_'], true);
    line = stripPaired(line, ['~~'], false);
    line = line.replace(/`+([^`]*)`+/g, '$1');
    if (line.includes('|')) line = line.replace(/^\s*\|/, '').replace(/\|\s*$/, '').replace(/(?<!\s)\s*\|\s*/g, ', ');
    out.push(line);
  }
  return normaliseWhitespace(decodeEntities(out.join('\n')));
}

export type ContentType = 'text' | 'markdown' | 'html';

export function toPlainText(content: string, contentType: ContentType): string {
  switch (contentType) {
    case 'html':
      return htmlToText(content);
    case 'markdown':
      return markdownToText(content);
    case 'text':
      return normaliseWhitespace(content);
  }
}

/** Spaces collapsed inside lines; paragraphs (blank-line separated) kept; line breaks inside a paragraph kept. */
function normaliseWhitespace(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[\t\f\v\u00a0 ]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Paragraphs: separated by blank lines; the lines of one paragraph joined by spaces. */
export function paragraphs(text: string): string[] {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter(Boolean);
}

/** Sentences of a paragraph: cut after `.`, `!`, `?` or `…` (with closing quotes/brackets) followed by a space. */
export function sentences(paragraph: string): string[] {
  return paragraph
    .split(/(?<=[.!?…][)\]"'’”]*)\s+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Pieces of at most `maxChars`, cut between words (a longer word is cut inside). */
function splitLong(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const pieces: string[] = [];
  let current = '';
  for (let word of text.split(/\s+/)) {
    while (word.length > maxChars) {
      if (current) pieces.push(current);
      current = '';
      pieces.push(word.slice(0, maxChars));
      word = word.slice(maxChars);
    }
    if (!word) continue;
    if (!current) current = word;
    else if (current.length + 1 + word.length <= maxChars) current += ` ${word}`;
    else {
      pieces.push(current);
      current = word;
    }
  }
  if (current) pieces.push(current);
  return pieces;
}

interface Unit {
  readonly text: string;
  /** First unit of a paragraph: joined to the previous one by a paragraph break. */
  readonly paragraphStart: boolean;
}

function joinUnits(units: readonly Unit[]): string {
  let text = '';
  for (const [i, u] of units.entries()) text += i === 0 ? u.text : `${u.paragraphStart ? '\n\n' : ' '}${u.text}`;
  return text;
}

/** Plain text → chunks (see the module comment). */
export function chunkText(text: string, options: ChunkOptions = {}): DocumentChunk[] {
  const maxChars = Math.max(20, Math.floor(options.maxChars ?? DEFAULT_CHUNK_CHARS));
  const overlapChars = Math.max(0, Math.min(Math.floor(options.overlapChars ?? DEFAULT_OVERLAP_CHARS), Math.floor(maxChars / 2)));
  const units: Unit[] = [];
  for (const paragraph of paragraphs(text)) {
    let first = true;
    for (const sentence of sentences(paragraph)) {
      for (const piece of splitLong(sentence, maxChars)) {
        units.push({ text: piece, paragraphStart: first });
        first = false;
      }
    }
  }

  const chunks: DocumentChunk[] = [];
  let current: Unit[] = [];
  /** Units at the start of `current` carried over from the previous chunk. */
  let carried = 0;
  const emit = () => {
    chunks.push({ index: chunks.length, text: joinUnits(current) });
    // Overlap: the previous chunk's last whole sentences, within overlapChars.
    const tail: Unit[] = [];
    let size = 0;
    for (let i = current.length - 1; i >= 1; i--) {
      const u = current[i]!;
      if (size + u.text.length + (tail.length ? 1 : 0) > overlapChars) break;
      size += u.text.length + (tail.length ? 1 : 0);
      tail.unshift(u);
    }
    current = tail;
    carried = tail.length;
  };
  for (const unit of units) {
    let candidate = joinUnits([...current, unit]);
    if (candidate.length > maxChars && current.length > carried) {
      emit();
      candidate = joinUnits([...current, unit]);
    }
    // The carried overlap gives way (from its oldest sentence) to a unit that would not fit with it.
    while (candidate.length > maxChars && current.length > 0) {
      current.shift();
      carried = Math.max(0, carried - 1);
      candidate = joinUnits([...current, unit]);
    }
    current.push(unit);
  }
  if (current.length > carried) chunks.push({ index: chunks.length, text: joinUnits(current) });
  return chunks;
}
