/**
 * Cuts a stream of arbitrary byte chunks (provider audio, socket reads) into exact frames of one format.
 * Chunks may end anywhere, even inside a PCM16 sample: the assembler works on bytes and frames always hold
 * whole samples, so split samples rejoin on their own.
 */
import { FRAME_MS, bytesPerFrame, bytesPerSample } from './format';
import type { AudioEncoding, AudioFormat, AudioFrame } from './format';
import { ALAW_SILENCE, MULAW_SILENCE } from './g711';

export interface FrameAssemblerOptions {
  /** Frame length; default 20 ms (the pipeline's). */
  readonly frameMs?: number;
  /**
   * Most audio one push may hold at once (the carried-over tail plus the new chunk); default 1000 ms.
   * A larger push is refused rather than allocated, so a misbehaving peer cannot make us buffer without end.
   */
  readonly maxBufferedMs?: number;
}

export class FrameOverflowError extends Error {
  override readonly name = 'FrameOverflowError';
  readonly code = 'AUDIO_FRAME_OVERFLOW';
  readonly retryable = false;
  constructor(
    readonly chunkBytes: number,
    readonly bufferedBytes: number,
    readonly maxBufferedBytes: number,
  ) {
    super(
      `AUDIO_FRAME_OVERFLOW: a ${chunkBytes}-byte chunk on top of ${bufferedBytes} buffered bytes exceeds the ` +
        `${maxBufferedBytes}-byte limit; the chunk was dropped. Send smaller chunks or raise maxBufferedMs.`,
    );
  }
}

export interface FrameAssembler {
  readonly format: AudioFormat;
  readonly frameBytes: number;
  /** Bytes of an incomplete frame carried over to the next push (always < frameBytes). */
  readonly bufferedBytes: number;
  /**
   * Appends `chunk` and hands every completed frame to `onFrame`, in order. Returns an error (and keeps its
   * state unchanged) when the push would exceed maxBufferedMs. Frames own their bytes: frames from one
   * push share one freshly allocated block, never the caller's chunk nor the assembler's buffer.
   */
  push(chunk: Uint8Array, onFrame: (frame: AudioFrame) => void): FrameOverflowError | undefined;
  /**
   * Ends the stream: returns the buffered tail as a last frame, either padded to a full frame with the
   * encoding's silence or as a short frame; a dangling half PCM16 sample is dropped. Undefined when empty.
   */
  flush(padWithSilence: boolean): AudioFrame | undefined;
  /** Drops the buffered tail (e.g. on barge-in). */
  reset(): void;
}

/** The byte value of a zero sample (PCM16 zero is two 0 bytes). */
export function silenceByte(encoding: AudioEncoding): number {
  if (encoding === 'mulaw') return MULAW_SILENCE;
  if (encoding === 'alaw') return ALAW_SILENCE;
  return 0;
}

export function createFrameAssembler(format: AudioFormat, options: FrameAssemblerOptions = {}): FrameAssembler {
  const frameMs = options.frameMs ?? FRAME_MS;
  const frameBytes = bytesPerFrame(format, frameMs);
  const sampleBytes = bytesPerSample(format.encoding);
  if (!(frameBytes > 0)) throw new RangeError(`frame assembler: ${frameMs} ms at ${format.sampleRateHz} Hz is no frame`);
  // Never less than one frame, or no push could ever complete one.
  const maxBufferedBytes = Math.max(frameBytes, bytesPerFrame(format, options.maxBufferedMs ?? 1000));
  const tail = new Uint8Array(frameBytes);
  let tailBytes = 0;

  return {
    format,
    frameBytes,
    get bufferedBytes() {
      return tailBytes;
    },

    push(chunk, onFrame) {
      const total = tailBytes + chunk.length;
      if (total > maxBufferedBytes) return new FrameOverflowError(chunk.length, tailBytes, maxBufferedBytes);
      const frameCount = Math.floor(total / frameBytes);
      if (frameCount === 0) {
        tail.set(chunk, tailBytes);
        tailBytes = total;
        return undefined;
      }
      // One allocation per push however many frames it completes.
      const block = new Uint8Array(frameCount * frameBytes);
      block.set(tail.subarray(0, tailBytes));
      const fromChunk = block.length - tailBytes;
      block.set(chunk.subarray(0, fromChunk), tailBytes);
      tail.set(chunk.subarray(fromChunk));
      tailBytes = chunk.length - fromChunk;
      for (let offset = 0; offset < block.length; offset += frameBytes) {
        onFrame({ format, data: block.subarray(offset, offset + frameBytes) });
      }
      return undefined;
    },

    flush(padWithSilence) {
      const usable = tailBytes - (tailBytes % sampleBytes);
      tailBytes = 0;
      if (usable === 0) return undefined;
      if (!padWithSilence) return { format, data: tail.slice(0, usable) };
      const data = new Uint8Array(frameBytes).fill(silenceByte(format.encoding), usable);
      data.set(tail.subarray(0, usable));
      return { format, data };
    },

    reset() {
      tailBytes = 0;
    },
  };
}
