import type { ProviderMetricsSink } from '../../../shared/providers/streaming/metrics';
import type { GoogleAuth } from './auth';
import type { ClientPool } from './grpc';

/** What the Google adapters get from the media node (and tests). Every field has a production default. */
export interface GoogleProviderDeps {
  readonly metrics?: ProviderMetricsSink;
  /** Connecting (HTTP/2 + the call's first answer) must finish within this (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Retries of retryable failures (refused calls, dropped streams): attempts after the first, base delay doubling with jitter. Default 3 × 200 ms. */
  readonly retry?: { readonly attempts: number; readonly baseDelayMs: number };
  /** STT: unanswered audio kept for replay into a new stream (default and maximum 5000 ms; 0 = off, for the negative control only). */
  readonly replayMs?: number;
  /** An unused HTTP/2 connection is closed after this long (default 30 s). */
  readonly idleMs?: number;
  /** Calls per HTTP/2 connection before another connection is opened (default 50). */
  readonly maxCallsPerConnection?: number;
  /** Token cache and JWT signer; default: one per adapter, on the global fetch. */
  readonly auth?: GoogleAuth;
  /** Own connection pool (default: one per adapter). */
  readonly pool?: ClientPool;
  /**
   * STT: a stream is replaced by a fresh one (make-before-break, unanswered audio replayed) after this long,
   * ahead of Google's 5-minute stream limit. Default 290 000 ms (4 min 50 s); tests shorten it.
   */
  readonly restartAfterMs?: number;
  /**
   * STT: how long to wait for the server's response headers before taking a started call as accepted (the
   * service may hold its headers until its first result). Default 500 ms; refusals usually come sooner.
   */
  readonly acceptTimeoutMs?: number;
  /** STT: audio per request: the pipeline's 20 ms frames are batched to this (default 100 ms, Google's advice; capped at 480 ms = 15 KB). */
  readonly chunkMs?: number;
}
