import type { FliteVoice } from './flite-voices';

export interface FliteRequest {
  readonly text: string;
  readonly voice: FliteVoice;
  /** Flite's `duration_stretch` feature: 1 is normal, 0.5 twice as fast, 2 half as fast. */
  readonly durationStretch: number;
}

export interface FliteEngine {
  /** Synthesises `text` (blocking); returns the WAV file Flite wrote: PCM16 mono, 16 kHz (8 kHz for kal). */
  synthesize(request: FliteRequest): Uint8Array<ArrayBuffer>;
}

export function fliteWasmPath(): string;
export function compileFlite(path?: string): Promise<WebAssembly.Module>;
export function createFliteEngine(module: WebAssembly.Module, workDir: string): FliteEngine;
