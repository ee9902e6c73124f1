/** The Azure Speech adapters (SDK WebSocket protocol) under the provider conformance suites, against the local fake. */
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { createAzureStt, createAzureTts } from '../../shared/providers/azure';
import { describeSttConformance } from './conformance/stt-suite';
import { describeTtsConformance } from './conformance/tts-suite';
import { startAzureFake } from './fakes/azure';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'azure-speech-service (conversation mode, detailed format)',
  startFake: (options) => startAzureFake(options),
  create: ({ replay }) => createAzureStt({ connect, retry, replayMs: replay ? 5000 : 0 }),
  session: { language: 'en-US', options: { region: 'westeurope' } },
  authFailure: 'handshake',
  notes: {
    // The graceful close is a binary `audio` message with an empty body (checked in azure-wire.test.ts), not text.
    closeMessage: '',
    keepAlive: 'no keep-alive message exists; an idle close (no audio) is retryable and the adapter reconnects',
  },
});

describeTtsConformance({
  name: 'azure-speech-service (one turn per piece)',
  startFake: (options) => startAzureFake(options),
  create: () => createAzureTts({ connect, retry }),
  session: { voice: 'en-US-AvaMultilingualNeural', language: 'en-US', options: { region: 'westeurope' } },
  authFailure: 'handshake',
});
