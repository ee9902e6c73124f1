import { describe, expect, it } from 'vitest';
import { MULAW_8K } from '../../shared/audio/format';
import { startCall } from '../fakes/call';

describe('pre-warmed greeting', () => {
  it('a greeting synthesised while the phone rang goes out the moment the call starts, not after the TTS latency', async () => {
    const slowTts = { firstAudioDelayMs: 400, formats: [MULAW_8K] };
    const cold = await startCall({ config: { greeting: 'hello welcome' }, tts: slowTts, channel: { outputFormat: MULAW_8K } });
    const coldStart = cold.clock.now();
    await cold.runUntil(() => cold.fake.played.length > 0, 3000);
    const coldFirstFrameMs = cold.fake.played[0]!.atMs - coldStart;
    await cold.runUntil(() => cold.of('assistantMessage').length === 1, 5000);
    expect(cold.fake.heardWords()).toEqual(['hello', 'welcome']);
    await cold.end();

    const warm = await startCall({ config: { greeting: 'hello welcome' }, tts: slowTts, channel: { outputFormat: MULAW_8K }, prewarmGreeting: true });
    const warmStart = warm.clock.now();
    await warm.runUntil(() => warm.fake.played.length > 0, 3000);
    const warmFirstFrameMs = warm.fake.played[0]!.atMs - warmStart;
    await warm.runUntil(() => warm.of('assistantMessage').length === 1, 5000);
    expect(warm.fake.heardWords()).toEqual(['hello', 'welcome']);
    expect(warm.of('assistantMessage')[0]!.text).toBe('hello welcome');

    expect(coldFirstFrameMs).toBeGreaterThanOrEqual(400);
    expect(warmFirstFrameMs).toBeLessThanOrEqual(40); // the next far-end tick
    expect(warm.tts.stats.streams).toBe(1); // only the recording: the call itself did not synthesise again
    await warm.end();
  });

  it('the prepared greeting can still be interrupted and is cut to what was heard', async () => {
    const call = await startCall({
      config: { greeting: 'hello welcome hello welcome hello welcome hello welcome' },
      llm: { reply: () => 'okay sure' },
      prewarmGreeting: true,
    });
    await call.run(900);
    call.fake.say('okay stop');
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 3000);
    const greeting = call.comm.history.find((m) => m.role === 'assistant')!;
    expect(greeting.interrupted).toBe(true);
    expect(greeting.content.split(' ').length).toBeLessThan(8);
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
    expect(call.comm.history.at(-1)).toMatchObject({ role: 'assistant', content: 'okay sure' });
    await call.end();
  });

  it('an STT connected while the phone rang is adopted (not reopened): the greeting does not wait for its connect time', async () => {
    // The engine starts listening before it speaks; connecting then (400 ms here) delays the greeting.
    const setup = { config: { greeting: 'hello welcome' }, stt: { connectDelayMs: 400 }, llm: { reply: () => 'okay sure' }, prewarmGreeting: true };
    const firstFrameMs = async (call: Awaited<ReturnType<typeof startCall>>) => {
      await call.runUntil(() => call.fake.played.length > 0, 3000);
      return call.fake.played[0]!.atMs - call.startedAtMs;
    };
    const cold = await startCall(setup);
    const coldMs = await firstFrameMs(cold);
    await cold.end();

    const warm = await startCall({ ...setup, prewarmStt: true });
    const warmMs = await firstFrameMs(warm);
    expect(coldMs).toBeGreaterThanOrEqual(400);
    expect(warmMs).toBeLessThanOrEqual(40);
    expect(warm.stt.stats.opened).toBe(1);

    // And it hears the caller.
    await warm.run(1500);
    warm.fake.say('what is the weather today');
    await warm.runUntil(() => warm.of('userMessage').length === 1, 5000);
    expect(warm.of('userMessage')[0]!.text).toBe('what is the weather today');
    await warm.end();
    expect(warm.stt.stats.closed).toBe(1);
  });
});
