import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { alawEncode, mulawEncode } from '../../../shared/audio/g711';
import type { FakeProviderServer } from '../conformance/fake-server';
import { normaliseWord, synthesizeWords } from '../../fakes/tones';
import { startFakeWsHost, type Refusal } from './fake-ws-host';

/**
 * A local ElevenLabs multi-context TTS socket (`/v1/text-to-speech/{voice_id}/multi-stream-input`), written
 * from reference/providers.md §2.2 and the published AsyncAPI of that endpoint, never from the adapter.
 *
 * - Handshake: `xi-api-key` header; a wrong one → HTTP 401 (or, with `authFailure: 'frame'`, an accepted
 *   socket, the error frame and close 1008). Without the header the socket is accepted and the key must
 *   come in a context's first message (`xi_api_key`, or `authorization: Bearer …`), else an error frame and
 *   close 1008. `output_format` must be `pcm_<rate>`, `ulaw_8000` or `alaw_8000` (mp3/opus: 400,
 *   the fake cannot make them).
 * - A context's first message must be `{"text":" "}` (else `invalid_input_message` + close 1008);
 *   `voice_settings` later is refused the same way; at most 5 live contexts (`max_active_conversations`).
 * - Text buffers until `flush:true` or until the chunk schedule's threshold (default 120/160/250/290 chars);
 *   audio then goes out as `{"audio", "alignment", "normalizedAlignment", "contextId"}` messages of 100 ms of
 *   tones each (so words straddle chunks), alignment times relative to each chunk.
 * - `{"text":""}` only resets the inactivity timer. `close_context` drops unflushed text, lets flushed audio
 *   finish, then sends `{"isFinal":true,"contextId"}`. `close_socket` does that for every context and closes 1000.
 * - No client message for `idleCloseMs` (default: `inactivity_timeout` query seconds, else 20 s) →
 *   `{"message","error":"input_timeout_exceeded","code":1008}` and close 1008.
 */

export interface ElevenLabsFakeOptions {
  /**
   * How a wrong `xi-api-key` header is answered: HTTP 401 at the upgrade (default), or, as the reference
   * describes ElevenLabs (§0), an accepted socket that then sends the error frame and closes 1008.
   */
  readonly authFailure?: 'handshake' | 'frame';
  /** Inactivity close; overrides the `inactivity_timeout` the client asked for. */
  readonly idleCloseMs?: number;
  /** Delay between two audio messages of a context (default 5 ms: ~20× real time). */
  readonly chunkDelayMs?: number;
}

export interface ElevenLabsFakeServer extends FakeProviderServer {
  readonly control: FakeProviderServer['control'] & {
    errorAfterAccept(kind: 'auth' | 'bad-request' | 'rate-limit' | 'internal'): void;
    sendRaw(data: string | Uint8Array): void;
  };
}

const API_KEY = 'elevenlabs-test-key';
const CHUNK_MS = 100;
const MAX_CONTEXTS = 5;
const DEFAULT_SCHEDULE = [120, 160, 250, 290];
const PATH = /^\/v1\/text-to-speech\/([^/]+)\/multi-stream-input$/;
const FORMATS: Record<string, { encoding: 'pcm16' | 'mulaw' | 'alaw'; rate: number }> = {
  ...Object.fromEntries([8000, 16000, 22050, 24000, 32000, 44100, 48000].map((rate) => [`pcm_${rate}`, { encoding: 'pcm16' as const, rate }])),
  ulaw_8000: { encoding: 'mulaw', rate: 8000 },
  alaw_8000: { encoding: 'alaw', rate: 8000 },
};

const ERRORS = {
  auth: { frame: { message: 'Invalid API key', error: 'invalid_api_key', code: 1008 }, close: 1008 },
  'bad-request': { frame: { message: 'Invalid model for this voice', error: 'invalid_request', code: 1008 }, close: 1008 },
  'rate-limit': {
    frame: { message: 'Maximum simultaneous contexts per WebSocket connection exceeded (5).', error: 'max_active_conversations', code: 1008 },
    close: 1008,
  },
  internal: { frame: { message: 'We are sorry, something went wrong. You are not charged for this request.', error: 'internal_error', code: 1011 }, close: 1011 },
} as const;

function detail(status: number, code: string, message: string): Refusal {
  return { status, body: JSON.stringify({ detail: { status: code, message } }) };
}

export async function startElevenLabsFake(options: ElevenLabsFakeOptions = {}): Promise<ElevenLabsFakeServer> {
  let errorNext: keyof typeof ERRORS | undefined;
  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ detail: { status: 'refused_by_test', message: `refused by the test (${status})` } }),
    checkUpgrade(request: IncomingMessage, url: URL) {
      if (!PATH.test(url.pathname)) return detail(404, 'not_found', `no endpoint ${url.pathname}`);
      const key = request.headers['xi-api-key'];
      if (typeof key === 'string' && key !== API_KEY && options.authFailure !== 'frame') return detail(401, 'invalid_api_key', 'Invalid API key');
      const format = url.searchParams.get('output_format') ?? 'mp3_44100_128';
      if (!FORMATS[format]) return detail(400, 'invalid_output_format', `the fake cannot produce ${format} (pcm_*, ulaw_8000, alaw_8000 only)`);
      const timeout = url.searchParams.get('inactivity_timeout');
      if (timeout !== null && !(Number.isInteger(Number(timeout)) && Number(timeout) > 0 && Number(timeout) <= 180)) {
        return detail(400, 'invalid_inactivity_timeout', 'inactivity_timeout must be 1..180 seconds');
      }
      return undefined;
    },
    onConnection(ws, record, url) {
      const header = record.headers['xi-api-key'];
      if (errorNext || (header !== undefined && header !== API_KEY)) {
        const { frame, close } = ERRORS[errorNext ?? 'auth'];
        errorNext = undefined;
        ws.send(JSON.stringify(frame));
        ws.close(close, frame.error);
        return;
      }
      const timeoutS = Number(url.searchParams.get('inactivity_timeout') ?? 20);
      session(ws, {
        keyed: record.headers['xi-api-key'] === API_KEY,
        format: FORMATS[url.searchParams.get('output_format') ?? '']!,
        idleCloseMs: options.idleCloseMs ?? timeoutS * 1000,
        chunkDelayMs: options.chunkDelayMs ?? 5,
      });
    },
  });
  return {
    endpoint: host.endpoint,
    apiKey: API_KEY,
    connections: host.connections,
    control: {
      refuseNext: host.refuseNext,
      drop: host.drop,
      errorAfterAccept(kind) {
        errorNext = kind;
      },
      sendRaw(data) {
        for (const ws of host.openSockets()) ws.send(data);
      },
    },
    close: host.close,
  };
}

interface Context {
  readonly id: string;
  readonly schedule: readonly number[];
  stage: number;
  buffer: string;
  closing: boolean;
  readonly queue: string[];
  pump: NodeJS.Timeout | undefined;
}

interface SessionOptions {
  readonly keyed: boolean;
  readonly format: { encoding: 'pcm16' | 'mulaw' | 'alaw'; rate: number };
  readonly idleCloseMs: number;
  readonly chunkDelayMs: number;
}

/** Each character of `text` with its start and duration (ms) on the tone timeline of its words. */
export function charTimeline(text: string, spans: readonly { startMs: number; endMs: number }[], totalMs: number) {
  const chars: { ch: string; startMs: number; durationMs: number }[] = [];
  let word = 0;
  let cursor = 0;
  for (const token of text.match(/\S+|\s+/g) ?? []) {
    if (/^\s/.test(token)) {
      const until = spans[word]?.startMs ?? totalMs;
      [...token].forEach((ch, i) => chars.push({ ch, startMs: cursor, durationMs: i === 0 ? Math.max(0, until - cursor) : 0 }));
      cursor = until;
      continue;
    }
    const span = normaliseWord(token) ? spans[word++] : undefined;
    if (!span) {
      [...token].forEach((ch) => chars.push({ ch, startMs: cursor, durationMs: 0 }));
      continue;
    }
    const letters = [...token];
    const each = (span.endMs - span.startMs) / letters.length;
    letters.forEach((ch, i) => chars.push({ ch, startMs: span.startMs + i * each, durationMs: each }));
    cursor = span.endMs;
  }
  return chars;
}

function session(ws: WebSocket, options: SessionOptions): void {
  const contexts = new Map<string, Context>();
  let closingSocket = false;
  let closed = false;
  let idle: NodeJS.Timeout | undefined;

  function fatal(error: string, message: string): void {
    if (closed) return;
    ws.send(JSON.stringify({ message, error, code: 1008 }));
    closed = true;
    ws.close(1008, error);
  }

  function sendQueued(ctx: Context, message: object): void {
    ctx.queue.push(JSON.stringify(message));
    if (!ctx.pump) pump(ctx);
  }

  function pump(ctx: Context): void {
    ctx.pump = setTimeout(() => {
      ctx.pump = undefined;
      if (closed) return;
      const next = ctx.queue.shift();
      if (next !== undefined && ws.readyState === ws.OPEN) ws.send(next);
      if (ctx.queue.length) pump(ctx);
      else if (ctx.closing) finishContext(ctx);
    }, options.chunkDelayMs);
  }

  function finishContext(ctx: Context): void {
    contexts.delete(ctx.id);
    if (ws.readyState === ws.OPEN && !closed) ws.send(JSON.stringify({ isFinal: true, contextId: ctx.id }));
    if (closingSocket && contexts.size === 0 && !closed) {
      closed = true;
      ws.close(1000, 'close_socket');
    }
  }

  function encode(pcm: Int16Array): Uint8Array {
    if (options.format.encoding === 'pcm16') return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
    const out = new Uint8Array(pcm.length);
    if (options.format.encoding === 'mulaw') mulawEncode(pcm, out);
    else alawEncode(pcm, out);
    return out;
  }

  /** Voice `text`: 100 ms audio messages, each with the characters that start inside it. */
  function generate(ctx: Context, text: string): void {
    const words = text.split(/\s+/).map(normaliseWord).filter(Boolean);
    if (!words.length) return;
    const { rate } = options.format;
    const { pcm, spans } = synthesizeWords(words, rate);
    const totalMs = (pcm.length / rate) * 1000;
    const chars = charTimeline(text, spans, totalMs);
    const samplesPerChunk = (rate * CHUNK_MS) / 1000;
    for (let at = 0; at < pcm.length; at += samplesPerChunk) {
      const t0 = (at / rate) * 1000;
      const t1 = ((at + samplesPerChunk) / rate) * 1000;
      const inChunk = chars.filter((c) => c.startMs >= t0 && (c.startMs < t1 || (at + samplesPerChunk >= pcm.length && c.startMs <= totalMs)));
      const alignment = inChunk.length
        ? {
            chars: inChunk.map((c) => c.ch),
            charStartTimesMs: inChunk.map((c) => Math.round(c.startMs - t0)),
            charDurationsMs: inChunk.map((c) => Math.round(c.durationMs)),
          }
        : null;
      sendQueued(ctx, {
        audio: Buffer.from(encode(pcm.subarray(at, Math.min(pcm.length, at + samplesPerChunk)))).toString('base64'),
        isFinal: null,
        normalizedAlignment: alignment,
        alignment,
        contextId: ctx.id,
      });
    }
  }

  function closeContext(ctx: Context): void {
    ctx.buffer = ''; // Unflushed text is dropped; flushed audio still goes out.
    ctx.closing = true;
    if (!ctx.queue.length && !ctx.pump) finishContext(ctx);
  }

  function onMessage(json: Record<string, unknown>): void {
    if (json.close_socket === true) {
      closingSocket = true;
      if (contexts.size === 0) {
        closed = true;
        ws.close(1000, 'close_socket');
        return;
      }
      for (const ctx of [...contexts.values()]) closeContext(ctx);
      return;
    }
    const id = typeof json.context_id === 'string' ? json.context_id : 'default';
    const ctx = contexts.get(id);
    if (json.close_context === true) {
      if (ctx && !ctx.closing) closeContext(ctx);
      return;
    }
    const text = json.text;
    if (text !== undefined && typeof text !== 'string') return fatal('invalid_input_message', 'text must be a string');
    if (!ctx) {
      if (text !== ' ') return fatal('invalid_input_message', `the first message of context "${id}" must be {"text":" "}`);
      if (!options.keyed) {
        const key = typeof json.xi_api_key === 'string' ? json.xi_api_key : typeof json.authorization === 'string' ? json.authorization.replace(/^Bearer /, '') : undefined;
        if (key !== API_KEY) return fatal('invalid_api_key', 'Invalid API key');
      }
      if (contexts.size >= MAX_CONTEXTS) {
        return fatal('max_active_conversations', `Maximum simultaneous contexts per WebSocket connection exceeded (${MAX_CONTEXTS}). Please close an existing context before opening a new one.`);
      }
      const config = json.generation_config as { chunk_length_schedule?: unknown } | undefined;
      const schedule = Array.isArray(config?.chunk_length_schedule) ? (config.chunk_length_schedule as number[]) : DEFAULT_SCHEDULE;
      contexts.set(id, { id, schedule, stage: 0, buffer: '', closing: false, queue: [], pump: undefined });
      return;
    }
    if (json.voice_settings !== undefined) return fatal('invalid_input_message', 'voices can only be set in the first message of a context');
    if (ctx.closing) return; // A closed context takes no more text.
    if (text === undefined && json.flush !== true) return fatal('invalid_input_message', 'a message needs text, flush, close_context or close_socket');
    ctx.buffer += text ?? '';
    if (json.flush === true) {
      generate(ctx, ctx.buffer);
      ctx.buffer = '';
      return;
    }
    const threshold = ctx.schedule[Math.min(ctx.stage, ctx.schedule.length - 1)]!;
    const cut = ctx.buffer.search(/\s\S*$/);
    if (ctx.buffer.length >= threshold && cut >= 0) {
      generate(ctx, ctx.buffer.slice(0, cut + 1));
      ctx.buffer = ctx.buffer.slice(cut + 1);
      ctx.stage++;
    }
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (closed) return;
      const seconds = (options.idleCloseMs / 1000).toFixed(1);
      ws.send(JSON.stringify({ message: `Have not received a new text input within the timeout of ${seconds} seconds. Closing the connection.`, error: 'input_timeout_exceeded', code: 1008 }));
      closed = true;
      ws.close(1008, 'input_timeout_exceeded');
    }, options.idleCloseMs);
  }

  armIdle();
  ws.on('message', (data, isBinary) => {
    if (closed) return;
    armIdle();
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8');
    if (isBinary) return fatal('invalid_input_message', 'binary frames are not accepted');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fatal('invalid_input_message', 'the message is not valid JSON');
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) return fatal('invalid_input_message', 'the message must be a JSON object');
    onMessage(json as Record<string, unknown>);
  });
  ws.on('close', () => {
    closed = true;
    clearTimeout(idle);
    for (const ctx of contexts.values()) clearTimeout(ctx.pump);
  });
}
