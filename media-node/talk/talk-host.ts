import type { ResamplerFactory } from '../../shared/audio/resampler';
import type { Channel } from '../../shared/contracts/channel';
import type { Clock, TimerHandle } from '../../shared/contracts/clock';
import type { CallObserver } from '../../shared/contracts/observer';
import type { Communication } from '../../shared/engine/communication';
import { DEFAULT_RESUME_WINDOW_MS, type CallContext, type CallContextStore } from '../../shared/store/call-contexts';
import { createTalkSession, type TalkLog, type TalkSession } from '../../shared/talk/session';
import { encodeResponse, TALK_CLOSE_CODES, type TalkTransport } from '../../shared/talk/transport';

/** A client that connects and says nothing is closed after this long (the microphone starts with the socket). */
const DEFAULT_INIT_TIMEOUT_MS = 10_000;
/** Bound on how long shutdown waits for the calls it ends to be recorded. */
const END_ALL_TIMEOUT_MS = 5_000;

export interface TalkHostDeps {
  readonly contexts: Pick<CallContextStore, 'get' | 'claim' | 'detach' | 'resume' | 'updateStatus'>;
  /** The node's engine start: `startCallSession(runtime, context, channel, { observer })`. */
  startCall(context: CallContext, channel: Channel, observer: CallObserver): Promise<Communication>;
  readonly resamplers: ResamplerFactory;
  readonly clock: Clock;
  /** How long a dropped client may take to re-attach; at most the store's window (DEFAULT_RESUME_WINDOW_MS). */
  readonly resumeWindowMs?: number;
  readonly initTimeoutMs?: number;
  readonly log?: TalkLog;
  /** A malformed or out-of-place frame (the node's `voice_malformed_frames_total{channel="web"}`). */
  onProtocolError?(code: string): void;
  /**
   * A talk call is about to start: the node counts it toward its capacity and drain (and the project's call
   * limit). The returned function is called once its session is over and recorded.
   */
  holdCall(context: CallContext, finished: Promise<void>): Promise<() => void>;
}

/** One client connection as the transport adapters (WebSocket, gRPC) drive it. */
export interface TalkConnection {
  /** One binary frame (an encoded AssistantTalkRequest), in arrival order. */
  receive(frame: Uint8Array): void;
  /** A text frame: refused with an Error message (the protocol is binary). */
  receiveText(): void;
  /** The connection is gone (closed, reset, cancelled); safe to call more than once. */
  disconnected(): void;
}

/**
 * The media node's talk calls: one TalkSession per call context, shared by every connection naming that
 * context (WebSocket `/v1/talk/web/ctx/:id` and gRPC `AssistantTalk`), so a client that lost its socket
 * can come back over either and resume. A session is created by the first connection for its context and
 * forgotten when its call is over, or as soon as it is idle (its only connection was refused or left before
 * a call started), so unknown ids cannot pile up sessions.
 */
export function createTalkHost(deps: TalkHostDeps) {
  const log = deps.log ?? (() => undefined);
  const resumeWindowMs = deps.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
  if (!Number.isInteger(resumeWindowMs) || resumeWindowMs <= 0 || resumeWindowMs > DEFAULT_RESUME_WINDOW_MS) {
    // The store keeps a detached context resumable for its own window; a longer one here would outlive it.
    throw new RangeError(`resumeWindowMs must be a whole number of ms in 1..${DEFAULT_RESUME_WINDOW_MS} (the call-context store's window), got ${resumeWindowMs}`);
  }
  const initTimeoutMs = deps.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS;
  const sessions = new Map<string, TalkSession>();

  function sessionFor(contextId: string): TalkSession {
    const existing = sessions.get(contextId);
    if (existing) return existing;
    let release: (() => void) | undefined;
    let finishedEarly = false;
    const session: TalkSession = createTalkSession({
      contextId,
      contexts: deps.contexts,
      resamplers: deps.resamplers,
      clock: deps.clock,
      resumeWindowMs,
      log,
      ...(deps.onProtocolError ? { onProtocolError: deps.onProtocolError } : {}),
      async startCall(context, channel, observer) {
        // Held before the engine starts, so a drain that begins meanwhile waits for this call too.
        const held = await deps.holdCall(context, session.finished);
        if (finishedEarly) held();
        else release = held;
        return deps.startCall(context, channel, observer);
      },
      onFinished() {
        // Synchronous, before `finished` settles for anyone awaiting it (drain must never see a settled entry).
        if (sessions.get(contextId) === session) sessions.delete(contextId);
        finishedEarly = true;
        release?.();
        release = undefined;
      },
    });
    sessions.set(contextId, session);
    return session;
  }

  function forgetIfIdle(session: TalkSession): void {
    if (session.idle && sessions.get(session.contextId) === session) sessions.delete(session.contextId);
  }

  return {
    /** A new client connection for `contextId`; the adapter feeds it frames and tells it when it is gone. */
    connect(contextId: string, transport: TalkTransport): TalkConnection {
      const session = sessionFor(contextId);
      session.connect(transport);
      let gone = false;
      let heardFrom = false;
      let initTimer: TimerHandle | undefined = deps.clock.setTimeout(() => {
        initTimer = undefined;
        if (gone || heardFrom) return;
        log('warn', 'talk stream sent no initialization', { contextId, timeoutMs: initTimeoutMs });
        try {
          transport.send(encodeResponse({ case: 'error', value: { code: 'INITIALIZATION_TIMEOUT', message: `no initialization within ${initTimeoutMs} ms`, fatal: true } }));
          transport.close(TALK_CLOSE_CODES.protocolError, 'INITIALIZATION_TIMEOUT');
        } catch {
          // Already gone.
        }
      }, initTimeoutMs);
      const stopInitTimer = () => {
        if (initTimer !== undefined) deps.clock.clearTimeout(initTimer);
        initTimer = undefined;
      };
      return {
        receive(frame) {
          if (gone) return;
          heardFrom = true;
          stopInitTimer();
          void session.receive(transport, frame).then(() => forgetIfIdle(session));
        },
        receiveText() {
          if (gone) return;
          session.receiveText(transport);
        },
        disconnected() {
          if (gone) return;
          gone = true;
          stopInitTimer();
          session.disconnected(transport);
          forgetIfIdle(session);
        },
      };
    },
    /** Calls (or sessions still setting one up) on this node. */
    get size(): number {
      return sessions.size;
    },
    /** Shutdown (drain deadline, close): end every running call now and wait, bounded, for its bookkeeping. */
    async endAll(reason: string): Promise<void> {
      const running = [...sessions.values()];
      if (running.length === 0) return;
      log('info', 'ending talk calls', { count: running.length, reason });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled(running.map(async (s) => (s.active ? (await s.end(reason), await s.finished) : undefined))),
        new Promise((resolve) => (timer = setTimeout(resolve, END_ALL_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
    },
  };
}

export type TalkHost = ReturnType<typeof createTalkHost>;
