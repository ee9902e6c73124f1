import { systemClock } from '../../shared/contracts/clock';
import { openAudio, WidgetAudioError, type AudioEngine } from './audio';
import { widgetError, type WidgetError } from './errors';
import { isWidgetError, requestWebSession } from './session-request';
import { createTalkConnection, type EndedEvent, type MetricsEvent, type SocketLike, type TalkConnection, type TranscriptEvent, type WidgetState } from './talk-connection';
import { createWidgetUi, type WidgetUi } from './ui';
import type { PlaybackStats } from './worklet-messages';

export interface VoiceWidgetOptions {
  readonly assistantId: string;
  /** A publishable key (`vr_pk_…`) whose allowed origins include this page's. */
  readonly publishableKey: string;
  /** The media node or edge origin; default the origin the widget script came from. */
  readonly baseUrl: string;
  /** Overrides of the microphone constraints (echo cancellation, noise suppression, auto gain are on by default). */
  readonly audioConstraints?: MediaTrackConstraints;
  /** Where the button UI goes (inside a shadow root); `null`: no UI, the page drives the API. Default: document.body. */
  readonly container?: HTMLElement | null;
  /** `{{variable}}` values for the assistant's prompt and greeting. */
  readonly variables?: Readonly<Record<string, string>>;
  /** The rate the assistant's audio is asked for: 16 or 24 kHz (resampled to the speakers' rate). Default 16000. */
  readonly outputRateHz?: 16_000 | 24_000;
  /** Shown in the panel's header. */
  readonly title?: string;
  /** For tests and unusual hosts. */
  readonly fetch?: typeof fetch;
  readonly openSocket?: (url: string) => SocketLike;
}

export interface VoiceWidgetEvents {
  state: WidgetState;
  transcript: TranscriptEvent;
  metrics: MetricsEvent;
  error: WidgetError;
  ended: EndedEvent;
  /** Server events: `user.speech_started`, `user.speech_ended`, `interruption`, `transfer`, `tool.call`, ... */
  event: { readonly name: string; readonly data: Readonly<Record<string, string>> };
}

export interface VoiceWidgetStats {
  readonly framesSent: number;
  readonly framesDropped: number;
  readonly framesReceived: number;
  /** Assistant audio rendered by the playback worklet, in samples at `contextRateHz`. */
  readonly samplesPlayed: number;
  readonly samplesReceived: number;
  readonly underruns: number;
  /** PlaybackFlush messages from the server (barge-in). */
  readonly flushes: number;
  readonly reconnects: number;
  readonly marksAnswered: number;
  readonly contextRateHz: number;
  /** Loudest microphone sample of the last frame, 0..1. */
  readonly micPeak: number;
}

export interface StartOptions {
  /** false: a typed call (no microphone); the assistant is still heard. Default true. */
  readonly microphone?: boolean;
}

export type Listener<K extends keyof VoiceWidgetEvents> = (value: VoiceWidgetEvents[K]) => void;

const EMPTY_PLAYBACK: PlaybackStats = { samplesPlayed: 0, samplesReceived: 0, underruns: 0, flushes: 0, bufferedSamples: 0, playing: false };

/**
 * The embeddable voice widget: asks the server for a session with the publishable key, opens the
 * microphone and the audio worklets, and runs the call over talk_api (see talk-connection.ts). One call at a
 * time; after it ended (or failed) `start()` begins a new one.
 */
export function createVoiceWidget(options: VoiceWidgetOptions) {
  const listeners = new Map<keyof VoiceWidgetEvents, Set<(value: never) => void>>();
  const outputRateHz = options.outputRateHz ?? 16_000;
  let state: WidgetState = 'idle';
  let connection: TalkConnection | undefined;
  let audio: AudioEngine | undefined;
  let playback: PlaybackStats = EMPTY_PLAYBACK;
  let micPeak = 0;
  /** The last call's AudioContext rate (kept after the call, so stats stay readable). */
  let contextRateHz = 0;
  let muted = false;
  /** Bumped by each start and stop: a start still awaiting the microphone or the session gives up when it changed. */
  let generation = 0;
  let pendingTexts: string[] = [];
  /** After destroy() nothing starts again (no microphone without a UI and listeners). */
  let destroyed = false;
  let previousTotals = { framesSent: 0, framesDropped: 0, framesReceived: 0, flushes: 0, reconnects: 0, marksAnswered: 0 };

  function emit<K extends keyof VoiceWidgetEvents>(name: K, value: VoiceWidgetEvents[K]): void {
    for (const listener of listeners.get(name) ?? []) {
      try {
        (listener as Listener<K>)(value);
      } catch (error) {
        // A page's listener must not break the call.
        console.error('voice widget listener failed', error);
      }
    }
  }

  function setState(next: WidgetState): void {
    if (next === state) return;
    state = next;
    ui?.setState(next);
    emit('state', next);
  }

  function fail(error: WidgetError): void {
    releaseAudio();
    // Typed turns waiting for this call are not carried over to the next one.
    pendingTexts = [];
    ui?.showError(error);
    emit('error', error);
    setState('error');
  }

  function releaseAudio(): void {
    audio?.close();
    audio = undefined;
  }

  function retire(current: TalkConnection): void {
    // Counters survive the call they were counted in (stats cover the widget's life).
    const s = current.stats;
    previousTotals = {
      framesSent: previousTotals.framesSent + s.framesSent,
      framesDropped: previousTotals.framesDropped + s.framesDropped,
      framesReceived: previousTotals.framesReceived + s.framesReceived,
      flushes: previousTotals.flushes + s.flushes,
      reconnects: previousTotals.reconnects + s.reconnects,
      marksAnswered: previousTotals.marksAnswered + s.marksAnswered,
    };
  }

  async function start(startOptions: StartOptions = {}): Promise<void> {
    if (destroyed || (state !== 'idle' && state !== 'ended' && state !== 'error')) return;
    const myGeneration = ++generation;
    const wantMicrophone = startOptions.microphone ?? true;
    ui?.clearError();
    setState('connecting');
    let engine: AudioEngine;
    try {
      engine = await openAudio({
        microphone: wantMicrophone,
        ...(options.audioConstraints ? { audioConstraints: options.audioConstraints } : {}),
        outputRateHz,
        onFrame: (pcm, peak) => {
          micPeak = peak;
          connection?.sendAudio(pcm);
        },
        onMark: (id) => connection?.playbackComplete(id),
        onPlaybackStats: (stats) => {
          const wasPlaying = playback.playing;
          playback = stats;
          if (stats.playing !== wasPlaying) connection?.setPlaying(stats.playing);
        },
        onMicrophoneLost: () => {
          const error = widgetError('MIC_LOST', { fatal: false });
          ui?.showError(error);
          emit('error', error);
        },
      });
    } catch (error) {
      if (myGeneration !== generation) return;
      return fail(error instanceof WidgetAudioError ? error.widgetError : widgetError('AUDIO_UNSUPPORTED', { detail: String(error) }));
    }
    if (myGeneration !== generation) return engine.close();
    audio = engine;
    ui?.setMicrophone(engine.hasMicrophone);
    contextRateHz = engine.contextRateHz;
    playback = EMPTY_PLAYBACK;
    engine.setMuted(muted);

    const session = await requestWebSession({
      baseUrl: options.baseUrl,
      publishableKey: options.publishableKey,
      assistantId: options.assistantId,
      ...(options.variables ? { variables: options.variables } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    if (myGeneration !== generation) return;
    if (isWidgetError(session)) return fail(session);

    const current = createTalkConnection({
      url: session.url,
      assistantId: options.assistantId,
      outputRateHz,
      openSocket: options.openSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike),
      player: engine.player,
      clock: systemClock,
      handlers: {
        state: (next) => {
          if (next === 'ended' || next === 'error') {
            releaseAudio();
            retire(current);
            if (connection === current) connection = undefined;
          }
          setState(next);
        },
        transcript: (event) => {
          ui?.transcript(event);
          emit('transcript', event);
        },
        metrics: (event) => emit('metrics', event),
        error: (error) => {
          ui?.showError(error);
          emit('error', error);
        },
        ended: (event) => {
          ui?.ended(event);
          emit('ended', event);
        },
        event: (name, data) => emit('event', { name, data }),
      },
    });
    connection = current;
    try {
      current.start();
    } catch (error) {
      // Whatever the connection could not survive ends this call plainly (microphone released), never a stuck one.
      connection = undefined;
      releaseAudio();
      return fail(widgetError('NETWORK', { detail: String((error as Error)?.message ?? error) }));
    }
    for (const text of pendingTexts.splice(0)) current.sendText(text);
  }

  function stop(): void {
    generation++;
    pendingTexts = [];
    if (connection) return connection.hangUp();
    // Still opening the microphone or asking for the session: give up on it.
    if (state === 'connecting') {
      releaseAudio();
      setState('ended');
      emit('ended', { by: 'user', reason: 'stopped before the call started' });
    }
  }

  const ui: WidgetUi | undefined =
    options.container === null || typeof document === 'undefined'
      ? undefined
      : createWidgetUi(options.container ?? document.body, {
          ...(options.title ? { title: options.title } : {}),
          onCall: () => (state === 'idle' || state === 'ended' || state === 'error' ? void start() : stop()),
          onMute: () => widget.mute(!muted),
          onText: (text) => widget.sendText(text),
        });

  // Leaving the page ends the call at once (best effort), instead of leaving it waiting out the resume window.
  const onPageHide = () => connection?.hangUp('page closed');
  if (typeof window !== 'undefined') window.addEventListener('pagehide', onPageHide);

  const widget = {
    start,
    stop,
    /** Silence the microphone (frames keep flowing as silence, so the call's clock runs on). */
    mute(value: boolean): void {
      muted = value;
      audio?.setMuted(value);
      ui?.setMuted(value);
    },
    /** A typed turn. With no call running, a typed call starts (no microphone) and the text follows it. */
    sendText(text: string): void {
      if (destroyed || !text.trim()) return;
      if (connection) return connection.sendText(text);
      pendingTexts.push(text);
      if (state !== 'connecting') void start({ microphone: false });
    },
    on<K extends keyof VoiceWidgetEvents>(name: K, listener: Listener<K>): () => void {
      let set = listeners.get(name);
      if (!set) listeners.set(name, (set = new Set()));
      set.add(listener as (value: never) => void);
      return () => widget.off(name, listener);
    },
    off<K extends keyof VoiceWidgetEvents>(name: K, listener: Listener<K>): void {
      listeners.get(name)?.delete(listener as (value: never) => void);
    },
    get state(): WidgetState {
      return state;
    },
    get stats(): VoiceWidgetStats {
      const s = connection?.stats;
      return {
        framesSent: previousTotals.framesSent + (s?.framesSent ?? 0),
        framesDropped: previousTotals.framesDropped + (s?.framesDropped ?? 0),
        framesReceived: previousTotals.framesReceived + (s?.framesReceived ?? 0),
        flushes: previousTotals.flushes + (s?.flushes ?? 0),
        reconnects: previousTotals.reconnects + (s?.reconnects ?? 0),
        marksAnswered: previousTotals.marksAnswered + (s?.marksAnswered ?? 0),
        samplesPlayed: playback.samplesPlayed,
        samplesReceived: playback.samplesReceived,
        underruns: playback.underruns,
        contextRateHz,
        micPeak,
      };
    },
    /** Test hook: drop the socket as a network failure would (the widget re-attaches with its resume token). */
    simulateNetworkDrop(): void {
      connection?.dropSocket();
    },
    /** The UI's root element (`data-state` mirrors the state), if the widget has a UI. */
    get element(): HTMLElement | undefined {
      return ui?.host;
    },
    destroy(): void {
      destroyed = true;
      stop();
      releaseAudio();
      if (typeof window !== 'undefined') window.removeEventListener('pagehide', onPageHide);
      ui?.destroy();
      listeners.clear();
    },
  };
  return widget;
}

export type VoiceWidget = ReturnType<typeof createVoiceWidget>;
