/**
 * The TTS conformance suite: every streaming TTS adapter runs these cases against its vendor's local fake.
 * The fake speaks the words of the text it receives as tones, so the suite decodes the audio back to words
 * (test/fakes/tones.ts): audio lost, duplicated or sent for the wrong text shows as wrong words.
 *
 * The adapter is asked for PCM16 16 kHz (PIPELINE_FORMAT) when it lists it, else for its first output format
 * (G.711 is decoded to PCM16 before listening). Fakes must implement `control.sendRaw`; adapters must have
 * `prewarm` and `close` (every socket TTS has them).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PIPELINE_FORMAT, sameFormat } from '../../../shared/audio/format';
import type { AudioFormat } from '../../../shared/audio/format';
import { alawDecode, mulawDecode } from '../../../shared/audio/g711';
import { ProviderError } from '../../../shared/contracts/errors';
import type { TtsEvent, TtsStream, TtsStreamOptions } from '../../../shared/contracts/tts';
import { decodeWords, splitWords } from '../../fakes/tones';
import type { FakeProviderServer } from './fake-server';
import type { TtsConformanceTarget } from './targets';

const RESULT_TIMEOUT_MS = 10_000;
const PIECES = ['hello there. ', 'what is the weather today. '];
const LONG_PIECE = 'once upon a time there was a dragon and it was warm and sunny here. '.repeat(3);

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = RESULT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** The words a listener hears in `audio` of `format`. */
export function heardWords(audio: readonly Uint8Array[], format: AudioFormat): string[] {
  const total = audio.reduce((n, chunk) => n + chunk.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of audio) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let pcm: Int16Array;
  if (format.encoding === 'pcm16') {
    pcm = new Int16Array(bytes.buffer, 0, bytes.byteLength >> 1);
  } else {
    pcm = new Int16Array(bytes.byteLength);
    (format.encoding === 'mulaw' ? mulawDecode : alawDecode)(bytes, pcm);
  }
  return decodeWords(pcm, format.sampleRateHz);
}

interface Utterance {
  readonly stream: TtsStream;
  readonly events: TtsEvent[];
  readonly audio: () => Uint8Array[];
  readonly finished: () => boolean;
}

export function describeTtsConformance(target: TtsConformanceTarget): void {
  describe(`TTS conformance: ${target.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
    });

    async function harness() {
      const fake: FakeProviderServer = await target.startFake();
      cleanups.push(() => fake.close());
      const tts = target.create();
      cleanups.push(async () => tts.close?.());
      const outputFormats = tts.capabilities.outputFormats;
      const format = outputFormats.find((f) => sameFormat(f, PIPELINE_FORMAT)) ?? outputFormats[0] ?? PIPELINE_FORMAT;
      const base = (apiKey?: string | null): Omit<TtsStreamOptions, 'signal'> => ({
        ...(target.session.voice ? { voice: target.session.voice } : {}),
        ...(target.session.model ? { model: target.session.model } : {}),
        language: target.session.language,
        format,
        endpoint: fake.endpoint,
        ...(apiKey === null ? {} : { apiKey: apiKey ?? fake.apiKey }),
        options: target.session.options,
      });
      const utter = (pieces: readonly string[], options: { end?: boolean; apiKey?: string | null; onEvent?: (event: TtsEvent, stream: TtsStream) => void } = {}): Utterance => {
        const events: TtsEvent[] = [];
        const abort = new AbortController();
        cleanups.push(async () => abort.abort());
        const stream: TtsStream = tts.stream({ ...base(options.apiKey), signal: abort.signal }, (event) => {
          events.push(event);
          options.onEvent?.(event, stream);
        });
        for (const piece of pieces) stream.push(piece);
        if (options.end ?? true) stream.end();
        return {
          stream,
          events,
          audio: () => events.flatMap((e) => (e.type === 'audio' ? [e.data] : [])),
          finished: () => events.some((e) => e.type === 'done' || e.type === 'error'),
        };
      };
      const speakAll = async (pieces: readonly string[]): Promise<Utterance> => {
        const u = utter(pieces);
        await waitFor(u.finished, 'the end of the utterance');
        expect(u.events.filter((e) => e.type === 'error')).toEqual([]);
        expect(heardWords(u.audio(), format)).toEqual(splitWords(pieces.join(' ')));
        return u;
      };
      return { fake, tts, format, base, utter, speakAll };
    }

    it('speaks the pieces: the audio decodes to their words, textIndex follows the pieces', async () => {
      const h = await harness();
      const u = await h.speakAll(PIECES);
      expect(u.events.at(-1)?.type).toBe('done');
      const indexes = u.events.flatMap((e) => (e.type === 'audio' ? [e.textIndex] : []));
      for (let i = 1; i < indexes.length; i++) expect(indexes[i]!).toBeGreaterThanOrEqual(indexes[i - 1]!);
      expect(new Set(indexes)).toEqual(new Set([0, 1]));
      const record = h.fake.connections[0]!;
      expect([...Object.values(record.headers), record.url].some((v) => v.includes(h.fake.apiKey)), 'the key is on the upgrade').toBe(true);
    });

    it('word timings: increasing start times where supported, none otherwise', async () => {
      const h = await harness();
      const u = await h.speakAll(PIECES);
      const words = u.events.flatMap((e) => (e.type === 'words' ? e.words : []));
      if (h.tts.capabilities.wordTimings) {
        expect(words.length).toBeGreaterThan(0);
        for (let i = 1; i < words.length; i++) expect(words[i]!.startMs).toBeGreaterThanOrEqual(words[i - 1]!.startMs);
        expect(words.some((w) => w.startMs > 0)).toBe(true);
      } else {
        expect(words).toHaveLength(0);
      }
    });

    it('cancel mid-sentence: nothing follows cancel(), and the next utterance works', async () => {
      const h = await harness();
      let cancelledAt = -1;
      const u = h.utter([PIECES[0]!, LONG_PIECE], {
        onEvent(event, stream) {
          // Barge-in at the first audio: cancel from inside the event handler, the hardest place.
          if (event.type === 'audio' && cancelledAt === -1) {
            stream.cancel();
            cancelledAt = u.events.length;
          }
        },
      });
      await waitFor(() => cancelledAt >= 0, 'the first audio');
      await delay(500);
      expect(u.events).toHaveLength(cancelledAt);
      expect(u.events.some((e) => e.type === 'done' || e.type === 'error')).toBe(false);
      const connectionsBefore = h.fake.connections.length;
      await h.speakAll(PIECES);
      if ((h.tts.capabilities as { cancelWithoutClosing?: boolean }).cancelWithoutClosing) {
        expect(h.fake.connections).toHaveLength(connectionsBefore);
      }
    });

    it('reuses one connection across turns', async () => {
      const h = await harness();
      await h.speakAll(PIECES);
      await h.speakAll(['thanks and goodbye. ']);
      expect(h.fake.connections).toHaveLength(1);
    });

    it('prewarm opens the connection the first utterance then uses', async () => {
      const h = await harness();
      expect(h.tts.prewarm, 'a socket TTS has prewarm').toBeDefined();
      await h.tts.prewarm!(h.base());
      expect(h.fake.connections).toHaveLength(1);
      await h.speakAll(PIECES);
      expect(h.fake.connections).toHaveLength(1);
    });

    it('a rejected key: one non-retryable auth error, no retry', async () => {
      const h = await harness();
      const u = h.utter(PIECES, { apiKey: `wrong-${h.fake.apiKey}` });
      await waitFor(u.finished, 'the auth error');
      await delay(300);
      expect(u.events).toHaveLength(1);
      const event = u.events[0]!;
      expect(event.type).toBe('error');
      const error = (event as Extract<TtsEvent, { type: 'error' }>).error;
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      expect(h.fake.connections).toHaveLength(1);
    });

    it('a missing key: one non-retryable auth error naming the provider, no connection', async () => {
      const h = await harness();
      const u = h.utter(PIECES, { apiKey: null });
      await waitFor(u.finished, 'the auth error');
      expect(u.events).toHaveLength(1);
      const error = (u.events[0] as Extract<TtsEvent, { type: 'error' }>).error;
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      expect(error.message.toLowerCase()).toContain(h.tts.id.toLowerCase());
      expect(h.fake.connections).toHaveLength(0);
    });

    it('429 and 503 at the handshake are retried, then it speaks', async () => {
      const h = await harness();
      h.fake.control.refuseNext(429, 1);
      h.fake.control.refuseNext(503, 1);
      await h.speakAll(PIECES);
      expect(h.fake.connections).toHaveLength(3);
    });

    it('a malformed server message does not break the connection', async () => {
      const h = await harness();
      await h.tts.prewarm!(h.base());
      expect(h.fake.control.sendRaw, 'the fake must implement control.sendRaw').toBeDefined();
      h.fake.control.sendRaw!('{"type":');
      h.fake.control.sendRaw!('{"type":"no-such-message","x":[1,2]}');
      await delay(100);
      await h.speakAll(PIECES);
      expect(h.fake.connections).toHaveLength(1);
    });

    it('closes cleanly: normal close code, no error', async () => {
      const h = await harness();
      const u = await h.speakAll(PIECES);
      const count = u.events.length;
      await h.tts.close!();
      const record = h.fake.connections[0]!;
      await waitFor(() => record.closeCode !== undefined, 'the fake to see the close', 3000);
      expect(record.closeCode).toBe(1000);
      expect(u.events).toHaveLength(count);
    });
  });
}
