import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import type { AudioFrame } from '../../../shared/audio/format';
import { ProviderError, asProviderError } from '../../../shared/contracts/errors';
import type { SpeechToText, SttEvent, SttSession, SttSessionOptions, SttWord } from '../../../shared/contracts/stt';
import type { Registrable } from '../../../shared/providers/registry';
import { DEFAULT_CONNECT_TIMEOUT_MS, createBackoff, sleep } from '../../../shared/providers/streaming/connect-retry';
import { nullProviderMetrics } from '../../../shared/providers/streaming/metrics';
import { createReplayRing } from '../../../shared/providers/streaming/replay-ring';
import { createGoogleAuth, parseGoogleCredential } from './auth';
import type { GoogleAuth } from './auth';
import type { GoogleProviderDeps } from './deps';
import { GOOGLE_ERROR_PREFIX, GOOGLE_PROVIDER_ID, classifyStatus, createClientPool, resolveTarget, statusName, toMetadata } from './grpc';
import type { CallStatus, ClientPool, GoogleTarget, PooledClient } from './grpc';
import { STREAMING_RECOGNIZE_PATH, decodeRecognizeResponse, durationMs, encodeRecognizeRequest } from './proto';
import type { StreamingRecognizeRequest, StreamingRecognizeResponse } from './proto';

/**
 * Google Cloud Speech-to-Text v2 `StreamingRecognize` (gRPC bidi stream), reference providers.md §1.4.
 *
 * One session = a sequence of streams (calls). The first request of each carries the recognizer and the
 * config (LINEAR16 16 kHz mono, model, languages, word offsets, interim results, voice-activity events);
 * later requests carry audio, the pipeline's 20 ms frames batched to `chunkMs` (default 100 ms = 3,200 bytes;
 * capped at 15 KB, under both the proto's 15 KB and the server's 25,600-byte limit). Each response holds zero or one `is_final` result then interim results: a
 * final becomes `final` (its `result_end_offset` tells how much audio it answered), the interims `interim`,
 * SPEECH_ACTIVITY_BEGIN `speechStarted`.
 *
 * Streams end and are replaced, never losing audio: everything sent since the last final is kept in a replay
 * ring (shared/providers/streaming/replay-ring.ts) and sent first on the next stream.
 * - Google caps a stream at 5 minutes: after `restartAfterMs` (default 4 min 50 s; earlier, right after a
 *   final, once 80 % of it passed) a new stream is started, and when it is accepted the old one is cancelled
 *   and the unanswered audio replayed into the new one (make-before-break: no gap).
 * - OUT_OF_RANGE (stream duration, audio timeout) or an OK the session did not ask for: the next stream
 *   opens with the next audio (no keep-alive exists; silence frames are audio).
 * - Retryable statuses (UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, a dropped connection): reconnect with
 *   back-off (shared/providers/streaming/connect-retry.ts) and replay. Auth and bad requests end the session.
 * - finalize(): Google has no mid-stream flush, so the stream is half-closed (the server answers the audio it
 *   has with finals, then OK) and a new stream takes the audio from there on.
 * - close(): half-close, wait (≤ 2 s) for the last finals and the OK, done.
 */

const ID = GOOGLE_PROVIDER_ID;
const P = GOOGLE_ERROR_PREFIX;
/** PCM16 16 kHz mono. */
const BYTES_PER_MS = 32;
/**
 * Audio per request. The server's error names 25,600 bytes ("Audio chunk can be of a maximum of 25600 bytes");
 * the v2 proto's comment says 15 KB: the stricter one (480 ms of PCM16 16 kHz) is the cap.
 */
const MAX_CHUNK_BYTES = 15 * 1024;
const MAX_REPLAY_MS = 5000;
const DEFAULT_RESTART_AFTER_MS = 290_000;
const DEFAULT_ACCEPT_TIMEOUT_MS = 500;
const DEFAULT_CHUNK_MS = 100;
/** Without the vendor saying where a final ends, keep this much (as the socket base does). */
const FINAL_SAFETY_MS = 1000;
const CLOSE_WAIT_MS = 2000;
/** A half-closed stream that does not end within this is cancelled. */
const DRAIN_WAIT_MS = 5000;
/** A stream ended by a server limit this soon is a failure (back-off), not a restart. */
const MIN_HEALTHY_STREAM_MS = 1000;
/** Restart right after a final once this share of `restartAfterMs` has passed (the ring is nearly empty then). */
const EARLY_RESTART_SHARE = 0.8;

export const GOOGLE_STT_CAPABILITIES = Object.freeze({
  interimResults: true,
  // No flush message: finalize half-closes the stream and opens the next (see above).
  finalize: true,
  wordTimings: true,
  endOfTurn: false,
  edgeCapable: false,
  // No keep-alive message: a server idle close (OUT_OF_RANGE) is survived by opening the next stream with the next audio.
  keepAlive: false,
});

export const googleSttOptionsSchema = z.object({
  /** GCP project of the recognizer. Default: the service account's `project_id` (required with an API key). */
  project: z.string().min(1).optional(),
  /** `global` (speech.googleapis.com) or a region (`us`, `eu`, `us-central1`, … → `{location}-speech.googleapis.com`; chirp models are regional). */
  location: z.string().regex(/^[a-z0-9-]+$/).default('global'),
  /** Recognizer id (`_` = the implicit default recognizer, configured inline) or a full resource name. */
  recognizer: z.string().min(1).default('_'),
  /** Model when the block names none: `long` (general, any length). `telephony` suits audio that came from a phone line; `chirp_3` needs a regional location. */
  defaultModel: z.string().min(1).default('long'),
  /** Up to 2 more languages for automatic language identification (the block's language comes first). */
  alternativeLanguages: z.array(z.string().min(2)).max(2).default([]),
  punctuation: z.boolean().default(true),
  profanityFilter: z.boolean().default(false),
  /** SPEECH_ACTIVITY_BEGIN events → `speechStarted` (barge-in). */
  voiceActivityEvents: z.boolean().default(true),
});

export type GoogleSttOptions = z.output<typeof googleSttOptionsSchema>;

export function parseGoogleSttOptions(options: Readonly<Record<string, unknown>>): GoogleSttOptions {
  const parsed = googleSttOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new ProviderError(`${P}_BAD_REQUEST`, `options of the ${ID} STT block are invalid: ${issues}`, false, 'bad-request');
  }
  return parsed.data;
}

export interface GoogleSttSession extends SttSession {
  readonly stats: {
    /** Streams accepted (the first, restarts, reconnects, after finalize). */
    readonly streams: number;
    /** Streams replaced ahead of the server's time limit. */
    readonly restarts: number;
    /** Streams reopened after a failure or a server-side end. */
    readonly reconnects: number;
    readonly droppedReplayMs: number;
    readonly malformedMessages: number;
  };
}

/** What one session sends on each stream (built once at open). */
interface StreamPlan {
  readonly target: GoogleTarget;
  readonly recognizer: string;
  readonly config: StreamingRecognizeRequest;
  readonly credential: ReturnType<typeof parseGoogleCredential>;
}

export interface GoogleStt extends SpeechToText, Registrable {
  /** Close the pooled HTTP/2 connections (node shutdown, after the sessions ended). */
  close(): Promise<void>;
}

export function createGoogleStt(deps: GoogleProviderDeps = {}): GoogleStt {
  const auth = deps.auth ?? createGoogleAuth();
  const pool = deps.pool ?? createClientPool({ ...(deps.idleMs !== undefined ? { idleMs: deps.idleMs } : {}), ...(deps.maxCallsPerConnection !== undefined ? { maxCallsPerConnection: deps.maxCallsPerConnection } : {}) });
  return {
    id: ID,
    requiresCredential: true,
    capabilities: GOOGLE_STT_CAPABILITIES,
    optionsSchema: googleSttOptionsSchema,
    open: (options, onEvent) => openSession(deps, auth, pool, options, onEvent),
    async close() {
      // An injected pool belongs to whoever made it.
      if (!deps.pool) pool.close();
    },
  };
}

/** The first request of every stream; exported for the wire tests. */
export function planStreams(options: SttSessionOptions): StreamPlan {
  const credential = parseGoogleCredential(options.apiKey);
  const o = parseGoogleSttOptions(options.options);
  let recognizer = o.recognizer;
  if (!recognizer.includes('/')) {
    const project = o.project ?? (credential.kind === 'serviceAccount' ? credential.account.projectId : undefined);
    if (!project) {
      throw new ProviderError(`${P}_BAD_REQUEST`, `the ${ID} STT block needs options.project (the GCP project of the recognizer) when its credential is an API key`, false, 'bad-request');
    }
    recognizer = `projects/${project}/locations/${o.location}/recognizers/${recognizer}`;
  }
  const location = /\/locations\/([^/]+)\//.exec(recognizer)?.[1] ?? o.location;
  const target = resolveTarget(options.endpoint, location === 'global' ? 'speech.googleapis.com' : `${location}-speech.googleapis.com`);
  const config: StreamingRecognizeRequest = {
    recognizer,
    streaming_config: {
      config: {
        explicit_decoding_config: { encoding: 'LINEAR16', sample_rate_hertz: 16_000, audio_channel_count: 1 },
        model: options.model ?? o.defaultModel,
        language_codes: [options.language, ...o.alternativeLanguages],
        features: { enable_word_time_offsets: true, enable_automatic_punctuation: o.punctuation, profanity_filter: o.profanityFilter },
      },
      streaming_features: { interim_results: true, enable_voice_activity_events: o.voiceActivityEvents },
    },
  };
  return { target, recognizer, config, credential };
}

type Phase = 'connecting' | 'open' | 'reconnecting' | 'idle' | 'closing' | 'ended';

interface Stream {
  readonly call: grpc.ClientDuplexStream<StreamingRecognizeRequest, Buffer>;
  readonly pooled: PooledClient;
  /** Ring position of this stream's time 0 (set when it takes over). */
  startPosition: number;
  attachedAt: number;
  /** starting → live → (draining) → ended; cancelled streams are silent. */
  state: 'starting' | 'live' | 'draining' | 'ended';
  cancelledByUs: boolean;
  released: boolean;
  timers: ReturnType<typeof setTimeout>[];
  /** The status of a stream that ended after it was accepted but before it took over. */
  endedWith?: CallStatus;
  /** Set while starting: settles the start with the server's first answer. */
  settle?: (outcome: { accepted: true } | { accepted: false; status: CallStatus }) => void;
}

async function openSession(
  deps: GoogleProviderDeps,
  auth: GoogleAuth,
  pool: ClientPool,
  options: SttSessionOptions,
  onEvent: (event: SttEvent) => void,
): Promise<SttSession> {
  const metrics = deps.metrics ?? nullProviderMetrics;
  let plan: StreamPlan;
  try {
    plan = planStreams(options);
  } catch (error) {
    throw asProviderError(ID, error);
  }

  const replayMs = Math.min(MAX_REPLAY_MS, Math.max(0, deps.replayMs ?? MAX_REPLAY_MS));
  const ring = createReplayRing(replayMs * BYTES_PER_MS);
  const chunkBytes = Math.min(MAX_CHUNK_BYTES, Math.max(1, Math.round(deps.chunkMs ?? DEFAULT_CHUNK_MS)) * BYTES_PER_MS);
  const restartAfterMs = Math.max(100, deps.restartAfterMs ?? DEFAULT_RESTART_AFTER_MS);
  const acceptTimeoutMs = deps.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
  const connectTimeoutMs = deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const backoff = createBackoff(deps.retry);
  const lifetime = new AbortController();
  const stats = { streams: 0, restarts: 0, reconnects: 0, malformedMessages: 0 };

  let phase: Phase = 'connecting';
  let current: Stream | undefined;
  const draining = new Set<Stream>();
  let starting = false;
  let pendingFinalize = false;
  let firstAudioAt: number | undefined;
  let interimMeasured = false;
  let finalMeasured = false;
  let closeWaiter: (() => void) | undefined;
  let closing: Promise<void> | undefined;

  // Audio for the live stream is batched here (it is in the ring too, which is what a new stream replays).
  const staging = new Uint8Array(chunkBytes);
  let staged = 0;
  let stagingTimer: ReturnType<typeof setTimeout> | undefined;

  const emit = (event: SttEvent): void => {
    if (phase === 'ended') return;
    try {
      onEvent(event);
    } catch {
      metrics.error(ID, 'stt', 'internal');
    }
  };

  // ---- streams ---------------------------------------------------------------------------------------------

  const releaseStream = (s: Stream): void => {
    for (const timer of s.timers) clearTimeout(timer);
    s.timers.length = 0;
    if (s.released) return;
    s.released = true;
    pool.release(s.pooled);
  };

  const cancelStream = (s: Stream): void => {
    if (s.state === 'ended') return;
    s.cancelledByUs = true;
    s.state = 'ended';
    draining.delete(s);
    s.call.cancel();
    releaseStream(s);
  };

  const sendAudio = (s: Stream, bytes: Uint8Array): void => {
    s.call.write({ audio: bytes.slice() });
  };

  /** One call: config sent at once; settles when the server answers (headers), refuses (status) or stays silent while connected (accept timeout). */
  const startStream = async (): Promise<Stream> => {
    const headers = await auth.metadata(plan.credential);
    if (lifetime.signal.aborted) throw aborted();
    const pooled = pool.acquire(plan.target);
    const metadata = toMetadata({ ...headers, 'x-goog-request-params': `recognizer=${encodeURIComponent(plan.recognizer)}` });
    const call = pooled.client.makeBidiStreamRequest(STREAMING_RECOGNIZE_PATH, encodeRecognizeRequest, (bytes: Buffer) => bytes, metadata);
    const s: Stream = { call, pooled, startPosition: ring.start, attachedAt: 0, state: 'starting', cancelledByUs: false, released: false, timers: [] };
    const startedAt = performance.now();
    const outcome = new Promise<{ accepted: true } | { accepted: false; status: CallStatus }>((resolve) => {
      s.settle = (o) => {
        s.settle = undefined;
        resolve(o);
      };
    });
    call.on('metadata', () => s.settle?.({ accepted: true }));
    call.on('data', (bytes: Buffer) => onData(s, bytes));
    call.on('status', (status: grpc.StatusObject) => onStatus(s, { code: status.code, details: status.details }));
    // Every non-OK status also comes as 'error' (and as 'status', handled above).
    call.on('error', () => {});
    call.write(plan.config);

    const checkConnected = (): void => {
      if (!s.settle) return;
      if (pooled.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY) return s.settle({ accepted: true });
      if (performance.now() - startedAt >= connectTimeoutMs) {
        return s.settle({ accepted: false, status: { code: grpc.status.DEADLINE_EXCEEDED, details: `no connection to ${plan.target.address} within ${connectTimeoutMs} ms` } });
      }
      s.timers.push(setTimeout(checkConnected, 50));
    };
    s.timers.push(setTimeout(checkConnected, acceptTimeoutMs));
    const onAbort = () => s.settle?.({ accepted: false, status: { code: grpc.status.CANCELLED, details: 'the session ended' } });
    lifetime.signal.addEventListener('abort', onAbort, { once: true });

    const result = await outcome;
    lifetime.signal.removeEventListener('abort', onAbort);
    for (const timer of s.timers) clearTimeout(timer);
    s.timers.length = 0;
    if (!result.accepted) {
      cancelStream(s);
      if (lifetime.signal.aborted) throw aborted();
      const verdict = classifyStatus(result.status, 'speech-to-text');
      throw verdict.kind === 'ok' ? new ProviderError(`${P}_UNAVAILABLE`, 'the stream ended before it started', true, 'unavailable') : verdict.error;
    }
    stats.streams++;
    metrics.connected(ID, 'stt', performance.now() - startedAt);
    return s;
  };

  /** Start a stream, retrying retryable refusals while the session's back-off budget lasts. */
  const startWithRetry = async (): Promise<Stream> => {
    for (;;) {
      try {
        return await startStream();
      } catch (raw) {
        const error = asProviderError(ID, raw);
        if (lifetime.signal.aborted) throw error;
        metrics.error(ID, 'stt', error.kind);
        const delay = error.retryable ? backoff.next() : undefined;
        if (delay === undefined) throw error;
        if (!(await sleep(delay, lifetime.signal))) throw error;
      }
    }
  };

  /** Get a new stream (unless one is on its way); when it is accepted it takes over from the current one. */
  const ensureStream = (delayMs: number): void => {
    if (starting || phase === 'ended' || phase === 'closing') return;
    starting = true;
    void (async () => {
      let s: Stream;
      try {
        if (delayMs > 0 && !(await sleep(delayMs, lifetime.signal))) return;
        s = await startWithRetry();
      } catch (error) {
        if ((phase as Phase) !== 'ended' && (phase as Phase) !== 'closing') fail(asProviderError(ID, error));
        return;
      } finally {
        starting = false;
      }
      if ((phase as Phase) === 'ended' || (phase as Phase) === 'closing') return cancelStream(s);
      // Make-before-break: the old stream answered what it could until now; the ring holds the rest.
      if (current) cancelStream(current);
      attach(s);
    })();
  };

  /** A stream takes over: the unanswered audio first, then live audio. */
  const attach = (s: Stream): void => {
    if (s.endedWith) {
      const verdict = classifyStatus(s.endedWith, 'speech-to-text');
      current = undefined;
      return handleFailure(verdict.kind === 'ok' ? new ProviderError(`${P}_UNAVAILABLE`, 'the stream ended as it started', true, 'unavailable') : verdict.error);
    }
    current = s;
    s.state = 'live';
    s.startPosition = ring.start;
    s.attachedAt = performance.now();
    resetStaging();
    ring.forEach(chunkBytes, (chunk) => sendAudio(s, chunk));
    phase = 'open';
    s.timers.push(
      setTimeout(() => {
        if (current === s && phase === 'open') restart('time limit');
      }, restartAfterMs),
    );
    if (pendingFinalize) {
      pendingFinalize = false;
      finalize();
    }
  };

  const restart = (reason: string): void => {
    if (starting) return;
    stats.restarts++;
    metrics.reconnected(ID, 'stt', `restart: ${reason}`);
    ensureStream(0);
  };

  /** Half-close: the server answers what it has (finals), then ends with OK. */
  const drain = (s: Stream): void => {
    s.state = 'draining';
    draining.add(s);
    s.call.end();
    s.timers.push(setTimeout(() => cancelStream(s), DRAIN_WAIT_MS));
  };

  // ---- audio -----------------------------------------------------------------------------------------------

  const resetStaging = (): void => {
    staged = 0;
    clearTimeout(stagingTimer);
    stagingTimer = undefined;
  };

  const flushStaging = (): void => {
    if (staged > 0 && current && phase === 'open') sendAudio(current, staging.subarray(0, staged));
    resetStaging();
  };

  const stage = (bytes: Uint8Array): void => {
    let offset = 0;
    while (offset < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - offset, chunkBytes - staged);
      staging.set(bytes.subarray(offset, offset + n), staged);
      staged += n;
      offset += n;
      if (staged === chunkBytes) flushStaging();
    }
    // A partial batch does not wait for more audio longer than one batch lasts.
    if (staged > 0 && !stagingTimer) stagingTimer = setTimeout(flushStaging, chunkBytes / BYTES_PER_MS);
  };

  // ---- server messages -------------------------------------------------------------------------------------

  const sessionMs = (s: Stream, streamMs: number): number => Math.round(s.startPosition / BYTES_PER_MS + streamMs);

  const onData = (s: Stream, bytes: Buffer): void => {
    if (phase === 'ended' || s.cancelledByUs) return;
    if (s !== current && s.state !== 'draining') return;
    const response = decodeRecognizeResponse(bytes);
    if (!response) {
      // One bad message must not end a call: count it and carry on.
      stats.malformedMessages++;
      metrics.error(ID, 'stt', 'protocol');
      return;
    }
    handleResponse(s, response);
  };

  const handleResponse = (s: Stream, response: StreamingRecognizeResponse): void => {
    const live = s === current;
    if (response.speech_event_type === 'SPEECH_ACTIVITY_BEGIN' && live) emit({ type: 'speechStarted' });
    const results = response.results ?? [];
    let interim = '';
    let finalSeen = false;
    for (const result of results) {
      const alternative = result.alternatives?.[0];
      const transcript = alternative?.transcript ?? '';
      if (!result.is_final) {
        interim += transcript;
        continue;
      }
      finalSeen = true;
      backoff.reset();
      const endMs = durationMs(result.result_end_offset);
      ring.dropUntil(endMs !== undefined ? s.startPosition + Math.round(endMs * (BYTES_PER_MS / 2)) * 2 : ring.end - FINAL_SAFETY_MS * BYTES_PER_MS);
      const text = transcript.trim();
      if (!text) continue;
      if (!finalMeasured && firstAudioAt !== undefined) {
        finalMeasured = true;
        metrics.firstResult(ID, 'stt', 'final', performance.now() - firstAudioAt);
      }
      const words: SttWord[] = [];
      for (const w of alternative?.words ?? []) {
        if (!w.word) continue;
        const start = durationMs(w.start_offset) ?? 0;
        const end = durationMs(w.end_offset) ?? start;
        words.push({ word: w.word, startMs: sessionMs(s, start), endMs: sessionMs(s, end), ...(w.confidence ? { confidence: w.confidence } : {}) });
      }
      // Google's 0 means "not set": taken at its word, like every vendor without a score.
      emit({ type: 'final', text, confidence: alternative?.confidence || 1, ...(words.length ? { words } : {}) });
      if (phase === ('ended' as Phase)) return;
    }
    const interimText = interim.trim();
    if (interimText && live) {
      backoff.reset();
      if (!interimMeasured && firstAudioAt !== undefined) {
        interimMeasured = true;
        metrics.firstResult(ID, 'stt', 'interim', performance.now() - firstAudioAt);
      }
      emit({ type: 'interim', text: interimText });
    }
    // Close to the limit, right after a final is the cheapest moment to restart: little to replay.
    if (finalSeen && live && current === s && phase === 'open' && performance.now() - s.attachedAt >= restartAfterMs * EARLY_RESTART_SHARE) restart('early, after a final');
  };

  const onStatus = (s: Stream, status: CallStatus): void => {
    if (s.settle) {
      // Ended before it was accepted: the start decides (retry or fail).
      s.settle({ accepted: false, status });
      return;
    }
    if (s.state === 'ended') return;
    if (s.state === 'starting') {
      // Accepted, then ended before it took over: `attach` sees it.
      s.endedWith = status;
      s.state = 'ended';
      releaseStream(s);
      return;
    }
    const wasDraining = s.state === 'draining';
    s.state = 'ended';
    releaseStream(s);
    if (s.cancelledByUs || phase === 'ended') return;
    if (wasDraining) {
      draining.delete(s);
      if (status.code !== grpc.status.OK) metrics.error(ID, 'stt', classifyStatusKind(status));
      if (phase === 'closing' && draining.size === 0) closeWaiter?.();
      return;
    }
    if (s !== current) return;
    current = undefined;
    resetStaging();
    if (phase === 'closing') {
      if (draining.size === 0) closeWaiter?.();
      return;
    }
    const verdict = classifyStatus(status, 'speech-to-text');
    const lived = performance.now() - s.attachedAt;
    if (verdict.kind === 'ok' || verdict.kind === 'restart') {
      // A server limit (duration, audio timeout) or a server-side end: the next audio opens the next stream.
      // Streams that keep ending at once spend the back-off budget, so a server refusing every stream ends the session.
      if (lived < MIN_HEALTHY_STREAM_MS && backoff.next() === undefined) {
        metrics.error(ID, 'stt', 'unavailable');
        return fail(new ProviderError(`${P}_STREAM_LIMIT`, `every new stream ended at once (${statusName(status.code)}: ${status.details})`, false, 'unavailable'));
      }
      stats.reconnects++;
      metrics.reconnected(ID, 'stt', verdict.kind === 'ok' ? 'server ended the stream' : verdict.error.code);
      phase = 'idle';
      if (pendingFinalize) {
        phase = 'reconnecting';
        ensureStream(0);
      }
      return;
    }
    handleFailure(verdict.error);
  };

  const handleFailure = (error: ProviderError): void => {
    metrics.error(ID, 'stt', error.kind);
    if (!error.retryable) return fail(error);
    const delay = backoff.next();
    if (delay === undefined) return fail(error);
    phase = 'reconnecting';
    stats.reconnects++;
    metrics.reconnected(ID, 'stt', error.code);
    ensureStream(delay);
  };

  // ---- lifecycle -------------------------------------------------------------------------------------------

  const end = (): void => {
    if (phase === 'ended') return;
    phase = 'ended';
    resetStaging();
    if (current) cancelStream(current);
    current = undefined;
    for (const s of [...draining]) cancelStream(s);
    lifetime.abort();
    options.signal.removeEventListener('abort', onAbort);
    closeWaiter?.();
  };

  const fail = (error: ProviderError): void => {
    if (phase === 'ended') return;
    emit({ type: 'error', error });
    end();
  };

  const finalize = (): void => {
    if (phase === 'ended' || phase === 'closing') return;
    if (phase !== 'open' || !current) {
      // No live stream: the next one replays the unanswered audio, then gets this finalize.
      if (ring.end > ring.start) pendingFinalize = true;
      if (phase === 'idle' && pendingFinalize) {
        phase = 'reconnecting';
        ensureStream(0);
      }
      return;
    }
    if (ring.end <= ring.start) return;
    flushStaging();
    const s = current;
    current = undefined;
    // What the drained stream was sent is its to answer; the next stream starts after it.
    ring.dropUntil(ring.end);
    drain(s);
    phase = 'reconnecting';
    ensureStream(0);
  };

  const onAbort = (): void => {
    if (phase === 'connecting') lifetime.abort();
    else void session.close();
  };
  options.signal.addEventListener('abort', onAbort, { once: true });

  let first: Stream;
  try {
    if (options.signal.aborted) throw aborted();
    first = await startWithRetry();
  } catch (error) {
    end();
    throw asProviderError(ID, error);
  }
  if (phase !== 'connecting' || lifetime.signal.aborted) {
    cancelStream(first);
    end();
    throw aborted();
  }
  attach(first);

  const closeGracefully = async (): Promise<void> => {
    if (phase === 'ended') return;
    phase = 'closing';
    const s = current;
    if (s) {
      if (staged > 0) sendAudio(s, staging.subarray(0, staged));
      resetStaging();
      current = undefined;
      drain(s);
    }
    if (draining.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        closeWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      closeWaiter = undefined;
    }
    end();
  };

  const session: GoogleSttSession = {
    write(frame: AudioFrame) {
      if (phase === 'ended' || phase === 'closing') return;
      firstAudioAt ??= performance.now();
      ring.append(frame.data);
      if (phase === 'open' && current) return stage(frame.data);
      // Without a live stream the ring alone keeps the audio; it is replayed into the next one.
      if (phase === 'idle') {
        phase = 'reconnecting';
        ensureStream(0);
      }
    },
    finalize,
    close() {
      closing ??= closeGracefully();
      return closing;
    },
    get stats() {
      return { ...stats, droppedReplayMs: ring.droppedBytes / BYTES_PER_MS };
    },
  };
  return session;
}

function aborted(): ProviderError {
  return new ProviderError(`${P}_ABORTED`, 'the session was cancelled before it opened', false, 'internal');
}

function classifyStatusKind(status: CallStatus) {
  const verdict = classifyStatus(status, 'speech-to-text');
  return verdict.kind === 'ok' ? 'internal' : verdict.error.kind;
}

