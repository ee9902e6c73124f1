import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions, SttWord } from '../../contracts/stt';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';
import { deepgramAuthHeaders, deepgramUrl } from './connection';
import { classifyDeepgramClose, classifyDeepgramHandshake, deepgramErrorFrame, deepgramProtocolError } from './errors';
import { deepgramSttOptionsSchema, parseDeepgramSttOptions } from './stt-options';

/**
 * Deepgram live transcription as two wire mappings: Nova on /v1/listen (windows of interim and final
 * Results) and Flux on /v2/listen (turns: TurnInfo events with a built-in end of turn).
 *
 * Both decoders are stateless, so one wire object serves every session:
 * - An interim carries only the text not yet final (Nova: the current window; Flux: the turn so far, which
 *   has no finals before its EndOfTurn). The engine joins finals and the latest interim itself
 *   (engine/endpointing.ts), so prefixing interims with earlier finals would repeat those words.
 * - Nova's `speech_final` and `UtteranceEnd` are silence rules, not a turn model: Nova emits finals (and
 *   SpeechStarted) but never `endOfTurn`, and the engine's own endpointing decides the turn. Flux's
 *   EndOfTurn is a model decision and becomes `final` + `endOfTurn`.
 */

export const DEEPGRAM_NOVA_DEFAULT_MODEL = 'nova-3';
export const DEEPGRAM_FLUX_DEFAULT_MODEL = 'flux-general-en';

/** Flux models live on /v2/listen; everything else on /v1/listen. */
export function isFluxModel(model: string | undefined): boolean {
  return model !== undefined && /^flux-/i.test(model);
}

const KEEP_ALIVE = '{"type":"KeepAlive"}';
const FINALIZE = '{"type":"Finalize"}';
const CLOSE_STREAM = '{"type":"CloseStream"}';
const FORCE_END_TURN = '{"type":"ForceEndTurn"}';
/** One silent sample: what Flux gets instead of an empty frame (an empty frame once meant "close" on Deepgram). */
const ONE_SILENT_SAMPLE = new Uint8Array(2);

// ---- connection ----

function connectNova(options: SttSessionOptions): { url: string; headers: Record<string, string> } {
  const headers = deepgramAuthHeaders(options.apiKey);
  const model = options.model ?? DEEPGRAM_NOVA_DEFAULT_MODEL;
  if (isFluxModel(model)) {
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `model "${model}" is a Flux model: it is served on /v2/listen by the deepgram Flux wire`, false, 'bad-request');
  }
  const o = parseDeepgramSttOptions(options.options);
  const query = new URLSearchParams({ model, encoding: 'linear16', sample_rate: '16000', channels: '1' });
  if (options.language) query.set('language', options.language);
  query.set('interim_results', String(o.interimResults));
  query.set('endpointing', String(o.endpointingMs));
  // UtteranceEnd is computed from interim word timings: Deepgram refuses it without interim results.
  if (o.utteranceEndMs !== false && o.interimResults) query.set('utterance_end_ms', String(o.utteranceEndMs));
  query.set('vad_events', String(o.vadEvents));
  query.set('smart_format', String(o.smartFormat));
  query.set('punctuate', String(o.punctuate));
  for (const term of o.keyterms) query.append('keyterm', term);
  if (o.mipOptOut !== undefined) query.set('mip_opt_out', String(o.mipOptOut));
  return { url: deepgramUrl(options.endpoint, '/v1/listen', query), headers };
}

function connectFlux(options: SttSessionOptions): { url: string; headers: Record<string, string> } {
  const headers = deepgramAuthHeaders(options.apiKey);
  const model = options.model ?? DEEPGRAM_FLUX_DEFAULT_MODEL;
  if (!isFluxModel(model)) {
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `model "${model}" is not a Flux model: it is served on /v1/listen by the deepgram Nova wire`, false, 'bad-request');
  }
  const o = parseDeepgramSttOptions(options.options);
  // Flux's documented parameters carry no `channels`: it takes mono only.
  const query = new URLSearchParams({ model, encoding: 'linear16', sample_rate: '16000' });
  if (o.eotThreshold !== undefined) query.set('eot_threshold', String(o.eotThreshold));
  if (o.eagerEotThreshold !== undefined) query.set('eager_eot_threshold', String(o.eagerEotThreshold));
  if (o.eotTimeoutMs !== undefined) query.set('eot_timeout_ms', String(o.eotTimeoutMs));
  // The multilingual model takes a hint; the English one has its language in its name.
  if (/multi/i.test(model) && options.language && options.language !== 'multi') query.set('language_hint', options.language);
  for (const term of o.keyterms) query.append('keyterm', term);
  if (o.mipOptOut !== undefined) query.set('mip_opt_out', String(o.mipOptOut));
  return { url: deepgramUrl(options.endpoint, '/v2/listen', query), headers };
}

// ---- server messages ----

type Read<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly events: readonly SttWireEvent[] };

/** A JSON text frame → its `type` and body; anything else → the events it stands for (none, or a protocol error). */
function readFrame(data: string | Uint8Array): Read<{ type: string; body: object; raw: string }> {
  // Deepgram listen never sends binary frames; one would be meaningless, not harmful.
  if (typeof data !== 'string') return { ok: false, events: [] };
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return { ok: false, events: [{ type: 'error', error: deepgramProtocolError('a server message is not JSON', data) }] };
  }
  if (!body || typeof body !== 'object' || typeof (body as { type?: unknown }).type !== 'string') {
    return { ok: false, events: [{ type: 'error', error: deepgramProtocolError('a server message has no type', data) }] };
  }
  return { ok: true, value: { type: (body as { type: string }).type, body, raw: data } };
}

function readAs<T>(schema: z.ZodType<T>, body: object, data: string, what: string): Read<T> {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const problem = result.error.issues[0];
  const where = problem ? `${problem.path.join('.') || '(message)'}: ${problem.message}` : 'invalid';
  return { ok: false, events: [{ type: 'error', error: deepgramProtocolError(`${what} does not match Deepgram's format (${where})`, data) }] };
}

const secondsToMs = (s: number) => Math.round(s * 1000);

const novaWordSchema = z.object({
  word: z.string(),
  start: z.number(),
  end: z.number(),
  confidence: z.number().optional(),
  punctuated_word: z.string().optional(),
});

const resultsSchema = z.object({
  type: z.literal('Results'),
  start: z.number(),
  duration: z.number(),
  is_final: z.boolean().default(false),
  speech_final: z.boolean().default(false),
  from_finalize: z.boolean().default(false),
  channel: z.object({
    alternatives: z.array(z.object({ transcript: z.string(), confidence: z.number().optional(), words: z.array(novaWordSchema).optional() })),
  }),
});

const errorFrameSchema = z.object({ code: z.string().optional(), description: z.string().optional() });

function novaWords(words: readonly z.output<typeof novaWordSchema>[] | undefined): SttWord[] | undefined {
  return words?.map((w) => ({ word: w.punctuated_word ?? w.word, startMs: secondsToMs(w.start), endMs: secondsToMs(w.end), confidence: w.confidence }));
}

/** Nova /v1/listen server message → events. */
export function decodeNova(data: string | Uint8Array): readonly SttWireEvent[] {
  const frame = readFrame(data);
  if (!frame.ok) return frame.events;
  const { type, body, raw } = frame.value;
  switch (type) {
    case 'Results': {
      const read = readAs(resultsSchema, body, raw, 'a Results message');
      if (!read.ok) return read.events;
      const r = read.value;
      const best = r.channel.alternatives[0];
      const transcript = best?.transcript.trim() ?? '';
      if (!r.is_final) return transcript ? [{ type: 'interim', text: transcript }] : [];
      const final: SttWireEvent = {
        type: 'final',
        text: transcript,
        confidence: best?.confidence,
        words: novaWords(best?.words),
        // Stream time of this connection where the window ends: the base drops replay audio up to here.
        audioEndMs: secondsToMs(r.start + r.duration),
      };
      return r.from_finalize ? [final, { type: 'finalized' }] : [final];
    }
    case 'SpeechStarted':
      return [{ type: 'speechStarted' }];
    case 'Metadata':
      // Sent last, after CloseStream: everything has been delivered.
      return [{ type: 'closed' }];
    case 'Error':
      return decodeErrorFrame(body, raw);
    default:
      // UtteranceEnd (a silence rule; the engine has its own) and messages newer than this adapter.
      return [];
  }
}

function decodeErrorFrame(body: object, data: string): readonly SttWireEvent[] {
  const read = readAs(errorFrameSchema, body, data, 'an Error message');
  return read.ok ? [{ type: 'error', error: deepgramErrorFrame(read.value.code, read.value.description) }] : read.events;
}

const fluxWordSchema = z.object({ word: z.string(), start: z.number(), end: z.number(), confidence: z.number().optional() });

const turnInfoSchema = z.object({
  type: z.literal('TurnInfo'),
  event: z.string(),
  transcript: z.string().default(''),
  words: z.array(fluxWordSchema).default([]),
  audio_window_end: z.number().optional(),
  trigger: z.string().optional(),
});

/** Flux /v2/listen server message → events. */
export function decodeFlux(data: string | Uint8Array): readonly SttWireEvent[] {
  const frame = readFrame(data);
  if (!frame.ok) return frame.events;
  const { type, body, raw } = frame.value;
  switch (type) {
    case 'TurnInfo': {
      const read = readAs(turnInfoSchema, body, raw, 'a TurnInfo message');
      if (!read.ok) return read.events;
      const t = read.value;
      const text = t.transcript.trim();
      switch (t.event) {
        case 'StartOfTurn':
          return text ? [{ type: 'speechStarted' }, { type: 'interim', text }] : [{ type: 'speechStarted' }];
        case 'Update':
        case 'EagerEndOfTurn':
        case 'TurnResumed':
          // The transcript is cumulative within the turn, and nothing of the turn is final yet.
          return text ? [{ type: 'interim', text }] : [];
        case 'EndOfTurn': {
          const confidences = t.words.map((w) => w.confidence).filter((c): c is number => c !== undefined);
          const events: SttWireEvent[] = [
            {
              type: 'final',
              text,
              confidence: confidences.length ? confidences.reduce((a, b) => a + b, 0) / confidences.length : undefined,
              words: t.words.map((w) => ({ word: w.word, startMs: secondsToMs(w.start), endMs: secondsToMs(w.end), confidence: w.confidence })),
              audioEndMs: t.audio_window_end === undefined ? undefined : secondsToMs(t.audio_window_end),
            },
            { type: 'endOfTurn', text },
          ];
          // ForceEndTurn is how Flux flushes; its EndOfTurn says "manual".
          if (t.trigger === 'manual') events.push({ type: 'finalized' });
          return events;
        }
        default:
          return [];
      }
    }
    case 'Error':
      return decodeErrorFrame(body, raw);
    default:
      // Connected, ConfigureSuccess/ConfigureFailure (this adapter never configures mid-stream), newer messages.
      return [];
  }
}

// ---- the wires ----

/** Nova live (/v1/listen): interim and final windows, Finalize, KeepAlive, CloseStream → Metadata. */
export const deepgramSttWire: SttWire = {
  id: 'deepgram',
  capabilities: { interimResults: true, finalize: true, wordTimings: true, endOfTurn: false, edgeCapable: true, keepAlive: true },
  optionsSchema: deepgramSttOptionsSchema,
  connect: connectNova,
  // Never an empty binary frame (it used to mean "close stream"); a KeepAlive says nothing instead.
  audio: (chunk) => (chunk.byteLength === 0 ? KEEP_ALIVE : chunk),
  // Deepgram closes after 10 s without audio or KeepAlive (1011 NET-0001); its docs say every 3–5 s.
  keepAliveMessage: { intervalMs: 4000, message: () => KEEP_ALIVE },
  finalize: () => FINALIZE,
  closeMessage: () => CLOSE_STREAM,
  decode: decodeNova,
  classifyClose: classifyDeepgramClose,
  classifyHandshake: classifyDeepgramHandshake,
};

/**
 * Flux (/v2/listen): turns with a model end of turn. KeepAlive is documented for Nova only, so none is sent
 * (an unknown message could end the stream); the engine streams every frame, silence included, so Flux is
 * never idle during a call, and an idle close (1011 NET-0001) would be retried with replay. Finalize is
 * ForceEndTurn (its EndOfTurn carries trigger "manual"; ignored by Flux when no turn is in progress).
 * No close message: Flux's CloseStream yields only Updates (no EndOfTurn, so no final) and then closes
 * without a status code, so it would give nothing but a wait; the socket is simply closed with 1000.
 */
export const deepgramFluxWire: SttWire = {
  id: 'deepgram',
  capabilities: { interimResults: true, finalize: true, wordTimings: true, endOfTurn: true, edgeCapable: true, keepAlive: false },
  optionsSchema: deepgramSttOptionsSchema,
  connect: connectFlux,
  audio: (chunk) => (chunk.byteLength === 0 ? ONE_SILENT_SAMPLE : chunk),
  finalize: () => FORCE_END_TURN,
  decode: decodeFlux,
  classifyClose: classifyDeepgramClose,
  classifyHandshake: classifyDeepgramHandshake,
};
