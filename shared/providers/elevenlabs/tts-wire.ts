import { z } from 'zod';
import { durationMs, type AudioFormat } from '../../audio/format';
import { ProviderError } from '../../contracts/errors';
import type { TtsStreamOptions } from '../../contracts/tts';
import { decodeBase64 } from '../../telephony/base64';
import type { TtsWire, TtsWireEvent, TtsWireUtterance } from '../streaming/tts-wire';
import { createAlignmentTracker, type AlignmentTracker, type CharAlignment } from './alignment';

/**
 * ElevenLabs streaming TTS on the multi-context socket
 * (`/v1/text-to-speech/{voice_id}/multi-stream-input`, reference/providers.md §2.2) as a pure mapping.
 *
 * - One utterance = one context. `begin()` initialises it with `{"text":" "}` (the API insists on exactly one
 *   space first); every piece is sent with `flush:true` (ending in a space), so it is voiced at once rather
 *   than when the server's chunk schedule fills.
 * - `end()` = flush + `close_context`: a closed context keeps flushing what it was asked to flush, then the
 *   server sends `{"isFinal":true,"contextId"}` (camelCase server-side). That `isFinal` is `done`.
 * - `cancel()` = `close_context` (barge-in without reconnecting); the next utterance uses a new context id. The
 *   server may still send the cancelled context's flushed audio (the base drops it); its `isFinal` becomes
 *   `cancelled`.
 * - Audio is base64 in JSON; `alignment` (chars with per-chunk times) becomes word timings relative to the
 *   utterance (chunk times accumulated) and, by counting characters, the `textIndex` of each chunk.
 * - No keep-alive: `inactivity_timeout` is raised to 180 s (the maximum), beyond any pause inside an utterance
 *   and beyond the pool's idle time, so neither contexts nor idle pooled sockets time out.
 *
 * Per-context state lives in this wire, keyed by a wire-unique context id (`<base id>-<n>`), so utterances on
 * different sockets that happen to share a base id never mix.
 */

export const ELEVENLABS_ID = 'elevenlabs';
export const ELEVENLABS_BASE_URL = 'wss://api.elevenlabs.io';
export const ELEVENLABS_DEFAULT_MODEL = 'eleven_flash_v2_5';
const WHERE = 'elevenlabs TTS';

export const elevenLabsTtsOptionsSchema = z.object({
  /** Seconds without input before the server closes (default 20 on the API; 180 is its maximum). */
  inactivityTimeoutS: z.number().int().min(5).max(180).default(180),
  /** Send `language_code` (ISO 639-1 from the block's language); only some models accept it. */
  enforceLanguage: z.boolean().default(false),
  voiceSettings: z
    .object({
      stability: z.number().min(0).max(1).optional(),
      similarity_boost: z.number().min(0).max(1).optional(),
      style: z.number().min(0).max(1).optional(),
      use_speaker_boost: z.boolean().optional(),
      speed: z.number().min(0.7).max(1.2).optional(),
    })
    .optional(),
  /** Characters buffered before generation (each 50–500); pieces are flushed anyway. */
  chunkLengthSchedule: z.array(z.number().min(50).max(500)).min(1).optional(),
});
export type ElevenLabsTtsOptions = z.infer<typeof elevenLabsTtsOptionsSchema>;

const PCM_RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000] as const;

/** Formats offered to the engine (44.1 kHz and up need higher tiers, so they are accepted but not offered). */
export const ELEVENLABS_TTS_FORMATS: readonly AudioFormat[] = [
  ...[8000, 16000, 22050, 24000].map((sampleRateHz) => ({ encoding: 'pcm16' as const, sampleRateHz })),
  { encoding: 'mulaw', sampleRateHz: 8000 },
  { encoding: 'alaw', sampleRateHz: 8000 },
];

/** `output_format` for a requested format: `pcm_<rate>`, `ulaw_8000`, `alaw_8000`; anything else is refused. */
export function elevenLabsOutputFormat(format: AudioFormat): string {
  if (format.encoding === 'pcm16' && (PCM_RATES as readonly number[]).includes(format.sampleRateHz)) return `pcm_${format.sampleRateHz}`;
  if (format.encoding === 'mulaw' && format.sampleRateHz === 8000) return 'ulaw_8000';
  if (format.encoding === 'alaw' && format.sampleRateHz === 8000) return 'alaw_8000';
  throw new ProviderError(
    'ELEVENLABS_FORMAT',
    `elevenlabs TTS cannot produce ${format.encoding} at ${format.sampleRateHz} Hz (pcm_${PCM_RATES.join('|pcm_')}, ulaw_8000, alaw_8000)`,
    false,
    'bad-request',
  );
}

function optionsOf(options: TtsStreamOptions): ElevenLabsTtsOptions {
  const parsed = elevenLabsTtsOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
    throw new ProviderError('ELEVENLABS_BAD_OPTIONS', `the options of the elevenlabs tts block are invalid: ${issues}`, false, 'bad-request');
  }
  return parsed.data;
}

function endpointUrl(endpoint: string | undefined, path: string, query: Record<string, string>): string {
  let base: URL;
  try {
    base = new URL(endpoint ?? ELEVENLABS_BASE_URL);
  } catch (cause) {
    throw new ProviderError('ELEVENLABS_BAD_ENDPOINT', `the endpoint "${endpoint}" is not a URL`, false, 'bad-request', { cause });
  }
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  const search = new URLSearchParams(query).toString();
  return `${scheme}//${base.host}${path}${search ? `?${search}` : ''}`;
}

function socketUrl(options: TtsStreamOptions): string {
  const opts = optionsOf(options);
  if (!options.voice) throw new ProviderError('ELEVENLABS_NO_VOICE', 'elevenlabs TTS needs a voice id: set `voice` in the tts block', false, 'bad-request');
  const query: Record<string, string> = {
    model_id: options.model ?? ELEVENLABS_DEFAULT_MODEL,
    output_format: elevenLabsOutputFormat(options.format),
    inactivity_timeout: String(opts.inactivityTimeoutS),
    // Alignment with every audio chunk, in step with it: the textIndex and word timings depend on that.
    sync_alignment: 'true',
  };
  if (opts.enforceLanguage) query.language_code = (options.language.split(/[-_]/)[0] ?? options.language).toLowerCase();
  return endpointUrl(options.endpoint, `/v1/text-to-speech/${encodeURIComponent(options.voice)}/multi-stream-input`, query);
}

function fingerprint(secret: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < secret.length; i++) hash = Math.imul(hash ^ secret.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/** The engine's pieces are trimmed; ElevenLabs wants each text to end with a space. */
function spaced(text: string): string {
  return text === '' || /\s$/.test(text) ? text : `${text} `;
}

// ---- errors -------------------------------------------------------------------------------------------------

/** An error name or message from a frame, close reason or handshake body → what the engine should do. */
export function elevenLabsError(name: string, message: string, fallback: { retryable: boolean; kind: ProviderError['kind'] }): ProviderError {
  const said = [name, message].filter(Boolean).join(': ');
  const text = `${name} ${message}`;
  if (/api.?key|unauthori[sz]ed|auth|permission|forbidden/i.test(text)) {
    return new ProviderError('ELEVENLABS_AUTH', `the API key was rejected (${said}). Check the elevenlabs credential of the project.`, false, 'auth');
  }
  if (/quota|credits|payment|subscription/i.test(text)) return new ProviderError('ELEVENLABS_QUOTA', `the account cannot pay for this (${said})`, false, 'quota');
  if (/timeout|timed out/i.test(text)) return new ProviderError('ELEVENLABS_TIMEOUT', `${WHERE} timed out (${said}); reconnecting`, true, 'timeout');
  if (/max_active|concurren|rate.?limit|too.?many/i.test(text)) {
    return new ProviderError('ELEVENLABS_RATE_LIMIT', `${WHERE} is over a limit (${said}); retrying`, true, 'rate-limit');
  }
  if (/invalid|not.?found|unsupported|voice|model|bad.?request|too big|can only/i.test(text)) {
    return new ProviderError('ELEVENLABS_BAD_REQUEST', `${WHERE} rejected the request (${said}). Check the voice, model and format of the elevenlabs block.`, false, 'bad-request');
  }
  return new ProviderError(fallback.retryable ? 'ELEVENLABS_UNAVAILABLE' : 'ELEVENLABS_FAILED', `${WHERE} failed (${said || 'no detail'})`, fallback.retryable, fallback.kind);
}

function handshakeError(status: number | undefined, body: string): ProviderError {
  let name = '';
  let message = body.trim().slice(0, 200);
  try {
    const parsed = JSON.parse(body) as { detail?: unknown };
    const detail = parsed?.detail;
    if (typeof detail === 'string') message = detail;
    else if (detail && typeof detail === 'object') {
      const d = detail as { status?: unknown; message?: unknown };
      name = typeof d.status === 'string' ? d.status : '';
      message = typeof d.message === 'string' ? d.message : message;
    }
  } catch {
    // Plain text body.
  }
  const said = [name, message].filter(Boolean).join(': ');
  if (/quota|credits/i.test(name)) return new ProviderError('ELEVENLABS_QUOTA', `the account cannot pay for this (${status}, ${said})`, false, 'quota');
  if (status === 401 || status === 403) {
    return new ProviderError('ELEVENLABS_AUTH', `the API key was rejected (${status}${said ? `, ${said}` : ''}). Check the elevenlabs credential of the project.`, false, 'auth');
  }
  if (status === 429) return new ProviderError('ELEVENLABS_RATE_LIMIT', `too many requests (429${said ? `, ${said}` : ''}); retrying`, true, 'rate-limit');
  if (status === undefined || status >= 500) {
    return new ProviderError('ELEVENLABS_UNAVAILABLE', `${WHERE} is unavailable (${status ?? 'no response'}${said ? `, ${said}` : ''})`, true, 'unavailable');
  }
  return new ProviderError('ELEVENLABS_BAD_REQUEST', `${WHERE} refused the connection (${status}${said ? `, ${said}` : ''}). Check the voice, model and format of the elevenlabs block.`, false, 'bad-request');
}

function protocolError(message: string, cause?: unknown): ProviderError {
  return new ProviderError('ELEVENLABS_PROTOCOL', message, false, 'protocol', cause === undefined ? undefined : { cause });
}

// ---- server frames ---------------------------------------------------------------------------------------------

const alignmentSchema = z
  .object({
    chars: z.array(z.string()),
    charStartTimesMs: z.array(z.number()),
    charDurationsMs: z.array(z.number()).nullish(),
    // Older docs spell it this way.
    charsDurationsMs: z.array(z.number()).nullish(),
  })
  .nullish();

const serverFrame = z.object({
  audio: z.string().nullish(),
  isFinal: z.boolean().nullish(),
  contextId: z.string().nullish(),
  context_id: z.string().nullish(),
  alignment: alignmentSchema,
  normalizedAlignment: alignmentSchema,
  error: z.string().nullish(),
  message: z.string().nullish(),
  code: z.number().nullish(),
});
type ServerFrame = z.infer<typeof serverFrame>;

function alignmentOf(frame: ServerFrame): CharAlignment | undefined {
  // `alignment` follows the text as sent (so counting matches the pieces); the normalised one is a fallback.
  const a = frame.alignment ?? frame.normalizedAlignment;
  if (!a) return undefined;
  const durations = a.charDurationsMs ?? a.charsDurationsMs ?? undefined;
  if (a.charStartTimesMs.length !== a.chars.length || (durations && durations.length !== a.chars.length)) {
    throw protocolError(`${WHERE} sent an alignment of ${a.chars.length} chars with ${a.charStartTimesMs.length} start times and ${durations?.length ?? 'no'} durations`);
  }
  return durations ? { chars: a.chars, charStartTimesMs: a.charStartTimesMs, charDurationsMs: durations } : { chars: a.chars, charStartTimesMs: a.charStartTimesMs };
}

// ---- the wire --------------------------------------------------------------------------------------------------

interface ContextState {
  readonly baseId: string;
  readonly format: AudioFormat;
  readonly tracker: AlignmentTracker;
  cancelled: boolean;
}

/** Contexts whose `isFinal` never came (a dropped socket) are forgotten oldest-first beyond this many. */
const MAX_CONTEXTS = 256;

export function createElevenLabsTtsWire(): TtsWire {
  const contexts = new Map<string, ContextState>();
  let sequence = 0;

  function track(wireId: string, state: ContextState): void {
    contexts.set(wireId, state);
    while (contexts.size > MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  }

  function decodeFrame(frame: ServerFrame): TtsWireEvent[] {
    const wireId = frame.contextId ?? frame.context_id ?? undefined;
    const state = wireId === undefined ? undefined : contexts.get(wireId);
    const contextId = state?.baseId ?? wireId;
    const events: TtsWireEvent[] = [];
    const at = <E extends TtsWireEvent>(event: E): E => (contextId === undefined ? event : { ...event, contextId });

    if (typeof frame.audio === 'string' && frame.audio !== '') {
      const data = decodeBase64(frame.audio);
      if (!data) throw protocolError(`${WHERE} sent audio that is not base64`);
      const alignment = alignmentOf(frame);
      if (state) {
        const { textIndex, words } = state.tracker.chunk(durationMs(state.format, data.byteLength), alignment);
        events.push(at(textIndex === undefined ? { type: 'audio', data } : { type: 'audio', data, textIndex }));
        if (words.length) events.push(at({ type: 'words', words }));
      } else {
        events.push(at({ type: 'audio', data }));
      }
    }
    if (frame.isFinal === true) {
      if (state) {
        const words = state.tracker.finish();
        if (words.length && !state.cancelled) events.push(at({ type: 'words', words }));
        contexts.delete(wireId!);
      }
      events.push(at({ type: state?.cancelled ? 'cancelled' : 'done' }));
    }
    if (events.length === 0 && (frame.error || frame.message)) {
      const error = elevenLabsError(frame.error ?? '', frame.message ?? '', { retryable: true, kind: 'unavailable' });
      events.push(at({ type: 'error', error }));
    }
    return events;
  }

  return {
    id: ELEVENLABS_ID,
    capabilities: {
      wordTimings: true,
      outputFormats: ELEVENLABS_TTS_FORMATS,
      edgeCapable: true,
      multiplexed: true,
      cancelWithoutClosing: true,
      keepAlive: false,
    },
    optionsSchema: elevenLabsTtsOptionsSchema,

    connect(options) {
      if (!options.apiKey) {
        throw new ProviderError('ELEVENLABS_AUTH', 'no API key for elevenlabs TTS: add an elevenlabs credential to the project or set ELEVENLABS_API_KEY', false, 'auth');
      }
      return { url: socketUrl(options), headers: { 'xi-api-key': options.apiKey } };
    },

    // Voice, model and format are fixed per socket (URL); the key is fingerprinted, never kept in clear.
    connectionKey: (options) => `${socketUrl(options)}|${fingerprint(options.apiKey ?? '')}`,

    utterance(contextId, options): TtsWireUtterance {
      const opts = optionsOf(options);
      const wireId = `${contextId}-${(++sequence).toString(36)}`;
      const state: ContextState = { baseId: contextId, format: options.format, tracker: createAlignmentTracker(), cancelled: false };
      track(wireId, state);
      const init: Record<string, unknown> = { text: ' ', context_id: wireId };
      if (opts.voiceSettings) init.voice_settings = opts.voiceSettings;
      if (opts.chunkLengthSchedule) init.generation_config = { chunk_length_schedule: opts.chunkLengthSchedule };
      return {
        begin: () => [JSON.stringify(init)],
        text(text, index) {
          const sent = spaced(text);
          state.tracker.addPiece(index, sent);
          return [JSON.stringify({ text: sent, context_id: wireId, flush: true })];
        },
        end: () => [JSON.stringify({ text: '', context_id: wireId, flush: true }), JSON.stringify({ context_id: wireId, close_context: true })],
        cancel() {
          state.cancelled = true;
          return [JSON.stringify({ context_id: wireId, close_context: true })];
        },
      };
    },

    decode(data) {
      if (typeof data !== 'string') throw protocolError(`${WHERE} sent a binary frame of ${data.byteLength} bytes; only JSON text frames are defined`);
      let json: unknown;
      try {
        json = JSON.parse(data);
      } catch (cause) {
        throw protocolError(`${WHERE} sent a frame that is not JSON: ${data.slice(0, 80)}`, cause);
      }
      const frame = serverFrame.safeParse(json);
      if (!frame.success) {
        const issues = frame.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
        throw protocolError(`${WHERE} sent a malformed frame: ${issues}`);
      }
      return decodeFrame(frame.data);
    },

    classifyClose(code, reason) {
      if (code === 1008) return elevenLabsError('', reason || 'policy violation (1008)', { retryable: true, kind: 'unavailable' });
      if (code === 1002 || code === 1003 || code === 1007 || code === 1009) {
        return new ProviderError('ELEVENLABS_BAD_REQUEST', `${WHERE} closed the socket with ${code}${reason ? ` "${reason}"` : ''}: it did not accept what we sent (voice/model mismatch shows up as 1009)`, false, 'bad-request');
      }
      // Even a 1000 we did not ask for ends utterances early: retryable, never a silent normal end.
      return new ProviderError('ELEVENLABS_CLOSED', `${WHERE} closed the socket with ${code}${reason ? ` "${reason}"` : ''}`, true, 'unavailable');
    },

    classifyHandshake: handshakeError,
  };
}

