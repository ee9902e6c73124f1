/**
 * Wire mappings of the reference protocol (described in ../fakes/reference.ts): what a vendor file looks like,
 * small enough to test the shared socket base and the conformance suites on their own. Variants switch the
 * capabilities the suites branch on.
 */
import { z } from 'zod';
import { MULAW_8K, PIPELINE_FORMAT } from '../../../shared/audio/format';
import { ProviderError } from '../../../shared/contracts/errors';
import type { ErrorKind } from '../../../shared/contracts/errors';
import type { TtsStreamOptions } from '../../../shared/contracts/tts';
import type { SttWire, SttWireEvent } from '../../../shared/providers/streaming/stt-wire';
import type { TtsWire, TtsWireEvent } from '../../../shared/providers/streaming/tts-wire';

const DEFAULT_BASE = 'wss://reference.invalid';

function authHeaders(id: string, apiKey: string | undefined): Record<string, string> {
  if (!apiKey) throw new ProviderError(`${id.toUpperCase()}_AUTH`, `no API key for provider "${id}": add a ${id} credential to the project`, false, 'auth');
  return { 'x-api-key': apiKey };
}

export function classifyReferenceHandshake(id: string, status: number | undefined, body: string): ProviderError {
  const code = id.toUpperCase();
  const detail = body ? ` (${body})` : '';
  if (status === 401 || status === 403) return new ProviderError(`${code}_AUTH`, `the API key was rejected (${status})${detail}`, false, 'auth');
  if (status === 429) return new ProviderError(`${code}_RATE_LIMIT`, `too many streams (429)${detail}`, true, 'rate-limit');
  if (status === undefined || status >= 500) return new ProviderError(`${code}_UNAVAILABLE`, `the service is unavailable (${status ?? 'network'})${detail}`, true, 'unavailable');
  return new ProviderError(`${code}_BAD_REQUEST`, `the handshake was refused (${status})${detail}`, false, 'bad-request');
}

function classifyReferenceClose(id: string, code: number, reason: string): ProviderError | undefined {
  if (code === 1000) return undefined;
  if (code === 4001) return new ProviderError(`${id.toUpperCase()}_AUTH`, `the API key was rejected (${reason})`, false, 'auth');
  return new ProviderError(`${id.toUpperCase()}_CLOSED`, `the connection closed (${code} ${reason})`, true, 'unavailable');
}

const ErrorMessage = z.object({ type: z.literal('error'), kind: z.string(), message: z.string(), context: z.string().optional() });
const ERROR_KINDS: Record<string, { kind: ErrorKind; retryable: boolean }> = {
  auth: { kind: 'auth', retryable: false },
  'bad-request': { kind: 'bad-request', retryable: false },
  'rate-limit': { kind: 'rate-limit', retryable: true },
  internal: { kind: 'unavailable', retryable: true },
};

function errorFrom(id: string, message: z.infer<typeof ErrorMessage>): ProviderError {
  const mapped = ERROR_KINDS[message.kind] ?? { kind: 'internal', retryable: false };
  return new ProviderError(`${id.toUpperCase()}_${message.kind.toUpperCase().replace(/-/g, '_')}`, message.message, mapped.retryable, mapped.kind);
}

function protocolError(id: string, detail: string): ProviderError {
  return new ProviderError(`${id.toUpperCase()}_PROTOCOL`, `unexpected message from the server: ${detail}`, false, 'protocol');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---- STT -------------------------------------------------------------------------------------------------

const SttMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('interim'), text: z.string() }),
  z.object({ type: z.literal('final'), text: z.string(), end_ms: z.number().optional() }),
  z.object({ type: z.literal('finalized') }),
  z.object({ type: z.literal('closed') }),
  ErrorMessage,
]);

export interface ReferenceSttVariant {
  readonly id?: string;
  /** Keep-alive interval (default 200 ms); 0: the protocol has none. */
  readonly keepAliveMs?: number;
  /** The protocol has finalize (default true). */
  readonly finalize?: boolean;
  /** Interim results (default true; false: the wire ignores them, finals only). */
  readonly interim?: boolean;
  /** Finals say where their audio ends (default true). */
  readonly audioEnd?: boolean;
  /** Malformed messages throw out of decode instead of becoming protocol errors (the base must cope with both). */
  readonly throwOnMalformed?: boolean;
}

export function referenceSttWire(variant: ReferenceSttVariant = {}): SttWire {
  const id = variant.id ?? 'reference';
  const keepAliveMs = variant.keepAliveMs ?? 200;
  const interim = variant.interim ?? true;
  const malformed = (detail: string): SttWireEvent[] => {
    if (variant.throwOnMalformed) throw new Error(`malformed: ${detail}`);
    return [{ type: 'error', error: protocolError(id, detail) }];
  };
  return {
    id,
    capabilities: { interimResults: interim, finalize: variant.finalize ?? true, wordTimings: false, endOfTurn: false, edgeCapable: true, keepAlive: keepAliveMs > 0 },
    optionsSchema: z.object({}).passthrough(),
    connect(options) {
      const query = new URLSearchParams({ language: options.language, ...(options.model ? { model: options.model } : {}) });
      return { url: `${options.endpoint ?? DEFAULT_BASE}/ref/stt?${query}`, headers: authHeaders(id, options.apiKey) };
    },
    audio: (chunk) => chunk,
    ...(keepAliveMs > 0 ? { keepAliveMessage: { intervalMs: keepAliveMs, message: () => '{"type":"keepalive"}' } } : {}),
    ...((variant.finalize ?? true) ? { finalize: () => '{"type":"finalize"}' } : {}),
    closeMessage: () => '{"type":"close"}',
    decode(data) {
      if (typeof data !== 'string') return malformed(`${data.byteLength} binary bytes`);
      const parsed = SttMessage.safeParse(parseJson(data));
      if (!parsed.success) return malformed(data.slice(0, 80));
      const m = parsed.data;
      switch (m.type) {
        case 'interim':
          return interim ? [{ type: 'interim', text: m.text }] : [];
        case 'final':
          return [{ type: 'final', text: m.text, ...(variant.audioEnd !== false && m.end_ms !== undefined ? { audioEndMs: m.end_ms } : {}) }];
        case 'finalized':
          return [{ type: 'finalized' }];
        case 'closed':
          return [{ type: 'closed' }];
        case 'error':
          return [{ type: 'error', error: errorFrom(id, m) }];
      }
    },
    classifyClose: (code, reason) => classifyReferenceClose(id, code, reason),
    classifyHandshake: (status, body) => classifyReferenceHandshake(id, status, body),
  };
}

// ---- TTS -------------------------------------------------------------------------------------------------

const Word = z.object({ word: z.string(), start_ms: z.number(), end_ms: z.number() });
const TtsMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('audio'), context: z.string(), index: z.number().int(), data: z.string() }),
  z.object({ type: z.literal('words'), context: z.string(), words: z.array(Word) }),
  z.object({ type: z.literal('piece_done'), context: z.string() }),
  z.object({ type: z.literal('done'), context: z.string() }),
  z.object({ type: z.literal('cancelled'), context: z.string() }),
  ErrorMessage,
]);

export interface ReferenceTtsVariant {
  readonly id?: string;
  /** Contexts share a socket, audio comes as JSON with context and piece index (default false: binary audio, one utterance per socket). */
  readonly multiplexed?: boolean;
  /** 'close-socket': the protocol cannot cancel in place (default 'in-place'). */
  readonly cancel?: 'in-place' | 'close-socket';
  readonly keepAliveMs?: number;
}

export function referenceTtsWire(variant: ReferenceTtsVariant = {}): TtsWire {
  const id = variant.id ?? 'reference';
  const multiplexed = variant.multiplexed ?? false;
  const keepAliveMs = variant.keepAliveMs ?? 200;
  const connect = (options: TtsStreamOptions) => {
    const query = new URLSearchParams({
      encoding: options.format.encoding,
      rate: String(options.format.sampleRateHz),
      ...(options.voice ? { voice: options.voice } : {}),
      ...(multiplexed ? {} : { binary: '1' }),
    });
    return { url: `${options.endpoint ?? DEFAULT_BASE}/ref/tts?${query}`, headers: authHeaders(id, options.apiKey) };
  };
  // Non-multiplexed sockets carry one utterance: their events name no context (the base routes them).
  const ctx = (context: string): { contextId?: string } => (multiplexed ? { contextId: context } : {});
  return {
    id,
    capabilities: {
      wordTimings: true,
      outputFormats: [PIPELINE_FORMAT, MULAW_8K],
      edgeCapable: true,
      multiplexed,
      cancelWithoutClosing: variant.cancel !== 'close-socket',
      keepAlive: keepAliveMs > 0,
    },
    connect,
    connectionKey: (options) => `${connect(options).url}|${options.apiKey ?? ''}`,
    ...(keepAliveMs > 0 ? { keepAliveMessage: { intervalMs: keepAliveMs, message: () => '{"type":"keepalive"}' } } : {}),
    utterance(contextId) {
      const message = (type: string, extra: Record<string, unknown> = {}) => JSON.stringify({ type, context: contextId, ...extra });
      return {
        begin: () => [message('begin')],
        text: (text, index) => [message('text', { text, index })],
        end: () => [message('end')],
        cancel: () => (variant.cancel === 'close-socket' ? 'close-socket' : [message('cancel')]),
      };
    },
    decode(data): TtsWireEvent[] {
      if (typeof data !== 'string') return [{ type: 'audio', data }];
      const parsed = TtsMessage.safeParse(parseJson(data));
      if (!parsed.success) return [{ type: 'error', error: protocolError(id, data.slice(0, 80)) }];
      const m = parsed.data;
      switch (m.type) {
        case 'audio':
          return [{ type: 'audio', ...ctx(m.context), data: new Uint8Array(Buffer.from(m.data, 'base64')), textIndex: m.index }];
        case 'words':
          return [{ type: 'words', ...ctx(m.context), words: m.words.map((w) => ({ word: w.word, startMs: w.start_ms, endMs: w.end_ms })) }];
        case 'piece_done':
          return [{ type: 'pieceDone', ...ctx(m.context) }];
        case 'done':
          return [{ type: 'done', ...ctx(m.context) }];
        case 'cancelled':
          return [{ type: 'cancelled', ...ctx(m.context) }];
        case 'error':
          return [{ type: 'error', ...(m.context ? ctx(m.context) : {}), error: errorFrom(id, m) }];
      }
    },
    classifyClose: (code, reason) => classifyReferenceClose(id, code, reason),
    classifyHandshake: (status, body) => classifyReferenceHandshake(id, status, body),
  };
}
