/**
 * The messages between the pool (main thread) and a Flite worker thread (flite-worker.mjs, plain JS). The
 * worker gets `workerData: { workDir }`, a private directory the pool made and removes.
 */
import type { FliteRequest } from './flite-engine.mjs';

export interface SynthesizeMessage extends FliteRequest {
  readonly type: 'synthesize';
  readonly id: number;
}

export type WorkerReply =
  /** Sent once the module is compiled. */
  | { readonly type: 'ready' }
  /** The WAV file Flite wrote, transferred. */
  | { readonly type: 'wav'; readonly id: number; readonly wav: Uint8Array }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };
