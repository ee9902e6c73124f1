import type { VadConfig } from '../config/assistant';
import { ConfigError } from '../contracts/errors';
import type { Vad, VadFactory, VadId } from '../contracts/vad';

/** The VADs a host offers: media nodes have both, the edge (workerd) only `webrtc`. */
export type VadFactories = Partial<Record<VadId, VadFactory>>;

/** Build the VAD an assistant asked for, with a clear error when this host cannot run it. */
export async function createVadFor(config: VadConfig, available: VadFactories): Promise<Vad> {
  const factory = available[config.provider];
  if (!factory) {
    const offered = Object.keys(available).join(', ') || 'none';
    throw new ConfigError(
      'VAD_UNAVAILABLE',
      `the "${config.provider}" VAD is not available here (available: ${offered}); set vad.provider to one of them`,
    );
  }
  return factory({ threshold: config.threshold, webrtcMode: config.webrtcMode });
}
