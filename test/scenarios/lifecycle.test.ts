import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../shared/contracts/errors';
import { startCall } from '../fakes/call';

describe('ending a call', () => {
  it('end() from our side hangs up the line, once, with the reason', async () => {
    const call = await startCall({ config: { greeting: 'hello' } });
    await call.run(500);
    await Promise.all([call.comm.end('api-request'), call.comm.end('second')]);
    expect(call.fake.stats.hangups).toEqual(['api-request']);
    expect(await call.comm.ended).toBe('api-request');
    expect(call.of('callEnded')).toHaveLength(1);
  });

  it('the far end closing does not hang up again', async () => {
    const call = await startCall({});
    await call.run(200);
    call.fake.farEndHangup('caller-hangup');
    expect(await call.comm.ended).toBe('caller-hangup');
    expect(call.fake.stats.hangups).toEqual([]);
  });

  it('with every TTS failed, the unspoken text is not recorded as heard and the call ends (no silent line)', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny. and warm today.', tokenDelayMs: 20 },
      tts: { failAfterPieces: { pieces: 1, error: new ProviderError('TTS_AUTH', 'key revoked (401)', false, 'auth') } },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.of('callEnded').length > 0, 10_000);
    expect(await call.comm.ended).toBe('tts-unavailable');
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    expect(call.comm.history.at(-1)).toEqual({ role: 'assistant', content: 'it is sunny.' });
    expect(call.of('providerError').map((e) => [e.stage, e.action])).toEqual([['tts', 'ignored']]);
    expect(call.fake.stats.hangups).toEqual(['tts-unavailable']);
  });

  it('an observer that throws never breaks the call', async () => {
    const call = await startCall({
      llm: { reply: () => 'it is sunny' },
      observer: {
        onEvent() {
          throw new Error('log sink down');
        },
      },
    });
    call.fake.say('hello');
    await call.runUntil(() => call.fake.heardWords().length === 3, 5000);
    expect(call.fake.heardWords()).toEqual(['it', 'is', 'sunny']);
    await call.end();
  });
});
