import { describe, expect, it } from 'vitest';
import { contentTerms, createLocalLlm, extractAnswer, LOCAL_NO_ANSWER, localIntent } from '../../media-node/providers/local-llm';
import type { KnowledgeBase } from '../../shared/contracts/knowledge';
import type { ChatMessage, LlmDelta, LlmRequest, ToolDefinition } from '../../shared/contracts/llm';
import { passagesMessage } from '../../shared/engine/retrieval';

const TOOLS: ToolDefinition[] = ['end_call', 'transfer_call'].map((name) => ({ name, description: name, parameters: { type: 'object', properties: {} } }));
const request = (messages: ChatMessage[], tools = TOOLS): LlmRequest => ({ messages, tools, options: {} });
const user = (content: string): ChatMessage => ({ role: 'user', content });
const SYSTEM: ChatMessage = { role: 'system', content: 'You are the shop assistant.' };

async function collect(stream: AsyncIterable<LlmDelta>) {
  const deltas: LlmDelta[] = [];
  for await (const d of stream) deltas.push(d);
  const text = deltas.flatMap((d) => (d.type === 'text' ? [d.text] : [])).join('');
  const calls = deltas.flatMap((d) => (d.type === 'toolCall' ? [d.call] : []));
  return { deltas, text, calls };
}

const HOURS = 'Welcome to the shop. The shop opens at nine in the morning on weekdays. On Saturdays it opens at ten. Parking is free behind the building.';
const passages = passagesMessage([{ text: HOURS, score: 0.5, source: { documentId: 'hours.md', chunk: 0, title: 'Hours' } }])!;

describe('the local LLM stand-in', () => {
  it('streams an answer token by token, then usage and done', async () => {
    const llm = createLocalLlm({ tokenDelayMs: 5 });
    expect(llm.id).toBe('local');
    const started = performance.now();
    const { deltas, text } = await collect(llm.stream(request([SYSTEM, user('hello')]), new AbortController().signal));
    expect(text).toBe('Hello! How can I help you today?');
    const tokens = deltas.filter((d) => d.type === 'text');
    expect(tokens.map((d) => (d as { text: string }).text)).toEqual(['Hello! ', 'How ', 'can ', 'I ', 'help ', 'you ', 'today?']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25); // 6 gaps of 5 ms, loosely
    expect(deltas.at(-2)).toMatchObject({ type: 'usage', outputTokens: 7 });
    expect(deltas.at(-1)).toEqual({ type: 'done', reason: 'stop' });
  });

  it('goodbye → a goodbye and the end_call tool; a human please → transfer_call; only tools the request declares', async () => {
    const llm = createLocalLlm({ tokenDelayMs: 0 });
    const signal = new AbortController().signal;
    const bye = await collect(llm.stream(request([SYSTEM, user("No that's all, bye")]), signal));
    expect(bye.text).toBe('Thank you for calling. Goodbye!');
    expect(bye.calls).toEqual([{ id: expect.any(String), name: 'end_call', arguments: '{}' }]);
    expect(bye.deltas.at(-1)).toEqual({ type: 'done', reason: 'tool_calls' });

    for (const ask of ['Can I speak to a human, please?', 'agent', 'I want to talk to someone', 'Put me through to a real person']) {
      const t = await collect(llm.stream(request([SYSTEM, user(ask)]), signal));
      expect(t.calls.map((c) => c.name), ask).toEqual(['transfer_call']);
    }
    const noTools = await collect(llm.stream(request([SYSTEM, user('a person please')], []), signal));
    expect(noTools.calls).toEqual([]);
    expect(noTools.text).toMatch(/can't transfer/);

    // After the tool round: nothing more to say.
    const afterTool = await collect(
      llm.stream(request([SYSTEM, user('bye'), { role: 'assistant', content: '', toolCalls: bye.calls }, { role: 'tool', content: 'ok', toolCallId: bye.calls[0]!.id }]), signal),
    );
    expect(afterTool.text).toBe('');
    expect(afterTool.calls).toEqual([]);
  });

  it('small talk', () => {
    expect(localIntent('Hi there')).toBe('greeting');
    expect(localIntent('good morning')).toBe('greeting');
    expect(localIntent('how are you doing?')).toBe('howAreYou');
    expect(localIntent('thank you so much')).toBe('thanks');
    expect(localIntent('is someone there')).toBe('question');
    expect(localIntent('when do you open')).toBe('question');
  });

  it('answers a question from the passages in the request: the most relevant sentences of the best passage', async () => {
    const llm = createLocalLlm({ tokenDelayMs: 0 });
    const { text, calls } = await collect(llm.stream(request([SYSTEM, passages, user('When does the shop open on Saturday?')]), new AbortController().signal));
    expect(calls).toEqual([]);
    expect(text).toBe('The shop opens at nine in the morning on weekdays. On Saturdays it opens at ten.');
    const parking = await collect(llm.stream(request([SYSTEM, passages, user('is parking free?')]), new AbortController().signal));
    expect(parking.text).toBe('Parking is free behind the building.');
  });

  it('says plainly when it has no answer', async () => {
    const llm = createLocalLlm({ tokenDelayMs: 0 });
    expect((await collect(llm.stream(request([SYSTEM, passages, user('Do you sell bicycles?')]), new AbortController().signal))).text).toBe(LOCAL_NO_ANSWER);
    expect((await collect(llm.stream(request([SYSTEM, user('What is the refund policy?')]), new AbortController().signal))).text).toBe(LOCAL_NO_ANSWER);
  });

  it('searches its own knowledge bases when the request has no passages', async () => {
    const queries: string[] = [];
    const kb: KnowledgeBase = {
      id: 'kb',
      async search(q) {
        queries.push(q);
        return [
          { text: 'Gift cards never expire.', score: 0.2, source: { documentId: 'a', chunk: 0 } },
          { text: 'Refunds go back to the original card within five days. Exchanges are free.', score: 0.1, source: { documentId: 'b', chunk: 0 } },
        ];
      },
    };
    const llm = createLocalLlm({ knowledge: [kb], tokenDelayMs: 0 });
    const { text } = await collect(llm.stream(request([SYSTEM, user('How long do refunds take?')]), new AbortController().signal));
    expect(queries).toEqual(['How long do refunds take?']);
    // The best passage is the one sharing most words with the question, not the first-ranked.
    expect(text).toBe('Refunds go back to the original card within five days.');
  });

  it('stops at once when aborted mid-stream', async () => {
    const llm = createLocalLlm({ tokenDelayMs: 50 });
    const abort = new AbortController();
    const seen: string[] = [];
    const run = (async () => {
      for await (const d of llm.stream(request([SYSTEM, user('hello')]), abort.signal)) if (d.type === 'text') seen.push(d.text);
    })();
    await new Promise((r) => setTimeout(r, 70));
    abort.abort();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThan(7);
  });

  it('terms and extraction helpers', () => {
    expect(contentTerms('The shop opens; opening hours on Saturdays')).toEqual(['shop', 'open', 'open', 'hour', 'saturday']);
    expect(extractAnswer('the', [{ text: 'The end.' }])).toBeUndefined();
    expect(extractAnswer('dragons', [{ text: 'Nothing here.' }])).toBeUndefined();
  });
});
