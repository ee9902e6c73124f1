/** Messages between the widget and its two audio worklets (structured-cloned over each node's port). */

export const CAPTURE_PROCESSOR = 'voice-widget-capture';
export const PLAYBACK_PROCESSOR = 'voice-widget-playback';

/** Main thread → capture worklet. */
export type CaptureCommand = { readonly type: 'mute'; readonly muted: boolean };

/** Capture worklet → main thread: one 20 ms PCM16 16 kHz frame (its buffer is transferred). */
export type CaptureEvent = { readonly type: 'frame'; readonly pcm: ArrayBuffer; readonly peak: number };

/** Main thread → playback worklet. */
export type PlaybackCommand =
  | { readonly type: 'audio'; readonly pcm: ArrayBuffer }
  | { readonly type: 'mark'; readonly id: string }
  | { readonly type: 'pause' }
  | { readonly type: 'continue' }
  | { readonly type: 'flush' };

export interface PlaybackStats {
  /** Samples of assistant audio rendered, at the context rate. */
  readonly samplesPlayed: number;
  /** Samples received, at the source rate. */
  readonly samplesReceived: number;
  readonly underruns: number;
  readonly flushes: number;
  readonly bufferedSamples: number;
  readonly playing: boolean;
}

/** Playback worklet → main thread. */
export type PlaybackEvent = { readonly type: 'mark'; readonly id: string } | ({ readonly type: 'stats' } & PlaybackStats);

export interface PlaybackProcessorOptions {
  readonly sourceRateHz: number;
}
