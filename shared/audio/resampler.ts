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

// IMPLEMENTATION FOLLOWS (speex WASM): being written.
