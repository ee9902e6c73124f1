// Runs inside workerd (bundled by providers.test.ts): the cloud speech adapters on the fetch socket factory,
// against the vendor fakes the Node test process serves on 127.0.0.1. Web-standard APIs only.
import { createFetchSocketFactory } from '../../edge/providers/fetch-socket';
import { PIPELINE_FORMAT } from '../../shared/audio/format';
import type { AudioFrame } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttEvent, SttSession } from '../../shared/contracts/stt';
import type { TextToSpeech, TtsEvent } from '../../shared/contracts/tts';
import { createCartesiaTts } from '../../shared/providers/cartesia/index';
import { createDeepgramNovaStt, createDeepgramTts } from '../../shared/providers/deepgram/index';
import { SocketConnectError } from '../../shared/providers/streaming/socket';
import type { ProviderSocket, SocketFactory } from '../../shared/providers/streaming/socket';

/** What the Node test sends. `raw` URLs are plain test servers for the factory's own cases. */
export interface ProvidersJob {
  readonly deepgramEndpoint: string;
  readonly deepgramKey: string;
  readonly cartesiaEndpoint: string;
  readonly cartesiaKey: string;
  /** 16 kHz PCM16 LE of tone words (test/fakes/tones.ts). */
  readonly pcmBase64: string;
  readonly text: string;
  readonly raw: {
    /** Echoes text and binary frames; records the handshake. */
    readonly echoUrl: string;
    /** Refuses the upgrade with 503 and a ~100 KB body. */
    readonly refuseUrl: string;
    /** Accepts TCP, never answers the upgrade. */
    readonly hangUrl: string;
    /** Nothing listens there. */
    readonly deadUrl: string;
    /** Accepts, then destroys the TCP connection (no Close frame). */
    readonly dropUrl: string;
    /** Accepts, then closes with 1011 "NET-0001". */
    readonly closeUrl: string;
  };
}

export interface ErrorSummary {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly retryable?: boolean;
  readonly kind?: string;
  readonly status?: number | null;
  readonly bodyLength?: number;
  readonly body?: string;
  readonly timedOut?: boolean;
  readonly isProviderError: boolean;
  readonly isSocketConnectError: boolean;
  readonly elapsedMs?: number;
}

export interface ProvidersResult {
  readonly userAgent: string;
  readonly finals: string[];
  readonly sttErrors: ErrorSummary[];
  readonly sttEventsAfterClose: number;
  readonly ttsAudioBase64: string;
  readonly ttsEvents: string[];
  readonly auraAudioBase64: string;
  readonly auraEvents: string[];
  readonly authError: ErrorSummary | null;
  readonly raw: Record<string, unknown>;
}

const FRAME_BYTES = 640;
const FRAMES_PER_TICK = 4;
const TICK_MS = 10;
const SILENCE_MS = 600;
const RESULT_TIMEOUT_MS = 8000;
const retry = { attempts: 3, baseDelayMs: 20 };

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = RESULT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(chunks: readonly Uint8Array[]): string {
  let binary = '';
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i += 0x8000) binary += String.fromCharCode(...chunk.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function summarise(error: unknown, startedAt?: number): ErrorSummary {
  return {
    name: error instanceof Error ? error.name : typeof error,
    message: error instanceof Error ? error.message : String(error),
    ...(error instanceof ProviderError ? { code: error.code, retryable: error.retryable, kind: error.kind } : {}),
    ...(error instanceof SocketConnectError
      ? { status: error.status ?? null, bodyLength: error.body.length, body: error.body.slice(0, 200), timedOut: error.timedOut }
      : {}),
    isProviderError: error instanceof ProviderError,
    isSocketConnectError: error instanceof SocketConnectError,
    ...(startedAt === undefined ? {} : { elapsedMs: Date.now() - startedAt }),
  };
}

/** (a) Deepgram Nova: tone words in 20 ms frames faster than real time, then silence; the finals. */
async function speechToText(connect: SocketFactory, job: ProvidersJob) {
  const stt = createDeepgramNovaStt({ connect, retry });
  const events: SttEvent[] = [];
  const abort = new AbortController();
  const session: SttSession = await stt.open(
    { model: 'nova-3', language: 'en-US', options: {}, endpoint: job.deepgramEndpoint, apiKey: job.deepgramKey, signal: abort.signal },
    (event) => events.push(event),
  );
  const pcm = fromBase64(job.pcmBase64);
  const frames = Math.ceil(pcm.length / FRAME_BYTES) + SILENCE_MS / 20;
  for (let n = 0; n < frames; n++) {
    const data = new Uint8Array(FRAME_BYTES);
    data.set(pcm.subarray(n * FRAME_BYTES, (n + 1) * FRAME_BYTES));
    const frame: AudioFrame = { format: PIPELINE_FORMAT, data };
    session.write(frame);
    if (n % FRAMES_PER_TICK === FRAMES_PER_TICK - 1) await delay(TICK_MS);
  }
  // The fake finalises after silence: wait for a final, then for the stream to go quiet.
  await waitFor(() => events.some((e) => e.type === 'final' || e.type === 'error'), 'a final');
  let seen = -1;
  while (seen !== events.length) {
    seen = events.length;
    await delay(300);
  }
  await session.close();
  const count = events.length;
  await delay(200);
  abort.abort();
  return {
    finals: events.flatMap((e) => (e.type === 'final' ? [e.text] : [])),
    sttErrors: events.flatMap((e) => (e.type === 'error' ? [summarise(e.error)] : [])),
    sttEventsAfterClose: events.length - count,
  };
}

/** (b), (d) One utterance through a socket TTS in PCM16 16 kHz: the audio and the event types. */
async function textToSpeech(tts: TextToSpeech, options: { endpoint: string; apiKey: string; voice?: string; model: string; language: string }, text: string) {
  const events: TtsEvent[] = [];
  const abort = new AbortController();
  const stream = tts.stream({ ...options, format: PIPELINE_FORMAT, options: {}, signal: abort.signal }, (event) => events.push(event));
  stream.push(text);
  stream.end();
  await waitFor(() => events.some((e) => e.type === 'done' || e.type === 'error'), 'the end of the utterance');
  await tts.close?.();
  abort.abort();
  const errors = events.flatMap((e) => (e.type === 'error' ? [e.error.message] : []));
  return {
    audio: toBase64(events.flatMap((e) => (e.type === 'audio' ? [e.data] : []))),
    events: [...new Set<string>(events.map((e) => e.type)), ...errors],
  };
}

/** (c) A wrong key: the adapter's open must reject with a non-retryable auth ProviderError. */
async function refusedKey(connect: SocketFactory, job: ProvidersJob): Promise<ErrorSummary | null> {
  const stt = createDeepgramNovaStt({ connect, retry });
  const abort = new AbortController();
  try {
    const session = await stt.open(
      { model: 'nova-3', language: 'en-US', options: {}, endpoint: job.deepgramEndpoint, apiKey: `wrong-${job.deepgramKey}`, signal: abort.signal },
      () => undefined,
    );
    await session.close();
    return null;
  } catch (error) {
    return summarise(error);
  } finally {
    abort.abort();
  }
}

/** (e) The factory itself, case by case (the Node test of ws-socket.ts, inside workerd). */
async function factoryCases(connect: SocketFactory, raw: ProvidersJob['raw']): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const attempt = async (url: string, timeoutMs = 2000, signal?: AbortSignal) => {
    const startedAt = Date.now();
    try {
      const socket = await connect({ url, timeoutMs, ...(signal ? { signal } : {}) }, { onMessage: () => undefined, onClose: () => undefined });
      socket.close();
      return { opened: true };
    } catch (error) {
      return summarise(error, startedAt);
    }
  };

  out.refused = await attempt(`${raw.refuseUrl}?token=secret-key`);
  out.timeout = await attempt(raw.hangUrl, 300);
  out.dead = await attempt(raw.deadUrl);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  out.aborted = await attempt(raw.hangUrl, 5000, abort.signal);

  // Echo: headers and protocols on the handshake; text stays text, binary arrives as plain Uint8Array; a
  // subarray sends only its bytes; close(code, reason) reported once.
  {
    const messages: { type: string; proto: string; value: string | number[] }[] = [];
    const closes: { code: number; reason: string }[] = [];
    const socket: ProviderSocket = await connect(
      { url: `${raw.echoUrl}/echo?x=1`, headers: { Authorization: 'Token abc', 'X-Version': '7' }, protocols: ['token', 'abc'], timeoutMs: 2000 },
      {
        onMessage: (data) =>
          messages.push(
            typeof data === 'string'
              ? { type: 'string', proto: 'String', value: data }
              : { type: 'binary', proto: Object.getPrototypeOf(data) === Uint8Array.prototype ? 'Uint8Array' : String(Object.getPrototypeOf(data)?.constructor?.name), value: [...data] },
          ),
        onClose: (code, reason) => closes.push({ code, reason }),
      },
    );
    const openAfterConnect = socket.open;
    const bufferedAmount = socket.bufferedAmount;
    const audio = new Uint8Array([9, 8, 7, 6]);
    socket.send('{"type":"KeepAlive"}');
    socket.send(audio.subarray(1, 3));
    await waitFor(() => messages.length >= 2, 'the echoes', 3000).catch(() => undefined);
    socket.close(1000, 'bye');
    socket.close(1000, 'again');
    const openAfterClose = socket.open;
    socket.send('after close');
    await waitFor(() => closes.length >= 1, 'the close', 3000).catch(() => undefined);
    await delay(100);
    out.echo = { openAfterConnect, openAfterClose, bufferedAmount, messages, closes };
  }

  const closesOf = async (url: string) => {
    const closes: { code: number; reason: string }[] = [];
    const socket = await connect({ url, timeoutMs: 2000 }, { onMessage: () => undefined, onClose: (code, reason) => closes.push({ code, reason }) });
    await waitFor(() => closes.length >= 1, 'the close', 3000).catch(() => undefined);
    // An 'error' after the close (workerd sends one) must not add a second report.
    await delay(250);
    return { closes, openAfter: socket.open };
  };
  out.drop = await closesOf(raw.dropUrl);
  out.serverClose = await closesOf(raw.closeUrl);
  return out;
}

async function run(job: ProvidersJob): Promise<ProvidersResult> {
  const connect = createFetchSocketFactory();
  const stt = await speechToText(connect, job);
  const cartesia = await textToSpeech(
    createCartesiaTts({ connect, retry }),
    { endpoint: job.cartesiaEndpoint, apiKey: job.cartesiaKey, voice: 'a0e99841-438c-4a64-b679-ae501e7d6091', model: 'sonic-2', language: 'en' },
    job.text,
  );
  const aura = await textToSpeech(
    createDeepgramTts({ connect, retry }),
    { endpoint: job.deepgramEndpoint, apiKey: job.deepgramKey, model: 'aura-2-thalia-en', language: 'en-US' },
    job.text,
  );
  const authError = await refusedKey(connect, job);
  const raw = await factoryCases(connect, job.raw);
  return {
    userAgent: navigator.userAgent,
    ...stt,
    ttsAudioBase64: cartesia.audio,
    ttsEvents: cartesia.events,
    auraAudioBase64: aura.audio,
    auraEvents: aura.events,
    authError,
    raw,
  };
}

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      return Response.json(await run((await request.json()) as ProvidersJob));
    } catch (error) {
      return Response.json({ error: String(error instanceof Error ? error.stack : error) }, { status: 500 });
    }
  },
};
