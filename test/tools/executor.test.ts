import { describe, expect, it } from 'vitest';
import { parseAssistantConfig, type AssistantConfigInput } from '../../shared/config/assistant';
import { ConfigError } from '../../shared/contracts/errors';
import type { CallEnding } from '../../shared/tools/control';
import { createToolExecutor, parseArguments } from '../../shared/tools/executor';

const signal = new AbortController().signal;
const base = { prompt: 'p', stt: { provider: 'x' }, llm: { provider: 'x' }, tts: { provider: 'x' } };
const toolsOf = (tools: NonNullable<AssistantConfigInput['tools']>) => parseAssistantConfig({ ...base, tools }).tools;
const configError = (tools: unknown): string[] => {
  try {
    parseAssistantConfig({ ...base, tools });
  } catch (error) {
    if (error instanceof ConfigError) return [...error.issues];
    throw error;
  }
  return [];
};

const WEATHER = {
  name: 'weather',
  description: 'The weather for a city',
  parameters: { type: 'object' as const, properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 } }, required: ['city'] },
  action: { type: 'http' as const, url: 'https://api.example.com/weather/{{city}}' },
};

describe('tool configuration', () => {
  it('defaults: http GET, 5 s timeout, 16 KiB responses, filler after 700 ms', () => {
    const [tool] = toolsOf([WEATHER]);
    expect(tool).toMatchObject({ fillerAfterMs: 700, action: { type: 'http', method: 'GET', timeoutMs: 5000, responseMaxBytes: 16_384, headers: {} } });
  });

  it('refuses literal secrets in headers and URLs, bad transfer targets, a timeout over 30 s, an http tool without a description', () => {
    const problems = configError([
      { ...WEATHER, action: { ...WEATHER.action, headers: { Authorization: 'Bearer sk-123', 'X-Api-Key': 'abc' } } },
      { ...WEATHER, name: 'w2', action: { ...WEATHER.action, url: 'https://api.example.com/?api_key=abc', timeoutMs: 60_000 } },
      { name: 't', action: { type: 'transfer_call', to: '555-1234' } },
      { name: 'h', action: { type: 'http', url: 'https://x.example/' } },
      { name: 'r', action: { type: 'end_call' }, parameters: { type: 'object', properties: {}, required: ['ghost'] } },
    ]);
    expect(problems.join('\n')).toMatch(/tools\.0\.action\.headers\.Authorization: .*credential/);
    expect(problems.join('\n')).toMatch(/tools\.0\.action\.headers\.X-Api-Key/);
    expect(problems.join('\n')).toMatch(/tools\.1\.action\.url: .*api_key/);
    expect(problems.join('\n')).toMatch(/tools\.1\.action\.timeoutMs/);
    expect(problems.join('\n')).toMatch(/tools\.2\.action\.to: must be an E\.164 number/);
    expect(problems.join('\n')).toMatch(/tools\.3\.description/);
    expect(problems.join('\n')).toMatch(/tools\.4\.parameters\.required: "ghost"/);
  });

  it('accepts credential references, E.164 and SIP targets', () => {
    const tools = toolsOf([
      { ...WEATHER, action: { ...WEATHER.action, headers: { Authorization: { credential: 'weather-api', prefix: 'Bearer ' }, 'X-Trace': '{{callId}}' } } },
      { name: 'human', action: { type: 'transfer_call', to: '+14155550123' } },
      { name: 'desk', action: { type: 'transfer_call', to: 'sip:desk@pbx.example.com' } },
    ]);
    expect(tools[0]!.action).toMatchObject({ headers: { Authorization: { credential: 'weather-api', field: 'apiKey', prefix: 'Bearer ' } } });
    expect(tools.map((t) => t.action.type)).toEqual(['http', 'transfer_call', 'transfer_call']);
  });
});

describe('tool executor', () => {
  it('definitions: configured JSON schema as given; built-ins get a description and parameters', () => {
    const executor = createToolExecutor(
      toolsOf([WEATHER, { name: 'lookup', action: { type: 'knowledge_lookup' } }, { name: 'bye', description: 'Hang up.', action: { type: 'end_call' } }]),
    );
    expect(executor.definitions).toEqual([
      { name: 'weather', description: 'The weather for a city', parameters: WEATHER.parameters },
      { name: 'lookup', description: expect.stringMatching(/knowledge base/), parameters: { type: 'object', properties: { query: expect.objectContaining({ type: 'string' }) }, required: ['query'] } },
      { name: 'bye', description: 'Hang up.', parameters: { type: 'object', properties: {} } },
    ]);
  });

  it('invalid JSON from the model is a clear error result, not an exception', async () => {
    const executor = createToolExecutor(toolsOf([WEATHER]));
    const result = JSON.parse(await executor.execute({ id: '1', name: 'weather', arguments: '{"city": "Par' }, signal)) as { error: string };
    expect(result.error).toMatch(/not valid JSON/);
    expect(result.error).toContain('{"city": "Par');
    expect(parseArguments('')).toEqual({ ok: true, value: {} });
    expect(parseArguments('[1]')).toEqual({ ok: false, error: 'the arguments must be a JSON object' });
  });

  it('arguments that do not fit the schema, and unknown tools, are error results', async () => {
    const executor = createToolExecutor(toolsOf([WEATHER]));
    const missing = JSON.parse(await executor.execute({ id: '1', name: 'weather', arguments: '{"days": 2}' }, signal)) as { error: string };
    expect(missing.error).toMatch(/do not fit.*city/);
    const badType = JSON.parse(await executor.execute({ id: '1', name: 'weather', arguments: '{"city": "Paris", "days": 0}' }, signal)) as { error: string };
    expect(badType.error).toMatch(/days/);
    const unknown = JSON.parse(await executor.execute({ id: '1', name: 'stocks', arguments: '{}' }, signal)) as { error: string };
    expect(unknown.error).toBe('there is no tool "stocks"; the tools are: weather');
  });

  it('a failing tool becomes {"error": ...}; a refused http target too', async () => {
    const executor = createToolExecutor(toolsOf([{ name: 'lookup', action: { type: 'knowledge_lookup' } }, { ...WEATHER, action: { type: 'http', url: 'http://127.0.0.1:1/{{city}}' } }]), {
      search: async () => {
        throw new Error('index offline');
      },
    });
    expect(JSON.parse(await executor.execute({ id: '1', name: 'lookup', arguments: '{"query":"hours"}' }, signal))).toEqual({ error: 'the tool failed: index offline' });
    const refused = JSON.parse(await executor.execute({ id: '2', name: 'weather', arguments: '{"city":"x"}' }, signal)) as { error: string };
    expect(refused.error).toMatch(/refused: 127\.0\.0\.1 is a loopback address/);
  });

  it('end_call and transfer_call act through the bound control; without it they say so', async () => {
    const executor = createToolExecutor(
      toolsOf([
        { name: 'bye', action: { type: 'end_call', goodbye: 'Bye now.' } },
        { name: 'human', action: { type: 'transfer_call', to: '+14155550123', announcement: 'Connecting you.' } },
      ]),
    );
    expect(JSON.parse(await executor.execute({ id: '1', name: 'bye', arguments: '{}' }, signal))).toEqual({ error: 'ending the call is not available here' });
    const endings: CallEnding[] = [];
    executor.bind!({ canTransfer: false, endAfterReply: (e) => endings.push(e) });
    expect(JSON.parse(await executor.execute({ id: '2', name: 'human', arguments: '{}' }, signal)).error).toMatch(/cannot be transferred/);
    expect(JSON.parse(await executor.execute({ id: '3', name: 'bye', arguments: '' }, signal))).toMatchObject({ ok: true });
    executor.bind!({ canTransfer: true, endAfterReply: (e) => endings.push(e) });
    expect(JSON.parse(await executor.execute({ id: '4', name: 'human', arguments: '{}' }, signal))).toMatchObject({ ok: true });
    expect(endings).toEqual([
      { kind: 'hangup', message: 'Bye now.', reason: 'end-call' },
      { kind: 'transfer', message: 'Connecting you.', to: '+14155550123' },
    ]);
  });

  it('knowledge_lookup passes the query, its knowledge bases and topK; passages come back with their source', async () => {
    const seen: unknown[] = [];
    const executor = createToolExecutor(toolsOf([{ name: 'lookup', action: { type: 'knowledge_lookup', knowledgeBases: ['kb-1'], topK: 2 } }]), {
      search: async (query, options) => {
        seen.push({ query, options });
        return [
          { text: 'Open 9 to 5.', score: 0.91234, source: { documentId: 'hours.md', title: 'Hours' } },
          { text: 'Closed on Sundays.', source: { documentId: 'hours.md' } },
          { text: 'a third', source: { documentId: 'x' } },
        ];
      },
    });
    const result = JSON.parse(await executor.execute({ id: '1', name: 'lookup', arguments: '{"query":"opening hours"}' }, signal));
    expect(seen).toEqual([{ query: 'opening hours', options: { knowledgeBases: ['kb-1'], topK: 2 } }]);
    expect(result).toEqual({ passages: [{ text: 'Open 9 to 5.', source: 'Hours', score: 0.912 }, { text: 'Closed on Sundays.', source: 'hours.md' }] });
  });

  it('filler phrases by tool name', () => {
    const executor = createToolExecutor(toolsOf([{ ...WEATHER, fillerPhrase: 'One moment.', fillerAfterMs: 400 }, { name: 'bye', action: { type: 'end_call' } }]));
    expect(executor.fillerFor!('weather')).toEqual({ phrase: 'One moment.', afterMs: 400 });
    expect(executor.fillerFor!('bye')).toBeUndefined();
  });
});
