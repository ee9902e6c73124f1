import { describe, expect, it } from 'vitest';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

describe('greeting, idle timeout, maximum duration, DTMF', () => {
  it('fills the greeting template from call variables', async () => {
    const call = await startCall({ config: { greeting: 'hello {{name}}', variables: { name: 'sorry' } }, variables: { name: 'welcome' } });
    await call.runUntil(() => call.of('assistantMessage').length > 0, 3000);
    expect(call.fake.heardWords()).toEqual(['hello', 'welcome']);
    expect(call.of('assistantMessage')[0]!.text).toBe('hello welcome');
    await call.end();
  });

  it('reprompts after the idle timeout, twice, then says goodbye and hangs up', async () => {
    const call = await startCall({
      config: {
        greeting: 'hello',
        idle: { timeoutMs: 3000, reprompts: ['are you still there', 'hello again'], maxReprompts: 2, hangupMessage: 'goodbye' },
      },
    });
    const ended = await call.runUntil(() => call.fake.stats.hangups.length > 0, 30_000);
    expect(ended).toBe(true);
    expect(call.fake.heardWords()).toEqual(['hello', 'are', 'you', 'still', 'there', 'hello', 'again', 'goodbye']);
    expect(call.of('idleReprompt').map((e) => e.count)).toEqual([1, 2]);
    expect(call.fake.stats.hangups).toEqual(['idle-timeout']);
    expect(await call.comm.ended).toBe('idle-timeout');
    // Each reprompt came 3 s after the previous utterance finished playing.
    const messages = call.of('assistantMessage');
    const reprompts = call.of('idleReprompt');
    expect(reprompts[0]!.atMs - messages[0]!.atMs).toBeGreaterThanOrEqual(3000);
    expect(reprompts[0]!.atMs - messages[0]!.atMs).toBeLessThan(3100);
  });

  it('caller speech resets the idle count', async () => {
    const call = await startCall({
      llm: { reply: () => 'okay' },
      config: { greeting: 'hello', idle: { timeoutMs: 2000, reprompts: ['are you still there'], maxReprompts: 1, hangupMessage: 'goodbye' } },
    });
    await call.runUntil(() => call.of('idleReprompt').length === 1, 10_000);
    call.fake.say('yeah');
    await call.runUntil(() => call.of('assistantMessage').length === 3, 10_000); // hello, reprompt, okay
    await call.runUntil(() => call.of('idleReprompt').length === 2, 10_000);
    expect(call.fake.stats.hangups).toEqual([]); // the count started again: this is reprompt 1 of 1, not a hang-up
    expect(call.of('idleReprompt').map((e) => e.count)).toEqual([1, 1]);
    await call.end();
  });

  it('ends the call at the maximum duration with the goodbye message, even mid-answer', async () => {
    const call = await startCall({
      llm: { reply: () => 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny', tokenDelayMs: 20 },
      config: { maxDurationMs: 10_000, goodbyeMessage: 'sorry goodbye', idle: { timeoutMs: 0 } },
    });
    await call.run(8000);
    call.fake.say('tell me a story');
    await call.runUntil(() => call.fake.stats.hangups.length > 0, 10_000);
    expect(call.fake.stats.hangups).toEqual(['max-duration']);
    const goodbye = call.of('assistantMessage').at(-1)!;
    expect(goodbye.text).toBe('sorry goodbye');
    const story = call.comm.history.find((m) => m.role === 'assistant' && m.content.startsWith('once'));
    expect(story?.interrupted).toBe(true);
    expect(call.fake.heardWords().slice(-2)).toEqual(['sorry', 'goodbye']);
    expect(await call.comm.ended).toBe('max-duration');
  });

  it('sends DTMF digits to the LLM as user input (terminator ends the sequence)', async () => {
    const call = await startCall({ llm: { reply: (m) => (lastUserText(m).includes('1 2') || lastUserText(m).includes('12') ? 'thanks' : 'no') } });
    await call.run(500);
    for (const d of ['1', '2', '#']) call.fake.pressDigit(d);
    await call.runUntil(() => call.of('assistantMessage').length > 0, 5000);
    expect(call.of('dtmf').map((e) => e.digits)).toEqual(['12']);
    expect(call.comm.history.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['The caller pressed the keys: 12']);
    expect(call.fake.heardWords()).toEqual(['thanks']);
    await call.end();
  });

  it('a DTMF sequence also ends after the inter-digit timeout, and a key press interrupts the assistant', async () => {
    const call = await startCall({
      llm: { reply: (m) => (lastUserText(m).includes('7') ? 'thanks' : 'once upon a time there was a dragon and the dragon was warm'), tokenDelayMs: 10 },
      config: { greeting: 'hello welcome hello welcome hello welcome hello welcome', dtmf: { interDigitTimeoutMs: 1000 } },
    });
    await call.run(600);
    call.fake.pressDigit('7');
    await call.runUntil(() => call.of('dtmf').length > 0, 3000);
    const dtmf = call.of('dtmf')[0]!;
    const press = 1600;
    expect(dtmf.atMs - press).toBeGreaterThanOrEqual(1000);
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'confirmed']);
    expect(call.comm.history.find((m) => m.role === 'assistant')?.interrupted).toBe(true);
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
    expect(call.of('assistantMessage')[1]!.text).toBe('thanks');
    await call.end();
  });

  it('the caller hanging up ends the call and closes the STT', async () => {
    const call = await startCall({ config: { greeting: 'hello' } });
    await call.run(300);
    call.fake.farEndHangup('caller-hangup');
    expect(await call.comm.ended).toBe('caller-hangup');
    expect(call.stt.stats.closed).toBe(1);
    expect(call.of('callEnded')).toHaveLength(1);
  });
});
