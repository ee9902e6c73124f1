import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { registerLlmProviders } from '../../media-node/providers/register-llm';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { registerPhoneFakes } from '../fakes/phone';
import { startOpenAiFake } from '../providers/fakes/llm/openai';
import { heardWords, say, twilioInbound, waitFor } from './twilio-helpers';

const ACCOUNT_SID = `AC${'e'.repeat(32)}`;
const AUTH_TOKEN = 'twilio-knowledge-token';
const FACT = 'The weather today is sunny and warm here.';

let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let openai: Awaited<ReturnType<typeof startOpenAiFake>>;
let apiKey: string;
let assistantId: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'knowledge-e2e-'));
  openai = await startOpenAiFake();
  node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  registerPhoneFakes(registry, () => 'unused');
  // The real OpenAI adapter against its local fake; speech is the tone-word doubles.
  registerLlmProviders(registry);
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

  const api = (path: string, init: RequestInit & { key?: string } = {}) =>
    fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
  apiKey = (await (await api('/v1/projects', { method: 'POST', key: node.generatedAdminKey!, body: JSON.stringify({ name: 'Knowledge' }) })).json()).apiKey.key;
  for (const [name, body] of [
    ['twilio-main', { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }],
    ['openai-main', { provider: 'openai', apiKey: openai.apiKey }],
  ] as const) {
    expect((await api(`/v1/credentials/${name}`, { method: 'PUT', body: JSON.stringify(body) })).status).toBe(201);
  }
  const kb = await (await api('/v1/knowledge-bases', { method: 'POST', body: JSON.stringify({ name: 'Facts' }) })).json();
  const doc = await api(`/v1/knowledge-bases/${kb.id}/documents`, { method: 'POST', body: JSON.stringify({ id: 'weather.md', contentType: 'markdown', content: `# Weather\n\n${FACT}` }) });
  expect(doc.status).toBeLessThan(300);
  const assistant = await api('/v1/assistants', {
    method: 'POST',
    body: JSON.stringify({
      name: 'Grounded',
      prompt: 'Answer from the knowledge base.',
      greeting: 'hello welcome',
      stt: { provider: 'fake-stt' },
      llm: { provider: 'openai', model: 'gpt-fake', endpoint: `${openai.endpoint}/v1`, credential: 'openai-main' },
      tts: { provider: 'fake-tts' },
      vad: { provider: 'webrtc', webrtcMode: 1 },
      idle: { timeoutMs: 0 },
      knowledgeBases: [{ id: kb.id }],
      tools: [{ name: 'knowledge_lookup', action: { type: 'knowledge_lookup' } }],
    }),
  });
  expect(assistant.status, await assistant.clone().text()).toBe(201);
  assistantId = (await assistant.json()).id;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await node?.close();
  await openai?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('one grounded turn end to end (real node, OpenAI adapter against its fake, knowledge in PGlite)', () => {
  it('question → retrieval → LLM with the passage → knowledge_lookup tool → spoken answer; tool call and retrieval metrics persisted', async () => {
    // First the model asks for a lookup, then it answers.
    openai.script({ type: 'reply', toolCalls: [{ id: 'call_1', name: 'knowledge_lookup', arguments: '{"query":"weather today"}' }] }, { type: 'reply', text: 'it is sunny' });
    const hook = await twilioInbound({ url: server.url, publicBaseUrl: server.publicBaseUrl(), assistantId, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    expect(hook.status, hook.text).toBe(200);
    const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 10_000)).toBe(true);
    say(carrier, 'what is the weather today');
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome it is sunny', 15_000), `heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    await carrier.hangUp();

    // The first request carried the retrieved passage; the second the tool's result.
    const bodies = openai.requests.map((r) => JSON.stringify(r.body));
    expect(bodies.length).toBeGreaterThanOrEqual(2);
    expect(bodies[0]).toContain('sunny and warm');
    const second = openai.requests[1]!.body as { messages: { role: string; content: string; tool_call_id?: string }[] };
    const toolMessage = second.messages.find((m) => m.role === 'tool');
    expect(toolMessage?.tool_call_id).toBe('call_1');
    expect(toolMessage?.content).toContain('sunny and warm');

    const contextId = new URL(hook.streamUrl!).pathname.split('/').at(-1)!;
    expect(await waitFor(async () => (await node.stores.callContexts.get(contextId))?.status === 'completed', 5000)).toBe(true);
    await node.writer.flush({ timeoutMs: 5000 });
    const conversationId = (await node.stores.callContexts.get(contextId))!.conversationId;
    const messages = await node.stores.conversations.messages(conversationId);
    expect(messages.some((m) => m.toolCalls?.some((c) => c.name === 'knowledge_lookup'))).toBe(true);
    expect(messages.some((m) => m.role === 'tool' && m.text.includes('sunny'))).toBe(true);
    expect(messages.at(-1)).toMatchObject({ role: 'assistant', text: 'it is sunny' });
    const reply = (await node.stores.conversations.turnMetrics(conversationId)).find((m) => m.kind === 'reply');
    expect(reply?.retrievalHits).toBeGreaterThan(0);
    expect(reply?.retrievalMs).toBeGreaterThanOrEqual(0);
    expect(reply?.providers.llm).toBe('openai');
  }, 60_000);
});
