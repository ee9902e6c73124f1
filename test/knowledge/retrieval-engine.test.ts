import { describe, expect, it } from 'vitest';
import { createLocalLlm } from '../../media-node/providers/local-llm';
import type { Clock } from '../../shared/contracts/clock';
import type { KnowledgeBase, Passage } from '../../shared/contracts/knowledge';
import type { ChatMessage, ToolCall, ToolExecutor } from '../../shared/contracts/llm';
import { CONTEXT_HEADER, parsePassagesMessage, retrieve } from '../../shared/engine/retrieval';
import { startCall, type TestCall } from '../fakes/call';
import { createFakeClock } from '../fakes/clock';
import { lastUserText } from '../fakes/llm';

const WEATHER: Passage = { text: 'The weather today is sunny and warm. Tomorrow brings rain.', score: 0.6, source: { documentId: 'forecast.md', title: 'Forecast', chunk: 0 } };

/** A knowledge base on the call's clock: answers after `delayMs`, or fails; records queries and aborts. */
function clockKb(id: string, clock: () => Clock, behaviour: { delayMs: number; passages?: Passage[]; error?: Error }) {
  const stats = { queries: [] as string[], aborted: 0 };
  const kb: KnowledgeBase = {
    id,
    search(query, options, signal) {
      stats.queries.push(query);
      return new Promise((resolve, reject) => {
        const handle = clock().setTimeout(() => {
          if (behaviour.error) reject(behaviour.error);
          else resolve((behaviour.passages ?? []).slice(0, options.topK ?? 4));
        }, behaviour.delayMs);
        signal.addEventListener('abort', () => {
          stats.aborted++;
          clock().clearTimeout(handle);
          const e = new Error('aborted');
          e.name = 'AbortError';
          reject(e);
        });
      });
    },
  };
  return { kb, stats };
}

const contextOf = (messages: readonly ChatMessage[]) => messages.filter((m) => m.role === 'system' && m.content.startsWith(CONTEXT_HEADER));

describe('per-turn retrieval in the engine', () => {
  it('a knowledge base that hands back a malformed passage does not leave the caller in silence: the fallback message is spoken', async () => {
    const ref: { call?: TestCall } = {};
    // No `source`: the engine cannot format it, and the turn must still end audibly.
    const broken = { text: 'sunny', score: 1 } as unknown as Passage;
    const { kb } = clockKb('kb-broken', () => ref.call!.clock, { delayMs: 10, passages: [broken] });
    const call = (ref.call = await startCall({
      knowledge: { bases: [kb] },
      config: { knowledgeBases: [{ id: 'kb-broken', topK: 2 }], fallbackMessage: 'sorry trouble' },
      llm: { reply: () => 'it is sunny' },
    }));
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.fake.heardWords().join(' ').includes('sorry trouble'), 10_000);
    expect(call.fake.heardWords().join(' ')).toContain('sorry trouble');
    await call.end();
  });

  it('a fast knowledge base: passages reach the LLM before the caller message, with their source; metrics record latency and hits', async () => {
    const ref: { call?: TestCall } = {};
    const { kb, stats } = clockKb('kb-fast', () => ref.call!.clock, { delayMs: 40, passages: [WEATHER] });
    const call = (ref.call = await startCall({
      knowledge: { bases: [kb] },
      config: { knowledgeBases: [{ id: 'kb-fast', topK: 2 }] },
      llm: { reply: (m) => (contextOf(m).length && lastUserText(m) === 'what is the weather today' ? 'it is sunny and warm today' : 'sorry') },
    }));
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    await call.end();

    expect(stats.queries).toEqual(['what is the weather today']);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny', 'and', 'warm', 'today']);
    const request = call.llm.stats.requests[0]!.messages;
    const context = contextOf(request);
    expect(context).toHaveLength(1);
    // Just before the caller's message, after the system prompt.
    expect(request.map((m) => m.role)).toEqual(['system', 'system', 'user']);
    expect(context[0]!.content).toContain('[1] Source: Forecast (forecast.md, part 1)\nThe weather today is sunny and warm.');
    expect(parsePassagesMessage(context[0]!)).toEqual([{ source: 'Forecast (forecast.md, part 1)', text: WEATHER.text }]);
    // The passages are not part of the call's history.
    expect(call.comm.history.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
    const metrics = call.metrics().find((m) => m.kind === 'reply')!;
    expect(metrics).toMatchObject({ retrievalMs: 40, retrievalHits: 1 });
    expect(metrics.retrievalTimedOut).toBeUndefined();
  });

  it('a knowledge base slower than the 150 ms budget: the turn goes on without passages at 150 ms; the metric records it', async () => {
    const ref: { call?: TestCall } = {};
    const slow = clockKb('kb-slow', () => ref.call!.clock, { delayMs: 600, passages: [WEATHER] });
    const call = (ref.call = await startCall({ knowledge: { bases: [slow.kb] }, llm: { reply: (m) => (contextOf(m).length ? 'sunny' : 'sorry') } }));
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    await call.end();

    expect(call.fake.heardWords()).toEqual(['sorry']);
    expect(contextOf(call.llm.stats.requests[0]!.messages)).toEqual([]);
    expect(slow.stats.aborted).toBe(1);
    const metrics = call.metrics().find((m) => m.kind === 'reply')!;
    expect(metrics).toMatchObject({ retrievalMs: 150, retrievalHits: 0, retrievalTimedOut: true });
    // The LLM request left when the budget ran out (engine overhead on top is zero on the fake clock).
    expect(metrics.overheadMs?.endOfTurnToLlm).toBe(150);
  });

  it('with two knowledge bases, one slow and one fast: the fast one is used; a failing one is reported and skipped', async () => {
    const ref: { call?: TestCall } = {};
    const slow = clockKb('kb-slow', () => ref.call!.clock, { delayMs: 1000, passages: [{ ...WEATHER, text: 'Slow passage.' }] });
    const fast = clockKb('kb-fast', () => ref.call!.clock, { delayMs: 10, passages: [WEATHER] });
    const broken = clockKb('kb-broken', () => ref.call!.clock, { delayMs: 5, error: new Error('index unreachable') });
    const call = (ref.call = await startCall({ knowledge: { bases: [slow.kb, fast.kb, broken.kb], budgetMs: 100 }, llm: { reply: () => 'okay' } }));
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    await call.end();

    const context = contextOf(call.llm.stats.requests[0]!.messages);
    expect(context[0]!.content).toContain('The weather today is sunny and warm.');
    expect(context[0]!.content).not.toContain('Slow passage.');
    expect(call.metrics().find((m) => m.kind === 'reply')).toMatchObject({ retrievalMs: 100, retrievalHits: 1, retrievalTimedOut: true });
    const errors = call.of('providerError');
    // One metric label for all knowledge bases (tenant ids would make unbounded series); the id is in the message.
    expect(errors).toEqual([expect.objectContaining({ stage: 'llm', provider: 'knowledge', action: 'ignored' })]);
    expect((errors[0] as { error: Error }).error.message).toContain('kb-broken');
    expect(errors[0]!.error.message).toContain('index unreachable');
  });

  it('end to end with the local stand-in: question → retrieval → grounded answer spoken; goodbye → end_call tool', async () => {
    const ref: { call?: TestCall } = {};
    const { kb } = clockKb('kb', () => ref.call!.clock, { delayMs: 20, passages: [{ ...WEATHER, text: 'Opening hours are nine to five. The weather today is sunny and warm.' }] });
    const toolCalls: ToolCall[] = [];
    const tools: ToolExecutor = {
      definitions: [
        { name: 'end_call', description: 'End the call', parameters: { type: 'object', properties: {} } },
        { name: 'transfer_call', description: 'Transfer to a person', parameters: { type: 'object', properties: {} } },
      ],
      async execute(c) {
        toolCalls.push(c);
        return 'ok';
      },
    };
    const call = (ref.call = await startCall({ knowledge: { bases: [kb] }, tools, llm: { reply: () => 'unused' } }));
    // Swap the fake LLM for the stand-in: same chain position, its own id.
    const local = createLocalLlm({ tokenDelayMs: 0 });
    (call.llm.llm as { stream: typeof local.stream }).stream = local.stream.bind(local);

    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    expect(call.of('assistantMessage')[0]!.text).toBe('The weather today is sunny and warm.');
    expect(call.fake.heardWords()).toEqual(['the', 'weather', 'today', 'is', 'sunny', 'and', 'warm']);

    call.fake.say('thanks goodbye');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 10_000);
    await call.end();
    // The goodbye is spoken with the end_call tool call (hanging up is that tool's job).
    expect(toolCalls.map((c) => c.name)).toEqual(['end_call']);
    expect(call.of('toolCall').map((e) => e.name)).toEqual(['end_call']);
    expect(call.of('assistantMessage')[1]!.text).toBe('Thank you for calling. Goodbye!');
    const replies = call.metrics().filter((m) => m.kind === 'reply');
    expect(replies[0]).toMatchObject({ retrievalMs: 20, retrievalHits: 1 });
    expect(replies[0]!.outputTokens).toBe(7);
  });
});

describe('retrieve()', () => {
  it('an aborted turn stops the searches and yields nothing; no knowledge base or empty query costs nothing', async () => {
    const clock = createFakeClock(0);
    const { kb, stats } = clockKb('kb', () => clock, { delayMs: 100, passages: [WEATHER] });
    const turn = new AbortController();
    const pending = retrieve([{ knowledgeBase: kb, topK: 4 }], 'weather', { clock, signal: turn.signal });
    await clock.advance(30);
    turn.abort();
    await expect(pending).resolves.toMatchObject({ passages: [], timedOut: false, failures: [] });
    expect(stats.aborted).toBe(1);
    expect(clock.pending).toBe(0);
    await expect(retrieve([], 'weather', { clock, signal: new AbortController().signal })).resolves.toMatchObject({ passages: [], latencyMs: 0 });
    await expect(retrieve([{ knowledgeBase: kb, topK: 4 }], '  ', { clock, signal: new AbortController().signal })).resolves.toMatchObject({ passages: [] });
    expect(stats.queries).toEqual(['weather']);
  });

  it('topK caps each knowledge base; passages interleave rank by rank across bases', async () => {
    const clock = createFakeClock(0);
    const p = (doc: string, n: number): Passage => ({ text: `${doc} ${n}`, score: 1 / n, source: { documentId: doc, chunk: n } });
    const a = clockKb('a', () => clock, { delayMs: 0, passages: [p('a', 1), p('a', 2), p('a', 3)] });
    const b = clockKb('b', () => clock, { delayMs: 0, passages: [p('b', 1), p('b', 2)] });
    const result = retrieve(
      [
        { knowledgeBase: a.kb, topK: 2 },
        { knowledgeBase: b.kb, topK: 4 },
      ],
      'q',
      { clock, signal: new AbortController().signal },
    );
    await clock.advance(1);
    expect((await result).passages.map((x) => [x.knowledgeBaseId, x.text])).toEqual([
      ['a', 'a 1'],
      ['b', 'b 1'],
      ['a', 'a 2'],
      ['b', 'b 2'],
    ]);
  });
});
