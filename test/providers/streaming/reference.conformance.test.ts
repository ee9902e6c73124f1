/**
 * The conformance suites' self-test: they run against the reference protocol (its own wire and fake), in the
 * variants that take each branch of the suites. The negative controls inside the suites prove the cases can
 * fail (e.g. without replay a drop loses words).
 */
import { createWsSocketFactory } from '../../../media-node/providers/ws-socket';
import { createSocketStt } from '../../../shared/providers/streaming/stt-socket';
import { createSocketTts } from '../../../shared/providers/streaming/tts-socket';
import { describeSttConformance } from '../conformance/stt-suite';
import { describeTtsConformance } from '../conformance/tts-suite';
import { referenceFakeStarter } from '../fakes/reference';
import { referenceSttWire, referenceTtsWire } from './reference-wire';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'reference (interims, finalize, keep-alive, refused upgrade)',
  startFake: referenceFakeStarter(),
  create: ({ replay }) => createSocketStt(referenceSttWire(), { connect, retry, replayMs: replay ? 5000 : 0 }),
  session: { language: 'en', options: {} },
  authFailure: 'handshake',
  notes: { closeMessage: '"type":"close"' },
});

describeSttConformance({
  name: 'reference (finals only, no finalize, no keep-alive, no audio end, auth error frame)',
  startFake: referenceFakeStarter({ authMode: 'frame' }),
  create: ({ replay }) =>
    createSocketStt(referenceSttWire({ interim: false, finalize: false, keepAliveMs: 0, audioEnd: false, throwOnMalformed: true }), {
      connect,
      retry,
      replayMs: replay ? 5000 : 0,
    }),
  session: { language: 'en', options: {} },
  authFailure: 'frame',
});

describeTtsConformance({
  name: 'reference (one utterance per socket, binary audio, cancel in place)',
  startFake: referenceFakeStarter(),
  create: () => createSocketTts(referenceTtsWire(), { connect, retry }),
  session: { voice: 'tone', language: 'en', options: {} },
  authFailure: 'handshake',
});

describeTtsConformance({
  name: 'reference (multiplexed contexts, JSON audio, auth error frame)',
  startFake: referenceFakeStarter({ authMode: 'frame' }),
  create: () => createSocketTts(referenceTtsWire({ multiplexed: true }), { connect, retry }),
  session: { voice: 'tone', language: 'en', options: {} },
  authFailure: 'frame',
});

describeTtsConformance({
  name: 'reference (cancel closes the socket)',
  startFake: referenceFakeStarter(),
  create: () => createSocketTts(referenceTtsWire({ cancel: 'close-socket' }), { connect, retry }),
  session: { voice: 'tone', language: 'en', options: {} },
  authFailure: 'handshake',
});
