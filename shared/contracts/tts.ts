import type { AudioFormat } from '../audio/format';
import type { ProviderError } from './errors';

export interface TtsWordTiming {
  readonly word: string;
  /** Offset from the start of this utterance's audio. */
  readonly startMs: number;
  readonly endMs: number;
}

export type TtsEvent =
  /** Audio of any length in the requested format; `textIndex` names the pushed text piece it voices. */
  | { readonly type: 'audio'; readonly data: Uint8Array; readonly textIndex: number }
  | { readonly type: 'words'; readonly words: readonly TtsWordTiming[] }
  /** Every pushed piece has been voiced (after `end()`). */
  | { readonly type: 'done' }
  | { readonly type: 'error'; readonly error: ProviderError };

export interface TtsCapabilities {
  readonly wordTimings: boolean;
  /** Formats the provider can produce natively; the engine asks for the channel's format when listed. */
  readonly outputFormats: readonly AudioFormat[];
  readonly edgeCapable: boolean;
}

export interface TtsStreamOptions {
  readonly voice?: string;
  readonly model?: string;
  readonly language: string;
  readonly format: AudioFormat;
  readonly endpoint?: string;
  readonly apiKey?: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly signal: AbortSignal;
}

/**
 * One utterance: text pieces go in as the LLM produces them, audio comes out as events.
 * `cancel()` stops synthesis at once (barge-in); no event follows it.
 */
export interface TtsStream {
  /** Returns the index of the piece (0, 1, 2, ...), echoed back in audio events. */
  push(text: string): number;
  end(): void;
  cancel(): void;
}

export interface TextToSpeech {
  readonly id: string;
  readonly capabilities: TtsCapabilities;
  stream(options: TtsStreamOptions, onEvent: (event: TtsEvent) => void): TtsStream;
  /**
   * Optional: open a connection for these options ahead of the first utterance (while the phone rings), so
   * that utterance skips the handshake. Rejects with a ProviderError when it cannot connect.
   */
  prewarm?(options: Omit<TtsStreamOptions, 'signal'>): Promise<void>;
  /** Optional: release pooled connections (node shutdown); utterances still speaking get an error event. */
  close?(): Promise<void>;
}
