import type { ErrorKind } from '../../../shared/contracts/errors';
import type { ProviderMetricsSink } from '../../../shared/providers/streaming/metrics';

export interface RecordedMetrics {
  readonly connected: number[];
  readonly firstResult: { kind: string; ms: number }[];
  readonly reconnected: string[];
  readonly errors: ErrorKind[];
}

export function recordingMetrics(): { sink: ProviderMetricsSink; calls: RecordedMetrics } {
  const calls: RecordedMetrics = { connected: [], firstResult: [], reconnected: [], errors: [] };
  return {
    calls,
    sink: {
      connected: (_p, _s, ms) => calls.connected.push(ms),
      firstResult: (_p, _s, kind, ms) => calls.firstResult.push({ kind, ms }),
      reconnected: (_p, _s, reason) => calls.reconnected.push(reason),
      error: (_p, _s, kind) => calls.errors.push(kind),
    },
  };
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function binaryBytes(frames: readonly (string | Uint8Array)[]): number {
  return frames.reduce((n, f) => n + (typeof f === 'string' ? 0 : f.byteLength), 0);
}

export function textFrames(frames: readonly (string | Uint8Array)[], type: string): number {
  return frames.filter((f) => typeof f === 'string' && f.includes(`"type":"${type}"`)).length;
}
