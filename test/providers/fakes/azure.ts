import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { alawEncode, mulawEncode } from '../../../shared/audio/g711';
import type { FakeProviderServer } from '../conformance/fake-server';
import { createToneDecoder, normaliseWord, synthesizeWords } from '../../fakes/tones';
import { startFakeWsHost, type Refusal } from './fake-ws-host';

/**
 * A local Azure Speech, written from reference/providers.md §1.5 (STT) and §2.5 (TTS) — the SDKs' WebSocket
 * protocol, reverse-engineered [3P] — never from the adapter. One server answers both services.
 *
 * Framing (both directions): text = `Name: value` header lines + CRLF CRLF + body; binary = 2-byte big-endian
 * header length + ASCII headers + payload. Every client message needs `Path` and a 32-hex `X-RequestId`
 * (else close 1007). The server writes headers as `Name:value` (no space), as the service does.
 *
 * Handshake: `Ocp-Apim-Subscription-Key: <key>` or `Authorization: Bearer <token>` (or the same names in the
 * query, the browser fallback), else 401 with the API gateway's JSON message.
 *
 * STT (`/speech/recognition/{interactive|conversation|dictation}/cognitiveservices/v1?language=…&format=…`):
 * `speech.config` must come first; each turn (`X-RequestId`) starts with an `audio` message whose body begins
 * with a RIFF/WAVE header of 16 kHz 16-bit mono PCM (alone, or followed by PCM); then raw PCM; an empty
 * `audio` body ends the turn's audio. A new request id while the current turn still takes audio → 1007.
 * Words are heard from the PCM through the tone alphabet, in audio time: `turn.start` at a turn's first
 * audio, `speech.startDetected` at a phrase's first word, `speech.hypothesis` after each word, `speech.phrase`
 * (simple, or detailed with NBest + Words when `wordLevelTimestamps=true`) after 300 ms of silence, offsets in
 * 100-ns ticks from the turn's start. End of audio → last phrase, `speech.endDetected`, `turn.end`. Interactive
 * mode ends the turn after its first phrase (later audio of that turn is ignored). No audio for `idleCloseMs`
 * → close 1000 "…idle duration…".
 *
 * TTS (`/cognitiveservices/websocket/v1`): `speech.config` first; per request `synthesis.context` (JSON with
 * `synthesis.audio.outputFormat`, one of the raw formats of §2.5) then `ssml`. Requests are synthesised one
 * after another in arrival order: `turn.start`, `response` (stream id), one `audio.metadata` WordBoundary per
 * word (when `wordBoundaryEnabled`), binary `Path:audio` chunks of 100 ms paced `chunkDelayMs` apart, an empty
 * `audio` message, `turn.end`. Bad SSML or format → close 1007 with the reason. No cancel message exists.
 */

export interface AzureFakeOptions {
  /** STT: close after this long without audio (default 30 s). TTS: close an idle socket (default 5 min). */
  readonly idleCloseMs?: number;
  /** TTS: delay between two outgoing messages of a request (default 5 ms: ~20× real time). */
  readonly chunkDelayMs?: number;
}

export type AzureRecognitionStatus = 'Success' | 'NoMatch' | 'InitialSilenceTimeout' | 'BabbleTimeout' | 'Error' | 'EndOfDictation' | 'TooManyRequests' | 'BadRequest' | 'Forbidden';

export interface AzureFakeServer extends FakeProviderServer {
  /** An access token (a JWT) the fake accepts as `Authorization: Bearer`. */
  readonly token: string;
  readonly control: FakeProviderServer['control'] & {
    dropAfterWords(words: number): void;
    errorAfterAccept(kind: 'auth' | 'bad-request' | 'rate-limit' | 'internal'): void;
    sendRaw(data: string | Uint8Array): void;
    /** The next `speech.phrase` carries this RecognitionStatus instead of Success (its words are dropped). */
    nextPhraseStatus(status: AzureRecognitionStatus): void;
  };
}

const API_KEY = 'azure-test-key-0123456789abcdef';
const TOKEN = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"region":"westeurope","sub":"fake"}').toString('base64url')}.c2lnbmF0dXJl`;
const FINAL_SILENCE_MS = 300;
const CHUNK_MS = 100;
const TICKS_PER_MS = 10_000;
const STT_PATH = /^\/speech\/recognition\/(interactive|conversation|dictation)\/cognitiveservices\/v1$/;
const TTS_PATH = '/cognitiveservices/websocket/v1';
const REQUEST_ID = /^[0-9a-fA-F]{32}$/;

const TTS_FORMATS: Readonly<Record<string, { encoding: 'pcm16' | 'mulaw' | 'alaw'; rate: number }>> = {
  'raw-8khz-8bit-mono-mulaw': { encoding: 'mulaw', rate: 8000 },
  'raw-8khz-8bit-mono-alaw': { encoding: 'alaw', rate: 8000 },
  'raw-16khz-16bit-mono-pcm': { encoding: 'pcm16', rate: 16000 },
  'raw-22050hz-16bit-mono-pcm': { encoding: 'pcm16', rate: 22050 },
  'raw-24khz-16bit-mono-pcm': { encoding: 'pcm16', rate: 24000 },
  'raw-48khz-16bit-mono-pcm': { encoding: 'pcm16', rate: 48000 },
};

// ---- framing (the fake's own, from the reference) ----------------------------------------------------------------

export interface FakeAzureFrame {
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array;
}

function parseHeaderBlock(block: string): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  for (const line of block.split('\r\n')) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** A client (or server) frame → headers (lower-cased names) and body, or undefined when it is not framed right. */
export function parseAzureFrame(data: string | Uint8Array): FakeAzureFrame | undefined {
  if (typeof data === 'string') {
    const at = data.indexOf('\r\n\r\n');
    if (at < 0) return undefined;
    const headers = parseHeaderBlock(data.slice(0, at));
    return headers ? { headers, body: data.slice(at + 4) } : undefined;
  }
  if (data.length < 2) return undefined;
  const length = (data[0]! << 8) | data[1]!;
  if (2 + length > data.length) return undefined;
  const headers = parseHeaderBlock(Buffer.from(data.subarray(2, 2 + length)).toString('latin1'));
  return headers ? { headers, body: data.subarray(2 + length) } : undefined;
}

function serverHeaders(path: string, requestId: string, contentType?: string, extra: Record<string, string> = {}): string {
  const lines = [`X-RequestId:${requestId}`, ...(contentType ? [`Content-Type:${contentType}`] : []), ...Object.entries(extra).map(([k, v]) => `${k}:${v}`), `Path:${path}`];
  return lines.map((l) => `${l}\r\n`).join('');
}

function textFrame(path: string, requestId: string, body: object): string {
  return `${serverHeaders(path, requestId, 'application/json; charset=utf-8')}\r\n${JSON.stringify(body)}`;
}

function binaryFrame(path: string, requestId: string, payload: Uint8Array, extra: Record<string, string>): Uint8Array {
  const headers = Buffer.from(serverHeaders(path, requestId, undefined, extra), 'latin1');
  const out = new Uint8Array(2 + headers.length + payload.length);
  out[0] = headers.length >> 8;
  out[1] = headers.length & 0xff;
  out.set(headers, 2);
  out.set(payload, 2 + headers.length);
  return out;
}

/** The PCM after a RIFF/WAVE header of 16 kHz 16-bit mono PCM, or a reason it is not one. */
export function pcmAfterWavHeader(body: Uint8Array): Uint8Array | string {
  const ascii = (at: number) => Buffer.from(body.subarray(at, at + 4)).toString('latin1');
  if (body.length < 12 || ascii(0) !== 'RIFF' || ascii(8) !== 'WAVE') return 'the first audio of a turn must start with a RIFF/WAVE header';
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 12;
  let fmtOk = false;
  while (at + 8 <= body.length) {
    const id = ascii(at);
    const size = view.getUint32(at + 4, true);
    if (id === 'data') return fmtOk ? body.subarray(at + 8) : 'the WAV header has no fmt chunk before data';
    if (id === 'fmt ') {
      if (at + 8 + 16 > body.length) return 'the WAV fmt chunk is truncated';
      const format = view.getUint16(at + 8, true);
      const channels = view.getUint16(at + 10, true);
      const rate = view.getUint32(at + 12, true);
      const bits = view.getUint16(at + 22, true);
      if (format !== 1 || channels !== 1 || rate !== 16000 || bits !== 16) return `unsupported audio format ${format}/${channels}ch/${rate}Hz/${bits}bit: 16 kHz 16-bit mono PCM only`;
      fmtOk = true;
    }
    at += 8 + size + (size & 1);
  }
  return 'the WAV header has no data chunk';
}

// ---- the server --------------------------------------------------------------------------------------------------

function keyOf(request: IncomingMessage, url: URL): { key?: string; bearer?: string } {
  const header = request.headers['ocp-apim-subscription-key'];
  const auth = request.headers.authorization ?? url.searchParams.get('Authorization') ?? undefined;
  const bearer = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7) : undefined;
  const key = typeof header === 'string' ? header : (url.searchParams.get('Ocp-Apim-Subscription-Key') ?? undefined);
  return { ...(key !== undefined ? { key } : {}), ...(bearer !== undefined ? { bearer } : {}) };
}

const ACCESS_DENIED = JSON.stringify({
  error: {
    code: '401',
    message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
  },
});

export async function startAzureFake(options: AzureFakeOptions = {}): Promise<AzureFakeServer> {
  let dropAfter: number | undefined;
  let errorNext: 'auth' | 'bad-request' | 'rate-limit' | 'internal' | undefined;
  let phraseStatus: AzureRecognitionStatus | undefined;
  const chunkDelayMs = options.chunkDelayMs ?? 5;

  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ error: { code: String(status), message: `refused by the test (${status})` } }),
    checkUpgrade(request, url): Refusal | undefined {
      const stt = STT_PATH.test(url.pathname);
      if (!stt && url.pathname !== TTS_PATH) return { status: 404, body: JSON.stringify({ error: { code: '404', message: `Resource not found: ${url.pathname}` } }) };
      const { key, bearer } = keyOf(request, url);
      if (key !== API_KEY && bearer !== TOKEN) return { status: 401, body: ACCESS_DENIED };
      if (stt) {
        if (!url.searchParams.get('language')) return { status: 400, body: 'language is required' };
        const format = url.searchParams.get('format');
        if (format !== null && format !== 'simple' && format !== 'detailed') return { status: 400, body: `invalid format ${format}` };
        const profanity = url.searchParams.get('profanity');
        if (profanity !== null && !['masked', 'removed', 'raw'].includes(profanity)) return { status: 400, body: `invalid profanity ${profanity}` };
      }
      return undefined;
    },
    onConnection(ws, _record, url) {
      if (errorNext) {
        const kind = errorNext;
        errorNext = undefined;
        const close = { auth: [1008, 'Authentication failed: invalid subscription key'], 'bad-request': [1007, 'Invalid request'], 'rate-limit': [1013, 'ResourceExhausted'], internal: [1011, 'Internal server error'] } as const;
        ws.close(close[kind][0], close[kind][1]);
        return;
      }
      if (STT_PATH.test(url.pathname)) {
        sttSession(ws, url, options.idleCloseMs ?? 30_000, {
          shouldDrop() {
            if (dropAfter === undefined) return false;
            dropAfter--;
            if (dropAfter > 0) return false;
            dropAfter = undefined;
            return true;
          },
          phraseStatus() {
            const status = phraseStatus ?? 'Success';
            phraseStatus = undefined;
            return status;
          },
        });
      } else {
        ttsSession(ws, options.idleCloseMs ?? 300_000, chunkDelayMs);
      }
    },
  });

  return {
    endpoint: host.endpoint,
    apiKey: API_KEY,
    token: TOKEN,
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
      nextPhraseStatus(status) {
        phraseStatus = status;
      },
    },
    close: host.close,
  };
}

// ---- STT --------------------------------------------------------------------------------------------------------

interface SttHooks {
  shouldDrop(): boolean;
  phraseStatus(): AzureRecognitionStatus;
}

interface SttTurn {
  readonly id: string;
  /** No more audio is taken: the client ended it (empty audio) or the service did (interactive mode). */
  ended: boolean;
  frameIndex: number;
  silentFrames: number;
  runStart: number;
  heardInPush: boolean;
  pending: { word: string; startFrame: number; endFrame: number }[];
  carry: Uint8Array;
  readonly decoder: ReturnType<typeof createToneDecoder>;
}

function sttSession(ws: WebSocket, url: URL, idleCloseMs: number, hooks: SttHooks): void {
  const mode = STT_PATH.exec(url.pathname)![1]!;
  const detailed = url.searchParams.get('format') === 'detailed';
  const wordTimestamps = url.searchParams.get('wordLevelTimestamps') === 'true';
  const serviceTag = randomUUID().replace(/-/g, '');
  let configured = false;
  let closed = false;
  let turn: SttTurn | undefined;
  let idle: NodeJS.Timeout | undefined;

  const send = (path: string, requestId: string, body: object) => {
    if (!closed && ws.readyState === ws.OPEN) ws.send(textFrame(path, requestId, body));
  };
  const reject = (reason: string) => {
    if (closed) return;
    closed = true;
    clearTimeout(idle);
    ws.close(1007, reason.slice(0, 120));
  };
  const ticks = (frames: number) => frames * 20 * TICKS_PER_MS;

  function phrase(t: SttTurn): void {
    if (!t.pending.length) return;
    const words = t.pending;
    t.pending = [];
    const status = hooks.phraseStatus();
    const offset = ticks(words[0]!.startFrame);
    const duration = ticks(words.at(-1)!.endFrame - words[0]!.startFrame);
    if (status !== 'Success') {
      send('speech.phrase', t.id, { RecognitionStatus: status, Offset: offset, Duration: duration });
    } else {
      const lexical = words.map((w) => w.word).join(' ');
      const display = `${lexical.charAt(0).toUpperCase()}${lexical.slice(1)}.`;
      if (!detailed) {
        send('speech.phrase', t.id, { RecognitionStatus: 'Success', DisplayText: display, Offset: offset, Duration: duration });
      } else {
        const best = {
          Confidence: 0.93,
          Lexical: lexical,
          ITN: lexical,
          MaskedITN: lexical,
          Display: display,
          ...(wordTimestamps
            ? { Words: words.map((w) => ({ Word: w.word, Offset: ticks(w.startFrame), Duration: ticks(w.endFrame - w.startFrame), Confidence: 0.93 })) }
            : {}),
        };
        send('speech.phrase', t.id, { RecognitionStatus: 'Success', Offset: offset, Duration: duration, DisplayText: display, NBest: [best] });
      }
    }
    if (mode === 'interactive') endTurn(t);
  }

  function endTurn(t: SttTurn): void {
    t.ended = true;
    send('speech.endDetected', t.id, { Offset: ticks(t.frameIndex) });
    send('turn.end', t.id, {});
  }

  function pushFrame(t: SttTurn, frame: Int16Array): void {
    const wasInWord = t.decoder.inWord;
    t.heardInPush = false;
    t.decoder.push(frame);
    if (t.decoder.inWord && (!wasInWord || t.heardInPush)) t.runStart = t.frameIndex;
    t.silentFrames = t.decoder.inWord ? 0 : t.silentFrames + 1;
    t.frameIndex++;
    if (t.pending.length && t.silentFrames >= FINAL_SILENCE_MS / 20) phrase(t);
  }

  function newTurn(id: string): SttTurn {
    const t: SttTurn = {
      id,
      ended: false,
      frameIndex: 0,
      silentFrames: 0,
      runStart: 0,
      heardInPush: false,
      pending: [],
      carry: new Uint8Array(0),
      decoder: createToneDecoder(16000, (word) => {
        t.heardInPush = true;
        t.pending.push({ word, startFrame: t.runStart, endFrame: t.frameIndex });
        t.silentFrames = 0;
        if (hooks.shouldDrop()) {
          closed = true;
          ws.terminate(); // Mid-utterance, no close frame: the client sees 1006.
          return;
        }
        if (t.pending.length === 1) send('speech.startDetected', t.id, { Offset: ticks(t.runStart) });
        const first = t.pending[0]!;
        send('speech.hypothesis', t.id, { Text: t.pending.map((w) => w.word).join(' '), Offset: ticks(first.startFrame), Duration: ticks(t.frameIndex - first.startFrame) });
      }),
    };
    return t;
  }

  function audio(t: SttTurn, bytes: Uint8Array): void {
    const all = new Uint8Array(t.carry.length + bytes.length);
    all.set(t.carry);
    all.set(bytes, t.carry.length);
    let at = 0;
    for (; at + 640 <= all.length && !closed && !t.ended; at += 640) {
      const copy = all.slice(at, at + 640);
      pushFrame(t, new Int16Array(copy.buffer, 0, 320));
    }
    t.carry = all.slice(at);
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (closed) return;
      closed = true;
      ws.close(1000, `Exceeded maximum websocket connection idle duration(> ${idleCloseMs}ms)`);
    }, idleCloseMs);
  }

  function onAudio(id: string, body: Uint8Array): void {
    if (!configured) return reject('speech.config must be sent before audio');
    if (!turn || turn.id !== id) {
      if (turn && !turn.ended) return reject(`X-RequestId ${id} started before the audio of turn ${turn.id} ended`);
      if (!body.length) return; // The end of a turn that is over already.
      const pcm = pcmAfterWavHeader(body);
      if (typeof pcm === 'string') return reject(pcm);
      turn = newTurn(id);
      send('turn.start', id, { context: { serviceTag } });
      audio(turn, pcm);
      return;
    }
    if (turn.ended) return; // Interactive mode stopped listening; late audio of the turn is dropped.
    if (!body.length) {
      turn.decoder.flush();
      phrase(turn);
      if (!turn.ended) endTurn(turn);
      return;
    }
    audio(turn, body);
  }

  armIdle();
  ws.on('message', (data, isBinary) => {
    if (closed) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const frame = parseAzureFrame(isBinary ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes.toString('utf8'));
    if (!frame) return reject('Invalid message format');
    const path = (frame.headers.path ?? '').toLowerCase();
    const id = frame.headers['x-requestid'] ?? '';
    if (!REQUEST_ID.test(id)) return reject(`invalid X-RequestId "${id.slice(0, 40)}"`);
    if (isBinary) {
      if (path !== 'audio') return reject(`unexpected binary message ${path}`);
      armIdle();
      return onAudio(id, frame.body as Uint8Array);
    }
    if (path === 'speech.config') {
      try {
        const config = JSON.parse(frame.body as string) as { context?: unknown };
        if (!config.context) return reject('speech.config needs a context');
      } catch {
        return reject('speech.config is not JSON');
      }
      configured = true;
    } else if (path !== 'speech.context' && path !== 'telemetry') {
      reject(`unexpected message ${path}`);
    }
  });
  ws.on('close', () => {
    closed = true;
    clearTimeout(idle);
  });
}

// ---- TTS --------------------------------------------------------------------------------------------------------

interface SynthesisRequest {
  readonly id: string;
  readonly format: { encoding: 'pcm16' | 'mulaw' | 'alaw'; rate: number };
  readonly wordBoundary: boolean;
  readonly tokens: string[];
}

const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The voice and text of a one-voice SSML document, or why it is not one. */
export function parseSsml(ssml: string): { voice: string; language: string; text: string } | string {
  const speak = /^\s*<speak\b([^>]*)>([\s\S]*)<\/speak>\s*$/.exec(ssml);
  if (!speak) return 'SSML parsing error: no <speak> root';
  const language = /xml:lang=(["'])([^"']+)\1/.exec(speak[1]!)?.[2];
  if (!language) return 'SSML parsing error: <speak> needs xml:lang';
  const voice = /^\s*<voice\s+name=(["'])([^"'<>]+)\1\s*>([\s\S]*)<\/voice>\s*$/.exec(speak[2]!);
  if (!voice) return 'SSML parsing error: one <voice name="..."> element expected';
  const raw = voice[3]!;
  if (/[<>]/.test(raw)) return 'SSML parsing error: unexpected markup in the text';
  let bad = false;
  const text = raw.replace(/&([a-z]+);|&/g, (match, name: string | undefined) => {
    const value = name ? ENTITIES[name] : undefined;
    if (value === undefined) bad = true;
    return value ?? match;
  });
  if (bad) return 'SSML parsing error: an unescaped & or unknown entity';
  return { voice: voice[2]!, language, text };
}

function encodeAudio(pcm: Int16Array, encoding: 'pcm16' | 'mulaw' | 'alaw'): Uint8Array {
  if (encoding === 'pcm16') return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
  const out = new Uint8Array(pcm.length);
  (encoding === 'mulaw' ? mulawEncode : alawEncode)(pcm, out);
  return out;
}

function ttsSession(ws: WebSocket, idleCloseMs: number, chunkDelayMs: number): void {
  let configured = false;
  let closed = false;
  let idle: NodeJS.Timeout | undefined;
  let pump: NodeJS.Timeout | undefined;
  const contexts = new Map<string, { format: SynthesisRequest['format']; wordBoundary: boolean }>();
  const outgoing: (string | Uint8Array)[] = [];

  const reject = (reason: string) => {
    if (closed) return;
    closed = true;
    clearTimeout(idle);
    clearTimeout(pump);
    ws.close(1007, reason.slice(0, 120));
  };

  /** Messages go out one per `chunkDelayMs`, requests strictly one after another. */
  function enqueue(message: string | Uint8Array): void {
    outgoing.push(message);
    if (!pump) schedule();
  }
  function schedule(): void {
    pump = setTimeout(() => {
      pump = undefined;
      const next = outgoing.shift();
      if (next === undefined || closed) return;
      if (ws.readyState === ws.OPEN) ws.send(next);
      armIdle();
      if (outgoing.length) schedule();
    }, chunkDelayMs);
  }

  function synthesize(r: SynthesisRequest): void {
    const streamId = randomUUID().replace(/-/g, '').toUpperCase();
    enqueue(textFrame('turn.start', r.id, { context: { serviceTag: randomUUID().replace(/-/g, '') } }));
    enqueue(textFrame('response', r.id, { context: { serviceTag: 'fake' }, audio: { type: 'inline', streamId } }));
    const words = r.tokens.map(normaliseWord).filter(Boolean);
    const { pcm, spans } = synthesizeWords(words, r.format.rate);
    if (r.wordBoundary) {
      spans.forEach((span, i) => {
        const token = r.tokens[i]!;
        enqueue(
          textFrame('audio.metadata', r.id, {
            Metadata: [
              {
                Type: 'WordBoundary',
                Data: { Offset: span.startMs * TICKS_PER_MS, Duration: (span.endMs - span.startMs) * TICKS_PER_MS, text: { Text: token, Length: token.length, BoundaryType: 'WordBoundary' } },
              },
            ],
          }),
        );
      });
    }
    const contentType = r.format.encoding === 'pcm16' ? 'audio/x-wav' : `audio/${r.format.encoding === 'mulaw' ? 'basic' : 'x-alaw-basic'}`;
    const samplesPerChunk = Math.round((r.format.rate * CHUNK_MS) / 1000);
    for (let at = 0; at < pcm.length; at += samplesPerChunk) {
      const data = encodeAudio(pcm.subarray(at, Math.min(pcm.length, at + samplesPerChunk)), r.format.encoding);
      enqueue(binaryFrame('audio', r.id, data, { 'X-StreamId': streamId, 'Content-Type': contentType }));
    }
    enqueue(binaryFrame('audio', r.id, new Uint8Array(0), { 'X-StreamId': streamId }));
    enqueue(textFrame('turn.end', r.id, {}));
  }

  function onText(path: string, id: string, body: string): void {
    if (path === 'speech.config') {
      configured = true;
      return;
    }
    if (!configured) return reject('speech.config must be sent first');
    if (path === 'synthesis.context') {
      let json: { synthesis?: { audio?: { outputFormat?: unknown; metadataOptions?: { wordBoundaryEnabled?: unknown } } } };
      try {
        json = JSON.parse(body) as typeof json;
      } catch {
        return reject('synthesis.context is not JSON');
      }
      const name = json.synthesis?.audio?.outputFormat;
      const format = typeof name === 'string' ? TTS_FORMATS[name] : undefined;
      if (!format) return reject(`unsupported output format ${String(name)}`);
      contexts.set(id, { format, wordBoundary: json.synthesis?.audio?.metadataOptions?.wordBoundaryEnabled === true });
      return;
    }
    if (path === 'ssml') {
      const context = contexts.get(id);
      if (!context) return reject(`no synthesis.context for request ${id}`);
      contexts.delete(id);
      const ssml = parseSsml(body);
      if (typeof ssml === 'string') return reject(ssml);
      synthesize({ id, format: context.format, wordBoundary: context.wordBoundary, tokens: ssml.text.split(/\s+/).filter((t) => normaliseWord(t)) });
      return;
    }
    if (path !== 'telemetry') reject(`unexpected message ${path}`);
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (closed) return;
      closed = true;
      ws.close(1000, `Exceeded maximum websocket connection idle duration(> ${idleCloseMs}ms)`);
    }, idleCloseMs);
  }

  armIdle();
  ws.on('message', (data, isBinary) => {
    if (closed) return;
    armIdle();
    if (isBinary) return reject('binary messages are not part of synthesis');
    const frame = parseAzureFrame((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8'));
    if (!frame) return reject('Invalid message format');
    const id = frame.headers['x-requestid'] ?? '';
    if (!REQUEST_ID.test(id)) return reject(`invalid X-RequestId "${id.slice(0, 40)}"`);
    onText((frame.headers.path ?? '').toLowerCase(), id, frame.body as string);
  });
  ws.on('close', () => {
    closed = true;
    clearTimeout(idle);
    clearTimeout(pump);
    outgoing.length = 0;
  });
}
