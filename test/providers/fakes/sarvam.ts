import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { alawEncode, mulawEncode } from '../../../shared/audio/g711';
import { encodeWav } from '../../../shared/audio/wav';
import type { FakeProviderServer } from '../conformance/fake-server';
import { createToneDecoder, normaliseWord, synthesizeWords } from '../../fakes/tones';
import { startFakeWsHost, type Refusal } from './fake-ws-host';

/**
 * A local Sarvam AI, written from reference/providers.md §1.7 (STT, `/speech-to-text/ws`), §2.6 (TTS,
 * `/text-to-speech/ws`) and the endpoints' published AsyncAPI, never from the adapter. One server answers both.
 *
 * Handshake: the key as `Api-Subscription-Key` header or `api-subscription-key.<key>` subprotocol. A wrong or
 * missing key is, by default, answered the way the reference says Sarvam does (§0): the upgrade is accepted,
 * an error frame (code 403) follows and the socket closes 1008; `authFailure: 'handshake'` refuses the
 * upgrade with HTTP 403 instead.
 *
 * STT: the query must use `language-code` (hyphen; `language_code` is refused so the mistake shows),
 * a known model (`saaras:v3` default, `saarika:v2.5`, `saaras:v4`), `mode` only for saaras, `sample_rate`
 * 16000/8000. Audio arrives as `{"audio":{"data":<base64>,"sample_rate","encoding"}}` (encoding `audio/wav`
 * or a raw codec name; a RIFF header in the data is skipped) and is heard through the tone alphabet. No
 * interims: with `vad_signals=true`, `events` START_SPEECH at the first tone of an utterance; after 300 ms of
 * audio silence END_SPEECH, then one `data` with the utterance's words. `{"type":"flush"}` (needs
 * `flush_signal=true`) turns what was heard into a `data` at once (nothing when nothing was heard). Binary
 * frames and unknown messages get an error frame. No audio message for `idleCloseMs` (30 s) → close 1000.
 *
 * TTS: `model` from the query (bulbul:v2 default, bulbul:v3; a config `model` is ignored); the first message
 * must be `config` (target_language_code, a speaker of that model, speech_sample_rate 8000/16000/22050/24000,
 * output_audio_codec linear16/mulaw/alaw — the fake cannot make the compressed ones, and mp3 is the server
 * default — pace in the model's range); a later config flushes the buffer and replaces it. `text` (≤ 2500
 * chars) buffers until `min_buffer_size` characters (50) are waiting, then the complete words are spoken;
 * `flush` speaks the rest and then, only when the URL asked `send_completion_event=true`, sends
 * `{"type":"event","data":{"event_type":"final"}}` (after every flush, even an empty one). Audio is tones in
 * the configured codec and rate, 100 ms base64 chunks paced `chunkDelayMs` apart; with `wavHeader` the first
 * chunk of each generation is a WAV file header plus samples. `ping` only counts as activity (no reply).
 * No message for `idleCloseMs` (60 s) → close 1000.
 */

export interface SarvamFakeOptions {
  /** STT: close after this long without audio (default 30 s). TTS: without any client message (default 60 s). */
  readonly idleCloseMs?: number;
  /** TTS: delay between two outgoing audio messages (default 5 ms: ~20× real time). */
  readonly chunkDelayMs?: number;
  /** How a bad key is answered: error frame + close 1008 after an accepted upgrade (default), or HTTP 403. */
  readonly authFailure?: 'frame' | 'handshake';
  /** TTS: each generation's first chunk starts with a RIFF/WAVE header (as linear16 does on some endpoints). */
  readonly wavHeader?: boolean;
}

export interface SarvamFakeServer extends FakeProviderServer {
  readonly control: FakeProviderServer['control'] & {
    dropAfterWords(words: number): void;
    errorAfterAccept(kind: 'auth' | 'bad-request' | 'rate-limit' | 'internal'): void;
    sendRaw(data: string | Uint8Array): void;
  };
}

const API_KEY = 'sarvam-test-key';
const STT_PATH = '/speech-to-text/ws';
const TTS_PATH = '/text-to-speech/ws';
const FINAL_SILENCE_MS = 300;
const CHUNK_MS = 100;
const MAX_TEXT_CHARS = 2500;
const ERROR_STATUS = { auth: 403, 'bad-request': 422, 'rate-limit': 429, internal: 500 } as const;
const ERROR_MESSAGE = {
  auth: 'Invalid API subscription key',
  'bad-request': 'Unprocessable request from the test',
  'rate-limit': 'Rate limit exceeded',
  internal: 'Internal server error',
} as const;

export const SARVAM_STT_LANGUAGES = [
  'unknown', 'en-IN', 'hi-IN', 'bn-IN', 'gu-IN', 'kn-IN', 'ml-IN', 'mr-IN', 'od-IN', 'pa-IN', 'ta-IN', 'te-IN',
  'as-IN', 'ur-IN', 'ne-IN', 'kok-IN', 'ks-IN', 'sd-IN', 'sa-IN', 'sat-IN', 'mni-IN', 'brx-IN', 'mai-IN', 'doi-IN',
];
const STT_MODELS = ['saaras:v3', 'saarika:v2.5', 'saaras:v4'];
const STT_MODES = ['transcribe', 'translate', 'verbatim', 'translit', 'codemix'];
const INPUT_CODECS = ['wav', 'pcm_s16le', 'pcm_l16', 'pcm_raw'];
const AUDIO_ENCODINGS = ['audio/wav', 'audio/x-wav', 'wav', 'pcm_s16le', 'pcm_l16', 'pcm_raw'];

export const SARVAM_TTS_LANGUAGES = ['bn-IN', 'en-IN', 'gu-IN', 'hi-IN', 'kn-IN', 'ml-IN', 'mr-IN', 'od-IN', 'pa-IN', 'ta-IN', 'te-IN'] as const;
export const SARVAM_SPEAKERS: Readonly<Record<string, readonly string[]>> = {
  'bulbul:v2': ['anushka', 'abhilash', 'manisha', 'vidya', 'arya', 'karun', 'hitesh'],
  'bulbul:v3': [
    'aditya', 'ritu', 'priya', 'neha', 'rahul', 'pooja', 'rohan', 'simran', 'kavya', 'amit', 'dev', 'ishita', 'shreya',
    'ratan', 'varun', 'manan', 'sumit', 'roopa', 'kabir', 'aayan', 'shubh', 'ashutosh', 'advait', 'amelia', 'sophia',
  ],
};

function keyOf(request: IncomingMessage): string | undefined {
  const header = request.headers['api-subscription-key'];
  if (typeof header === 'string') return header;
  const protocols = request.headers['sec-websocket-protocol'];
  if (typeof protocols === 'string') {
    for (const p of protocols.split(',').map((s) => s.trim())) if (p.startsWith('api-subscription-key.')) return p.slice('api-subscription-key.'.length);
  }
  return undefined;
}

function refusal(status: number, message: string, code: string): Refusal {
  return { status, body: JSON.stringify({ error: { message, code, request_id: randomUUID() } }) };
}

function checkSttQuery(url: URL): Refusal | undefined {
  const q = url.searchParams;
  if (q.has('language_code') && !q.has('language-code')) return refusal(400, 'unknown query parameter language_code; the parameter is language-code', 'invalid_request_error');
  const language = q.get('language-code') ?? 'unknown';
  if (!SARVAM_STT_LANGUAGES.includes(language)) return refusal(400, `language-code ${language} is not supported`, 'invalid_request_error');
  const model = q.get('model') ?? 'saaras:v3';
  if (!STT_MODELS.includes(model)) return refusal(400, `model ${model} is not served on ${STT_PATH}`, 'invalid_request_error');
  const mode = q.get('mode');
  if (mode !== null && (!model.startsWith('saaras:') || !STT_MODES.includes(mode))) return refusal(400, `mode ${mode} is not valid for ${model}`, 'invalid_request_error');
  const rate = q.get('sample_rate') ?? '16000';
  if (rate !== '16000' && rate !== '8000') return refusal(400, 'sample_rate must be 16000 or 8000', 'invalid_request_error');
  const codec = q.get('input_audio_codec');
  if (codec !== null && !INPUT_CODECS.includes(codec)) return refusal(400, `input_audio_codec ${codec} is not supported`, 'invalid_request_error');
  return undefined;
}

function checkTtsQuery(url: URL): Refusal | undefined {
  const model = url.searchParams.get('model') ?? 'bulbul:v2';
  if (!SARVAM_SPEAKERS[model]) return refusal(400, `model ${model} is not supported`, 'invalid_request_error');
  const completion = url.searchParams.get('send_completion_event');
  if (completion !== null && completion !== 'true' && completion !== 'false') return refusal(400, 'send_completion_event must be true or false', 'invalid_request_error');
  return undefined;
}

export async function startSarvamFake(options: SarvamFakeOptions = {}): Promise<SarvamFakeServer> {
  let dropAfter: number | undefined;
  let errorNext: keyof typeof ERROR_STATUS | undefined;
  const authFailure = options.authFailure ?? 'frame';

  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ error: { message: `refused by the test (${status})`, code: 'test_refusal' } }),
    checkUpgrade(request, url) {
      if (url.pathname !== STT_PATH && url.pathname !== TTS_PATH) return refusal(404, `no endpoint ${url.pathname}`, 'not_found');
      if (authFailure === 'handshake' && keyOf(request) !== API_KEY) return refusal(403, 'Invalid API subscription key', 'invalid_api_key_error');
      return url.pathname === STT_PATH ? checkSttQuery(url) : checkTtsQuery(url);
    },
    onConnection(ws, record, url) {
      const stt = url.pathname === STT_PATH;
      const badKey = keyOf({ headers: record.headers } as IncomingMessage) !== API_KEY;
      if (errorNext || badKey) {
        const kind = errorNext ?? 'auth';
        errorNext = undefined;
        const status = ERROR_STATUS[kind];
        // STT error data per its spec ({error, code: string}); TTS per its spec ({message, code: integer}).
        const data = stt ? { error: ERROR_MESSAGE[kind], code: String(status) } : { message: ERROR_MESSAGE[kind], code: status, request_id: randomUUID() };
        ws.send(JSON.stringify({ type: 'error', data }));
        ws.close(status >= 500 ? 1011 : 1008, ERROR_MESSAGE[kind]);
        return;
      }
      if (stt) {
        sttSession(ws, url, options.idleCloseMs ?? 30_000, () => {
          if (dropAfter === undefined) return false;
          dropAfter--;
          if (dropAfter > 0) return false;
          dropAfter = undefined;
          return true;
        });
      } else {
        ttsSession(ws, url, { idleCloseMs: options.idleCloseMs ?? 60_000, chunkDelayMs: options.chunkDelayMs ?? 5, wavHeader: options.wavHeader ?? false });
      }
    },
  });

  return {
    endpoint: host.endpoint,
    apiKey: API_KEY,
    connections: host.connections,
    control: {
      refuseNext: host.refuseNext,
      drop: host.drop,
      dropAfterWords(words) {
        dropAfter = words;
      },
      errorAfterAccept(kind) {
        errorNext = kind;
      },
      sendRaw(data) {
        for (const ws of host.openSockets()) ws.send(data);
      },
    },
    close: host.close,
  };
}

function textOf(data: unknown, isBinary: boolean): string | undefined {
  if (isBinary) return undefined;
  return (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8');
}

/** The samples of a WAV file (data after the `data` chunk header), or the bytes as they are. */
function withoutWavHeader(bytes: Buffer): Buffer {
  if (bytes.length < 12 || bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WAVE') return bytes;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const size = bytes.readUInt32LE(at + 4);
    if (bytes.toString('latin1', at, at + 4) === 'data') return bytes.subarray(at + 8);
    at += 8 + size + (size & 1);
  }
  return Buffer.alloc(0);
}

// ---- STT --------------------------------------------------------------------------------------------------------

const audioMessage = z.object({
  audio: z.object({
    data: z.string(),
    sample_rate: z.union([z.string(), z.number()]).optional(),
    encoding: z.string().optional(),
  }),
});

function sttSession(ws: WebSocket, url: URL, idleCloseMs: number, shouldDrop: () => boolean): void {
  const q = url.searchParams;
  const rate = Number(q.get('sample_rate') ?? 16000);
  const languageCode = q.get('language-code') ?? 'unknown';
  const vadSignals = q.get('vad_signals') === 'true';
  const flushSignal = q.get('flush_signal') === 'true';
  const frameSamples = rate / 50;
  const frameBytes = frameSamples * 2;
  const finalSilenceFrames = FINAL_SILENCE_MS / 20;
  let carry: Buffer = Buffer.alloc(0);
  let frameIndex = 0;
  let silentFrames = 0;
  let inSpeech = false;
  let utteranceStart = 0;
  let words: string[] = [];
  let ended = false;
  let idle: NodeJS.Timeout | undefined;

  const send = (message: object) => {
    if (!ended && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const error = (message: string, code = '400') => send({ type: 'error', data: { error: message, code } });

  const decoder = createToneDecoder(rate, (word) => {
    words.push(word);
    silentFrames = 0;
    if (shouldDrop()) {
      ended = true;
      ws.terminate(); // Mid-utterance, no close frame: the client sees 1006.
    }
  });

  function transcript(): void {
    if (!words.length) return;
    send({
      type: 'data',
      data: {
        request_id: randomUUID(),
        transcript: words.join(' '),
        timestamps: null,
        diarized_transcript: null,
        language_code: languageCode === 'unknown' ? 'en-IN' : languageCode,
        language_probability: languageCode === 'unknown' ? 0.9 : null,
        metrics: { audio_duration: ((frameIndex - utteranceStart) * 20) / 1000, processing_latency: 0.05 },
      },
    });
    words = [];
  }

  function endOfSpeech(): void {
    if (vadSignals && inSpeech) send({ type: 'events', data: { event_type: 'vad', signal_type: 'END_SPEECH', occured_at: Date.now() / 1000 } });
    inSpeech = false;
    transcript();
  }

  function pushFrame(frame: Int16Array): void {
    decoder.push(frame);
    if (ended) return;
    if (decoder.inWord && !inSpeech) {
      inSpeech = true;
      utteranceStart = frameIndex;
      if (vadSignals) send({ type: 'events', data: { event_type: 'vad', signal_type: 'START_SPEECH', occured_at: Date.now() / 1000 } });
    }
    silentFrames = decoder.inWord ? 0 : silentFrames + 1;
    frameIndex++;
    if (inSpeech && silentFrames >= finalSilenceFrames) endOfSpeech();
  }

  function audio(bytes: Buffer): void {
    const all = carry.length ? Buffer.concat([carry, bytes]) : bytes;
    let at = 0;
    for (; at + frameBytes <= all.length && !ended; at += frameBytes) {
      const copy = new Uint8Array(all.subarray(at, at + frameBytes));
      pushFrame(new Int16Array(copy.buffer, 0, frameSamples));
    }
    carry = Buffer.from(all.subarray(at));
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (ended) return;
      ended = true;
      ws.close(1000, 'idle timeout: no audio received');
    }, idleCloseMs);
  }

  function onMessage(json: unknown): void {
    const type = json && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
    if (type === 'flush') {
      if (!flushSignal) return error('flush needs flush_signal=true on the connection');
      decoder.flush();
      transcript();
      return;
    }
    const parsed = audioMessage.safeParse(json);
    if (!parsed.success) return error('expected an audio message {"audio":{"data","sample_rate","encoding"}} or {"type":"flush"}');
    const { data, sample_rate: messageRate, encoding } = parsed.data.audio;
    if (encoding !== undefined && !AUDIO_ENCODINGS.includes(encoding)) return error(`encoding ${encoding} is not supported`);
    if (messageRate !== undefined && Number(messageRate) !== rate) return error(`sample_rate ${messageRate} does not match the connection's ${rate} (the fake hears one rate)`);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 === 1) return error('audio data is not base64');
    armIdle();
    audio(withoutWavHeader(Buffer.from(data, 'base64')));
  }

  armIdle();
  ws.on('message', (raw, isBinary) => {
    if (ended) return;
    const text = textOf(raw, isBinary);
    if (text === undefined) return error('binary frames are not accepted: send audio as base64 in a JSON message');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return error('the message is not JSON');
    }
    onMessage(json);
  });
  ws.on('close', () => {
    ended = true;
    clearTimeout(idle);
  });
}

// ---- TTS --------------------------------------------------------------------------------------------------------

const RATES = ['8000', '16000', '22050', '24000'];

const configData = z.object({
  target_language_code: z.enum(SARVAM_TTS_LANGUAGES),
  speaker: z.string(),
  model: z.string().optional(),
  pitch: z.number().min(-0.75).max(0.75).optional(),
  pace: z.number().min(0.3).max(3).optional(),
  loudness: z.number().min(0.3).max(3).optional(),
  temperature: z.number().min(0.01).max(1).optional(),
  speech_sample_rate: z.union([z.string(), z.number()]).optional(),
  enable_preprocessing: z.boolean().optional(),
  output_audio_codec: z.enum(['linear16', 'mulaw', 'alaw', 'opus', 'flac', 'aac', 'wav', 'mp3']).optional(),
  output_audio_bitrate: z.enum(['32k', '64k', '96k', '128k', '192k']).optional(),
  dict_id: z.string().optional(),
  min_buffer_size: z.number().int().positive().optional(),
  max_chunk_length: z.number().int().positive().optional(),
});

interface TtsConfig {
  readonly codec: 'linear16' | 'mulaw' | 'alaw';
  readonly rate: number;
  readonly minBufferSize: number;
}

function encodeSamples(pcm: Int16Array, codec: TtsConfig['codec']): Uint8Array {
  if (codec === 'linear16') return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
  const out = new Uint8Array(pcm.length);
  (codec === 'mulaw' ? mulawEncode : alawEncode)(pcm, out);
  return out;
}

function ttsSession(ws: WebSocket, url: URL, o: { idleCloseMs: number; chunkDelayMs: number; wavHeader: boolean }): void {
  const model = url.searchParams.get('model') ?? 'bulbul:v2';
  const completionEvent = url.searchParams.get('send_completion_event') === 'true';
  let config: TtsConfig | undefined;
  let buffer = '';
  const queue: string[] = [];
  let pump: NodeJS.Timeout | undefined;
  let idle: NodeJS.Timeout | undefined;
  let closed = false;

  const sendNow = (message: object) => {
    if (!closed && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const error = (message: string, code = 400) => sendNow({ type: 'error', data: { message, code, request_id: randomUUID() } });

  function enqueue(message: object): void {
    queue.push(JSON.stringify(message));
    if (!pump) schedule();
  }

  function schedule(): void {
    pump = setTimeout(() => {
      pump = undefined;
      const next = queue.shift();
      if (next === undefined || closed) return;
      if (ws.readyState === ws.OPEN) ws.send(next);
      if (queue.length) schedule();
    }, o.chunkDelayMs);
  }

  /** Speak `text` in the current config: 100 ms chunks (the first one a WAV file with `wavHeader`). */
  function generate(text: string): void {
    if (!config) return;
    const tokens = text.split(/\s+/).filter((t) => normaliseWord(t));
    if (!tokens.length) return;
    const { codec, rate } = config;
    const { pcm } = synthesizeWords(tokens.map(normaliseWord), rate);
    const samplesPerChunk = (rate * CHUNK_MS) / 1000;
    const requestId = randomUUID();
    for (let at = 0; at < pcm.length; at += samplesPerChunk) {
      let data = encodeSamples(pcm.subarray(at, Math.min(pcm.length, at + samplesPerChunk)), codec);
      if (o.wavHeader && at === 0) data = encodeWav({ encoding: codec === 'linear16' ? 'pcm16' : codec, sampleRateHz: rate }, data);
      const contentType = codec === 'linear16' ? (o.wavHeader ? 'audio/wav' : 'audio/pcm') : `audio/x-${codec}`;
      enqueue({ type: 'audio', data: { content_type: contentType, audio: Buffer.from(data).toString('base64'), request_id: requestId } });
    }
  }

  /** Generate the complete words of the buffer (up to its last whitespace), keep the rest. */
  function generateCompleteWords(): void {
    const cut = buffer.search(/\s\S*$/);
    if (cut < 0) return;
    generate(buffer.slice(0, cut + 1));
    buffer = buffer.slice(cut + 1);
  }

  function configure(data: unknown): void {
    const parsed = configData.safeParse(data);
    if (!parsed.success) return error(`invalid config: ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`, 422);
    const c = parsed.data;
    if (!SARVAM_SPEAKERS[model]!.includes(c.speaker)) return error(`speaker ${c.speaker} is not available for ${model}`, 422);
    const v3 = model === 'bulbul:v3';
    if (v3 && c.pace !== undefined && (c.pace < 0.5 || c.pace > 2)) return error('pace must be between 0.5 and 2 for bulbul:v3', 422);
    const rate = String(c.speech_sample_rate ?? (v3 ? 24000 : 22050));
    if (!RATES.includes(rate)) return error(`speech_sample_rate ${rate} is not supported`, 422);
    const codec = c.output_audio_codec ?? 'mp3';
    if (codec !== 'linear16' && codec !== 'mulaw' && codec !== 'alaw') return error(`the fake cannot produce ${codec} (linear16, mulaw, alaw only)`, 422);
    // A config update flushes what is buffered under the old config first (no completion event).
    if (config && buffer) {
      generate(buffer);
      buffer = '';
    }
    config = { codec, rate: Number(rate), minBufferSize: c.min_buffer_size ?? 50 };
  }

  function onMessage(json: unknown): void {
    const type = json && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
    const data = json && typeof json === 'object' ? (json as { data?: unknown }).data : undefined;
    switch (type) {
      case 'config':
        return configure(data);
      case 'ping':
        return;
      case 'text': {
        if (!config) return error('send a config message first');
        const text = data && typeof data === 'object' ? (data as { text?: unknown }).text : undefined;
        if (typeof text !== 'string') return error('text message needs data.text');
        if (text.length > MAX_TEXT_CHARS) return error(`text longer than ${MAX_TEXT_CHARS} characters`, 422);
        buffer += text;
        if (buffer.length >= config.minBufferSize) generateCompleteWords();
        return;
      }
      case 'flush':
        if (!config) return error('send a config message first');
        generate(buffer);
        buffer = '';
        if (completionEvent) enqueue({ type: 'event', data: { event_type: 'final', message: 'Synthesis complete', timestamp: new Date().toISOString() } });
        return;
      default:
        return error(`unknown message type ${JSON.stringify(type ?? null)}`);
    }
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (!closed) ws.close(1000, 'idle timeout: no message for one minute');
    }, o.idleCloseMs);
  }

  armIdle();
  ws.on('message', (raw, isBinary) => {
    armIdle();
    const text = textOf(raw, isBinary);
    if (text === undefined) return error('binary frames are not part of this protocol');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return error('the message is not JSON');
    }
    onMessage(json);
  });
  ws.on('close', () => {
    closed = true;
    clearTimeout(idle);
    clearTimeout(pump);
    queue.length = 0;
  });
}
