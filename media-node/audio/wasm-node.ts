import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { WasmModules } from '../../shared/audio/wasm-modules';

const require = createRequire(import.meta.url);

/** Where the pinned audio packages keep their .wasm files (read directly: speex's exports map hides them). */
export function audioWasmPaths(): { speexResampler: string; fvad: string } {
  // speex exports only its JS glue; the .wasm sits next to the SIMD glue file.
  const speexGlue = require.resolve('@echogarden/speex-resampler-wasm/simd');
  const fvadPackage = require.resolve('@echogarden/fvad-wasm/package.json');
  return {
    speexResampler: join(dirname(speexGlue), 'speex-resampler-simd.wasm'),
    fvad: join(dirname(fvadPackage), 'fvad.wasm'),
  };
}

let loaded: Promise<WasmModules> | undefined;

/** Compiles the audio WASM once per process; every caller gets the same modules (and so the same instances). */
export function loadWasmModulesNode(): Promise<WasmModules> {
  loaded ??= compileAll().catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}

async function compileAll(): Promise<WasmModules> {
  const paths = audioWasmPaths();
  const [speexResampler, fvad] = await Promise.all([compile(paths.speexResampler), compile(paths.fvad)]);
  return { speexResampler, fvad };
}

async function compile(path: string): Promise<WebAssembly.Module> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    // readFile never returns shared memory; the cast only narrows @types/node's ArrayBufferLike.
    bytes = (await readFile(path)) as Uint8Array<ArrayBuffer>;
  } catch (error) {
    throw new Error(`AUDIO_WASM_MISSING: cannot read ${path}; run "npm ci" to install the audio WASM packages`, { cause: error });
  }
  return WebAssembly.compile(bytes);
}
