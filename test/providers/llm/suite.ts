import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../../shared/contracts/errors';
import type { ChatMessage, LanguageModel, LlmDelta, LlmRequest } from '../../../shared/contracts/llm';
import type { LlmHttpDeps, LlmMetricsSink } from '../../../shared/providers/llm/http';
import type { LlmScript, RecordedRequest } from '../fakes/llm/sse-host';

/**
 * What every LLM adapter must do against its vendor's fake: text deltas (multi-byte text split across TCP
 * writes), tool calls assembled into JSON arguments, usage, finish reasons, abort mid-stream closing the
 * connection, retries only before the first token, a first-token timeout, and auth errors with the vendor's
 * message.
 */

export interface FakeLlmServer {
  readonly endpoint: string;
  readonly apiKey: string;
  readonly requests: RecordedRequest[];
  script(...next: LlmScript[]): void;
  close(): Promise<void>;
}

export interface LlmTarget {
  readonly name: string;
  start(): Promise<FakeLlmServer>;
  create(deps: LlmHttpDeps): LanguageModel;
  /** The vendor's reason for a finished tool round, as scripted into the fake. */
  readonly authMessage: RegExp;
  /** The vendor's 429 body. */
  readonly rateLimitBody: string;
}

export async function collect(stream: AsyncIterable<LlmDelta>): Promise<LlmDelta[]> {
  const out: LlmDelta[] = [];
  for await (const delta of stream) out.push(delta);
  return out;
}

export async function collectUntilError(stream: AsyncIterable<LlmDelta>): Promise<{ deltas: LlmDelta[]; error: unknown }> {
  const deltas: LlmDelta[] = [];
  try {
    for await (const delta of stream) deltas.push(delta);
  } catch (error) {
    return { deltas, error };
  }
  return { deltas, error: undefined };
}

export const textOf = (deltas: readonly LlmDelta[]): string => deltas.map((d) => (d.type === 'text' ? d.text : '')).join('');

export function recordingMetrics() {
  const events: string[] = [];
  const sink: LlmMetricsSink = {
    connected: (p, s) => void events.push(`connected ${p} ${s}`),
    firstResult: (p, s, k) => void events.push(`first ${p} ${s} ${k}`),
    reconnected: (p, s, r) => void events.push(`retry ${p} ${s} ${r}`),
    error: (p, s, k) => void events.push(`error ${p} ${s} ${k}`),
  };
  return { sink, events };
}

/** A whole conversation: system prompt, greeting, a tool round, a follow-up question. */
export const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful voice assistant.' },
  { role: 'assistant', content: 'Hi! How can I help?' },
  { role: 'user', content: 'What is the weather in São Paulo?' },
  { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"São Paulo"}' }] },
  { role: 'tool', content: '{"temperature":24,"sky":"clear"}', toolCallId: 'call_1' },
  { role: 'assistant', content: 'It is 24 degrees and clear.' },
  { role: 'user', content: 'And tomorrow?' },
];

export const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { city: { type: 'string', description: 'City name' }, unit: { type: ['string', 'null'], enum: ['celsius', 'fahrenheit', null] } }, required: ['city'], additionalProperties: false },
};

export const HANG_UP_TOOL = { name: 'end_call', description: 'Hang up', parameters: { type: 'object', properties: {} } };

export function request(server: FakeLlmServer, extra: Partial<LlmRequest> = {}): LlmRequest {
  return { messages: CONVERSATION, tools: [WEATHER_TOOL, HANG_UP_TOOL], endpoint: server.endpoint, apiKey: server.apiKey, options: {}, ...extra };
}

const FAST_RETRY = { attempts: 2, baseDelayMs: 20 };

export function llmAdapterSuite(target: LlmTarget): void {
  describe(`${target.name} adapter against its fake`, () => {
    let server: FakeLlmServer;
    beforeAll(async () => {
      server = await target.start();
    });
    afterAll(async () => {
      await server.close();
    });
    const fresh = (): number => server.requests.length;

    it('streams text deltas (multi-byte text split across writes), then usage and done', async () => {
      const before = fresh();
      const text = 'Grüße aus Köln — ça va? 👋 Alles gut, 24 °C.';
      server.script({ type: 'reply', text, usage: { input: 100, output: 9, cached: 40 } });
      const metrics = recordingMetrics();
      const deltas = await collect(target.create({ metrics: metrics.sink, retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      expect(textOf(deltas)).toBe(text);
      expect(deltas.filter((d) => d.type === 'text').length).toBeGreaterThan(3);
      const usage = deltas.find((d) => d.type === 'usage');
      expect(usage).toMatchObject({ type: 'usage', outputTokens: 9, cachedInputTokens: 40 });
      expect(usage?.type === 'usage' && usage.inputTokens).toBeGreaterThanOrEqual(100);
      expect(deltas.at(-1)).toEqual({ type: 'done', reason: 'stop' });
      expect(server.requests.length - before).toBe(1);
      expect(metrics.events.filter((e) => e.startsWith('first'))).toEqual([`first ${target.name} llm token`]);
    });

    it('assembles parallel tool calls from fragments split mid-JSON into JSON arguments', async () => {
      server.script({
        type: 'reply',
        toolCalls: [
          { name: 'get_weather', arguments: '{"city":"São Paulo","unit":"celsius"}' },
          { name: 'get_weather', arguments: '{"city":"Zürich 🇨🇭"}' },
        ],
      });
      const deltas = await collect(target.create({}).stream(request(server), new AbortController().signal));
      const calls = deltas.flatMap((d) => (d.type === 'toolCall' ? [d.call] : []));
      expect(calls.map((c) => c.name)).toEqual(['get_weather', 'get_weather']);
      expect(calls.map((c) => JSON.parse(c.arguments) as unknown)).toEqual([{ city: 'São Paulo', unit: 'celsius' }, { city: 'Zürich 🇨🇭' }]);
      expect(new Set(calls.map((c) => c.id)).size).toBe(2);
      expect(calls.every((c) => c.id.length > 0)).toBe(true);
      expect(deltas.at(-1)).toEqual({ type: 'done', reason: 'tool_calls' });
    });

    it('sends the whole conversation in a shape the vendor accepts (system, greeting first, tool round)', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: 'Tomorrow looks sunny.' });
      const deltas = await collect(target.create({}).stream(request(server, { temperature: 0.3, maxTokens: 200, model: 'model-x' }), new AbortController().signal));
      expect(textOf(deltas)).toBe('Tomorrow looks sunny.');
      expect(server.requests.length - before).toBe(1);
    });

    it('abort mid-stream stops at once and the server sees the connection closed', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: Array.from({ length: 200 }, (_, i) => `word${i}`).join(' '), tokenDelayMs: 20 });
      const controller = new AbortController();
      const stream = target.create({}).stream(request(server), controller.signal);
      const seen: LlmDelta[] = [];
      const startedAt = performance.now();
      let abortedAt = 0;
      const outcome = await (async () => {
        try {
          for await (const delta of stream) {
            seen.push(delta);
            if (seen.length === 3) {
              abortedAt = performance.now();
              controller.abort();
            }
          }
          return 'ended';
        } catch (error) {
          return (error as Error).name;
        }
      })();
      expect(outcome).toBe('AbortError');
      expect(seen.length).toBe(3);
      const recorded = server.requests[before]!;
      await recorded.settled;
      expect(recorded.closedEarly).toBe(true);
      expect(performance.now() - abortedAt).toBeLessThan(1000);
      expect(performance.now() - startedAt).toBeLessThan(3000);
    });

    it('a consumer that stops iterating closes the connection too', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' '), tokenDelayMs: 20 });
      for await (const delta of target.create({}).stream(request(server), new AbortController().signal)) {
        if (delta.type === 'text') break;
      }
      const recorded = server.requests[before]!;
      await recorded.settled;
      expect(recorded.closedEarly).toBe(true);
    });

    it('429 with retry-after: waits as asked, then the retry answers', async () => {
      const before = fresh();
      server.script({ type: 'status', status: 429, body: target.rateLimitBody, headers: { 'retry-after': '1' } }, { type: 'reply', text: 'After the wait.' });
      const metrics = recordingMetrics();
      const startedAt = performance.now();
      const deltas = await collect(target.create({ retry: FAST_RETRY, metrics: metrics.sink }).stream(request(server), new AbortController().signal));
      expect(textOf(deltas)).toBe('After the wait.');
      expect(server.requests.length - before).toBe(2);
      expect(performance.now() - startedAt).toBeGreaterThanOrEqual(950);
      expect(metrics.events).toContain(`error ${target.name} llm rate-limit`);
      expect(metrics.events.some((e) => e.startsWith(`retry ${target.name} llm`))).toBe(true);
    });

    it('5xx is retried a bounded number of times, then the error is thrown (retryable, for the engine)', async () => {
      const before = fresh();
      const unavailable = { type: 'status', status: 503, body: target.rateLimitBody } as const;
      server.script(unavailable, unavailable, unavailable, unavailable);
      const { error } = await collectUntilError(target.create({ retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ retryable: true, kind: 'unavailable' });
      expect(server.requests.length - before).toBe(3);
      // The fourth scripted 503 is still queued: take it out so later tests start clean.
      await collectUntilError(target.create({ retry: { attempts: 0, baseDelayMs: 1 } }).stream(request(server), new AbortController().signal));
    });

    it('an error event before the first token is retried', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: 'never sent', errorAfterTokens: 0 }, { type: 'reply', text: 'Second time lucky.' });
      const deltas = await collect(target.create({ retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      expect(textOf(deltas)).toBe('Second time lucky.');
      expect(server.requests.length - before).toBe(2);
    });

    it('an error event after the first token is surfaced, never retried', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: 'One two three four five', errorAfterTokens: 2 }, { type: 'reply', text: 'must not be asked for' });
      const { deltas, error } = await collectUntilError(target.create({ retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      expect(textOf(deltas)).toBe('One two ');
      expect(error).toBeInstanceOf(ProviderError);
      expect(server.requests.length - before).toBe(1);
      // Consume the unused script.
      await collect(target.create({}).stream(request(server), new AbortController().signal));
    });

    it('a stream that ends early without its end marker is an error, not a silent short answer', async () => {
      server.script({ type: 'reply', text: 'One two three four', endAfterTokens: 2 });
      const { deltas, error } = await collectUntilError(target.create({ retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      expect(textOf(deltas)).toBe('One two ');
      expect((error as ProviderError).code).toMatch(/_INCOMPLETE$/);
    });

    it('first-token timeout: fails fast (retryable, not retried here) and closes the connection', async () => {
      const before = fresh();
      server.script({ type: 'reply', text: 'Too late.', firstTokenDelayMs: 1500 });
      const startedAt = performance.now();
      const { deltas, error } = await collectUntilError(target.create({ firstTokenTimeoutMs: 300, retry: FAST_RETRY }).stream(request(server), new AbortController().signal));
      const elapsed = performance.now() - startedAt;
      expect(deltas).toEqual([]);
      expect(error).toMatchObject({ kind: 'timeout', retryable: true });
      expect((error as ProviderError).code).toMatch(/_FIRST_TOKEN_TIMEOUT$/);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1400);
      expect(server.requests.length - before).toBe(1);
      await server.requests[before]!.settled;
      expect(server.requests[before]!.closedEarly).toBe(true);
    });

    it('a rejected key is a non-retryable auth error carrying the vendor message', async () => {
      const before = fresh();
      const { error } = await collectUntilError(target.create({ retry: FAST_RETRY }).stream(request(server, { apiKey: 'wrong-key' }), new AbortController().signal));
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'auth', retryable: false });
      expect((error as Error).message).toMatch(target.authMessage);
      expect(server.requests.length - before).toBe(1);
    });

    it('an aborted signal before the start sends nothing', async () => {
      const before = fresh();
      const controller = new AbortController();
      controller.abort();
      const { error } = await collectUntilError(target.create({}).stream(request(server), controller.signal));
      expect((error as Error).name).toBe('AbortError');
      expect(server.requests.length - before).toBe(0);
    });
  });
}
