import { z } from 'zod';
import type { AudioFormat } from '../../audio/format';
import { ProviderError } from '../../contracts/errors';
import type { TtsStreamOptions } from '../../contracts/tts';
import { decodeBase64 } from '../../telephony/base64';
import type { TtsWire, TtsWireEvent, TtsWireUtterance } from '../streaming/tts-wire';
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
  keyFingerprint,
  parseJsonFrame,
  requireCartesiaKey,
  zodIssues,
} from './protocol';

/**
 * Cartesia Sonic streaming TTS (`/tts/websocket`) as a pure mapping (reference/providers.md §2.3).
 *
 * One utterance = one context (`context_id` = the base's id), many per socket (multiplexed). Every piece is
 * a generation request with `continue:true` and the same fields each time (the API requires them identical
 * within a context), followed by a manual flush; the server's `flush_done` becomes `pieceDone`, so the base
 * knows which piece later audio voices. (`flush_id` is not used as a piece index: its numbering base is not
 * pinned down by the docs, while the order of `flush_done` is.) `end()` sends `transcript:""` with
 * `continue:false`; `done` arrives after the context's last audio. Cancel is `{context_id, cancel:true}` on the
 * same socket. Word timestamps are seconds from the start of the context's audio, so they are already
 * relative to the utterance.
 */

export const cartesiaTtsOptionsSchema = z.object({
  cartesiaVersion: cartesiaVersionSchema,
  /**
   * How long the server may wait for more text before generating (ms). Sent explicitly because the default
   * changed between versions (0 in 2025-04-16, 3000 in the 2026 SDK); 0–1000 is valid in both. Every piece
   * is flushed anyway, so this only matters inside a piece.
   */
  maxBufferDelayMs: z.number().int().min(0).max(1000).default(0),
});
export type CartesiaTtsOptions = z.infer<typeof cartesiaTtsOptionsSchema>;

export const CARTESIA_TTS_DEFAULT_MODEL = 'sonic-2';
const WHERE = 'cartesia TTS';
const SAMPLE_RATES = [8000, 16000, 22050, 24000, 44100, 48000] as const;
const ENCODINGS = { pcm16: 'pcm_s16le', mulaw: 'pcm_mulaw', alaw: 'pcm_alaw' } as const;

export const CARTESIA_TTS_FORMATS: readonly AudioFormat[] = [
  ...SAMPLE_RATES.map((sampleRateHz) => ({ encoding: 'pcm16' as const, sampleRateHz })),
  { encoding: 'mulaw', sampleRateHz: 8000 },
  { encoding: 'alaw', sampleRateHz: 8000 },
];

/** The `output_format` for a requested format, or a non-retryable error naming what Cartesia can do. */
export function cartesiaOutputFormat(format: AudioFormat): { container: 'raw'; encoding: string; sample_rate: number } {
  const encoding = ENCODINGS[format.encoding];
  if (!encoding || !(SAMPLE_RATES as readonly number[]).includes(format.sampleRateHz)) {
    throw new ProviderError(
      'CARTESIA_FORMAT',
      `cartesia TTS cannot produce ${format.encoding} at ${format.sampleRateHz} Hz over WebSocket (raw pcm_s16le, pcm_mulaw or pcm_alaw at ${SAMPLE_RATES.join('/')} Hz)`,
      false,
      'bad-request',
    );
  }
  return { container: 'raw', encoding, sample_rate: format.sampleRateHz };
}

function optionsOf(options: TtsStreamOptions): CartesiaTtsOptions {
  const parsed = cartesiaTtsOptionsSchema.safeParse(options.options);
  if (!parsed.success) throw cartesiaOptionsError(parsed.error, WHERE);
  return parsed.data;
}

/** Transcripts are concatenated verbatim, and the engine's pieces are trimmed: each one ends with a space. */
function spaced(text: string): string {
  return text === '' || /\s$/.test(text) ? text : `${text} `;
}

const contextId = z.string().nullish();
const chunkFrame = z.object({ type: z.literal('chunk'), context_id: contextId, data: z.string() });
const timestampsFrame = z.object({
  type: z.literal('timestamps'),
  context_id: contextId,
  word_timestamps: z.object({ words: z.array(z.string()), start: z.array(z.number()), end: z.array(z.number()) }),
});
const markerFrame = z.object({ type: z.enum(['flush_done', 'done']), context_id: contextId });

function parseFrame<T extends z.ZodType>(schema: T, json: unknown, kind: string): z.infer<T> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw cartesiaProtocolError(`${WHERE} sent a malformed ${kind} frame: ${zodIssues(parsed.error)}`);
  return parsed.data;
}

function withContext<E extends TtsWireEvent>(event: E, id: string | null | undefined): E {
  return id ? { ...event, contextId: id } : event;
}

export const cartesiaTtsWire: TtsWire = {
  id: CARTESIA_ID,
  capabilities: {
    wordTimings: true,
    outputFormats: CARTESIA_TTS_FORMATS,
    edgeCapable: true,
    multiplexed: true,
    cancelWithoutClosing: true,
    // Idle sockets are closed after 5 minutes, far beyond the pool's idle time: nothing to keep alive.
    keepAlive: false,
  },
  optionsSchema: cartesiaTtsOptionsSchema,

  connect(options) {
    const apiKey = requireCartesiaKey(options.apiKey, 'TTS');
    const opts = optionsOf(options);
    cartesiaOutputFormat(options.format);
    if (!options.voice) throw new ProviderError('CARTESIA_NO_VOICE', 'cartesia TTS needs a voice id: set `voice` in the tts block', false, 'bad-request');
    return { url: cartesiaUrl(options.endpoint, '/tts/websocket', {}), headers: cartesiaHeaders(apiKey, opts.cartesiaVersion) };
  },

  // Voice, model and format travel in each request, so one socket serves any of them.
  connectionKey(options) {
    const version = cartesiaTtsOptionsSchema.safeParse(options.options).data?.cartesiaVersion ?? '';
    return `${cartesiaUrl(options.endpoint, '/tts/websocket', {})}|${version}|${keyFingerprint(options.apiKey ?? '')}`;
  },

  utterance(contextId, options): TtsWireUtterance {
    const opts = optionsOf(options);
    // Every request of a context repeats these fields unchanged.
    const fields = {
      model_id: options.model ?? CARTESIA_TTS_DEFAULT_MODEL,
      voice: { mode: 'id', id: options.voice ?? '' },
      language: cartesiaLanguage(options.language),
      context_id: contextId,
      output_format: cartesiaOutputFormat(options.format),
      add_timestamps: true,
      max_buffer_delay_ms: opts.maxBufferDelayMs,
    };
    const request = (transcript: string, more: boolean, flush?: true) =>
      JSON.stringify(flush ? { ...fields, transcript, continue: more, flush } : { ...fields, transcript, continue: more });
    return {
      begin: () => [],
      text: (text) => [request(spaced(text), true), request('', true, true)],
      end: () => [request('', false)],
      cancel: () => [JSON.stringify({ context_id: contextId, cancel: true })],
    };
  },

  decode(data) {
    const json = parseJsonFrame(data, WHERE);
    const type = json && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
    switch (type) {
      case 'chunk': {
        const frame = parseFrame(chunkFrame, json, 'chunk');
        const audio = decodeBase64(frame.data);
        if (!audio) throw cartesiaProtocolError(`${WHERE} sent a chunk whose data is not base64`);
        return [withContext({ type: 'audio', data: audio }, frame.context_id)];
      }
      case 'timestamps': {
        const frame = parseFrame(timestampsFrame, json, 'timestamps');
        const { words, start, end } = frame.word_timestamps;
        if (start.length !== words.length || end.length !== words.length) {
          throw cartesiaProtocolError(`${WHERE} sent timestamps for ${words.length} words with ${start.length} starts and ${end.length} ends`);
        }
        const timings = words.map((word, i) => ({ word, startMs: Math.round(start[i]! * 1000), endMs: Math.round(end[i]! * 1000) }));
        return timings.length ? [withContext({ type: 'words', words: timings }, frame.context_id)] : [];
      }
      case 'flush_done':
      case 'done': {
        const frame = parseFrame(markerFrame, json, type);
        return [withContext({ type: type === 'done' ? 'done' : 'pieceDone' }, frame.context_id)];
      }
      case 'error': {
        const frame = parseFrame(cartesiaErrorFrame, json, 'error');
        return [withContext({ type: 'error', error: cartesiaFrameError(frame, WHERE) }, frame.context_id)];
      }
      default:
        if (typeof type !== 'string') throw cartesiaProtocolError(`${WHERE} sent a frame without a type: ${String(data).slice(0, 80)}`);
        return []; // phoneme_timestamps and anything newer.
    }
  },

  classifyClose: (code, reason) => cartesiaCloseError(code, reason, WHERE),
  classifyHandshake: (status, body) => cartesiaStatusError(status, handshakeDetail(body), WHERE),
};
