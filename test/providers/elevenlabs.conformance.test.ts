/** The ElevenLabs adapter (multi-context stream-input) under the TTS conformance suite, against the local fake. */
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { createElevenLabsTts } from '../../shared/providers/elevenlabs';
import { describeTtsConformance } from './conformance/tts-suite';
import { startElevenLabsFake } from './fakes/elevenlabs';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };
const session = { voice: 'voice-1', model: 'eleven_flash_v2_5', language: 'en', options: {} };

describeTtsConformance({
  name: 'elevenlabs (bad key refused at the upgrade)',
  startFake: (options) => startElevenLabsFake(options),
  create: () => createElevenLabsTts({ connect, retry }),
  session,
  authFailure: 'handshake',
});

describeTtsConformance({
  name: 'elevenlabs (bad key answered by an error frame + 1008)',
  startFake: (options) => startElevenLabsFake({ ...options, authFailure: 'frame' }),
  create: () => createElevenLabsTts({ connect, retry }),
  session,
  authFailure: 'frame',
});
