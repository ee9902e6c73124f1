import type { ErrorKind } from '../../contracts/errors';

/**
 * Connection-level measurements of streaming providers (the per-turn timeline is the engine's). The media
 * node feeds these to Prometheus; tests record them. Every method must be cheap and must not throw.
 */
export interface ProviderMetricsSink {
  /** Handshake done: ms from starting to connect until the socket was open (and, where the protocol has one, ready). */
  connected(provider: string, stage: 'stt' | 'tts' | 'llm', ms: number): void;
  /** First result of a session/utterance: ms from its first audio frame (STT), first text (TTS) or the request (LLM: first token). */
  firstResult(provider: string, stage: 'stt' | 'tts' | 'llm', kind: 'interim' | 'final' | 'audio' | 'token', ms: number): void;
  reconnected(provider: string, stage: 'stt' | 'tts' | 'llm', reason: string): void;
  error(provider: string, stage: 'stt' | 'tts' | 'llm', kind: ErrorKind): void;
}

export const nullProviderMetrics: ProviderMetricsSink = {
  connected() {},
  firstResult() {},
  reconnected() {},
  error() {},
};
