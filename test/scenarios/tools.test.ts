import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAssistantConfig, type AssistantConfigInput } from '../../shared/config/assistant';
import type { ChatMessage, ToolCall } from '../../shared/contracts/llm';
import { createCallRecorder, createConversationOpsApplier, type ConversationOp } from '../../shared/store/call-recorder';
import { createConversationStore } from '../../shared/store/conversations';
import type { SqlClient } from '../../shared/store/sql';
import { createBatchedWriter } from '../../shared/store/writer';
import type { KnowledgeSearch } from '../../shared/tools/builtins';
import { createToolExecutor } from '../../shared/tools/executor';
import { startCall, type CallSetup, type TestCall } from '../fakes/call';
import { createFakeClock } from '../fakes/clock';
import { lastUserText } from '../fakes/llm';
import { sqlBackends } from '../store/backends';
import { seed } from '../store/fixtures';

// The built-in tools through the whole engine (fake clock, fake providers, in-memory phone line): end_call,
// transfer_call, a filler phrase while a slow tool runs, and tool calls persisted with the conversation.

const END: ToolCall = { id: 'call-end', name: 'end_call', arguments: '{}' };
const TRANSFER: ToolCall = { id: 'call-transfer', name: 'transfer_call', arguments: '{}' };
const LOOKUP: ToolCall = { id: 'call-lookup', name: 'lookup', arguments: '{"query":"weather today"}' };
const lastIsTool = (m: readonly ChatMessage[]) => m.at(-1)?.role === 'tool';

type ToolsInput = NonNullable<AssistantConfigInput['tools']>;

/** A call whose tools come from the configuration, like a media node builds them. */
async function callWithTools(tools: ToolsInput, setup: CallSetup & { search?: (clock: () => TestCall['clock']) => KnowledgeSearch } = {}) {
  const ref: { call?: TestCall } = {};
  const config = parseAssistantConfig({ prompt: 'p', stt: { provider: 'x' }, llm: { provider: 'x' }, tts: { provider: 'x' }, tools });
  const executor = createToolExecutor(config.tools, { ...(setup.search ? { search: setup.search(() => ref.call!.clock) } : {}) });
  ref.call = await startCall({ ...setup, tools: executor, config: { ...setup.config, tools } });
  return ref.call;
}

describe('end_call', () => {
  it('the reply plays, the goodbye is said, then the line hangs up; no further LLM round', async () => {
    const call = await callWithTools([{ name: 'end_call', action: { type: 'end_call', goodbye: 'thanks goodbye' } }], {
      llm: { reply: () => ({ text: 'okay', toolCalls: [END] }) },
    });
    call.fake.say('goodbye');
    expect(await call.runUntil(() => call.of('callEnded').length === 1, 10_000)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['okay', 'thanks', 'goodbye']);
    expect(call.fake.stats.hangups).toEqual(['end-call']);
    expect(call.of('callEnded')[0]!.reason).toBe('end-call');
    expect(call.llm.stats.requests).toHaveLength(1);
    expect(call.llm.stats.requests[0]!.tools.map((t) => t.name)).toEqual(['end_call']);
    expect(call.of('toolCall').map((e) => [e.name, JSON.parse(e.result).ok])).toEqual([['end_call', true]]);
    // The goodbye turn is not interruptible.
    expect(call.metrics().map((m) => m.kind)).toEqual(['reply', 'goodbye']);
  });

  it('a caller who interrupts the reply before the ending keeps the call, and the model is told so', async () => {
    const call = await callWithTools([{ name: 'end_call', action: { type: 'end_call', goodbye: 'thanks goodbye' } }], {
      llm: { reply: (m) => (lastUserText(m).includes('wait') ? 'okay sure' : { text: 'once upon a time there was a dragon and the dragon was warm', toolCalls: [END] }) },
    });
    call.fake.say('goodbye');
    await call.runUntil(() => call.fake.heardWords().length >= 3, 10_000);
    call.fake.say('wait stop');
    expect(await call.runUntil(() => call.fake.heardWords().join(' ').endsWith('okay sure'), 10_000), call.fake.heardWords().join(' ')).toBe(true);
    expect(call.of('callEnded')).toHaveLength(0);
    expect(call.fake.stats.hangups).toEqual([]);
    const second = call.llm.stats.requests[1]!.messages;
    expect(second.some((m) => m.role === 'system' && m.content.includes('interrupted before the end of the call'))).toBe(true);
    await call.end();
  });

  it('without a goodbye the line hangs up once the reply has played out', async () => {
    const call = await callWithTools([{ name: 'end_call', action: { type: 'end_call' } }], {
      llm: { reply: () => ({ text: 'goodbye', toolCalls: [END] }) },
    });
    call.fake.say('thanks');
    expect(await call.runUntil(() => call.of('callEnded').length === 1, 10_000)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['goodbye']);
    expect(call.fake.stats.hangups).toEqual(['end-call']);
  });

  it('a reply with only the tool call (no words) still ends the call', async () => {
    const call = await callWithTools([{ name: 'end_call', action: { type: 'end_call', goodbye: 'goodbye' } }], {
      llm: { reply: () => ({ toolCalls: [END] }) },
    });
    call.fake.say('thanks');
    expect(await call.runUntil(() => call.of('callEnded').length === 1, 10_000)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['goodbye']);
    expect(call.fake.stats.hangups).toEqual(['end-call']);
  });
});

describe('transfer_call', () => {
  const tools: ToolsInput = [{ name: 'transfer_call', action: { type: 'transfer_call', to: '+14155550123', announcement: 'okay wait here' } }];

  it('says the announcement, then hands the caller to the target through the channel', async () => {
    const call = await callWithTools(tools, {
      channel: { transfer: () => undefined },
      llm: { reply: () => ({ text: 'sure', toolCalls: [TRANSFER] }) },
    });
    call.fake.say('hello');
    expect(await call.runUntil(() => call.of('callEnded').length === 1, 10_000)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['sure', 'okay', 'wait', 'here']);
    expect(call.fake.stats.transfers).toEqual(['+14155550123']);
    // The carrier has the caller: our side stops without hanging the line up.
    expect(call.fake.stats.hangups).toEqual([]);
    expect(call.of('callEnded')[0]!.reason).toBe('transferred');
    expect(call.llm.stats.requests).toHaveLength(1);
  });

  it('a channel without transfer: the model is told so and answers; the call goes on', async () => {
    const call = await callWithTools(tools, {
      llm: { reply: (m) => (lastIsTool(m) ? 'sorry no' : { toolCalls: [TRANSFER] }) },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    const result = JSON.parse(call.of('toolCall')[0]!.result) as { error: string };
    expect(result.error).toMatch(/cannot be transferred/);
    expect(call.fake.heardWords()).toEqual(['sorry', 'no']);
    expect(call.llm.stats.requests).toHaveLength(2);
    expect(call.of('callEnded')).toHaveLength(0);
    await call.end();
  });

  it('a transfer the carrier refuses: the fallback message is said and the call goes on', async () => {
    const call = await callWithTools(tools, {
      config: { fallbackMessage: 'sorry trouble' },
      channel: {
        transfer: () => {
          throw new Error('carrier said no');
        },
      },
      llm: { reply: (m) => (lastUserText(m) === 'hello' ? { text: 'sure', toolCalls: [TRANSFER] } : 'okay') },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.metrics().some((m) => m.kind === 'fallback'), 10_000);
    expect(call.fake.stats.transfers).toEqual(['+14155550123']);
    expect(call.of('providerError').map((e) => [e.provider, e.action])).toEqual([['transfer_call', 'fallbackMessage']]);
    expect(call.fake.heardWords()).toEqual(['sure', 'okay', 'wait', 'here', 'sorry', 'trouble']);
    expect(call.of('callEnded')).toHaveLength(0);
    call.fake.say('thanks');
    expect(await call.runUntil(() => call.of('userMessage').length === 2, 8_000)).toBe(true);
    await call.end();
  });
});

describe('filler phrase while a slow tool runs', () => {
  const tools: ToolsInput = [{ name: 'lookup', action: { type: 'knowledge_lookup' }, fillerPhrase: 'okay wait', fillerAfterMs: 700 }];
  const slowSearch = (delayMs: number) => (clock: () => TestCall['clock']) => async () => {
    await new Promise<void>((r) => clock().setTimeout(r, delayMs));
    return [{ text: 'sunny and warm', source: { title: 'forecast' } }];
  };
  const llm = { reply: (m: readonly ChatMessage[]) => (lastIsTool(m) ? 'it is sunny' : { toolCalls: [LOOKUP] }) };

  it('is said once when the tool has not answered after fillerAfterMs', async () => {
    const call = await callWithTools(tools, { llm, search: slowSearch(2_500) });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 12_000);
    expect(call.fake.heardWords()).toEqual(['okay', 'wait', 'it', 'is', 'sunny']);
    expect(JSON.parse(call.of('toolCall')[0]!.result)).toEqual({ passages: [{ text: 'sunny and warm', source: 'forecast' }] });
    await call.end();
  });

  it('is not said when the tool answers in time', async () => {
    const call = await callWithTools(tools, { llm, search: slowSearch(300) });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 12_000);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    await call.end();
  });
});

for (const backend of sqlBackends()) {
  describe(`tool calls persisted (${backend.name})`, () => {
    let db: SqlClient;
    beforeAll(async () => {
      db = await backend.open();
    }, 60_000);
    afterAll(async () => {
      await db?.close();
    });

    it('the call and its result land in the conversation messages, in order', async () => {
      const { conversationId } = await seed(db);
      const writer = createBatchedWriter<ConversationOp>({ apply: createConversationOpsApplier(db), clock: createFakeClock() });
      const recorder = createCallRecorder({ conversationId, writer });
      const call = await callWithTools([{ name: 'lookup', action: { type: 'knowledge_lookup' } }], {
        observer: recorder,
        llm: { reply: (m) => (lastIsTool(m) ? 'it is sunny' : { toolCalls: [LOOKUP] }) },
        search: () => async () => [{ text: 'sunny and warm' }],
      });
      call.fake.say('what is the weather today');
      await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
      await call.end();
      expect(await writer.flush()).toEqual({ status: 'flushed' });
      const rows = await createConversationStore(db).messages(conversationId);
      expect(rows.map((m) => ({ role: m.role, text: m.text, toolCalls: m.toolCalls, toolCallId: m.toolCallId }))).toEqual([
        { role: 'user', text: 'what is the weather today', toolCalls: undefined, toolCallId: undefined },
        { role: 'assistant', text: '', toolCalls: [LOOKUP], toolCallId: undefined },
        { role: 'tool', text: '{"passages":[{"text":"sunny and warm"}]}', toolCalls: undefined, toolCallId: 'call-lookup' },
        { role: 'assistant', text: 'it is sunny', toolCalls: undefined, toolCallId: undefined },
      ]);
      await writer.close();
    }, 60_000);
  });
}
