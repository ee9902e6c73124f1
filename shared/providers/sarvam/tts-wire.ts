import { z } from 'zod';
import type { AudioFormat } from '../../audio/format';
import { ProviderError } from '../../contracts/errors';
import type { TtsStreamOptions } from '../../contracts/tts';
import { decodeBase64 } from '../../telephony/base64';
import type { TtsWire, TtsWireEvent, TtsWireUtterance } from '../streaming/tts-wire';
import {
  SARVAM_ID,
  errorFromFrame,
  handshakeDetail,
  keyFingerprint,
  parseTypedFrame,
  requireSarvamKey,
  sarvamCloseError,
  sarvamHeaders,
  sarvamLanguage,
  sarvamOptionsError,
  sarvamProtocolError,
  sarvamStatusError,
  sarvamUrl,
  zodIssues,
} from './protocol';

/**
 * Sarvam Bulbul streaming TTS (`/text-to-speech/ws`) as a pure mapping (reference/providers.md §2.6 and the
 * endpoint's published AsyncAPI).
 *
 * - URL `?model=<bulbul:v2|v3>&send_completion_event=true`: the model is read from the query (a `model` in
 *   the config is ignored, field reports), and the completion event is asked for explicitly.
 * - One socket = one config: `{"type":"config","data":{...}}` is sent once, right after the socket opens (the
 *   spec: "required as the first message"; "send config once, then stream text"). Everything in it (voice,
 *   language, format, options) is part of the pool key, so utterances reuse a socket only when they share
 *   its config. Re-sending config per utterance would also be accepted, but a config update flushes the
 *   server's buffer, and whether that flush emits a completion event is undocumented.
 * - One utterance at a time per socket (not multiplexed). Every piece is `text` (≤ 2500 characters per message,
 *   longer pieces are split at whitespace) + `flush`, and each flush is answered by audio and then
 *   `{"type":"event","data":{"event_type":"final"}}`: that final is the piece boundary (`pieceDone`), so
 *   audio is attributed to the right piece, and the last piece's final ends the utterance
 *   (`lastPieceEndsUtterance`; end() sends nothing). A blank piece still gets its flush.
 * - No cancel message exists: cancel closes the socket (the next utterance opens a new one).
 * - Audio: `{"type":"audio","data":{"audio":<base64>,"content_type":...}}`, raw linear16/mulaw/alaw at
 *   `speech_sample_rate`. A RIFF/WAVE header, which linear16 carries on some endpoints, is stripped wherever
 *   it starts a chunk; a compressed content type (mp3, opus, ...) is an error rather than noise.
 * - Idle pooled sockets get `{"type":"ping"}` (the server closes after one minute of inactivity); the
 *   reply, if any, is undocumented and ignored, as is every unknown message type. No word timings.
 */

export const SARVAM_TTS_DEFAULT_MODEL = 'bulbul:v2';
export const SARVAM_TTS_PATH = '/text-to-speech/ws';
/** Pings on idle pooled sockets; the server closes after one minute without a message. */
export const SARVAM_TTS_KEEPALIVE_MS = 20_000;
/** Characters per `text` message (the spec's limit). */
export const SARVAM_TTS_MAX_TEXT_CHARS = 2500;
const WHERE = 'sarvamai TTS';
const SAMPLE_RATES = [8000, 16000, 22050, 24000] as const;
const CODECS = { pcm16: 'linear16', mulaw: 'mulaw', alaw: 'alaw' } as const;
/** Voices used when the block names none (each model has its own speaker list). */
const DEFAULT_SPEAKER_V2 = 'anushka';
const DEFAULT_SPEAKER_V3 = 'shubh';

export const SARVAM_TTS_FORMATS: readonly AudioFormat[] = [
  ...SAMPLE_RATES.map((sampleRateHz) => ({ encoding: 'pcm16' as const, sampleRateHz })),
  { encoding: 'mulaw', sampleRateHz: 8000 },
  { encoding: 'alaw', sampleRateHz: 8000 },
];

export const sarvamTtsOptionsSchema = z.object({
  /** Speaking rate (bulbul:v2 0.3–3, bulbul:v3 0.5–2); unset = 1.0. */
  pace: z.number().min(0.3).max(3).optional(),
  /** bulbul:v2 only (−0.75…0.75); not sent for v3, which ignores it. */
  pitch: z.number().min(-0.75).max(0.75).optional(),
  /** bulbul:v2 only (0.3–3); not sent for v3. */
  loudness: z.number().min(0.3).max(3).optional(),
  /** bulbul:v3 only (0.01–1); not sent for v2. */
  temperature: z.number().min(0.01).max(1).optional(),
  /** Normalise English words and numbers in mixed text (always on for v3). */
  enablePreprocessing: z.boolean().optional(),
  /** Characters the server buffers before generating (server default 50); every piece is flushed anyway. */
  minBufferSize: z.number().int().min(1).max(SARVAM_TTS_MAX_TEXT_CHARS).optional(),
  /** Longest chunk the server generates at once (server default 150). */
  maxChunkLength: z.number().int().min(1).max(SARVAM_TTS_MAX_TEXT_CHARS).optional(),
  /** A pronunciation dictionary (bulbul:v3). */
  dictId: z.string().min(1).optional(),
});
export type SarvamTtsOptions = z.infer<typeof sarvamTtsOptionsSchema>;

function optionsOf(options: TtsStreamOptions): SarvamTtsOptions {
  const parsed = sarvamTtsOptionsSchema.safeParse(options.options);
  if (!parsed.success) throw sarvamOptionsError(parsed.error, WHERE);
  return parsed.data;
}

/** `output_audio_codec` and `speech_sample_rate` for a requested format, or a bad-request error naming what Sarvam can do. */
export function sarvamOutputFormat(format: AudioFormat): { codec: 'linear16' | 'mulaw' | 'alaw'; sampleRate: string } {
  const codec = CODECS[format.encoding];
  const rateOk = (SAMPLE_RATES as readonly number[]).includes(format.sampleRateHz);
  if (!codec || !rateOk || (codec !== 'linear16' && format.sampleRateHz !== 8000)) {
    throw new ProviderError(
      'SARVAMAI_FORMAT',
      `sarvamai TTS cannot produce ${format.encoding} at ${format.sampleRateHz} Hz over WebSocket (linear16 at ${SAMPLE_RATES.join('/')} Hz, mulaw or alaw at 8000 Hz)`,
      false,
      'bad-request',
    );
  }
  return { codec, sampleRate: String(format.sampleRateHz) };
}

function modelOf(options: TtsStreamOptions): string {
  return options.model ?? SARVAM_TTS_DEFAULT_MODEL;
}

/** The config message of a socket (all fields that the pool key must cover). */
export function sarvamTtsConfig(options: TtsStreamOptions): string {
  const opts = optionsOf(options);
  const model = modelOf(options);
  const v2 = !/^bulbul:v[3-9]/.test(model);
  const { codec, sampleRate } = sarvamOutputFormat(options.format);
  if (!v2 && opts.pace !== undefined && (opts.pace < 0.5 || opts.pace > 2)) {
    throw new ProviderError('SARVAMAI_BAD_OPTIONS', `pace ${opts.pace} is outside ${model}'s range 0.5–2`, false, 'bad-request');
  }
  const data: Record<string, unknown> = {
    target_language_code: sarvamLanguage(options.language, 'en-IN'),
    speaker: options.voice ?? (v2 ? DEFAULT_SPEAKER_V2 : DEFAULT_SPEAKER_V3),
    model,
    speech_sample_rate: sampleRate,
    output_audio_codec: codec,
  };
  if (opts.pace !== undefined) data.pace = opts.pace;
  if (v2 && opts.pitch !== undefined) data.pitch = opts.pitch;
  if (v2 && opts.loudness !== undefined) data.loudness = opts.loudness;
  if (!v2 && opts.temperature !== undefined) data.temperature = opts.temperature;
  if (opts.enablePreprocessing !== undefined) data.enable_preprocessing = opts.enablePreprocessing;
  if (opts.minBufferSize !== undefined) data.min_buffer_size = opts.minBufferSize;
  if (opts.maxChunkLength !== undefined) data.max_chunk_length = opts.maxChunkLength;
  if (opts.dictId !== undefined) data.dict_id = opts.dictId;
  return JSON.stringify({ type: 'config', data });
}

function socketUrl(options: TtsStreamOptions): string {
  return sarvamUrl(options.endpoint, SARVAM_TTS_PATH, { model: modelOf(options), send_completion_event: 'true' });
}

/** `text` split into parts of at most `max` characters, cut after whitespace where there is some. */
export function splitText(text: string, max = SARVAM_TTS_MAX_TEXT_CHARS): string[] {
  const parts: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const window = rest.slice(0, max);
    const space = Math.max(window.lastIndexOf(' '), window.lastIndexOf('\n'), window.lastIndexOf('\t'));
    const cut = space > 0 ? space + 1 : max;
    parts.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest) parts.push(rest);
  return parts;
}

const FLUSH = '{"type":"flush"}';
const PING = '{"type":"ping"}';

function fourCc(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
}

/**
 * The samples of a chunk: a chunk that starts with a RIFF/WAVE header loses it (up to its `data` chunk
 * header; the size there is not trusted, streaming writers leave it 0 or 0xFFFFFFFF). Other chunks as they are.
 */
export function stripWavHeader(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 12 || fourCc(bytes, 0) !== 'RIFF' || fourCc(bytes, 8) !== 'WAVE') return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = fourCc(bytes, at);
    if (id === 'data') return bytes.subarray(at + 8);
    const size = view.getUint32(at + 4, true);
    at += 8 + size + (size & 1);
  }
  // A header split across chunks, or no data chunk at all: nothing playable here.
  return bytes.subarray(bytes.length);
}

const COMPRESSED = /mpeg|mp3|opus|ogg|flac|aac|webm/i;

const audioData = z.object({ audio: z.string(), content_type: z.string().nullish(), request_id: z.string().nullish() });
const eventData = z.object({ event_type: z.string(), message: z.string().nullish() });

/** One server message → events (none for pings, pongs and anything newer than this adapter). */
export function decodeSarvamTts(data: string | Uint8Array): readonly TtsWireEvent[] {
  const frame = parseTypedFrame(data, WHERE);
  switch (frame.type) {
    case 'audio': {
      const parsed = audioData.safeParse(frame.data);
      if (!parsed.success) throw sarvamProtocolError(`${WHERE} sent a malformed audio message: ${zodIssues(parsed.error)}`);
      const contentType = parsed.data.content_type ?? '';
      if (COMPRESSED.test(contentType)) {
        const error = new ProviderError('SARVAMAI_FORMAT', `${WHERE} sent ${contentType} audio although raw linear16/mulaw/alaw was configured`, false, 'bad-request');
        return [{ type: 'error', error }];
      }
      const bytes = decodeBase64(parsed.data.audio);
      if (!bytes) throw sarvamProtocolError(`${WHERE} sent audio that is not base64`);
      const samples = stripWavHeader(bytes);
      return samples.byteLength ? [{ type: 'audio', data: samples }] : [];
    }
    case 'event': {
      const parsed = eventData.safeParse(frame.data);
      if (!parsed.success) throw sarvamProtocolError(`${WHERE} sent a malformed event message`);
      return parsed.data.event_type === 'final' ? [{ type: 'pieceDone' }] : [];
    }
    case 'error':
      return [{ type: 'error', error: errorFromFrame(frame.data, WHERE) }];
    default:
      return [];
  }
}

function utterance(): TtsWireUtterance {
  return {
    begin: () => [],
    text(text) {
      const messages = splitText(text).map((part) => JSON.stringify({ type: 'text', data: { text: part } }));
      // A blank piece still gets its flush, so finals keep counting pieces.
      return [...messages, FLUSH];
    },
    // Every piece was flushed already: the last piece's final ends the utterance.
    end: () => [],
    cancel: () => 'close-socket',
  };
}

/** The wire; `keepAliveIntervalMs` changes the idle ping interval. */
export function createSarvamTtsWire(tuning: { readonly keepAliveIntervalMs?: number } = {}): TtsWire {
  return {
    id: SARVAM_ID,
    lastPieceEndsUtterance: true,
    capabilities: { wordTimings: false, outputFormats: SARVAM_TTS_FORMATS, edgeCapable: true, multiplexed: false, cancelWithoutClosing: false, keepAlive: true },
    optionsSchema: sarvamTtsOptionsSchema,

    connect(options) {
      const apiKey = requireSarvamKey(options.apiKey, 'TTS');
      sarvamTtsConfig(options); // Format and options are checked before anything connects.
      return { url: socketUrl(options), headers: sarvamHeaders(apiKey) };
    },

    connectionKey: (options) => `${socketUrl(options)}|${sarvamTtsConfig(options)}|${keyFingerprint(options.apiKey ?? '')}`,
    open: (options) => [sarvamTtsConfig(options)],
    keepAliveMessage: { intervalMs: tuning.keepAliveIntervalMs ?? SARVAM_TTS_KEEPALIVE_MS, message: () => PING },
    utterance,
    decode: decodeSarvamTts,
    classifyClose: (code, reason) => sarvamCloseError(code, reason, WHERE),
    classifyHandshake: (status, body) => sarvamStatusError(status, handshakeDetail(body), WHERE),
  };
}

export const sarvamTtsWire: TtsWire = createSarvamTtsWire();
