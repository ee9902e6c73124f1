// workerd only runs precompiled WASM: these imports become WebAssembly.Module objects (wrangler's default
// CompiledWasm rule, or miniflare's modulesRules). speex's exports map hides its .wasm, hence the relative path.
import speexResampler from '../node_modules/@echogarden/speex-resampler-wasm/wasm/speex-resampler-simd.wasm';
import fvad from '../node_modules/@echogarden/fvad-wasm/fvad.wasm';
import type { WasmModules } from '../shared/audio/wasm-modules';

const modules: WasmModules = { speexResampler, fvad };

export function loadWasmModulesWorkerd(): Promise<WasmModules> {
  return Promise.resolve(modules);
}
