import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { revAiSttWire } from './stt-wire';

export { decodeRevAi, revAiSttOptionsSchema, revAiSttWire, revAiText } from './stt-wire';

/** The registered `revai` STT (Rev.ai streaming); a cloud provider: no token, no service. */
export function createRevAiStt(deps: SocketProviderDeps): SpeechToText & Registrable {
  return { ...createSocketStt(revAiSttWire, deps), requiresCredential: true };
}
