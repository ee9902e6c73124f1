import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions, SttWord } from '../../contracts/stt';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';

/**
 * AssemblyAI Universal-Streaming v3 (`wss://streaming.assemblyai.com/v3/ws`) as a pure mapping
 * (reference/providers.md §1.3).
 *
 * - Handshake: `Authorization: <key>` (the raw key, no scheme); PCM16 16 kHz (`encoding=pcm_s16le`,
 *   `sample_rate=16000`); `speech_model` is required: the block's model, else the English model for `en*`
 *   languages and the multilingual one otherwise.
 * - Audio: binary frames of 50–1000 ms each (else close 3007), not faster than real time (also 3007). The
 *   pipeline writes 20 ms frames: `audioMessageMs` has the socket base join them (60 ms messages), pad the
 *   rest to 50 ms before ForceEndpoint/Terminate/KeepAlive, and replay after a reconnect in 100 ms messages;
 *   `replayPacing` sends that replay at real time (plus a 200 ms burst) with new audio queued behind it.
 * - Turns: `transcript` holds the finalized words of the current turn, `words[]` also the still-changing tail
 *   (`word_is_final:false`). A Turn without `end_of_turn` → interim (transcript + non-final words: the turn
 *   so far, nothing of it is final yet, as with Deepgram Flux). `end_of_turn:true` → final (+ word timings in
 *   ms, stream time of the connection) and `endOfTurn` with the same text.
 * - `format_turns`: with it the server sends each turn's end twice, unformatted then formatted (same
 *   `turn_order`). The formatted wire takes the **formatted** end of turn as the final and passes the
 *   unformatted one on as an interim (early, stable text); the plain wire (default: no formatting wait) takes
 *   every end of turn as the final. Both decoders are stateless.
 * - `ForceEndpoint` is finalize (the server ends the current turn: an end-of-turn Turn follows; there is no
 *   separate acknowledgement). `Terminate` is the close message: the remaining Turns, then `Termination`
 *   (→ `closed`), then close 1000.
 * - KeepAlive: `{"type":"KeepAlive"}` is documented (it resets the `inactivity_timeout` timer). It is sent
 *   whenever no audio flowed for the interval, whether or not `inactivityTimeoutS` is set: harmless without
 *   it, and it guards against an idle limit that is not documented.
 * - Errors: an `Error` frame (`{"type":"Error","error_code":3008,"error":"..."}`; the SDK also knows a bare
 *   `{"error":"..."}`) precedes a close whose code equals `error_code`. Older servers used 3005 (and 1008 for
 *   concurrency) for everything, so the message text decides where the code does not.
 */

export const ASSEMBLYAI_ID = 'assemblyai';
export const ASSEMBLYAI_HOSTS = { us: 'wss://streaming.assemblyai.com', eu: 'wss://streaming.eu.assemblyai.com' } as const;
const PATH = '/v3/ws';
export const ASSEMBLYAI_ENGLISH_MODEL = 'universal-streaming-english';
export const ASSEMBLYAI_MULTILINGUAL_MODEL = 'universal-streaming-multilingual';

/** v3 closes with 3007 for an audio message outside 50–1000 ms (50 taken as allowed). */
export const MIN_AUDIO_MESSAGE_MS = 50;
export const MAX_AUDIO_MESSAGE_MS = 1000;
/**
 * A held rest is padded and sent after this long without audio (the base's default would be 100 ms): the
 * pipeline writes audio continuously, so this only fires when audio stopped, and a longer wait keeps a
 * stalled event loop from padding silence into the middle of a word.
 */
const HOLD_MS = 200;
export const DEFAULT_KEEP_ALIVE_INTERVAL_MS = 5000;

const KEEP_ALIVE = '{"type":"KeepAlive"}';
const FORCE_ENDPOINT = '{"type":"ForceEndpoint"}';
const TERMINATE = '{"type":"Terminate"}';

export const assemblyAiSttOptionsSchema = z.object({
  /** Ask for punctuated, cased turns: the final waits for the formatted end of turn (a little later). */
  formatTurns: z.boolean().default(false),
  /** Data residency: `eu` uses streaming.eu.assemblyai.com (an `endpoint` overrides both). */
  region: z.enum(['us', 'eu']).default('us'),
  /** Model end-of-turn confidence needed to end a turn (server default 0.4). */
  endOfTurnConfidenceThreshold: z.number().min(0).max(1).optional(),
  /** Silence before a confident end of turn, ms (server default 400; formerly min_end_of_turn_silence_when_confident). */
  minTurnSilenceMs: z.number().int().min(0).max(10_000).optional(),
  /** Silence that ends a turn whatever the model thinks, ms (server default 1280). */
  maxTurnSilenceMs: z.number().int().min(0).max(60_000).optional(),
  vadThreshold: z.number().min(0).max(1).optional(),
  /** Words to boost (sent as `keyterms_prompt`, a JSON array). */
  keyterms: z.array(z.string().min(1)).max(1000).default([]),
  prompt: z.string().min(1).optional(),
  filterProfanity: z.boolean().optional(),
  /** Server-side safety net: the session ends after this many seconds without audio or KeepAlive. */
  inactivityTimeoutS: z.number().int().positive().optional(),
});
export type AssemblyAiSttOptions = z.infer<typeof assemblyAiSttOptionsSchema>;

// ---- errors ----

const said = (detail: string) => (detail ? `: ${detail.slice(0, 200)}` : '');

/**
 * One v3 error (an `Error` frame's code and text, or a close code and reason) → what the engine should do.
 * The text decides where codes were reused by older servers (3005 for everything, 1008 for concurrency).
 */
export function assemblyAiError(code: number | undefined, text: string): ProviderError {
  const at = code === undefined ? '' : ` (${code})`;
  if (code === 3009 || /too many concurrent|concurren/i.test(text)) {
    return new ProviderError('ASSEMBLYAI_RATE_LIMIT', `too many concurrent assemblyai sessions${at}${said(text)}; retrying`, true, 'rate-limit');
  }
  if (code === 3008 || /session expired/i.test(text)) {
    return new ProviderError('ASSEMBLYAI_SESSION_EXPIRED', `the assemblyai session reached its maximum duration${at}${said(text)}; opening a new one`, true, 'timeout');
  }
  if (code === 3007 || /input duration|transmission rate/i.test(text)) {
    return new ProviderError(
      'ASSEMBLYAI_BAD_AUDIO',
      `assemblyai refused the audio${at}${said(text)}: each message must hold 50–1000 ms and audio must not be sent faster than real time`,
      false,
      'bad-request',
    );
  }
  if (code === 3006 || /invalid (message|json)/i.test(text)) {
    return new ProviderError('ASSEMBLYAI_BAD_REQUEST', `assemblyai refused a message${at}${said(text)}`, false, 'bad-request');
  }
  if (code === 1008 || /unauthori[sz]ed|api key|authori[sz]ation/i.test(text)) {
    if (/balance|insufficient|credit|payment|billing|funds/i.test(text)) {
      return new ProviderError('ASSEMBLYAI_QUOTA', `the assemblyai account cannot stream${at}${said(text)}. Check its balance and plan.`, false, 'quota');
    }
    return new ProviderError('ASSEMBLYAI_AUTH', `the API key was rejected${at}${said(text)}. Check the assemblyai credential of the project.`, false, 'auth');
  }
  // 3005 "Session Cancelled", 1011, anything unknown: a new session may work.
  return new ProviderError('ASSEMBLYAI_UNAVAILABLE', `the assemblyai session failed${at}${said(text)}; reconnecting`, true, 'unavailable');
}

/** A close nobody asked for. The socket lives for the whole call, so even a 1000 ends it early: reconnect. */
export function classifyAssemblyAiClose(code: number, reason: string): ProviderError {
  if (code === 1000 || code === 1001 || code === 1005 || code === 1006) {
    return new ProviderError('ASSEMBLYAI_CLOSED', `the assemblyai connection closed (${code}${reason ? ` ${reason}` : ''}); reconnecting`, true, 'unavailable');
  }
  return assemblyAiError(code, reason);
}

/** The message of a refused handshake's body: JSON `{error|message|detail}` or plain text, bounded. */
function bodyDetail(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown>;
      for (const key of ['error', 'message', 'detail']) if (typeof o[key] === 'string') return (o[key] as string).slice(0, 200);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return text.slice(0, 200);
}

/** v3 normally accepts the upgrade and reports in an Error frame; a refused upgrade is handled all the same. */
export function classifyAssemblyAiHandshake(status: number | undefined, body: string): ProviderError {
  const detail = said(bodyDetail(body));
  if (status === undefined || status >= 500) {
    return new ProviderError('ASSEMBLYAI_UNAVAILABLE', `could not reach assemblyai (${status ?? 'network error or handshake timeout'})${detail}`, true, 'unavailable');
  }
  if (status === 401 || status === 403) {
    return new ProviderError('ASSEMBLYAI_AUTH', `the API key was rejected (${status})${detail}. Check the assemblyai credential of the project.`, false, 'auth');
  }
  if (status === 402) return new ProviderError('ASSEMBLYAI_QUOTA', `the assemblyai account cannot stream (402)${detail}`, false, 'quota');
  if (status === 429) return new ProviderError('ASSEMBLYAI_RATE_LIMIT', `too many new assemblyai sessions (429)${detail}; retrying`, true, 'rate-limit');
  if (status === 408) return new ProviderError('ASSEMBLYAI_TIMEOUT', `the assemblyai handshake timed out (408)${detail}`, true, 'timeout');
  return new ProviderError(
    'ASSEMBLYAI_BAD_REQUEST',
    `assemblyai refused the request (${status})${detail}. Check the model and options of the assemblyai block.`,
    false,
    'bad-request',
  );
}

function protocolError(message: string, data: string | Uint8Array): ProviderError {
  const sample = typeof data === 'string' ? ` "${data.slice(0, 80)}"` : ` (${data.byteLength} binary bytes)`;
  return new ProviderError('ASSEMBLYAI_PROTOCOL', `${message}:${sample}`, false, 'protocol');
}

// ---- connection ----

function optionsOf(options: SttSessionOptions): AssemblyAiSttOptions {
  const parsed = assemblyAiSttOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
    throw new ProviderError('ASSEMBLYAI_BAD_OPTIONS', `the options of the assemblyai block are invalid: ${issues}`, false, 'bad-request');
  }
  return parsed.data;
}

/** The speech model: the block's, else English for `en*` (and unset) languages, multilingual otherwise. */
export function assemblyAiModel(options: Pick<SttSessionOptions, 'model' | 'language'>): string {
  if (options.model) return options.model;
  return !options.language || /^en\b|^en[-_]/i.test(options.language) ? ASSEMBLYAI_ENGLISH_MODEL : ASSEMBLYAI_MULTILINGUAL_MODEL;
}

function baseUrl(endpoint: string | undefined, region: AssemblyAiSttOptions['region']): string {
  let base: URL;
  try {
    base = new URL(endpoint ?? ASSEMBLYAI_HOSTS[region]);
  } catch (cause) {
    throw new ProviderError('ASSEMBLYAI_BAD_ENDPOINT', `the endpoint "${endpoint}" is not a URL`, false, 'bad-request', { cause });
  }
  const scheme = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
  return `${scheme}//${base.host}${PATH}`;
}

function connect(options: SttSessionOptions, formatTurns: boolean): { url: string; headers: Record<string, string> } {
  if (!options.apiKey) {
    throw new ProviderError('ASSEMBLYAI_AUTH', 'no API key for assemblyai STT: add an assemblyai credential to the project or set ASSEMBLYAI_API_KEY', false, 'auth');
  }
  const o = optionsOf(options);
  const query = new URLSearchParams({ sample_rate: '16000', encoding: 'pcm_s16le', speech_model: assemblyAiModel(options), format_turns: String(formatTurns) });
  if (o.endOfTurnConfidenceThreshold !== undefined) query.set('end_of_turn_confidence_threshold', String(o.endOfTurnConfidenceThreshold));
  if (o.minTurnSilenceMs !== undefined) query.set('min_turn_silence', String(o.minTurnSilenceMs));
  if (o.maxTurnSilenceMs !== undefined) query.set('max_turn_silence', String(o.maxTurnSilenceMs));
  if (o.vadThreshold !== undefined) query.set('vad_threshold', String(o.vadThreshold));
  if (o.keyterms.length) query.set('keyterms_prompt', JSON.stringify(o.keyterms));
  if (o.prompt !== undefined) query.set('prompt', o.prompt);
  if (o.filterProfanity !== undefined) query.set('filter_profanity', String(o.filterProfanity));
  if (o.inactivityTimeoutS !== undefined) query.set('inactivity_timeout', String(o.inactivityTimeoutS));
  return { url: `${baseUrl(options.endpoint, o.region)}?${query.toString()}`, headers: { Authorization: options.apiKey } };
}

// ---- server messages ----

const wordSchema = z.object({
  text: z.string(),
  start: z.number(),
  end: z.number(),
  confidence: z.number().optional(),
  word_is_final: z.boolean().optional(),
});

const turnSchema = z.object({
  type: z.literal('Turn'),
  turn_order: z.number().optional(),
  turn_is_formatted: z.boolean().default(false),
  end_of_turn: z.boolean().default(false),
  transcript: z.string().default(''),
  words: z.array(wordSchema).default([]),
});

const errorSchema = z.object({ error: z.string(), error_code: z.number().optional() });

type Turn = z.output<typeof turnSchema>;

/** The turn so far: its finalized words (`transcript`) and the still-changing tail. */
function interimText(turn: Turn): string {
  const tail = turn.words.filter((w) => w.word_is_final === false).map((w) => w.text.trim());
  return [turn.transcript.trim(), ...tail].filter(Boolean).join(' ');
}

function endOfTurnEvents(turn: Turn): SttWireEvent[] {
  const text = turn.transcript.trim();
  const words: SttWord[] = turn.words.map((w) => ({ word: w.text, startMs: Math.round(w.start), endMs: Math.round(w.end), ...(w.confidence !== undefined ? { confidence: w.confidence } : {}) }));
  const confidences = turn.words.flatMap((w) => (w.confidence !== undefined ? [w.confidence] : []));
  const last = turn.words.at(-1);
  const final: SttWireEvent = {
    type: 'final',
    text,
    ...(confidences.length ? { confidence: confidences.reduce((a, b) => a + b, 0) / confidences.length } : {}),
    ...(words.length ? { words } : {}),
    // Word times are ms of this connection's stream: the base drops replay audio up to the turn's last word.
    ...(last ? { audioEndMs: Math.round(last.end) } : {}),
  };
  // An end of turn without words (a ForceEndpoint in silence) answers the finalize but is not a turn.
  return text ? [final, { type: 'endOfTurn', text }] : [final];
}

/** One server message → events. `formatTurns`: the session asked for formatted turns (see the header). */
export function decodeAssemblyAi(data: string | Uint8Array, formatTurns: boolean): readonly SttWireEvent[] {
  if (typeof data !== 'string') return [{ type: 'error', error: protocolError('assemblyai sent a binary frame; only JSON text frames are defined', data) }];
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return [{ type: 'error', error: protocolError('assemblyai sent a message that is not JSON', data) }];
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return [{ type: 'error', error: protocolError('assemblyai sent a message that is not an object', data) }];
  const type = (body as { type?: unknown }).type;
  if (type === 'Error' || (type === undefined && 'error' in body)) {
    const frame = errorSchema.safeParse(body);
    if (!frame.success) return [{ type: 'error', error: protocolError('assemblyai sent a malformed Error message', data) }];
    return [{ type: 'error', error: assemblyAiError(frame.data.error_code, frame.data.error) }];
  }
  switch (type) {
    case 'Turn': {
      const parsed = turnSchema.safeParse(body);
      if (!parsed.success) {
        const problem = parsed.error.issues[0];
        return [{ type: 'error', error: protocolError(`assemblyai sent a malformed Turn (${problem ? `${problem.path.join('.')}: ${problem.message}` : 'invalid'})`, data) }];
      }
      const turn = parsed.data;
      if (turn.end_of_turn && (!formatTurns || turn.turn_is_formatted)) return endOfTurnEvents(turn);
      // Still growing, or (formatted sessions) the unformatted end of turn: the words so far, not final yet.
      const text = turn.end_of_turn ? turn.transcript.trim() : interimText(turn);
      return text ? [{ type: 'interim', text }] : [];
    }
    case 'SpeechStarted':
      return [{ type: 'speechStarted' }];
    case 'Termination':
      return [{ type: 'closed' }];
    case 'Begin':
      return [];
    default:
      if (typeof type !== 'string') return [{ type: 'error', error: protocolError('assemblyai sent a message without a type', data) }];
      return []; // A message type newer than this adapter.
  }
}

// ---- the wire ----

export interface AssemblyAiWireSettings {
  /** Sessions of this wire ask for formatted turns and take the formatted end of turn as the final. */
  readonly formatTurns: boolean;
  /** KeepAlive after this long without audio (default 5000 ms). */
  readonly keepAliveIntervalMs?: number;
}

export function createAssemblyAiSttWire(settings: AssemblyAiWireSettings): SttWire {
  const { formatTurns } = settings;
  return {
    id: ASSEMBLYAI_ID,
    capabilities: { interimResults: true, finalize: true, wordTimings: true, endOfTurn: true, edgeCapable: true, keepAlive: true },
    optionsSchema: assemblyAiSttOptionsSchema,
    connect: (options) => connect(options, formatTurns),
    // The base sizes the chunks (audioMessageMs): binary PCM as it is.
    audio: (chunk) => chunk,
    audioMessageMs: { min: MIN_AUDIO_MESSAGE_MS, max: MAX_AUDIO_MESSAGE_MS, padOnFlush: true, hold: HOLD_MS },
    replayPacing: { realtimeFactor: 1 },
    keepAliveMessage: { intervalMs: settings.keepAliveIntervalMs ?? DEFAULT_KEEP_ALIVE_INTERVAL_MS, message: () => KEEP_ALIVE },
    finalize: () => FORCE_ENDPOINT,
    closeMessage: () => TERMINATE,
    decode: (data) => decodeAssemblyAi(data, formatTurns),
    classifyClose: classifyAssemblyAiClose,
    classifyHandshake: classifyAssemblyAiHandshake,
  };
}

/** The default wire: unformatted turns, every end of turn is the final. */
export const assemblyAiSttWire: SttWire = createAssemblyAiSttWire({ formatTurns: false });
