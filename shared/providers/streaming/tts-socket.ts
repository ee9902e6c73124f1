import { ProviderError, asProviderError } from '../../contracts/errors';
import type { TextToSpeech, TtsEvent, TtsStream, TtsStreamOptions } from '../../contracts/tts';
import type { Registrable } from '../registry';
import { DEFAULT_CONNECT_TIMEOUT_MS, connectWithRetry, createBackoff } from './connect-retry';
import type { SocketProviderDeps } from './deps';
import { nullProviderMetrics } from './metrics';
import type { ProviderSocket } from './socket';
import type { TtsWire, TtsWireEvent, TtsWireUtterance } from './tts-wire';

export interface SocketTts extends TextToSpeech, Registrable {
  /** Open a socket for these options now (while the phone rings) so the first utterance skips the handshake. */
  prewarm(options: Omit<TtsStreamOptions, 'signal'>): Promise<void>;
  /** Close every pooled socket. */
  close(): Promise<void>;
}

const DEFAULT_IDLE_MS = 30_000;
/** Text pieces held per utterance while its socket connects; more means the socket is hopelessly late. */
const MAX_QUEUED_PIECES = 64;
/** A non-multiplexed socket whose vendor does not acknowledge a cancel within this is not trusted again. */
const CANCEL_ACK_MS = 2000;
/** An utterance the vendor stops answering (no audio, pieceDone or done) fails after this. */
const DEFAULT_STALL_MS = 8000;

interface PooledSocket {
  readonly key: string;
  state: 'connecting' | 'open' | 'closed';
  socket: ProviderSocket | undefined;
  /** Settles when the socket is open (rejects with the ProviderError of a failed connect). */
  ready: Promise<void>;
  /** Utterances on this socket (for a non-multiplexed wire at most one, possibly a cancelled one awaiting its ack). */
  readonly utterances: Map<string, Utterance>;
  readonly connectAbort: AbortController;
  lastSendAt: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  keepAliveTimer: ReturnType<typeof setTimeout> | undefined;
}

type QueuedSend = { readonly text: string; readonly index: number } | 'end';

interface Utterance {
  readonly contextId: string;
  readonly onEvent: (event: TtsEvent) => void;
  /** queued: its socket is not open yet; cancelled and finished are silent for good. */
  state: 'queued' | 'streaming' | 'cancelled' | 'finished';
  socket: PooledSocket | undefined;
  wire: TtsWireUtterance | undefined;
  readonly queue: QueuedSend[];
  pushed: number;
  ended: boolean;
  piecesDone: number;
  firstPushAt: number | undefined;
  audioMeasured: boolean;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Inactivity deadline: armed when a piece goes out, re-armed on every piece and audio event. */
  stallTimer: ReturnType<typeof setTimeout> | undefined;
  detachSignal: () => void;
}

/** A streaming TTS provider from its wire mapping: pooled sockets reused across turns, keep-alive, retry, cancel, metrics. */
export function createSocketTts(wire: TtsWire, deps: SocketProviderDeps): SocketTts {
  const id = wire.id;
  const code = id.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
  const metrics = deps.metrics ?? nullProviderMetrics;
  const multiplexed = wire.capabilities.multiplexed;
  const idleMs = deps.idleMs ?? DEFAULT_IDLE_MS;
  const stallMs = deps.ttsStallMs ?? DEFAULT_STALL_MS;
  const pool = new Map<string, PooledSocket[]>();

  // ---- sockets ---------------------------------------------------------------------------------------

  const send = (ps: PooledSocket, messages: readonly string[]): void => {
    if (!ps.socket) return;
    for (const message of messages) ps.socket.send(message);
    if (messages.length) ps.lastSendAt = performance.now();
  };

  const removeFromPool = (ps: PooledSocket): void => {
    const list = pool.get(ps.key);
    if (!list) return;
    const at = list.indexOf(ps);
    if (at >= 0) list.splice(at, 1);
    if (!list.length) pool.delete(ps.key);
  };

  const stopIdleTimers = (ps: PooledSocket): void => {
    clearTimeout(ps.idleTimer);
    clearTimeout(ps.keepAliveTimer);
    ps.idleTimer = undefined;
    ps.keepAliveTimer = undefined;
  };

  const scheduleKeepAlive = (ps: PooledSocket): void => {
    const keepAlive = wire.keepAliveMessage;
    if (!keepAlive) return;
    const wait = Math.max(1, keepAlive.intervalMs - (performance.now() - ps.lastSendAt));
    ps.keepAliveTimer = setTimeout(() => {
      ps.keepAliveTimer = undefined;
      if (ps.state !== 'open' || ps.utterances.size) return;
      if (performance.now() - ps.lastSendAt >= keepAlive.intervalMs - 1) send(ps, [keepAlive.message()]);
      scheduleKeepAlive(ps);
    }, wait);
  };

  /** A socket without utterances waits in the pool: kept alive, closed after `idleMs`. */
  const maybeIdle = (ps: PooledSocket): void => {
    if (ps.state !== 'open' || ps.utterances.size || ps.idleTimer) return;
    ps.idleTimer = setTimeout(() => closeSocket(ps), idleMs);
    scheduleKeepAlive(ps);
  };

  /** Close a socket on our side; utterances still live on it get `error` (when given) or nothing. */
  const closeSocket = (ps: PooledSocket, error?: ProviderError): void => {
    if (ps.state === 'closed') return;
    ps.state = 'closed';
    stopIdleTimers(ps);
    removeFromPool(ps);
    ps.connectAbort.abort();
    ps.socket?.close(1000, 'client closed');
    for (const u of [...ps.utterances.values()]) {
      if (error) failUtterance(u, error);
      else release(u);
    }
  };

  const openSocket = (key: string, options: TtsStreamOptions): PooledSocket => {
    const target = wire.connect(options);
    const ps: PooledSocket = {
      key,
      state: 'connecting',
      socket: undefined,
      ready: Promise.resolve(),
      utterances: new Map(),
      connectAbort: new AbortController(),
      lastSendAt: performance.now(),
      idleTimer: undefined,
      keepAliveTimer: undefined,
    };
    ps.ready = (async () => {
      const socket = await connectWithRetry({
        providerId: id,
        stage: 'tts',
        factory: deps.connect,
        target,
        timeoutMs: deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        signal: ps.connectAbort.signal,
        handlers: { onMessage: (data) => onMessage(ps, data), onClose: (closeCode, reason) => onClose(ps, closeCode, reason) },
        classifyHandshake: (status, body) => wire.classifyHandshake(status, body),
        backoff: createBackoff(deps.retry),
        metrics,
      });
      if (ps.state === 'closed') {
        socket.close(1000, 'client closed');
        throw new ProviderError(`${code}_CLOSED`, 'the provider was closed while connecting', false, 'internal');
      }
      ps.socket = socket;
      ps.state = 'open';
      send(ps, wire.open?.(options) ?? []);
      for (const u of [...ps.utterances.values()]) start(u);
      maybeIdle(ps);
    })();
    ps.ready.catch((error: unknown) => {
      if (ps.state === 'closed') return;
      closeSocket(ps, asProviderError(id, error));
    });
    const list = pool.get(key);
    if (list) list.push(ps);
    else pool.set(key, [ps]);
    return ps;
  };

  /** A socket for the next utterance: any live one (multiplexed), an idle one, or a new one. */
  const acquire = (key: string, options: TtsStreamOptions): PooledSocket => {
    const candidates = (pool.get(key) ?? []).filter((ps) => ps.state !== 'closed' && (multiplexed || ps.utterances.size === 0));
    const ps = candidates.find((c) => c.state === 'open') ?? candidates[0] ?? openSocket(key, options);
    stopIdleTimers(ps);
    return ps;
  };

  // ---- utterances ------------------------------------------------------------------------------------

  const deliver = (u: Utterance, event: TtsEvent): void => {
    try {
      u.onEvent(event);
    } catch {
      // The engine's handler failing must not break the socket loop that called it.
      metrics.error(id, 'tts', 'internal');
    }
  };

  const clearStall = (u: Utterance): void => {
    clearTimeout(u.stallTimer);
    u.stallTimer = undefined;
  };

  /** (Re)start the utterance's inactivity deadline: a vendor that keeps the socket open but goes silent must not hang the turn. */
  const armStall = (u: Utterance): void => {
    clearStall(u);
    if (u.state !== 'streaming') return;
    u.stallTimer = setTimeout(() => {
      u.stallTimer = undefined;
      if (u.state !== 'streaming') return;
      // Every piece acknowledged and no end yet: the wait is on the caller's next piece, not on the vendor.
      if (!u.ended && u.pushed > 0 && u.piecesDone >= u.pushed) return;
      const ps = u.socket;
      const error = new ProviderError(`${code}_STALLED`, `no audio from the provider for ${stallMs} ms`, true, 'timeout');
      failUtterance(u, error);
      // A socket that went silent mid-utterance cannot be trusted again (utterances sharing it fail with it).
      if (ps) closeSocket(ps, error);
    }, stallMs);
  };

  /** Detach an utterance from its socket; the socket goes back to the pool if nothing else uses it. */
  const release = (u: Utterance): void => {
    clearTimeout(u.ackTimer);
    u.ackTimer = undefined;
    clearStall(u);
    u.detachSignal();
    const ps = u.socket;
    if (!ps) return;
    u.socket = undefined;
    ps.utterances.delete(u.contextId);
    maybeIdle(ps);
  };

  const failUtterance = (u: Utterance, error: ProviderError): void => {
    const live = u.state === 'queued' || u.state === 'streaming';
    u.state = 'finished';
    release(u);
    if (!live) return;
    metrics.error(id, 'tts', error.kind);
    deliver(u, { type: 'error', error });
  };

  /** The socket is open: begin the utterance and send what was pushed meanwhile, in order. */
  const start = (u: Utterance): void => {
    const ps = u.socket;
    if (u.state !== 'queued' || !ps || !u.wire) return;
    u.state = 'streaming';
    send(ps, u.wire.begin());
    for (const item of u.queue) send(ps, item === 'end' ? u.wire.end() : u.wire.text(item.text, item.index));
    if (u.queue.length) armStall(u);
    u.queue.length = 0;
    endedByLastPiece(u);
  };

  /** Vendors without an end message (Deepgram): after end(), the last piece's pieceDone is the end. */
  const endedByLastPiece = (u: Utterance): void => {
    if (!wire.lastPieceEndsUtterance) return;
    if (u.state !== 'streaming' || !u.ended || u.piecesDone < u.pushed) return;
    u.state = 'finished';
    release(u);
    deliver(u, { type: 'done' });
  };

  const cancel = (u: Utterance): void => {
    if (u.state === 'cancelled' || u.state === 'finished') return;
    const wasStreaming = u.state === 'streaming';
    // From here on nothing reaches the caller: this is what stops the audio within a frame on barge-in.
    u.state = 'cancelled';
    clearStall(u);
    u.detachSignal();
    const ps = u.socket;
    if (!ps || !wasStreaming || !u.wire) return release(u);
    let messages: readonly string[] | 'close-socket';
    try {
      messages = u.wire.cancel();
    } catch {
      messages = 'close-socket';
    }
    if (messages === 'close-socket') {
      release(u);
      return closeSocket(ps, new ProviderError(`${code}_CANCELLED`, 'another utterance cancelled the shared connection', true, 'unavailable'));
    }
    send(ps, messages);
    if (multiplexed) return release(u);
    // Late audio of a non-multiplexed socket carries no context id: the socket is reused only after the ack.
    u.ackTimer = setTimeout(() => {
      u.ackTimer = undefined;
      if (u.socket === ps) closeSocket(ps);
    }, CANCEL_ACK_MS);
  };

  const onEvent = (ps: PooledSocket, u: Utterance, event: TtsWireEvent, raw: string | Uint8Array): void => {
    const live = u.state === 'streaming';
    switch (event.type) {
      case 'audio': {
        if (!live) return;
        armStall(u);
        if (!u.audioMeasured && u.firstPushAt !== undefined) {
          u.audioMeasured = true;
          metrics.firstResult(id, 'tts', 'audio', performance.now() - u.firstPushAt);
        }
        // Views into the socket's message are valid only during this call; the engine keeps what it gets.
        const data = typeof raw !== 'string' && event.data.buffer === raw.buffer ? event.data.slice() : event.data;
        const textIndex = event.textIndex ?? Math.max(0, Math.min(u.piecesDone, u.pushed - 1));
        return deliver(u, { type: 'audio', data, textIndex });
      }
      case 'words':
        if (live) deliver(u, { type: 'words', words: event.words });
        return;
      case 'pieceDone':
        u.piecesDone++;
        if (live) armStall(u);
        return endedByLastPiece(u);
      case 'done':
        u.state = u.state === 'streaming' ? 'finished' : u.state;
        release(u);
        if (live) deliver(u, { type: 'done' });
        return;
      case 'cancelled':
        if (live) return failUtterance(u, new ProviderError(`${code}_CANCELLED`, 'the provider cancelled the utterance', true, 'unavailable'));
        return release(u);
      case 'error':
        failUtterance(u, event.error);
        // A non-multiplexed socket after an error frame is in an unknown state: not reused.
        if (!multiplexed) closeSocket(ps);
        return;
    }
  };

  const onMessage = (ps: PooledSocket, data: string | Uint8Array): void => {
    if (ps.state === 'closed') return;
    let events: readonly TtsWireEvent[];
    try {
      events = wire.decode(data);
    } catch {
      // One bad frame must not end the utterance: ignore it.
      metrics.error(id, 'tts', 'protocol');
      return;
    }
    for (const event of events) {
      // A message the wire could not understand is ignored like a decode throw: one bad frame is not a failure.
      if (event.type === 'error' && event.error.kind === 'protocol') {
        metrics.error(id, 'tts', 'protocol');
        continue;
      }
      const u = event.contextId !== undefined ? ps.utterances.get(event.contextId) : ps.utterances.size === 1 ? ps.utterances.values().next().value : undefined;
      if (u) {
        onEvent(ps, u, event, data);
      } else if (event.type === 'error' && event.contextId === undefined && ps.utterances.size > 1) {
        // An error that names no context on a shared socket concerns all of them.
        closeSocket(ps, event.error);
      }
      // Handling an event may have closed the socket (TS cannot see it through the calls).
      if ((ps.state as PooledSocket['state']) === 'closed') return;
    }
  };

  const onClose = (ps: PooledSocket, closeCode: number, reason: string): void => {
    if (ps.state === 'closed') return;
    let error: ProviderError | undefined;
    try {
      error = wire.classifyClose(closeCode, reason);
    } catch (thrown) {
      error = asProviderError(id, thrown);
    }
    if (error && ps.utterances.size) metrics.error(id, 'tts', error.kind);
    ps.socket = undefined;
    // An idle socket closing just leaves the pool; utterances still speaking learn it failed.
    closeSocket(ps, error ?? new ProviderError(`${code}_CLOSED`, `the connection closed (${closeCode}${reason ? ` ${reason}` : ''}) before the utterance finished`, true, 'unavailable'));
  };

  // ---- the contract ------------------------------------------------------------------------------------

  const stream = (options: TtsStreamOptions, onEvent: (event: TtsEvent) => void): TtsStream => {
    const u: Utterance = {
      contextId: crypto.randomUUID(),
      onEvent,
      state: 'queued',
      socket: undefined,
      wire: undefined,
      queue: [],
      pushed: 0,
      ended: false,
      piecesDone: 0,
      firstPushAt: undefined,
      audioMeasured: false,
      ackTimer: undefined,
      stallTimer: undefined,
      detachSignal: () => {},
    };
    const handle: TtsStream = {
      push(text) {
        const index = u.pushed++;
        if ((u.state !== 'queued' && u.state !== 'streaming') || u.ended) return index;
        u.firstPushAt ??= performance.now();
        if (u.state === 'streaming' && u.socket && u.wire) {
          send(u.socket, u.wire.text(text, index));
          armStall(u);
        } else if (u.queue.length >= MAX_QUEUED_PIECES) {
          failUtterance(u, new ProviderError(`${code}_BACKLOG`, `more than ${MAX_QUEUED_PIECES} text pieces waited for the connection`, true, 'unavailable'));
        } else {
          u.queue.push({ text, index });
        }
        return index;
      },
      end() {
        if ((u.state !== 'queued' && u.state !== 'streaming') || u.ended) return;
        u.ended = true;
        if (u.state === 'streaming' && u.socket && u.wire) {
          send(u.socket, u.wire.end());
          // The end asks for a done: the vendor is on the clock again.
          armStall(u);
          endedByLastPiece(u);
        } else u.queue.push('end');
      },
      cancel: () => cancel(u),
    };

    if (options.signal.aborted) {
      u.state = 'cancelled';
      return handle;
    }
    const onAbort = (): void => cancel(u);
    options.signal.addEventListener('abort', onAbort, { once: true });
    u.detachSignal = () => options.signal.removeEventListener('abort', onAbort);

    try {
      u.wire = wire.utterance(u.contextId, options);
      const ps = acquire(wire.connectionKey(options), options);
      u.socket = ps;
      ps.utterances.set(u.contextId, u);
      if (ps.state === 'open') start(u);
    } catch (error) {
      // The caller gets its handle first; the error follows as an event (unless it cancels first).
      queueMicrotask(() => failUtterance(u, asProviderError(id, error)));
    }
    return handle;
  };

  return {
    id,
    capabilities: wire.capabilities,
    ...(wire.optionsSchema ? { optionsSchema: wire.optionsSchema } : {}),
    stream,
    async prewarm(options) {
      const full: TtsStreamOptions = { ...options, signal: new AbortController().signal };
      const key = wire.connectionKey(full);
      const existing = (pool.get(key) ?? []).find((ps) => ps.state !== 'closed' && (multiplexed || ps.utterances.size === 0));
      await (existing ?? openSocket(key, full)).ready;
    },
    async close() {
      const closed = new ProviderError(`${code}_CLOSED`, 'the provider was shut down', false, 'internal');
      for (const list of [...pool.values()]) for (const ps of [...list]) closeSocket(ps, closed);
    },
  };
}
