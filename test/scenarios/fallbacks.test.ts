import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../shared/contracts/errors';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

const AUTH = () => new ProviderError('LLM_AUTH', 'the API key was rejected (401)', false, 'auth');

describe('provider failures', () => {
  it('a non-retryable LLM failure switches to the next fallback for this and later turns', async () => {
    const call = await startCall({
      llm: { reply: () => AUTH() },
      llmFallbacks: [{ reply: (m) => (lastUserText(m) === 'hello' ? 'hi' : 'okay') }],
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['hi']);
    expect(call.of('providerError').map((e) => [e.stage, e.provider, e.action])).toEqual([['llm', 'fake-llm-0', 'fallback']]);
    call.fake.say('wait');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
    expect(call.llms[0]!.stats.requests).toHaveLength(1); // the failed provider is not asked again
    expect(call.llms[1]!.stats.requests).toHaveLength(2);
    expect(call.metrics().at(-1)!.providers.llm).toBe('fake-llm-1');
    await call.end();
  });

  it('a retryable LLM failure is retried once on the same provider', async () => {
    let calls = 0;
    const call = await startCall({
      llm: { reply: () => (++calls === 1 ? new ProviderError('LLM_UNAVAILABLE', 'upstream 503', true) : 'hi') },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(calls).toBe(2);
    expect(call.of('providerError').map((e) => e.action)).toEqual(['retry']);
    expect(call.fake.heardWords()).toEqual(['hi']);
    await call.end();
  });

  it('an LLM that timed out before its first token is not asked again: the fallback answers at once', async () => {
    let calls = 0;
    const call = await startCall({
      llm: { reply: () => (++calls, new ProviderError('LLM_FIRST_TOKEN_TIMEOUT', 'no token within 5000 ms', true, 'timeout')) },
      llmFallbacks: [{ reply: () => 'hi' }],
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(calls).toBe(1);
    expect(call.of('providerError').map((e) => e.action)).toEqual(['fallback']);
    expect(call.fake.heardWords()).toEqual(['hi']);
    await call.end();
  });

  it('with every LLM failed, the fallback message is spoken and the call goes on', async () => {
    const call = await startCall({
      llm: { reply: () => AUTH() },
      config: { fallbackMessage: 'sorry trouble again' },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['sorry', 'trouble', 'again']);
    expect(call.of('providerError').map((e) => e.action)).toEqual(['fallbackMessage']);
    expect(call.fake.stats.hangups).toEqual([]);
    // The call is still listening.
    call.fake.say('hello');
    await call.runUntil(() => call.of('userMessage').length === 2, 5000);
    expect(call.of('userMessage')).toHaveLength(2);
    await call.end();
  });

  it('a TTS failing mid-answer hands the unspoken rest to the fallback TTS', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny. and warm today. thanks and goodbye.', tokenDelayMs: 30 },
      tts: { failAfterPieces: { pieces: 1, error: new ProviderError('TTS_QUOTA', 'character quota exceeded', false, 'quota') } },
      ttsFallbacks: [{}],
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 8000);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny', 'and', 'warm', 'today', 'thanks', 'and', 'goodbye']);
    expect(call.of('providerError').map((e) => [e.stage, e.action])).toEqual([['tts', 'fallback']]);
    expect(call.ttss[1]!.stats.pushed.join(' ')).toBe('and warm today. thanks and goodbye.');
    await call.end();
  });

  it('an STT that fails to open is replaced by its fallback before the caller speaks', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'hello' ? 'hi' : 'no') },
      stt: { failOpen: new ProviderError('STT_AUTH', 'bad key (401)', false, 'auth') },
      sttFallbacks: [{}],
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['hi']);
    expect(call.stts[1]!.stats.opened).toBe(1);
    expect(call.of('providerError').map((e) => [e.stage, e.provider, e.action])).toEqual([['stt', 'fake-stt-0', 'fallback']]);
    await call.end();
  });

  it('an STT that breaks mid-call is reopened (retryable) and keeps hearing', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m) === 'hello' ? 'hi' : 'no') },
      stt: { failAfterFrames: { frames: 10, error: new ProviderError('STT_SOCKET', 'socket closed 1006', true) } },
    });
    await call.run(1000);
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 1, 5000);
    expect(call.fake.heardWords()).toEqual(['hi']);
    expect(call.stt.stats.opened).toBe(2);
    expect(call.of('providerError').map((e) => e.action)).toEqual(['retry']);
    await call.end();
  });
});
