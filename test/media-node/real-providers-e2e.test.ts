import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { registerSpeechProviders } from '../../media-node/providers/register';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { systemClock } from '../../shared/contracts/clock';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { createFakeLlm, lastUserText } from '../fakes/llm';
import { startCartesiaFake, type CartesiaFakeServer } from '../providers/fakes/cartesia';
import { startDeepgramFake, type DeepgramFakeServer } from '../providers/fakes/deepgram';
import { heardWords, say, twilioInbound, waitFor } from './twilio-helpers';

const ACCOUNT_SID = `AC${'d'.repeat(32)}`;
const AUTH_TOKEN = 'twilio-real-providers-token';
const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm and there was a story';

let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let deepgram: DeepgramFakeServer;
let cartesia: CartesiaFakeServer;
let closeProviders: () => Promise<void>;
let apiKey: string;
let assistantId: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'real-providers-'));
  [deepgram, cartesia] = await Promise.all([startDeepgramFake(), startCartesiaFake()]);
  node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  // The real adapters (ws sockets, shared streaming base), only the LLM is a double.
  closeProviders = await registerSpeechProviders(registry, { local: false });
  registry.llm.register(createFakeLlm({ clock: systemClock, firstTokenDelayMs: 50, tokenDelayMs: 10, reply: (m) => (lastUserText(m).includes('weather') ? 'it is sunny' : lastUserText(m).includes('story') ? STORY : 'okay sure') }).llm);
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

  const api = (path: string, init: RequestInit & { key?: string } = {}) =>
    fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
  apiKey = (await (await api('/v1/projects', { method: 'POST', key: node.generatedAdminKey!, body: JSON.stringify({ name: 'Real providers' }) })).json()).apiKey.key;
  const credentials = [
    ['twilio-main', { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }],
    // A revoked Deepgram key for STT (the fake answers 401), a good one for TTS.
    ['deepgram-revoked', { provider: 'deepgram', apiKey: 'revoked-key' }],
    ['deepgram-good', { provider: 'deepgram', apiKey: deepgram.apiKey }],
    ['cartesia-main', { provider: 'cartesia', apiKey: cartesia.apiKey }],
  ] as const;
  for (const [name, body] of credentials) expect((await api(`/v1/credentials/${name}`, { method: 'PUT', body: JSON.stringify(body) })).status).toBe(201);
  const assistant = await api('/v1/assistants', {
    method: 'POST',
    body: JSON.stringify({
      name: 'Real adapters',
      prompt: 'You answer the phone.',
      greeting: 'hello welcome',
      stt: { provider: 'deepgram', endpoint: deepgram.endpoint, credential: 'deepgram-revoked', fallbacks: [{ provider: 'cartesia', endpoint: cartesia.endpoint, credential: 'cartesia-main' }] },
      llm: { provider: 'fake-llm' },
      tts: { provider: 'deepgram', endpoint: deepgram.endpoint, credential: 'deepgram-good' },
      vad: { provider: 'webrtc', webrtcMode: 1 },
      idle: { timeoutMs: 0 },
    }),
  });
  expect(assistant.status).toBe(201);
  assistantId = (await assistant.json()).id;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await closeProviders?.();
  await node?.close();
  await Promise.all([deepgram?.close(), cartesia?.close()]);
  await rm(dir, { recursive: true, force: true });
});

describe('a Twilio call through the real speech adapters (local vendor fakes)', () => {
  it('Deepgram STT refuses the key, the call falls back to Cartesia STT and goes on; Aura speaks μ-law straight to Twilio', async () => {
    const hook = await twilioInbound({ url: server.url, publicBaseUrl: server.publicBaseUrl(), assistantId, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    expect(hook.status).toBe(200);
    const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    say(carrier, 'what is the weather today');
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome it is sunny', 10_000), `answer; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    await carrier.hangUp();

    // Deepgram listen was refused (401) and never retried per attempt; Cartesia took over; Aura asked for μ-law 8 kHz.
    const listens = deepgram.connections.filter((c) => c.path === '/v1/listen');
    expect(listens.length).toBeGreaterThan(0);
    expect(listens.every((c) => c.refusedStatus === 401)).toBe(true);
    const speak = deepgram.connections.filter((c) => c.path === '/v1/speak' && c.refusedStatus === undefined);
    expect(speak.length).toBeGreaterThan(0);
    expect(speak[0]!.url).toContain('encoding=mulaw');
    expect(speak[0]!.url).toContain('sample_rate=8000');
    expect(cartesia.connections.filter((c) => c.url.startsWith('/stt/')).length).toBe(1);

    const contextId = new URL(hook.streamUrl!).pathname.split('/').at(-1)!;
    expect(await waitFor(async () => (await node.stores.callContexts.get(contextId))?.status === 'completed', 5000)).toBe(true);
    await node.writer.flush({ timeoutMs: 5000 });
    const context = await node.stores.callContexts.get(contextId);
    const messages = await node.stores.conversations.messages(context!.conversationId);
    expect(messages.map((m) => `${m.role}: ${m.text}`)).toEqual(['assistant: hello welcome', 'user: what is the weather today', 'assistant: it is sunny']);
  }, 60_000);

  it('a barge-in cancels the Aura utterance in place (Clear on the same socket) and history keeps only what was heard', async () => {
    const hook = await twilioInbound({ url: server.url, publicBaseUrl: server.publicBaseUrl(), assistantId, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 10_000)).toBe(true);
    const speakBefore = deepgram.connections.filter((c) => c.path === '/v1/speak').length;
    say(carrier, 'tell me a story');
    expect(await waitFor(() => heardWords(carrier).length >= 2 + 4, 10_000), `story; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    const clears = carrier.stats.clears;
    say(carrier, 'okay stop');
    expect(await waitFor(() => carrier.stats.clears > clears, 5000), 'Twilio cleared').toBe(true);
    expect(await waitFor(() => heardWords(carrier).join(' ').endsWith('okay sure'), 10_000), `after the barge-in; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    await carrier.hangUp();

    // The story's Aura socket was told to Clear; the reply after it needed no new handshake.
    const sent = deepgram.connections.filter((c) => c.path === '/v1/speak').flatMap((c) => c.received.filter((m): m is string => typeof m === 'string'));
    expect(sent.some((m) => m.includes('"Clear"'))).toBe(true);
    expect(deepgram.connections.filter((c) => c.path === '/v1/speak').length).toBe(speakBefore);

    const contextId = new URL(hook.streamUrl!).pathname.split('/').at(-1)!;
    expect(await waitFor(async () => (await node.stores.callContexts.get(contextId))?.status === 'completed', 5000)).toBe(true);
    await node.writer.flush({ timeoutMs: 5000 });
    const messages = await node.stores.conversations.messages((await node.stores.callContexts.get(contextId))!.conversationId);
    const story = messages.find((m) => m.role === 'assistant' && m.text.startsWith('once'));
    expect(story?.interrupted).toBe(true);
    expect(story, messages.map((m) => m.text).join(' | ')).toBeDefined();
    expect(story!.heardText!.split(' ').length).toBeLessThan(STORY.split(' ').length);
    expect(STORY.startsWith(story!.heardText!), `heard text: "${story!.heardText}"`).toBe(true);
  }, 60_000);
});
