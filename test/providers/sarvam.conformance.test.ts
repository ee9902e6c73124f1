/** Sarvam adapters (streaming STT, Bulbul TTS) under the provider conformance suites, against the local fake. */
import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { PIPELINE_FORMAT } from '../../shared/audio/format';
import type { TtsEvent } from '../../shared/contracts/tts';
import { createSarvamStt, createSarvamTts } from '../../shared/providers/sarvam';
import { splitWords } from '../fakes/tones';
import { describeSttConformance, silence, speak } from './conformance/stt-suite';
import { describeTtsConformance, heardWords } from './conformance/tts-suite';
import { startSarvamFake, type SarvamFakeOptions } from './fakes/sarvam';

const connect = createWsSocketFactory();
const retry = { attempts: 3, baseDelayMs: 20 };
const sttSession = { model: 'saaras:v3', language: 'en-IN', options: {} };
const ttsSession = { voice: 'anushka', model: 'bulbul:v2', language: 'en', options: {} };
const sttNotes = {
  interim: 'finals only: the legacy endpoint sends one data message per utterance',
  keepAlive: 'no keep-alive message exists; 100 ms of silence is sent as keep-alive (200 ms here, 5 s by default)',
  closeMessage: '',
};

for (const authFailure of ['frame', 'handshake'] as const) {
  const fake = (options?: SarvamFakeOptions) => startSarvamFake({ ...options, authFailure });

  describeSttConformance({
    name: `sarvamai STT (/speech-to-text/ws, bad key answered by ${authFailure === 'frame' ? 'an error frame + 1008' : 'HTTP 403'})`,
    startFake: fake,
    // The suite's fake closes after 600 ms without audio: the silence keep-alive runs every 200 ms here.
    create: ({ replay }) => createSarvamStt({ connect, retry, replayMs: replay ? 5000 : 0 }, { keepAliveIntervalMs: 200 }),
    session: sttSession,
    authFailure,
    notes: sttNotes,
  });

  describeTtsConformance({
    name: `sarvamai TTS (/text-to-speech/ws, bad key answered by ${authFailure === 'frame' ? 'an error frame + 1008' : 'HTTP 403'})`,
    startFake: fake,
    create: () => createSarvamTts({ connect, retry }),
    session: ttsSession,
    authFailure,
    notes: { cancel: 'no server cancel: cancel closes the socket', wordTimings: 'none' },
  });
}

describe('sarvamai beyond the suites', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  const waitFor = async (condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('TTS: WAV headers on linear16 chunks are stripped, so the audio is exactly the samples', async () => {
    const server = await startSarvamFake({ wavHeader: true });
    cleanups.push(() => server.close());
    const tts = createSarvamTts({ connect, retry });
    cleanups.push(() => tts.close());
    const events: TtsEvent[] = [];
    const stream = tts.stream({ ...ttsSession, format: PIPELINE_FORMAT, endpoint: server.endpoint, apiKey: server.apiKey, signal: new AbortController().signal }, (e) => events.push(e));
    stream.push('hello there. ');
    stream.push('what is the weather today. ');
    stream.end();
    await waitFor(() => events.some((e) => e.type === 'done' || e.type === 'error'), 'the end of the utterance');
    const audio = events.flatMap((e) => (e.type === 'audio' ? [e.data] : []));
    expect(audio.some((chunk) => new TextDecoder().decode(chunk.subarray(0, 4)) === 'RIFF')).toBe(false);
    expect(audio.reduce((n, c) => n + c.byteLength, 0) % 2).toBe(0);
    expect(heardWords(audio, PIPELINE_FORMAT)).toEqual(splitWords('hello there what is the weather today'));
  });

  it('TTS: an idle pooled socket outlives the server idle timeout through pings', async () => {
    const server = await startSarvamFake({ idleCloseMs: 300 });
    cleanups.push(() => server.close());
    const tts = createSarvamTts({ connect, retry }, { keepAliveIntervalMs: 100 });
    cleanups.push(() => tts.close());
    const base = { ...ttsSession, format: PIPELINE_FORMAT, endpoint: server.endpoint, apiKey: server.apiKey };
    await tts.prewarm(base);
    await new Promise((r) => setTimeout(r, 800));
    const events: TtsEvent[] = [];
    const stream = tts.stream({ ...base, signal: new AbortController().signal }, (e) => events.push(e));
    stream.push('thanks and goodbye. ');
    stream.end();
    await waitFor(() => events.some((e) => e.type === 'done' || e.type === 'error'), 'the end of the utterance');
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    expect(server.connections).toHaveLength(1);
    expect(server.connections[0]!.received.filter((m) => m === '{"type":"ping"}').length).toBeGreaterThanOrEqual(3);
  });

  it('TTS negative control: without pings the idle socket is closed and the next utterance needs a new connection', async () => {
    const server = await startSarvamFake({ idleCloseMs: 300 });
    cleanups.push(() => server.close());
    const tts = createSarvamTts({ connect, retry }, { keepAliveIntervalMs: 60_000 });
    cleanups.push(() => tts.close());
    const base = { ...ttsSession, format: PIPELINE_FORMAT, endpoint: server.endpoint, apiKey: server.apiKey };
    await tts.prewarm(base);
    await waitFor(() => server.connections[0]!.closeCode !== undefined, 'the idle close');
    const events: TtsEvent[] = [];
    const stream = tts.stream({ ...base, signal: new AbortController().signal }, (e) => events.push(e));
    stream.push('thanks. ');
    stream.end();
    await waitFor(() => events.some((e) => e.type === 'done' || e.type === 'error'), 'the end of the utterance');
    expect(events.at(-1)?.type).toBe('done');
    expect(server.connections).toHaveLength(2);
  });

  it('STT: START_SPEECH becomes speechStarted before the final; audio goes out in 100 ms messages', async () => {
    const server = await startSarvamFake();
    cleanups.push(() => server.close());
    const stt = createSarvamStt({ connect, retry });
    const events: { type: string }[] = [];
    const abort = new AbortController();
    const session = await stt.open({ ...sttSession, endpoint: server.endpoint, apiKey: server.apiKey, signal: abort.signal }, (e) => events.push(e));
    cleanups.push(async () => {
      await session.close();
      abort.abort();
    });
    await speak(session, ['hello', 'there']);
    await silence(session, 600);
    await waitFor(() => events.some((e) => e.type === 'final'), 'the final');
    expect(events.map((e) => e.type)).toEqual(['speechStarted', 'final']);
    const audioMessages = server.connections[0]!.received.filter((m): m is string => typeof m === 'string' && m.startsWith('{"audio"'));
    const sizes = audioMessages.map((m) => Buffer.from((JSON.parse(m) as { audio: { data: string } }).audio.data, 'base64').byteLength);
    expect(sizes.slice(0, -1).every((n) => n === 3200)).toBe(true);
  });
});
