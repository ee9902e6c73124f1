import { ConfigError } from '../contracts/errors';
import { instantiateEmscripten, readCString, wasmFunction } from './emscripten-wasm';
import type { EmscriptenLayout, WasmHeap } from './emscripten-wasm';

/**
 * Streaming PCM16 mono resampler contract. One `Resampler` per stream (it keeps filter state between
 * calls); all resamplers of a process/isolate share one WASM instance through their factory.
 */
export interface Resampler {
  readonly inputRateHz: number;
  readonly outputRateHz: number;
  /** Resample the next piece of the stream; returns a new array with every sample produced so far. */
  process(input: Int16Array): Int16Array;
  /** Zero-allocation variant: writes into `output` and returns the number of samples written. */
  processInto(input: Int16Array, output: Int16Array): number;
  /** Largest output (samples) one call with `inputSamples` samples may produce. */
  maxOutputSamples(inputSamples: number): number;
  destroy(): void;
}

export interface ResamplerFactory {
  create(inputRateHz: number, outputRateHz: number): Resampler;
}

export const MIN_RESAMPLER_RATE_HZ = 8_000;
export const MAX_RESAMPLER_RATE_HZ = 192_000;

/**
 * Quality 7: flat (0.0 dB) to 0.45 × the lower rate and aliasing far below the 16-bit floor, at ~4–12 µs per
 * 20 ms frame with SIMD. Quality 5 droops −1.85 dB at 0.45 × the lower rate when downsampling.
 */
export const SPEEX_QUALITY = 7;

// Samples handed to WASM per call; longer inputs loop. 4096 covers a 20 ms frame at 192 kHz (3840).
const CHUNK_SAMPLES = 4096;

// @echogarden/speex-resampler-wasm@0.3.0, simd and non-simd builds alike.
const SPEEX_LAYOUT: EmscriptenLayout = {
  label: 'speex-resampler',
  imports: { resizeHeap: 'a', memcpy: 'b' },
  exports: { memory: 'c', ctors: 'd' },
};

interface SpeexApi {
  readonly heap: WasmHeap;
  init(channels: number, inRate: number, outRate: number, quality: number, errPtr: number): number;
  processInt(state: number, channel: number, inPtr: number, inLenPtr: number, outPtr: number, outLenPtr: number): number;
  destroy(state: number): number;
  strerror(code: number): number;
  malloc(bytes: number): number;
  free(pointer: number): number;
}

// One WASM instance per compiled module (so per process or isolate): every stream is a small state inside it.
const instances = new WeakMap<WebAssembly.Module, Promise<SpeexApi>>();

/**
 * Streaming resamplers over the speex WASM build (pass the SIMD `.wasm` compiled by the host's loader).
 *
 * No `skip_zeros`: speex then emits a steady ratio of samples from the first call on (a 20 ms frame in gives a
 * 20 ms frame out, e.g. always 320 samples for 48k→16k), with the filter's few ms of delay as leading near-silence.
 * Skipping the zeros would make the first frame of every stream short and break the 20 ms framing downstream.
 */
export interface SpeexResamplerFactory extends ResamplerFactory {
  /** Size of the shared instance's linear memory (it grows with concurrent streams; freed streams are reused). */
  wasmMemoryBytes(): number;
}

export async function createSpeexResamplerFactory(module: WebAssembly.Module): Promise<SpeexResamplerFactory> {
  let api = instances.get(module);
  if (!api) {
    api = loadSpeex(module);
    instances.set(module, api);
    api.catch(() => instances.delete(module));
  }
  const speex = await api;
  return {
    wasmMemoryBytes: () => speex.heap.memory.buffer.byteLength,
    create(inputRateHz, outputRateHz) {
      checkRate('input', inputRateHz);
      checkRate('output', outputRateHz);
      // Speex at 1:1 would still low-pass and delay the signal; equal rates need no filter at all.
      if (inputRateHz === outputRateHz) return createPassThrough(inputRateHz);
      return createSpeexResampler(speex, inputRateHz, outputRateHz);
    },
  };
}

async function loadSpeex(module: WebAssembly.Module): Promise<SpeexApi> {
  const { exports, heap } = await instantiateEmscripten(module, SPEEX_LAYOUT);
  const fn = (name: string, label: string) => wasmFunction(exports, name, `speex ${label}`);
  return {
    heap,
    init: fn('e', 'resampler_init'),
    processInt: fn('m', 'resampler_process_int'),
    destroy: fn('j', 'resampler_destroy'),
    strerror: fn('B', 'resampler_strerror'),
    malloc: fn('C', 'malloc'),
    free: fn('h', 'free'),
  };
}

function checkRate(which: 'input' | 'output', rateHz: number): void {
  if (!Number.isInteger(rateHz) || rateHz < MIN_RESAMPLER_RATE_HZ || rateHz > MAX_RESAMPLER_RATE_HZ) {
    throw new ConfigError(
      'RESAMPLER_RATE',
      `${which} sample rate ${rateHz} Hz is not supported; use a whole number of Hz from ${MIN_RESAMPLER_RATE_HZ} to ${MAX_RESAMPLER_RATE_HZ}`,
    );
  }
}

function maxOutputFor(inputSamples: number, inputRateHz: number, outputRateHz: number): number {
  // Speex emits one sample per output instant inside the consumed input; the carried phase adds at most one.
  return Math.ceil((inputSamples * outputRateHz) / inputRateHz) + 2;
}

function createSpeexResampler(speex: SpeexApi, inputRateHz: number, outputRateHz: number): Resampler {
  const chunkOutCapacity = maxOutputFor(CHUNK_SAMPLES, inputRateHz, outputRateHz);
  // All per-stream memory is allocated once: state, input chunk, output chunk, and [inLen, outLen] as uint32.
  const lenPtr = mallocOrThrow(speex, 8);
  const state = speex.init(1, inputRateHz, outputRateHz, SPEEX_QUALITY, lenPtr);
  if (state === 0) {
    const code = speex.heap.data().getInt32(lenPtr, true);
    const reason = readCString(speex.heap, speex.strerror(code));
    speex.free(lenPtr);
    throw new ConfigError('RESAMPLER_INIT', `speex could not resample ${inputRateHz}→${outputRateHz} Hz: ${reason} (code ${code})`);
  }
  const inPtr = mallocOrThrow(speex, CHUNK_SAMPLES * 2);
  const outPtr = mallocOrThrow(speex, chunkOutCapacity * 2);
  let scratch = new Int16Array(chunkOutCapacity);
  let destroyed = false;

  const maxOutputSamples = (inputSamples: number): number => maxOutputFor(inputSamples, inputRateHz, outputRateHz);

  const processInto = (input: Int16Array, output: Int16Array): number => {
    if (destroyed) throw new Error('RESAMPLER_DESTROYED: this resampler was destroyed');
    let read = 0;
    let written = 0;
    while (read < input.length) {
      const inCount = Math.min(CHUNK_SAMPLES, input.length - read);
      const outCapacity = Math.min(chunkOutCapacity, output.length - written);
      speex.heap.i16().set(input.subarray(read, read + inCount), inPtr >> 1);
      const lens = speex.heap.data();
      lens.setUint32(lenPtr, inCount, true);
      lens.setUint32(lenPtr + 4, outCapacity, true);
      const code = speex.processInt(state, 0, inPtr, lenPtr, outPtr, lenPtr + 4);
      if (code !== 0) throw new Error(`RESAMPLER_PROCESS: speex failed: ${readCString(speex.heap, speex.strerror(code))}`);
      // Views are re-read after the call: the heap may have grown inside it.
      const after = speex.heap.data();
      const consumed = after.getUint32(lenPtr, true);
      const produced = after.getUint32(lenPtr + 4, true);
      output.set(speex.heap.i16().subarray(outPtr >> 1, (outPtr >> 1) + produced), written);
      read += consumed;
      written += produced;
      if (consumed < inCount && written >= output.length) {
        throw new RangeError(`RESAMPLER_OUTPUT_FULL: output holds ${output.length} samples; size it with maxOutputSamples(${input.length})`);
      }
      if (consumed === 0 && produced === 0) throw new Error('RESAMPLER_STALLED: speex consumed no input');
    }
    return written;
  };

  return {
    inputRateHz,
    outputRateHz,
    maxOutputSamples,
    processInto,
    process(input) {
      const needed = maxOutputSamples(input.length);
      if (scratch.length < needed) scratch = new Int16Array(needed);
      return scratch.slice(0, processInto(input, scratch));
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      speex.destroy(state);
      speex.free(inPtr);
      speex.free(outPtr);
      speex.free(lenPtr);
    },
  };
}

function mallocOrThrow(speex: SpeexApi, bytes: number): number {
  const pointer = speex.malloc(bytes);
  if (pointer === 0) throw new Error(`RESAMPLER_OUT_OF_MEMORY: speex WASM could not allocate ${bytes} bytes`);
  return pointer;
}

function createPassThrough(rateHz: number): Resampler {
  let destroyed = false;
  const check = (): void => {
    if (destroyed) throw new Error('RESAMPLER_DESTROYED: this resampler was destroyed');
  };
  return {
    inputRateHz: rateHz,
    outputRateHz: rateHz,
    maxOutputSamples: (inputSamples) => inputSamples,
    process: (input) => (check(), input.slice()),
    processInto(input, output) {
      check();
      if (output.length < input.length) {
        throw new RangeError(`RESAMPLER_OUTPUT_FULL: output holds ${output.length} samples; size it with maxOutputSamples(${input.length})`);
      }
      output.set(input);
      return input.length;
    },
    destroy: () => {
      destroyed = true;
    },
  };
}
