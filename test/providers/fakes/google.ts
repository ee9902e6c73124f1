import { createPublicKey, randomUUID, verify, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { alawEncode, mulawEncode } from '../../../shared/audio/g711';
import { createToneDecoder, splitWords, synthesizeWords } from '../../fakes/tones';
import type { FakeConnectionRecord, FakeProviderControl, FakeProviderServer } from '../conformance/fake-server';

/**
 * A local Google Cloud speech service for tests, written from ../shared/reference/providers.md §1.4 (Speech-to-Text
 * v2 `StreamingRecognize`) and §2.4 (Text-to-Speech v1 `StreamingSynthesize`), never from the adapter: a grpc-js
 * server on 127.0.0.1:0 (plaintext HTTP/2) serving both services from the same .proto subsets the adapter
 * loads (protos/google/, Google's field numbers), plus an OAuth2 token endpoint (HTTP) for service accounts.
 *
 * Auth, per call, like Google: `x-goog-api-key: <apiKey>` (a wrong key → INVALID_ARGUMENT "API key not valid",
 * as Google answers) or `authorization: Bearer <token>` with a token this fake issued and that has not expired
 * (else UNAUTHENTICATED). The token endpoint takes `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
 * a JWT assertion, verifies its RS256 signature with the public key registered for its `iss`, its `aud`
 * (the token URI), `scope`, `iat`/`exp`, and issues `{access_token, expires_in, token_type}`.
 *
 * StreamingRecognize: the first request must carry `recognizer` (projects/{p}/locations/{l}/recognizers/{r})
 * and `streaming_config` with LINEAR16 16 kHz mono (the only audio this fake hears), later ones `audio` only,
 * each ≤ 25,600 bytes (else INVALID_ARGUMENT "Audio chunk can be of a maximum of 25600 bytes"). Words are heard
 * as tones (test/fakes/tones.ts) counting audio time: an interim result after each word (the unsettled words of
 * the utterance), a final (with word offsets, a confidence and `result_end_offset`) after `finalSilenceMs` of
 * audio without a word, or at once when the client half-closes; then OK. Voice-activity events when asked.
 * OUT_OF_RANGE ends a stream idle for `idleCloseMs` ("Audio Timeout Error") or older than `streamLimitMs`
 * (wall time, like Google's 5-minute cap).
 *
 * StreamingSynthesize: `streaming_config` first (voice.language_code required; PCM, LINEAR16 — with a WAV header
 * in front, as the REST API does —, MULAW or ALAW at any rate), then `input.text` messages, voiced as tone words
 * in order, in `chunkMs` pieces paced `realtimeFactor` × faster than real time; after the client half-closes and
 * the audio is out, OK.
 *
 * Records: `calls` (one per gRPC call: path, metadata, every request, its end) and `transports` (one per HTTP/2
 * connection: the metadata of its first call, every request on it). `connections` is one of them
 * (`options.connections`): a WebSocket is both the session and the connection, gRPC splits them. End codes in
 * records: 1000 = a call ended OK / a connection closed by the client; 1001 = a call cancelled by the client;
 * 4000 + gRPC code = a call ended by the server with an error status; 1006 = dropped.
 */

const PROTO_ROOT = fileURLToPath(new URL('../../../protos', import.meta.url));
export const RECOGNIZE_PATH = '/google.cloud.speech.v2.Speech/StreamingRecognize';
export const SYNTHESIZE_PATH = '/google.cloud.texttospeech.v1.TextToSpeech/StreamingSynthesize';
const MAX_AUDIO_BYTES = 25_600;
const FRAME_BYTES = 640;
const SAMPLE_RATE = 16_000;
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

export interface GoogleFakeOptions {
  /** A stream without audio for this long ends with OUT_OF_RANGE (default 10 s). */
  readonly idleCloseMs?: number;
  /** A recognize stream older than this (wall time) ends with OUT_OF_RANGE (default 305 s: Google's 5 minutes + grace). */
  readonly streamLimitMs?: number;
  readonly apiKey?: string;
  /** Audio time without a word after which the words heard become a final (default 300 ms). */
  readonly finalSilenceMs?: number;
  /** What `connections` lists (default `calls`). */
  readonly connections?: 'calls' | 'transports';
  /**
   * A call refused through `control.refuseNext` also closes its HTTP/2 connection, as the WebSocket fakes answer
   * a refused upgrade with `Connection: close` (default true). False: the connection stays for the retry.
   */
  readonly closeOnRefusal?: boolean;
  /** Response headers are sent as a call is accepted (default true); false: only with the first message. */
  readonly sendHeadersEarly?: boolean;
  /** TTS audio pacing (default 40 ms chunks at 4× real time, so a cancel can land mid-sentence). */
  readonly ttsPacing?: { readonly chunkMs?: number; readonly realtimeFactor?: number };
  /** Lifetime of issued access tokens (default 3600 s). */
  readonly tokenTtlS?: number;
}

export interface GoogleCallRecord extends FakeConnectionRecord {
  readonly method: 'StreamingRecognize' | 'StreamingSynthesize';
  /** Index into `transports`. */
  readonly transport: number;
  /** The first request, decoded (config). */
  config?: Record<string, unknown>;
  /** TTS: the texts received. */
  readonly texts: string[];
  halfClosed: boolean;
  status?: { readonly code: number; readonly details: string };
}

export interface TokenRequestRecord {
  readonly clientEmail?: string;
  readonly status: number;
  readonly error?: string;
}

export interface GoogleFakeControl extends FakeProviderControl {
  dropAfterWords(words: number): void;
  sendRaw(data: string | Uint8Array): void;
  /** The next token request(s) fail with this HTTP status. */
  failNextToken(status: number, count?: number): void;
}

export interface GoogleFakeServer extends FakeProviderServer {
  readonly calls: readonly GoogleCallRecord[];
  readonly transports: readonly FakeConnectionRecord[];
  /** `http://127.0.0.1:PORT/token`: put it in a service-account JSON as `token_uri`. */
  readonly tokenUri: string;
  readonly tokenRequests: readonly TokenRequestRecord[];
  /** Accept JWTs of `clientEmail` signed by the private half of `publicKeyPem`. */
  registerServiceAccount(clientEmail: string, publicKeyPem: string): void;
  /** Expire every issued access token now (the next call with one is UNAUTHENTICATED). */
  expireTokens(): void;
  readonly control: GoogleFakeControl;
}

type Status = { code: grpc.status; details: string };

const STATUS_FOR_HTTP: Readonly<Record<number, Status>> = {
  400: { code: grpc.status.INVALID_ARGUMENT, details: 'Invalid request.' },
  401: { code: grpc.status.UNAUTHENTICATED, details: 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.' },
  403: { code: grpc.status.PERMISSION_DENIED, details: 'Cloud Speech-to-Text API has not been used in project fake-project before or it is disabled.' },
  404: { code: grpc.status.NOT_FOUND, details: 'Requested entity was not found.' },
  429: { code: grpc.status.RESOURCE_EXHAUSTED, details: 'Quota exceeded for quota metric \'Streaming recognize requests\'.' },
  500: { code: grpc.status.INTERNAL, details: 'Internal error encountered.' },
  503: { code: grpc.status.UNAVAILABLE, details: 'The service is currently unavailable.' },
};

const statusForHttp = (status: number): Status => STATUS_FOR_HTTP[status] ?? { code: grpc.status.UNAVAILABLE, details: `HTTP ${status}` };

function loadMethods(): { recognize: protoLoader.MethodDefinition<object, object>; synthesize: protoLoader.MethodDefinition<object, object> } {
  const definition = protoLoader.loadSync(['google/cloud/speech/v2/cloud_speech.proto', 'google/cloud/texttospeech/v1/tts.proto'], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const speech = definition['google.cloud.speech.v2.Speech'] as protoLoader.ServiceDefinition;
  const tts = definition['google.cloud.texttospeech.v1.TextToSpeech'] as protoLoader.ServiceDefinition;
  return { recognize: speech.StreamingRecognize!, synthesize: tts.StreamingSynthesize! };
}

/** A service definition whose responses may also be raw bytes (control.sendRaw). */
function rawCapable(method: protoLoader.MethodDefinition<object, object>, name: string): grpc.ServiceDefinition {
  return {
    [name]: {
      path: method.path,
      requestStream: true,
      responseStream: true,
      requestSerialize: method.requestSerialize,
      requestDeserialize: method.requestDeserialize,
      responseSerialize: (value: object) => (Buffer.isBuffer(value) ? value : method.responseSerialize(value)),
      responseDeserialize: method.responseDeserialize,
      originalName: name,
    },
  } as grpc.ServiceDefinition;
}

const duration = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) });

function metadataHeaders(metadata: grpc.Metadata): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata.getMap())) headers[name.toLowerCase()] = typeof value === 'string' ? value : `<${value.byteLength} bytes>`;
  return headers;
}

function jsonOf(message: unknown): string {
  return JSON.stringify(message, (_key, value: unknown) => (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' ? '<bytes>' : value));
}

function base64UrlDecode(text: string): Buffer {
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function wavHeader(dataBytes: number, sampleRate: number): Uint8Array {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(dataBytes, 40);
  return new Uint8Array(header);
}

/**
 * The client half-closed its side. grpc-js also ends the request stream when the client cancels (RST_STREAM),
 * and says so (`cancelled`) only a moment later: a cancel must not pass for a half-close.
 */
function onHalfClose(call: grpc.ServerDuplexStream<Record<string, unknown>, object>, handler: () => void): void {
  call.on('end', () => {
    setTimeout(() => {
      if (!call.cancelled) handler();
    }, 5);
  });
}

interface Transport {
  readonly record: FakeConnectionRecord;
  readonly socket: Socket;
  droppedByUs: boolean;
}

interface OpenCall {
  readonly record: GoogleCallRecord;
  readonly call: grpc.ServerDuplexStream<Record<string, unknown>, object>;
  /** End the call with this status (once). */
  finish(status?: Status): void;
}

export async function startGoogleFake(options: GoogleFakeOptions = {}): Promise<GoogleFakeServer> {
  const apiKey = options.apiKey ?? `AIza-fake-${randomUUID()}`;
  const idleCloseMs = options.idleCloseMs ?? 10_000;
  const streamLimitMs = options.streamLimitMs ?? 305_000;
  const finalSilenceMs = options.finalSilenceMs ?? 300;
  const closeOnRefusal = options.closeOnRefusal ?? true;
  const sendHeadersEarly = options.sendHeadersEarly ?? true;
  const chunkMs = options.ttsPacing?.chunkMs ?? 40;
  const realtimeFactor = options.ttsPacing?.realtimeFactor ?? 4;
  const tokenTtlS = options.tokenTtlS ?? 3600;

  const methods = loadMethods();
  const calls: GoogleCallRecord[] = [];
  const transports: FakeConnectionRecord[] = [];
  const transportByPort = new Map<number, Transport>();
  const open = new Set<OpenCall>();
  const refusals: number[] = [];
  const pendingRaw: Buffer[] = [];
  let dropAfter: number | undefined;
  const accounts = new Map<string, KeyObject>();
  const tokens = new Map<string, { clientEmail: string; expiresAt: number }>();
  const tokenRequests: TokenRequestRecord[] = [];
  const tokenFailures: number[] = [];
  let tokenUri = '';

  // ---- transports ------------------------------------------------------------------------------------------

  const server = new grpc.Server();
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const sockets = new Set<Socket>();
  const netServer = createNetServer((socket) => {
    sockets.add(socket);
    const record: FakeConnectionRecord = { url: `http2://127.0.0.1:${socket.remotePort ?? 0}`, headers: {}, received: [] };
    transports.push(record);
    const transport: Transport = { record, socket, droppedByUs: false };
    if (socket.remotePort !== undefined) transportByPort.set(socket.remotePort, transport);
    let endedByClient = false;
    socket.on('end', () => {
      endedByClient = true;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      record.closeCode ??= transport.droppedByUs || !endedByClient ? 1006 : 1000;
    });
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve) => netServer.listen(0, '127.0.0.1', resolve));
  const { port } = netServer.address() as AddressInfo;

  const transportOf = (peer: string): { index: number; transport: Transport | undefined } => {
    const peerPort = Number(/:(\d+)$/.exec(peer)?.[1]);
    const transport = transportByPort.get(peerPort);
    return { index: transport ? transports.indexOf(transport.record) : -1, transport };
  };

  // ---- auth ------------------------------------------------------------------------------------------------

  const checkAuth = (headers: Record<string, string>): Status | undefined => {
    const key = headers['x-goog-api-key'];
    const authorization = headers.authorization;
    if (authorization?.startsWith('Bearer ')) {
      const issued = tokens.get(authorization.slice('Bearer '.length));
      if (issued && issued.expiresAt > Date.now()) return undefined;
      return statusForHttp(401);
    }
    if (key !== undefined) return key === apiKey ? undefined : { code: grpc.status.INVALID_ARGUMENT, details: 'API key not valid. Please pass a valid API key.' };
    return { code: grpc.status.UNAUTHENTICATED, details: 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.' };
  };

  /** Record the call and decide whether it may run: undefined = refused (already answered). */
  const admit = (call: grpc.ServerDuplexStream<Record<string, unknown>, object>, method: GoogleCallRecord['method']): OpenCall | undefined => {
    const headers = metadataHeaders(call.metadata);
    const { index, transport } = transportOf(call.getPeer());
    const record: GoogleCallRecord = { url: method === 'StreamingRecognize' ? RECOGNIZE_PATH : SYNTHESIZE_PATH, headers, received: [], method, transport: index, texts: [], halfClosed: false };
    calls.push(record);
    if (transport && Object.keys(transport.record.headers).length === 0) Object.assign(transport.record.headers, headers);
    let finished = false;
    const entry: OpenCall = {
      record,
      call,
      finish(status) {
        if (finished) return;
        finished = true;
        open.delete(entry);
        const s = status ?? { code: grpc.status.OK, details: 'OK' };
        record.status = s;
        record.closeCode ??= s.code === grpc.status.OK ? 1000 : 4000 + s.code;
        if (s.code === grpc.status.OK) call.end();
        else call.emit('error', { code: s.code, details: s.details, metadata: new grpc.Metadata() });
      },
    };
    call.on('data', (message: Record<string, unknown>) => {
      record.received.push(message.audio instanceof Uint8Array ? new Uint8Array(message.audio) : jsonOf(message));
      if (transport) transport.record.received.push(record.received.at(-1)!);
    });
    call.on('cancelled', () => {
      if (!finished) record.closeCode ??= 1001;
      finished = true;
      open.delete(entry);
    });
    call.on('error', () => {});
    const forced = refusals.shift();
    if (forced !== undefined) {
      entry.finish(statusForHttp(forced));
      // Like a refused WebSocket upgrade (`Connection: close`): the retry needs a new connection.
      if (closeOnRefusal && transport) setImmediate(() => transport.socket.end());
      return undefined;
    }
    const refusal = checkAuth(headers);
    if (refusal) {
      entry.finish(refusal);
      return undefined;
    }
    open.add(entry);
    if (sendHeadersEarly) call.sendMetadata(new grpc.Metadata());
    for (const raw of pendingRaw.splice(0)) call.write(raw);
    return entry;
  };

  // ---- StreamingRecognize ----------------------------------------------------------------------------------

  const recognize = (call: grpc.ServerDuplexStream<Record<string, unknown>, object>): void => {
    const entry = admit(call, 'StreamingRecognize');
    if (!entry) return;
    const { record } = entry;
    let configured = false;
    let vadEvents = false;
    let interim = true;
    let audioMs = 0;
    let pending = new Uint8Array(0);
    let words: { word: string; startMs: number; endMs: number }[] = [];
    let runStartMs = 0;
    let lastWordEndMs = 0;
    let activityOpen = false;
    let finals = 0;
    const timers: ReturnType<typeof setTimeout>[] = [];
    let idleTimer: ReturnType<typeof setTimeout> | undefined;

    const finish = (status?: Status): void => {
      for (const t of timers) clearTimeout(t);
      clearTimeout(idleTimer);
      entry.finish(status);
    };
    const send = (response: object): void => {
      if (open.has(entry)) call.write(response);
    };
    const armIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => finish({ code: grpc.status.OUT_OF_RANGE, details: 'Audio Timeout Error: Long duration elapsed without audio. Audio should be sent close to real time.' }), idleCloseMs);
    };
    armIdle();
    timers.push(setTimeout(() => finish({ code: grpc.status.OUT_OF_RANGE, details: `Exceeded maximum allowed stream duration of ${Math.round(streamLimitMs / 1000)} seconds.` }), streamLimitMs));
    call.on('cancelled', () => {
      for (const t of timers) clearTimeout(t);
      clearTimeout(idleTimer);
    });

    const emitFinal = (): void => {
      if (!words.length) return;
      const transcript = words.map((w) => w.word).join(' ');
      send({
        results: [
          {
            alternatives: [
              {
                // Finals after the first carry a leading space: the full transcript is their concatenation.
                transcript: `${finals > 0 ? ' ' : ''}${transcript}`,
                confidence: 0.92,
                words: words.map((w) => ({ word: w.word, start_offset: duration(w.startMs), end_offset: duration(w.endMs), confidence: 0.9 })),
              },
            ],
            is_final: true,
            result_end_offset: duration(audioMs),
            language_code: 'en-us',
          },
        ],
      });
      finals++;
      words = [];
      if (vadEvents && activityOpen) {
        activityOpen = false;
        send({ speech_event_type: 'SPEECH_ACTIVITY_END', speech_event_offset: duration(audioMs) });
      }
    };

    let frameStartMs = 0;
    const decoder = createToneDecoder(SAMPLE_RATE, (word) => {
      words.push({ word, startMs: runStartMs, endMs: frameStartMs });
      lastWordEndMs = frameStartMs;
      if (interim) send({ results: [{ alternatives: [{ transcript: words.map((w) => w.word).join(' ') }], is_final: false, stability: 0.5, result_end_offset: duration(frameStartMs) }] });
      if (dropAfter !== undefined && --dropAfter <= 0) {
        dropAfter = undefined;
        finish({ code: grpc.status.UNAVAILABLE, details: 'Connection reset by the fake (dropAfterWords).' });
      }
    });

    const hear = (audio: Uint8Array): void => {
      const joined = new Uint8Array(pending.byteLength + audio.byteLength);
      joined.set(pending);
      joined.set(audio, pending.byteLength);
      let offset = 0;
      for (; offset + FRAME_BYTES <= joined.byteLength; offset += FRAME_BYTES) {
        if (!open.has(entry)) return;
        frameStartMs = audioMs;
        const frame = new Int16Array(joined.slice(offset, offset + FRAME_BYTES).buffer);
        const wasInWord = decoder.inWord;
        const before = words.length;
        decoder.push(frame);
        if (decoder.inWord && (!wasInWord || words.length > before)) {
          runStartMs = frameStartMs;
          if (vadEvents && !activityOpen) {
            activityOpen = true;
            send({ speech_event_type: 'SPEECH_ACTIVITY_BEGIN', speech_event_offset: duration(frameStartMs) });
          }
        }
        audioMs += 20;
        if (words.length && !decoder.inWord && audioMs - lastWordEndMs >= finalSilenceMs) emitFinal();
      }
      pending = joined.slice(offset);
    };

    call.on('data', (message: Record<string, unknown>) => {
      if (!open.has(entry)) return;
      if (!configured) {
        const config = message.streaming_config as Record<string, unknown> | undefined;
        const recognizer = message.recognizer;
        if (message.audio !== undefined || !config) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'The first StreamingRecognizeRequest must contain a recognizer and a streaming_config, and no audio.' });
        if (typeof recognizer !== 'string' || !/^projects\/[^/]+\/locations\/[^/]+\/recognizers\/[^/]+$/.test(recognizer)) {
          return finish({ code: grpc.status.INVALID_ARGUMENT, details: `Invalid resource field value in the request: recognizer "${String(recognizer)}".` });
        }
        const recognition = (config.config ?? {}) as Record<string, unknown>;
        const explicit = recognition.explicit_decoding_config as { encoding?: string; sample_rate_hertz?: number; audio_channel_count?: number } | undefined;
        if (!explicit || explicit.encoding !== 'LINEAR16' || explicit.sample_rate_hertz !== SAMPLE_RATE || (explicit.audio_channel_count ?? 1) > 1) {
          return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'This fake hears explicit_decoding_config LINEAR16 16000 Hz mono only.' });
        }
        const languages = recognition.language_codes as string[] | undefined;
        if (!languages?.length) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'Recognizer is missing required field language_codes.' });
        const features = (config.streaming_features ?? {}) as { enable_voice_activity_events?: boolean; interim_results?: boolean };
        vadEvents = features.enable_voice_activity_events === true;
        interim = features.interim_results === true;
        record.config = JSON.parse(record.received[0] as string) as Record<string, unknown>;
        configured = true;
        return;
      }
      if (message.streaming_config !== undefined) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'Only the first StreamingRecognizeRequest may contain a streaming_config.' });
      const audio = message.audio;
      if (!(audio instanceof Uint8Array)) return;
      if (audio.byteLength > MAX_AUDIO_BYTES) return finish({ code: grpc.status.INVALID_ARGUMENT, details: `Audio chunk can be of a maximum of ${MAX_AUDIO_BYTES} bytes.` });
      armIdle();
      hear(audio);
    });
    onHalfClose(call, () => {
      record.halfClosed = true;
      if (!open.has(entry)) return;
      decoder.flush();
      emitFinal();
      finish();
    });
  };

  // ---- StreamingSynthesize ---------------------------------------------------------------------------------

  const synthesize = (call: grpc.ServerDuplexStream<Record<string, unknown>, object>): void => {
    const entry = admit(call, 'StreamingSynthesize');
    if (!entry) return;
    const { record } = entry;
    let format: { encoding: string; sampleRate: number } | undefined;
    const queue: Uint8Array[] = [];
    let headerSent = false;
    let halfClosed = false;
    let sending = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (status?: Status): void => {
      clearTimeout(timer);
      entry.finish(status);
    };
    call.on('cancelled', () => clearTimeout(timer));

    const encode = (pcm: Int16Array): Uint8Array => {
      if (!format) return new Uint8Array(0);
      if (format.encoding === 'PCM' || format.encoding === 'LINEAR16') return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
      const out = new Uint8Array(pcm.length);
      if (format.encoding === 'MULAW') mulawEncode(pcm, out);
      else alawEncode(pcm, out);
      return out;
    };

    const pump = (): void => {
      if (!open.has(entry) || !format) return;
      const next = queue.shift();
      if (!next) {
        sending = false;
        if (halfClosed) finish();
        return;
      }
      sending = true;
      call.write({ audio_content: Buffer.from(next) });
      timer = setTimeout(pump, chunkMs / realtimeFactor);
    };

    call.on('data', (message: Record<string, unknown>) => {
      if (!open.has(entry)) return;
      const config = message.streaming_config as { voice?: { language_code?: string; name?: string }; streaming_audio_config?: { audio_encoding?: string; sample_rate_hertz?: number } } | undefined;
      if (!format) {
        if (!config) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'The first StreamingSynthesizeRequest must contain a streaming_config.' });
        if (!config.voice?.language_code) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'Voice language_code is required.' });
        const encoding = config.streaming_audio_config?.audio_encoding ?? 'PCM';
        if (!['PCM', 'LINEAR16', 'MULAW', 'ALAW'].includes(encoding)) {
          return finish({ code: grpc.status.INVALID_ARGUMENT, details: `Streaming supports PCM, ALAW, MULAW and OGG_OPUS; this fake speaks PCM, LINEAR16, MULAW and ALAW (got ${encoding}).` });
        }
        format = { encoding, sampleRate: config.streaming_audio_config?.sample_rate_hertz || 24_000 };
        record.config = JSON.parse(record.received[0] as string) as Record<string, unknown>;
        return;
      }
      if (config) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'Only the first StreamingSynthesizeRequest may contain a streaming_config.' });
      const text = (message.input as { text?: string } | undefined)?.text;
      if (typeof text !== 'string') return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'StreamingSynthesizeRequest.input.text is required.' });
      record.texts.push(text);
      const words = splitWords(text);
      if (!words.length) return;
      const audio = encode(synthesizeWords(words, format.sampleRate).pcm);
      const bytesPerMs = (format.sampleRate / 1000) * (format.encoding === 'PCM' || format.encoding === 'LINEAR16' ? 2 : 1);
      const chunkBytes = Math.max(2, Math.round(chunkMs * bytesPerMs) & ~1);
      if (format.encoding === 'LINEAR16' && !headerSent) {
        headerSent = true;
        queue.push(wavHeader(0xffffffff - 36, format.sampleRate));
      }
      for (let at = 0; at < audio.byteLength; at += chunkBytes) queue.push(audio.subarray(at, at + chunkBytes));
      if (!sending) pump();
    });
    onHalfClose(call, () => {
      record.halfClosed = true;
      halfClosed = true;
      if (!open.has(entry)) return;
      if (!format) return finish({ code: grpc.status.INVALID_ARGUMENT, details: 'The stream ended before a streaming_config.' });
      if (!sending) finish();
    });
  };

  server.addService(rawCapable(methods.recognize, 'StreamingRecognize'), { StreamingRecognize: recognize });
  server.addService(rawCapable(methods.synthesize, 'StreamingSynthesize'), { StreamingSynthesize: synthesize });

  // ---- token endpoint --------------------------------------------------------------------------------------

  const readBody = (request: IncomingMessage): Promise<string> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });

  const tokenError = (response: ServerResponse, status: number, error: string, description: string, clientEmail?: string): void => {
    tokenRequests.push({ status, error, ...(clientEmail ? { clientEmail } : {}) });
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error, error_description: description }));
  };

  const http = createHttpServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      if (request.method !== 'POST' || request.url !== '/token') return tokenError(response, 404, 'not_found', 'POST /token');
      const forced = tokenFailures.shift();
      if (forced !== undefined) return tokenError(response, forced, forced >= 500 ? 'internal_failure' : 'invalid_request', 'forced by the test');
      if (!(request.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return tokenError(response, 400, 'invalid_request', 'form body expected');
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return tokenError(response, 400, 'unsupported_grant_type', 'Invalid grant_type.');
      const parts = (form.get('assertion') ?? '').split('.');
      if (parts.length !== 3) return tokenError(response, 400, 'invalid_grant', 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.');
      let header: { alg?: string };
      let claims: { iss?: string; aud?: string; scope?: string; iat?: number; exp?: number };
      try {
        header = JSON.parse(base64UrlDecode(parts[0]!).toString('utf8')) as typeof header;
        claims = JSON.parse(base64UrlDecode(parts[1]!).toString('utf8')) as typeof claims;
      } catch {
        return tokenError(response, 400, 'invalid_grant', 'Invalid JWT: not JSON.');
      }
      const key = claims.iss ? accounts.get(claims.iss) : undefined;
      if (header.alg !== 'RS256' || !key) return tokenError(response, 400, 'invalid_grant', 'Invalid grant: account not found', claims.iss);
      const signed = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), key, base64UrlDecode(parts[2]!));
      if (!signed) return tokenError(response, 400, 'invalid_grant', 'Invalid JWT Signature.', claims.iss);
      const nowS = Date.now() / 1000;
      if (claims.aud !== tokenUri) return tokenError(response, 400, 'invalid_grant', `Invalid JWT: aud must be ${tokenUri}.`, claims.iss);
      if (!claims.scope?.split(' ').includes(CLOUD_PLATFORM)) return tokenError(response, 400, 'invalid_scope', 'Invalid OAuth scope or ID token audience provided.', claims.iss);
      if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.iat > nowS + 60 || claims.exp <= nowS || claims.exp - claims.iat > 3600) {
        return tokenError(response, 400, 'invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.', claims.iss);
      }
      const accessToken = `ya29.fake-${randomUUID()}`;
      tokens.set(accessToken, { clientEmail: claims.iss!, expiresAt: Date.now() + tokenTtlS * 1000 });
      tokenRequests.push({ status: 200, clientEmail: claims.iss! });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: accessToken, expires_in: tokenTtlS, token_type: 'Bearer' }));
    })();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  tokenUri = `http://127.0.0.1:${(http.address() as AddressInfo).port}/token`;

  // ---- control ---------------------------------------------------------------------------------------------

  const control: GoogleFakeControl = {
    refuseNext(status, count = 1) {
      for (let i = 0; i < count; i++) refusals.push(status);
    },
    drop(close) {
      const entries = [...open];
      if (close) {
        for (const e of entries) e.finish({ code: close.code === 1011 ? grpc.status.INTERNAL : grpc.status.UNAVAILABLE, details: close.reason });
        return;
      }
      // Abrupt: the TCP connections under the open calls are destroyed (the client sees UNAVAILABLE).
      for (const e of entries) {
        e.record.closeCode = 1006;
        const transport = [...transportByPort.values()].find((t) => transports.indexOf(t.record) === e.record.transport);
        if (transport) {
          transport.droppedByUs = true;
          transport.socket.destroy();
        }
      }
    },
    dropAfterWords(words) {
      dropAfter = words;
    },
    sendRaw(data) {
      const raw = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
      const entries = [...open];
      // No call open (a pre-warmed connection): the next call gets it first.
      if (!entries.length) pendingRaw.push(raw);
      for (const e of entries) e.call.write(raw);
    },
    failNextToken(status, count = 1) {
      for (let i = 0; i < count; i++) tokenFailures.push(status);
    },
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    apiKey,
    connections: options.connections === 'transports' ? transports : calls,
    calls,
    transports,
    tokenUri,
    tokenRequests,
    registerServiceAccount(clientEmail, publicKeyPem) {
      accounts.set(clientEmail, createPublicKey(publicKeyPem));
    },
    expireTokens() {
      for (const token of tokens.values()) token.expiresAt = 0;
    },
    control,
    async close() {
      for (const e of [...open]) e.finish({ code: grpc.status.UNAVAILABLE, details: 'The fake is shutting down.' });
      server.forceShutdown();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => netServer.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
