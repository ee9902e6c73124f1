import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import type { SttWire } from '../streaming/stt-wire';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { deepgramFluxWire, deepgramSttWire, isFluxModel } from './stt-wire';
import { deepgramTtsWire } from './tts-wire';

export { deepgramFluxWire, deepgramSttWire } from './stt-wire';
export { deepgramTtsWire } from './tts-wire';

export interface DeepgramSttTuning {
  /** Nova KeepAlive interval while no audio flows (default 4000 ms; Deepgram closes after 10 s). Tests shorten it. */
  readonly keepAliveIntervalMs?: number;
}

function novaWire(tuning: DeepgramSttTuning | undefined): SttWire {
  const keepAlive = deepgramSttWire.keepAliveMessage;
  if (!tuning?.keepAliveIntervalMs || !keepAlive) return deepgramSttWire;
  return { ...deepgramSttWire, keepAliveMessage: { intervalMs: tuning.keepAliveIntervalMs, message: keepAlive.message } };
}

/** Nova live (/v1/listen) alone. */
export function createDeepgramNovaStt(deps: SocketProviderDeps, tuning?: DeepgramSttTuning): SpeechToText & Registrable {
  return createSocketStt(novaWire(tuning), deps);
}

/** Flux (/v2/listen) alone: a model end of turn. */
export function createDeepgramFluxStt(deps: SocketProviderDeps): SpeechToText & Registrable {
  return createSocketStt(deepgramFluxWire, deps);
}

/**
 * The registered `deepgram` STT: the block's model picks the endpoint (`flux-*` → Flux on /v2/listen,
 * anything else → Nova on /v1/listen). Capabilities are Nova's (the default model); Flux models add the
 * provider's `endOfTurn` events, which the engine honours whenever they arrive.
 */
export function createDeepgramStt(deps: SocketProviderDeps, tuning?: DeepgramSttTuning): SpeechToText & Registrable {
  const nova = createDeepgramNovaStt(deps, tuning);
  const flux = createDeepgramFluxStt(deps);
  return {
    id: 'deepgram',
    requiresCredential: true,
    capabilities: nova.capabilities,
    optionsSchema: deepgramSttWire.optionsSchema,
    open: (options, onEvent) => (isFluxModel(options.model) ? flux : nova).open(options, onEvent),
  };
}

/** The registered `deepgram` TTS (Aura over /v1/speak). */
export function createDeepgramTts(deps: SocketProviderDeps): SocketTts {
  return { ...createSocketTts(deepgramTtsWire, deps), requiresCredential: true };
}
