import type { ErrorKind } from '../../contracts/errors';

/**
 * Connection-level measurements of streaming providers (the per-turn timeline is the engine's). The media
 * node feeds these to Prometheus; tests record them. Every method must be cheap and must not throw.
 */
export interface ProviderMetricsSink {
  /** Handshake done: ms from starting to connect until the socket was open (and, where the protocol has one, ready). */
  connected(provider: string, stage: 'stt' | 'tts', ms: number): void;
  /** First result of a session/utterance: ms from its first audio frame (STT) or first text (TTS). */
  firstResult(provider: string, stage: 'stt' | 'tts', kind: 'interim' | 'final' | 'audio', ms: number): void;
  reconnected(provider: string, stage: 'stt' | 'tts', reason: string): void;
  error(provider: string, stage: 'stt' | 'tts', kind: ErrorKind): void;
}

export const nullProviderMetrics: ProviderMetricsSink = {
  connected() {},
  firstResult() {},
  reconnected() {},
  error() {},
};
