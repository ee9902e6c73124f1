/**
 * Just enough of an Emscripten runtime to run the speex and fvad builds without their JS glue ("Fix A"):
 * the glue sniffs its host and breaks in workerd, and workerd cannot compile from bytes, so every host hands
 * us a compiled `WebAssembly.Module` and we instantiate it here. The import/export names are the minifier's
 * letters of the exact pinned package versions; `wasmFunction` fails loudly if a version bump moved them.
 */

/** Views over linear memory, rebuilt whenever `memory.grow` has replaced the buffer (old views go stale). */
export interface WasmHeap {
  readonly memory: WebAssembly.Memory;
  i16(): Int16Array;
  u8(): Uint8Array;
  /** For reading and writing 32-bit values by byte address (little-endian, like WASM itself). */
  data(): DataView;
}

export function createWasmHeap(memory: WebAssembly.Memory): WasmHeap {
  let buffer = memory.buffer;
  let i16 = new Int16Array(buffer);
  let u8 = new Uint8Array(buffer);
  let data = new DataView(buffer);
  const fresh = (): void => {
    if (memory.buffer === buffer) return;
    buffer = memory.buffer;
    i16 = new Int16Array(buffer);
    u8 = new Uint8Array(buffer);
    data = new DataView(buffer);
  };
  return {
    memory,
    i16: () => (fresh(), i16),
    u8: () => (fresh(), u8),
    data: () => (fresh(), data),
  };
}

export type WasmFunction = (...args: number[]) => number;

export function wasmFunction(exports: WebAssembly.Exports, name: string, label: string): WasmFunction {
  const value = exports[name];
  if (typeof value !== 'function') {
    throw new Error(`WASM_EXPORT_MISSING: export "${name}" (${label}) is not a function; the pinned package version changed its export map`);
  }
  return value as WasmFunction;
}

/** Which minified names this build uses for its imports (all in module "a") and its memory/ctors exports. */
export interface EmscriptenLayout {
  readonly label: string;
  readonly imports: { readonly resizeHeap: string; readonly memcpy?: string; readonly assertFail?: string };
  readonly exports: { readonly memory: string; readonly ctors: string };
}

export interface EmscriptenInstance {
  readonly exports: WebAssembly.Exports;
  readonly heap: WasmHeap;
}

// Emscripten's own ceiling for these builds (getHeapMax in the glue).
const MAX_HEAP_BYTES = 2 ** 31;
const PAGE_BYTES = 65_536;

export async function instantiateEmscripten(module: WebAssembly.Module, layout: EmscriptenLayout): Promise<EmscriptenInstance> {
  // The imports run only after instantiation, when `heap` is set.
  const bound: { heap?: WasmHeap } = {};
  const liveHeap = (): WasmHeap => {
    if (!bound.heap) throw new Error(`${layout.label}: WASM called an import during instantiation`);
    return bound.heap;
  };
  const env: Record<string, WasmFunction> = {
    [layout.imports.resizeHeap]: (requestedBytes) => growHeap(liveHeap().memory, requestedBytes >>> 0),
  };
  if (layout.imports.memcpy) {
    const name = layout.imports.memcpy;
    env[name] = (dest, src, count) => (liveHeap().u8().copyWithin(dest, src, src + count), 0);
  }
  if (layout.imports.assertFail) {
    env[layout.imports.assertFail] = (condition, file, line) => {
      const h = liveHeap();
      throw new Error(`${layout.label}: WASM assertion failed: ${readCString(h, condition)} at ${readCString(h, file)}:${line}`);
    };
  }
  const instance = await WebAssembly.instantiate(module, { a: env });
  const memory = instance.exports[layout.exports.memory];
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error(`WASM_EXPORT_MISSING: export "${layout.exports.memory}" (${layout.label} memory) is not a memory`);
  }
  const heap = createWasmHeap(memory);
  bound.heap = heap;
  wasmFunction(instance.exports, layout.exports.ctors, `${layout.label} ctors`)();
  return { exports: instance.exports, heap };
}

/** emscripten_resize_heap: grow to at least `requestedBytes` (with 20 % headroom to avoid growing per call). */
function growHeap(memory: WebAssembly.Memory, requestedBytes: number): number {
  const currentBytes = memory.buffer.byteLength;
  if (requestedBytes <= currentBytes) return 1;
  if (requestedBytes > MAX_HEAP_BYTES) return 0;
  const roomyBytes = Math.min(MAX_HEAP_BYTES, Math.max(requestedBytes, Math.ceil(currentBytes * 1.2)));
  for (const targetBytes of [roomyBytes, requestedBytes]) {
    try {
      memory.grow(Math.ceil((targetBytes - currentBytes) / PAGE_BYTES));
      return 1;
    } catch {
      // The host refused that much; retry with exactly what was asked for.
    }
  }
  return 0;
}

export function readCString(heap: WasmHeap, pointer: number): string {
  if (pointer === 0) return '';
  const bytes = heap.u8();
  let end = pointer;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(pointer, end));
}
