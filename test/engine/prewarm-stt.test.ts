import { describe, expect, it } from 'vitest';
import type { SttBlock } from '../../shared/config/assistant';
import type { SpeechToText, SttSession } from '../../shared/contracts/stt';
import { openSttEarly } from '../../shared/engine/prewarm';
import type { ResolvedProvider } from '../../shared/providers/registry';

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An STT whose open() ignores the abort signal and resolves after `openMs`. */
function slowStt(openMs: number) {
  const stats = { opened: 0, closed: 0 };
  const impl = {
    id: 'slow',
    capabilities: {},
    async open(): Promise<SttSession> {
      await delay(openMs);
      stats.opened++;
      return {
        write() {},
        finalize() {},
        async close() {
          stats.closed++;
        },
      } as unknown as SttSession;
    },
  } as unknown as SpeechToText;
  const provider = { impl, block: { provider: 'slow', language: 'en', options: {} } as unknown as SttBlock, apiKey: undefined } as ResolvedProvider<SpeechToText, SttBlock>;
  return { provider, stats };
}

describe('openSttEarly', () => {
  it('a session that opens after the timeout is closed when it arrives, not leaked', async () => {
    const { provider, stats } = slowStt(150);
    await expect(openSttEarly(provider, 30)).rejects.toThrow(/PREWARM_TIMEOUT/);
    expect(stats.opened).toBe(0);
    await delay(250);
    expect(stats.opened).toBe(1);
    expect(stats.closed).toBe(1);
  });

  it('a session that opens in time is handed over open', async () => {
    const { provider, stats } = slowStt(10);
    const early = await openSttEarly(provider, 500);
    await delay(50);
    expect(stats).toEqual({ opened: 1, closed: 0 });
    await early.close();
    expect(stats.closed).toBe(1);
  });
});
