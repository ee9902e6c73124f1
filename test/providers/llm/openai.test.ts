import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../../shared/contracts/errors';
import { createOpenAiLlm, openAiUrl } from '../../../shared/providers/llm/openai';
import { startOpenAiFake, type OpenAiFake } from '../fakes/llm/openai';
import { collect, collectUntilError, llmAdapterSuite, request, textOf } from './suite';

llmAdapterSuite({
  name: 'openai',
  start: () => startOpenAiFake(),
  create: (deps) => createOpenAiLlm(deps),
  authMessage: /Incorrect API key provided/,
  rateLimitBody: JSON.stringify({ error: { message: 'Rate limit reached for gpt-4o-mini', type: 'requests', param: null, code: 'rate_limit_exceeded' } }),
});

describe('openai URLs', () => {
  const defaults = { includeUsage: true };
  it('maps the endpoint forms of compatible servers and Azure', () => {
    expect(openAiUrl(undefined, 'gpt-4o-mini', defaults)).toBe('https://api.openai.com/v1/chat/completions');
    expect(openAiUrl('http://localhost:11434/v1', 'llama3', defaults)).toBe('http://localhost:11434/v1/chat/completions');
    expect(openAiUrl('http://localhost:8000/', 'm', defaults)).toBe('http://localhost:8000/v1/chat/completions');
    expect(openAiUrl('https://api.groq.com/openai/v1/', 'm', defaults)).toBe('https://api.groq.com/openai/v1/chat/completions');
    expect(openAiUrl('https://openrouter.ai/api/v1/chat/completions', 'm', defaults)).toBe('https://openrouter.ai/api/v1/chat/completions');
    expect(openAiUrl('https://acme.openai.azure.com', 'gpt-4o', defaults)).toBe('https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21');
    expect(openAiUrl('https://proxy.example/', 'x', { ...defaults, azure: { deployment: 'voice', apiVersion: '2025-01-01-preview' } })).toBe(
      'https://proxy.example/openai/deployments/voice/chat/completions?api-version=2025-01-01-preview',
    );
  });
});

describe('openai request shape and variants', () => {
  let fake: OpenAiFake;
  beforeAll(async () => {
    fake = await startOpenAiFake();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('sends messages, tools and stream options as Chat Completions expects', async () => {
    await collect(createOpenAiLlm().stream(request(fake, { model: 'llama3', temperature: 0.2, maxTokens: 150 }), new AbortController().signal));
    const recorded = fake.requests.at(-1)!;
    expect(recorded.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    const body = recorded.body as Record<string, unknown>;
    expect(body).toMatchObject({ model: 'llama3', stream: true, stream_options: { include_usage: true }, temperature: 0.2, max_tokens: 150, tool_choice: 'auto' });
    expect(body.messages).toEqual([
      { role: 'system', content: 'You are a helpful voice assistant.' },
      { role: 'assistant', content: 'Hi! How can I help?' },
      { role: 'user', content: 'What is the weather in São Paulo?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"São Paulo"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature":24,"sky":"clear"}' },
      { role: 'assistant', content: 'It is 24 degrees and clear.' },
      { role: 'user', content: 'And tomorrow?' },
    ]);
    expect((body.tools as { type: string; function: { name: string } }[]).map((t) => [t.type, t.function.name])).toEqual([
      ['function', 'get_weather'],
      ['function', 'end_call'],
    ]);
  });

  it('Azure OpenAI: deployment path, api-version and the api-key header', async () => {
    fake.script({ type: 'reply', text: 'From Azure.' });
    const deltas = await collect(
      createOpenAiLlm().stream(request(fake, { options: { azure: { deployment: 'voice-gpt4o', apiVersion: '2024-10-21' } } }), new AbortController().signal),
    );
    expect(textOf(deltas)).toBe('From Azure.');
    const recorded = fake.requests.at(-1)!;
    expect(recorded.url).toBe('/openai/deployments/voice-gpt4o/chat/completions?api-version=2024-10-21');
    expect(recorded.headers['api-key']).toBe(fake.apiKey);
    expect(recorded.headers.authorization).toBeUndefined();
  });

  it('includeUsage false: no stream_options (for servers that reject them) and no usage delta', async () => {
    const strict = await startOpenAiFake({ rejectStreamOptions: true });
    try {
      const refused = await collectUntilError(createOpenAiLlm().stream(request(strict), new AbortController().signal));
      expect(refused.error).toMatchObject({ kind: 'bad-request', retryable: false });
      expect((refused.error as Error).message).toContain('stream_options');
      const deltas = await collect(createOpenAiLlm().stream(request(strict, { options: { includeUsage: false } }), new AbortController().signal));
      expect(textOf(deltas)).toBe('Hello from the fake.');
      expect(deltas.some((d) => d.type === 'usage')).toBe(false);
      expect(deltas.at(-1)).toEqual({ type: 'done', reason: 'stop' });
    } finally {
      await strict.close();
    }
  });

  it('maps finish reasons: length', async () => {
    fake.script({ type: 'reply', text: 'Cut short', finish: 'length' });
    const deltas = await collect(createOpenAiLlm().stream(request(fake), new AbortController().signal));
    expect(deltas.at(-1)).toEqual({ type: 'done', reason: 'length' });
  });

  it('a key-less request to a custom endpoint is sent (local servers), but the default host needs a key', async () => {
    const noKey = await collectUntilError(createOpenAiLlm().stream(request(fake, { apiKey: undefined }), new AbortController().signal));
    expect(noKey.error).toMatchObject({ kind: 'auth' });
    expect(fake.requests.at(-1)!.headers.authorization).toBeUndefined();
    const before = fake.requests.length;
    const defaultHost = await collectUntilError(createOpenAiLlm().stream(request(fake, { apiKey: undefined, endpoint: undefined }), new AbortController().signal));
    expect(defaultHost.error).toBeInstanceOf(ProviderError);
    expect((defaultHost.error as ProviderError).code).toBe('OPENAI_AUTH');
    expect(fake.requests.length).toBe(before);
  });

  it('invalid options are a clear bad-request error', async () => {
    const { error } = await collectUntilError(createOpenAiLlm().stream(request(fake, { options: { includeUsage: 'yes' } }), new AbortController().signal));
    expect(error).toMatchObject({ code: 'OPENAI_BAD_OPTIONS', retryable: false });
  });
});
