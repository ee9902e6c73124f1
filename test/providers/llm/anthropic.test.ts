import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnthropicLlm } from '../../../shared/providers/llm/anthropic';
import { startAnthropicFake, type AnthropicFake } from '../fakes/llm/anthropic';
import { collect, collectUntilError, llmAdapterSuite, request } from './suite';

llmAdapterSuite({
  name: 'anthropic',
  start: () => startAnthropicFake(),
  create: (deps) => createAnthropicLlm(deps),
  authMessage: /invalid x-api-key/,
  rateLimitBody: JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' } }),
});

describe('anthropic request shape and variants', () => {
  let fake: AnthropicFake;
  beforeAll(async () => {
    fake = await startAnthropicFake();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('system top-level, a user turn first, roles merged, tool_use and tool_result blocks, headers', async () => {
    await collect(createAnthropicLlm().stream(request(fake, { maxTokens: 300 }), new AbortController().signal));
    const recorded = fake.requests.at(-1)!;
    expect(recorded.headers['x-api-key']).toBe(fake.apiKey);
    expect(recorded.headers['anthropic-version']).toBe('2023-06-01');
    const body = recorded.body as Record<string, unknown>;
    expect(body).toMatchObject({ system: 'You are a helpful voice assistant.', max_tokens: 300, stream: true });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: '(The call has started.)' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Hi! How can I help?' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is the weather in São Paulo?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'São Paulo' } }] },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '{"temperature":24,"sky":"clear"}' }],
      },
      { role: 'assistant', content: [{ type: 'text', text: 'It is 24 degrees and clear.' }] },
      { role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] },
    ]);
    expect((body.tools as { name: string; input_schema: unknown }[])[0]).toMatchObject({ name: 'get_weather', input_schema: { type: 'object', required: ['city'] } });
  });

  it('consecutive user turns (a tool result, then speech) merge into one user message', async () => {
    const messages = [
      { role: 'user' as const, content: 'Book it.' },
      { role: 'assistant' as const, content: 'One moment.', toolCalls: [{ id: 'toolu_9', name: 'book', arguments: '' }] },
      { role: 'tool' as const, content: 'booked', toolCallId: 'toolu_9' },
      { role: 'user' as const, content: 'Thanks!' },
    ];
    await collect(createAnthropicLlm().stream(request(fake, { messages }), new AbortController().signal));
    const body = fake.requests.at(-1)!.body as { messages: { role: string; content: unknown[] }[] };
    expect(body.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(body.messages[1]!.content).toEqual([{ type: 'text', text: 'One moment.' }, { type: 'tool_use', id: 'toolu_9', name: 'book', input: {} }]);
    expect(body.messages[2]!.content).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_9', content: 'booked' }, { type: 'text', text: 'Thanks!' }]);
  });

  it('maps stop reasons: max_tokens → length, refusal → other', async () => {
    fake.script({ type: 'reply', text: 'Cut', finish: 'max_tokens' }, { type: 'reply', text: 'No', finish: 'refusal' });
    expect((await collect(createAnthropicLlm().stream(request(fake), new AbortController().signal))).at(-1)).toEqual({ type: 'done', reason: 'length' });
    expect((await collect(createAnthropicLlm().stream(request(fake), new AbortController().signal))).at(-1)).toEqual({ type: 'done', reason: 'other' });
  });

  it('usage counts cache reads as input and reports them as cached', async () => {
    fake.script({ type: 'reply', text: 'Hi', usage: { input: 10, output: 3, cached: 500 } });
    const deltas = await collect(createAnthropicLlm().stream(request(fake), new AbortController().signal));
    expect(deltas.find((d) => d.type === 'usage')).toEqual({ type: 'usage', inputTokens: 510, outputTokens: 3, cachedInputTokens: 500 });
  });

  it('no key: an auth error before anything is sent', async () => {
    const before = fake.requests.length;
    const { error } = await collectUntilError(createAnthropicLlm().stream(request(fake, { apiKey: undefined }), new AbortController().signal));
    expect(error).toMatchObject({ code: 'ANTHROPIC_AUTH', retryable: false });
    expect(fake.requests.length).toBe(before);
  });
});
