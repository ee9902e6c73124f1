import type { ZodType } from 'zod';
import type { ProviderError } from '../../contracts/errors';
import type { TtsCapabilities, TtsStreamOptions, TtsWordTiming } from '../../contracts/tts';

/**
 * A vendor's streaming TTS protocol as pure mapping (per-utterance state lives in the context object it
 * creates). The shared socket base (tts-socket.ts) owns the connection pool (sockets reused across turns and
 * pre-warmed), keep-alive, connect retry, cancel and metrics.
 */
export interface TtsWire {
  readonly id: string;
  readonly capabilities: TtsCapabilities & {
    /** Several utterances (contexts) share one socket (ElevenLabs multi-stream, Cartesia contexts). */
    readonly multiplexed: boolean;
    /** An utterance can be cancelled and the socket reused (Deepgram Clear, context cancel); else the socket is closed. */
    readonly cancelWithoutClosing: boolean;
    readonly keepAlive: boolean;
  };
  readonly optionsSchema?: ZodType;
  /**
   * The vendor has no end-of-utterance message (Deepgram Aura): after `end()`, the `pieceDone` of the last
   * piece ends the utterance.
   */
  readonly lastPieceEndsUtterance?: boolean;
  /** URL (with query) and headers. Throws ProviderError (non-retryable) for a missing API key or unsupported format. */
  connect(options: TtsStreamOptions): { url: string; headers?: Record<string, string>; protocols?: string[] };
  /** Sockets are reused only between utterances whose keys are equal (URL, credentials, voice/format when fixed per socket). */
  connectionKey(options: TtsStreamOptions): string;
  /** Messages right after the socket opens, if any. */
  open?(options: TtsStreamOptions): readonly string[];
  /** Sent on an idle pooled socket every `intervalMs` so the vendor keeps it open. */
  readonly keepAliveMessage?: { readonly intervalMs: number; message(): string };
  /** One utterance on a socket; `contextId` is unique per socket (the base makes them). */
  utterance(contextId: string, options: TtsStreamOptions): TtsWireUtterance;
  /** One server message → events (none for metadata). Events without `contextId` belong to the socket's only utterance. */
  decode(data: string | Uint8Array): readonly TtsWireEvent[];
  /** A close the base did not ask for. `undefined` = normal. */
  classifyClose(code: number, reason: string): ProviderError | undefined;
  classifyHandshake(status: number | undefined, body: string): ProviderError;
}

export interface TtsWireUtterance {
  /** Messages that start it (context init), if any. */
  begin(): readonly string[];
  /** A piece of text (a clause); `index` is the engine's piece index. */
  text(text: string, index: number): readonly string[];
  /** No more text: generate what is buffered; the vendor signals the end with `done` (or `pieceDone` for the last piece). */
  end(): readonly string[];
  /** Stop generating now. 'close-socket': the protocol cannot cancel in place. */
  cancel(): readonly string[] | 'close-socket';
}

export type TtsWireEvent =
  /** Audio in the requested format (already base64-decoded). `textIndex` when the vendor says which piece it voices. */
  | { readonly type: 'audio'; readonly contextId?: string; readonly data: Uint8Array; readonly textIndex?: number }
  | { readonly type: 'words'; readonly contextId?: string; readonly words: readonly TtsWordTiming[] }
  /** A piece boundary (flush acknowledged): later audio without `textIndex` voices the next piece. */
  | { readonly type: 'pieceDone'; readonly contextId?: string }
  /** All audio of the utterance has been sent. */
  | { readonly type: 'done'; readonly contextId?: string }
  /** A cancel was acknowledged: the socket can take the next utterance. */
  | { readonly type: 'cancelled'; readonly contextId?: string }
  | { readonly type: 'error'; readonly contextId?: string; readonly error: ProviderError };
