import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { createDeepgramFluxStt, createDeepgramNovaStt, createDeepgramStt, createDeepgramTts } from '../../shared/providers/deepgram/index';
import { describeSttConformance } from './conformance/stt-suite';
import { describeTtsConformance } from './conformance/tts-suite';
import { startDeepgramFake } from './fakes/deepgram';

/** Deepgram's adapters against the local Deepgram fake (test/providers/fakes/deepgram.ts). */

const retry = { attempts: 3, baseDelayMs: 20 };
const deps = (replay = true) => ({ connect: createWsSocketFactory(), retry, ...(replay ? {} : { replayMs: 0 }) });

describeSttConformance({
  name: 'deepgram nova (/v1/listen)',
  startFake: startDeepgramFake,
  // The suite's fake closes after 600 ms idle; Deepgram's real 10 s gets the default 4 s keep-alive.
  create: ({ replay }) => createDeepgramNovaStt(deps(replay), { keepAliveIntervalMs: 200 }),
  session: { model: 'nova-3', language: 'en-US', options: {} },
  authFailure: 'handshake',
  notes: { closeMessage: 'CloseStream' },
});

describeSttConformance({
  name: 'deepgram flux (/v2/listen)',
  startFake: startDeepgramFake,
  create: ({ replay }) => createDeepgramFluxStt(deps(replay)),
  session: { model: 'flux-general-en', language: 'en-US', options: {} },
  authFailure: 'handshake',
  // No KeepAlive (undocumented for Flux): the fake's idle close (1011 NET-0001) is survived by reconnecting.
  // No close message: Flux's CloseStream yields no final, so the socket is closed with 1000 at once.
  notes: { keepAlive: 'reconnects after an idle close', closeMessage: '' },
});

describeTtsConformance({
  name: 'deepgram aura (/v1/speak)',
  startFake: startDeepgramFake,
  create: () => createDeepgramTts(deps()),
  session: { model: 'aura-2-thalia-en', language: 'en-US', options: {} },
  authFailure: 'handshake',
});

describe('deepgram: the registered STT routes by model', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it('flux-* models go to /v2/listen, others to /v1/listen, with one options schema', async () => {
    const fake = await startDeepgramFake();
    closers.push(() => fake.close());
    const stt = createDeepgramStt(deps());
    expect(stt.id).toBe('deepgram');
    expect(stt.optionsSchema?.safeParse({ eotThreshold: 0.8, endpointingMs: false }).success).toBe(true);
    for (const model of ['flux-general-en', 'nova-3', undefined]) {
      const abort = new AbortController();
      const session = await stt.open({ model, language: 'en-US', options: {}, endpoint: fake.endpoint, apiKey: fake.apiKey, signal: abort.signal }, () => {});
      closers.push(async () => {
        await session.close();
        abort.abort();
      });
    }
    expect(fake.connections.map((c) => c.path)).toEqual(['/v2/listen', '/v1/listen', '/v1/listen']);
    expect(new URL(fake.connections[2]!.url, 'ws://x').searchParams.get('model')).toBe('nova-3');
  });
});
