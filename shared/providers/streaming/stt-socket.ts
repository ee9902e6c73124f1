import type { AudioFrame } from '../../audio/format';
import { ProviderError, asProviderError } from '../../contracts/errors';
import type { SpeechToText, SttEvent, SttSession, SttSessionOptions } from '../../contracts/stt';
import type { Registrable } from '../registry';
import { BYTES_PER_MS, createAudioOutbox } from './audio-outbox';
import { DEFAULT_CONNECT_TIMEOUT_MS, connectWithRetry, createBackoff, sleep } from './connect-retry';
import type { Backoff } from './connect-retry';
import type { SocketProviderDeps } from './deps';
import { nullProviderMetrics } from './metrics';
import { createReplayRing } from './replay-ring';
import type { ProviderSocket } from './socket';
import type { SttAudioMessageMs, SttWire, SttWireEvent } from './stt-wire';

export const MAX_REPLAY_MS = 5000;
/** Without the vendor saying where a final ends, keep this much: audio sent just before the final may be unanswered. */
const FINAL_SAFETY_MS = 1000;
const CLOSE_WAIT_MS = 2000;

/** What a socket STT session reports about itself beyond the contract (tests and diagnostics read it). */
export interface SocketSttSession extends SttSession {
  readonly stats: {
    readonly connections: number;
    readonly reconnects: number;
    /** Audio evicted from the replay ring before a final answered it. */
    readonly droppedReplayMs: number;
    /** Server messages the wire could not decode (ignored). */
    readonly malformedMessages: number;
  };
}

/**
 * A streaming STT provider from its wire mapping: connect, keep-alive, reconnect with replay, back-off, metrics,
 * and (when the wire asks) audio message sizing and a paced replay (audio-outbox.ts).
 */
export function createSocketStt(wire: SttWire, deps: SocketProviderDeps): SpeechToText & Registrable {
  return {
    id: wire.id,
    capabilities: wire.capabilities,
    ...(wire.optionsSchema ? { optionsSchema: wire.optionsSchema } : {}),
    open: (options, onEvent) => openSession(wire, deps, options, onEvent),
  };
}

interface Connection {
  socket: ProviderSocket | undefined;
  closedByUs: boolean;
  lastSendAt: number;
  keepAliveTimer: ReturnType<typeof setTimeout> | undefined;
}

/** open → (reconnecting ⇄ open) → closing → ended; `ended` is final and silent. */
type Phase = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'ended';

async function openSession(wire: SttWire, deps: SocketProviderDeps, options: SttSessionOptions, onEvent: (event: SttEvent) => void): Promise<SttSession> {
  const id = wire.id;
  const metrics = deps.metrics ?? nullProviderMetrics;
  let target: ReturnType<SttWire['connect']>;
  let messageMs: SttAudioMessageMs | undefined;
  try {
    target = wire.connect(options);
    messageMs = typeof wire.audioMessageMs === 'function' ? wire.audioMessageMs(options) : wire.audioMessageMs;
  } catch (error) {
    throw asProviderError(id, error);
  }

  const replayMs = Math.min(MAX_REPLAY_MS, Math.max(0, deps.replayMs ?? MAX_REPLAY_MS));
  const ring = createReplayRing(replayMs * BYTES_PER_MS);
  // The ring holds all audio written; the outbox decides what of it goes out on the current connection, and when.
  const outbox = createAudioOutbox(ring, messageMs, wire.replayPacing);
  const backoff: Backoff = createBackoff(deps.retry);
  // Aborted when the session ends: stops connects and back-off waits in flight.
  const lifetime = new AbortController();
  const stats = { connections: 0, reconnects: 0, malformedMessages: 0 };

  let phase: Phase = 'connecting';
  let conn: Connection | undefined;
  let firstAudioAt: number | undefined;
  let interimMeasured = false;
  let finalMeasured = false;
  let pendingFinalize = false;
  let closeWaiter: (() => void) | undefined;
  let drainWaiter: (() => void) | undefined;
  let closing: Promise<void> | undefined;

  const emit = (event: SttEvent): void => {
    if (phase === 'ended') return;
    try {
      onEvent(event);
    } catch {
      // The engine's handler failing must not tear down the socket loop (it runs inside the socket's callback).
      metrics.error(id, 'stt', 'internal');
    }
  };

  const send = (c: Connection, data: string | Uint8Array): void => {
    c.socket?.send(data);
  };

  const scheduleKeepAlive = (c: Connection): void => {
    const keepAlive = wire.keepAliveMessage;
    if (!keepAlive) return;
    const wait = Math.max(1, keepAlive.intervalMs - (performance.now() - c.lastSendAt));
    c.keepAliveTimer = setTimeout(() => {
      c.keepAliveTimer = undefined;
      if (c !== conn || phase !== 'open') return;
      if (performance.now() - c.lastSendAt >= keepAlive.intervalMs - 1 && !outbox.replaying) {
        // Audio held for sizing goes first: it is older than the keep-alive.
        outbox.flush();
        send(c, keepAlive.message());
        c.lastSendAt = performance.now();
      }
      scheduleKeepAlive(c);
    }, wait);
  };

  const dropConnection = (c: Connection | undefined): void => {
    if (!c) return;
    if (c === conn) outbox.stop();
    clearTimeout(c.keepAliveTimer);
    c.keepAliveTimer = undefined;
    if (c.closedByUs) return;
    c.closedByUs = true;
    c.socket?.close(1000, 'client closed');
  };

  const end = (): void => {
    if (phase === 'ended') return;
    phase = 'ended';
    dropConnection(conn);
    lifetime.abort();
    options.signal.removeEventListener('abort', onAbort);
    closeWaiter?.();
  };

  const fail = (error: ProviderError): void => {
    if (phase === 'ended') return;
    emit({ type: 'error', error });
    end();
  };

  const newConnection = (): Connection => ({ socket: undefined, closedByUs: false, lastSendAt: performance.now(), keepAliveTimer: undefined });

  const connect = async (c: Connection): Promise<void> => {
    c.socket = await connectWithRetry({
      providerId: id,
      stage: 'stt',
      factory: deps.connect,
      target,
      timeoutMs: deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      signal: lifetime.signal,
      handlers: { onMessage: (data) => onMessage(c, data), onClose: (code, reason) => onClose(c, code, reason) },
      classifyHandshake: (status, body) => wire.classifyHandshake(status, body),
      backoff,
      metrics,
    });
    stats.connections++;
  };

  /** The replay is out (at once, or at the end of a paced one): a finalize asked meanwhile follows it. */
  const onDrained = (c: Connection): void => {
    if (c !== conn) return;
    if (pendingFinalize && wire.finalize) {
      outbox.flush();
      send(c, wire.finalize());
    }
    pendingFinalize = false;
    drainWaiter?.();
  };

  /** A fresh socket takes over: config, then the unanswered audio, then whatever was asked meanwhile. */
  const attach = (c: Connection): void => {
    conn = c;
    for (const message of wire.open?.(options) ?? []) send(c, message);
    outbox.start(
      (audio) => {
        send(c, wire.audio(audio));
        c.lastSendAt = performance.now();
      },
      () => onDrained(c),
    );
    c.lastSendAt = performance.now();
    phase = 'open';
    scheduleKeepAlive(c);
  };

  const handleFailure = (c: Connection, error: ProviderError): void => {
    // While reconnecting `conn` is still the dropped connection: its late failures must not start a second reconnect.
    if (c !== conn || phase === 'ended' || phase === 'reconnecting') return;
    metrics.error(id, 'stt', error.kind);
    // A failure while closing is not worth a fallback: the engine is done with this session.
    if (phase === 'closing') return closeWaiter?.();
    if (!error.retryable) return fail(error);
    const delay = backoff.next();
    if (delay === undefined) return fail(error);
    dropConnection(c);
    phase = 'reconnecting';
    stats.reconnects++;
    metrics.reconnected(id, 'stt', error.code);
    void reconnect(delay);
  };

  const reconnect = async (delay: number): Promise<void> => {
    if (!(await sleep(delay, lifetime.signal))) return;
    const c = newConnection();
    try {
      await connect(c);
    } catch (error) {
      if (phase === 'reconnecting') fail(asProviderError(id, error));
      return;
    }
    if (phase !== 'reconnecting') {
      dropConnection(c);
      return;
    }
    attach(c);
  };

  /** Only the current, open connection speaks: late messages of one we dropped (still `conn` while reconnecting) are ignored. */
  const current = (c: Connection): boolean => c === conn && !c.closedByUs && phase !== 'ended' && phase !== 'reconnecting';

  const onMessage = (c: Connection, data: string | Uint8Array): void => {
    if (!current(c)) return;
    let events: readonly SttWireEvent[];
    try {
      events = wire.decode(data);
    } catch {
      // One bad frame must not end a call: count it and carry on.
      stats.malformedMessages++;
      metrics.error(id, 'stt', 'protocol');
      return;
    }
    for (const event of events) {
      if (!current(c)) return;
      handleEvent(c, event);
    }
  };

  const handleEvent = (c: Connection, event: SttWireEvent): void => {
    switch (event.type) {
      case 'interim':
        backoff.reset();
        if (!interimMeasured && firstAudioAt !== undefined) {
          interimMeasured = true;
          metrics.firstResult(id, 'stt', 'interim', performance.now() - firstAudioAt);
        }
        return emit({ type: 'interim', text: event.text });
      case 'final': {
        backoff.reset();
        if (!finalMeasured && firstAudioAt !== undefined) {
          finalMeasured = true;
          metrics.firstResult(id, 'stt', 'final', performance.now() - firstAudioAt);
        }
        // Audio not sent yet (held for sizing, queued behind a paced replay) cannot have been answered.
        const answered =
          event.audioEndMs !== undefined ? outbox.streamStart + Math.round(event.audioEndMs * (BYTES_PER_MS / 2)) * 2 : outbox.unsentFrom - FINAL_SAFETY_MS * BYTES_PER_MS;
        ring.dropUntil(Math.min(answered, outbox.unsentFrom));
        // Vendors without a confidence score are taken at their word.
        return emit({ type: 'final', text: event.text, confidence: event.confidence ?? 1, ...(event.words ? { words: event.words } : {}) });
      }
      case 'speechStarted':
        return emit({ type: 'speechStarted' });
      case 'endOfTurn':
        return emit(event.text !== undefined ? { type: 'endOfTurn', text: event.text } : { type: 'endOfTurn' });
      case 'finalized':
        return;
      case 'closed':
        if (phase === 'closing') closeWaiter?.();
        return;
      case 'error':
        // A message the wire could not understand is ignored like a decode throw: one bad frame is not a failure.
        if (event.error.kind === 'protocol') {
          stats.malformedMessages++;
          return metrics.error(id, 'stt', 'protocol');
        }
        return handleFailure(c, event.error);
    }
  };

  const onClose = (c: Connection, code: number, reason: string): void => {
    clearTimeout(c.keepAliveTimer);
    c.keepAliveTimer = undefined;
    if (c.closedByUs || c !== conn || phase === 'ended') return;
    // After closeMessage, the server closing is how it says it is done.
    if (phase === 'closing') return closeWaiter?.();
    let error: ProviderError | undefined;
    try {
      error = wire.classifyClose(code, reason);
    } catch (thrown) {
      error = asProviderError(id, thrown);
    }
    c.closedByUs = true;
    if (!error) return end();
    handleFailure(c, error);
  };

  const onAbort = (): void => {
    if (phase === 'connecting') lifetime.abort();
    else void session.close();
  };
  options.signal.addEventListener('abort', onAbort, { once: true });

  const first = newConnection();
  try {
    if (options.signal.aborted) throw new ProviderError(`${id.toUpperCase()}_ABORTED`, 'the session was cancelled before it opened', false, 'internal');
    await connect(first);
  } catch (error) {
    end();
    throw asProviderError(id, error);
  }
  if (phase !== 'connecting' || lifetime.signal.aborted) {
    dropConnection(first);
    end();
    throw new ProviderError(`${id.toUpperCase()}_ABORTED`, 'the session was cancelled before it opened', false, 'internal');
  }
  attach(first);

  const session: SocketSttSession = {
    write(frame: AudioFrame) {
      if (phase === 'ended' || phase === 'closing') return;
      firstAudioAt ??= performance.now();
      ring.append(frame.data);
      // While reconnecting the ring alone keeps the audio; it is replayed on the next connection.
      if (phase !== 'open' || !conn) return;
      outbox.write(frame.data);
    },
    finalize() {
      if (!wire.finalize || phase === 'ended' || phase === 'closing') return;
      if (phase !== 'open' || !conn || outbox.replaying) {
        pendingFinalize = true;
        return;
      }
      // Everything written goes before the flush, so it covers all of it.
      outbox.flush();
      send(conn, wire.finalize());
    },
    close() {
      closing ??= closeGracefully();
      return closing;
    },
    get stats() {
      return { ...stats, droppedReplayMs: ring.droppedBytes / BYTES_PER_MS };
    },
  };

  /** A paced replay still going out is let finish (bounded): the close covers all audio written. */
  const drain = (): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => settle(false), outbox.queuedMs / (wire.replayPacing?.realtimeFactor || 1) + CLOSE_WAIT_MS);
      const settle = (drained: boolean): void => {
        clearTimeout(timer);
        drainWaiter = closeWaiter = undefined;
        resolve(drained);
      };
      drainWaiter = () => settle(true);
      closeWaiter = () => settle(false);
    });

  const closeGracefully = async (): Promise<void> => {
    if (phase === 'ended') return;
    const c = conn;
    if (phase !== 'open' || !c) return end();
    phase = 'closing';
    clearTimeout(c.keepAliveTimer);
    if (outbox.replaying && !(await drain())) return end();
    if ((phase as Phase) !== 'closing' || c !== conn) return end();
    outbox.flush();
    if (!wire.closeMessage) return end();
    send(c, wire.closeMessage());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      closeWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    closeWaiter = undefined;
    end();
  };

  return session;
}
