import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT } from '../../../shared/audio/format';
import type { AudioFormat } from '../../../shared/audio/format';
import { ProviderError, asProviderError } from '../../../shared/contracts/errors';
import type { TextToSpeech, TtsEvent, TtsStream, TtsStreamOptions } from '../../../shared/contracts/tts';
import type { Registrable } from '../../../shared/providers/registry';
import { DEFAULT_CONNECT_TIMEOUT_MS, createBackoff } from '../../../shared/providers/streaming/connect-retry';
import type { Backoff } from '../../../shared/providers/streaming/connect-retry';
import { nullProviderMetrics } from '../../../shared/providers/streaming/metrics';
import { createGoogleAuth, parseGoogleCredential } from './auth';
import type { GoogleCredential } from './auth';
import type { GoogleProviderDeps } from './deps';
import { GOOGLE_ERROR_PREFIX, GOOGLE_PROVIDER_ID, classifyStatus, createClientPool, resolveTarget, toMetadata } from './grpc';
import type { CallStatus, GoogleTarget, PooledClient } from './grpc';
import { STREAMING_SYNTHESIZE_PATH, decodeSynthesizeResponse, encodeSynthesizeRequest } from './proto';
import type { StreamingSynthesizeRequest, TtsAudioEncoding } from './proto';

/**
 * Google Cloud Text-to-Speech v1 `StreamingSynthesize` (gRPC bidi stream, Chirp 3 HD voices), reference
 * providers.md §2.4: `streaming_config` {voice, streaming_audio_config {encoding, sample rate}} first, then
 * `input {text}` messages, half-close when the text is complete; the server streams `audio_content` and ends
 * with OK after the last audio. No word timings, no per-input boundaries in the audio.
 *
 * One call per text piece. Google's audio carries no mark of which input it voices, so one call per
 * utterance could only guess `textIndex` (which the engine uses to know what the caller actually heard
 * before a barge-in). Each piece — already a speakable clause or sentence from the engine's chunker — gets
 * its own call (config, its text, half-close); calls run ahead of playback (`lookahead`, default 2 pieces)
 * and audio is delivered strictly in piece order, so only the first piece pays the call's latency. Calls are
 * cheap: they are HTTP/2 streams on one pooled, pre-warmable connection per endpoint. The next piece's call
 * starts only once the previous one was accepted, so a rejected credential costs one call, not a burst.
 *
 * cancel() cancels the utterance's calls (RST_STREAM): the connection stays open for the next utterance
 * (`cancelWithoutClosing`), and utterances of many sessions share it (`multiplexed`).
 */

const ID = GOOGLE_PROVIDER_ID;
const P = GOOGLE_ERROR_PREFIX;
const DEFAULT_ACCEPT_TIMEOUT_MS = 500;
/** Chirp 3 HD voices: `<language>-Chirp3-HD-<name>`. */
const DEFAULT_VOICE_NAME = 'Chirp3-HD-Charon';

export const GOOGLE_TTS_OUTPUT_FORMATS: readonly AudioFormat[] = Object.freeze([
  PIPELINE_FORMAT,
  { encoding: 'pcm16', sampleRateHz: 24_000 },
  { encoding: 'pcm16', sampleRateHz: 8_000 },
  { encoding: 'pcm16', sampleRateHz: 48_000 },
  MULAW_8K,
  ALAW_8K,
]);

export const GOOGLE_TTS_CAPABILITIES = Object.freeze({
  wordTimings: false,
  outputFormats: GOOGLE_TTS_OUTPUT_FORMATS,
  edgeCapable: false,
  multiplexed: true,
  cancelWithoutClosing: true,
  keepAlive: false,
});

export const googleTtsOptionsSchema = z.object({
  /** 0.25–2.0 (1 = normal); sent as `streaming_audio_config.speaking_rate`. */
  speakingRate: z.number().min(0.25).max(2).optional(),
  /**
   * PCM16 output as `PCM` (headerless; the encoding Google documents for streaming) or `LINEAR16` (in case an
   * endpoint wants it: a leading WAV header is removed).
   */
  pcmEncoding: z.enum(['PCM', 'LINEAR16']).default('PCM'),
  /** Pieces synthesised ahead of the one being delivered (each its own call). */
  lookahead: z.number().int().min(0).max(8).default(2),
});

export type GoogleTtsOptions = z.output<typeof googleTtsOptionsSchema>;

export interface GoogleTts extends TextToSpeech, Registrable {
  /** Connect (and fetch a service account's token) ahead of the first utterance. */
  prewarm(options: Omit<TtsStreamOptions, 'signal'>): Promise<void>;
  /** Utterances still speaking get an error; the pooled connections close. */
  close(): Promise<void>;
}

interface UtterancePlan {
  readonly target: GoogleTarget;
  readonly credential: GoogleCredential;
  readonly config: StreamingSynthesizeRequest;
  readonly lookahead: number;
  readonly stripWavHeader: boolean;
}

/** Exported for the wire tests. */
export function planUtterance(options: Omit<TtsStreamOptions, 'signal'>): UtterancePlan {
  const credential = parseGoogleCredential(options.apiKey);
  const parsed = googleTtsOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new ProviderError(`${P}_BAD_REQUEST`, `options of the ${ID} TTS block are invalid: ${issues}`, false, 'bad-request');
  }
  const o = parsed.data;
  const { format } = options;
  let encoding: TtsAudioEncoding;
  if (format.encoding === 'pcm16') encoding = o.pcmEncoding;
  else if (format.encoding === 'mulaw') encoding = 'MULAW';
  else if (format.encoding === 'alaw') encoding = 'ALAW';
  else throw new ProviderError(`${P}_BAD_REQUEST`, `the ${ID} TTS cannot produce ${String(format.encoding)}`, false, 'bad-request');
  const voiceName = options.voice ?? `${options.language}-${DEFAULT_VOICE_NAME}`;
  // The voice's own locale wins over the block's language: Google refuses a mismatch.
  const languageCode = /^([a-z]{2,3}-[A-Z]{2})-/.exec(voiceName)?.[1] ?? options.language;
  return {
    target: resolveTarget(options.endpoint, 'texttospeech.googleapis.com'),
    credential,
    config: {
      streaming_config: {
        voice: { language_code: languageCode, name: voiceName },
        streaming_audio_config: { audio_encoding: encoding, sample_rate_hertz: format.sampleRateHz, ...(o.speakingRate !== undefined ? { speaking_rate: o.speakingRate } : {}) },
      },
    },
    lookahead: o.lookahead,
    stripWavHeader: encoding === 'LINEAR16',
  };
}

interface Piece {
  readonly index: number;
  readonly text: string;
  state: 'waiting' | 'calling' | 'done';
  accepted: boolean;
  call: grpc.ClientDuplexStream<StreamingSynthesizeRequest, Buffer> | undefined;
  pooled: PooledClient | undefined;
  /** Audio that arrived before its turn. */
  readonly buffered: Uint8Array[];
  /** Audio of this piece reached the engine: a failure can no longer be retried without repeating it. */
  delivered: boolean;
  headerPending: boolean;
  acceptTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Utterance {
  readonly onEvent: (event: TtsEvent) => void;
  state: 'active' | 'cancelled' | 'finished';
  readonly pieces: Piece[];
  ended: boolean;
  /** The piece whose audio goes out now; later pieces buffer. */
  nextToDeliver: number;
  readonly backoff: Backoff;
  firstPushAt: number | undefined;
  audioMeasured: boolean;
  plan: UtterancePlan | undefined;
  detachSignal: () => void;
}

export function createGoogleTts(deps: GoogleProviderDeps = {}): GoogleTts {
  const metrics = deps.metrics ?? nullProviderMetrics;
  const auth = deps.auth ?? createGoogleAuth();
  const pool = deps.pool ?? createClientPool({ ...(deps.idleMs !== undefined ? { idleMs: deps.idleMs } : {}), ...(deps.maxCallsPerConnection !== undefined ? { maxCallsPerConnection: deps.maxCallsPerConnection } : {}) });
  const connectTimeoutMs = deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const acceptTimeoutMs = deps.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
  const live = new Set<Utterance>();

  const deliver = (u: Utterance, event: TtsEvent): void => {
    try {
      u.onEvent(event);
    } catch {
      metrics.error(ID, 'tts', 'internal');
    }
  };

  const stopCall = (piece: Piece): void => {
    clearTimeout(piece.acceptTimer);
    piece.acceptTimer = undefined;
    piece.call?.cancel();
    piece.call = undefined;
    if (piece.pooled) pool.release(piece.pooled);
    piece.pooled = undefined;
  };

  const stopAll = (u: Utterance): void => {
    for (const piece of u.pieces) stopCall(piece);
    live.delete(u);
    u.detachSignal();
  };

  const failUtterance = (u: Utterance, error: ProviderError): void => {
    if (u.state !== 'active') return;
    u.state = 'finished';
    stopAll(u);
    metrics.error(ID, 'tts', error.kind);
    deliver(u, { type: 'error', error });
  };

  const emitAudio = (u: Utterance, piece: Piece, data: Uint8Array): void => {
    if (!data.byteLength) return;
    piece.delivered = true;
    if (!u.audioMeasured && u.firstPushAt !== undefined) {
      u.audioMeasured = true;
      metrics.firstResult(ID, 'tts', 'audio', performance.now() - u.firstPushAt);
    }
    deliver(u, { type: 'audio', data, textIndex: piece.index });
  };

  /** Deliver finished pieces in order; the utterance is done when every piece is, after end(). */
  const advance = (u: Utterance): void => {
    while (u.state === 'active') {
      const piece = u.pieces[u.nextToDeliver];
      if (!piece) break;
      for (const chunk of piece.buffered.splice(0)) {
        emitAudio(u, piece, chunk);
        if (u.state !== 'active') return;
      }
      if (piece.state !== 'done') break;
      u.nextToDeliver++;
    }
    if (u.state === 'active' && u.ended && u.nextToDeliver >= u.pieces.length) {
      u.state = 'finished';
      stopAll(u);
      deliver(u, { type: 'done' });
      return;
    }
    pump(u);
  };

  /** Start the calls that may run now: in order, within the look-ahead, each after its predecessor was accepted. */
  const pump = (u: Utterance): void => {
    if (u.state !== 'active' || !u.plan) return;
    const limit = u.nextToDeliver + u.plan.lookahead;
    for (let i = u.nextToDeliver; i < u.pieces.length && i <= limit; i++) {
      const piece = u.pieces[i]!;
      if (piece.state === 'waiting') {
        void startCall(u, piece);
        return;
      }
      if (piece.state === 'calling' && !piece.accepted) return;
    }
  };

  const startCall = async (u: Utterance, piece: Piece): Promise<void> => {
    const plan = u.plan!;
    piece.state = 'calling';
    piece.accepted = false;
    piece.headerPending = plan.stripWavHeader;
    let headers: Record<string, string>;
    try {
      headers = await auth.metadata(plan.credential);
    } catch (error) {
      return onCallFailed(u, piece, asProviderError(ID, error));
    }
    if (u.state !== 'active') return;
    const pooled = pool.acquire(plan.target);
    const call = pooled.client.makeBidiStreamRequest(STREAMING_SYNTHESIZE_PATH, encodeSynthesizeRequest, (bytes: Buffer) => bytes, toMetadata(headers));
    piece.call = call;
    piece.pooled = pooled;
    const startedAt = performance.now();
    const accept = (): void => {
      if (piece.call !== call || piece.accepted) return;
      piece.accepted = true;
      clearTimeout(piece.acceptTimer);
      piece.acceptTimer = undefined;
      metrics.connected(ID, 'tts', performance.now() - startedAt);
      pump(u);
    };
    call.on('metadata', accept);
    call.on('data', (bytes: Buffer) => {
      if (piece.call !== call || u.state !== 'active') return;
      const response = decodeSynthesizeResponse(bytes);
      if (!response) {
        metrics.error(ID, 'tts', 'protocol');
        return;
      }
      accept();
      let audio: Uint8Array = response.audio_content ? new Uint8Array(response.audio_content) : new Uint8Array(0);
      if (piece.headerPending && audio.byteLength) {
        piece.headerPending = false;
        audio = stripWavHeader(audio);
      }
      if (!audio.byteLength) return;
      if (u.pieces[u.nextToDeliver] === piece) emitAudio(u, piece, audio);
      else piece.buffered.push(audio);
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (piece.call !== call) return;
      clearTimeout(piece.acceptTimer);
      piece.acceptTimer = undefined;
      piece.call = undefined;
      if (piece.pooled) pool.release(piece.pooled);
      piece.pooled = undefined;
      if (u.state !== 'active') return;
      onCallEnded(u, piece, { code: status.code, details: status.details });
    });
    call.on('error', () => {});
    call.write(plan.config);
    call.write({ input: { text: piece.text } });
    call.end();
    const waitAccept = (): void => {
      if (piece.call !== call || piece.accepted) return;
      if (pooled.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY) return accept();
      if (performance.now() - startedAt >= connectTimeoutMs) {
        stopCall(piece);
        return onCallFailed(u, piece, new ProviderError(`${P}_CONNECT_TIMEOUT`, `no connection to ${plan.target.address} within ${connectTimeoutMs} ms`, true, 'timeout'));
      }
      piece.acceptTimer = setTimeout(waitAccept, 50);
    };
    piece.acceptTimer = setTimeout(waitAccept, acceptTimeoutMs);
  };

  const onCallEnded = (u: Utterance, piece: Piece, status: CallStatus): void => {
    const verdict = classifyStatus(status, 'text-to-speech');
    if (verdict.kind === 'ok') {
      piece.state = 'done';
      u.backoff.reset();
      return advance(u);
    }
    onCallFailed(u, piece, verdict.error);
  };

  const onCallFailed = (u: Utterance, piece: Piece, error: ProviderError): void => {
    if (u.state !== 'active') return;
    // Audio of the piece already played cannot be taken back: a retry would repeat it. Buffered audio can.
    const delay = error.retryable && !piece.delivered ? u.backoff.next() : undefined;
    if (delay === undefined) return failUtterance(u, error);
    metrics.error(ID, 'tts', error.kind);
    metrics.reconnected(ID, 'tts', error.code);
    piece.buffered.length = 0;
    piece.state = 'waiting';
    piece.accepted = false;
    setTimeout(() => {
      if (u.state === 'active' && piece.state === 'waiting') pump(u);
    }, delay);
  };

  const cancel = (u: Utterance): void => {
    if (u.state !== 'active') return;
    // From here on nothing reaches the caller: this is what stops the audio within a frame on barge-in.
    u.state = 'cancelled';
    stopAll(u);
  };

  const stream = (options: TtsStreamOptions, onEvent: (event: TtsEvent) => void): TtsStream => {
    const u: Utterance = {
      onEvent,
      state: 'active',
      pieces: [],
      ended: false,
      nextToDeliver: 0,
      backoff: createBackoff(deps.retry),
      firstPushAt: undefined,
      audioMeasured: false,
      plan: undefined,
      detachSignal: () => {},
    };
    const handle: TtsStream = {
      push(text) {
        const index = u.pieces.length;
        const piece: Piece = { index, text, state: 'waiting', accepted: false, call: undefined, pooled: undefined, buffered: [], delivered: false, headerPending: false, acceptTimer: undefined };
        if (u.state !== 'active' || u.ended) return index;
        u.firstPushAt ??= performance.now();
        // Nothing to say (whitespace): done without a call.
        if (!text.trim()) piece.state = 'done';
        u.pieces.push(piece);
        if (u.plan) advance(u);
        return index;
      },
      end() {
        if (u.state !== 'active' || u.ended) return;
        u.ended = true;
        if (u.plan) advance(u);
      },
      cancel: () => cancel(u),
    };
    if (options.signal.aborted) {
      u.state = 'cancelled';
      return handle;
    }
    const onAbort = (): void => cancel(u);
    options.signal.addEventListener('abort', onAbort, { once: true });
    u.detachSignal = () => options.signal.removeEventListener('abort', onAbort);
    live.add(u);
    try {
      u.plan = planUtterance(options);
    } catch (error) {
      // The caller gets its handle first; the error follows as an event (unless it cancels first).
      queueMicrotask(() => failUtterance(u, asProviderError(ID, error)));
      return handle;
    }
    // Pieces pushed in the same tick start together on the next microtask.
    queueMicrotask(() => advance(u));
    return handle;
  };

  return {
    id: ID,
    requiresCredential: true,
    capabilities: GOOGLE_TTS_CAPABILITIES,
    optionsSchema: googleTtsOptionsSchema,
    stream,
    async prewarm(options) {
      let plan: UtterancePlan;
      try {
        plan = planUtterance(options);
      } catch (error) {
        throw asProviderError(ID, error);
      }
      // The connection and, for a service account, the access token: the first utterance needs both.
      await Promise.all([pool.prewarm(plan.target, connectTimeoutMs), auth.metadata(plan.credential)]);
    },
    async close() {
      const closed = new ProviderError(`${P}_CLOSED`, 'the provider was shut down', false, 'internal');
      for (const u of [...live]) failUtterance(u, closed);
      // An injected pool belongs to whoever made it.
      if (!deps.pool) pool.close();
    },
  };
}

/** A WAV header (RIFF … `data` <size>) in front of LINEAR16 audio is removed; anything else passes. */
export function stripWavHeader(bytes: Uint8Array): Uint8Array {
  const tag = (at: number) => String.fromCharCode(bytes[at] ?? 0, bytes[at + 1] ?? 0, bytes[at + 2] ?? 0, bytes[at + 3] ?? 0);
  if (bytes.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return bytes;
  let at = 12;
  while (at + 8 <= bytes.byteLength) {
    const size = (bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 24)) >>> 0;
    if (tag(at) === 'data') return bytes.subarray(at + 8);
    at += 8 + size + (size & 1);
  }
  return bytes;
}
