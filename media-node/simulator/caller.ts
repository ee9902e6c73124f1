import { readFile, writeFile } from 'node:fs/promises';
import { createAudioConverter } from '../../shared/audio/convert';
import { pcm16Bytes, pcm16View } from '../../shared/audio/format';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import { decodeWav, encodeWav } from '../../shared/audio/wav';
import { loadWasmModulesNode } from '../audio/wasm-node';

/**
 * The caller's side of a simulated call: what they say (queued as 20 ms frames, silence when they say
 * nothing), where it comes from (a WAV file at any format, or speech-like bursts), and the WAV of what they heard.
 */

/** Caller speech queued as frames of `frameSamples`; `next()` is one frame per tick, silence when nothing is queued. */
export function createCallerQueue(frameSamples: number) {
  const frames: Int16Array[] = [];
  const silence = new Int16Array(frameSamples);
  return {
    /** Queues speech behind what is queued (the last frame padded with silence); returns its duration in frames. */
    say(pcm: Int16Array): number {
      for (let i = 0; i < pcm.length; i += frameSamples) {
        const frame = new Int16Array(frameSamples);
        frame.set(pcm.subarray(i, i + frameSamples));
        frames.push(frame);
      }
      return Math.ceil(pcm.length / frameSamples);
    },
    next: (): Int16Array => frames.shift() ?? silence,
    pendingFrames: () => frames.length,
  };
}

/** Speech-like caller audio at `sampleRateHz`: voiced bursts (a 120 Hz buzz with harmonics) of 0.4–1.2 s between pauses. */
export function speechLike(seconds: number, sampleRateHz: number): Int16Array {
  const pcm = new Int16Array(Math.round(seconds * sampleRateHz));
  let t = sampleRateHz; // one second of silence first
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const ramp = sampleRateHz / 20; // 50 ms fade in and out
  while (t < pcm.length) {
    const burst = Math.floor((0.4 + random() * 0.8) * sampleRateHz);
    for (let i = 0; i < burst && t + i < pcm.length; i++) {
      let v = 0;
      for (let h = 1; h <= 8; h++) v += Math.sin((2 * Math.PI * 120 * h * i) / sampleRateHz) / h;
      pcm[t + i] = Math.round(4000 * v * Math.min(1, i / ramp, (burst - i) / ramp));
    }
    t += burst + Math.floor((1.5 + random() * 2.5) * sampleRateHz);
  }
  return pcm;
}

export class CallerAudioError extends Error {
  override readonly name = 'CallerAudioError';
}

/** A WAV file's audio as PCM16 mono at `sampleRateHz` (resampled as needed), at most `maxSeconds` long. */
export async function readCallerWav(path: string, sampleRateHz: number, maxSeconds: number): Promise<Int16Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CallerAudioError(`cannot read the caller WAV ${path}: ${(error as Error).message}`, { cause: error });
  }
  const wav = decodeWav(bytes);
  if ('code' in wav) throw new CallerAudioError(`${path} is not a usable WAV (${wav.code}): ${wav.message}`);
  const wasm = await loadWasmModulesNode();
  const convert = createAudioConverter(wav.format, { encoding: 'pcm16', sampleRateHz }, await createSpeexResamplerFactory(wasm.speexResampler));
  return pcm16View(convert.convert(wav.data)).slice(0, Math.round(maxSeconds * sampleRateHz));
}

/** What the caller heard, as a PCM16 mono WAV. */
export async function writeHeardWav(path: string, pcm: Int16Array, sampleRateHz: number): Promise<void> {
  await writeFile(path, encodeWav({ encoding: 'pcm16', sampleRateHz }, pcm16Bytes(pcm)));
}
