/**
 * Converts one stream between formats: decode G.711 → PCM16, resample when rates differ, encode.
 * Stateful because the resampler keeps filter history between calls (and a PCM16 input split inside a
 * sample carries its odd byte), so one converter serves exactly one stream direction.
 *
 * Steady state allocates only the returned array: scratch buffers grow to the largest chunk seen and the
 * exact-length views the resampler needs are cached for the last length used (constant at 20 ms frames).
 */
import { sameFormat } from './format';
import type { AudioFormat } from './format';
import {
  alawDecode,
  alawDecodeSample,
  alawEncode,
  alawEncodeSample,
  mulawDecode,
  mulawDecodeSample,
  mulawEncode,
  mulawEncodeSample,
} from './g711';
import type { Resampler, ResamplerFactory } from './resampler';

export interface AudioConverter {
  readonly from: AudioFormat;
  readonly to: AudioFormat;
  /**
   * Converts the next piece of the stream. Equal formats return `data` itself (no copy); otherwise a new
   * array the caller owns. Output may be shorter or longer than a plain ratio suggests while the resampler
   * fills its filter, and empty when nothing is ready yet.
   */
  convert(data: Uint8Array): Uint8Array;
  destroy(): void;
}

const EMPTY = new Uint8Array(0);

/** Grow-only Int16 scratch with a cached exact-length view. */
interface Scratch {
  samples: Int16Array;
  bytes: Uint8Array;
  view: Int16Array;
}

function createScratch(): Scratch {
  const samples = new Int16Array(0);
  return { samples, bytes: EMPTY, view: samples };
}

function ensureCapacity(scratch: Scratch, length: number): void {
  if (scratch.samples.length >= length) return;
  scratch.samples = new Int16Array(Math.max(length, scratch.samples.length * 2));
  scratch.bytes = new Uint8Array(scratch.samples.buffer);
  scratch.view = scratch.samples.subarray(0, 0);
}

/** The first `length` samples as their own array (what `processInto` needs), reusing the last view. */
function exactView(scratch: Scratch, length: number): Int16Array {
  if (scratch.view.length !== length) scratch.view = scratch.samples.subarray(0, length);
  return scratch.view;
}

// μ-law ↔ A-law at one rate is a byte-to-byte map: the same result as decoding to linear and re-encoding.
let mulawToAlawTable: Uint8Array | undefined;
let alawToMulawTable: Uint8Array | undefined;

function transcodeTable(toAlaw: boolean): Uint8Array {
  if (toAlaw) return (mulawToAlawTable ??= Uint8Array.from({ length: 256 }, (_, c) => alawEncodeSample(mulawDecodeSample(c))));
  return (alawToMulawTable ??= Uint8Array.from({ length: 256 }, (_, c) => mulawEncodeSample(alawDecodeSample(c))));
}

export function createAudioConverter(from: AudioFormat, to: AudioFormat, resamplers: ResamplerFactory): AudioConverter {
  let destroyed = false;
  const checkAlive = (): void => {
    if (destroyed) throw new Error('AUDIO_CONVERTER_DESTROYED: convert() called after destroy(); create a new converter per stream');
  };

  if (sameFormat(from, to)) {
    return {
      from,
      to,
      convert(data) {
        checkAlive();
        return data;
      },
      destroy() {
        destroyed = true;
      },
    };
  }

  if (from.sampleRateHz === to.sampleRateHz && from.encoding !== 'pcm16' && to.encoding !== 'pcm16') {
    const table = transcodeTable(to.encoding === 'alaw');
    return {
      from,
      to,
      convert(data) {
        checkAlive();
        if (data.length === 0) return EMPTY;
        const out = new Uint8Array(data.length);
        for (let i = 0; i < data.length; i++) out[i] = table[data[i]!]!;
        return out;
      },
      destroy() {
        destroyed = true;
      },
    };
  }

  const resampler: Resampler | undefined =
    from.sampleRateHz === to.sampleRateHz ? undefined : resamplers.create(from.sampleRateHz, to.sampleRateHz);
  const input = createScratch();
  const resampled = createScratch();
  let pendingByte = -1; // PCM16 input only: the first half of a sample split across calls

  /** Linear samples of `data` in `input` scratch; returns how many. */
  function decodeInput(data: Uint8Array): number {
    if (from.encoding === 'mulaw' || from.encoding === 'alaw') {
      ensureCapacity(input, data.length);
      return from.encoding === 'mulaw' ? mulawDecode(data, input.samples) : alawDecode(data, input.samples);
    }
    const carried = pendingByte >= 0 ? 1 : 0;
    const totalBytes = carried + data.length;
    const count = totalBytes >> 1;
    ensureCapacity(input, count);
    if (carried) input.bytes[0] = pendingByte;
    // A byte copy rather than a view of `data`: no alignment worries and no view object per call.
    input.bytes.set(data.subarray(0, count * 2 - carried), carried);
    pendingByte = totalBytes & 1 ? data[data.length - 1]! : -1;
    return count;
  }

  function encodeOutput(samples: Int16Array, count: number): Uint8Array {
    if (count === 0) return EMPTY;
    if (to.encoding === 'mulaw') {
      const out = new Uint8Array(count);
      mulawEncode(samples, out, count);
      return out;
    }
    if (to.encoding === 'alaw') {
      const out = new Uint8Array(count);
      alawEncode(samples, out, count);
      return out;
    }
    const out = new Uint8Array(count * 2);
    for (let i = 0, j = 0; i < count; i++, j += 2) {
      const sample = samples[i]!;
      out[j] = sample & 0xff; // little-endian
      out[j + 1] = (sample >> 8) & 0xff;
    }
    return out;
  }

  return {
    from,
    to,
    convert(data) {
      checkAlive();
      const count = decodeInput(data);
      if (count === 0) return EMPTY;
      if (!resampler) return encodeOutput(input.samples, count);
      ensureCapacity(resampled, resampler.maxOutputSamples(count));
      const produced = resampler.processInto(exactView(input, count), resampled.samples);
      return encodeOutput(resampled.samples, produced);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      resampler?.destroy();
    },
  };
}
