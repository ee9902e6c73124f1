import { describe, expect, it } from 'vitest';
import { startCall, type TestCall } from '../fakes/call';
import { lastUserText } from '../fakes/llm';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';
const words = (text: string) => text.split(/\s+/).filter(Boolean);
/** The assistantText pieces of one turn, joined as they were sent to speech. */
const piecesOf = (call: TestCall, turnId: number) => call.of('assistantText').filter((e) => e.turnId === turnId).map((e) => e.text);

describe('captions: the caller transcript', () => {
  it('interim transcripts grow word by word, the final holds the utterance, all before the user turn', async () => {
    const call = await startCall({ llm: { reply: () => 'it is sunny' } });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('userMessage').length === 1, 10_000);
    const turn = call.of('userMessage')[0]!;
    const transcripts = call.of('transcript');
    expect(turn).toMatchObject({ text: 'what is the weather today', source: 'speech' });

    const interims = transcripts.filter((t) => !t.final);
    const finals = transcripts.filter((t) => t.final);
    expect(interims.length).toBeGreaterThanOrEqual(3);
    for (const t of interims) expect(words(turn.text).slice(0, words(t.text).length)).toEqual(words(t.text));
    // Captions only lengthen within one utterance.
    for (let i = 1; i < interims.length; i++) expect(words(interims[i]!.text).length).toBeGreaterThanOrEqual(words(interims[i - 1]!.text).length);
    expect(finals.at(-1)?.text).toBe(turn.text);
    expect(transcripts.every((t) => t.atMs <= turn.atMs)).toBe(true);
    await call.end();
  });

  it('the next utterance starts a fresh caption, without the words of the one before', async () => {
    const call = await startCall({ llm: { reply: () => 'okay' } });
    call.fake.say('tell me a joke');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 10_000);
    const before = call.of('transcript').length;
    call.fake.say('thanks');
    await call.runUntil(() => call.of('userMessage').length === 2, 10_000);
    const second = call.of('transcript').slice(before);
    expect(second.length).toBeGreaterThan(0);
    expect(second.map((t) => t.text)).toEqual(second.map(() => 'thanks'));
    expect(second.some((t) => t.final)).toBe(true);
    await call.end();
  });
});

describe('captions: the assistant text', () => {
  it('the greeting and a reply go out as pieces, in order, that add up to the turn (template filled)', async () => {
    const call = await startCall({
      config: { greeting: 'hello {{who}} welcome' },
      variables: { who: 'you' },
      llm: { reply: () => 'it is sunny, and warm today', tokenDelayMs: 30 },
    });
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5_000);
    const greeting = call.of('assistantMessage')[0]!;
    expect(piecesOf(call, greeting.turnId).join('').trim()).toBe('hello you welcome');
    expect(call.of('assistantText').filter((e) => e.turnId === greeting.turnId).every((e) => e.atMs <= greeting.atMs)).toBe(true);

    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 10_000);
    const reply = call.of('assistantMessage')[1]!;
    expect(reply.turnId).not.toBe(greeting.turnId);
    expect(words(piecesOf(call, reply.turnId).join(' '))).toEqual(words('it is sunny, and warm today'));
    expect(piecesOf(call, reply.turnId).length).toBeGreaterThanOrEqual(2);
    expect(words(piecesOf(call, reply.turnId).join(' '))).toEqual(words(reply.generatedText));
    // Streamed: the first clause left before the LLM had finished (30 ms a token, six tokens).
    const metrics = call.metrics().find((m) => m.turnId === reply.turnId)!;
    const first = call.of('assistantText').find((e) => e.turnId === reply.turnId)!;
    expect(first.atMs).toBeLessThan(metrics.llmFirstToken! + 5 * 30);
    expect(call.fake.heardWords(greeting.atMs)).toEqual(words('it is sunny and warm today'));
    await call.end();
  });

  it('a preemptive reply that is discarded sends no text; an adopted one sends its text once it is adopted', async () => {
    const discarded = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny' : 'no sorry'), firstTokenDelayMs: 50 },
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
    });
    const spokenMs = discarded.fake.say('what is');
    await discarded.run(spokenMs + 350); // the preemptive reply to "what is" has its tokens by now, held
    discarded.fake.say('the weather today');
    await discarded.runUntil(() => discarded.of('assistantMessage').length > 0, 8_000);
    expect(discarded.llm.stats.requests).toHaveLength(2);
    expect(lastUserText(discarded.llm.stats.requests[0]!.messages)).toBe('what is');
    expect(discarded.llm.stats.completed).toBe(2); // "no sorry" was generated in full, and held
    expect(discarded.of('assistantText').map((e) => e.text).join(' ')).not.toMatch(/no|sorry/);
    expect(words(discarded.of('assistantText').map((e) => e.text).join(' '))).toEqual(['it', 'is', 'sunny']);
    await discarded.end();

    const adopted = await startCall({
      llm: { reply: () => 'it is sunny', firstTokenDelayMs: 50 },
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
    });
    adopted.fake.say('what is the weather today');
    await adopted.runUntil(() => adopted.of('assistantMessage').length > 0, 8_000);
    expect(adopted.metrics()[0]?.preemptive).toBe(true);
    const userTurn = adopted.of('userMessage')[0]!;
    const texts = adopted.of('assistantText');
    expect(words(texts.map((e) => e.text).join(' '))).toEqual(['it', 'is', 'sunny']);
    // Held while the caller might go on: nothing was shown before the turn was confirmed.
    expect(texts.every((e) => e.atMs >= userTurn.atMs)).toBe(true);
    await adopted.end();
  });
});

describe('typed input: Communication.sendText', () => {
  it('a typed message is a whole user turn: no speech, a reply, and both in the history', async () => {
    const call = await startCall({ config: { greeting: 'hello' }, llm: { reply: (m) => (lastUserText(m) === 'tell me a joke' ? 'okay sure' : 'no') } });
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5_000);
    call.comm.sendText('  tell me a joke ');
    expect(call.of('userMessage')).toEqual([expect.objectContaining({ text: 'tell me a joke', source: 'text' })]);
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5_000);
    expect(lastUserText(call.llm.stats.requests[0]!.messages)).toBe('tell me a joke');
    expect(call.of('transcript')).toEqual([]); // typed, not heard
    expect(call.comm.history.filter((m) => m.role !== 'system').map((m) => [m.role, m.content])).toEqual([
      ['assistant', 'hello'],
      ['user', 'tell me a joke'],
      ['assistant', 'okay sure'],
    ]);
    expect(call.fake.heardWords(call.of('userMessage')[0]!.atMs)).toEqual(['okay', 'sure']);
    await call.end();
  });

  it('typing while the assistant speaks cuts the reply at once and answers the typed turn', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m).startsWith('tell me a story') ? STORY : lastUserText(m) === 'stop' ? 'okay' : 'no'), firstTokenDelayMs: 100, tokenDelayMs: 20 },
    });
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.played.length > 0, 10_000);
    await call.run(1_500);
    const typedAt = call.clock.now();
    call.comm.sendText('stop');
    const story = call.of('assistantMessage')[0]!;
    expect(story.interrupted).toBe(true);
    expect(call.of('interruption')).toEqual([expect.objectContaining({ phase: 'confirmed', turnId: story.turnId, atMs: typedAt })]);
    expect(call.tts.stats.cancelled).toBeGreaterThan(0);
    // The history keeps what was heard of the story (a cut prefix), then the typed turn.
    const heard = call.fake.heardWords(0, typedAt + 1);
    expect(heard.length).toBeGreaterThan(2);
    expect(words(story.text)).toEqual(heard);
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5_000);
    expect(call.comm.history.filter((m) => m.role !== 'system').map((m) => [m.role, m.content])).toEqual([
      ['user', 'tell me a story'],
      ['assistant', story.text],
      ['user', 'stop'],
      ['assistant', 'okay'],
    ]);
    // Nothing more of the story after the cut: the caller hears the answer to what they typed.
    expect(call.fake.heardWords(typedAt + 200)).toEqual(['okay']);
    await call.end();
  });

  it('blank text, and text after the call ended, are ignored', async () => {
    const call = await startCall({ llm: { reply: () => 'okay' } });
    call.comm.sendText('   ');
    call.comm.sendText('');
    await call.run(2_000);
    expect(call.of('userMessage')).toEqual([]);
    expect(call.llm.stats.requests).toHaveLength(0);
    await call.end();
    call.comm.sendText('hello');
    await call.run(1_000);
    expect(call.of('userMessage')).toEqual([]);
    expect(call.llm.stats.requests).toHaveLength(0);
  });

  it('typing during a goodbye does not cut it (not interruptible): the goodbye is heard in full', async () => {
    const call = await startCall({
      config: { idle: { timeoutMs: 1_000, maxReprompts: 0, reprompts: ['are you still there'], hangupMessage: 'thanks goodbye' } },
      llm: { reply: () => 'okay' },
    });
    await call.runUntil(() => call.of('assistantText').some((e) => e.text.includes('goodbye')), 10_000);
    call.comm.sendText('wait');
    await call.runUntil(() => call.of('callEnded').length === 1, 10_000);
    expect(call.of('interruption')).toEqual([]);
    expect(call.of('callEnded')[0]?.reason).toBe('idle-timeout');
    expect(call.fake.heardWords()).toEqual(['thanks', 'goodbye']);
  });
});
