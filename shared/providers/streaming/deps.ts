import type { ProviderMetricsSink } from './metrics';
import type { SocketFactory } from './socket';

/** What a socket-based adapter gets from its runtime (Node media node, workerd edge, tests). */
export interface SocketProviderDeps {
  readonly connect: SocketFactory;
  readonly metrics?: ProviderMetricsSink;
  /** Handshake deadline per attempt (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Retries of retryable failures (handshake 429/5xx, unexpected closes): attempts after the first, base delay doubling with jitter. Default 3 × 200 ms. */
  readonly retry?: { readonly attempts: number; readonly baseDelayMs: number };
  /** STT: audio since the last final kept for replay into a new connection (default and maximum 5000 ms; 0 turns replay off, for the negative control only). */
  readonly replayMs?: number;
  /** TTS: how long an idle pooled socket is kept open (default 30 s). */
  readonly idleMs?: number;
  /** TTS: an utterance that gets no audio for this long after a piece or audio event is failed as stalled, and its socket closed (default 8000 ms). */
  readonly ttsStallMs?: number;
}
