/** The AssemblyAI adapter (Universal-Streaming v3) under the STT conformance suite, against the local fake. */
import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { PIPELINE_FORMAT, pcm16Bytes } from '../../shared/audio/format';
import type { SttEvent, SttSession } from '../../shared/contracts/stt';
import { createAssemblyAiStt, createAssemblyAiSttWire } from '../../shared/providers/assemblyai';
import { createSocketStt } from '../../shared/providers/streaming/stt-socket';
import { splitWords, synthesizeWords } from '../fakes/tones';
import { describeSttConformance, silence, speak, waitFor } from './conformance/stt-suite';
import { startAssemblyAiFake, type AssemblyAiFakeOptions, type AssemblyAiFakeServer } from './fakes/assemblyai';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'assemblyai (Universal-Streaming v3, /v3/ws)',
  // The fake's real-time rule stays off: the suite feeds 8× real time (test/providers/fakes/assemblyai.test.ts covers it).
  startFake: (options) => startAssemblyAiFake(options),
  // The suite's fake closes after 600 ms idle; the production interval is 5 s.
  create: ({ replay }) => createAssemblyAiStt({ connect, retry, replayMs: replay ? 5000 : 0 }, { keepAliveIntervalMs: 200 }),
  session: { model: 'universal-streaming-english', language: 'en-US', options: {} },
  // v3 accepts the upgrade, then sends Error 1008 and closes 1008.
  authFailure: 'frame',
  notes: { closeMessage: 'Terminate' },
});

describeSttConformance({
  name: 'assemblyai, formatted turns (format_turns=true)',
  startFake: (options) => startAssemblyAiFake(options),
  create: ({ replay }) => createAssemblyAiStt({ connect, retry, replayMs: replay ? 5000 : 0 }, { keepAliveIntervalMs: 200 }),
  session: { model: 'universal-streaming-english', language: 'en-US', options: { formatTurns: true } },
  authFailure: 'frame',
  notes: { closeMessage: 'Terminate' },
});

describe('assemblyai adapter against the fake: turns, errors and the real-time rule', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  });

  async function start(fakeOptions?: AssemblyAiFakeOptions): Promise<AssemblyAiFakeServer> {
    const fake = await startAssemblyAiFake(fakeOptions);
    closers.push(() => fake.close());
    return fake;
  }

  async function open(fake: AssemblyAiFakeServer, options: Record<string, unknown> = {}, apiKey = fake.apiKey): Promise<{ events: SttEvent[]; session: SttSession }> {
    const events: SttEvent[] = [];
    const abort = new AbortController();
    const session = await createAssemblyAiStt({ connect, retry }).open(
      { model: 'universal-streaming-english', language: 'en-US', options, endpoint: fake.endpoint, apiKey, signal: abort.signal },
      (e) => events.push(e),
    );
    closers.push(async () => {
      await session.close();
      abort.abort();
    });
    return { events, session };
  }

  const errors = (events: SttEvent[]) => events.flatMap((e) => (e.type === 'error' ? [e.error] : []));

  it('each turn: interims of the turn so far, then a final with word timings and the provider end of turn', async () => {
    const fake = await start();
    const { events, session } = await open(fake);
    await speak(session, ['hello', 'what', 'is', 'the', 'weather']);
    await silence(session, 600);
    await waitFor(() => events.some((e) => e.type === 'endOfTurn'), 'the end of turn');
    const interims = events.flatMap((e) => (e.type === 'interim' ? [e.text] : []));
    expect(interims).toEqual(['hello', 'hello what', 'hello what is', 'hello what is the', 'hello what is the weather']);
    const finalAt = events.findIndex((e) => e.type === 'final');
    const final = events[finalAt];
    expect(final).toMatchObject({ type: 'final', text: 'hello what is the weather', confidence: 0.9 });
    expect(final?.type === 'final' && final.words?.map((w) => w.word)).toEqual(['hello', 'what', 'is', 'the', 'weather']);
    expect(events[finalAt + 1]).toEqual({ type: 'endOfTurn', text: 'hello what is the weather' });
    expect(events.some((e) => e.type === 'speechStarted')).toBe(true);
  });

  it('formatTurns: the unformatted end of turn arrives as an interim, the formatted one is the final', async () => {
    const fake = await start();
    const { events, session } = await open(fake, { formatTurns: true });
    await speak(session, ['is', 'it', 'sunny']);
    await silence(session, 600);
    await waitFor(() => events.some((e) => e.type === 'endOfTurn'), 'the end of turn');
    expect(events.filter((e) => e.type === 'final')).toEqual([expect.objectContaining({ text: 'Is it sunny.' })]);
    expect(events.filter((e) => e.type === 'interim').at(-1)).toEqual({ type: 'interim', text: 'is it sunny' });
    expect(events.at(-1)).toEqual({ type: 'endOfTurn', text: 'Is it sunny.' });
    expect(new URL(fake.connections[0]!.url, 'ws://x').searchParams.get('format_turns')).toBe('true');
  });

  it('a refused upgrade (401) is the same auth error, without retrying', async () => {
    const fake = await start({ authFailure: 'handshake' });
    const error = await open(fake, {}, 'wrong').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'ASSEMBLYAI_AUTH', retryable: false, kind: 'auth' });
    expect(fake.connections).toHaveLength(1);
  });

  it.each([
    [3009, 'Unauthorized Connection: Too many concurrent sessions'],
    [3008, 'Session Expired: Maximum session duration exceeded'],
    [3005, 'Session Cancelled: An error occurred'],
  ])('Error %i mid-session is retried with replay: no word lost, no error event', async (code, message) => {
    const fake = await start();
    const { events, session } = await open(fake);
    await speak(session, ['once', 'upon']);
    fake.control.fail(code, message);
    await speak(session, ['a', 'time']);
    await silence(session, 600);
    await waitFor(() => events.some((e) => e.type === 'final' && e.text.includes('time')), 'the final after the reconnect');
    const heard = events.flatMap((e) => (e.type === 'final' ? splitWords(e.text) : []));
    expect(heard).toEqual(['once', 'upon', 'a', 'time']);
    expect(fake.connections).toHaveLength(2);
    expect(errors(events)).toEqual([]);
  });

  it('Error 3007 ends the session with a non-retryable bad-audio error', async () => {
    const fake = await start();
    const { events } = await open(fake);
    fake.control.fail(3007, 'Audio Transmission Rate Exceeded: Received 9 sec. audio in 1 sec');
    await waitFor(() => errors(events).length > 0, 'the error');
    expect(errors(events)).toEqual([expect.objectContaining({ code: 'ASSEMBLYAI_BAD_AUDIO', retryable: false })]);
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.connections).toHaveLength(1);
  });

  /** `words` then `trailingMs` of silence, written in 20 ms frames at real time as a telephony channel does. */
  async function feedRealTime(session: SttSession, words: string[], trailingMs: number): Promise<void> {
    const { pcm } = synthesizeWords(words, 16000);
    const padded = new Int16Array(Math.ceil(pcm.length / 320) * 320 + (trailingMs / 20) * 320);
    padded.set(pcm);
    const startedAt = performance.now();
    for (let n = 0; n * 320 < padded.length; n++) {
      session.write({ format: PIPELINE_FORMAT, data: pcm16Bytes(padded.subarray(n * 320, n * 320 + 320)) });
      const due = startedAt + (n + 1) * 20 - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
    }
  }

  const fourWords = ['once', 'upon', 'a', 'time'];
  const heard = (events: SttEvent[]) => events.flatMap((e) => (e.type === 'final' ? splitWords(e.text) : []));

  it('a reconnect replay is paced: audio at real time survives a drop under the real-time rule, no word lost', async () => {
    const fake = await start({ enforceRealTime: { toleranceMs: 300 } });
    const { events, session } = await open(fake);
    fake.control.dropAfterWords(2);
    await feedRealTime(session, fourWords, 800);
    await waitFor(() => heard(events).includes('time'), 'the final after the reconnect');
    expect(heard(events)).toEqual(fourWords);
    expect(errors(events)).toEqual([]);
    expect(fake.connections).toHaveLength(2);
    const sizes = fake.connections[1]!.received.flatMap((f) => (typeof f === 'string' ? [] : [f.byteLength / 32]));
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(50);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
  }, 15_000);

  it('negative control: the same replay unpaced breaks the real-time rule (3007)', async () => {
    const fake = await start({ enforceRealTime: { toleranceMs: 300 } });
    const { replayPacing: _paced, ...unpaced } = createAssemblyAiSttWire({ formatTurns: false });
    const events: SttEvent[] = [];
    const abort = new AbortController();
    const session = await createSocketStt(unpaced, { connect, retry }).open(
      { model: 'universal-streaming-english', language: 'en-US', options: {}, endpoint: fake.endpoint, apiKey: fake.apiKey, signal: abort.signal },
      (e) => events.push(e),
    );
    closers.push(async () => {
      await session.close();
      abort.abort();
    });
    fake.control.dropAfterWords(2);
    await feedRealTime(session, fourWords, 800);
    await waitFor(() => errors(events).length > 0, 'the error');
    expect(errors(events)).toEqual([expect.objectContaining({ code: 'ASSEMBLYAI_BAD_AUDIO', retryable: false })]);
  }, 15_000);

  it('audio written at real time in 20 ms frames passes the fake\'s real-time and chunk-size rules', async () => {
    const fake = await start({ enforceRealTime: { toleranceMs: 150 } });
    const { events, session } = await open(fake);
    const { pcm } = synthesizeWords(['tell', 'me', 'a', 'joke'], 16000);
    const padded = new Int16Array(Math.ceil(pcm.length / 320) * 320 + 320 * 25);
    padded.set(pcm);
    const startedAt = performance.now();
    for (let n = 0; n * 320 < padded.length; n++) {
      session.write({ format: PIPELINE_FORMAT, data: pcm16Bytes(padded.subarray(n * 320, n * 320 + 320)) });
      const due = startedAt + (n + 1) * 20 - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
    }
    await waitFor(() => events.some((e) => e.type === 'final'), 'the final');
    expect(events.filter((e) => e.type === 'final').map((e) => (e.type === 'final' ? e.text : ''))).toEqual(['tell me a joke']);
    expect(errors(events)).toEqual([]);
    const sizes = fake.connections[0]!.received.flatMap((f) => (typeof f === 'string' ? [] : [f.byteLength / 32]));
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(50);
  });
});
