/**
 * The compiled audio WASM modules, handed in by each host: shared code never fetches or compiles bytes itself,
 * because workerd forbids compiling from bytes (its `.wasm` imports arrive precompiled) while Node reads files.
 * Loaders: `media-node/audio/wasm-node.ts` (Node) and `edge/wasm-workerd.ts` (workerd).
 */
export interface WasmModules {
  /** `@echogarden/speex-resampler-wasm@0.3.0`, SIMD build (`wasm/speex-resampler-simd.wasm`). */
  readonly speexResampler: WebAssembly.Module;
  /** `@echogarden/fvad-wasm@0.2.0` (`fvad.wasm`). */
  readonly fvad: WebAssembly.Module;
}

export type WasmModuleLoader = () => Promise<WasmModules>;
