import { createResampler, type Resampler } from './resampler';

export interface PlaybackCoreOptions {
  /** The rate the server sends (SessionInitialized.output_audio). */
  readonly sourceRateHz: number;
  /** The AudioContext's rate. */
  readonly contextRateHz: number;
  /** Audio held before playback starts (and again after an underrun): rides out network jitter. Default 60 ms. */
  readonly startThresholdMs?: number;
  /** Most audio held; beyond it the oldest is dropped (the server stays ≤ 200 ms ahead). Default 2 s. */
  readonly capacityMs?: number;
  /** A PlaybackMark's audio has played out (or was flushed): answer it with PlaybackComplete. */
  readonly onMark: (id: string) => void;
}

/** Most marks waiting to be reached: the server sends one per few frames; more means a stuck player. */
const MAX_PENDING_MARKS = 256;

/**
 * The playback worklet's work, without the worklet: the assistant's PCM16 frames in (resampled to the
 * context rate on arrival), render quanta out, through a small jitter buffer. Marks are answered when the
 * audio queued before them has been rendered; pause holds the audio, flush drops it at once (answering its
 * marks, since nothing will play them, as the server expects).
 */
export function createPlaybackCore(options: PlaybackCoreOptions) {
  const contextRate = options.contextRateHz;
  const capacity = Math.ceil(((options.capacityMs ?? 2_000) * contextRate) / 1000);
  const startThreshold = Math.ceil(((options.startThresholdMs ?? 60) * contextRate) / 1000);
  const resampler: Resampler | undefined = options.sourceRateHz === contextRate ? undefined : createResampler({ inputRateHz: options.sourceRateHz, outputRateHz: contextRate });
  const ring = new Float32Array(capacity);
  let readIndex = 0; // absolute sample counts: position in the ring is index % capacity
  let writeIndex = 0;
  let playing = false;
  let paused = false;
  /** Render quanta so far, and the quantum of the last write and of the last time the buffer ran dry. */
  let quantum = 0;
  let lastWriteQuantum = 0;
  let dryQuantum = -1;
  const marks: { id: string; at: number }[] = [];
  /** Audio arriving within this long after the buffer ran dry means the dry spell was an underrun. */
  const gapSamples = Math.ceil((200 * contextRate) / 1000);
  let quantumSamples = 128;
  let input = new Float32Array(1024);
  let resampled = new Float32Array(4096);
  const stats = { samplesReceived: 0, samplesPlayed: 0, underruns: 0, flushes: 0, dropped: 0 };

  function write(samples: Float32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      if (writeIndex - readIndex >= capacity) {
        readIndex++;
        stats.dropped++;
      }
      ring[writeIndex % capacity] = samples[i]!;
      writeIndex++;
    }
  }

  function answerReached(): void {
    while (marks.length > 0 && marks[0]!.at <= readIndex) options.onMark(marks.shift()!.id);
  }

  return {
    stats,
    get buffered(): number {
      return writeIndex - readIndex;
    },
    get playing(): boolean {
      return playing && !paused;
    },
    /** One frame of PCM16 at the source rate. */
    pushPcm16(pcm: Int16Array): void {
      stats.samplesReceived += pcm.length;
      // Audio soon after running dry: the stream had a gap mid-utterance (the server sends speech without gaps).
      if (dryQuantum >= 0 && (quantum - dryQuantum) * quantumSamples < gapSamples) stats.underruns++;
      dryQuantum = -1;
      lastWriteQuantum = quantum;
      if (input.length < pcm.length) input = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) input[i] = pcm[i]! / 0x8000;
      const view = input.subarray(0, pcm.length);
      if (!resampler) return write(view, view.length);
      const needed = Math.ceil(pcm.length * resampler.ratio) + 8;
      if (resampled.length < needed) resampled = new Float32Array(needed);
      write(resampled, resampler.process(view, resampled));
    },
    mark(id: string): void {
      if (writeIndex <= readIndex) return options.onMark(id);
      if (marks.length >= MAX_PENDING_MARKS) options.onMark(marks.shift()!.id);
      marks.push({ id, at: writeIndex });
    },
    pause(): void {
      paused = true;
    },
    resume(): void {
      paused = false;
    },
    /** Drop everything queued at once (barge-in); its marks count as done. */
    flush(): void {
      stats.flushes++;
      readIndex = writeIndex;
      playing = false;
      paused = false;
      dryQuantum = -1;
      resampler?.reset();
      answerReached();
    },
    /** Fill one render quantum; silence where there is nothing (yet) to play. */
    render(out: Float32Array): void {
      quantum++;
      quantumSamples = out.length;
      const buffered = writeIndex - readIndex;
      // A tail shorter than the threshold plays once nothing more has come for as long as the threshold lasts.
      if (!playing && !paused && buffered > 0 && (buffered >= startThreshold || (quantum - lastWriteQuantum) * quantumSamples >= startThreshold)) playing = true;
      if (!playing || paused) {
        out.fill(0);
        return;
      }
      let i = 0;
      for (; i < out.length && readIndex < writeIndex; i++) {
        out[i] = ring[readIndex % capacity]!;
        readIndex++;
      }
      stats.samplesPlayed += i;
      if (i < out.length) {
        out.fill(0, i);
        playing = false;
        dryQuantum = quantum;
      }
      answerReached();
    },
  };
}

export type PlaybackCore = ReturnType<typeof createPlaybackCore>;
