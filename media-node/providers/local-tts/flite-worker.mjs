// The Flite worker thread (started by flite-pool.ts): compiles the WASI module once, then synthesises one
// request at a time; messages queue on the port while a synthesis blocks this thread, never the main one.
// It answers with the WAV bytes; flite-tts.ts decodes and converts them (microseconds per frame).
// Messages: see flite-messages.ts. Plain JavaScript: see flite-engine.mjs for why.
import process from 'node:process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';

// Node 20's WASI frees its native state when a WASI object is collected; a collection that begins while a
// synthesis is inside a WASI call aborts the process (uv_mutex_destroy under ~WASI) or segfaults. Collecting
// right after each synthesis (about 3 ms, in this thread only) means none is ever pending during the next:
// 300 syntheses in a loop aborted 3 runs of 3 without it, and passed 3 of 3 with it.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc');

// node:wasi prints "ExperimentalWarning: WASI is an experimental feature" once per thread on Node 20; known.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === 'string' ? warning : warning?.message;
  if (typeof text === 'string' && text.includes('WASI')) return;
  emitWarning(warning, ...rest);
};
// Imported after the patch above (static imports would load node:wasi first).
const { compileFlite, createFliteEngine } = await import('./flite-engine.mjs');

if (!parentPort || typeof workerData?.workDir !== 'string') throw new Error('flite-worker.mjs runs only as a worker thread of flite-pool.ts');
const port = parentPort;
const engine = createFliteEngine(await compileFlite(), workerData.workDir);
port.postMessage({ type: 'ready' });
port.on('message', (message) => {
  try {
    const wav = engine.synthesize(message);
    port.postMessage({ type: 'wav', id: message.id, wav }, [wav.buffer]);
  } catch (error) {
    port.postMessage({ type: 'failed', id: message.id, message: error instanceof Error ? error.message : String(error) });
  }
  collectGarbage();
});
