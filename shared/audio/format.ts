/** Audio formats and frames: every frame says what it is, so no stage has to guess. */

export type AudioEncoding = 'pcm16' | 'mulaw' | 'alaw';

export interface AudioFormat {
  readonly encoding: AudioEncoding;
  readonly sampleRateHz: number;
}

/**
 * One frame of mono audio. `data` holds the raw bytes in `format` (PCM16 is little-endian).
 * Frames on the pipeline are 20 ms; provider chunks of other sizes go through a FrameAssembler first.
 */
export interface AudioFrame {
  readonly format: AudioFormat;
  readonly data: Uint8Array;
}

export const FRAME_MS = 20;

/** The input path (channel → VAD → STT) is PCM16 LE mono 16 kHz, 320 samples per frame. */
export const PIPELINE_FORMAT: AudioFormat = Object.freeze({ encoding: 'pcm16', sampleRateHz: 16_000 });

export const MULAW_8K: AudioFormat = Object.freeze({ encoding: 'mulaw', sampleRateHz: 8_000 });
export const ALAW_8K: AudioFormat = Object.freeze({ encoding: 'alaw', sampleRateHz: 8_000 });

export function bytesPerSample(encoding: AudioEncoding): number {
  return encoding === 'pcm16' ? 2 : 1;
}

export function samplesPerFrame(format: AudioFormat, frameMs = FRAME_MS): number {
  return Math.round((format.sampleRateHz * frameMs) / 1000);
}

export function bytesPerFrame(format: AudioFormat, frameMs = FRAME_MS): number {
  return samplesPerFrame(format, frameMs) * bytesPerSample(format.encoding);
}

export function durationMs(format: AudioFormat, byteLength: number): number {
  return (byteLength / bytesPerSample(format.encoding) / format.sampleRateHz) * 1000;
}

export function sameFormat(a: AudioFormat, b: AudioFormat): boolean {
  return a.encoding === b.encoding && a.sampleRateHz === b.sampleRateHz;
}

/**
 * A PCM16 view of a byte buffer without copying when it is 2-byte aligned (it nearly always is);
 * an unaligned buffer is copied once. All supported hosts are little-endian.
 */
export function pcm16View(data: Uint8Array): Int16Array {
  if ((data.byteOffset & 1) === 0) return new Int16Array(data.buffer, data.byteOffset, data.byteLength >> 1);
  return new Int16Array(data.slice().buffer, 0, data.byteLength >> 1);
}

export function pcm16Bytes(samples: Int16Array): Uint8Array {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}
