import { describe, expect, it } from 'vitest';
import { chunkText, htmlToText, markdownToText, sentences, toPlainText } from '../../shared/knowledge/chunking';
import { prepareDocument } from '../../shared/knowledge/ingest';

const sentence = (i: number) => `Sentence number ${i} talks about topic ${i} in some detail.`;

describe('document conversion', () => {
  it('HTML: drops scripts, styles, comments and tags; blocks become paragraphs; entities decoded', () => {
    const html = `<!doctype html><html><head><title>T</title><style>p{color:red}</style></head>
      <body><script>var secret = "x";</script><!-- hidden -->
      <h1>Opening&nbsp;hours</h1><p>We open at <b>9&nbsp;am</b> &amp; close at 5&#160;pm.</p>
      <ul><li>Monday&ndash;Friday</li><li>Caf&eacute; &#x263A;</li></ul><p>Line<br>break</p></body></html>`;
    const text = htmlToText(html);
    expect(text).toBe('Opening hours\n\nWe open at 9 am & close at 5 pm.\n\nMonday–Friday\n\nCafé ☺\n\nLine\nbreak');
    expect(text).not.toMatch(/secret|color|hidden|<|>/);
  });

  it('Markdown: headings, emphasis, links, images, code, lists, quotes and tables reduced to their words', () => {
    const md = [
      '# Returns policy',
      '',
      'You can **return** items within _30 days_ — see [the form](https://x.example/form).',
      '',
      '![A receipt](receipt.png)',
      '',
      '- First item',
      '* [x] Second `item`',
      '1. Third',
      '',
      '> Quoted ~~old~~ text',
      '',
      '| Day | Hours |',
      '|-----|-------|',
      '| Mon | 9-5 |',
      '',
      '```js',
      'const refund = true;',
      '```',
      '---',
    ].join('\n');
    expect(markdownToText(md)).toBe(
      'Returns policy\n\nYou can return items within 30 days — see the form.\n\nA receipt\n\nFirst item\nSecond item\nThird\n\nQuoted old text\n\nDay, Hours\nMon, 9-5\n\nconst refund = true;',
    );
  });

  it('plain text keeps paragraphs and collapses spacing', () => {
    expect(toPlainText('  a\t b \r\n\r\n\r\n\r\nc  ', 'text')).toBe('a b\n\nc');
  });

  it('sentences split after terminal punctuation, quotes included', () => {
    expect(sentences('Hi there. "Really?" she said! Ok… fine')).toEqual(['Hi there.', '"Really?"', 'she said!', 'Ok…', 'fine']);
  });
});

describe('document conversion stays linear on hostile input', () => {
  const timed = (convert: () => string) => {
    const started = performance.now();
    const text = convert();
    return { text, ms: performance.now() - started };
  };

  it.each([
    ['400 KB of unclosed <svg', () => htmlToText('<svg '.repeat(80_000))],
    ['400 KB of unclosed <!--', () => htmlToText('<!-- '.repeat(80_000))],
    ['400 KB of unclosed <div', () => htmlToText('<div '.repeat(80_000))],
    ['200 KB of _a on one Markdown line', () => markdownToText('_a '.repeat(70_000))],
    ['200 KB of **a on one Markdown line', () => markdownToText('**a '.repeat(50_000))],
    ['a 200 KB whitespace run in a Markdown line', () => markdownToText(`a${' '.repeat(200_000)}b`)],
    ['a 200 KB whitespace run in a Markdown table row', () => markdownToText(`|--|--${'\t'.repeat(200_000)}x`)],
  ])('%s converts in well under a second', (_name, convert) => {
    expect(timed(convert).ms).toBeLessThan(2000);
  });

  it('an unclosed comment or raw block runs to the end of the input; closed ones end where they close', () => {
    expect(htmlToText('<p>kept</p><!-- never closed <p>gone</p>')).toBe('kept');
    expect(htmlToText('<p>kept</p><script>var x = "<p>gone</p>";')).toBe('kept');
    expect(htmlToText('a<SVG width="1"><text>x</text></svg >b<!-- c -->d')).toBe('a b d');
  });

  it('emphasis: the same pairs as before, unmatched markers left alone', () => {
    expect(markdownToText('**bold** and __strong__, *em* and _em_, ~~gone~~')).toBe('bold and strong, em and em, gone');
    expect(markdownToText('snake_case_name and 2 * 3 * 4 and a lone _ here')).toBe('snakecasename and 2 * 3 * 4 and a lone _ here');
    expect(markdownToText('_a _a _a b_')).toBe('a _a _a b');
  });
});

describe('chunking', () => {
  it('packs whole sentences up to the bound, with sentence overlap between consecutive chunks', () => {
    const text = Array.from({ length: 40 }, (_, i) => sentence(i)).join(' ');
    const chunks = chunkText(text, { maxChars: 300, overlapChars: 120 });
    expect(chunks.length).toBeGreaterThan(5);
    chunks.forEach((c, i) => {
      expect(c.index).toBe(i);
      expect(c.text.length).toBeLessThanOrEqual(300);
      // Whole sentences only.
      expect(c.text).toMatch(/^Sentence number \d+ .*detail\.$/);
    });
    for (let i = 1; i < chunks.length; i++) {
      const previous = sentences(chunks[i - 1]!.text);
      const current = sentences(chunks[i]!.text);
      // The chunk starts with the last sentence(s) of the previous one, within the overlap bound.
      const overlap = current.filter((s) => previous.includes(s));
      expect(overlap.length).toBeGreaterThan(0);
      expect(overlap.join(' ').length).toBeLessThanOrEqual(120);
      expect(current.slice(0, overlap.length)).toEqual(previous.slice(previous.length - overlap.length));
      // And always brings something new.
      expect(current.length).toBeGreaterThan(overlap.length);
    }
    // Nothing lost: every sentence is in some chunk.
    for (let i = 0; i < 40; i++) expect(chunks.some((c) => c.text.includes(sentence(i)))).toBe(true);
  });

  it('keeps paragraph breaks inside a chunk and starts no chunk with nothing new', () => {
    const chunks = chunkText('First para one. First para two.\n\nSecond para.', { maxChars: 200 });
    expect(chunks).toEqual([{ index: 0, text: 'First para one. First para two.\n\nSecond para.' }]);
  });

  it('cuts an over-long sentence between words and an over-long word inside it, never exceeding the bound', () => {
    const long = `${'word '.repeat(100)}${'x'.repeat(130)} end.`;
    const chunks = chunkText(long, { maxChars: 50, overlapChars: 0 });
    for (const c of chunks) expect(c.text.length).toBeLessThanOrEqual(50);
    expect(chunks.map((c) => c.text).join(' ').replace(/\s+/g, '')).toBe(long.replace(/\s+/g, ''));
  });

  it('no overlap when asked for none; empty text gives no chunks', () => {
    const chunks = chunkText(Array.from({ length: 10 }, (_, i) => sentence(i)).join(' '), { maxChars: 130, overlapChars: 0 });
    const all = chunks.flatMap((c) => sentences(c.text));
    expect(new Set(all).size).toBe(all.length);
    expect(chunkText('   \n\n ')).toEqual([]);
  });

  it('prepareDocument: converts by content type; without an id, one derived from the content', async () => {
    const a = await prepareDocument({ contentType: 'html', content: '<p>Hello <i>world</i>.</p>' });
    const b = await prepareDocument({ contentType: 'html', content: '<p>Hello <i>world</i>.</p>' });
    expect(a.document.id).toMatch(/^sha256-[0-9a-f]{32}$/);
    expect(b.document.id).toBe(a.document.id);
    expect(a.chunks).toEqual([{ index: 0, text: 'Hello world.' }]);
    const named = await prepareDocument({ id: 'faq.md', title: 'FAQ', contentType: 'markdown', content: '# Q\n\n**A**' });
    expect(named.document).toEqual({ id: 'faq.md', title: 'FAQ', contentType: 'markdown' });
    expect(named.chunks.map((c) => c.text)).toEqual(['Q\n\nA']);
  });
});
