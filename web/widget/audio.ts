import { microphoneError, widgetError, type WidgetError } from './errors';
import type { PlayerPort } from './talk-connection';
import { captureWorkletSource, playbackWorkletSource } from './worklet-sources';
import {
  CAPTURE_PROCESSOR,
  PLAYBACK_PROCESSOR,
  type CaptureCommand,
  type CaptureEvent,
  type PlaybackCommand,
  type PlaybackEvent,
  type PlaybackProcessorOptions,
  type PlaybackStats,
} from './worklet-messages';

export interface AudioEngineOptions {
  /** Capture the microphone (false: the call is typed, the assistant is still heard). */
  readonly microphone: boolean;
  /** Merged over the defaults (echo cancellation, noise suppression, auto gain on). */
  readonly audioConstraints?: MediaTrackConstraints;
  /** The rate the server sends (SessionInitialized.output_audio). */
  readonly outputRateHz: number;
  onFrame(pcm: Int16Array, peak: number): void;
  onMark(id: string): void;
  onPlaybackStats(stats: PlaybackStats): void;
  /** The microphone track ended under us (unplugged, revoked). */
  onMicrophoneLost(): void;
}

export interface AudioEngine {
  readonly player: PlayerPort;
  readonly contextRateHz: number;
  readonly hasMicrophone: boolean;
  setMuted(muted: boolean): void;
  close(): void;
}

/** Something the engine could not do, in plain words (thrown by `openAudio`). */
export class WidgetAudioError extends Error {
  constructor(readonly widgetError: WidgetError) {
    super(widgetError.message);
  }
}

/**
 * The widget's Web Audio graph: microphone → capture worklet (20 ms PCM16 16 kHz frames out), and playback
 * worklet → speakers. Autoplay: a context made after getUserMedia resolved is allowed to run; without a
 * microphone the context is made first, while the click's user activation still holds. `resume()` is never
 * awaited: without activation it stays pending forever instead of failing.
 */
export async function openAudio(options: AudioEngineOptions): Promise<AudioEngine> {
  const AudioContextClass = globalThis.AudioContext as typeof AudioContext | undefined;
  if (!AudioContextClass || typeof AudioWorkletNode === 'undefined') throw new WidgetAudioError(widgetError('AUDIO_UNSUPPORTED'));
  let stream: MediaStream | undefined;
  let context: AudioContext | undefined;
  if (!options.microphone) context = new AudioContextClass({ latencyHint: 'interactive' });
  else {
    if (!navigator.mediaDevices?.getUserMedia) throw new WidgetAudioError(widgetError('AUDIO_UNSUPPORTED', { detail: 'navigator.mediaDevices is missing (not a secure context?)' }));
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1, ...options.audioConstraints },
      });
    } catch (error) {
      throw new WidgetAudioError(microphoneError(error));
    }
    try {
      context = new AudioContextClass({ latencyHint: 'interactive' });
    } catch (error) {
      // The microphone is open: close it, or its light stays on with nothing listening.
      stream.getTracks().forEach((t) => t.stop());
      throw new WidgetAudioError(widgetError('AUDIO_UNSUPPORTED', { detail: String((error as Error)?.message ?? error) }));
    }
  }
  const ctx = context;
  const release = () => {
    stream?.getTracks().forEach((t) => t.stop());
    void ctx.close().catch(() => undefined);
  };
  if (ctx.state === 'suspended') void ctx.resume().catch(() => undefined);

  let playback: AudioWorkletNode;
  let capture: AudioWorkletNode | undefined;
  let source: MediaStreamAudioSourceNode | undefined;
  let sink: GainNode | undefined;
  try {
    await loadModule(ctx, captureWorkletSource);
    await loadModule(ctx, playbackWorkletSource);
    const processorOptions: PlaybackProcessorOptions = { sourceRateHz: options.outputRateHz };
    playback = new AudioWorkletNode(ctx, PLAYBACK_PROCESSOR, { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1], processorOptions });
    playback.connect(ctx.destination);
    if (stream) {
      source = ctx.createMediaStreamSource(stream);
      capture = new AudioWorkletNode(ctx, CAPTURE_PROCESSOR, { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
      // Pulled by the graph through a silent sink, so the worklet runs in every browser.
      sink = ctx.createGain();
      sink.gain.value = 0;
      source.connect(capture).connect(sink).connect(ctx.destination);
    }
  } catch (error) {
    release();
    throw new WidgetAudioError(widgetError('AUDIO_UNSUPPORTED', { detail: String((error as Error)?.message ?? error) }));
  }

  playback.port.onmessage = (event: MessageEvent<PlaybackEvent>) => {
    const data = event.data;
    if (data.type === 'mark') options.onMark(data.id);
    else options.onPlaybackStats(data);
  };
  if (capture) {
    capture.port.onmessage = (event: MessageEvent<CaptureEvent>) => {
      if (event.data.type === 'frame') options.onFrame(new Int16Array(event.data.pcm), event.data.peak);
    };
  }
  const track = stream?.getAudioTracks()[0];
  if (track) track.onended = () => options.onMicrophoneLost();

  const post = (command: PlaybackCommand, transfer: Transferable[] = []) => playback.port.postMessage(command, transfer);
  let closed = false;
  return {
    contextRateHz: ctx.sampleRate,
    hasMicrophone: stream !== undefined,
    player: {
      audio(pcm) {
        // Transferred, not copied, when the array owns its whole buffer (the connection hands over such copies).
        const own = pcm.byteOffset === 0 && pcm.buffer.byteLength === pcm.byteLength ? pcm : pcm.slice();
        const buffer = own.buffer as ArrayBuffer;
        post({ type: 'audio', pcm: buffer }, [buffer]);
      },
      mark: (id) => post({ type: 'mark', id }),
      pause: () => post({ type: 'pause' }),
      resume: () => post({ type: 'continue' }),
      flush: () => post({ type: 'flush' }),
    },
    setMuted(muted) {
      const command: CaptureCommand = { type: 'mute', muted };
      capture?.port.postMessage(command);
    },
    close() {
      if (closed) return;
      closed = true;
      if (track) track.onended = null;
      source?.disconnect();
      capture?.disconnect();
      sink?.disconnect();
      playback.disconnect();
      release();
    },
  };
}

async function loadModule(context: AudioContext, source: string): Promise<void> {
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  try {
    await context.audioWorklet.addModule(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}
