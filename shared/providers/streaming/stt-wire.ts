import type { ZodType } from 'zod';
import type { ProviderError } from '../../contracts/errors';
import type { SttCapabilities, SttSessionOptions, SttWord } from '../../contracts/stt';

/**
 * A vendor's streaming STT protocol as pure functions: what to connect to, how to frame audio and control
 * messages, and what the server's messages mean. No I/O, no timers: the shared socket base
 * (stt-socket.ts) owns connecting, keep-alive, reconnect with replay, back-off and metrics.
 */
export interface SttWire {
  readonly id: string;
  readonly capabilities: SttCapabilities & {
    /** The protocol has a keep-alive message (else silence is sent to keep the socket open, or nothing). */
    readonly keepAlive: boolean;
  };
  /** Options schema of the provider block's `options` (zod); validated before `connect` sees them. */
  readonly optionsSchema?: ZodType;
  /**
   * URL (with query) and handshake headers. Throws ProviderError (non-retryable) for a missing API key.
   * Audio is always the pipeline's PCM16 16 kHz mono (ask for linear16/16000): the VAD needs that format, so
   * the channel's transcoding is paid already, and μ-law 8 kHz would only lose accuracy.
   */
  connect(options: SttSessionOptions): { url: string; headers?: Record<string, string>; protocols?: string[] };
  /** Messages to send right after the socket opens (a config/init message), if any. */
  open?(options: SttSessionOptions): readonly (string | Uint8Array)[];
  /** One audio chunk in the vendor's framing (binary for most; JSON+base64 for some). */
  audio(chunk: Uint8Array): string | Uint8Array;
  /**
   * How long each audio message must be, for a vendor that refuses (or prefers not to get) the pipeline's
   * 20 ms frames; a function when it depends on the session's options. Undefined: every frame is sent as it
   * is written. See {@link SttAudioMessageMs}.
   */
  readonly audioMessageMs?: SttAudioMessageMs | ((options: SttSessionOptions) => SttAudioMessageMs | undefined);
  /** The replay after a reconnect must not go out faster than real time. See {@link SttReplayPacing}. */
  readonly replayPacing?: SttReplayPacing;
  /** Keep-alive message and how often to send it while no audio flows. */
  readonly keepAliveMessage?: { readonly intervalMs: number; message(): string };
  /** Flush: everything heard so far becomes final. Undefined: not supported (the base does nothing). */
  finalize?(): string | Uint8Array;
  /** Graceful end: the server sends what it still has, then closes (or acknowledges). */
  closeMessage?(): string | Uint8Array;
  /** One server message → events (usually one; none for metadata/pings). */
  decode(data: string | Uint8Array): readonly SttWireEvent[];
  /** A close the base did not ask for: retryable (reconnect) or not (error to the engine). `undefined` = a normal end. */
  classifyClose(code: number, reason: string): ProviderError | undefined;
  /** A refused handshake (HTTP status + body): auth → non-retryable, 429/5xx → retryable. */
  classifyHandshake(status: number | undefined, body: string): ProviderError;
}

/**
 * Audio message sizes, in ms of the pipeline's audio (PCM16 16 kHz: 32 bytes per ms). With them the base
 * holds written frames in a preallocated buffer and sends `audio(bytes)`:
 *
 * - Live audio: once `target` ms are held (whole frames: 20 ms frames and a 50 ms target make 60 ms
 *   messages); a message never exceeds `max` (a longer write is split).
 * - Flush: before a finalize, a keep-alive or the close (message), and after `hold` ms without new audio, what
 *   is held goes out: padded with silence up to `min` when `padOnFlush` (the silence becomes part of the
 *   stream, the replay ring included, so the vendor's stream time and the ring stay one timeline), else as
 *   it is (shorter than `min`).
 * - Replay after a reconnect: the ring's audio in messages of max(100 ms, `target`) clamped to [min, max];
 *   a final rest shorter than that is held as the start of the next live message, never padded mid-word.
 *   What was held but not yet sent is in the ring already: it is replayed once, never lost or duplicated.
 */
export interface SttAudioMessageMs {
  /** The shortest message (> 0). Replay messages and padded flushes are never shorter. */
  readonly min: number;
  /** The longest message (default: the longer of `target` and 100 ms). */
  readonly max?: number;
  /** Live audio goes out once this much is held (default `min`; clamped to [min, max]). */
  readonly target?: number;
  /** Pad a flushed rest shorter than `min` with silence up to `min` (vendors that refuse short messages). */
  readonly padOnFlush?: boolean;
  /** A held rest goes out after this long without new audio (default 2 × target). */
  readonly hold?: number;
}

/**
 * Pacing of the replay after a reconnect, for vendors that refuse audio sent faster than real time. Audio
 * sent on a connection stays within `burstMs + realtimeFactor × (time since it opened)` while a backlog
 * remains; live audio written meanwhile queues behind the replay in the ring (bounded by it: the oldest
 * unsent audio is dropped and counted once the ring is full). Control messages (finalize, close) wait for
 * the backlog. At a factor of 1 a backlog only shrinks while no audio is written: the replay's length stays
 * as added latency, which is the price of the vendor's rule.
 */
export interface SttReplayPacing {
  /** Audio ms per wall ms (1 = real time). */
  readonly realtimeFactor: number;
  /** Audio sent at once before pacing starts (default 200 ms). */
  readonly burstMs?: number;
}

export type SttWireEvent =
  | { readonly type: 'interim'; readonly text: string }
  /**
   * Final text of a stretch of audio. `audioEndMs`, when the vendor says where it ends (stream time of this
   * connection), lets the base drop replay audio up to there; without it the base keeps a safety margin.
   */
  | { readonly type: 'final'; readonly text: string; readonly confidence?: number; readonly words?: readonly SttWord[]; readonly audioEndMs?: number }
  | { readonly type: 'speechStarted' }
  | { readonly type: 'endOfTurn'; readonly text?: string }
  /** The server acknowledged a finalize (Deepgram from_finalize, Cartesia flush_done). */
  | { readonly type: 'finalized' }
  /** The server finished after closeMessage (Metadata, done, Termination). */
  | { readonly type: 'closed' }
  /** An error frame: non-retryable ones end the session; retryable ones make the base reconnect. */
  | { readonly type: 'error'; readonly error: ProviderError };
