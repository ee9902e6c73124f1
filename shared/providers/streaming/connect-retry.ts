import { ProviderError, asProviderError, isAbortError } from '../../contracts/errors';
import type { ProviderMetricsSink } from './metrics';
import { SocketConnectError } from './socket';
import type { ProviderSocket, SocketFactory, SocketHandlers } from './socket';

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const DEFAULT_RETRY = Object.freeze({ attempts: 3, baseDelayMs: 200 });

/**
 * The retry budget of one session (STT) or one connect (TTS): `next()` gives the delay before the next
 * attempt, or undefined when the budget is spent. Delays double from the base with ±25 % jitter, so many
 * calls dropped at once do not reconnect in lockstep.
 */
export interface Backoff {
  next(): number | undefined;
  /** A connection proved itself (it produced a result): the next failure starts from a full budget. */
  reset(): void;
  readonly used: number;
}

export function createBackoff(policy: { readonly attempts: number; readonly baseDelayMs: number } = DEFAULT_RETRY, random: () => number = Math.random): Backoff {
  let used = 0;
  return {
    next() {
      if (used >= policy.attempts) return undefined;
      const delay = policy.baseDelayMs * 2 ** used * (0.75 + 0.5 * random());
      used++;
      return Math.round(delay);
    },
    reset() {
      used = 0;
    },
    get used() {
      return used;
    },
  };
}

/** Resolves true after `ms`, or false as soon as `signal` aborts (the timer is cleared either way). */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export interface ConnectWithRetryOptions {
  readonly providerId: string;
  readonly stage: 'stt' | 'tts';
  readonly factory: SocketFactory;
  readonly target: { readonly url: string; readonly headers?: Record<string, string>; readonly protocols?: string[] };
  readonly timeoutMs: number;
  /** Aborting stops the attempt in flight and the waits between attempts. */
  readonly signal: AbortSignal;
  /** Handlers of the socket that opens (failed attempts never call them). */
  readonly handlers: SocketHandlers;
  readonly classifyHandshake: (status: number | undefined, body: string) => ProviderError;
  readonly backoff: Backoff;
  readonly metrics: ProviderMetricsSink;
}

/**
 * Connect, retrying retryable handshake failures (429, 5xx, timeouts, network) while the budget lasts.
 * Rejects with the ProviderError of a non-retryable failure at once, else with the last one.
 */
export async function connectWithRetry(o: ConnectWithRetryOptions): Promise<ProviderSocket> {
  for (;;) {
    const startedAt = performance.now();
    try {
      const socket = await o.factory(
        { url: o.target.url, headers: o.target.headers, protocols: o.target.protocols, timeoutMs: o.timeoutMs, signal: o.signal },
        o.handlers,
      );
      o.metrics.connected(o.providerId, o.stage, performance.now() - startedAt);
      return socket;
    } catch (raw) {
      const error = classifyConnectError(o, raw);
      if (o.signal.aborted) throw error;
      o.metrics.error(o.providerId, o.stage, error.kind);
      const delay = error.retryable ? o.backoff.next() : undefined;
      if (delay === undefined) throw error;
      if (!(await sleep(delay, o.signal))) throw error;
    }
  }
}

function classifyConnectError(o: ConnectWithRetryOptions, raw: unknown): ProviderError {
  const code = o.providerId.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
  if (raw instanceof ProviderError) return raw;
  if (o.signal.aborted || isAbortError(raw)) return new ProviderError(`${code}_ABORTED`, 'the connection attempt was cancelled', false, 'internal', { cause: raw });
  if (raw instanceof SocketConnectError && raw.timedOut) {
    return new ProviderError(`${code}_CONNECT_TIMEOUT`, `no handshake within ${o.timeoutMs} ms`, true, 'timeout', { cause: raw });
  }
  if (raw instanceof SocketConnectError) {
    try {
      return o.classifyHandshake(raw.status, raw.body);
    } catch (error) {
      return asProviderError(o.providerId, error);
    }
  }
  return asProviderError(o.providerId, raw);
}
