import { describe, expect, it } from 'vitest';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

const answer = (m: Parameters<typeof lastUserText>[0]) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny' : 'sorry');

describe('end of turn', () => {
  it('waits for the configured VAD silence, then sends the LLM request at once', async () => {
    const call = await startCall({ llm: { reply: answer }, config: { turn: { silenceMs: 700 } } });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.llm.stats.requests.length > 0, 5000);
    const ended = call.of('userSpeechEnded')[0]!;
    const message = call.of('userMessage')[0]!;
    expect(message.text).toBe('what is the weather today');
    // The turn ends after the caller's last sound + 700 ms of silence (one frame of slack), not earlier.
    expect(message.atMs - ended.atMs).toBeGreaterThanOrEqual(700);
    expect(message.atMs - ended.atMs).toBeLessThanOrEqual(720);
    const m = await finishReply(call);
    expect(m.llmRequest).toBe(message.atMs);
    await call.end();
  });

  it('a pause shorter than the silence keeps one turn', async () => {
    const call = await startCall({ llm: { reply: () => 'okay' } });
    const spokenMs = call.fake.say('what is');
    await call.run(spokenMs + 300);
    call.fake.say('the weather today');
    await call.runUntil(() => call.of('userMessage').length > 0, 5000);
    await call.run(1000);
    expect(call.of('userMessage').map((e) => e.text)).toEqual(['what is the weather today']);
    await call.end();
  });

  it('asks the STT to finalize pending interim words and ends the turn on its final', async () => {
    const call = await startCall({ llm: { reply: () => 'okay' } });
    call.fake.say('hello');
    await call.runUntil(() => call.of('userMessage').length > 0, 5000);
    expect(call.stt.stats.finalizeCalls).toBe(1);
    expect(call.stt.stats.transcripts).toEqual(['hello']);
    const ended = call.of('userSpeechEnded')[0]!;
    expect(call.of('userMessage')[0]!.atMs - ended.atMs).toBeLessThanOrEqual(520);
    await call.end();
  });

  it('takes the interim text after finalWaitMs when the final never comes', async () => {
    const call = await startCall({ llm: { reply: () => 'okay' }, stt: { ignoresFinalize: true }, config: { turn: { finalWaitMs: 300 } } });
    call.fake.say('hello');
    await call.runUntil(() => call.of('userMessage').length > 0, 5000);
    const ended = call.of('userSpeechEnded')[0]!;
    const message = call.of('userMessage')[0]!;
    expect(message.text).toBe('hello');
    expect(call.stt.stats.transcripts).toEqual([]); // no final ever came
    expect(message.atMs - ended.atMs).toBeGreaterThanOrEqual(800);
    expect(message.atMs - ended.atMs).toBeLessThanOrEqual(840);
    await call.end();
  });

  it('honours the STT\'s own end-of-turn event before the VAD silence runs out', async () => {
    const call = await startCall({
      llm: { reply: answer },
      stt: { autoFinalSilenceMs: 200, endOfTurnEvents: true },
      config: { turn: { silenceMs: 1500 } },
    });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('userMessage').length > 0, 5000);
    const spoke = call.fake.stats.inboundSent;
    expect(spoke).toBeGreaterThan(0);
    const ended = call.of('userMessage')[0]!;
    // Caller audio ended ~1.7 s after the start; with a 1.5 s VAD silence the turn would end ≥ 3.2 s in.
    expect(ended.atMs - 1000).toBeLessThan(2400);
    expect(call.stt.stats.finalizeCalls).toBe(0);
    await call.end();
  });

  it('preemptive generation starts the LLM during the pause and adopts it when the transcript holds', async () => {
    const call = await startCall({
      llm: { reply: answer, firstTokenDelayMs: 400 },
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
    });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length > 0, 8000);
    expect(call.llm.stats.requests).toHaveLength(1);
    const m = call.metrics()[0]!;
    expect(m.preemptive).toBe(true);
    // The request left ~400 ms before the turn ended, so the first token was already there at end of turn.
    const message = call.of('userMessage')[0]!;
    expect(m.llmRequest!).toBeLessThan(message.atMs - 300);
    expect(m.llmFirstToken!).toBeLessThanOrEqual(message.atMs + 20);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.comm.history.filter((h) => h.role !== 'system').map((h) => h.content)).toEqual(['what is the weather today', 'it is sunny']);
    await call.end();
  });

  it('preemptive generation is discarded when the caller goes on speaking', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny' : 'no'), firstTokenDelayMs: 400 },
      config: { turn: { preemptiveGeneration: true, preemptiveSilenceMs: 200, silenceMs: 600 } },
    });
    const spokenMs = call.fake.say('what is');
    await call.run(spokenMs + 350); // a 350 ms pause: preemptive fires at 200 ms, the turn has not ended
    call.fake.say('the weather today');
    await call.runUntil(() => call.of('assistantMessage').length > 0, 8000);
    expect(call.llm.stats.requests).toHaveLength(2);
    expect(call.llm.stats.aborted).toBe(1);
    expect(lastUserText(call.llm.stats.requests[0]!.messages)).toBe('what is');
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.comm.history.filter((h) => h.role === 'user').map((h) => h.content)).toEqual(['what is the weather today']);
    await call.end();
  });
});

async function finishReply(call: Awaited<ReturnType<typeof startCall>>) {
  await call.runUntil(() => call.metrics().some((m) => m.kind === 'reply'), 10_000);
  return call.metrics().find((m) => m.kind === 'reply')!;
}
