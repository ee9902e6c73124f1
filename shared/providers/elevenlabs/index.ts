import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { createElevenLabsTtsWire } from './tts-wire';

export { createElevenLabsTtsWire, elevenLabsTtsOptionsSchema } from './tts-wire';

/**
 * ElevenLabs streaming TTS on the multi-context socket (`tts.provider: elevenlabs`). The wire keeps
 * per-context alignment state, so each adapter gets its own.
 */
export function createElevenLabsTts(deps: SocketProviderDeps): SocketTts {
  return { ...createSocketTts(createElevenLabsTtsWire(), deps), requiresCredential: true };
}
