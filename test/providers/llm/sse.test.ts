import { describe, expect, it } from 'vitest';
import { prng } from '../../fakes/prng';
import { createSseParser, parseSse, SseError, type SseEvent } from '../../../shared/providers/llm/sse';

function streamOf(pieces: Uint8Array[], onCancel?: () => void): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const piece = pieces[i++];
      if (piece) controller.enqueue(piece);
      else controller.close();
    },
    cancel() {
      onCancel?.();
    },
  });
}

/** Cut `bytes` at the given offsets. */
function cut(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const points = [...new Set(offsets)].filter((o) => o > 0 && o < bytes.length).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  return out;
}

async function collect(pieces: Uint8Array[]): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of parseSse(streamOf(pieces))) events.push(event);
  return events;
}

const encoder = new TextEncoder();

// Every feature at once: CRLF, LF and lone CR line ends, comments, multi-line data, event and id fields,
// a field without a colon, a value without the optional space, multi-byte characters (2, 3 and 4 bytes).
const SAMPLE =
  ': a comment line\r\n' +
  'event: message_start\r\n' +
  'id: 1\r\n' +
  'data: {"text":"Grüße — ça va? 👋"}\r\n' +
  '\r\n' +
  'data: line one\n' +
  'data:line two\n' +
  'retry: 3000\n' +
  '\n' +
  'event: ping\r' +
  'data: {}\r' +
  '\r' +
  'data\n' +
  '\n' +
  'data: [DONE]\n\n';

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"text":"Grüße — ça va? 👋"}', id: '1' },
  { event: 'message', data: 'line one\nline two', id: '1' },
  { event: 'ping', data: '{}', id: '1' },
  { event: 'message', data: '', id: '1' },
  { event: 'message', data: '[DONE]', id: '1' },
];

describe('SSE parser', () => {
  it('reads CRLF, LF and CR line ends, comments, multi-line data, event and id fields', async () => {
    expect(await collect([encoder.encode(SAMPLE)])).toEqual(EXPECTED);
  });

  it('gives the same events however the bytes are split: at every single offset', async () => {
    const bytes = encoder.encode(SAMPLE);
    for (let offset = 1; offset < bytes.length; offset++) {
      expect(await collect(cut(bytes, [offset])), `split at byte ${offset}`).toEqual(EXPECTED);
    }
  });

  it('gives the same events for random splits into many pieces (mid-UTF-8, between CR and LF)', async () => {
    const bytes = encoder.encode(SAMPLE.repeat(3));
    const expected = [...EXPECTED, ...EXPECTED, ...EXPECTED];
    for (let seed = 1; seed <= 300; seed++) {
      const random = prng(seed);
      const count = 1 + Math.floor(random() * 40);
      const offsets = Array.from({ length: count }, () => Math.floor(random() * bytes.length));
      expect(await collect(cut(bytes, offsets)), `seed ${seed}`).toEqual(expected);
    }
  });

  it('splits one byte at a time', async () => {
    const bytes = encoder.encode(SAMPLE);
    expect(await collect(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(EXPECTED);
  });

  it('dispatches a last event that has no blank line after it, and drops an event without data', async () => {
    expect(await collect([encoder.encode('data: {"a":1}\r\n')])).toEqual([{ event: 'message', data: '{"a":1}', id: '' }]);
    expect(await collect([encoder.encode('data: tail')])).toEqual([{ event: 'message', data: 'tail', id: '' }]);
    expect(await collect([encoder.encode('event: lonely\n\n: only a comment\n\n')])).toEqual([]);
  });

  it('bounds one event: a huge data line or many data lines fail with SseError instead of growing', async () => {
    const parser = createSseParser(1000);
    expect(() => parser.push('data: ' + 'x'.repeat(2000))).toThrow(SseError);
    const many = createSseParser(1000);
    expect(() => {
      for (let i = 0; i < 200; i++) many.push('data: 0123456789\n');
    }).toThrow(SseError);
    // Many small events in a row are fine: the bound is per event.
    const fine = createSseParser(1000);
    let count = 0;
    for (let i = 0; i < 500; i++) count += fine.push('data: 0123456789\n\n').length;
    expect(count).toBe(500);
  });

  it('cancels the byte stream when the consumer stops early', async () => {
    let cancelled = false;
    const pieces = [encoder.encode('data: 1\n\n'), encoder.encode('data: 2\n\n'), encoder.encode('data: 3\n\n')];
    for await (const event of parseSse(streamOf(pieces, () => (cancelled = true)))) {
      expect(event.data).toBe('1');
      break;
    }
    expect(cancelled).toBe(true);
  });
});
