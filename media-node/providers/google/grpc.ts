import * as grpc from '@grpc/grpc-js';
import { ProviderError } from '../../../shared/contracts/errors';

/**
 * The gRPC plumbing both Google adapters share: where to connect (the block's `endpoint` or Google's host),
 * a pool of HTTP/2 connections, and what a gRPC status means for the engine (retry, fail, restart).
 */

export const GOOGLE_PROVIDER_ID = 'google-speech-service';
export const GOOGLE_ERROR_PREFIX = 'GOOGLE_SPEECH';

export interface GoogleTarget {
  /** `host:port` for grpc-js. */
  readonly address: string;
  readonly secure: boolean;
}

/**
 * The block's `endpoint` replaces Google's host: `http://127.0.0.1:PORT` → plaintext HTTP/2 (h2c, local fakes and
 * sidecars), `https://host[:port]` or a bare `host[:port]` → TLS (port 443 by default).
 */
export function resolveTarget(endpoint: string | undefined, defaultHost: string): GoogleTarget {
  if (!endpoint) return { address: `${defaultHost}:443`, secure: true };
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_BAD_REQUEST`, `the endpoint "${endpoint}" of the ${GOOGLE_PROVIDER_ID} block is not a URL (use https://host or http://host:port)`, false, 'bad-request');
  }
  const scheme = url.protocol.replace(/:$/, '').toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_BAD_REQUEST`, `the endpoint "${endpoint}" of the ${GOOGLE_PROVIDER_ID} block must be http:// (plaintext) or https:// (TLS): gRPC runs over HTTP/2`, false, 'bad-request');
  }
  const secure = scheme === 'https';
  const port = url.port || (secure ? '443' : '80');
  return { address: `${url.hostname}:${port}`, secure };
}

// ---- status → ProviderError ------------------------------------------------------------------------------------

export interface CallStatus {
  readonly code: number;
  readonly details: string;
}

/** What the session does with a call that ended. */
export type StatusVerdict =
  /** OK: the stream is over (after our half-close: done). */
  | { readonly kind: 'ok' }
  /** OUT_OF_RANGE: the stream hit a server limit (duration, audio timeout): open a new one, replaying. */
  | { readonly kind: 'restart'; readonly error: ProviderError }
  | { readonly kind: 'error'; readonly error: ProviderError };

const NAMES = Object.fromEntries(Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k])) as Record<number, string>;

export function statusName(code: number): string {
  return NAMES[code] ?? `status ${code}`;
}

/**
 * Google's gRPC statuses as ProviderErrors. A wrong API key is INVALID_ARGUMENT "API key not valid" on Google
 * APIs (not UNAUTHENTICATED): it is an auth error all the same.
 */
export function classifyStatus(status: CallStatus, what: 'speech-to-text' | 'text-to-speech'): StatusVerdict {
  const p = GOOGLE_ERROR_PREFIX;
  const said = `${statusName(status.code)}${status.details ? `: ${status.details.slice(0, 300)}` : ''}`;
  const credentialHint = `Check the ${GOOGLE_PROVIDER_ID} credential of the project (an API key, or a service-account JSON whose account may use Cloud ${what === 'speech-to-text' ? 'Speech-to-Text' : 'Text-to-Speech'}).`;
  switch (status.code) {
    case grpc.status.OK:
      return { kind: 'ok' };
    case grpc.status.UNAUTHENTICATED:
      return { kind: 'error', error: new ProviderError(`${p}_AUTH`, `Google rejected the credential (${said}). ${credentialHint}`, false, 'auth') };
    case grpc.status.PERMISSION_DENIED:
      return { kind: 'error', error: new ProviderError(`${p}_AUTH`, `Google refused access (${said}): the API may be disabled for the project, or the key/account lacks the permission. ${credentialHint}`, false, 'auth') };
    case grpc.status.INVALID_ARGUMENT:
      if (/api[ _-]?key/i.test(status.details)) {
        return { kind: 'error', error: new ProviderError(`${p}_AUTH`, `Google rejected the API key (${said}). ${credentialHint}`, false, 'auth') };
      }
      return { kind: 'error', error: new ProviderError(`${p}_BAD_REQUEST`, `Google refused the ${what} request (${said}). Check the model, language, voice, location and options of the ${GOOGLE_PROVIDER_ID} block.`, false, 'bad-request') };
    case grpc.status.NOT_FOUND:
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.UNIMPLEMENTED:
      return { kind: 'error', error: new ProviderError(`${p}_BAD_REQUEST`, `Google refused the ${what} request (${said}). Check the project, location, recognizer/voice and endpoint of the ${GOOGLE_PROVIDER_ID} block.`, false, 'bad-request') };
    case grpc.status.RESOURCE_EXHAUSTED:
      return { kind: 'error', error: new ProviderError(`${p}_RATE_LIMIT`, `Google's quota or concurrency limit was hit (${said})`, true, 'rate-limit') };
    case grpc.status.OUT_OF_RANGE:
      return { kind: 'restart', error: new ProviderError(`${p}_STREAM_LIMIT`, `the stream hit a server limit (${said})`, true, 'unavailable') };
    case grpc.status.DEADLINE_EXCEEDED:
      return { kind: 'error', error: new ProviderError(`${p}_TIMEOUT`, `Google did not answer in time (${said})`, true, 'timeout') };
    default:
      // UNAVAILABLE, INTERNAL, UNKNOWN, ABORTED, CANCELLED by the server or a proxy, DATA_LOSS.
      return { kind: 'error', error: new ProviderError(`${p}_UNAVAILABLE`, `the ${what} stream failed (${said})`, true, 'unavailable') };
  }
}

// ---- connection pool ---------------------------------------------------------------------------------------------

export interface PooledClient {
  readonly client: grpc.Client;
  readonly key: string;
  /** Calls running on it. */
  active: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

export interface ClientPool {
  /** A client (one HTTP/2 connection) for a call to `target`; `release` it when the call ends. */
  acquire(target: GoogleTarget): PooledClient;
  release(pooled: PooledClient): void;
  /** Connect one client to `target` now (TCP + TLS + HTTP/2 settings), so the first call skips the handshake. */
  prewarm(target: GoogleTarget, timeoutMs: number): Promise<void>;
  close(): void;
  /** Open clients (tests). */
  readonly size: number;
}

export interface ClientPoolOptions {
  /** Calls per HTTP/2 connection before another is opened (servers cap concurrent streams, often at 100). Default 50. */
  readonly maxCallsPerConnection?: number;
  /** An unused connection is closed after this long (default 30 s). */
  readonly idleMs?: number;
}

/**
 * HTTP/2 connections reused across calls (sessions, utterances). Auth travels per call in metadata, so one
 * connection serves every credential of an endpoint. Each pooled client has its own subchannel pool
 * (`grpc.use_local_subchannel_pool`): grpc-js would otherwise share one transport between all clients of an
 * address, and the per-connection call cap would mean nothing.
 */
export function createClientPool(options: ClientPoolOptions = {}): ClientPool {
  const maxCalls = options.maxCallsPerConnection ?? 50;
  const idleMs = options.idleMs ?? 30_000;
  const byKey = new Map<string, PooledClient[]>();

  const keyOf = (target: GoogleTarget) => `${target.secure ? 'tls' : 'h2c'}://${target.address}`;

  const remove = (pooled: PooledClient): void => {
    const list = byKey.get(pooled.key);
    if (!list) return;
    const at = list.indexOf(pooled);
    if (at >= 0) list.splice(at, 1);
    if (!list.length) byKey.delete(pooled.key);
  };

  const closeClient = (pooled: PooledClient): void => {
    if (pooled.closed) return;
    pooled.closed = true;
    clearTimeout(pooled.idleTimer);
    remove(pooled);
    pooled.client.close();
  };

  const scheduleIdle = (pooled: PooledClient): void => {
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = setTimeout(() => {
      if (pooled.active === 0) closeClient(pooled);
    }, idleMs);
    pooled.idleTimer.unref?.();
  };

  const open = (target: GoogleTarget, key: string): PooledClient => {
    const credentials = target.secure ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
    const client = new grpc.Client(target.address, credentials, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.primary_user_agent': 'voice-runtime',
      // A dropped connection is reconnected by the next call; do not wait a whole second first.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
    const pooled: PooledClient = { client, key, active: 0, idleTimer: undefined, closed: false };
    const list = byKey.get(key);
    if (list) list.push(pooled);
    else byKey.set(key, [pooled]);
    return pooled;
  };

  const pick = (target: GoogleTarget): PooledClient => {
    const key = keyOf(target);
    const existing = (byKey.get(key) ?? []).find((p) => !p.closed && p.active < maxCalls);
    return existing ?? open(target, key);
  };

  return {
    acquire(target) {
      const pooled = pick(target);
      pooled.active++;
      clearTimeout(pooled.idleTimer);
      pooled.idleTimer = undefined;
      return pooled;
    },
    release(pooled) {
      pooled.active = Math.max(0, pooled.active - 1);
      if (pooled.active === 0 && !pooled.closed) scheduleIdle(pooled);
    },
    prewarm(target, timeoutMs) {
      const pooled = pick(target);
      if (pooled.active === 0) scheduleIdle(pooled);
      return new Promise<void>((resolve, reject) => {
        pooled.client.waitForReady(Date.now() + timeoutMs, (error) => {
          if (!error) return resolve();
          reject(new ProviderError(`${GOOGLE_ERROR_PREFIX}_UNAVAILABLE`, `could not connect to ${target.address} within ${timeoutMs} ms: ${error.message}`, true, 'unavailable', { cause: error }));
        });
      });
    },
    close() {
      for (const list of [...byKey.values()]) for (const pooled of [...list]) closeClient(pooled);
    },
    get size() {
      let n = 0;
      for (const list of byKey.values()) n += list.length;
      return n;
    },
  };
}

/** Metadata from plain headers (lower-case names; grpc-js refuses upper case). */
export function toMetadata(headers: Readonly<Record<string, string>>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name.toLowerCase(), value);
  return metadata;
}
