import { describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../shared/audio/format';
import type { Channel } from '../../shared/contracts/channel';
import type { Clock } from '../../shared/contracts/clock';
import { ProviderError } from '../../shared/contracts/errors';
import type { ChatMessage, ToolCall, ToolExecutor } from '../../shared/contracts/llm';
import type { Vad } from '../../shared/contracts/vad';
import { startCall, type TestCall } from '../fakes/call';
import { lastUserText } from '../fakes/llm';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';
const WEATHER_CALL: ToolCall = { id: 'call-1', name: 'weather', arguments: '{"day":"today"}' };

/** A tool executor on the test's clock: `run` decides each result (or throws); `delayMs` makes it slow. */
function fakeTools(opts: { clock: () => Clock; run?: (call: ToolCall) => string; delayMs?: number; ignoresAbort?: boolean }) {
  const executed: { call: ToolCall; abortedAtEnd: boolean }[] = [];
  const tools: ToolExecutor = {
    definitions: [{ name: 'weather', description: 'the weather for a day', parameters: { type: 'object', properties: { day: { type: 'string' } } } }],
    execute(call, signal) {
      return new Promise<string>((resolve, reject) => {
        const finish = () => {
          executed.push({ call, abortedAtEnd: signal.aborted });
          try {
            resolve((opts.run ?? (() => 'sunny and warm'))(call));
          } catch (error) {
            reject(error as Error);
          }
        };
        if (!opts.delayMs) return finish();
        const handle = opts.clock().setTimeout(finish, opts.delayMs);
        if (!opts.ignoresAbort) {
          signal.addEventListener('abort', () => {
            opts.clock().clearTimeout(handle);
            const e = new Error('aborted');
            e.name = 'AbortError';
            reject(e);
          });
        }
      });
    },
  };
  return { tools, executed };
}

/** The call's clock, available once startCall returned (tools are created before it). */
function clockRef() {
  let call: TestCall | undefined;
  return { set: (c: TestCall) => (call = c), clock: () => call!.clock };
}

/** Every assistant message with tool calls is followed at once by one tool message per call id. */
function unansweredToolCalls(history: readonly ChatMessage[]): string[] {
  const out: string[] = [];
  history.forEach((m, i) => {
    if (m.role !== 'assistant' || !m.toolCalls?.length) return;
    const answers = new Set<string>();
    for (let j = i + 1; j < history.length && history[j]!.role === 'tool'; j++) answers.add(history[j]!.toolCallId ?? '');
    for (const c of m.toolCalls) if (!answers.has(c.id)) out.push(c.id);
  });
  return out;
}

const roles = (messages: readonly ChatMessage[]) => messages.map((m) => m.role);
const lastIsTool = (m: readonly ChatMessage[]) => m.at(-1)?.role === 'tool';

describe('tool calls', () => {
  it('runs the tool, records the call and its result, asks again and speaks the second answer', async () => {
    const ref = clockRef();
    const { tools, executed } = fakeTools({ clock: ref.clock });
    const call = await startCall({
      tools,
      llm: { reply: (m) => (lastIsTool(m) ? `it is ${m.at(-1)!.content}` : { toolCalls: [WEATHER_CALL] }) },
    });
    ref.set(call);
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);

    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny', 'and', 'warm']);
    expect(executed.map((e) => e.call)).toEqual([WEATHER_CALL]);
    expect(call.llm.stats.requests).toHaveLength(2);
    expect(call.llm.stats.requests[0]!.tools.map((t) => t.name)).toEqual(['weather']);
    expect(roles(call.llm.stats.requests[1]!.messages)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today' },
      { role: 'assistant', content: '', toolCalls: [WEATHER_CALL] },
      { role: 'tool', content: 'sunny and warm', toolCallId: 'call-1' },
      { role: 'assistant', content: 'it is sunny and warm' },
    ]);
    expect(call.of('toolCall').map((e) => [e.name, e.arguments, e.result])).toEqual([['weather', '{"day":"today"}', 'sunny and warm']]);
    // Tokens of both rounds: 2 then 4 messages in (10 each), 0 then 5 tokens out.
    const m = call.metrics().find((x) => x.kind === 'reply')!;
    expect([m.inputTokens, m.outputTokens]).toEqual([60, 5]);
    await call.end();
  });

  it('maxToolRounds bounds the loop: the last round\'s tool calls are not run and the turn still ends', async () => {
    const ref = clockRef();
    const { tools, executed } = fakeTools({ clock: ref.clock });
    const call = await startCall({
      tools,
      config: { maxToolRounds: 2 },
      llm: { reply: () => ({ text: 'wait', toolCalls: [WEATHER_CALL] }) },
    });
    ref.set(call);
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    await call.run(1000);
    expect(call.llm.stats.requests).toHaveLength(3);
    expect(executed).toHaveLength(2);
    expect(call.of('toolCall')).toHaveLength(2);
    expect(call.fake.heardWords()).toEqual(['wait', 'wait', 'wait']);
    expect(call.of('assistantMessage').map((e) => e.text)).toEqual(['wait wait wait']);
    expect(unansweredToolCalls(call.comm.history)).toEqual([]);
    // The call goes on: the caller is heard again.
    call.fake.say('thanks');
    await call.runUntil(() => call.of('userMessage').length === 2, 5000);
    expect(call.of('userMessage').map((e) => e.text)).toEqual(['hello', 'thanks']);
    await call.end();
  });

  it('a throwing tool becomes an "Error: ..." tool result and the call goes on', async () => {
    const ref = clockRef();
    const { tools } = fakeTools({
      clock: ref.clock,
      run: () => {
        throw new Error('backend down');
      },
    });
    const call = await startCall({
      tools,
      llm: {
        reply: (m) => {
          if (lastIsTool(m)) return m.at(-1)!.content.startsWith('Error:') ? 'sorry trouble' : 'it is sunny';
          return lastUserText(m) === 'what is the weather today' ? { toolCalls: [WEATHER_CALL] } : 'okay';
        },
      },
    });
    ref.set(call);
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    expect(call.fake.heardWords()).toEqual(['sorry', 'trouble']);
    expect(call.comm.history.find((m) => m.role === 'tool')).toEqual({ role: 'tool', content: 'Error: backend down', toolCallId: 'call-1' });
    expect(call.of('toolCall').map((e) => e.result)).toEqual(['Error: backend down']);
    expect(call.of('providerError')).toEqual([]);

    call.fake.say('thanks');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 8000);
    expect(call.of('assistantMessage').map((e) => e.text)).toEqual(['sorry trouble', 'okay']);
    await call.end();
  });

  it('a barge-in while a tool runs leaves no unanswered tool call in the history', async () => {
    const ref = clockRef();
    const { tools, executed } = fakeTools({ clock: ref.clock, delayMs: 3000 });
    const call = await startCall({
      tools,
      llm: {
        reply: (m) => {
          if (lastIsTool(m)) return 'it is sunny';
          return lastUserText(m) === 'what is the weather today' ? { toolCalls: [WEATHER_CALL] } : 'okay';
        },
      },
    });
    ref.set(call);
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.llm.stats.requests.length === 1, 5000);
    await call.run(500); // the tool is running
    call.fake.say('stop');
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 3000);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    await call.run(4000);

    expect(executed).toHaveLength(0); // the tool saw the abort and gave up
    expect(call.of('toolCall')).toEqual([]);
    expect(unansweredToolCalls(call.comm.history)).toEqual([]);
    for (const r of call.llm.stats.requests) expect(unansweredToolCalls(r.messages)).toEqual([]);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today stop' },
      { role: 'assistant', content: 'okay' },
    ]);
    expect(call.fake.heardWords()).toEqual(['okay']);
    await call.end();
  });

  it('a tool that finishes after the caller hung up reports nothing more and asks the LLM nothing more', async () => {
    const ref = clockRef();
    const { tools, executed } = fakeTools({ clock: ref.clock, delayMs: 2000, ignoresAbort: true });
    const call = await startCall({ tools, llm: { reply: (m) => (lastIsTool(m) ? 'it is sunny' : { toolCalls: [WEATHER_CALL] }) } });
    ref.set(call);
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.llm.stats.requests.length === 1, 5000);
    await call.run(1000);
    call.fake.farEndHangup();
    await call.run(3000);
    expect(executed).toEqual([{ call: WEATHER_CALL, abortedAtEnd: true }]); // it really finished, late
    const endedAt = call.events.findIndex((e) => e.type === 'callEnded');
    expect(endedAt).toBeGreaterThan(0);
    expect(call.events.slice(endedAt + 1)).toEqual([]);
    expect(call.of('toolCall')).toEqual([]);
    expect(call.llm.stats.requests).toHaveLength(1);
  });

  it('preemptive generation with a tool round keeps the caller\'s message before the tool call', async () => {
    const ref = clockRef();
    const { tools } = fakeTools({ clock: ref.clock });
    const call = await startCall({
      tools,
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
      llm: { reply: (m) => (lastIsTool(m) ? 'it is sunny' : { toolCalls: [WEATHER_CALL] }) },
    });
    ref.set(call);
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    expect(call.metrics()[0]!.preemptive).toBe(true);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(roles(call.llm.stats.requests[1]!.messages)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(roles(call.comm.history)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant']);
    expect(call.comm.history[1]).toEqual({ role: 'user', content: 'what is the weather today' });
    await call.end();
  });

  it('a discarded preemptive reply never runs its tools and leaves none of its tool messages in the history', async () => {
    const ref = clockRef();
    const { tools, executed } = fakeTools({ clock: ref.clock });
    const call = await startCall({
      tools,
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
      llm: { reply: (m) => (lastIsTool(m) ? 'it is sunny' : { toolCalls: [{ ...WEATHER_CALL, id: `call-${lastUserText(m).split(' ').length}` }] }) },
    });
    ref.set(call);
    const spokenMs = call.fake.say('what is');
    await call.run(spokenMs + 350); // preemptive reply on "what is": its tool call waits for the turn to be confirmed
    expect(call.llm.stats.requests).toHaveLength(1);
    expect(executed).toEqual([]);
    call.fake.say('the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    // Only the confirmed reply's tool ran: the speculative one had no side effects.
    expect(executed.map((e) => e.call.id)).toEqual(['call-5']);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today' },
      { role: 'assistant', content: '', toolCalls: [{ ...WEATHER_CALL, id: 'call-5' }] },
      { role: 'tool', content: 'sunny and warm', toolCallId: 'call-5' },
      { role: 'assistant', content: 'it is sunny' },
    ]);
    await call.end();
  });
});

describe('the caller speaks again while the assistant is thinking', () => {
  const reply = (m: readonly ChatMessage[]) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny' : 'sorry');

  it('cancels the pending reply (never heard) and answers both utterances as one user message', async () => {
    const call = await startCall({ llm: { reply, firstTokenDelayMs: 2500 } });
    call.fake.say('what is');
    await call.runUntil(() => call.llm.stats.requests.length === 1, 5000);
    await call.run(300);
    call.fake.say('the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    await call.run(500);

    expect(call.of('interruption').map((e) => e.phase)).toContain('confirmed');
    expect(call.llm.stats.aborted).toBe(1);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.of('userMessage').map((e) => e.text)).toEqual(['what is', 'the weather today']);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today' },
      { role: 'assistant', content: 'it is sunny' },
    ]);
    expect(lastUserText(call.llm.stats.requests[1]!.messages)).toBe('what is the weather today');
    const [cut, answer] = call.metrics();
    expect(cut).toMatchObject({ kind: 'reply', interrupted: true });
    expect(cut!.firstAudioOut).toBeUndefined();
    expect(answer).toMatchObject({ kind: 'reply', interrupted: false });
    await call.end();
  });

  it('with an STT that only sends finals, the words that end the turn still interrupt the thinking assistant', async () => {
    const call = await startCall({ llm: { reply, firstTokenDelayMs: 2500 }, stt: { interim: false } });
    call.fake.say('what is');
    await call.runUntil(() => call.llm.stats.requests.length === 1, 5000);
    await call.run(300);
    call.fake.say('the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today' },
      { role: 'assistant', content: 'it is sunny' },
    ]);
    await call.end();
  });

  it('with an STT that only sends finals, a real word over the assistant\'s speech interrupts it (not dropped as a backchannel)', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m).startsWith('tell me a story') ? STORY : 'okay sure'), firstTokenDelayMs: 100, tokenDelayMs: 20 },
      stt: { interim: false },
    });
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.played.length > 0, 5000);
    await call.run(1500);
    call.fake.say('stop');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 20_000);
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'confirmed']);
    const story = call.comm.history.find((m) => m.role === 'assistant')!;
    expect(story.interrupted).toBe(true);
    expect(call.comm.history.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['tell me a story', 'stop']);
    expect(call.comm.history.at(-1)).toEqual({ role: 'assistant', content: 'okay sure' });
    await call.end();
  });
});

describe('idle timer', () => {
  it('without a greeting, runs from the start of the call', async () => {
    const call = await startCall({ config: { idle: { timeoutMs: 3000, reprompts: ['are you still there'], maxReprompts: 1, hangupMessage: 'goodbye' } } });
    await call.runUntil(() => call.of('idleReprompt').length === 1, 6000);
    const reprompt = call.of('idleReprompt')[0]!;
    expect(reprompt.atMs - call.of('callStarted')[0]!.atMs).toBe(3000);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['are', 'you', 'still', 'there']);
    await call.end();
  });

  it('a sound without words (a cough) while the caller should answer restarts the idle clock; it does not stop it', async () => {
    const call = await startCall({
      config: { greeting: 'hello', idle: { timeoutMs: 3000, reprompts: ['are you still there'], maxReprompts: 1, hangupMessage: 'goodbye' } },
    });
    await call.runUntil(() => call.of('assistantMessage').length === 1, 3000);
    await call.run(1000);
    const coughAt = call.clock.now();
    call.fake.noise(300);
    await call.runUntil(() => call.of('idleReprompt').length === 1, 10_000);
    expect(call.of('userSpeechStarted')).toHaveLength(1);
    expect(call.of('userMessage')).toEqual([]);
    const reprompt = call.of('idleReprompt')[0]!;
    expect(reprompt.atMs - coughAt).toBeGreaterThanOrEqual(3300);
    expect(reprompt.atMs - coughAt).toBeLessThan(3700);
    await call.end();
  });
});

describe('the end of a call', () => {
  /** Counts every play() the engine makes, even the ones a closed channel would swallow. */
  function countingChannel() {
    const counter = { plays: 0 };
    return {
      counter,
      wrap: (c: Channel): Channel => ({
        ...c,
        play(frame: AudioFrame) {
          counter.plays++;
          c.play(frame);
        },
      }),
    };
  }

  it('the caller hanging up mid-answer records what was heard, cancels LLM and TTS, and nothing plays after', async () => {
    const counting = countingChannel();
    const call = await startCall({
      wrapChannel: counting.wrap,
      // 20 tokens 300 ms apart: the LLM is still streaming when the caller hangs up.
      llm: { reply: () => STORY, firstTokenDelayMs: 100, tokenDelayMs: 300 },
    });
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.played.length > 0, 5000);
    await call.run(1500);
    const playsBefore = counting.counter.plays;
    call.fake.farEndHangup('caller-hangup');
    expect(await call.comm.ended).toBe('caller-hangup');
    await call.run(5000);

    const story = call.comm.history.find((m) => m.role === 'assistant')!;
    expect(story.interrupted).toBe(true);
    const heard = call.fake.heardWords();
    expect(heard.length).toBeGreaterThan(2);
    expect(story.content.split(' ')).toEqual(heard);
    expect(call.llm.stats.aborted).toBe(1);
    expect(call.tts.stats.cancelled).toBe(1);
    expect(call.metrics()).toHaveLength(1);
    expect(call.metrics()[0]).toMatchObject({ kind: 'reply', interrupted: true });
    expect(call.of('callEnded')).toHaveLength(1);
    expect(playsBefore).toBeGreaterThan(0);
    expect(counting.counter.plays).toBe(playsBefore); // not one play() after the hang-up
    expect(call.events.at(-1)!.type).toBe('callEnded');
    expect(call.stt.stats.closed).toBe(1);
    expect(call.fake.stats.hangups).toEqual([]); // the caller hung up: nothing to hang up on our side
  });

  it('end() twice (and concurrently) ends once, with the first reason; nothing is emitted afterwards', async () => {
    const call = await startCall({ config: { greeting: 'hello welcome hello welcome' } });
    await call.run(300);
    const first = call.comm.end('first');
    const second = call.comm.end('second');
    await Promise.all([first, second]);
    await call.comm.end('third');
    expect(await call.comm.ended).toBe('first');
    expect(call.of('callEnded').map((e) => e.reason)).toEqual(['first']);
    const count = call.events.length;
    call.fake.say('hello');
    call.fake.pressDigit('1');
    await call.run(5000);
    expect(call.events).toHaveLength(count);
    expect(call.stt.stats.closed).toBe(1);
    expect(call.of('assistantMessage')).toEqual([{ type: 'assistantMessage', turnId: 1, text: expect.any(String), generatedText: expect.any(String), interrupted: true, atMs: 1300 }]);
  });

  it('a carrier that fails to hang up still ends the call (no unhandled rejection)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const call = await startCall({
      wrapChannel: (c) => ({
        ...c,
        async hangup(reason) {
          await c.hangup(reason);
          throw new Error('carrier REST 500');
        },
      }),
      config: { greeting: 'hello', idle: { timeoutMs: 1000, reprompts: ['are you still there'], maxReprompts: 0, hangupMessage: 'goodbye' } },
    });
    await call.runUntil(() => call.fake.stats.hangups.length > 0, 10_000);
    await call.run(500);
    await new Promise<void>((r) => setTimeout(r, 10)); // unhandled rejections are reported after a macrotask
    process.off('unhandledRejection', onUnhandled);
    expect(await call.comm.ended).toBe('idle-timeout');
    expect(call.of('callEnded')).toHaveLength(1);
    expect(unhandled).toEqual([]);
  });
});

describe('odd replies', () => {
  it('an empty LLM reply: nothing is spoken, the turn completes, the idle clock runs again', async () => {
    const call = await startCall({
      llm: { reply: () => '' },
      config: { idle: { timeoutMs: 2000, reprompts: ['are you still there'], maxReprompts: 1, hangupMessage: 'goodbye' } },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.metrics().length === 1, 5000);
    const m = call.metrics()[0]!;
    expect(m).toMatchObject({ kind: 'reply', interrupted: false });
    expect(m.ttsRequest).toBeUndefined();
    expect(m.firstAudioOut).toBeUndefined();
    expect(call.tts.stats.streams).toBe(0);
    expect(call.of('assistantMessage')).toEqual([]);
    const doneAt = call.clock.now();
    await call.runUntil(() => call.of('idleReprompt').length === 1, 5000);
    expect(call.of('idleReprompt')[0]!.atMs - doneAt).toBeLessThanOrEqual(2000);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['are', 'you', 'still', 'there']);
    expect(call.of('providerError')).toEqual([]);
    await call.end();
  });

  it('an LLM that fails during preemptive generation: the fallback waits for the end of the turn and the caller\'s words are kept', async () => {
    const call = await startCall({
      llm: { reply: () => new ProviderError('LLM_AUTH', 'the API key was rejected (401)', false, 'auth') },
      config: { fallbackMessage: 'sorry trouble again', turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
    });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    const userMessage = call.of('userMessage');
    expect(userMessage.map((e) => e.text)).toEqual(['what is the weather today']);
    const fallback = call.metrics().find((m) => m.kind === 'fallback')!;
    expect(fallback.ttsRequest!).toBeGreaterThanOrEqual(userMessage[0]!.atMs);
    expect(call.fake.heardWords()).toEqual(['sorry', 'trouble', 'again']);
    expect(call.comm.history.slice(1)).toEqual([
      { role: 'user', content: 'what is the weather today' },
      { role: 'assistant', content: 'sorry trouble again' },
    ]);
    await call.end();
  });
});

describe('provider failures racing the turn', () => {
  it('an LLM failing after part of its answer: the part is spoken and kept, no retry, no fallback message', async () => {
    const call = await startCall({
      llm: {
        reply: (m) => (lastUserText(m) === 'hello' ? 'it is sunny. and warm today.' : 'okay'),
        tokenDelayMs: 30,
        failAfterTokens: { tokens: 3, error: new ProviderError('LLM_UNAVAILABLE', 'stream reset', true) },
      },
      llmFallbacks: [{ reply: () => 'sorry' }],
      config: { fallbackMessage: 'sorry trouble again' },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    await call.run(500);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.of('providerError').map((e) => [e.stage, e.provider, e.action])).toEqual([['llm', 'fake-llm-0', 'ignored']]);
    expect(call.llm.stats.requests).toHaveLength(1);
    expect(call.llms[1]!.stats.requests).toHaveLength(0);
    expect(call.comm.history.at(-1)).toEqual({ role: 'assistant', content: 'it is sunny.' });
    expect(call.metrics()[0]).toMatchObject({ kind: 'reply', interrupted: false, providers: { llm: 'fake-llm-0' } });
    await call.end();
  });

  it('a TTS error that arrives after the turn was cancelled changes nothing (no fallback TTS, no error reported)', async () => {
    const story = 'once upon a time. there was a dragon. and the dragon was warm. and the dragon was sunny.';
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'stop' ? 'okay' : story), tokenDelayMs: 20 },
      tts: { realTimeFactor: 1, ignoresCancel: true, failAfterPieces: { pieces: 2, error: new ProviderError('TTS_QUOTA', 'quota exceeded', false, 'quota') } },
      ttsFallbacks: [{}],
    });
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.played.length > 0, 5000);
    await call.run(600);
    call.fake.say('stop');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 10_000);
    await call.run(3000);
    expect(call.tts.stats.eventsAfterCancel).toBeGreaterThan(0); // the late error really came
    expect(call.of('providerError')).toEqual([]);
    expect(call.ttss[1]!.stats.streams).toBe(0);
    expect(call.metrics().map((m) => m.providers.tts)).toEqual(['fake-tts-0', 'fake-tts-0']);
    expect(call.comm.history.at(-1)).toEqual({ role: 'assistant', content: 'okay' });
    await call.end();
  });
});

describe('inbound audio under load', () => {
  /** An energy VAD that answers at once, except for its `stallAtFrame`-th frame: that answer takes `stallMs`. */
  function stallingVad(clock: () => Clock, stallAtFrame: number, stallMs: number): Vad & { frames: number } {
    const vad = {
      id: 'webrtc' as const,
      frames: 0,
      process(pcm: Int16Array): number | Promise<number> {
        vad.frames++;
        let energy = 0;
        for (const s of pcm) energy += s * s;
        const p = Math.sqrt(energy / pcm.length) > 300 ? 1 : 0;
        if (vad.frames !== stallAtFrame) return p;
        return new Promise<number>((r) => clock().setTimeout(() => r(p), stallMs));
      },
      reset() {},
      close() {},
    };
    return vad;
  }

  it('a stalled VAD makes the bounded queue drop the oldest frames and report each overflow', async () => {
    const ref = clockRef();
    const vad = stallingVad(ref.clock, 10, 1000);
    const call = await startCall({ vad, maxInboundFrames: 10 });
    ref.set(call);
    await call.run(1500);
    const overflows = call.of('inboundOverflow');
    // The 10th frame (arrived at 1200) stalls the VAD until 2200; the 49 frames arriving meanwhile (1220..2180)
    // find a queue of 10: 39 are dropped, one event each, the first when the 21st frame arrives.
    expect(overflows).toHaveLength(39);
    expect(overflows.every((e) => e.droppedFrames === 1)).toBe(true);
    expect(overflows[0]!.atMs).toBe(1000 + 20 * 21);
    // The STT still hears every frame (it is written before the VAD queue); only the VAD skips the dropped ones.
    expect(call.stt.stats.framesReceived).toBe(call.fake.stats.inboundSent);
    expect(call.fake.stats.inboundSent - vad.frames).toBe(39);
    await call.end();
  });

  it('frames delivered together in one burst all reach the STT and VAD at once (none wait for the next burst)', async () => {
    let delivered = 0;
    const call = await startCall({
      wrapChannel: (c) => ({
        ...c,
        start(handlers) {
          const burst: AudioFrame[] = [];
          c.start({
            ...handlers,
            onAudio(frame) {
              burst.push(frame);
              if (burst.length < 5) return;
              for (const f of burst.splice(0)) {
                delivered++;
                handlers.onAudio(f);
              }
            },
          });
        },
      }),
    });
    await call.run(1000);
    expect(delivered).toBe(50);
    expect(call.stt.stats.framesReceived).toBe(delivered);
    await call.end();
  });
});

describe('metrics', () => {
  it('a reply turn has every timeline mark, in order, with tokens and providers', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny and warm today', firstTokenDelayMs: 200, tokenDelayMs: 30 },
      tts: { firstAudioDelayMs: 80 },
      stt: { latencyMs: 40 },
    });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.metrics().length === 1, 8000);
    const m = call.metrics()[0]!;
    const marks = [m.userSpeechEnd, m.sttFinal, m.llmRequest, m.llmFirstToken, m.ttsRequest, m.ttsFirstAudio, m.firstAudioOut];
    expect(marks.every((x) => typeof x === 'number')).toBe(true);
    const sorted = [...(marks as number[])].sort((a, b) => a - b);
    expect(marks).toEqual(sorted);
    expect(m.llmFirstToken! - m.llmRequest!).toBe(200);
    expect(m.ttsFirstAudio! - m.ttsRequest!).toBe(80);
    expect(m.voiceToVoiceMs).toBe(m.firstAudioOut! - m.userSpeechEnd!);
    expect(m.overheadMs).toBeDefined();
    expect(m).toMatchObject({ kind: 'reply', interrupted: false, inputTokens: 20, outputTokens: 6, providers: { stt: 'fake-stt-0', llm: 'fake-llm-0', tts: 'fake-tts-0' } });
    await call.end();
  });

  it('an interrupted greeting is cut to the heard words, flagged in its metrics, and the reply follows', async () => {
    const call = await startCall({
      config: { greeting: 'hello welcome hello welcome hello welcome hello welcome hello welcome' },
      llm: { reply: (m) => (lastUserText(m) === 'tell me a joke' ? 'sure' : 'sorry') },
    });
    await call.run(800);
    call.fake.say('tell me a joke');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 8000);
    const pause = call.of('interruption').find((e) => e.phase === 'paused')!;
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'confirmed']);
    const greeting = call.comm.history[1]!;
    expect(greeting.interrupted).toBe(true);
    expect(greeting.content.split(' ')).toEqual(call.fake.heardWords(0, pause.atMs + 1));
    expect(greeting.content.split(' ').length).toBeLessThan(10);
    expect(call.comm.history.slice(2)).toEqual([
      { role: 'user', content: 'tell me a joke' },
      { role: 'assistant', content: 'sure' },
    ]);
    const [g, r] = call.metrics();
    expect(g).toMatchObject({ kind: 'greeting', interrupted: true });
    expect(g!.userSpeechEnd).toBeUndefined();
    expect(r).toMatchObject({ kind: 'reply', interrupted: false });
    expect(call.fake.heardWords(pause.atMs + 1)).toEqual(['sure']);
    await call.end();
  });
});

describe('DTMF while the assistant holds the floor', () => {
  it('keys pressed during a greeting that cannot be interrupted by keys reach the LLM afterwards, as DTMF', async () => {
    const call = await startCall({
      config: { greeting: 'hello welcome hello welcome', dtmf: { bargeIn: false } },
      llm: { reply: (m) => (lastUserText(m).includes('42') ? 'thanks' : 'no') },
    });
    await call.run(300);
    for (const d of ['4', '2', '#']) call.fake.pressDigit(d);
    await call.runUntil(() => call.of('assistantMessage').length === 2, 8000);
    expect(call.of('interruption')).toEqual([]);
    expect(call.of('assistantMessage').map((e) => e.text)).toEqual(['hello welcome hello welcome', 'thanks']);
    expect(call.of('userMessage').map((e) => [e.text, e.source])).toEqual([['The caller pressed the keys: 42', 'dtmf']]);
    await call.end();
  });
});
