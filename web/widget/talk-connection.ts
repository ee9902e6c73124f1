import type { Clock, TimerHandle } from '../../shared/contracts/clock';
import { AudioEncoding, DisconnectionType, ToolCallAction } from '../../shared/talk/gen/talk_api_pb';
import { closeError, widgetError, type WidgetError } from './errors';
import { decodeResponse, encodeRequest, initializationRequest, type TalkRequest, type TalkResponse } from './protocol';

/** What the widget shows: one state at a time. */
export type WidgetState = 'idle' | 'connecting' | 'listening' | 'speaking' | 'reconnecting' | 'ended' | 'error';

export interface TranscriptEvent {
  readonly role: 'user' | 'assistant';
  /** The utterance (`u3`) or assistant turn (`a4`) the text belongs to: later events of the same id replace it. */
  readonly id: string;
  /** Whole text so far (assistant deltas are accumulated; the final one is what the caller heard). */
  readonly text: string;
  readonly final: boolean;
  /** Assistant turns cut short by the caller. */
  readonly interrupted?: boolean;
}

export interface MetricsEvent {
  /** The assistant turn. */
  readonly id: string;
  /** `voice_to_voice_ms`, `stt_final_ms`, `llm_first_token_ms`, `tts_first_audio_ms`, ... */
  readonly values: Readonly<Record<string, number>>;
}

export interface EndedEvent {
  readonly by: 'user' | 'assistant' | 'timeout' | 'server';
  readonly reason: string;
}

/** The browser WebSocket, as much of it as the connection uses (tests pass a fake or `ws`). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** Where the assistant's audio goes (the playback worklet). */
export interface PlayerPort {
  /** One frame of PCM16 little-endian at the output rate (the array is the player's to keep). */
  audio(pcm: Int16Array): void;
  mark(id: string): void;
  pause(): void;
  resume(): void;
  flush(): void;
}

export interface TalkConnectionHandlers {
  state(state: WidgetState): void;
  transcript(event: TranscriptEvent): void;
  metrics(event: MetricsEvent): void;
  error(error: WidgetError): void;
  ended(event: EndedEvent): void;
  /** Server events (`user.speech_started`, `tool.called`, `transfer`, ...). */
  event(name: string, data: Readonly<Record<string, string>>): void;
}

export interface TalkConnectionOptions {
  /** The session's WebSocket URL (from POST /v1/talk/web/session). */
  readonly url: string;
  readonly assistantId?: string;
  readonly outputRateHz: number;
  openSocket(url: string): SocketLike;
  readonly player: PlayerPort;
  readonly clock: Clock;
  readonly handlers: TalkConnectionHandlers;
  /** No answer to the initialization within this: the connection failed. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** [0, 1): spreads reconnect attempts. */
  readonly random?: () => number;
}

const OPEN = 1;
/** Bytes queued in the socket beyond which microphone frames are dropped (the network stalled). */
const MAX_BUFFERED_BYTES = 32 * 1024;
/** A caption line longer than this keeps its end (a turn's text is far shorter; a server must not grow it for ever). */
const MAX_CAPTION_CHARS = 8000;
/** A re-attached connection that lived this long was a real recovery: the next drop gets a fresh window. */
const STABLE_MS = 5000;
/** Unsent bytes that, not draining for STALL_MS, mean the connection is dead (half a second of microphone audio). */
const STALL_BYTES = 16 * 1024;
const STALL_MS = 3000;
/** Typed messages kept while re-attaching. */
const MAX_QUEUED_TEXTS = 5;
/** Close codes after which re-attaching cannot help: the server refused or ended the call. */
const FINAL_CLOSE_CODES = new Set([1000, 1008, 1011, 4400, 4401, 4404, 4409, 4410]);
const RECONNECT_DELAYS_MS = [250, 500, 1_000, 2_000, 4_000];
/** How long a hang-up waits for the server's goodbye before closing the socket itself. */
const HANGUP_GRACE_MS = 2_000;

/**
 * One call over talk_api (protos/talk_api.proto) from the browser's side: initialization, microphone frames
 * up, captions, assistant text and audio down, playback controls to the player and PlaybackComplete receipts
 * back, and re-attaching with the resume token after a dropped socket (backoff, within the server's window).
 */
export function createTalkConnection(options: TalkConnectionOptions) {
  const { clock, handlers, player } = options;
  const random = options.random ?? Math.random;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  let socket: SocketLike | undefined;
  let state: WidgetState = 'idle';
  let live = false;
  let everLive = false;
  let playing = false;
  let resumeToken = '';
  let resumeWindowMs = 30_000;
  /** When the current outage began (undefined: the call never dropped). */
  let droppedAt: number | undefined;
  let attempt = 0;
  let liveSince = 0;
  /** A playback receipt the player gave while the socket was away (sent after the re-attach). */
  let unsentMark: string | undefined;
  /** Since when the send buffer has stayed above STALL_BYTES. */
  let stalledSince: number | undefined;
  let timer: TimerHandle | undefined;
  let hangupTimer: TimerHandle | undefined;
  /** The server's last fatal Error (its words explain the close that follows). */
  let fatalMessage: string | undefined;
  let finished = false;
  let hangingUp = false;
  const queuedTexts: string[] = [];
  /** Assistant text of the turn in progress, per turn id (a delta stream). */
  const assistantText = new Map<string, string>();
  const stats = { framesSent: 0, framesDropped: 0, framesReceived: 0, reconnects: 0, flushes: 0, marksAnswered: 0 };

  function setState(next: WidgetState): void {
    if (next === state) return;
    state = next;
    handlers.state(next);
  }

  const liveState = (): WidgetState => (playing ? 'speaking' : 'listening');

  function send(request: TalkRequest): boolean {
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(encodeRequest(request));
    return true;
  }

  function clearTimer(): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
  }

  function finish(next: 'ended' | 'error', detail: { ended?: EndedEvent; error?: WidgetError }): void {
    if (finished) return;
    finished = true;
    live = false;
    clearTimer();
    if (hangupTimer !== undefined) clock.clearTimeout(hangupTimer);
    player.flush();
    const s = socket;
    socket = undefined;
    if (s) {
      detach(s);
      if (s.readyState <= OPEN) s.close(1000, 'call over');
    }
    if (detail.error) handlers.error(detail.error);
    if (detail.ended) handlers.ended(detail.ended);
    setState(next);
  }

  function detach(s: SocketLike): void {
    s.onopen = null;
    s.onmessage = null;
    s.onclose = null;
    s.onerror = null;
  }

  function connect(): void {
    let s: SocketLike;
    try {
      s = options.openSocket(options.url);
    } catch (error) {
      // A URL the browser refuses outright (ws:// from an https page, a malformed URL): no socket to wait for.
      const detail = String((error as Error)?.message ?? error);
      if (!everLive) return finish('error', { error: widgetError('NETWORK', { detail }) });
      droppedAt ??= clock.now();
      return scheduleReconnect();
    }
    socket = s;
    s.binaryType = 'arraybuffer';
    fatalMessage = undefined;
    s.onopen = () => {
      send(initializationRequest({ outputRateHz: options.outputRateHz, ...(options.assistantId ? { assistantId: options.assistantId } : {}), ...(resumeToken ? { resumeToken } : {}) }));
    };
    s.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer) && !(event.data instanceof Uint8Array)) return;
      const response = decodeResponse(event.data);
      if (response) receive(response);
    };
    s.onclose = (event) => onClose(s, event.code, event.reason);
    // A failed connection also closes (1006): handled there.
    s.onerror = () => undefined;
    clearTimer();
    timer = clock.setTimeout(() => {
      timer = undefined;
      // No initialization answer in time: treat it as a drop of this attempt.
      detach(s);
      s.close(4000, 'no answer');
      onClose(s, 1006, 'timed out');
    }, connectTimeoutMs);
  }

  function onClose(s: SocketLike, code: number, reason: string): void {
    if (s !== socket || finished) return;
    socket = undefined;
    clearTimer();
    const wasLive = live;
    live = false;
    if (hangingUp) return finish('ended', { ended: { by: 'user', reason: 'hung up' } });
    if (!everLive) {
      // The very first connection never got going: nothing to re-attach to.
      const error = FINAL_CLOSE_CODES.has(code) ? closeError(code, fatalMessage ?? reason) : widgetError('NETWORK', { detail: `close ${code} ${reason}`.trim() });
      return finish('error', { error });
    }
    if (FINAL_CLOSE_CODES.has(code)) {
      if (code === 1000) return finish('ended', { ended: { by: 'server', reason: reason || 'call ended' } });
      // A refused re-attach (token used, window over) means the call is gone.
      const error = wasLive ? closeError(code, fatalMessage ?? reason) : widgetError('CONNECTION_LOST', { detail: `${code}: ${fatalMessage ?? reason}` });
      return finish('error', { error });
    }
    // A connection that drops again soon after re-attaching does not restart the resume window (a server that
    // accepts and drops every re-attach must not keep the widget reconnecting for ever).
    if (wasLive && (droppedAt === undefined || clock.now() - liveSince >= STABLE_MS)) {
      droppedAt = clock.now();
      attempt = 0;
    }
    scheduleReconnect();
  }

  function scheduleReconnect(): void {
    setState('reconnecting');
    const base = RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)]!;
    const delay = Math.round(base * (0.75 + random() * 0.5));
    // Leave room for the attempt itself: a re-attach after the window is refused anyway.
    if (clock.now() + delay - (droppedAt ?? clock.now()) >= resumeWindowMs - 250) {
      return finish('error', { error: widgetError('CONNECTION_LOST', { detail: `no connection within the ${resumeWindowMs} ms resume window` }) });
    }
    attempt++;
    timer = clock.setTimeout(() => {
      timer = undefined;
      connect();
    }, delay);
  }

  function receive(response: TalkResponse): void {
    switch (response.case) {
      case 'initialization': {
        clearTimer();
        const init = response.value;
        // Audio in another format than asked for would play at the wrong pitch and speed.
        const output = init.outputAudio;
        if (output && ((output.sampleRate !== 0 && output.sampleRate !== options.outputRateHz) || output.encoding !== AudioEncoding.LINEAR16)) {
          return finish('error', { error: closeError(4400, `the server answered output audio ${output.sampleRate} Hz encoding ${output.encoding}, not PCM16 ${options.outputRateHz} Hz`) });
        }
        resumeToken = init.resumeToken;
        if (init.resumeWindowMs > 0) resumeWindowMs = init.resumeWindowMs;
        if (everLive) stats.reconnects++;
        live = true;
        everLive = true;
        liveSince = clock.now();
        if (droppedAt === undefined) attempt = 0;
        // The server tracks only the furthest mark played: the last one answered while away is enough.
        if (unsentMark !== undefined && send({ case: 'playbackComplete', value: { id: unsentMark } })) {
          stats.marksAnswered++;
          unsentMark = undefined;
        }
        setState(liveState());
        for (const text of queuedTexts.splice(0)) sendTextNow(text);
        return;
      }
      case 'user':
        handlers.transcript({ role: 'user', id: response.value.id, text: response.value.text, final: response.value.completed });
        return;
      case 'assistant': {
        const message = response.value;
        // At most a second of audio per frame (the server sends 20 ms): a larger one is not ours to buffer.
        if (message.audio.byteLength > 0 && message.audio.byteLength <= options.outputRateHz * 2) {
          stats.framesReceived++;
          // A copy: the field is a view at any (possibly odd) offset of the frame, and the player keeps it.
          player.audio(new Int16Array(message.audio.slice().buffer, 0, message.audio.byteLength >> 1));
        }
        if (message.completed) {
          assistantText.delete(message.id);
          handlers.transcript({ role: 'assistant', id: message.id, text: message.text, final: true, interrupted: message.interrupted });
        } else if (message.text) {
          // One turn at a time: a turn cut without its final message is forgotten when the next one speaks.
          if (!assistantText.has(message.id)) assistantText.clear();
          const previous = assistantText.get(message.id);
          const text = (previous ? `${previous} ${message.text}`.replace(/\s+/g, ' ') : message.text).slice(-MAX_CAPTION_CHARS);
          assistantText.set(message.id, text);
          handlers.transcript({ role: 'assistant', id: message.id, text, final: false });
        }
        return;
      }
      case 'playbackMark':
        player.mark(response.value.id);
        return;
      case 'playbackPause':
        player.pause();
        return;
      case 'playbackContinue':
        player.resume();
        return;
      case 'playbackFlush':
        stats.flushes++;
        player.flush();
        return;
      case 'interruption':
        handlers.event('interruption', { id: response.value.id, type: String(response.value.type) });
        return;
      case 'metric': {
        const values: Record<string, number> = {};
        for (const v of response.value.values) values[v.name] = v.value;
        handlers.metrics({ id: response.value.id, values });
        return;
      }
      case 'event':
        handlers.event(response.value.name, response.value.data);
        return;
      case 'toolCall':
        if (response.value.action === ToolCallAction.TRANSFER_CONVERSATION) handlers.event('transfer', { target: response.value.args['target'] ?? '' });
        else handlers.event('tool.call', { id: response.value.id, name: response.value.name });
        return;
      case 'disconnection': {
        const d = response.value;
        if (d.type === DisconnectionType.ERROR) return finish('error', { error: widgetError('SERVER_ERROR', { detail: d.reason }) });
        const by: EndedEvent['by'] = d.type === DisconnectionType.USER ? 'user' : d.type === DisconnectionType.TOOL ? 'assistant' : d.type === DisconnectionType.IDLE_TIMEOUT || d.type === DisconnectionType.MAX_DURATION ? 'timeout' : 'server';
        return finish('ended', { ended: { by, reason: d.reason } });
      }
      case 'error':
        if (response.value.fatal) fatalMessage = `${response.value.code}: ${response.value.message}`;
        else handlers.error(widgetError('SERVER_ERROR', { fatal: false, message: response.value.message, detail: response.value.code }));
        return;
      default:
        return;
    }
  }

  function dropSocketNow(): void {
    const s = socket;
    if (!s) return;
    detach(s);
    s.close(4000, 'dropped');
    onClose(s, 1006, 'dropped');
  }

  function sendTextNow(text: string): void {
    send({ case: 'message', value: { content: { case: 'text', value: text } } });
  }

  return {
    stats,
    get state(): WidgetState {
      return state;
    },
    start(): void {
      if (state !== 'idle') return;
      setState('connecting');
      connect();
    },
    /** One microphone frame (PCM16 16 kHz). Dropped while (re)connecting or when the network stalls. */
    sendAudio(pcm: Int16Array): void {
      // A socket whose send buffer stays full is dead even if the browser has not noticed yet (a half-open TCP
      // connection can take minutes to close): drop it now and re-attach within the resume window.
      if (live && socket && socket.bufferedAmount > STALL_BYTES) {
        stalledSince ??= clock.now();
        if (clock.now() - stalledSince >= STALL_MS) {
          stalledSince = undefined;
          stats.framesDropped++;
          return dropSocketNow();
        }
      } else stalledSince = undefined;
      if (hangingUp || !live || !socket || socket.bufferedAmount > MAX_BUFFERED_BYTES) {
        stats.framesDropped++;
        return;
      }
      if (send({ case: 'message', value: { content: { case: 'audio', value: new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength) } } })) stats.framesSent++;
      else stats.framesDropped++;
    },
    sendText(text: string): void {
      const trimmed = text.trim();
      if (!trimmed || finished) return;
      if (live) sendTextNow(trimmed);
      else if (queuedTexts.length < MAX_QUEUED_TEXTS) queuedTexts.push(trimmed);
    },
    /** The player reached a PlaybackMark: tell the server (it tracks what the caller heard). */
    playbackComplete(id: string): void {
      if (live && send({ case: 'playbackComplete', value: { id } })) {
        stats.marksAnswered++;
        unsentMark = undefined;
      } else unsentMark = id;
    },
    /** The player started or stopped sounding. */
    setPlaying(value: boolean): void {
      playing = value;
      if (live && !finished) setState(liveState());
    },
    /** End the call: a Disconnection, then the server's goodbye (or our own close after a grace period). */
    hangUp(reason = 'user hung up'): void {
      if (finished) return;
      // An open socket takes the Disconnection even before the call is live (the server queues it), so the
      // server ends the call now instead of waiting out the resume window.
      if (!send({ case: 'disconnection', value: { reason } })) return finish('ended', { ended: { by: 'user', reason } });
      hangingUp = true;
      hangupTimer = clock.setTimeout(() => finish('ended', { ended: { by: 'user', reason } }), HANGUP_GRACE_MS);
    },
    /** Test hook and `visibilitychange` helper: drop the socket as a network failure would. */
    dropSocket: () => dropSocketNow(),
  };
}

export type TalkConnection = ReturnType<typeof createTalkConnection>;
