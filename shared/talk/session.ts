import { fromBinary } from '@bufbuild/protobuf';
import type { AudioFormat } from '../audio/format';
import type { ResamplerFactory } from '../audio/resampler';
import type { Channel } from '../contracts/channel';
import type { Clock, TimerHandle } from '../contracts/clock';
import { ConfigError } from '../contracts/errors';
import type { CallObserver } from '../contracts/observer';
import type { Communication } from '../engine/communication';
import { DEFAULT_RESUME_WINDOW_MS, MEDIA_CLOSE_CODES, mediaCloseCode, type CallContext, type CallContextStore } from '../store/call-contexts';
import { audioConfigOf, audioFormatOf, streamModeOf, TalkConfigError } from './audio-config';
import { AssistantTalkRequestSchema, StreamMode, type AssistantTalkRequest, type Initialization } from './gen/talk_api_pb';
import { createTalkChannel, type TalkChannel } from './talk-channel';
import { createTalkEvents } from './talk-events';
import { encodeResponse, TALK_CLOSE_CODES, type TalkTransport, type TalkResponseInit } from './transport';

/** Frames a client may send while its initialization is being checked (the microphone starts at once). */
const MAX_PENDING_FRAMES = 100;
const MAX_PENDING_BYTES = 512 * 1024;

export type TalkLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface TalkSessionDeps {
  readonly contextId: string;
  readonly contexts: Pick<CallContextStore, 'get' | 'claim' | 'detach' | 'resume' | 'updateStatus'>;
  /**
   * Start the engine for the claimed context on `channel`. `observer` must be among the call's observers:
   * it turns the engine's events into stream messages (transcripts, text, interruptions, metrics).
   */
  startCall(context: CallContext, channel: Channel, observer: CallObserver): Promise<Communication>;
  readonly resamplers: ResamplerFactory;
  readonly clock: Clock;
  /** How long a call waits for a dropped client to re-attach (the store's window; default 30 s). */
  readonly resumeWindowMs?: number;
  readonly log?: TalkLog;
  /** A malformed or out-of-place frame (counted by the host's metrics). */
  onProtocolError?(code: string): void;
  /** The call is over and its bookkeeping done: the host forgets the session. */
  onFinished?(): void;
}

interface Connection {
  phase: 'new' | 'initializing' | 'live' | 'closed';
  readonly pending: Uint8Array[];
  pendingBytes: number;
}

interface LiveCall {
  readonly context: CallContext;
  readonly channel: TalkChannel;
  readonly communication: Communication;
  readonly input: AudioFormat;
  readonly output: AudioFormat;
  streamMode: StreamMode;
  resumeToken: string;
}

/**
 * One call of the talk protocol (browser or SDK), across the connections it has over its life: the first
 * connection's Initialization claims the call context and starts the engine; a connection that drops
 * leaves the call running for the resume window, and a new connection presenting the current resume
 * token takes over (and receives the next token). Hosts: the media node (WebSocket and gRPC, one session
 * per context in a map) and the edge's Durable Object (one session per object).
 *
 * Close codes: 4401 missing or wrong resume token, 4404 unknown context, 4409 claimed, 4410 expired or over,
 * 4400 an initialization that cannot be honoured, 1008 a protocol violation.
 */
export function createTalkSession(deps: TalkSessionDeps) {
  const log = deps.log ?? (() => undefined);
  const resumeWindowMs = deps.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
  const connections = new Map<TalkTransport, Connection>();
  let current: TalkTransport | undefined;
  let call: LiveCall | undefined;
  /** Set while a claim is in flight: a second connection must not claim too. */
  let starting = false;
  let over = false;
  let windowTimer: TimerHandle | undefined;
  /** The store's detach of the last dropped connection: a resume must wait for it (else `not-detached`). */
  let detaching: Promise<unknown> | undefined;
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  const startedAt = deps.clock.now();

  const events = createTalkEvents({
    send: (response) => sendCurrent(response),
    streamMode: () => call?.streamMode ?? StreamMode.BOTH,
    timeMs: () => deps.clock.now() - startedAt,
  });

  function sendCurrent(response: TalkResponseInit): void {
    current?.send(encodeResponse(response));
  }

  function refuse(transport: TalkTransport, code: number, errorCode: string, message: string): void {
    const connection = connections.get(transport);
    if (connection) connection.phase = 'closed';
    // Closed here once and for all: the end of the call must not close it a second time.
    connections.delete(transport);
    try {
      transport.send(encodeResponse({ case: 'error', value: { code: errorCode, message, fatal: true } }));
      transport.close(code, errorCode);
    } catch {
      // Already gone.
    }
    log('warn', 'talk stream refused', { contextId: deps.contextId, code, error: errorCode });
  }

  function protocolError(transport: TalkTransport, code: string, message: string): void {
    deps.onProtocolError?.(code);
    log('warn', 'malformed talk frame', { contextId: deps.contextId, code, message });
    transport.send(encodeResponse({ case: 'error', value: { code, message, fatal: false } }));
  }

  function decode(transport: TalkTransport, frame: Uint8Array): AssistantTalkRequest | undefined {
    try {
      return fromBinary(AssistantTalkRequestSchema, frame);
    } catch (error) {
      protocolError(transport, 'MALFORMED_FRAME', `not an AssistantTalkRequest: ${(error as Error).message}`);
      return undefined;
    }
  }

  async function initialize(transport: TalkTransport, init: Initialization): Promise<boolean> {
    if (over) {
      refuse(transport, MEDIA_CLOSE_CODES.expired, 'CALL_ENDED', 'this call has ended');
      return false;
    }
    if (call) return resume(transport, init);
    if (starting) {
      refuse(transport, MEDIA_CLOSE_CODES.alreadyClaimed, 'CONTEXT_CLAIMED', 'another connection is starting this call');
      return false;
    }
    let input: AudioFormat;
    let output: AudioFormat;
    let streamMode: StreamMode;
    try {
      input = audioFormatOf(init.inputAudio, 'input_audio');
      output = audioFormatOf(init.outputAudio, 'output_audio');
      streamMode = streamModeOf(init.streamMode);
    } catch (error) {
      if (!(error instanceof TalkConfigError)) throw error;
      refuse(transport, TALK_CLOSE_CODES.badInitialization, error.code, error.message);
      return false;
    }
    starting = true;
    try {
      const found = await deps.contexts.get(deps.contextId);
      if (!found || found.provider !== 'web') {
        refuse(transport, MEDIA_CLOSE_CODES.unknownContext, 'CONTEXT_UNKNOWN', `call context ${deps.contextId} does not exist or is not a web session`);
        return false;
      }
      if (found.status === 'claimed') {
        // Claimed by a connection this session never held (another process, or one that restarted): with a
        // token it names a call that no longer runs here; without one it is simply not this client's.
        if (!init.resumeToken) refuse(transport, MEDIA_CLOSE_CODES.badResumeToken, 'RESUME_TOKEN_REQUIRED', 'this call is already connected; re-attach with its resume token');
        else refuse(transport, MEDIA_CLOSE_CODES.expired, 'CALL_GONE', 'this call is no longer running here; start a new session');
        return false;
      }
      if (found.status !== 'pending') {
        refuse(transport, MEDIA_CLOSE_CODES.expired, 'CONTEXT_ENDED', `call context ${deps.contextId} is ${found.status}`);
        return false;
      }
      const mismatch = initMismatch(init, found);
      if (mismatch) {
        refuse(transport, TALK_CLOSE_CODES.badInitialization, 'INIT_MISMATCH', mismatch);
        return false;
      }
      if (init.resumeToken) {
        refuse(transport, MEDIA_CLOSE_CODES.badResumeToken, 'RESUME_TOKEN_INVALID', 'this call has not started: there is nothing to resume');
        return false;
      }
      const claim = await deps.contexts.claim(deps.contextId);
      if (claim.outcome !== 'claimed') {
        refuse(transport, mediaCloseCode(claim) ?? MEDIA_CLOSE_CODES.unknownContext, `CONTEXT_${claim.outcome.toUpperCase().replace('-', '_')}`, `call context ${deps.contextId}: ${claim.outcome}`);
        return false;
      }
      current = transport;
      const channel = createTalkChannel({
        id: deps.contextId,
        inputFormat: input,
        outputFormat: output,
        resamplers: deps.resamplers,
        sendAudio: () => call?.streamMode !== StreamMode.TEXT,
        messageId: () => events.assistantMessageId(),
        onHangup: () => undefined,
      });
      channel.attach(transport);
      transport.send(
        encodeResponse({
          case: 'initialization',
          value: {
            contextId: claim.context.id,
            conversationId: claim.context.conversationId,
            assistant: { id: claim.context.assistantId, version: claim.context.assistantVersion },
            resumeToken: claim.resumeToken,
            resumeWindowMs,
            resumed: false,
            streamMode,
            inputAudio: audioConfigOf(input),
            outputAudio: audioConfigOf(output),
          },
        }),
      );
      let communication: Communication;
      try {
        // `call` must exist before the engine starts: its greeting and events flow at once.
        const pendingCall = { context: claim.context, channel, input, output, streamMode, resumeToken: claim.resumeToken } as Omit<LiveCall, 'communication'>;
        call = pendingCall as LiveCall;
        communication = await deps.startCall(claim.context, channel.channel, events.observer);
        (call as { communication: Communication }).communication = communication;
      } catch (error) {
        call = undefined;
        over = true;
        channel.close('call-start-failed');
        const message = (error as Error).message;
        log('error', 'talk call could not start', { contextId: deps.contextId, error: message });
        // A configuration error keeps its own code (PROVIDER_NOT_EDGE_CAPABLE, ASSISTANT_UNKNOWN, ...): the client can say why.
        const code = error instanceof ConfigError ? error.code : 'CALL_START_FAILED';
        refuse(transport, TALK_CLOSE_CODES.serverError, code, message.replace(/^[A-Z_]+: /, ''));
        await deps.contexts.updateStatus(deps.contextId, { status: 'failed', failureReason: message }, 'claimed').catch(() => undefined);
        finish();
        return false;
      }
      void communication.ended.then((reason) => onEnded(reason));
      // The client dropped while the engine was starting: the resume window runs from now.
      if (!current) armWindow();
      log('info', 'talk call started', { contextId: deps.contextId, input: `${input.encoding}/${input.sampleRateHz}`, output: `${output.encoding}/${output.sampleRateHz}` });
      return true;
    } finally {
      starting = false;
    }
  }

  async function resume(transport: TalkTransport, init: Initialization): Promise<boolean> {
    const live = call!;
    if (!init.resumeToken) {
      refuse(transport, MEDIA_CLOSE_CODES.badResumeToken, 'RESUME_TOKEN_REQUIRED', 'this call is already connected; re-attach with its resume token');
      return false;
    }
    if (!sameToken(init.resumeToken, live.resumeToken)) {
      refuse(transport, MEDIA_CLOSE_CODES.badResumeToken, 'RESUME_TOKEN_INVALID', 'the resume token is wrong or already used');
      return false;
    }
    const previous = current;
    if (previous) {
      // The client came back before we noticed its old socket die: the new one takes over.
      current = undefined;
      live.channel.detach();
      connections.delete(previous);
      try {
        previous.close(MEDIA_CLOSE_CODES.alreadyClaimed, 'replaced by a resumed connection');
      } catch {
        // Already gone.
      }
      // From here the call has no client: should this resume fail, the window still ends it.
      armWindow();
      await deps.contexts.detach(deps.contextId);
    }
    // A client back within milliseconds of its drop can overtake the detach recorded for it.
    await detaching;
    const result = await deps.contexts.resume(deps.contextId, init.resumeToken);
    if (result.outcome !== 'resumed') {
      const why = result.outcome === 'refused' ? result.reason : result.outcome;
      refuse(transport, mediaCloseCode(result) ?? MEDIA_CLOSE_CODES.badResumeToken, 'RESUME_REFUSED', `the call cannot be resumed: ${why}`);
      return false;
    }
    if (windowTimer !== undefined) deps.clock.clearTimeout(windowTimer);
    windowTimer = undefined;
    live.resumeToken = result.resumeToken;
    current = transport;
    live.channel.attach(transport);
    transport.send(
      encodeResponse({
        case: 'initialization',
        value: {
          contextId: live.context.id,
          conversationId: live.context.conversationId,
          assistant: { id: live.context.assistantId, version: live.context.assistantVersion },
          resumeToken: result.resumeToken,
          resumeWindowMs,
          resumed: true,
          streamMode: live.streamMode,
          inputAudio: audioConfigOf(live.input),
          outputAudio: audioConfigOf(live.output),
        },
      }),
    );
    log('info', 'talk call resumed', { contextId: deps.contextId });
    return true;
  }

  function handle(transport: TalkTransport, request: AssistantTalkRequest): void {
    const live = call;
    // Until the engine has started there is nothing to hand a message to (a resumed client can be that quick).
    if (!live?.communication || transport !== current) return;
    const r = request.request;
    switch (r.case) {
      case 'initialization':
        protocolError(transport, 'ALREADY_INITIALIZED', 'this stream is initialized already');
        return;
      case 'message': {
        const content = r.value.content;
        if (content.case === 'audio') {
          if (live.streamMode === StreamMode.TEXT) return protocolError(transport, 'AUDIO_IN_TEXT_MODE', 'stream_mode TEXT takes no audio; switch with a Configuration');
          const refused = live.channel.userAudio(content.value);
          if (refused) protocolError(transport, 'AUDIO_TOO_LARGE', refused);
        } else if (content.case === 'text') {
          if (content.value.length > 4_000) return protocolError(transport, 'TEXT_TOO_LONG', `a text message may hold at most 4000 characters, got ${content.value.length}`);
          live.communication.sendText(content.value);
        } else protocolError(transport, 'EMPTY_MESSAGE', 'a UserMessage needs audio or text');
        return;
      }
      case 'playbackComplete':
        live.channel.playbackComplete(r.value.id);
        return;
      case 'configuration':
        try {
          live.streamMode = streamModeOf(r.value.streamMode);
        } catch (error) {
          protocolError(transport, (error as TalkConfigError).code, (error as Error).message);
        }
        return;
      case 'disconnection':
        void live.communication.end('client-disconnect');
        return;
      case 'metadata':
        log('info', 'talk metadata', { contextId: deps.contextId, keys: Object.keys(r.value.entries).slice(0, 20) });
        return;
      case 'toolCallResult':
        // Tools run server-side; a client result is only acknowledged in the log.
        log('info', 'talk tool result from the client', { contextId: deps.contextId, id: r.value.id, name: r.value.name });
        return;
      default:
        protocolError(transport, 'EMPTY_REQUEST', 'an AssistantTalkRequest needs one of its cases set');
    }
  }

  async function onEnded(reason: string): Promise<void> {
    over = true;
    if (windowTimer !== undefined) deps.clock.clearTimeout(windowTimer);
    windowTimer = undefined;
    const transport = current;
    current = undefined;
    call?.channel.detach();
    // The engine is over: this only releases the channel's resampler (its onClose reaches nobody now).
    call?.channel.close(reason);
    if (transport) {
      try {
        transport.close(TALK_CLOSE_CODES.normal, reason);
      } catch {
        // Already gone.
      }
    }
    const failed = reason === 'resume-window-lapsed';
    await deps.contexts
      .updateStatus(deps.contextId, failed ? { status: 'failed', failureReason: 'the client did not re-attach within the resume window', disconnectReason: reason } : { status: 'completed', disconnectReason: reason }, 'claimed')
      .catch((error: unknown) => log('error', 'talk call end bookkeeping failed', { contextId: deps.contextId, error: String(error) }));
    finish();
  }

  function finish(): void {
    for (const transport of connections.keys()) {
      try {
        transport.close(TALK_CLOSE_CODES.normal, 'call ended');
      } catch {
        // Already gone.
      }
    }
    connections.clear();
    resolveFinished();
    deps.onFinished?.();
  }

  async function processFrame(transport: TalkTransport, connection: Connection, frame: Uint8Array): Promise<void> {
    if (connection.phase === 'closed') return;
    if (connection.phase === 'initializing') {
      // Bounded in count and bytes: the oldest microphone audio goes first, then the oldest of anything (a client
      // that floods before it is admitted loses audio, not its hang-up or typed text).
      connection.pending.push(frame);
      connection.pendingBytes += frame.byteLength;
      while (connection.pending.length > MAX_PENDING_FRAMES || connection.pendingBytes > MAX_PENDING_BYTES) {
        const audio = connection.pending.findIndex((held) => isAudioFrame(held));
        connection.pendingBytes -= connection.pending.splice(audio >= 0 ? audio : 0, 1)[0]!.byteLength;
      }
      return;
    }
    const request = decode(transport, frame);
    if (!request) {
      if (connection.phase === 'new') refuse(transport, TALK_CLOSE_CODES.protocolError, 'MALFORMED_FRAME', 'the first frame must be an AssistantTalkRequest with initialization');
      return;
    }
    if (connection.phase === 'live') return handle(transport, request);
    if (request.request.case !== 'initialization') {
      refuse(transport, TALK_CLOSE_CODES.protocolError, 'INITIALIZATION_REQUIRED', `the first message must be an initialization, got ${request.request.case ?? 'an empty request'}`);
      return;
    }
    connection.phase = 'initializing';
    let ok = false;
    try {
      ok = await initialize(transport, request.request.value);
    } catch (error) {
      log('error', 'talk initialization failed', { contextId: deps.contextId, error: String(error) });
      refuse(transport, TALK_CLOSE_CODES.serverError, 'INTERNAL', 'the session could not be initialized; try again');
    }
    // `refuse` may have closed it meanwhile (the narrowing above does not see that).
    if (!ok || (connection.phase as Connection['phase']) === 'closed') {
      connection.phase = 'closed';
      connection.pending.length = 0;
      connection.pendingBytes = 0;
      return;
    }
    connection.phase = 'live';
    if (!connections.has(transport)) {
      // It closed while initializing. A hang-up it sent meanwhile still ends the call now; otherwise it is a drop
      // (the resume window runs).
      const hungUp = connection.pending.some((held) => quietDecode(held)?.request.case === 'disconnection');
      connection.pending.length = 0;
      connection.pendingBytes = 0;
      if (hungUp && call?.communication) {
        void call.communication.end('client-disconnect');
        return;
      }
      disconnected(transport);
      return;
    }
    connection.pendingBytes = 0;
    for (const held of connection.pending.splice(0)) {
      const next = decode(transport, held);
      if (next) handle(transport, next);
    }
  }

  function disconnected(transport: TalkTransport): void {
    const connection = connections.get(transport);
    connections.delete(transport);
    if (connection) connection.phase = connection.phase === 'initializing' ? 'initializing' : 'closed';
    if (transport !== current || !call || over) return;
    current = undefined;
    call.channel.detach();
    detaching = deps.contexts.detach(deps.contextId).catch((error: unknown) => log('warn', 'talk detach not recorded', { contextId: deps.contextId, error: String(error) }));
    log('info', 'talk client dropped; waiting for it to re-attach', { contextId: deps.contextId, windowMs: resumeWindowMs });
    armWindow();
  }

  /** The call waits `resumeWindowMs` for a client; then it ends (a running timer is kept, not extended). */
  function armWindow(): void {
    if (windowTimer !== undefined) return;
    windowTimer = deps.clock.setTimeout(() => {
      windowTimer = undefined;
      // `communication` is unset while the engine is still starting: the window is armed again once it has.
      if (!current && call && !over) void call.communication?.end('resume-window-lapsed');
    }, resumeWindowMs);
  }

  return {
    contextId: deps.contextId,
    /** Resolves once the call is over and recorded (or was refused before it started). */
    finished,
    get active(): boolean {
      return call !== undefined && !over;
    },
    get attached(): boolean {
      return current !== undefined;
    },
    /** No call, none starting and no connection: a host may forget the session (refused or abandoned streams). */
    get idle(): boolean {
      return call === undefined && !starting && connections.size === 0;
    },
    /** A new client connection; its frames go to `receive`, its end to `disconnected`. */
    connect(transport: TalkTransport): void {
      connections.set(transport, { phase: 'new', pending: [], pendingBytes: 0 });
    },
    /** One binary frame from a connection (an encoded AssistantTalkRequest). Never throws. */
    receive(transport: TalkTransport, frame: Uint8Array): Promise<void> {
      const connection = connections.get(transport);
      if (!connection) return Promise.resolve();
      return processFrame(transport, connection, frame).catch((error: unknown) => log('error', 'talk frame failed', { contextId: deps.contextId, error: String(error) }));
    },
    /** A text frame: the protocol is binary only. */
    receiveText(transport: TalkTransport): void {
      protocolError(transport, 'TEXT_FRAME', 'talk frames are binary AssistantTalkRequest messages, not text');
    },
    disconnected,
    /** The host is shutting down (drain deadline): end the call now. */
    async end(reason: string): Promise<void> {
      // `communication` is unset while the engine is still starting (it is assigned once `startCall` resolves).
      if (call && !over) await (call.communication as Communication | undefined)?.end(reason);
    },
  };
}

export type TalkSession = ReturnType<typeof createTalkSession>;

/** Why an Initialization disagrees with its context, if it does (empty fields agree with anything). */
function initMismatch(init: Initialization, context: CallContext): string | undefined {
  const ref = init.assistant;
  if (ref?.id && ref.id !== context.assistantId) return `this session is for assistant ${context.assistantId}, the initialization names ${ref.id}`;
  if (ref?.version && ref.version !== context.assistantVersion) return `this session runs version ${context.assistantVersion} of the assistant, the initialization names version ${ref.version}`;
  return undefined;
}

/** Constant-time string comparison (tokens are ASCII). */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** A request decoded without reporting (for looking at held frames), undefined when it is not one. */
function quietDecode(frame: Uint8Array): AssistantTalkRequest | undefined {
  try {
    return fromBinary(AssistantTalkRequestSchema, frame);
  } catch {
    return undefined;
  }
}

function isAudioFrame(frame: Uint8Array): boolean {
  const request = quietDecode(frame)?.request;
  return request?.case === 'message' && request.value.content.case === 'audio';
}
