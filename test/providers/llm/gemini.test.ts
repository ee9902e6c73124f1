import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGeminiLlm, toGeminiSchema } from '../../../shared/providers/llm/gemini';
import { startGeminiFake, type GeminiFake } from '../fakes/llm/gemini';
import { collect, collectUntilError, llmAdapterSuite, request, WEATHER_TOOL } from './suite';

llmAdapterSuite({
  name: 'gemini',
  start: () => startGeminiFake(),
  create: (deps) => createGeminiLlm(deps),
  authMessage: /API key not valid/,
  rateLimitBody: JSON.stringify({ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } }),
});

describe('gemini schema conversion', () => {
  it('keeps only the Schema keywords Gemini accepts; a null type becomes nullable', () => {
    expect(toGeminiSchema(WEATHER_TOOL.parameters)).toEqual({
      type: 'object',
      properties: { city: { type: 'string', description: 'City name' }, unit: { type: 'string', nullable: true, enum: ['celsius', 'fahrenheit', null] } },
      required: ['city'],
    });
  });
});

describe('gemini request shape and variants', () => {
  let fake: GeminiFake;
  beforeAll(async () => {
    fake = await startGeminiFake();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('systemInstruction, role model, functionCall/functionResponse parts, tools without rejected keywords', async () => {
    await collect(createGeminiLlm().stream(request(fake, { temperature: 0.5, maxTokens: 100, model: 'gemini-2.5-flash', options: { thinkingBudget: 0 } }), new AbortController().signal));
    const recorded = fake.requests.at(-1)!;
    expect(recorded.url).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(recorded.headers['x-goog-api-key']).toBe(fake.apiKey);
    const body = recorded.body as Record<string, unknown>;
    expect(body.systemInstruction).toEqual({ parts: [{ text: 'You are a helpful voice assistant.' }] });
    expect(body.generationConfig).toEqual({ temperature: 0.5, maxOutputTokens: 100, thinkingConfig: { thinkingBudget: 0 } });
    expect(body.contents).toEqual([
      { role: 'model', parts: [{ text: 'Hi! How can I help?' }] },
      { role: 'user', parts: [{ text: 'What is the weather in São Paulo?' }] },
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'São Paulo' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temperature: 24, sky: 'clear' } } }] },
      { role: 'model', parts: [{ text: 'It is 24 degrees and clear.' }] },
      { role: 'user', parts: [{ text: 'And tomorrow?' }] },
    ]);
    const declarations = (body.tools as { functionDeclarations: Record<string, unknown>[] }[])[0]!.functionDeclarations;
    expect(declarations[1]).toEqual({ name: 'end_call', description: 'Hang up' });
  });

  it('function calls get stable ids: the same request gives the same ids', async () => {
    const script = { type: 'reply' as const, toolCalls: [{ name: 'get_weather', arguments: '{"city":"Lyon"}' }, { name: 'end_call', arguments: '{}' }] };
    fake.script(script, script);
    const ids = async () => (await collect(createGeminiLlm().stream(request(fake), new AbortController().signal))).flatMap((d) => (d.type === 'toolCall' ? [d.call.id] : []));
    const first = await ids();
    expect(first).toEqual(['gemini_7_0', 'gemini_7_1']);
    expect(await ids()).toEqual(first);
  });

  it('a plain-text tool result is wrapped as {result}', async () => {
    const messages = [
      { role: 'user' as const, content: 'Hang up' },
      { role: 'assistant' as const, content: '', toolCalls: [{ id: 'gemini_1_0', name: 'end_call', arguments: '{}' }] },
      { role: 'tool' as const, content: 'call ended', toolCallId: 'gemini_1_0' },
    ];
    await collect(createGeminiLlm().stream(request(fake, { messages }), new AbortController().signal));
    const body = fake.requests.at(-1)!.body as { contents: unknown[] };
    expect(body.contents[2]).toEqual({ role: 'user', parts: [{ functionResponse: { name: 'end_call', response: { result: 'call ended' } } }] });
  });

  it('maps finish reasons: MAX_TOKENS → length, SAFETY → other', async () => {
    fake.script({ type: 'reply', text: 'Cut', finish: 'MAX_TOKENS' }, { type: 'reply', text: 'Hmm', finish: 'SAFETY' });
    expect((await collect(createGeminiLlm().stream(request(fake), new AbortController().signal))).at(-1)).toEqual({ type: 'done', reason: 'length' });
    expect((await collect(createGeminiLlm().stream(request(fake), new AbortController().signal))).at(-1)).toEqual({ type: 'done', reason: 'other' });
  });

  it('401 and 403 refusals are auth errors too', async () => {
    for (const status of [401, 403] as const) {
      const strict = await startGeminiFake({ authFailureStatus: status });
      try {
        const { error } = await collectUntilError(createGeminiLlm().stream(request(strict, { apiKey: 'nope' }), new AbortController().signal));
        expect(error).toMatchObject({ kind: 'auth', retryable: false });
      } finally {
        await strict.close();
      }
    }
  });
});
