import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions } from '../../contracts/stt';
import { encodeBase64 } from '../../telephony/base64';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';
import {
  SARVAM_ID,
  errorFromFrame,
  handshakeDetail,
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
 * Sarvam streaming STT (`/speech-to-text/ws`, the "legacy" streaming endpoint) as a pure mapping
 * (reference/providers.md §1.7 and the endpoint's published AsyncAPI).
 *
 * - Query: `language-code` (with a hyphen; `unknown` = detect), `model` (saaras:v3 by default; `mode` only
 *   for saaras models), `sample_rate=16000`, `input_audio_codec=pcm_s16le`, `vad_signals`, `flush_signal=true`.
 * - Audio is a JSON text frame: `{"audio":{"data":<base64 PCM16>,"sample_rate":"16000","encoding":"audio/wav"}}`.
 *   `audio/wav` is the only `encoding` value the spec lists; `input_audio_codec=pcm_s16le` on the URL says
 *   the bytes are raw PCM, not WAV files. `audioMessageMs` has the socket base join the 20 ms frames into
 *   `audioChunkMs` (100 ms) messages, the size Sarvam's clients use; a rest goes out as it is (unpadded) on
 *   finalize, on close and after 2 × audioChunkMs without audio.
 * - No interim results: one `data` message per utterance (after Sarvam's VAD hears its end, or after a
 *   flush) becomes a final. `events` START_SPEECH → speechStarted; END_SPEECH is not a turn decision (the
 *   final follows it), so it maps to nothing. `{"type":"flush"}` is finalize; there is no flush ack.
 * - No close message exists: close() ends the socket with 1000 at once (finalize first to keep the tail).
 * - Keep-alive: none is documented, so silence is the keep-alive (as Sarvam's own integrations do): a 100 ms
 *   silent audio message whenever no audio was sent for `keepAliveIntervalMs` (the contract's keep-alive is a
 *   text message, and audio is text here). The server idle timeout is unknown; 5 s by default.
 * - Errors: `{"type":"error","data":{"error"|"message","code"}}`, the code a numeric string (spec) or number
 *   (field reports) read as an HTTP status; a bad key may come as HTTP 401/403 or as such a frame.
 */

export const SARVAM_STT_DEFAULT_MODEL = 'saaras:v3';
export const SARVAM_STT_PATH = '/speech-to-text/ws';
export const SARVAM_STT_KEEPALIVE_MS = 5000;
const WHERE = 'sarvamai STT';
const SAMPLE_RATE = '16000';
const MODES = ['transcribe', 'translate', 'verbatim', 'translit', 'codemix'] as const;

export const sarvamSttOptionsSchema = z.object({
  /** saaras:v3 and later only: transcribe (default), translate (to English), verbatim, translit, codemix. `transliterate` is read as translit. */
  mode: z.preprocess((v) => (v === 'transliterate' ? 'translit' : v), z.enum(MODES)).optional(),
  /** Sarvam's high VAD sensitivity (ends utterances after ~0.5 s of silence instead of ~1 s); unset = server default. */
  highVadSensitivity: z.boolean().optional(),
  /** START_SPEECH/END_SPEECH events (START_SPEECH becomes speechStarted). */
  vadSignals: z.boolean().default(true),
  /** Audio per message: 20 ms frames are batched to this (ms, a multiple of 20). */
  audioChunkMs: z.number().int().min(20).max(500).multipleOf(20).default(100),
});
export type SarvamSttOptions = z.infer<typeof sarvamSttOptionsSchema>;

/** Options normally arrive validated (registry); parsed again so defaults apply to raw objects too. */
export function sarvamSttOptions(options: Readonly<Record<string, unknown>>): SarvamSttOptions {
  const parsed = sarvamSttOptionsSchema.safeParse(options);
  if (!parsed.success) throw sarvamOptionsError(parsed.error, WHERE);
  return parsed.data;
}

function isSaaras(model: string): boolean {
  return /^saaras:v(\d+)/.test(model);
}

function sttQuery(options: SttSessionOptions): Record<string, string> {
  const opts = sarvamSttOptions(options.options);
  const model = options.model ?? SARVAM_STT_DEFAULT_MODEL;
  if (/-realtime$/.test(model)) {
    throw new ProviderError(
      'SARVAMAI_BAD_REQUEST',
      `${model} is served by /speech-to-text-realtime/ws, whose message schema this adapter does not implement yet; use saaras:v3 or saarika:v2.5`,
      false,
      'bad-request',
    );
  }
  if (opts.mode && !isSaaras(model)) {
    throw new ProviderError('SARVAMAI_BAD_REQUEST', `the mode option applies to saaras models only (the block asks for ${model})`, false, 'bad-request');
  }
  const query: Record<string, string> = {
    'language-code': sarvamLanguage(options.language, 'unknown'),
    model,
  };
  if (isSaaras(model)) query.mode = opts.mode ?? 'transcribe';
  query.sample_rate = SAMPLE_RATE;
  query.input_audio_codec = 'pcm_s16le';
  if (opts.highVadSensitivity !== undefined) query.high_vad_sensitivity = String(opts.highVadSensitivity);
  query.vad_signals = String(opts.vadSignals);
  query.flush_signal = 'true';
  return query;
}

/** One audio message. base64 never needs JSON escaping, so the frame is assembled directly. */
export function sarvamAudioMessage(pcm: Uint8Array): string {
  return `{"audio":{"data":"${encodeBase64(pcm)}","sample_rate":"${SAMPLE_RATE}","encoding":"audio/wav"}}`;
}

const SILENCE_MESSAGE = sarvamAudioMessage(new Uint8Array(100 * 32));
const FLUSH = '{"type":"flush"}';

const transcriptData = z.object({
  transcript: z.string(),
  request_id: z.string().nullish(),
  language_code: z.string().nullish(),
  language_probability: z.number().nullish(),
});
const eventsData = z.object({ signal_type: z.string().nullish(), event_type: z.string().nullish() });

/** One server message → events. */
export function decodeSarvamStt(data: string | Uint8Array): readonly SttWireEvent[] {
  const frame = parseTypedFrame(data, WHERE);
  switch (frame.type) {
    case 'data': {
      const parsed = transcriptData.safeParse(frame.data);
      if (!parsed.success) throw sarvamProtocolError(`${WHERE} sent a malformed data message: ${zodIssues(parsed.error)}`);
      const text = parsed.data.transcript.trim();
      // No confidence and no stream position: `metrics.audio_duration` is not documented as one.
      return text ? [{ type: 'final', text }] : [];
    }
    case 'events': {
      const parsed = eventsData.safeParse(frame.data ?? {});
      if (!parsed.success) throw sarvamProtocolError(`${WHERE} sent a malformed events message`);
      const signal = (parsed.data.signal_type ?? parsed.data.event_type ?? '').toUpperCase();
      return signal === 'START_SPEECH' || signal === 'SPEECH_START' ? [{ type: 'speechStarted' }] : [];
    }
    case 'error':
      return [{ type: 'error', error: errorFromFrame(frame.data, WHERE) }];
    default:
      return []; // A message type newer than this adapter.
  }
}

/** The wire; `keepAliveIntervalMs` shortens the silence keep-alive (tests against a fake with a short idle close). */
export function createSarvamSttWire(tuning: { readonly keepAliveIntervalMs?: number } = {}): SttWire {
  return {
    id: SARVAM_ID,
    capabilities: { interimResults: false, finalize: true, wordTimings: false, endOfTurn: false, edgeCapable: true, keepAlive: true },
    optionsSchema: sarvamSttOptionsSchema,

    connect(options) {
      const apiKey = requireSarvamKey(options.apiKey, 'STT');
      return { url: sarvamUrl(options.endpoint, SARVAM_STT_PATH, sttQuery(options)), headers: sarvamHeaders(apiKey) };
    },

    audio: sarvamAudioMessage,
    audioMessageMs: (options) => {
      const chunkMs = sarvamSttOptions(options.options).audioChunkMs;
      return { min: chunkMs, max: chunkMs };
    },
    keepAliveMessage: { intervalMs: tuning.keepAliveIntervalMs ?? SARVAM_STT_KEEPALIVE_MS, message: () => SILENCE_MESSAGE },
    finalize: () => FLUSH,
    decode: decodeSarvamStt,
    classifyClose: (code, reason) => sarvamCloseError(code, reason, WHERE),
    classifyHandshake: (status, body) => sarvamStatusError(status, handshakeDetail(body), WHERE),
  };
}

export const sarvamSttWire: SttWire = createSarvamSttWire();
