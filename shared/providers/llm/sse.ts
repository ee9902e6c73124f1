/**
 * Server-sent events (the WHATWG `text/event-stream` format) over a byte stream: what every LLM adapter
 * reads. One parser for all vendors: events may be split across reads anywhere (mid-line, mid-UTF-8
 * sequence, between CR and LF); lines end in LF, CRLF or a lone CR; lines starting with `:` are comments;
 * several `data:` lines join with `\n`; `event:` and `id:` are kept; `retry:` and unknown fields are
 * ignored. An event is dispatched at a blank line, and also at the end of the stream when it holds data
 * (lenient: a server that closes right after its last `data:` line loses nothing).
 */

export interface SseEvent {
  /** `event:` field; `message` when absent. */
  readonly event: string;
  /** The `data:` lines joined with `\n`. */
  readonly data: string;
  /** The last `id:` seen (the spec's last-event-id), '' when none. */
  readonly id: string;
}

export class SseError extends Error {
  override readonly name = 'SseError';
}

/** Default bound on one event (its data plus the line being read): 1 MiB. */
export const DEFAULT_MAX_EVENT_CHARS = 1 << 20;

export interface SseParser {
  /** Feed decoded text; returns the events it completed. Throws SseError when an event grows past the bound. */
  push(text: string): SseEvent[];
  /** The input ended: a pending event with data is dispatched. */
  end(): SseEvent[];
}

/** An incremental parser over text (the caller decodes bytes; see `parseSse` for streams). */
export function createSseParser(maxEventChars = DEFAULT_MAX_EVENT_CHARS): SseParser {
  let line = '';
  let skipLf = false;
  let data: string[] = [];
  let dataChars = 0;
  let eventType = '';
  let lastId = '';

  const dispatch = (out: SseEvent[]): void => {
    if (data.length > 0) out.push({ event: eventType || 'message', data: data.join('\n'), id: lastId });
    data = [];
    dataChars = 0;
    eventType = '';
  };

  const processLine = (text: string, out: SseEvent[]): void => {
    if (text === '') return dispatch(out);
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        data.push(value);
        dataChars += value.length + 1;
        if (dataChars > maxEventChars) throw new SseError(`an event exceeded ${maxEventChars} characters`);
        break;
      case 'event':
        eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) lastId = value;
        break;
      default:
        // `retry:` (reconnection time: we never reconnect a completion) and unknown fields are ignored.
        break;
    }
  };

  return {
    push(text) {
      const out: SseEvent[] = [];
      let start = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 10 /* \n */) {
          if (skipLf && i === start && line === '') {
            // The LF of a CRLF whose CR ended the previous read (or line).
            skipLf = false;
            start = i + 1;
            continue;
          }
          skipLf = false;
          processLine(line + text.slice(start, i), out);
          line = '';
          start = i + 1;
        } else if (c === 13 /* \r */) {
          processLine(line + text.slice(start, i), out);
          line = '';
          start = i + 1;
          skipLf = true;
        } else if (skipLf) {
          skipLf = false;
        }
      }
      if (start < text.length) {
        line += text.slice(start);
        skipLf = false;
      }
      if (line.length + dataChars > maxEventChars) throw new SseError(`an event exceeded ${maxEventChars} characters`);
      return out;
    },
    end() {
      const out: SseEvent[] = [];
      if (line !== '') processLine(line, out);
      line = '';
      dispatch(out);
      return out;
    },
  };
}

/**
 * The events of a byte stream. Breaking out of the loop (or an exception in it) cancels the stream, so the
 * connection closes at once; an aborted fetch makes the pending read reject with its AbortError.
 */
export async function* parseSse(body: ReadableStream<Uint8Array>, maxEventChars = DEFAULT_MAX_EVENT_CHARS): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const parser = createSseParser(maxEventChars);
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) yield event;
    }
    finished = true;
    for (const event of parser.push(decoder.decode())) yield event;
    for (const event of parser.end()) yield event;
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
