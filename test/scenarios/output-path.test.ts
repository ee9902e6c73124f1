import { describe, expect, it } from 'vitest';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT } from '../../shared/audio/format';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

const LONG = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';

describe('outbound audio', () => {
  it('hands the channel at most the lead (200 ms) ahead of real time and keeps the rest', async () => {
    const call = await startCall({ llm: { reply: () => LONG }, tts: { realTimeFactor: 0 } });
    call.fake.say('hello');
    await call.runUntil(() => call.fake.played.length > 5, 5000);
    expect(call.fake.queuedMs).toBeLessThanOrEqual(200);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 20_000);
    expect(call.fake.stats.maxLeadMs).toBeLessThanOrEqual(200);
    expect(call.fake.stats.maxLeadMs).toBeGreaterThanOrEqual(160);
    expect(call.fake.heardWords()).toEqual(LONG.split(' '));
    await call.end();
  });

  it('the lead is configurable', async () => {
    const call = await startCall({ llm: { reply: () => LONG }, config: { output: { leadMs: 60 } } });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 20_000);
    expect(call.fake.stats.maxLeadMs).toBeLessThanOrEqual(60);
    expect(call.fake.heardWords()).toEqual(LONG.split(' '));
    await call.end();
  });

  it('asks the TTS for the channel\'s own format (μ-law 8 kHz) so audio passes straight through', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny and warm' },
      tts: { formats: [PIPELINE_FORMAT, MULAW_8K] },
      channel: { outputFormat: MULAW_8K },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.tts.stats.formatsAsked).toEqual([MULAW_8K]);
    expect(call.fake.played.every((p) => p.frame.format.encoding === 'mulaw' && p.frame.data.length === 160)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny', 'and', 'warm']);
    await call.end();
  });

  it('converts once (resample + encode) when the TTS cannot make the channel\'s format', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny and warm' },
      tts: { formats: [{ encoding: 'pcm16', sampleRateHz: 24_000 }] },
      channel: { outputFormat: ALAW_8K },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.tts.stats.formatsAsked).toEqual([{ encoding: 'pcm16', sampleRateHz: 24_000 }]);
    expect(call.fake.played.every((p) => p.frame.format.encoding === 'alaw' && p.frame.data.length === 160)).toBe(true);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny', 'and', 'warm']);
    await call.end();
  });

  it('output of a cancelled turn never reaches the channel, even from a TTS that ignores cancel()', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'stop' ? 'okay' : LONG), tokenDelayMs: 20 },
      tts: { ignoresCancel: true, realTimeFactor: 0.5 },
    });
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.played.length > 20, 5000);
    call.fake.say('stop');
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 3000);
    const confirmed = call.of('interruption').find((e) => e.phase === 'confirmed')!;
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
    await call.run(3000);
    expect(call.tts.stats.eventsAfterCancel).toBeGreaterThan(0); // the provider really misbehaved
    expect(call.fake.heardWords(confirmed.atMs)).toEqual(['okay']);
    await call.end();
  });
});

describe('inbound audio (negative control)', () => {
  it('words come from the audio really received: dropping frames loses words', async () => {
    // The caller says "what is the weather today"; frames 29..37 (570–760 ms: the word "weather") never arrive.
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny' : 'sorry') },
      channel: { dropInbound: (i) => i >= 29 && i < 38 },
    });
    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    const heardByStt = call.of('userMessage')[0]!.text;
    expect(heardByStt).not.toBe('what is the weather today');
    expect(heardByStt.split(' ')).not.toContain('weather');
    expect(call.fake.heardWords()).toEqual(['sorry']);
    await call.end();
  });
});
