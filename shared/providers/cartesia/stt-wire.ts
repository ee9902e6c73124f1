import { z } from 'zod';
import type { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions, SttWord } from '../../contracts/stt';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';
import {
  CARTESIA_ID,
  cartesiaCloseError,
  cartesiaErrorFrame,
  cartesiaFrameError,
  cartesiaHeaders,
  cartesiaLanguage,
  cartesiaOptionsError,
  cartesiaProtocolError,
  cartesiaStatusError,
  cartesiaUrl,
  cartesiaVersionSchema,
  handshakeDetail,
  parseJsonFrame,
  requireCartesiaKey,
  zodIssues,
} from './protocol';

/**
 * Cartesia Ink streaming STT (`/stt/websocket`, manual-finalize endpoint) as a pure mapping
 * (reference/providers.md §1.6).
 *
 * - Audio: binary PCM16 LE 16 kHz mono (`encoding=pcm_s16le&sample_rate=16000`).
 * - `finalize` (a plain text frame, not JSON) → the server flushes and answers `flush_done`.
 * - Graceful end: the `done` text frame (2025-04-16 spec; the 2026 SDK says `close`, which the fake also
 *   accepts) → the server flushes, answers `done` and closes.
 * - `transcript` frames: `is_final:false` → interim, `is_final:true` → final. The 2026 SDK says each text is a
 *   delta since the previous final: every final is its own append-only segment, passed on verbatim (never
 *   trimmed here; the engine joins segments).
 * - No keep-alive message exists and the server closes a socket that got no audio for 20 s. The contract's
 *   keep-alive can only send text, and text is not audio to Cartesia, so `keepAlive` is false: the engine
 *   streams audio (silence included) all call long; if it ever stops, the idle close is classified
 *   retryable and the base reconnects (with replay) on the next audio.
 */

export const cartesiaSttOptionsSchema = z.object({
  cartesiaVersion: cartesiaVersionSchema,
  /** ink-whisper's own endpointing (auto-finalize after this much silence, seconds); unset = server default. */
  maxSilenceDurationSecs: z.number().min(0).max(10).optional(),
  /** ink-whisper's speech gate (0–1); unset = server default. */
  minVolume: z.number().min(0).max(1).optional(),
});
export type CartesiaSttOptions = z.infer<typeof cartesiaSttOptionsSchema>;

export const CARTESIA_STT_DEFAULT_MODEL = 'ink-whisper';
const WHERE = 'cartesia STT';

const transcriptFrame = z.object({
  type: z.literal('transcript'),
  text: z.string(),
  is_final: z.boolean(),
  duration: z.number().nullish(),
  language: z.string().nullish(),
  words: z.array(z.object({ word: z.string(), start: z.number(), end: z.number() })).nullish(),
});

/** Options normally arrive validated (registry); parsed again so defaults apply to raw objects too. */
function optionsOf(options: SttSessionOptions): CartesiaSttOptions {
  const parsed = cartesiaSttOptionsSchema.safeParse(options.options);
  if (!parsed.success) throw cartesiaOptionsError(parsed.error, WHERE);
  return parsed.data;
}

function decodeTranscript(frame: z.infer<typeof transcriptFrame>): SttWireEvent {
  if (!frame.is_final) return { type: 'interim', text: frame.text };
  const words: SttWord[] | undefined = frame.words?.map((w) => ({ word: w.word, startMs: Math.round(w.start * 1000), endMs: Math.round(w.end * 1000) }));
  // No audioEndMs: `duration` is the segment's length, not a position in the stream, and word times are not
  // documented as stream time; the base keeps its safety margin instead.
  return words && words.length ? { type: 'final', text: frame.text, words } : { type: 'final', text: frame.text };
}

export const cartesiaSttWire: SttWire = {
  id: CARTESIA_ID,
  capabilities: { interimResults: true, finalize: true, wordTimings: true, endOfTurn: false, edgeCapable: true, keepAlive: false },
  optionsSchema: cartesiaSttOptionsSchema,

  connect(options) {
    const apiKey = requireCartesiaKey(options.apiKey, 'STT');
    const opts = optionsOf(options);
    const query: Record<string, string> = {
      model: options.model ?? CARTESIA_STT_DEFAULT_MODEL,
      encoding: 'pcm_s16le',
      sample_rate: '16000',
      language: cartesiaLanguage(options.language),
    };
    if (opts.minVolume !== undefined) query.min_volume = String(opts.minVolume);
    if (opts.maxSilenceDurationSecs !== undefined) query.max_silence_duration_secs = String(opts.maxSilenceDurationSecs);
    return { url: cartesiaUrl(options.endpoint, '/stt/websocket', query), headers: cartesiaHeaders(apiKey, opts.cartesiaVersion) };
  },

  audio: (chunk) => chunk,
  finalize: () => 'finalize',
  closeMessage: () => 'done',

  decode(data) {
    const json = parseJsonFrame(data, WHERE);
    const type = json && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
    switch (type) {
      case 'transcript': {
        const frame = transcriptFrame.safeParse(json);
        if (!frame.success) throw cartesiaProtocolError(`${WHERE} sent a malformed transcript: ${zodIssues(frame.error)}`);
        return [decodeTranscript(frame.data)];
      }
      case 'flush_done':
      case 'done':
        return [{ type: type === 'done' ? 'closed' : 'finalized' }];
      case 'error': {
        const frame = cartesiaErrorFrame.safeParse(json);
        if (!frame.success) throw cartesiaProtocolError(`${WHERE} sent a malformed error frame`);
        return [{ type: 'error', error: cartesiaFrameError(frame.data, WHERE) }];
      }
      default:
        if (typeof type !== 'string') throw cartesiaProtocolError(`${WHERE} sent a frame without a type: ${String(data).slice(0, 80)}`);
        return []; // A message type newer than this adapter: ignore.
    }
  },

  classifyClose: (code, reason): ProviderError => cartesiaCloseError(code, reason, WHERE),
  classifyHandshake: (status, body) => cartesiaStatusError(status, handshakeDetail(body), WHERE),
};
