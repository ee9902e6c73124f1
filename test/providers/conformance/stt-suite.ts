/**
 * The STT conformance suite: every streaming STT adapter runs these cases against its vendor's local fake.
 * Words are spoken as tones (test/fakes/tones.ts) and the fake hears them from the audio it really receives,
 * so lost audio shows as missing words. Audio is fed faster than real time (the fakes judge silence by
 * stream time), with ≥ 600 ms of silent frames after speech where a final should follow.
 *
 * What a target may add through `notes`:
 * - `closeMessage`: a substring of the vendor's graceful-close message (e.g. `CloseStream`); the clean-close
 *   case then asserts the fake received it.
 * Fakes must implement `control.dropAfterWords` and `control.sendRaw`.
 * Keep-alive: with `capabilities.keepAlive` the session must stay on ONE connection through 1.5 s of
 * silence against a fake that closes after 600 ms idle, so targets configure a keep-alive interval < 600 ms.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PIPELINE_FORMAT, pcm16Bytes } from '../../../shared/audio/format';
import type { AudioFrame } from '../../../shared/audio/format';
import { ProviderError } from '../../../shared/contracts/errors';
import type { SpeechToText, SttEvent, SttSession } from '../../../shared/contracts/stt';
import { splitWords, synthesizeWords } from '../../fakes/tones';
import type { FakeProviderServer } from './fake-server';
import type { SttConformanceTarget } from './targets';

const SAMPLES_PER_FRAME = 320;
/** Frames written per tick and the tick: 80 ms of audio per 10 ms, 8× real time. */
const FRAMES_PER_TICK = 4;
const TICK_MS = 10;
const SILENCE_AFTER_SPEECH_MS = 600;
const RESULT_TIMEOUT_MS = 8000;

const SILENT_FRAME: AudioFrame = Object.freeze({ format: PIPELINE_FORMAT, data: new Uint8Array(SAMPLES_PER_FRAME * 2) });

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Write frames of `pcm` paced faster than real time. */
async function feed(session: SttSession, pcm: Int16Array): Promise<void> {
  for (let offset = 0, n = 0; offset < pcm.length; offset += SAMPLES_PER_FRAME, n++) {
    let frame = pcm.subarray(offset, offset + SAMPLES_PER_FRAME);
    if (frame.length < SAMPLES_PER_FRAME) {
      const padded = new Int16Array(SAMPLES_PER_FRAME);
      padded.set(frame);
      frame = padded;
    }
    session.write({ format: PIPELINE_FORMAT, data: pcm16Bytes(frame) });
    if (n % FRAMES_PER_TICK === FRAMES_PER_TICK - 1) await delay(TICK_MS);
  }
}

export async function speak(session: SttSession, words: readonly string[]): Promise<void> {
  await feed(session, synthesizeWords(words, PIPELINE_FORMAT.sampleRateHz).pcm);
}

export async function silence(session: SttSession, ms: number): Promise<void> {
  for (let n = 0; n < ms / 20; n++) {
    session.write(SILENT_FRAME);
    if (n % FRAMES_PER_TICK === FRAMES_PER_TICK - 1) await delay(TICK_MS);
  }
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = RESULT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** `words` appear in `heard` in order (other words may come between). */
function inOrder(heard: readonly string[], words: readonly string[]): boolean {
  let at = 0;
  for (const word of heard) if (word === words[at]) at++;
  return at === words.length;
}

interface Harness {
  readonly stt: SpeechToText;
  readonly fake: FakeProviderServer;
  readonly events: SttEvent[];
  readonly errors: () => ProviderError[];
  readonly finalWords: () => string[];
  open(apiKey?: string | null): Promise<SttSession>;
}

export function describeSttConformance(target: SttConformanceTarget): void {
  describe(`STT conformance: ${target.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
    });

    async function harness(options: { idleCloseMs?: number; replay?: boolean } = {}): Promise<Harness> {
      const fake = await target.startFake(options.idleCloseMs ? { idleCloseMs: options.idleCloseMs } : undefined);
      cleanups.push(() => fake.close());
      const stt = target.create({ replay: options.replay ?? true });
      const events: SttEvent[] = [];
      return {
        stt,
        fake,
        events,
        errors: () => events.flatMap((e) => (e.type === 'error' ? [e.error] : [])),
        finalWords: () => events.flatMap((e) => (e.type === 'final' ? splitWords(e.text) : [])),
        async open(apiKey) {
          const abort = new AbortController();
          const session = await stt.open(
            {
              language: target.session.language,
              ...(target.session.model ? { model: target.session.model } : {}),
              options: target.session.options,
              endpoint: fake.endpoint,
              ...(apiKey === null ? {} : { apiKey: apiKey ?? fake.apiKey }),
              signal: abort.signal,
            },
            (event) => events.push(event),
          );
          cleanups.push(async () => {
            await session.close();
            abort.abort();
          });
          return session;
        },
      };
    }

    it('connects with the API key on the upgrade', async () => {
      const h = await harness();
      await h.open();
      expect(h.fake.connections).toHaveLength(1);
      const record = h.fake.connections[0]!;
      const carriers = [...Object.values(record.headers), record.url];
      expect(carriers.some((value) => value.includes(h.fake.apiKey)), 'the key is in a handshake header or the documented query fallback').toBe(true);
    });

    it('a missing API key is a non-retryable auth error naming the provider, before any connection', async () => {
      const h = await harness();
      const error = await h.open(null).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      expect((error as Error).message.toLowerCase()).toContain(h.stt.id.toLowerCase());
      expect(h.fake.connections).toHaveLength(0);
    });

    it('interim results then a final with the words spoken', async () => {
      const h = await harness();
      const session = await h.open();
      const words = ['hello', 'what', 'is', 'the', 'weather'];
      await speak(session, words);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => h.finalWords().length >= words.length, 'the final');
      expect(h.finalWords()).toEqual(words);
      const firstFinal = h.events.findIndex((e) => e.type === 'final');
      const interims = h.events.filter((e) => e.type === 'interim');
      if (h.stt.capabilities.interimResults) {
        expect(interims.length).toBeGreaterThan(0);
        expect(h.events.findIndex((e) => e.type === 'interim')).toBeLessThan(firstFinal);
      } else {
        expect(interims).toHaveLength(0);
      }
      expect(h.errors()).toEqual([]);
    });

    it('finalize turns what was heard into a final', async () => {
      const h = await harness();
      const session = await h.open();
      const words = ['tell', 'me', 'a', 'joke'];
      await speak(session, words);
      session.finalize();
      if (!h.stt.capabilities.finalize) {
        // Documented behaviour without finalize: the call is harmless and the final still follows silence.
        await silence(session, SILENCE_AFTER_SPEECH_MS);
      }
      await waitFor(() => h.finalWords().length >= words.length, 'the final after finalize');
      expect(h.finalWords()).toEqual(words);
      expect(h.errors()).toEqual([]);
    });

    it('stays usable through silence longer than the server idle timeout', async () => {
      const h = await harness({ idleCloseMs: 600 });
      const session = await h.open();
      await delay(1500);
      const words = ['okay', 'thanks'];
      await speak(session, words);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => h.finalWords().length >= words.length, 'the final after the silence');
      expect(h.finalWords()).toEqual(words);
      expect(h.errors()).toEqual([]);
      const keepAlive = (h.stt.capabilities as { keepAlive?: boolean }).keepAlive === true;
      if (keepAlive) {
        // Keep-alives, not reconnects, carried the silence.
        expect(h.fake.connections).toHaveLength(1);
      } else {
        // Documented behaviour without keep-alive: the server's idle close is survived by reconnecting.
        expect(h.fake.connections.length).toBeGreaterThanOrEqual(2);
      }
    });

    const sixWords = ['once', 'upon', 'a', 'time', 'there', 'was'];

    it('reconnects after a mid-utterance drop and replays the unanswered audio: no word is lost', async () => {
      const h = await harness();
      const session = await h.open();
      expect(h.fake.control.dropAfterWords, 'the fake must implement control.dropAfterWords').toBeDefined();
      h.fake.control.dropAfterWords!(2);
      await speak(session, sixWords);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => inOrder(h.finalWords(), sixWords), `finals holding ${sixWords.join(' ')} (heard: ${h.finalWords().join(' ')})`);
      expect(h.fake.connections).toHaveLength(2);
      expect(h.errors()).toEqual([]);
    });

    it('negative control: without replay the same drop loses words', async () => {
      const h = await harness({ replay: false });
      const session = await h.open();
      h.fake.control.dropAfterWords!(2);
      await speak(session, sixWords);
      await waitFor(() => h.fake.connections.length === 2 && h.fake.connections[1]!.closeCode === undefined, 'the reconnect');
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await speak(session, ['goodbye']);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      // 'goodbye' after the reconnect proves the new connection works; the words before it are what replay saves.
      await waitFor(() => h.finalWords().includes('goodbye'), 'a final on the new connection');
      expect(inOrder(h.finalWords(), sixWords), `heard without replay: ${h.finalWords().join(' ')}`).toBe(false);
      expect(h.errors()).toEqual([]);
    });

    it('a rejected key fails at once, without retrying', async () => {
      const h = await harness();
      let error: unknown;
      try {
        await h.open(`wrong-${h.fake.apiKey}`);
        await waitFor(() => h.errors().length > 0, 'the auth error event');
        error = h.errors()[0];
      } catch (thrown) {
        error = thrown;
      }
      if (target.authFailure === 'handshake') expect(h.events.filter((e) => e.type === 'error')).toHaveLength(0);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      await delay(300);
      expect(h.fake.connections).toHaveLength(1);
      expect(h.errors().length).toBeLessThanOrEqual(1);
    });

    it('429 then 503 at the handshake are retried, then the session works', async () => {
      const h = await harness();
      h.fake.control.refuseNext(429, 1);
      h.fake.control.refuseNext(503, 1);
      const session = await h.open();
      expect(h.fake.connections).toHaveLength(3);
      await speak(session, ['hi']);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => h.finalWords().length >= 1, 'the final');
      expect(h.finalWords()).toEqual(['hi']);
      expect(h.errors()).toEqual([]);
    });

    it('closes cleanly: graceful close message, normal close code, no error, no event afterwards', async () => {
      const h = await harness();
      const session = await h.open();
      await speak(session, ['goodbye']);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => h.finalWords().length >= 1, 'the final');
      await session.close();
      const count = h.events.length;
      const record = h.fake.connections[0]!;
      await waitFor(() => record.closeCode !== undefined, 'the fake to see the close', 3000);
      expect(record.closeCode).toBe(1000);
      const closeMessage = target.notes?.closeMessage;
      if (closeMessage) expect(record.received.some((frame) => typeof frame === 'string' && frame.includes(closeMessage))).toBe(true);
      await delay(200);
      expect(h.events).toHaveLength(count);
      expect(h.errors()).toEqual([]);
    });

    it('a malformed server message does not end the session', async () => {
      const h = await harness();
      const session = await h.open();
      expect(h.fake.control.sendRaw, 'the fake must implement control.sendRaw').toBeDefined();
      h.fake.control.sendRaw!('{"type":');
      h.fake.control.sendRaw!('{"type":"no-such-message","x":[1,2]}');
      h.fake.control.sendRaw!(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
      await delay(100);
      await speak(session, ['is', 'it', 'sunny']);
      await silence(session, SILENCE_AFTER_SPEECH_MS);
      await waitFor(() => h.finalWords().length >= 3, 'the final after malformed messages');
      expect(h.finalWords()).toEqual(['is', 'it', 'sunny']);
      expect(h.errors()).toEqual([]);
      expect(h.fake.connections).toHaveLength(1);
    });
  });
}
