import type { AudioFrame } from '../audio/format';
import type { ProviderError } from './errors';

export interface SttWord {
  readonly word: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly confidence?: number;
}

export type SttEvent =
  | { readonly type: 'interim'; readonly text: string }
  | { readonly type: 'final'; readonly text: string; readonly confidence: number; readonly words?: readonly SttWord[] }
  | { readonly type: 'speechStarted' }
  /** The provider's own end-of-turn signal (Deepgram Flux, AssemblyAI, ...). */
  | { readonly type: 'endOfTurn'; readonly text?: string }
  | { readonly type: 'error'; readonly error: ProviderError };

export interface SttCapabilities {
  readonly interimResults: boolean;
  readonly finalize: boolean;
  readonly wordTimings: boolean;
  readonly endOfTurn: boolean;
  readonly edgeCapable: boolean;
}

export interface SttSessionOptions {
  readonly language: string;
  readonly model?: string;
  readonly endpoint?: string;
  readonly apiKey?: string;
  /** Provider-specific options, already validated by the provider's schema. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly signal: AbortSignal;
}

/** One streaming recognition session. Input is always PIPELINE_FORMAT (PCM16 16 kHz, 20 ms frames). */
export interface SttSession {
  write(frame: AudioFrame): void;
  /** Ask the provider to flush: everything heard so far becomes final. */
  finalize(): void;
  close(): Promise<void>;
}

export interface SpeechToText {
  readonly id: string;
  readonly capabilities: SttCapabilities;
  open(options: SttSessionOptions, onEvent: (event: SttEvent) => void): Promise<SttSession>;
}
