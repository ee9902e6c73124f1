import { createResampler } from './resampler';

/** The pipeline's input: PCM16 mono at 16 kHz in 20 ms frames (ARCHITECTURE.md, core contracts). */
export const CAPTURE_RATE_HZ = 16_000;
export const CAPTURE_FRAME_SAMPLES = 320;

export interface CaptureCoreOptions {
  /** The AudioContext's rate (whatever the browser picked: 44.1 kHz, 48 kHz, ...). */
  readonly contextRateHz: number;
  /** A full frame of PCM16 at 16 kHz; the array is the caller's to keep (it is never reused). */
  readonly onFrame: (frame: Int16Array) => void;
}

/**
 * The capture worklet's work, without the worklet: microphone blocks at the context rate in, 20 ms PCM16
 * 16 kHz frames out. Muted frames keep coming as silence, so the server's clock and VAD keep running.
 */
export function createCaptureCore(options: CaptureCoreOptions) {
  const resampler = options.contextRateHz === CAPTURE_RATE_HZ ? undefined : createResampler({ inputRateHz: options.contextRateHz, outputRateHz: CAPTURE_RATE_HZ });
  // Room for the largest render quantum browsers use (128) several times over.
  const scratch = new Float32Array(4096);
  let frame = new Int16Array(CAPTURE_FRAME_SAMPLES);
  let filled = 0;
  let muted = false;
  const stats = { frames: 0, peak: 0 };

  function emit(samples: Float32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      let s = muted ? 0 : samples[i]!;
      if (s > 1) s = 1;
      else if (s < -1) s = -1;
      const abs = s < 0 ? -s : s;
      if (abs > stats.peak) stats.peak = abs;
      frame[filled++] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
      if (filled === CAPTURE_FRAME_SAMPLES) {
        stats.frames++;
        options.onFrame(frame);
        frame = new Int16Array(CAPTURE_FRAME_SAMPLES);
        filled = 0;
      }
    }
  }

  return {
    stats,
    /** One block of microphone samples (mono, [-1, 1]) at the context rate. */
    push(block: Float32Array): void {
      if (!resampler) return emit(block, block.length);
      // A block larger than the scratch space is taken in pieces (never the case for 128-sample quanta).
      for (let offset = 0; offset < block.length; offset += 1024) {
        const piece = block.subarray(offset, Math.min(block.length, offset + 1024));
        const written = resampler.process(piece, scratch);
        emit(scratch, written);
      }
    },
    setMuted(value: boolean): void {
      muted = value;
    },
  };
}

export type CaptureCore = ReturnType<typeof createCaptureCore>;
