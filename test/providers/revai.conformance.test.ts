/** The Rev.ai streaming adapter under the STT conformance suite, against the local fake. */
import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import type { SttEvent } from '../../shared/contracts/stt';
import { createRevAiStt } from '../../shared/providers/revai';
import { describeSttConformance, silence, speak, waitFor } from './conformance/stt-suite';
import { startRevAiFake, type RevAiFakeServer } from './fakes/revai';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'revai (streaming, /speechtotext/v1/stream)',
  startFake: (options) => startRevAiFake(options),
  create: ({ replay }) => createRevAiStt({ connect, retry, replayMs: replay ? 5000 : 0 }),
  session: { language: 'en-US', options: {} },
  // Rev refuses a bad token on the upgrade (HTTP 401); a 4001 close after the upgrade is handled too (revai-wire.test.ts).
  authFailure: 'handshake',
  notes: {
    closeMessage: 'EOS',
    finalize: 'no flush message exists: finalize is a no-op and the final follows Rev\'s own pause detection',
    keepAlive: 'none documented: the engine streams silence; an idle close (any code but 4001-4003) is retried with replay',
  },
});

describe('revai adapter: close codes after the upgrade (unconfirmed list, reference §1.8)', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  });

  async function openAgainst(fake: RevAiFakeServer, apiKey = fake.apiKey) {
    closers.push(() => fake.close());
    const events: SttEvent[] = [];
    const abort = new AbortController();
    const session = await createRevAiStt({ connect, retry }).open({ language: 'en-US', options: {}, endpoint: fake.endpoint, apiKey, signal: abort.signal }, (e) => events.push(e));
    closers.push(async () => {
      await session.close();
      abort.abort();
    });
    return { events, session };
  }

  it.each([
    [4001, 'auth'],
    [4003, 'quota'],
    [4002, 'bad-request'],
  ] as const)('close %i → one non-retryable %s error, no reconnect', async (code, kind) => {
    const fake = await startRevAiFake();
    fake.control.closeAfterAccept(code, 'closed by the test');
    const { events } = await openAgainst(fake);
    await waitFor(() => events.some((e) => e.type === 'error'), 'the error event');
    await new Promise((r) => setTimeout(r, 200));
    expect(events.filter((e) => e.type === 'error').map((e) => (e.type === 'error' ? e.error : undefined))).toEqual([expect.objectContaining({ kind, retryable: false })]);
    expect(fake.connections).toHaveLength(1);
  });

  it('a bad token reported as close 4001 (instead of HTTP 401) is the same auth error', async () => {
    const fake = await startRevAiFake({ authFailure: 'close' });
    const { events } = await openAgainst(fake, 'wrong-token');
    await waitFor(() => events.some((e) => e.type === 'error'), 'the auth error');
    expect(events[0]).toMatchObject({ type: 'error', error: { code: 'REVAI_AUTH', retryable: false } });
  });

  it('close 4013 (too many concurrent streams) is retried; the new connection transcribes', async () => {
    const fake = await startRevAiFake();
    fake.control.closeAfterAccept(4013, 'Too many concurrent connections');
    const { events, session } = await openAgainst(fake);
    await waitFor(() => fake.connections.length === 2, 'the reconnect');
    await speak(session, ['hello']);
    await silence(session, 600);
    await waitFor(() => events.some((e) => e.type === 'final' && e.text.toLowerCase().includes('hello')), 'the final');
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
  });
});
