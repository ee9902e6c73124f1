/**
 * The `google-speech-service` adapters (media-node/providers/google/) beyond the conformance suites: the wire
 * they speak (config, routing header, chunking, endpoints), service-account auth, stream restarts ahead of
 * Google's time limit, finalize by half-close, and the TTS call-per-piece design. Against the local fake.
 */
import { generateKeyPairSync } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MULAW_8K, PIPELINE_FORMAT, pcm16Bytes } from '../../shared/audio/format';
import type { AudioFormat } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttEvent, SttSession } from '../../shared/contracts/stt';
import type { TtsEvent, TtsStream } from '../../shared/contracts/tts';
import { createGoogleAuth, createGoogleStt, createGoogleTts, type GoogleProviderDeps, type GoogleSttSession } from '../../media-node/providers/google';
import { isGoogleTokenUri, parseGoogleCredential } from '../../media-node/providers/google/auth';
import { classifyStatus, resolveTarget } from '../../media-node/providers/google/grpc';
import { planStreams } from '../../media-node/providers/google/speech-stt';
import { planUtterance, stripWavHeader } from '../../media-node/providers/google/speech-tts';
import { splitWords, synthesizeWords } from '../fakes/tones';
import { silence, speak, waitFor } from './conformance/stt-suite';
import { heardWords } from './conformance/tts-suite';
import { startGoogleFake, type GoogleFakeOptions, type GoogleFakeServer } from './fakes/google';

const retry = { attempts: 3, baseDelayMs: 20 };
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `words` appear in `heard` in order (other words may come between). */
function inOrder(heard: readonly string[], words: readonly string[]): boolean {
  let at = 0;
  for (const word of heard) if (word === words[at]) at++;
  return at === words.length;
}

/** Words at `speed` × real time (1 = real time), 20 ms frames. */
async function speakAt(session: SttSession, words: readonly string[], speed: number): Promise<void> {
  const pcm = synthesizeWords(words, 16_000).pcm;
  const started = performance.now();
  for (let offset = 0, n = 0; offset < pcm.length; offset += 320, n++) {
    const frame = new Int16Array(320);
    frame.set(pcm.subarray(offset, offset + 320));
    session.write({ format: PIPELINE_FORMAT, data: pcm16Bytes(frame) });
    const due = ((n + 1) * 20) / speed - (performance.now() - started);
    if (due > 1) await delay(due);
  }
}

/** The fake's token endpoint is http://127.0.0.1:PORT/token, which the default token_uri check refuses. */
const allowLocalTokenUri = (url: string) => url.startsWith('http://127.0.0.1:');
const localAuth = () => createGoogleAuth({ allowTokenUri: allowLocalTokenUri });

function serviceAccount(fake: GoogleFakeServer, email = 'voice@fake-project.iam.gserviceaccount.com'): { json: string; register(): void } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const json = JSON.stringify({
    type: 'service_account',
    project_id: 'sa-project',
    private_key_id: 'key-1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: email,
    token_uri: fake.tokenUri,
  });
  return { json, register: () => fake.registerServiceAccount(email, publicKey.export({ type: 'spki', format: 'pem' }).toString()) };
}

describe('google STT (StreamingRecognize)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function harness(fakeOptions: GoogleFakeOptions = {}, deps: GoogleProviderDeps = {}) {
    const fake = await startGoogleFake(fakeOptions);
    cleanups.push(() => fake.close());
    const stt = createGoogleStt({ retry, auth: localAuth(), ...deps });
    const events: SttEvent[] = [];
    const open = async (overrides: { apiKey?: string; options?: Record<string, unknown>; model?: string } = {}): Promise<GoogleSttSession> => {
      const abort = new AbortController();
      const session = (await stt.open(
        {
          language: 'en-US',
          ...(overrides.model ? { model: overrides.model } : {}),
          options: overrides.options ?? { project: 'fake-project' },
          endpoint: fake.endpoint,
          apiKey: overrides.apiKey ?? fake.apiKey,
          signal: abort.signal,
        },
        (event) => events.push(event),
      )) as GoogleSttSession;
      cleanups.push(async () => {
        await session.close();
        abort.abort();
      });
      return session;
    };
    const finalWords = () => events.flatMap((e) => (e.type === 'final' ? splitWords(e.text) : []));
    const errors = () => events.flatMap((e) => (e.type === 'error' ? [e.error] : []));
    return { fake, stt, events, open, finalWords, errors };
  }

  it('declares its capabilities and id', () => {
    const stt = createGoogleStt();
    expect(stt.id).toBe('google-speech-service');
    expect(stt.requiresCredential).toBe(true);
    expect(stt.capabilities).toMatchObject({ interimResults: true, finalize: true, wordTimings: true, endOfTurn: false, edgeCapable: false, keepAlive: false });
  });

  it('the first request: recognizer, LINEAR16 16 kHz mono, model, languages, features; the routing header', async () => {
    const h = await harness();
    await h.open({ options: { project: 'p1', alternativeLanguages: ['de-DE'] } });
    const record = h.fake.calls[0]!;
    const recognizer = 'projects/p1/locations/global/recognizers/_';
    expect(record.config).toEqual({
      recognizer,
      streaming_config: {
        config: {
          explicit_decoding_config: { encoding: 'LINEAR16', sample_rate_hertz: 16000, audio_channel_count: 1 },
          decoding_config: 'explicit_decoding_config',
          model: 'long',
          language_codes: ['en-US', 'de-DE'],
          features: { enable_word_time_offsets: true, enable_automatic_punctuation: true, profanity_filter: false },
        },
        streaming_features: { interim_results: true, enable_voice_activity_events: true },
      },
      streaming_request: 'streaming_config',
    });
    expect(record.headers['x-goog-request-params']).toBe(`recognizer=${encodeURIComponent(recognizer)}`);
    expect(record.headers['x-goog-api-key']).toBe(h.fake.apiKey);
    expect(record.headers.authorization).toBeUndefined();
  });

  it('the block model wins over the default; a full recognizer name is used as is', async () => {
    const h = await harness();
    await h.open({ model: 'telephony', options: { recognizer: 'projects/x/locations/global/recognizers/mine' } });
    expect(h.fake.calls[0]!.config).toMatchObject({ recognizer: 'projects/x/locations/global/recognizers/mine', streaming_config: { config: { model: 'telephony' } } });
  });

  it('without a project (API key, short recognizer id) the session is refused before connecting', async () => {
    const h = await harness();
    const error = await h.open({ options: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ retryable: false, kind: 'bad-request' });
    expect((error as Error).message).toMatch(/options\.project/);
    expect(h.fake.calls).toHaveLength(0);
  });

  it('audio goes out in 100 ms requests, never over 15 KB (the proto\'s limit; the server\'s is 25,600 bytes) whatever chunkMs asks', async () => {
    const h = await harness();
    const session = await h.open();
    await speak(session, ['hello', 'what', 'is', 'the', 'weather']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 5, 'the final');
    const sizes = h.fake.calls[0]!.received.filter((m): m is Uint8Array => m instanceof Uint8Array).map((m) => m.byteLength);
    expect(Math.max(...sizes)).toBe(3200);
    expect(sizes.filter((n) => n === 3200).length).toBeGreaterThan(sizes.length - 2);

    const big = await harness({}, { chunkMs: 5000 });
    const s2 = await big.open();
    await speak(s2, ['hello', 'weather', 'today', 'tell', 'me', 'a', 'joke', 'hello', 'weather', 'today']);
    await silence(s2, 800);
    await waitFor(() => big.finalWords().length >= 10, 'the final with big chunks');
    const bigSizes = big.fake.calls[0]!.received.filter((m): m is Uint8Array => m instanceof Uint8Array).map((m) => m.byteLength);
    expect(Math.max(...bigSizes)).toBe(15 * 1024);
    expect(big.errors()).toEqual([]);
  });

  it('interim results, speechStarted from voice-activity events, and finals with session-relative word timings', async () => {
    const h = await harness();
    const session = await h.open();
    await speak(session, ['tell', 'me', 'a', 'joke']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 4, 'the final');
    const types = h.events.map((e) => e.type);
    expect(types.indexOf('speechStarted')).toBeGreaterThanOrEqual(0);
    expect(types.indexOf('speechStarted')).toBeLessThan(types.indexOf('interim'));
    expect(h.events.filter((e) => e.type === 'interim').map((e) => (e as { text: string }).text)).toEqual(['tell', 'tell me', 'tell me a', 'tell me a joke']);
    const final = h.events.find((e) => e.type === 'final') as Extract<SttEvent, { type: 'final' }>;
    expect(final.confidence).toBeCloseTo(0.92);
    expect(final.words!.map((w) => w.word)).toEqual(['tell', 'me', 'a', 'joke']);
    for (let i = 1; i < final.words!.length; i++) expect(final.words![i]!.startMs).toBeGreaterThan(final.words![i - 1]!.endMs);
  });

  it('voiceActivityEvents: false asks for none and gets no speechStarted', async () => {
    const h = await harness();
    const session = await h.open({ options: { project: 'p', voiceActivityEvents: false } });
    await speak(session, ['hi']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 1, 'the final');
    expect(h.fake.calls[0]!.config).toMatchObject({ streaming_config: { streaming_features: { interim_results: true, enable_voice_activity_events: false } } });
    expect(h.events.some((e) => e.type === 'speechStarted')).toBe(false);
  });

  it('finalize half-closes the stream (its final comes at once) and the next stream carries on, word times continuing', async () => {
    const h = await harness();
    const session = await h.open();
    await speak(session, ['tell', 'me', 'a', 'joke']);
    session.finalize();
    await waitFor(() => h.finalWords().length >= 4, 'the final after finalize');
    expect(h.fake.calls[0]!.halfClosed).toBe(true);
    await waitFor(() => h.fake.calls[0]!.closeCode === 1000, 'the first stream to end OK');
    await waitFor(() => h.fake.calls.length === 2, 'the next stream');
    await speak(session, ['thanks', 'goodbye']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 6, 'the second final');
    expect(h.finalWords()).toEqual(['tell', 'me', 'a', 'joke', 'thanks', 'goodbye']);
    const finals = h.events.filter((e): e is Extract<SttEvent, { type: 'final' }> => e.type === 'final');
    expect(finals[1]!.words![0]!.startMs).toBeGreaterThan(finals[0]!.words!.at(-1)!.endMs);
    expect(h.errors()).toEqual([]);
    expect(session.stats.streams).toBe(2);
  });

  it('restarts each stream before the server time limit, replaying the unanswered audio: no word lost, no OUT_OF_RANGE', async () => {
    const h = await harness({ streamLimitMs: 1500 }, { restartAfterMs: 1000 });
    const session = await h.open();
    const words = ['once', 'upon', 'a', 'time', 'there', 'was', 'a', 'dragon', 'and', 'it', 'was', 'warm'];
    await speakAt(session, words, 1);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= words.length, `the final (heard: ${h.finalWords().join(' ')})`);
    expect(h.finalWords()).toEqual(words);
    expect(h.errors()).toEqual([]);
    expect(session.stats.restarts).toBeGreaterThanOrEqual(2);
    expect(h.fake.calls.length).toBeGreaterThanOrEqual(3);
    // The server never had to cut a stream: every replaced one was cancelled by the adapter.
    expect(h.fake.calls.some((c) => c.closeCode === 4000 + grpc.status.OUT_OF_RANGE)).toBe(false);
    expect(h.fake.calls.slice(0, -1).map((c) => c.closeCode), JSON.stringify(h.fake.calls.map((c) => c.closeCode))).toEqual(h.fake.calls.slice(0, -1).map(() => 1001));
  });

  it('close to the limit, a stream is replaced right after a final (little to replay)', async () => {
    const h = await harness({ streamLimitMs: 5000 }, { restartAfterMs: 2500 });
    const openedAt = performance.now();
    const session = await h.open();
    const finalsAt: number[] = [];
    let restartedAt: number | undefined;
    const watch = setInterval(() => {
      restartedAt ??= h.fake.calls.length > 1 ? performance.now() : undefined;
    }, 5);
    const finals = () => h.events.filter((e) => e.type === 'final').length;
    try {
      // "hi", then 400 ms of silence (a final after 300 ms of it), at real time, until the stream is replaced.
      while (restartedAt === undefined && performance.now() - openedAt < 4000) {
        await speakAt(session, ['hi'], 1);
        for (let i = 0; i < 20; i++) {
          session.write({ format: PIPELINE_FORMAT, data: new Uint8Array(640) });
          await delay(20);
          if (finals() > finalsAt.length) finalsAt.push(performance.now());
        }
      }
    } finally {
      clearInterval(watch);
    }
    expect(restartedAt, 'a restart').toBeDefined();
    // Before the time limit, and just after a final.
    expect(restartedAt! - openedAt).toBeLessThan(2500);
    expect(finalsAt.some((t) => restartedAt! - t >= -25 && restartedAt! - t < 200), `finals at ${finalsAt.map((t) => Math.round(t - openedAt)).join(', ')}, restart at ${Math.round(restartedAt! - openedAt)}`).toBe(true);
    expect(session.stats.restarts).toBe(1);
  });

  it('negative control: the same restarts without replay lose the words spoken before them', async () => {
    const h = await harness({ streamLimitMs: 1500 }, { restartAfterMs: 1000, replayMs: 0 });
    const session = await h.open();
    const words = ['once', 'upon', 'a', 'time', 'there', 'was', 'a', 'dragon', 'and', 'it', 'was', 'warm'];
    await speakAt(session, words, 1);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length > 0, 'a final');
    await delay(200);
    expect(inOrder(h.finalWords(), words), `heard without replay: ${h.finalWords().join(' ')}`).toBe(false);
    expect(session.stats.restarts).toBeGreaterThanOrEqual(2);
  });

  it('a stream the server ends (OUT_OF_RANGE) is replaced with the next audio, replaying what it left unanswered', async () => {
    const h = await harness({ streamLimitMs: 1200 }, { restartAfterMs: 60_000 });
    const session = await h.open();
    const words = ['hello', 'what', 'is', 'the', 'weather', 'today', 'tell', 'me', 'a', 'joke'];
    await speakAt(session, words, 1);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= words.length, `the final (heard: ${h.finalWords().join(' ')})`);
    expect(h.finalWords()).toEqual(words);
    expect(h.fake.calls[0]!.closeCode).toBe(4000 + grpc.status.OUT_OF_RANGE);
    expect(h.errors()).toEqual([]);
  });

  it('a server that ends every new stream at once ends the session with one error (no endless restarts)', async () => {
    const h = await harness({ streamLimitMs: 100 });
    const session = await h.open();
    for (let i = 0; i < 40 && h.errors().length === 0; i++) {
      await silence(session, 40);
      await delay(30);
    }
    await waitFor(() => h.errors().length > 0, 'the error');
    expect(h.errors()).toHaveLength(1);
    expect(h.errors()[0]).toMatchObject({ code: 'GOOGLE_SPEECH_STREAM_LIMIT', retryable: false });
    expect(h.fake.calls.length).toBeLessThanOrEqual(5);
    const calls = h.fake.calls.length;
    await silence(session, 200);
    await delay(100);
    expect(h.fake.calls).toHaveLength(calls);
  });

  it('a refusal on a connection that stays is retried on that connection', async () => {
    const h = await harness({ closeOnRefusal: false });
    h.fake.control.refuseNext(429);
    h.fake.control.refuseNext(503);
    const session = await h.open();
    expect(h.fake.calls.map((c) => c.closeCode)).toEqual([4000 + grpc.status.RESOURCE_EXHAUSTED, 4000 + grpc.status.UNAVAILABLE, undefined]);
    expect(h.fake.transports).toHaveLength(1);
    await speak(session, ['hi']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 1, 'the final');
  });

  it('a server that holds its headers until its first message: the call counts as accepted after acceptTimeoutMs', async () => {
    const h = await harness({ sendHeadersEarly: false }, { acceptTimeoutMs: 150 });
    const startedAt = performance.now();
    const session = await h.open();
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(140);
    await speak(session, ['okay', 'thanks']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 2, 'the final');
    expect(h.finalWords()).toEqual(['okay', 'thanks']);
  });

  describe('service-account credentials', () => {
    it('a signed JWT buys an access token, sent as Bearer; the project comes from the key; the token is cached across sessions', async () => {
      const h = await harness();
      const sa = serviceAccount(h.fake);
      sa.register();
      const session = await h.open({ apiKey: sa.json, options: {} });
      await h.open({ apiKey: sa.json, options: {} });
      expect(h.fake.tokenRequests).toEqual([{ status: 200, clientEmail: 'voice@fake-project.iam.gserviceaccount.com' }]);
      const record = h.fake.calls[0]!;
      expect(record.headers.authorization).toMatch(/^Bearer ya29\.fake-/);
      expect(record.headers['x-goog-api-key']).toBeUndefined();
      expect(record.config).toMatchObject({ recognizer: 'projects/sa-project/locations/global/recognizers/_' });
      await speak(session, ['hello']);
      await silence(session, 600);
      await waitFor(() => h.finalWords().length >= 1, 'the final');
    });

    it('the token is refreshed a minute before it expires', async () => {
      let clockMs = Date.now();
      const auth = createGoogleAuth({ now: () => clockMs, allowTokenUri: allowLocalTokenUri });
      const h = await harness({ tokenTtlS: 90 }, { auth });
      const sa = serviceAccount(h.fake);
      sa.register();
      await h.open({ apiKey: sa.json, options: {} });
      clockMs += 20_000;
      await h.open({ apiKey: sa.json, options: {} });
      expect(h.fake.tokenRequests).toHaveLength(1);
      clockMs += 11_000; // 31 s after issue: 59 s left, under the 60 s margin
      await h.open({ apiKey: sa.json, options: {} });
      expect(h.fake.tokenRequests).toHaveLength(2);
      expect(auth.tokenRequests).toBe(2);
      expect(h.fake.calls[2]!.headers.authorization).not.toBe(h.fake.calls[0]!.headers.authorization);
    });

    it('a key the token endpoint rejects is a non-retryable auth error, before any call', async () => {
      const h = await harness();
      const registered = serviceAccount(h.fake, 'robot@fake-project.iam.gserviceaccount.com');
      registered.register();
      // Same account, another key pair: the signature does not verify.
      const impostor = serviceAccount(h.fake, 'robot@fake-project.iam.gserviceaccount.com');
      const error = await h.open({ apiKey: impostor.json, options: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      expect((error as Error).message).toMatch(/invalid_grant/);
      expect(h.fake.tokenRequests).toHaveLength(1);
      expect(h.fake.calls).toHaveLength(0);
    });

    it('a token endpoint failing with 503 is retried', async () => {
      const h = await harness();
      const sa = serviceAccount(h.fake);
      sa.register();
      h.fake.control.failNextToken(503);
      await h.open({ apiKey: sa.json, options: {} });
      expect(h.fake.tokenRequests.map((r) => r.status)).toEqual([503, 200]);
    });

    it('a token_uri off googleapis.com (e.g. the metadata address) is refused by default, before any request', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const key = (tokenUri: string) =>
        JSON.stringify({
          type: 'service_account',
          private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          client_email: 'voice@fake-project.iam.gserviceaccount.com',
          token_uri: tokenUri,
        });
      const requested: string[] = [];
      const auth = createGoogleAuth({
        fetch: async (input) => {
          requested.push(String(input));
          return new Response(JSON.stringify({ access_token: 'ya29.x', expires_in: 3600 }), { status: 200 });
        },
      });
      for (const uri of ['http://169.254.169.254/computeMetadata/v1/token', 'https://oauth2.googleapis.com.evil.example/token', 'http://oauth2.googleapis.com/token', 'https://oauth2.googleapis.com:8443/token']) {
        const error = await auth.metadata(parseGoogleCredential(key(uri))).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, uri).toMatchObject({ retryable: false, kind: 'auth' });
        expect((error as Error).message).toMatch(/token_uri .* is refused: it must be an https URL on googleapis.com/);
      }
      expect(requested).toEqual([]);
      expect(auth.tokenRequests).toBe(0);
      // The real endpoints pass.
      expect(await auth.metadata(parseGoogleCredential(key('https://oauth2.googleapis.com/token')))).toEqual({ authorization: 'Bearer ya29.x' });
      expect(requested).toEqual(['https://oauth2.googleapis.com/token']);
      expect(isGoogleTokenUri('https://eu-oauth2.googleapis.com/token')).toBe(true);
    });

    it('JSON that is not a service-account key is refused with a message that says what to store', async () => {
      const h = await harness();
      const error = await h.open({ apiKey: '{"type":"authorized_user","client_id":"x"}', options: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ retryable: false, kind: 'auth' });
      expect((error as Error).message).toMatch(/service-account key.*authorized_user/);
    });
  });
});

describe('google endpoints and statuses', () => {
  it('the block endpoint replaces Google host: http → plaintext HTTP/2, https or bare host → TLS', () => {
    expect(resolveTarget(undefined, 'speech.googleapis.com')).toEqual({ address: 'speech.googleapis.com:443', secure: true });
    expect(resolveTarget('http://127.0.0.1:5000', 'x')).toEqual({ address: '127.0.0.1:5000', secure: false });
    expect(resolveTarget('https://speech.internal', 'x')).toEqual({ address: 'speech.internal:443', secure: true });
    expect(resolveTarget('eu-speech.googleapis.com:8443', 'x')).toEqual({ address: 'eu-speech.googleapis.com:8443', secure: true });
    expect(() => resolveTarget('wss://x', 'y')).toThrow(ProviderError);
  });

  it('a regional location goes to {location}-speech.googleapis.com', () => {
    const plan = planStreams({ language: 'en-US', model: 'chirp_3', apiKey: 'k', options: { project: 'p', location: 'us' }, signal: new AbortController().signal });
    expect(plan.target).toEqual({ address: 'us-speech.googleapis.com:443', secure: true });
    expect(plan.recognizer).toBe('projects/p/locations/us/recognizers/_');
    const global = planStreams({ language: 'en-US', apiKey: 'k', options: { project: 'p' }, signal: new AbortController().signal });
    expect(global.target.address).toBe('speech.googleapis.com:443');
  });

  it('gRPC statuses: auth (incl. "API key not valid") and bad requests end, quota and outages retry, OUT_OF_RANGE restarts', () => {
    const verdict = (code: grpc.status, details = '') => classifyStatus({ code, details }, 'speech-to-text');
    expect(verdict(grpc.status.OK)).toEqual({ kind: 'ok' });
    expect(verdict(grpc.status.UNAUTHENTICATED)).toMatchObject({ kind: 'error', error: { retryable: false, kind: 'auth' } });
    expect(verdict(grpc.status.PERMISSION_DENIED)).toMatchObject({ kind: 'error', error: { retryable: false, kind: 'auth' } });
    expect(verdict(grpc.status.INVALID_ARGUMENT, 'API key not valid. Please pass a valid API key.')).toMatchObject({ kind: 'error', error: { retryable: false, kind: 'auth' } });
    expect(verdict(grpc.status.INVALID_ARGUMENT, 'Audio chunk can be of a maximum of 25600 bytes.')).toMatchObject({ kind: 'error', error: { retryable: false, kind: 'bad-request' } });
    expect(verdict(grpc.status.NOT_FOUND)).toMatchObject({ kind: 'error', error: { retryable: false } });
    expect(verdict(grpc.status.RESOURCE_EXHAUSTED)).toMatchObject({ kind: 'error', error: { retryable: true, kind: 'rate-limit' } });
    expect(verdict(grpc.status.UNAVAILABLE)).toMatchObject({ kind: 'error', error: { retryable: true, kind: 'unavailable' } });
    expect(verdict(grpc.status.INTERNAL)).toMatchObject({ kind: 'error', error: { retryable: true } });
    expect(verdict(grpc.status.OUT_OF_RANGE)).toMatchObject({ kind: 'restart' });
    expect((verdict(grpc.status.UNAUTHENTICATED) as { error: Error }).error.message).toContain('google-speech-service');
  });
});

describe('google TTS (StreamingSynthesize)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function harness(fakeOptions: GoogleFakeOptions = {}, deps: GoogleProviderDeps = {}) {
    const fake = await startGoogleFake(fakeOptions);
    cleanups.push(() => fake.close());
    const tts = createGoogleTts({ retry, auth: localAuth(), ...deps });
    cleanups.push(() => tts.close());
    const utter = (pieces: readonly string[], o: { format?: AudioFormat; voice?: string; options?: Record<string, unknown>; apiKey?: string; end?: boolean; onEvent?: (e: TtsEvent, s: TtsStream) => void } = {}) => {
      const events: TtsEvent[] = [];
      const stream: TtsStream = tts.stream(
        {
          voice: o.voice ?? 'en-GB-Chirp3-HD-Aoede',
          language: 'en-US',
          format: o.format ?? PIPELINE_FORMAT,
          endpoint: fake.endpoint,
          apiKey: o.apiKey ?? fake.apiKey,
          options: o.options ?? {},
          signal: new AbortController().signal,
        },
        (event) => {
          events.push(event);
          o.onEvent?.(event, stream);
        },
      );
      for (const piece of pieces) stream.push(piece);
      if (o.end ?? true) stream.end();
      return { stream, events, finished: () => events.some((e) => e.type === 'done' || e.type === 'error') };
    };
    return { fake, tts, utter };
  }

  const audioOf = (events: readonly TtsEvent[], index?: number) => events.flatMap((e) => (e.type === 'audio' && (index === undefined || e.textIndex === index) ? [e.data] : []));

  it('declares its capabilities and id', () => {
    const tts = createGoogleTts();
    expect(tts.id).toBe('google-speech-service');
    expect(tts.requiresCredential).toBe(true);
    expect(tts.capabilities).toMatchObject({ wordTimings: false, edgeCapable: false, multiplexed: true, cancelWithoutClosing: true });
    expect(tts.capabilities.outputFormats).toContainEqual(PIPELINE_FORMAT);
    expect(tts.capabilities.outputFormats).toContainEqual(MULAW_8K);
  });

  it('one call per piece: config (voice, its locale, PCM at the asked rate), the text, half-close; textIndex is exact', async () => {
    const h = await harness();
    const pieces = ['hello there. ', 'what is the weather today. '];
    const u = h.utter(pieces, { format: { encoding: 'pcm16', sampleRateHz: 24_000 } });
    await waitFor(u.finished, 'the utterance');
    expect(u.events.at(-1)?.type).toBe('done');
    expect(h.fake.calls).toHaveLength(2);
    for (const [i, call] of h.fake.calls.entries()) {
      expect(call.config).toMatchObject({
        streaming_config: { voice: { language_code: 'en-GB', name: 'en-GB-Chirp3-HD-Aoede' }, streaming_audio_config: { audio_encoding: 'PCM', sample_rate_hertz: 24_000 } },
      });
      expect(call.texts).toEqual([pieces[i]]);
      expect(call.halfClosed).toBe(true);
      expect(call.closeCode).toBe(1000);
    }
    const format = { encoding: 'pcm16', sampleRateHz: 24_000 } as const;
    expect(heardWords(audioOf(u.events, 0), format)).toEqual(['hello', 'there']);
    expect(heardWords(audioOf(u.events, 1), format)).toEqual(['what', 'is', 'the', 'weather', 'today']);
    expect(h.fake.transports).toHaveLength(1);
  });

  it('μ-law 8 kHz straight from Google, and LINEAR16 (pcmEncoding) with its WAV header removed', async () => {
    const h = await harness();
    const mulaw = h.utter(['okay thanks. '], { format: MULAW_8K });
    await waitFor(mulaw.finished, 'the μ-law utterance');
    expect(h.fake.calls[0]!.config).toMatchObject({ streaming_config: { streaming_audio_config: { audio_encoding: 'MULAW', sample_rate_hertz: 8000 } } });
    expect(heardWords(audioOf(mulaw.events), MULAW_8K)).toEqual(['okay', 'thanks']);

    const linear = h.utter(['okay thanks. '], { options: { pcmEncoding: 'LINEAR16' } });
    await waitFor(linear.finished, 'the LINEAR16 utterance');
    expect(h.fake.calls[1]!.config).toMatchObject({ streaming_config: { streaming_audio_config: { audio_encoding: 'LINEAR16' } } });
    const first = audioOf(linear.events)[0]!;
    expect(String.fromCharCode(...first.subarray(0, 4))).not.toBe('RIFF');
    expect(heardWords(audioOf(linear.events), PIPELINE_FORMAT)).toEqual(['okay', 'thanks']);
    expect(linear.events.filter((e) => e.type === 'error')).toEqual([]);
  });

  it('later pieces are synthesised ahead (lookahead) and still delivered in order', async () => {
    const h = await harness({ ttsPacing: { realtimeFactor: 1 } });
    const pieces = ['hello there. ', 'what is it. ', 'tell me a joke. '];
    let callsAtFirstAudio = 0;
    const u = h.utter(pieces, {
      onEvent: (e) => {
        if (e.type === 'audio' && callsAtFirstAudio === 0) callsAtFirstAudio = -1;
      },
    });
    await waitFor(() => callsAtFirstAudio === -1, 'the first audio');
    await delay(100);
    callsAtFirstAudio = h.fake.calls.length;
    expect(callsAtFirstAudio).toBe(3);
    await waitFor(u.finished, 'the utterance');
    const indexes = u.events.flatMap((e) => (e.type === 'audio' ? [e.textIndex] : []));
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(heardWords(audioOf(u.events), PIPELINE_FORMAT)).toEqual(splitWords(pieces.join(' ')));
  });

  it('lookahead 0: one call at a time', async () => {
    const h = await harness({ ttsPacing: { realtimeFactor: 2 } });
    let maxOpen = 0;
    const u = h.utter(['hello there. ', 'what is it. '], {
      options: { lookahead: 0 },
      onEvent: () => {
        maxOpen = Math.max(maxOpen, h.fake.calls.filter((c) => c.closeCode === undefined).length);
      },
    });
    await waitFor(u.finished, 'the utterance');
    expect(maxOpen).toBe(1);
    expect(heardWords(audioOf(u.events), PIPELINE_FORMAT)).toEqual(['hello', 'there', 'what', 'is', 'it']);
  });

  it('cancel cancels the calls (the server sees them cancelled) and keeps the connection', async () => {
    const h = await harness({ ttsPacing: { realtimeFactor: 1 } });
    let cancelled = -1;
    const u = h.utter(['once upon a time there was a dragon. ', 'and it was warm. '], {
      onEvent: (e, s) => {
        if (e.type === 'audio' && cancelled === -1) {
          s.cancel();
          cancelled = u.events.length;
        }
      },
    });
    await waitFor(() => cancelled >= 0, 'the first audio');
    await waitFor(() => h.fake.calls.every((c) => c.closeCode !== undefined), 'the calls to end');
    expect(h.fake.calls.map((c) => c.closeCode)).toEqual(h.fake.calls.map(() => 1001));
    await delay(200);
    expect(u.events).toHaveLength(cancelled);
    expect(h.fake.transports[0]!.closeCode).toBeUndefined();
  });

  it('a refusal on a connection that stays is retried on that connection', async () => {
    const h = await harness({ closeOnRefusal: false });
    h.fake.control.refuseNext(429);
    const u = h.utter(['hi there. ']);
    await waitFor(u.finished, 'the utterance');
    expect(u.events.at(-1)?.type).toBe('done');
    expect(h.fake.calls.map((c) => c.closeCode)).toEqual([4000 + grpc.status.RESOURCE_EXHAUSTED, 1000]);
    expect(h.fake.transports).toHaveLength(1);
  });

  it('a dropped connection after audio was delivered fails the utterance (retryable): a retry would repeat it', async () => {
    const h = await harness({ ttsPacing: { realtimeFactor: 1 } });
    let dropped = false;
    const u = h.utter(['once upon a time there was a dragon. '], {
      onEvent: (e) => {
        if (e.type === 'audio' && !dropped) {
          dropped = true;
          h.fake.control.drop();
        }
      },
    });
    await waitFor(u.finished, 'the error');
    const error = u.events.find((e) => e.type === 'error') as Extract<TtsEvent, { type: 'error' }>;
    expect(error.error).toMatchObject({ retryable: true });
    expect(h.fake.calls).toHaveLength(1);
  });

  it('service account: prewarm connects and fetches the token; the utterance then uses both', async () => {
    const h = await harness();
    const sa = serviceAccount(h.fake);
    sa.register();
    await h.tts.prewarm({ voice: 'en-US-Chirp3-HD-Charon', language: 'en-US', format: PIPELINE_FORMAT, endpoint: h.fake.endpoint, apiKey: sa.json, options: {} });
    expect(h.fake.transports).toHaveLength(1);
    expect(h.fake.tokenRequests).toHaveLength(1);
    const u = h.utter(['hello. '], { apiKey: sa.json });
    await waitFor(u.finished, 'the utterance');
    expect(u.events.at(-1)?.type).toBe('done');
    expect(h.fake.calls[0]!.headers.authorization).toMatch(/^Bearer /);
    expect(h.fake.tokenRequests).toHaveLength(1);
    expect(h.fake.transports).toHaveLength(1);
  });

  it('whitespace pieces need no call', async () => {
    const h = await harness();
    const u = h.utter(['hello. ', '  ', 'goodbye. ']);
    await waitFor(u.finished, 'the utterance');
    expect(h.fake.calls).toHaveLength(2);
    expect(new Set(u.events.flatMap((e) => (e.type === 'audio' ? [e.textIndex] : [])))).toEqual(new Set([0, 2]));
  });

  it('plans: the default voice is Chirp 3 HD in the block language; options are validated', () => {
    const plan = planUtterance({ language: 'de-DE', format: PIPELINE_FORMAT, apiKey: 'k', options: { speakingRate: 1.2 } });
    expect(plan.config).toEqual({
      streaming_config: { voice: { language_code: 'de-DE', name: 'de-DE-Chirp3-HD-Charon' }, streaming_audio_config: { audio_encoding: 'PCM', sample_rate_hertz: 16000, speaking_rate: 1.2 } },
    });
    expect(plan.target).toEqual({ address: 'texttospeech.googleapis.com:443', secure: true });
    expect(() => planUtterance({ language: 'en-US', format: PIPELINE_FORMAT, apiKey: 'k', options: { speakingRate: 9 } })).toThrow(/speakingRate/);
    expect(() => planUtterance({ language: 'en-US', format: PIPELINE_FORMAT, options: {} })).toThrow(/google-speech-service/);
  });

  it('stripWavHeader removes a RIFF/WAVE header up to its data chunk and leaves raw audio alone', () => {
    const header = new Uint8Array(44);
    header.set([...'RIFF'].map((c) => c.charCodeAt(0)), 0);
    header.set([...'WAVE'].map((c) => c.charCodeAt(0)), 8);
    header.set([...'fmt '].map((c) => c.charCodeAt(0)), 12);
    header[16] = 16;
    header.set([...'data'].map((c) => c.charCodeAt(0)), 36);
    const audio = new Uint8Array([1, 2, 3, 4]);
    const joined = new Uint8Array([...header, ...audio]);
    expect([...stripWavHeader(joined)]).toEqual([1, 2, 3, 4]);
    expect(stripWavHeader(audio)).toBe(audio);
  });
});
