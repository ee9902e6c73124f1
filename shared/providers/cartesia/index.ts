import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { cartesiaSttWire } from './stt-wire';
import { cartesiaTtsWire } from './tts-wire';

export { cartesiaSttOptionsSchema, cartesiaSttWire } from './stt-wire';
export { cartesiaTtsOptionsSchema, cartesiaTtsWire } from './tts-wire';

/** Cartesia Ink streaming STT (`stt.provider: cartesia`); a cloud provider: no key, no service. */
export function createCartesiaStt(deps: SocketProviderDeps): SpeechToText & Registrable {
  return { ...createSocketStt(cartesiaSttWire, deps), requiresCredential: true };
}

/** Cartesia Sonic streaming TTS (`tts.provider: cartesia`). */
export function createCartesiaTts(deps: SocketProviderDeps): SocketTts {
  return { ...createSocketTts(cartesiaTtsWire, deps), requiresCredential: true };
}
