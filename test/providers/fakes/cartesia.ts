import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { alawEncode, mulawEncode } from '../../../shared/audio/g711';
import type { FakeProviderServer } from '../conformance/fake-server';
import { normaliseWord, synthesizeWords } from '../../fakes/tones';
import { createEars, type HeardWord } from './tone-ears';
import { startFakeWsHost, type Refusal } from './fake-ws-host';

/**
 * A local Cartesia, written from reference/providers.md §1.6 (Ink STT, `/stt/websocket`) and §2.3 (Sonic
 * TTS, `/tts/websocket`), never from the adapter. One server answers both paths.
 *
 * Handshake: the key as `X-API-Key`, `Authorization: Bearer`, or `api_key`/`access_token` query (else 401);
 * an API version as `Cartesia-Version` or `cartesia_version` query (else 400).
 *
 * STT: binary PCM (pcm_s16le at the `sample_rate` asked) is heard through the tone alphabet; an interim
 * `transcript` (is_final:false) after each word, a final after 300 ms of silence counted in audio time (so
 * audio fed faster than real time works); texts are deltas since the last final (later segments start with a
 * space, so verbatim concatenation reads right); `finalize` → final + `flush_done`; `done` or `close` →
 * final + `done` + close 1000; no audio for `idleCloseMs` (20 s) → close 1000 "idle timeout".
 *
 * TTS: contexts on one socket; requests of a context must repeat the same fields; text buffers until a
 * `flush` (→ audio, then `flush_done` with the incremented `flush_id`), `continue:false` (→ audio, then
 * `done`) or, with `max_buffer_delay_ms` 0, at once for the complete words; audio is tones in the requested
 * raw encoding/rate, base64 `chunk`s of 100 ms paced `chunkDelayMs` apart, plus `timestamps` (seconds from
 * the context's first audio); `{context_id, cancel:true}` stops that context's audio at once; idle socket →
 * close after `idleCloseMs` (5 min).
 */

export interface CartesiaFakeOptions {
  /** STT: close after this long without audio (default 20 s). TTS: close an idle socket (default 5 min). */
  readonly idleCloseMs?: number;
  /** TTS: delay between two outgoing messages of a context (default 5 ms: ~20× real time). */
  readonly chunkDelayMs?: number;
}

export interface CartesiaFakeServer extends FakeProviderServer {
  readonly control: FakeProviderServer['control'] & {
    dropAfterWords(words: number): void;
    errorAfterAccept(kind: 'auth' | 'bad-request' | 'rate-limit' | 'internal'): void;
    /** Send this raw frame on every open socket (malformed-frame tests). */
    sendRaw(data: string | Uint8Array): void;
  };
}

const API_KEY = 'cartesia-test-key';
const CHUNK_MS = 100;
const FINAL_SILENCE_MS = 300;
const ERROR_STATUS = { auth: 401, 'bad-request': 400, 'rate-limit': 429, internal: 500 } as const;

function keyOf(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice('Bearer '.length);
  return url.searchParams.get('api_key') ?? url.searchParams.get('access_token') ?? undefined;
}

function refusal(status: number, title: string, message: string): Refusal {
  return { status, body: JSON.stringify({ title, message, status_code: status, error_code: title.toLowerCase().replace(/\W+/g, '_') }) };
}

export async function startCartesiaFake(options: CartesiaFakeOptions = {}): Promise<CartesiaFakeServer> {
  let dropAfter: number | undefined;
  let errorNext: keyof typeof ERROR_STATUS | undefined;
  const chunkDelayMs = options.chunkDelayMs ?? 5;

  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ title: 'Refused', message: `refused by the test (${status})`, status_code: status }),
    checkUpgrade(request, url) {
      if (url.pathname !== '/stt/websocket' && url.pathname !== '/tts/websocket') return refusal(404, 'Not Found', `no endpoint ${url.pathname}`);
      const key = keyOf(request, url);
      if (key !== API_KEY) return refusal(401, 'Unauthorized', key ? 'Invalid API key' : 'Missing API key');
      if (!request.headers['cartesia-version'] && !url.searchParams.get('cartesia_version')) {
        return refusal(400, 'Bad Request', 'Missing Cartesia-Version header');
      }
      if (url.pathname === '/stt/websocket') {
        if (!url.searchParams.get('model')) return refusal(400, 'Bad Request', 'model is required');
        // The fake hears only 16-bit PCM; a real server takes more encodings.
        if (url.searchParams.get('encoding') !== 'pcm_s16le') return refusal(400, 'Bad Request', 'the fake supports encoding=pcm_s16le only');
        const rate = Number(url.searchParams.get('sample_rate'));
        if (!Number.isInteger(rate) || rate < 8000 || rate % 50 !== 0) return refusal(400, 'Bad Request', 'sample_rate is required');
      }
      return undefined;
    },
    onConnection(ws, _record, url) {
      if (errorNext) {
        const status = ERROR_STATUS[errorNext];
        errorNext = undefined;
        ws.send(JSON.stringify({ type: 'error', request_id: randomUUID(), status_code: status, done: true, title: 'Error', message: `error ${status} from the test`, error_code: `test_${status}` }));
        ws.close(status >= 500 ? 1011 : status === 429 ? 1013 : 1008, `error ${status}`);
        return;
      }
      if (url.pathname === '/stt/websocket') {
        sttSession(ws, url, options.idleCloseMs ?? 20_000, () => {
          if (dropAfter === undefined) return false;
          dropAfter--;
          if (dropAfter > 0) return false;
          dropAfter = undefined;
          return true;
        });
      } else {
        ttsSession(ws, options.idleCloseMs ?? 300_000, chunkDelayMs);
      }
    },
  });

  return {
    endpoint: host.endpoint,
    apiKey: API_KEY,
    connections: host.connections,
    control: {
      refuseNext: host.refuseNext,
      drop: host.drop,
      dropAfterWords(words) {
        dropAfter = words;
      },
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

// ---- STT --------------------------------------------------------------------------------------------------------

function sttSession(ws: WebSocket, url: URL, idleCloseMs: number, shouldDrop: () => boolean): void {
  const requestId = randomUUID();
  const rate = Number(url.searchParams.get('sample_rate'));
  const language = url.searchParams.get('language') ?? 'en';
  let segments = 0;
  let pending: HeardWord[] = [];
  // Stream time of the last sound: a final follows FINAL_SILENCE_MS of audio after it.
  let lastSoundSec = 0;
  let ended = false;
  let idle: NodeJS.Timeout | undefined;

  const send = (message: object) => {
    if (!ended && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const segmentText = () => (segments > 0 ? ' ' : '') + pending.map((w) => w.word).join(' ');
  const transcript = (isFinal: boolean) => ({
    type: 'transcript',
    request_id: requestId,
    text: segmentText(),
    is_final: isFinal,
    duration: pending.length ? pending.at(-1)!.end - pending[0]!.start : 0,
    language,
    words: pending.map((w) => ({ word: w.word, start: w.start, end: w.end })),
  });

  const ears = createEars(
    {
      onToneStart() {},
      onWord(word) {
        pending.push(word);
        lastSoundSec = word.end;
        if (shouldDrop()) {
          ended = true;
          ears.stop();
          ws.terminate(); // Mid-utterance, no close frame: the client sees 1006.
          return;
        }
        send(transcript(false));
      },
      afterFrame(nowSec) {
        if (ears.inWord) lastSoundSec = nowSec;
        else if (pending.length && nowSec - lastSoundSec >= FINAL_SILENCE_MS / 1000 - 1e-9) final();
      },
    },
    rate,
  );

  function final(): void {
    if (!pending.length) return;
    send(transcript(true));
    pending = [];
    segments++;
  }

  function flush(): void {
    ears.flush();
    final();
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (ended) return;
      ended = true;
      ws.close(1000, 'idle timeout: no audio received');
    }, idleCloseMs);
  }

  armIdle();
  ws.on('message', (data, isBinary) => {
    if (ended) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      armIdle();
      ears.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return;
    }
    const command = bytes.toString('utf8');
    if (command === 'finalize') {
      flush();
      send({ type: 'flush_done', request_id: requestId });
    } else if (command === 'done' || command === 'close') {
      flush();
      send({ type: 'done', request_id: requestId });
      ended = true;
      clearTimeout(idle);
      ws.close(1000, 'done');
    } else {
      send({ type: 'error', request_id: requestId, status_code: 400, title: 'Invalid command', message: `unknown text command "${command.slice(0, 40)}"`, error_code: 'invalid_command' });
    }
  });
  ws.on('close', () => {
    ended = true;
    clearTimeout(idle);
  });
}

// ---- TTS --------------------------------------------------------------------------------------------------------

const generationRequest = z.object({
  model_id: z.string().min(1),
  transcript: z.string(),
  voice: z.object({ mode: z.literal('id'), id: z.string().min(1) }),
  language: z.string().optional(),
  context_id: z.string().min(1).optional(),
  output_format: z.object({
    container: z.literal('raw'),
    encoding: z.enum(['pcm_s16le', 'pcm_f32le', 'pcm_mulaw', 'pcm_alaw']),
    sample_rate: z.union([z.literal(8000), z.literal(16000), z.literal(22050), z.literal(24000), z.literal(44100), z.literal(48000)]),
  }),
  continue: z.boolean().optional(),
  flush: z.boolean().optional(),
  max_buffer_delay_ms: z.number().min(0).max(5000).optional(),
  add_timestamps: z.boolean().optional(),
});
type GenerationRequest = z.infer<typeof generationRequest>;

interface TtsContext {
  readonly id: string;
  /** The fields every later request must repeat. */
  readonly fixed: string;
  readonly request: GenerationRequest;
  buffer: string;
  flushId: number;
  offsetMs: number;
  ended: boolean;
  readonly queue: string[];
  pump: NodeJS.Timeout | undefined;
  bufferTimer: NodeJS.Timeout | undefined;
}

function fixedFields(r: GenerationRequest): string {
  return JSON.stringify([r.model_id, r.voice, r.language ?? null, r.output_format, r.add_timestamps ?? false, r.max_buffer_delay_ms ?? null]);
}

function encode(pcm: Int16Array, encoding: GenerationRequest['output_format']['encoding']): Uint8Array {
  switch (encoding) {
    case 'pcm_s16le':
      return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
    case 'pcm_f32le': {
      const out = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
      return new Uint8Array(out.buffer);
    }
    case 'pcm_mulaw': {
      const out = new Uint8Array(pcm.length);
      mulawEncode(pcm, out);
      return out;
    }
    case 'pcm_alaw': {
      const out = new Uint8Array(pcm.length);
      alawEncode(pcm, out);
      return out;
    }
  }
}

function ttsSession(ws: WebSocket, idleCloseMs: number, chunkDelayMs: number): void {
  const contexts = new Map<string, TtsContext>();
  let idle: NodeJS.Timeout | undefined;
  let closed = false;

  const sendNow = (message: object) => {
    if (!closed && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const fail = (contextId: string | undefined, message: string) =>
    sendNow({ type: 'error', context_id: contextId, status_code: 400, done: true, title: 'Invalid request', message, error_code: 'invalid_request', request_id: randomUUID() });

  function enqueue(ctx: TtsContext, message: object): void {
    ctx.queue.push(JSON.stringify(message));
    if (!ctx.pump) pump(ctx);
  }

  function pump(ctx: TtsContext): void {
    ctx.pump = setTimeout(() => {
      ctx.pump = undefined;
      const next = ctx.queue.shift();
      if (next === undefined || closed) return;
      if (ws.readyState === ws.OPEN) ws.send(next);
      if (ctx.queue.length) pump(ctx);
      else if (ctx.ended) contexts.delete(ctx.id);
    }, chunkDelayMs);
  }

  /** Speak `text` into the context's queue: 100 ms chunks, then the word timestamps. */
  function generate(ctx: TtsContext, text: string, flushId: number): void {
    const tokens = text.split(/\s+/).filter((t) => normaliseWord(t));
    if (!tokens.length) return;
    const { sample_rate: rate, encoding } = ctx.request.output_format;
    const { pcm, spans } = synthesizeWords(tokens.map(normaliseWord), rate);
    const samplesPerChunk = (rate * CHUNK_MS) / 1000;
    for (let at = 0; at < pcm.length; at += samplesPerChunk) {
      const data = encode(pcm.subarray(at, Math.min(pcm.length, at + samplesPerChunk)), encoding);
      enqueue(ctx, { type: 'chunk', context_id: ctx.id, status_code: 206, done: false, data: Buffer.from(data).toString('base64'), step_time: 2, flush_id: flushId });
    }
    if (ctx.request.add_timestamps) {
      enqueue(ctx, {
        type: 'timestamps',
        context_id: ctx.id,
        status_code: 206,
        done: false,
        word_timestamps: {
          words: tokens,
          start: spans.map((s) => (ctx.offsetMs + s.startMs) / 1000),
          end: spans.map((s) => (ctx.offsetMs + s.endMs) / 1000),
        },
      });
    }
    ctx.offsetMs += (pcm.length / rate) * 1000;
  }

  /** Generate the complete words of the buffer (up to its last whitespace), keep the rest. */
  function generateCompleteWords(ctx: TtsContext): void {
    const cut = ctx.buffer.search(/\s\S*$/);
    if (cut < 0) return;
    generate(ctx, ctx.buffer.slice(0, cut + 1), ctx.flushId + 1);
    ctx.buffer = ctx.buffer.slice(cut + 1);
  }

  function cancel(id: string): void {
    const ctx = contexts.get(id);
    if (!ctx) return;
    clearTimeout(ctx.pump);
    clearTimeout(ctx.bufferTimer);
    ctx.queue.length = 0;
    contexts.delete(id);
  }

  function onRequest(json: unknown): void {
    if (json && typeof json === 'object' && (json as { cancel?: unknown }).cancel === true) {
      const id = (json as { context_id?: unknown }).context_id;
      if (typeof id === 'string') cancel(id);
      else fail(undefined, 'cancel needs a context_id');
      return;
    }
    const parsed = generationRequest.safeParse(json);
    const contextId = json && typeof json === 'object' ? (json as { context_id?: unknown }).context_id : undefined;
    if (!parsed.success) return fail(typeof contextId === 'string' ? contextId : undefined, `invalid generation request: ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`);
    const request = parsed.data;
    const id = request.context_id ?? randomUUID();
    let ctx = contexts.get(id);
    if (ctx && ctx.fixed !== fixedFields(request)) return fail(id, 'every request of a context must repeat the same model_id, voice, language and output_format');
    if (ctx?.ended) return fail(id, 'this context has already ended (continue:false)');
    if (!ctx) {
      ctx = { id, fixed: fixedFields(request), request, buffer: '', flushId: 0, offsetMs: 0, ended: false, queue: [], pump: undefined, bufferTimer: undefined };
      contexts.set(id, ctx);
    }
    const c = ctx;
    c.buffer += request.transcript;
    clearTimeout(c.bufferTimer);
    if (request.flush) {
      c.flushId++;
      generate(c, c.buffer, c.flushId);
      c.buffer = '';
      enqueue(c, { type: 'flush_done', context_id: id, status_code: 206, done: false, flush_done: true, flush_id: c.flushId });
    } else if (request.continue !== true) {
      generate(c, c.buffer, c.flushId + 1);
      c.buffer = '';
      c.ended = true;
      enqueue(c, { type: 'done', context_id: id, status_code: 206, done: true });
    } else if ((request.max_buffer_delay_ms ?? 3000) === 0) {
      generateCompleteWords(c);
    } else {
      c.bufferTimer = setTimeout(() => generateCompleteWords(c), request.max_buffer_delay_ms ?? 3000);
    }
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => ws.close(1000, 'idle timeout'), idleCloseMs);
  }

  armIdle();
  ws.on('message', (data, isBinary) => {
    armIdle();
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8');
    if (isBinary) return fail(undefined, 'binary frames are not part of this protocol');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail(undefined, 'the message is not JSON');
    }
    onRequest(json);
  });
  ws.on('close', () => {
    closed = true;
    clearTimeout(idle);
    for (const id of [...contexts.keys()]) cancel(id);
  });
}
