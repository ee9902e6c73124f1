/**
 * Voice activity detection. Fed the pipeline's 20 ms PCM16 16 kHz frames in order; returns the speech
 * probability (0..1) of the most recent analysis window. Implementations that analyse other window sizes
 * (Silero: 512 samples) buffer internally and return their latest result.
 */
export interface Vad {
  readonly id: VadId;
  process(pcm: Int16Array): number | Promise<number>;
  reset(): void;
  close(): void;
}

export type VadId = 'silero' | 'webrtc';

export interface VadOptions {
  /** Probability at or above which a frame counts as speech. */
  readonly threshold: number;
  /** WebRTC VAD aggressiveness 0..3 (ignored by Silero). */
  readonly webrtcMode: 0 | 1 | 2 | 3;
}

export type VadFactory = (options: VadOptions) => Promise<Vad>;
