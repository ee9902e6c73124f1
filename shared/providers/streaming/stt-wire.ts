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
