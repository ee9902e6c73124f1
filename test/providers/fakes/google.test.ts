/**
 * The Google fake on its own, driven by a plain grpc-js client over the same .proto subsets (no adapter code):
 * what it accepts and refuses, what it hears and says, its limits and its token endpoint.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeWords, synthesizeWords } from '../../fakes/tones';
import { SYNTHESIZE_PATH, startGoogleFake, type GoogleFakeOptions, type GoogleFakeServer } from './google';

const definition = protoLoader.loadSync(['google/cloud/speech/v2/cloud_speech.proto', 'google/cloud/texttospeech/v1/tts.proto'], {
  includeDirs: [fileURLToPath(new URL('../../../protos', import.meta.url))],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
});
const recognizeMethod = (definition['google.cloud.speech.v2.Speech'] as protoLoader.ServiceDefinition).StreamingRecognize!;
const synthesizeMethod = (definition['google.cloud.texttospeech.v1.TextToSpeech'] as protoLoader.ServiceDefinition).StreamingSynthesize!;

type Message = Record<string, unknown>;
const RECOGNIZER = 'projects/p/locations/global/recognizers/_';
const CONFIG: Message = {
  recognizer: RECOGNIZER,
  streaming_config: {
    config: { explicit_decoding_config: { encoding: 'LINEAR16', sample_rate_hertz: 16000, audio_channel_count: 1 }, model: 'long', language_codes: ['en-US'], features: { enable_word_time_offsets: true } },
    streaming_features: { interim_results: true, enable_voice_activity_events: true },
  },
};

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Call {
  readonly call: grpc.ClientDuplexStream<Message, Message>;
  readonly messages: Message[];
  readonly raw: Buffer[];
  readonly status: Promise<grpc.StatusObject>;
  headersSeen: boolean;
}

describe('the Google fake', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(options: GoogleFakeOptions = {}): Promise<{ fake: GoogleFakeServer; client: grpc.Client }> {
    const fake = await startGoogleFake(options);
    const client = new grpc.Client(fake.endpoint.replace('http://', ''), grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    cleanups.push(() => fake.close());
    cleanups.push(() => client.close());
    return { fake, client };
  }

  function open(client: grpc.Client, method: 'recognize' | 'synthesize', headers: Record<string, string>): Call {
    const def = method === 'recognize' ? recognizeMethod : synthesizeMethod;
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    const raw: Buffer[] = [];
    const call = client.makeBidiStreamRequest<Message, Message>(def.path, def.requestSerialize as (v: Message) => Buffer, (bytes: Buffer) => {
      raw.push(bytes);
      return def.responseDeserialize(bytes) as Message;
    }, metadata);
    const messages: Message[] = [];
    const result: Call = {
      call,
      messages,
      raw,
      headersSeen: false,
      status: new Promise((resolve) => call.on('status', resolve)),
    };
    call.on('metadata', () => {
      result.headersSeen = true;
    });
    call.on('data', (m: Message) => messages.push(m));
    call.on('error', () => {});
    return result;
  }

  function audioRequests(pcm: Int16Array, bytesPerRequest = 3200): Message[] {
    const bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    const out: Message[] = [];
    for (let at = 0; at < bytes.byteLength; at += bytesPerRequest) out.push({ audio: bytes.subarray(at, at + bytesPerRequest) });
    return out;
  }

  const silence = (ms: number) => new Int16Array(16 * ms);

  it('recognizes tone words: interim per word, then a final with word offsets and result_end_offset', async () => {
    const { fake, client } = await start();
    const c = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    c.call.write(CONFIG);
    for (const m of audioRequests(synthesizeWords(['hello', 'weather'], 16000).pcm)) c.call.write(m);
    for (const m of audioRequests(silence(500))) c.call.write(m);
    c.call.end();
    const status = await c.status;
    expect(status.code).toBe(grpc.status.OK);
    expect(c.headersSeen).toBe(true);
    const interims = c.messages.filter((m) => (m.results as Message[] | undefined)?.some((r) => !r.is_final));
    expect(interims.map((m) => ((m.results as Message[])[0]!.alternatives as Message[])[0]!.transcript)).toEqual(['hello', 'hello weather']);
    const finals = c.messages.flatMap((m) => ((m.results as Message[] | undefined) ?? []).filter((r) => r.is_final));
    expect(finals).toHaveLength(1);
    const alternative = (finals[0]!.alternatives as Message[])[0]!;
    expect(alternative.transcript).toBe('hello weather');
    const words = alternative.words as { word: string; start_offset?: { seconds?: number; nanos?: number }; end_offset?: { seconds?: number; nanos?: number } }[];
    const ms = (d?: { seconds?: number; nanos?: number }) => (d?.seconds ?? 0) * 1000 + (d?.nanos ?? 0) / 1e6;
    expect(words.map((w) => w.word)).toEqual(['hello', 'weather']);
    expect(ms(words[0]!.start_offset)).toBe(0);
    expect(ms(words[0]!.end_offset)).toBeGreaterThanOrEqual(160);
    expect(ms(words[1]!.start_offset)).toBeGreaterThan(ms(words[0]!.end_offset));
    expect(ms(finals[0]!.result_end_offset as { seconds?: number })).toBeGreaterThanOrEqual(ms(words[1]!.end_offset) + 300);
    // Voice activity events bracket the utterance.
    expect(c.messages.map((m) => m.speech_event_type).filter(Boolean)).toEqual(['SPEECH_ACTIVITY_BEGIN', 'SPEECH_ACTIVITY_END']);
    const record = fake.calls[0]!;
    expect(record.closeCode).toBe(1000);
    expect(record.halfClosed).toBe(true);
    expect(record.headers['x-goog-api-key']).toBe(fake.apiKey);
    expect(record.config).toMatchObject({ recognizer: RECOGNIZER });
  });

  it('a half-close finalizes the words heard so far at once', async () => {
    const { fake, client } = await start();
    const c = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    c.call.write(CONFIG);
    for (const m of audioRequests(synthesizeWords(['tell', 'me'], 16000).pcm)) c.call.write(m);
    c.call.end();
    expect((await c.status).code).toBe(grpc.status.OK);
    const finals = c.messages.flatMap((m) => ((m.results as Message[] | undefined) ?? []).filter((r) => r.is_final));
    expect(finals.map((r) => ((r.alternatives as Message[])[0]!.transcript as string).trim())).toEqual(['tell me']);
  });

  it('enforces the request rules: config first, audio ≤ 25,600 bytes, a recognizer resource name, LINEAR16 16 kHz', async () => {
    const { fake, client } = await start();
    const cases: { requests: Message[]; details: RegExp }[] = [
      { requests: [{ audio: Buffer.alloc(640) }], details: /first StreamingRecognizeRequest/ },
      { requests: [CONFIG, { audio: Buffer.alloc(25_602) }], details: /maximum of 25600 bytes/ },
      { requests: [{ ...CONFIG, recognizer: 'recognizers/_' }], details: /recognizer/ },
      { requests: [CONFIG, CONFIG], details: /Only the first/ },
      {
        requests: [{ ...CONFIG, streaming_config: { config: { explicit_decoding_config: { encoding: 'MULAW', sample_rate_hertz: 8000 }, language_codes: ['en-US'] } } }],
        details: /LINEAR16/,
      },
    ];
    for (const { requests, details } of cases) {
      const c = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
      for (const r of requests) c.call.write(r);
      const status = await c.status;
      expect(status.code, String(details)).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toMatch(details);
    }
    // 25,600 bytes exactly is fine.
    const ok = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    ok.call.write(CONFIG);
    ok.call.write({ audio: Buffer.alloc(25_600) });
    ok.call.end();
    expect((await ok.status).code).toBe(grpc.status.OK);
    expect(fake.calls.at(-2)!.closeCode).toBe(4000 + grpc.status.INVALID_ARGUMENT);
  });

  it('ends idle streams and streams past the time limit with OUT_OF_RANGE', async () => {
    const { fake, client } = await start({ idleCloseMs: 200, streamLimitMs: 600 });
    const idle = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    idle.call.write(CONFIG);
    const idleStatus = await idle.status;
    expect(idleStatus.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(idleStatus.details).toMatch(/Audio Timeout/);

    const busy = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    busy.call.write(CONFIG);
    const feeding = setInterval(() => busy.call.write({ audio: Buffer.alloc(3200) }), 50);
    const limitStatus = await busy.status;
    clearInterval(feeding);
    expect(limitStatus.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(limitStatus.details).toMatch(/maximum allowed stream duration/);
  });

  it('authenticates every call: API key, issued bearer tokens, nothing else', async () => {
    const { fake, client } = await start();
    const wrongKey = open(client, 'recognize', { 'x-goog-api-key': 'nope' });
    expect(await wrongKey.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/API key not valid/) });
    const bogusToken = open(client, 'recognize', { authorization: 'Bearer ya29.made-up' });
    expect((await bogusToken.status).code).toBe(grpc.status.UNAUTHENTICATED);
    const nothing = open(client, 'synthesize', {});
    expect((await nothing.status).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrongKey.headersSeen || bogusToken.headersSeen || nothing.headersSeen).toBe(false);
    expect(fake.calls.map((c) => c.closeCode)).toEqual([4000 + grpc.status.INVALID_ARGUMENT, 4000 + grpc.status.UNAUTHENTICATED, 4000 + grpc.status.UNAUTHENTICATED]);
  });

  it('token endpoint: verifies the RS256 signature, audience and scope of the JWT, and issues tokens the services accept', async () => {
    const { fake, client } = await start();
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const email = 'robot@fake-project.iam.gserviceaccount.com';
    fake.registerServiceAccount(email, publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const jwt = (claims: Record<string, unknown>, key = privateKey) => {
      const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}`;
      return `${input}.${sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`;
    };
    const now = Math.floor(Date.now() / 1000);
    const good = { iss: email, aud: fake.tokenUri, scope: 'https://www.googleapis.com/auth/cloud-platform', iat: now, exp: now + 3600 };
    const exchange = (assertion: string) =>
      fetch(fake.tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
      });

    expect((await exchange(jwt(good, other.privateKey))).status).toBe(400);
    expect((await exchange(jwt({ ...good, aud: 'https://elsewhere/token' }))).status).toBe(400);
    expect((await exchange(jwt({ ...good, scope: 'email' }))).status).toBe(400);
    expect((await exchange(jwt({ ...good, exp: now + 7200 }))).status).toBe(400);
    const response = await exchange(jwt(good));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string; expires_in: number; token_type: string };
    expect(body).toMatchObject({ expires_in: 3600, token_type: 'Bearer' });
    expect(fake.tokenRequests.map((r) => r.status)).toEqual([400, 400, 400, 400, 200]);

    const c = open(client, 'recognize', { authorization: `Bearer ${body.access_token}` });
    c.call.write(CONFIG);
    c.call.end();
    expect((await c.status).code).toBe(grpc.status.OK);
    fake.expireTokens();
    const late = open(client, 'recognize', { authorization: `Bearer ${body.access_token}` });
    expect((await late.status).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('synthesizes the input texts as tone words in the requested encoding; LINEAR16 carries a WAV header', async () => {
    const { fake, client } = await start({ ttsPacing: { realtimeFactor: 50 } });
    for (const encoding of ['PCM', 'LINEAR16'] as const) {
      const c = open(client, 'synthesize', { 'x-goog-api-key': fake.apiKey });
      c.call.write({ streaming_config: { voice: { language_code: 'en-US', name: 'en-US-Chirp3-HD-Charon' }, streaming_audio_config: { audio_encoding: encoding, sample_rate_hertz: 16000 } } });
      c.call.write({ input: { text: 'hello there. ' } });
      c.call.write({ input: { text: 'what is the weather today.' } });
      c.call.end();
      expect((await c.status).code).toBe(grpc.status.OK);
      let audio = Buffer.concat(c.messages.map((m) => m.audio_content as Buffer));
      if (encoding === 'LINEAR16') {
        expect(audio.subarray(0, 4).toString('ascii')).toBe('RIFF');
        audio = audio.subarray(44);
      }
      const pcm = new Int16Array(audio.buffer.slice(audio.byteOffset, audio.byteOffset + audio.byteLength));
      expect(decodeWords(pcm, 16000)).toEqual(['hello', 'there', 'what', 'is', 'the', 'weather', 'today']);
      expect(fake.calls.at(-1)!.texts).toEqual(['hello there. ', 'what is the weather today.']);
    }
    const bad = open(client, 'synthesize', { 'x-goog-api-key': fake.apiKey });
    bad.call.write({ streaming_config: { voice: { language_code: 'en-US' }, streaming_audio_config: { audio_encoding: 'MP3' } } });
    expect((await bad.status).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('control: refuseNext answers the mapped status and closes the connection; dropAfterWords ends the call with UNAVAILABLE', async () => {
    const { fake, client } = await start();
    fake.control.refuseNext(429);
    const refused = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    expect((await refused.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await delay(50);
    expect(fake.transports[0]!.closeCode).toBeDefined();

    fake.control.dropAfterWords(1);
    const c = open(client, 'recognize', { 'x-goog-api-key': fake.apiKey });
    c.call.write(CONFIG);
    for (const m of audioRequests(synthesizeWords(['once', 'upon', 'a', 'time'], 16000).pcm)) c.call.write(m);
    const status = await c.status;
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(fake.transports).toHaveLength(2);
    expect(fake.calls.map((r) => r.closeCode)).toEqual([4000 + grpc.status.RESOURCE_EXHAUSTED, 4000 + grpc.status.UNAVAILABLE]);
  });

  it('control: sendRaw writes bytes as a response message, to open calls or the next call', async () => {
    const { fake, client } = await start();
    fake.control.sendRaw('{"type":');
    const c = open(client, 'synthesize', { 'x-goog-api-key': fake.apiKey });
    const status = await Promise.race([c.status, delay(300).then(() => undefined)]);
    // Garbage is not a valid message: a strict client deserializer fails the call (adapters decode themselves).
    expect(status?.code ?? -1).toBe(grpc.status.INTERNAL);
    expect(c.raw[0]?.toString('utf8')).toBe('{"type":');
    expect(fake.calls[0]!.url).toBe(SYNTHESIZE_PATH);
  });
});
