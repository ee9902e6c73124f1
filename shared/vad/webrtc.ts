import { ConfigError } from '../contracts/errors';
import type { Vad, VadFactory, VadOptions } from '../contracts/vad';
import { instantiateEmscripten, wasmFunction } from '../audio/emscripten-wasm';
import type { EmscriptenLayout, WasmHeap } from '../audio/emscripten-wasm';

/** The WebRTC VAD (libfvad) runs on the pipeline rate; it takes 10, 20 or 30 ms frames. */
export const WEBRTC_VAD_RATE_HZ = 16_000;
const FRAME_SAMPLES = [160, 320, 480] as const;
const MAX_FRAME_SAMPLES = 480;

// @echogarden/fvad-wasm@0.2.0.
const FVAD_LAYOUT: EmscriptenLayout = {
  label: 'fvad',
  imports: { assertFail: 'a', resizeHeap: 'b' },
  exports: { memory: 'c', ctors: 'd' },
};

interface FvadApi {
  readonly heap: WasmHeap;
  create(): number;
  free(handle: number): number;
  reset(handle: number): number;
  setMode(handle: number, mode: number): number;
  setSampleRate(handle: number, rateHz: number): number;
  process(handle: number, framePtr: number, samples: number): number;
  malloc(bytes: number): number;
  freeMemory(pointer: number): number;
}

// One WASM instance per compiled module; each Vad is a small fvad handle inside it.
const instances = new WeakMap<WebAssembly.Module, Promise<FvadApi>>();

/** The `webrtc` Vad: per 20 ms frame, probability 1 (voice) or 0 (no voice). `options.threshold` is the caller's. */
export async function createWebRtcVadFactory(module: WebAssembly.Module): Promise<VadFactory> {
  let api = instances.get(module);
  if (!api) {
    api = loadFvad(module);
    instances.set(module, api);
    api.catch(() => instances.delete(module));
  }
  const fvad = await api;
  return async (options) => createWebRtcVad(fvad, options);
}

async function loadFvad(module: WebAssembly.Module): Promise<FvadApi> {
  const { exports, heap } = await instantiateEmscripten(module, FVAD_LAYOUT);
  const fn = (name: string, label: string) => wasmFunction(exports, name, `fvad ${label}`);
  return {
    heap,
    create: fn('e', 'fvad_new'),
    malloc: fn('f', 'malloc'),
    reset: fn('g', 'fvad_reset'),
    free: fn('h', 'fvad_free'),
    freeMemory: fn('i', 'free'),
    setMode: fn('j', 'fvad_set_mode'),
    setSampleRate: fn('k', 'fvad_set_sample_rate'),
    process: fn('l', 'fvad_process'),
  };
}

function createWebRtcVad(fvad: FvadApi, options: VadOptions): Vad {
  const mode = options.webrtcMode;
  if (!Number.isInteger(mode) || mode < 0 || mode > 3) {
    throw new ConfigError('VAD_WEBRTC_MODE', `webrtcMode must be 0, 1, 2 or 3 (3 is the most aggressive), got ${String(mode)}`);
  }
  const handle = fvad.create();
  const framePtr = handle === 0 ? 0 : fvad.malloc(MAX_FRAME_SAMPLES * 2);
  if (handle === 0 || framePtr === 0) {
    if (handle !== 0) fvad.free(handle);
    throw new Error('VAD_OUT_OF_MEMORY: fvad WASM could not allocate a detector');
  }
  // fvad_reset also drops the rate and mode back to 8 kHz / mode 0, so both are (re)applied here.
  const configure = (): void => {
    if (fvad.setSampleRate(handle, WEBRTC_VAD_RATE_HZ) !== 0 || fvad.setMode(handle, mode) !== 0) {
      throw new Error(`VAD_WEBRTC_CONFIG: fvad rejected ${WEBRTC_VAD_RATE_HZ} Hz / mode ${mode}`);
    }
  };
  configure();
  let closed = false;

  return {
    id: 'webrtc',
    process(pcm) {
      if (closed) throw new Error('VAD_CLOSED: this webrtc VAD was closed');
      if (!(FRAME_SAMPLES as readonly number[]).includes(pcm.length)) {
        throw new RangeError(
          `VAD_FRAME_LENGTH: the webrtc VAD takes 10, 20 or 30 ms of 16 kHz PCM16 (160, 320 or 480 samples), got ${pcm.length}`,
        );
      }
      fvad.heap.i16().set(pcm, framePtr >> 1);
      const voiced = fvad.process(handle, framePtr, pcm.length);
      if (voiced < 0) throw new Error(`VAD_WEBRTC_PROCESS: fvad rejected a ${pcm.length}-sample frame`);
      return voiced === 1 ? 1 : 0;
    },
    reset() {
      if (closed) return;
      fvad.reset(handle);
      configure();
    },
    close() {
      if (closed) return;
      closed = true;
      fvad.free(handle);
      fvad.freeMemory(framePtr);
    },
  };
}
