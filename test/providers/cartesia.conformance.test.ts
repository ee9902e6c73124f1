/** Cartesia adapters (Ink STT, Sonic TTS) under the provider conformance suites, against the local fake. */
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { createCartesiaStt, createCartesiaTts } from '../../shared/providers/cartesia';
import { describeSttConformance } from './conformance/stt-suite';
import { describeTtsConformance } from './conformance/tts-suite';
import { startCartesiaFake } from './fakes/cartesia';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'cartesia (Ink, /stt/websocket)',
  startFake: (options) => startCartesiaFake(options),
  create: ({ replay }) => createCartesiaStt({ connect, retry, replayMs: replay ? 5000 : 0 }),
  session: { model: 'ink-whisper', language: 'en-US', options: {} },
  authFailure: 'handshake',
  notes: {
    closeMessage: 'done',
    keepAlive: 'no keep-alive message exists; the server closes after 20 s without audio and the adapter reconnects (retryable close)',
  },
});

describeTtsConformance({
  name: 'cartesia (Sonic, /tts/websocket contexts)',
  startFake: (options) => startCartesiaFake(options),
  create: () => createCartesiaTts({ connect, retry }),
  session: { voice: 'a0e99841-438c-4a64-b679-ae501e7d6091', model: 'sonic-2', language: 'en', options: {} },
  authFailure: 'handshake',
});
