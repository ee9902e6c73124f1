import { z } from 'zod';
import { ALAW_8K, MULAW_8K, type AudioFormat } from '../../audio/format';
import { ProviderError } from '../../contracts/errors';
import type { TtsStreamOptions } from '../../contracts/tts';
import type { TtsWire, TtsWireEvent, TtsWireUtterance } from '../streaming/tts-wire';
import { deepgramAuthHeaders, deepgramUrl } from './connection';
import { classifyDeepgramClose, classifyDeepgramHandshake, deepgramErrorFrame, deepgramProtocolError } from './errors';

/**
 * Deepgram Aura over /v1/speak: one utterance at a time per socket (Deepgram's text buffer is per socket),
 * sockets reused across turns; `Clear` cancels in place and is acknowledged with `Cleared`.
 *
 * Every piece is sent as `Speak` + `Flush`, so each `Flushed` marks one piece voiced (`pieceDone`): audio
 * is attributed to the right piece, and after end() the Flushed of the last piece is the end of the
 * utterance (end() itself sends nothing). The cost is one flush per piece against Deepgram's limit of 20
 * flushes per 60 s on a socket; the engine's pieces are sentences (a few seconds of speech each), which stays
 * under it in conversation. Past the limit Deepgram ignores flushes and says so in a Warning, so a
 * Warning about flushes becomes a retryable error (the Flushed it ignored would never come: the
 * utterance would hang); other Warnings are advisory and ignored. Metadata is ignored; no word timings.
 */

export const DEEPGRAM_TTS_DEFAULT_MODEL = 'aura-2-thalia-en';

const PCM_RATES_HZ = [8000, 16_000, 24_000, 32_000, 48_000] as const;
/** G.711 at 8 kHz is telephony's; 16 kHz is accepted too (documented for Deepgram's v2 speak). */
const G711_RATES_HZ = [8000, 16_000] as const;

const outputFormats: readonly AudioFormat[] = Object.freeze([
  ...PCM_RATES_HZ.map((sampleRateHz): AudioFormat => Object.freeze({ encoding: 'pcm16', sampleRateHz })),
  MULAW_8K,
  ALAW_8K,
]);

export const deepgramTtsOptionsSchema = z.object({
  /** Speaking rate multiplier (Deepgram's `speed`). */
  speed: z.number().positive().max(4).optional(),
  /** Opt out of Deepgram's model improvement programme (priced differently). */
  mipOptOut: z.boolean().optional(),
});

function parseOptions(options: Readonly<Record<string, unknown>>): z.output<typeof deepgramTtsOptionsSchema> {
  const parsed = deepgramTtsOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `options of the deepgram TTS block are invalid: ${issues}`, false, 'bad-request');
  }
  return parsed.data;
}

/** The AudioFormat → Deepgram `encoding` + `sample_rate`, or a bad-request error naming what it can do. */
export function deepgramSpeakFormat(format: AudioFormat): { encoding: 'linear16' | 'mulaw' | 'alaw'; sampleRate: number } {
  const encoding = format.encoding === 'pcm16' ? 'linear16' : format.encoding;
  const rates: readonly number[] = encoding === 'linear16' ? PCM_RATES_HZ : G711_RATES_HZ;
  if (!rates.includes(format.sampleRateHz)) {
    throw new ProviderError(
      'DEEPGRAM_BAD_REQUEST',
      `deepgram speak cannot produce ${format.encoding} at ${format.sampleRateHz} Hz (${encoding} rates: ${rates.join(', ')})`,
      false,
      'bad-request',
    );
  }
  return { encoding, sampleRate: format.sampleRateHz };
}

/** The block's `voice` is a Deepgram model name (`aura-2-thalia-en`), as is its `model`; voice wins. */
function speakModel(options: TtsStreamOptions): string {
  return options.voice ?? options.model ?? DEEPGRAM_TTS_DEFAULT_MODEL;
}

function connect(options: TtsStreamOptions): { url: string; headers: Record<string, string> } {
  const headers = deepgramAuthHeaders(options.apiKey);
  const { encoding, sampleRate } = deepgramSpeakFormat(options.format);
  const o = parseOptions(options.options);
  const query = new URLSearchParams({ model: speakModel(options), encoding, sample_rate: String(sampleRate) });
  if (o.speed !== undefined) query.set('speed', String(o.speed));
  if (o.mipOptOut !== undefined) query.set('mip_opt_out', String(o.mipOptOut));
  return { url: deepgramUrl(options.endpoint, '/v1/speak', query), headers };
}

const FLUSH = '{"type":"Flush"}';
const CLEAR = '{"type":"Clear"}';

function utterance(): TtsWireUtterance {
  return {
    begin: () => [],
    text(text) {
      // A blank piece still gets its Flush, so Flushed messages keep counting pieces.
      return text.trim() ? [JSON.stringify({ type: 'Speak', text }), FLUSH] : [FLUSH];
    },
    // Every piece was flushed already: the last piece's Flushed ends the utterance.
    end: () => [],
    cancel: () => [CLEAR],
  };
}

const warningSchema = z.object({ description: z.string().optional(), code: z.string().optional() });
const errorSchema = z.object({ code: z.string().optional(), description: z.string().optional(), err_code: z.string().optional(), err_msg: z.string().optional() });

/** Speak server message → events. */
export function decodeSpeak(data: string | Uint8Array): readonly TtsWireEvent[] {
  // Binary frames are raw audio in the requested format. Copied: the socket may reuse its buffer.
  if (typeof data !== 'string') return data.byteLength ? [{ type: 'audio', data: data.slice() }] : [];
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return [{ type: 'error', error: deepgramProtocolError('a speak message is not JSON', data) }];
  }
  const type = body && typeof body === 'object' ? (body as { type?: unknown }).type : undefined;
  if (typeof type !== 'string') return [{ type: 'error', error: deepgramProtocolError('a speak message has no type', data) }];
  switch (type) {
    case 'Flushed':
      return [{ type: 'pieceDone' }];
    case 'Cleared':
      return [{ type: 'cancelled' }];
    case 'Warning': {
      const w = warningSchema.safeParse(body);
      const said = w.success ? [w.data.code, w.data.description].filter(Boolean).join(': ') : '';
      if (/flush/i.test(said)) {
        return [{ type: 'error', error: new ProviderError('DEEPGRAM_FLUSH_LIMIT', `deepgram ignored a flush (${said})`, true, 'rate-limit') }];
      }
      return [];
    }
    case 'Error': {
      const e = errorSchema.safeParse(body);
      const error = e.success ? deepgramErrorFrame(e.data.code ?? e.data.err_code, e.data.description ?? e.data.err_msg) : deepgramErrorFrame(undefined, undefined);
      return [{ type: 'error', error }];
    }
    default:
      // Metadata (model name and ids, on connect) and messages newer than this adapter.
      return [];
  }
}

/**
 * `lastPieceEndsUtterance`: Deepgram has no end-of-utterance message, so the base must take the pieceDone of
 * the last piece after end() as `done` (the contract's "or `pieceDone` for the last piece"). Not yet a
 * TtsWire field: declared here so the base can read it once it is (see the issue notes).
 */
export const deepgramTtsWire: TtsWire = {
  id: 'deepgram',
  lastPieceEndsUtterance: true,
  capabilities: { wordTimings: false, outputFormats, edgeCapable: true, multiplexed: false, cancelWithoutClosing: true, keepAlive: false },
  optionsSchema: deepgramTtsOptionsSchema,
  connect,
  // Everything fixed per socket is in the URL (model, format, options); the key decides whose socket it is.
  connectionKey: (options) => `${connect(options).url}\n${options.apiKey ?? ''}`,
  utterance,
  decode: decodeSpeak,
  classifyClose: classifyDeepgramClose,
  classifyHandshake: classifyDeepgramHandshake,
};
