import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions, SttWord } from '../../contracts/stt';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';

/**
 * Rev.ai streaming STT (`wss://api.rev.ai/speechtotext/v1/stream`) as a pure mapping
 * (reference/providers.md §1.8).
 *
 * - Handshake: the access token in the `access_token` query (Rev has no header form), raw PCM as
 *   `content_type=audio/x-raw;layout=interleaved;rate=16000;format=S16LE;channels=1` (URL-encoded). The URL
 *   therefore holds the secret: it never appears in an error message here, and the socket factories redact
 *   query strings from theirs.
 * - Audio: binary frames of any size. `EOS` (a plain text frame) is the close message: the server sends its
 *   remaining finals and closes.
 * - `connected` → nothing; `partial` → interim; `final` → final. Partials replace each other and a final
 *   closes the segment, so an interim is the open segment only. Text = the element values joined: finals
 *   carry their spaces and punctuation as `punct` elements, partials are bare `text` elements (joined with a
 *   space). Word timings come from the final's text elements (`ts`/`end_ts`, seconds); `end_ts` of the final
 *   is where the segment ends in the connection's stream (the base drops replay audio up to there).
 * - No finalize: Rev has no flush message (`finalize: false`); segments end on Rev's own pause detection.
 * - No keep-alive: none is documented (the SDK relies on WebSocket pings, which the contract's socket cannot
 *   send, and a text frame other than EOS is not defined), so `keepAlive: false`: the engine streams audio
 *   (silence included) all call long, and an idle close is classified retryable (reconnect with replay).
 * - Errors are close codes (unconfirmed list): 4001 unauthorized and 4003 out of credits end the session,
 *   4002 bad request too, 4013 too many concurrent streams is retried as a rate limit; every other close
 *   (1000 included: we never asked for it) is retried. A refused upgrade is classified by its HTTP status.
 */

export const REVAI_ID = 'revai';
export const REVAI_BASE_URL = 'wss://api.rev.ai';
const PATH = '/speechtotext/v1/stream';
export const REVAI_CONTENT_TYPE = 'audio/x-raw;layout=interleaved;rate=16000;format=S16LE;channels=1';
const EOS = 'EOS';

export const revAiSttOptionsSchema = z.object({
  /** Free text stored with the job. */
  metadata: z.string().max(512).optional(),
  customVocabularyId: z.string().min(1).optional(),
  filterProfanity: z.boolean().optional(),
  removeDisfluencies: z.boolean().optional(),
  /** Ask Rev to delete the transcript after this many seconds. */
  deleteAfterSeconds: z.number().int().min(0).optional(),
  /** Partials with word timings and confidences (only the text is used here). */
  detailedPartials: z.boolean().optional(),
  skipPostprocessing: z.boolean().optional(),
  /** Rev ends a segment after this long at the latest (seconds). */
  maxSegmentDurationSeconds: z.number().int().positive().optional(),
  priority: z.enum(['speed', 'accuracy']).optional(),
});
export type RevAiSttOptions = z.infer<typeof revAiSttOptionsSchema>;

// ---- errors ----

const said = (detail: string) => (detail ? `: ${detail.slice(0, 200)}` : '');

/** A close nobody asked for (Rev's codes are [MEM] in the reference: see the header). */
export function classifyRevAiClose(code: number, reason: string): ProviderError {
  const detail = reason ? ` "${reason.slice(0, 200)}"` : '';
  switch (code) {
    case 4001:
      return new ProviderError('REVAI_AUTH', `the access token was rejected (4001${detail}). Check the revai credential of the project.`, false, 'auth');
    case 4002:
      return new ProviderError('REVAI_BAD_REQUEST', `rev.ai refused the request (4002${detail}). Check the language and options of the revai block.`, false, 'bad-request');
    case 4003:
      return new ProviderError('REVAI_QUOTA', `the rev.ai account has insufficient credits (4003${detail}). Top up the account or use another credential.`, false, 'quota');
    case 4013:
      return new ProviderError('REVAI_RATE_LIMIT', `too many concurrent rev.ai streams (4013${detail}); retrying`, true, 'rate-limit');
    default: {
      const timeout = /idle|timeout|timed out|inactiv/i.test(reason);
      return new ProviderError(timeout ? 'REVAI_TIMEOUT' : 'REVAI_CLOSED', `the rev.ai stream closed (${code}${detail}); reconnecting`, true, timeout ? 'timeout' : 'unavailable');
    }
  }
}

/** The message of a refused handshake's body: JSON `{title|message|detail|error}` or plain text, bounded. */
function bodyDetail(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown>;
      for (const key of ['title', 'message', 'detail', 'error']) if (typeof o[key] === 'string') return (o[key] as string).slice(0, 200);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return text.slice(0, 200);
}

export function classifyRevAiHandshake(status: number | undefined, body: string): ProviderError {
  const detail = said(bodyDetail(body));
  if (status === undefined || status >= 500) {
    return new ProviderError('REVAI_UNAVAILABLE', `could not reach rev.ai (${status ?? 'network error or handshake timeout'})${detail}`, true, 'unavailable');
  }
  if (status === 401 || status === 403) {
    return new ProviderError('REVAI_AUTH', `the access token was rejected (${status})${detail}. Check the revai credential of the project.`, false, 'auth');
  }
  if (status === 402) return new ProviderError('REVAI_QUOTA', `the rev.ai account has insufficient credits (402)${detail}`, false, 'quota');
  if (status === 429) return new ProviderError('REVAI_RATE_LIMIT', `too many concurrent rev.ai streams (429)${detail}; retrying`, true, 'rate-limit');
  if (status === 408) return new ProviderError('REVAI_TIMEOUT', `the rev.ai handshake timed out (408)${detail}`, true, 'timeout');
  return new ProviderError('REVAI_BAD_REQUEST', `rev.ai refused the request (${status})${detail}. Check the language and options of the revai block.`, false, 'bad-request');
}

function protocolError(message: string, data: string | Uint8Array): ProviderError {
  const sample = typeof data === 'string' ? ` "${data.slice(0, 80)}"` : ` (${data.byteLength} binary bytes)`;
  return new ProviderError('REVAI_PROTOCOL', `${message}:${sample}`, false, 'protocol');
}

// ---- connection ----

/** Rev wants ISO 639-1 (`en`), except a few regional codes it lists; blocks usually say `en-US`. */
export function revAiLanguage(language: string): string {
  const lower = language.toLowerCase();
  if (lower === 'cmn' || lower === 'zh-cn' || lower === 'zh') return 'cmn';
  return (lower.split(/[-_]/)[0] ?? lower) || 'en';
}

function connect(options: SttSessionOptions): { url: string } {
  if (!options.apiKey) {
    throw new ProviderError('REVAI_AUTH', 'no access token for revai STT: add a revai credential to the project or set REVAI_API_KEY', false, 'auth');
  }
  const parsed = revAiSttOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
    throw new ProviderError('REVAI_BAD_OPTIONS', `the options of the revai block are invalid: ${issues}`, false, 'bad-request');
  }
  const o = parsed.data;
  let base: URL;
  try {
    base = new URL(options.endpoint ?? REVAI_BASE_URL);
  } catch (cause) {
    throw new ProviderError('REVAI_BAD_ENDPOINT', `the endpoint "${options.endpoint}" is not a URL`, false, 'bad-request', { cause });
  }
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  const query = new URLSearchParams({ access_token: options.apiKey, content_type: REVAI_CONTENT_TYPE, language: revAiLanguage(options.language) });
  // Rev's model choice is its `transcriber` (machine, low_cost, ...).
  if (options.model) query.set('transcriber', options.model);
  if (o.metadata !== undefined) query.set('metadata', o.metadata);
  if (o.customVocabularyId !== undefined) query.set('custom_vocabulary_id', o.customVocabularyId);
  if (o.filterProfanity !== undefined) query.set('filter_profanity', String(o.filterProfanity));
  if (o.removeDisfluencies !== undefined) query.set('remove_disfluencies', String(o.removeDisfluencies));
  if (o.deleteAfterSeconds !== undefined) query.set('delete_after_seconds', String(o.deleteAfterSeconds));
  if (o.detailedPartials !== undefined) query.set('detailed_partials', String(o.detailedPartials));
  if (o.skipPostprocessing !== undefined) query.set('skip_postprocessing', String(o.skipPostprocessing));
  if (o.maxSegmentDurationSeconds !== undefined) query.set('max_segment_duration_seconds', String(o.maxSegmentDurationSeconds));
  if (o.priority !== undefined) query.set('priority', o.priority);
  return { url: `${scheme}//${base.host}${PATH}?${query.toString()}` };
}

// ---- server messages ----

const elementSchema = z.object({
  type: z.string(),
  value: z.string().default(''),
  ts: z.number().optional(),
  end_ts: z.number().optional(),
  confidence: z.number().optional(),
});

const hypothesisSchema = z.object({
  type: z.enum(['partial', 'final']),
  ts: z.number().optional(),
  end_ts: z.number().optional(),
  elements: z.array(elementSchema).default([]),
});

type Element = z.output<typeof elementSchema>;

/**
 * The element values as text: `punct` elements carry their own spaces (finals), consecutive `text`
 * elements (partials) get one between them.
 */
export function revAiText(elements: readonly Element[]): string {
  let text = '';
  let previous: string | undefined;
  for (const element of elements) {
    if (element.type === 'text' && previous === 'text' && text && !/\s$/.test(text)) text += ' ';
    text += element.value;
    previous = element.type;
  }
  return text.replace(/\s+/g, ' ').trim();
}

const secondsToMs = (s: number) => Math.round(s * 1000);

function finalEvent(elements: readonly Element[], endTs: number | undefined): SttWireEvent {
  const timed = elements.filter((e) => e.type === 'text' && e.ts !== undefined && e.end_ts !== undefined);
  const words: SttWord[] = timed.map((e) => ({
    word: e.value,
    startMs: secondsToMs(e.ts!),
    endMs: secondsToMs(e.end_ts!),
    ...(e.confidence !== undefined ? { confidence: e.confidence } : {}),
  }));
  const confidences = timed.flatMap((e) => (e.confidence !== undefined ? [e.confidence] : []));
  return {
    type: 'final',
    text: revAiText(elements),
    ...(confidences.length ? { confidence: confidences.reduce((a, b) => a + b, 0) / confidences.length } : {}),
    ...(words.length ? { words } : {}),
    ...(endTs !== undefined ? { audioEndMs: secondsToMs(endTs) } : {}),
  };
}

export function decodeRevAi(data: string | Uint8Array): readonly SttWireEvent[] {
  if (typeof data !== 'string') return [{ type: 'error', error: protocolError('rev.ai sent a binary frame; only JSON text frames are defined', data) }];
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return [{ type: 'error', error: protocolError('rev.ai sent a message that is not JSON', data) }];
  }
  const type = body && typeof body === 'object' && !Array.isArray(body) ? (body as { type?: unknown }).type : undefined;
  switch (type) {
    case 'partial':
    case 'final': {
      const parsed = hypothesisSchema.safeParse(body);
      if (!parsed.success) {
        const problem = parsed.error.issues[0];
        return [{ type: 'error', error: protocolError(`rev.ai sent a malformed ${type} (${problem ? `${problem.path.join('.')}: ${problem.message}` : 'invalid'})`, data) }];
      }
      const h = parsed.data;
      if (h.type === 'final') return [finalEvent(h.elements, h.end_ts)];
      const text = revAiText(h.elements);
      return text ? [{ type: 'interim', text }] : [];
    }
    case 'connected':
      return [];
    default:
      if (typeof type !== 'string') return [{ type: 'error', error: protocolError('rev.ai sent a message without a type', data) }];
      return []; // A message type newer than this adapter.
  }
}

// ---- the wire ----

export const revAiSttWire: SttWire = {
  id: REVAI_ID,
  capabilities: { interimResults: true, finalize: false, wordTimings: true, endOfTurn: false, edgeCapable: true, keepAlive: false },
  optionsSchema: revAiSttOptionsSchema,
  connect,
  // Never an empty binary frame: its meaning is not defined (EOS is the only end marker).
  audio: (chunk) => (chunk.byteLength === 0 ? new Uint8Array(2) : chunk),
  closeMessage: () => EOS,
  decode: decodeRevAi,
  classifyClose: classifyRevAiClose,
  classifyHandshake: classifyRevAiHandshake,
};
