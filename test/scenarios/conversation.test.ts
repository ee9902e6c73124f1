import { describe, expect, it } from 'vitest';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

describe('a conversation turn', () => {
  it('greets, hears the caller, answers with streamed overlap, and records history and metrics', async () => {
    const call = await startCall({
      config: { greeting: 'hello welcome' },
      llm: { reply: (m) => (lastUserText(m) === 'what is the weather today' ? 'it is sunny and warm today' : 'sorry'), firstTokenDelayMs: 300, tokenDelayMs: 50 },
      tts: { firstAudioDelayMs: 150 },
    });
    await call.run(2000);
    expect(call.fake.heardWords()).toEqual(['hello', 'welcome']);

    call.fake.say('what is the weather today');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 10_000);
    await call.end();

    const heardAnswer = call.fake.heardWords(3000);
    expect(heardAnswer).toEqual(['it', 'is', 'sunny', 'and', 'warm', 'today']);
    expect(call.comm.history.map((m) => [m.role, m.content])).toEqual([
      ['system', 'You are a helpful test assistant.'],
      ['assistant', 'hello welcome'],
      ['user', 'what is the weather today'],
      ['assistant', 'it is sunny and warm today'],
    ]);
    const reply = call.metrics().find((m) => m.kind === 'reply')!;
    expect(reply.userSpeechEnd).toBeDefined();
    expect(reply.llmRequest! - reply.userSpeechEnd!).toBeGreaterThanOrEqual(500);
    expect(reply.llmFirstToken! - reply.llmRequest!).toBe(300);
    // TTS started on the first clause, long before the LLM finished its 6 tokens.
    expect(reply.ttsFirstAudio).toBeDefined();
    expect(reply.firstAudioOut! - reply.ttsFirstAudio!).toBe(0);
    expect(reply.voiceToVoiceMs).toBe(reply.firstAudioOut! - reply.userSpeechEnd!);
  });
});
