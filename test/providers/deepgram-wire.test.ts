import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, type AudioFormat } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttSessionOptions } from '../../shared/contracts/stt';
import type { TtsStreamOptions } from '../../shared/contracts/tts';
import { classifyDeepgramClose, classifyDeepgramHandshake } from '../../shared/providers/deepgram/errors';
import { decodeFlux, decodeNova, deepgramFluxWire, deepgramSttWire } from '../../shared/providers/deepgram/stt-wire';
import { decodeSpeak, deepgramTtsWire } from '../../shared/providers/deepgram/tts-wire';
import type { SttWireEvent } from '../../shared/providers/streaming/stt-wire';
import type { TtsWireEvent } from '../../shared/providers/streaming/tts-wire';
import { decodeWords, synthesizeWords } from '../fakes/tones';
import { startDeepgramFake, type DeepgramFakeServer } from './fakes/deepgram';

/** The Deepgram mappings, frame by frame, with the reference's example messages as fixtures. */

const signal = new AbortController().signal;

function stt(overrides: Partial<SttSessionOptions> = {}): SttSessionOptions {
  return { language: 'en-US', apiKey: 'dg-key', options: {}, signal, ...overrides };
}

function tts(overrides: Partial<TtsStreamOptions> = {}): TtsStreamOptions {
  return { language: 'en-US', format: PIPELINE_FORMAT, apiKey: 'dg-key', options: {}, signal, ...overrides };
}

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

function errorOf(events: readonly (SttWireEvent | TtsWireEvent)[]): ProviderError {
  expect(events).toHaveLength(1);
  const [event] = events;
  if (event?.type !== 'error') throw new Error(`expected an error event, got ${event?.type}`);
  return event.error;
}

// ---- fixtures (reference/providers.md §1.1, §1.2, §2.1) ----

function results(fields: { is_final?: boolean; speech_final?: boolean; from_finalize?: boolean; transcript?: string }): string {
  return JSON.stringify({
    type: 'Results',
    channel_index: [0, 1],
    duration: 1.04,
    start: 0.0,
    is_final: fields.is_final ?? false,
    speech_final: fields.speech_final ?? false,
    from_finalize: fields.from_finalize ?? false,
    channel: {
      alternatives: [
        {
          transcript: fields.transcript ?? 'hello wor',
          confidence: 0.93,
          languages: ['en'],
          words: [{ word: 'hello', start: 0.08, end: 0.4, confidence: 0.99, punctuated_word: 'Hello', speaker: 0 }],
        },
      ],
    },
    metadata: { request_id: 'uuid', model_info: { name: 'general-nova-3', version: '…', arch: 'nova-3' }, model_uuid: 'uuid' },
    entities: [],
  });
}

const SPEECH_STARTED = '{"type":"SpeechStarted","channel":[0,1],"timestamp":1.2}';
const UTTERANCE_END = '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.97}';
const METADATA = '{"type":"Metadata","transaction_key":"deprecated","request_id":"uuid","sha256":"…","created":"2024-08-29T22:37:55.202Z","duration":0.0,"channels":0}';

function turnInfo(event: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'TurnInfo',
    request_id: 'uuid',
    sequence_id: 7,
    event,
    turn_index: 0,
    audio_window_start: 0.0,
    audio_window_end: 1.28,
    transcript: 'book a table',
    words: [{ word: 'book', confidence: 0.98, start: 0.3, end: 0.5 }],
    end_of_turn_confidence: 0.12,
    ...extra,
  });
}

describe('deepgram Nova (/v1/listen) decode', () => {
  it('an interim Results is the current window only', () => {
    expect(decodeNova(results({}))).toEqual([{ type: 'interim', text: 'hello wor' }]);
  });

  it('an empty interim says nothing', () => {
    expect(decodeNova(results({ transcript: '' }))).toEqual([]);
  });

  it('a final carries text, confidence, words in ms (punctuated) and where its window ends', () => {
    expect(decodeNova(results({ is_final: true, transcript: 'Hello world.' }))).toEqual([
      {
        type: 'final',
        text: 'Hello world.',
        confidence: 0.93,
        words: [{ word: 'Hello', startMs: 80, endMs: 400, confidence: 0.99 }],
        audioEndMs: 1040,
      },
    ]);
  });

  it('speech_final is not an end of turn: Nova gives finals only, the engine decides the turn', () => {
    const events = decodeNova(results({ is_final: true, speech_final: true, transcript: 'hello' }));
    expect(events.map((e) => e.type)).toEqual(['final']);
    expect(deepgramSttWire.capabilities.endOfTurn).toBe(false);
    expect(decodeNova(UTTERANCE_END)).toEqual([]);
  });

  it('from_finalize acknowledges the finalize after the final', () => {
    expect(decodeNova(results({ is_final: true, from_finalize: true, transcript: 'stop' })).map((e) => e.type)).toEqual(['final', 'finalized']);
    // An empty final still answers the finalize (the buffered audio held no words).
    const empty = decodeNova(results({ is_final: true, from_finalize: true, transcript: '' }));
    expect(empty[0]).toMatchObject({ type: 'final', text: '' });
  });

  it('SpeechStarted → speechStarted; Metadata (after CloseStream) → closed; unknown types → nothing', () => {
    expect(decodeNova(SPEECH_STARTED)).toEqual([{ type: 'speechStarted' }]);
    expect(decodeNova(METADATA)).toEqual([{ type: 'closed' }]);
    expect(decodeNova('{"type":"SomethingNew","x":1}')).toEqual([]);
    expect(decodeNova(new Uint8Array([1, 2, 3]))).toEqual([]);
  });

  it('malformed frames become a retryable DEEPGRAM_PROTOCOL error, never a throw', () => {
    for (const frame of ['not json', '[1,2]', '{"no":"type"}', '{"type":"Results","start":0}', '{"type":"Results","start":0,"duration":"x","channel":{"alternatives":[]}}']) {
      const error = errorOf(decodeNova(frame));
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ code: 'DEEPGRAM_PROTOCOL', kind: 'protocol', retryable: true });
    }
    expect(errorOf(decodeNova('{"type":"Results","start":0}')).message).toContain('duration');
  });
});

describe('deepgram Flux (/v2/listen) decode', () => {
  it('Connected and Configure replies say nothing', () => {
    expect(decodeFlux('{"type":"Connected","request_id":"uuid","sequence_id":0}')).toEqual([]);
    expect(decodeFlux('{"type":"ConfigureSuccess","request_id":"uuid","thresholds":{},"keyterms":[],"sequence_id":9}')).toEqual([]);
    expect(decodeFlux('{"type":"ConfigureFailure","request_id":"uuid","sequence_id":9}')).toEqual([]);
  });

  it('Update, EagerEndOfTurn and TurnResumed are interims of the whole turn so far', () => {
    for (const event of ['Update', 'EagerEndOfTurn', 'TurnResumed']) {
      expect(decodeFlux(turnInfo(event))).toEqual([{ type: 'interim', text: 'book a table' }]);
    }
    expect(decodeFlux(turnInfo('Update', { transcript: '' }))).toEqual([]);
  });

  it('StartOfTurn → speechStarted (and the first words when it has some)', () => {
    expect(decodeFlux(turnInfo('StartOfTurn', { transcript: '' }))).toEqual([{ type: 'speechStarted' }]);
    expect(decodeFlux(turnInfo('StartOfTurn'))).toEqual([{ type: 'speechStarted' }, { type: 'interim', text: 'book a table' }]);
  });

  it('EndOfTurn → final (words in ms, window end) + endOfTurn; trigger manual also acknowledges the finalize', () => {
    const model = decodeFlux(turnInfo('EndOfTurn', { trigger: 'model' }));
    expect(model).toEqual([
      { type: 'final', text: 'book a table', confidence: 0.98, words: [{ word: 'book', startMs: 300, endMs: 500, confidence: 0.98 }], audioEndMs: 1280 },
      { type: 'endOfTurn', text: 'book a table' },
    ]);
    expect(decodeFlux(turnInfo('EndOfTurn', { trigger: 'manual' })).map((e) => e.type)).toEqual(['final', 'endOfTurn', 'finalized']);
    expect(deepgramFluxWire.capabilities.endOfTurn).toBe(true);
  });

  it('an Error frame becomes a ProviderError (server errors retryable, bad requests not)', () => {
    const server = errorOf(decodeFlux('{"type":"Error","sequence_id":3,"code":"INTERNAL_SERVER_ERROR","description":"boom"}'));
    expect(server).toMatchObject({ retryable: true, kind: 'unavailable' });
    expect(server.message).toContain('boom');
    const bad = errorOf(decodeFlux('{"type":"Error","sequence_id":3,"code":"INVALID_MODEL","description":"no such model"}'));
    expect(bad).toMatchObject({ retryable: false, kind: 'bad-request' });
  });

  it('unknown events and malformed frames', () => {
    expect(decodeFlux(turnInfo('SomethingNew'))).toEqual([]);
    expect(errorOf(decodeFlux('{"type":"TurnInfo","event":7}'))).toMatchObject({ code: 'DEEPGRAM_PROTOCOL', kind: 'protocol' });
    expect(errorOf(decodeFlux('{'))).toMatchObject({ code: 'DEEPGRAM_PROTOCOL' });
  });
});

describe('deepgram listen connect', () => {
  it('Nova: the documented URL with linear16 16 kHz mono, options as query, Token auth', () => {
    const { url, headers } = deepgramSttWire.connect(stt({ model: 'nova-3' }));
    const u = new URL(url);
    expect(`${u.protocol}//${u.host}${u.pathname}`).toBe('wss://api.deepgram.com/v1/listen');
    expect(Object.fromEntries(u.searchParams)).toEqual({
      model: 'nova-3',
      encoding: 'linear16',
      sample_rate: '16000',
      channels: '1',
      language: 'en-US',
      interim_results: 'true',
      endpointing: '300',
      utterance_end_ms: '1000',
      vad_events: 'true',
      smart_format: 'true',
      punctuate: 'true',
    });
    expect(headers).toEqual({ Authorization: 'Token dg-key' });
  });

  it('Nova options: endpointing off, keyterms repeated, no utterance_end_ms without interim results', () => {
    const { url } = deepgramSttWire.connect(stt({ options: { endpointingMs: false, keyterms: ['Acme', 'Zed'], interimResults: false, mipOptOut: true } }));
    const q = new URL(url).searchParams;
    expect(q.get('model')).toBe('nova-3');
    expect(q.get('endpointing')).toBe('false');
    expect(q.getAll('keyterm')).toEqual(['Acme', 'Zed']);
    expect(q.get('interim_results')).toBe('false');
    expect(q.has('utterance_end_ms')).toBe(false);
    expect(q.get('mip_opt_out')).toBe('true');
  });

  it('Flux: /v2/listen with the eot parameters, no channels; a language hint only for the multilingual model', () => {
    const { url } = deepgramFluxWire.connect(stt({ model: 'flux-general-en', options: { eotThreshold: 0.8, eagerEotThreshold: 0.5, eotTimeoutMs: 3000 } }));
    const u = new URL(url);
    expect(u.pathname).toBe('/v2/listen');
    expect(Object.fromEntries(u.searchParams)).toEqual({
      model: 'flux-general-en',
      encoding: 'linear16',
      sample_rate: '16000',
      eot_threshold: '0.8',
      eager_eot_threshold: '0.5',
      eot_timeout_ms: '3000',
    });
    expect(new URL(deepgramFluxWire.connect(stt({ model: 'flux-general-multi', language: 'de' })).url).searchParams.get('language_hint')).toBe('de');
  });

  it('the block endpoint replaces scheme, host and port; the path and query stay ours', () => {
    expect(deepgramSttWire.connect(stt({ endpoint: 'ws://127.0.0.1:4321' })).url).toMatch(/^ws:\/\/127\.0\.0\.1:4321\/v1\/listen\?model=nova-3&/);
    expect(deepgramSttWire.connect(stt({ endpoint: 'https://dg.example.com:8443/ignored/path' })).url).toMatch(/^wss:\/\/dg\.example\.com:8443\/v1\/listen\?/);
    expect(deepgramFluxWire.connect(stt({ model: 'flux-general-en', endpoint: 'http://localhost:9' })).url).toMatch(/^ws:\/\/localhost:9\/v2\/listen\?/);
    expect(thrown(() => deepgramSttWire.connect(stt({ endpoint: 'not a url' })))).toMatchObject({ code: 'DEEPGRAM_BAD_REQUEST', retryable: false });
    expect(thrown(() => deepgramSttWire.connect(stt({ endpoint: 'ftp://x' })))).toMatchObject({ retryable: false });
  });

  it('a missing key is a non-retryable auth error naming deepgram', () => {
    const error = thrown(() => deepgramSttWire.connect(stt({ apiKey: undefined })));
    expect(error).toMatchObject({ code: 'DEEPGRAM_AUTH', retryable: false, kind: 'auth' });
    expect(error.message).toContain('deepgram');
    expect(thrown(() => deepgramFluxWire.connect(stt({ model: 'flux-general-en', apiKey: '' })))).toMatchObject({ kind: 'auth' });
  });

  it('invalid options and a model on the wrong endpoint are bad requests', () => {
    expect(thrown(() => deepgramSttWire.connect(stt({ options: { utteranceEndMs: 500 } })))).toMatchObject({ code: 'DEEPGRAM_BAD_REQUEST', retryable: false });
    expect(thrown(() => deepgramSttWire.connect(stt({ model: 'flux-general-en' })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => deepgramFluxWire.connect(stt({ model: 'nova-3' })))).toMatchObject({ kind: 'bad-request' });
  });

  it('control messages are text frames; audio is binary and never an empty frame', () => {
    expect(deepgramSttWire.keepAliveMessage?.message()).toBe('{"type":"KeepAlive"}');
    expect(deepgramSttWire.keepAliveMessage!.intervalMs).toBeGreaterThanOrEqual(3000);
    expect(deepgramSttWire.keepAliveMessage!.intervalMs).toBeLessThanOrEqual(5000);
    expect(deepgramSttWire.finalize?.()).toBe('{"type":"Finalize"}');
    expect(deepgramSttWire.closeMessage?.()).toBe('{"type":"CloseStream"}');
    expect(deepgramFluxWire.finalize?.()).toBe('{"type":"ForceEndTurn"}');
    expect(deepgramFluxWire.closeMessage).toBeUndefined();
    expect(deepgramFluxWire.keepAliveMessage).toBeUndefined();
    const chunk = new Uint8Array(640);
    expect(deepgramSttWire.audio(chunk)).toBe(chunk);
    expect(deepgramSttWire.audio(new Uint8Array(0))).toBe('{"type":"KeepAlive"}');
    expect((deepgramFluxWire.audio(new Uint8Array(0)) as Uint8Array).byteLength).toBe(2);
  });
});

describe('deepgram handshake and close classification', () => {
  it('401/403 → auth, not retryable, with what Deepgram said', () => {
    const error = classifyDeepgramHandshake(401, '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"x"}');
    expect(error).toMatchObject({ code: 'DEEPGRAM_AUTH', retryable: false, kind: 'auth' });
    expect(error.message).toContain('INVALID_AUTH: Invalid credentials.');
    expect(error.message).toContain('credential');
    expect(classifyDeepgramHandshake(403, '')).toMatchObject({ kind: 'auth', retryable: false });
  });

  it('400 → bad request, 402 → quota (both final); 429 → rate limit, 5xx and no status → unavailable (retryable)', () => {
    expect(classifyDeepgramHandshake(400, '{"err_code":"Bad Request","err_msg":"bad model"}')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(classifyDeepgramHandshake(402, '')).toMatchObject({ kind: 'quota', retryable: false });
    expect(classifyDeepgramHandshake(429, '')).toMatchObject({ code: 'DEEPGRAM_RATE_LIMIT', kind: 'rate-limit', retryable: true });
    expect(classifyDeepgramHandshake(503, '<html>busy</html>')).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(classifyDeepgramHandshake(503, '<html>busy</html>').message).toContain('<html>busy');
    expect(classifyDeepgramHandshake(undefined, '')).toMatchObject({ kind: 'unavailable', retryable: true });
  });

  it('1000 is a normal end; NET-0000/NET-0001 timeouts and 1006 drops are retried; DATA-0000 (1002 or 1008) is not', () => {
    expect(classifyDeepgramClose(1000, '')).toBeUndefined();
    expect(classifyDeepgramClose(1011, 'NET-0001')).toMatchObject({ kind: 'timeout', retryable: true });
    expect(classifyDeepgramClose(1011, 'NET-0000')).toMatchObject({ kind: 'timeout', retryable: true });
    expect(classifyDeepgramClose(1006, '')).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(classifyDeepgramClose(1011, '')).toMatchObject({ retryable: true });
    for (const code of [1002, 1008]) {
      const error = classifyDeepgramClose(code, 'DATA-0000');
      expect(error).toMatchObject({ code: 'DEEPGRAM_BAD_AUDIO', kind: 'bad-request', retryable: false });
    }
    expect(classifyDeepgramClose(1008, 'policy')).toMatchObject({ retryable: false });
    expect(deepgramSttWire.classifyClose).toBe(classifyDeepgramClose);
    expect(deepgramTtsWire.classifyHandshake).toBe(classifyDeepgramHandshake);
  });
});

describe('deepgram Aura (/v1/speak) wire', () => {
  it('connect: model, encoding and rate from the requested format; voice names the model', () => {
    const pcm = new URL(deepgramTtsWire.connect(tts()).url);
    expect(`${pcm.protocol}//${pcm.host}${pcm.pathname}`).toBe('wss://api.deepgram.com/v1/speak');
    expect(Object.fromEntries(pcm.searchParams)).toEqual({ model: 'aura-2-thalia-en', encoding: 'linear16', sample_rate: '16000' });
    expect(deepgramTtsWire.connect(tts()).headers).toEqual({ Authorization: 'Token dg-key' });
    const ulaw = new URL(deepgramTtsWire.connect(tts({ format: MULAW_8K, voice: 'aura-2-helena-en', options: { speed: 1.1 } })).url);
    expect(Object.fromEntries(ulaw.searchParams)).toEqual({ model: 'aura-2-helena-en', encoding: 'mulaw', sample_rate: '8000', speed: '1.1' });
    expect(new URL(deepgramTtsWire.connect(tts({ format: ALAW_8K, model: 'aura-asteria-en' })).url).searchParams.get('model')).toBe('aura-asteria-en');
    expect(deepgramTtsWire.connect(tts({ endpoint: 'ws://127.0.0.1:1' })).url).toMatch(/^ws:\/\/127\.0\.0\.1:1\/v1\/speak\?/);
  });

  it('formats it cannot make are bad requests; the capabilities list what it can (telephony μ-law and the pipeline format)', () => {
    for (const format of [{ encoding: 'pcm16', sampleRateHz: 44_100 }, { encoding: 'mulaw', sampleRateHz: 24_000 }] as AudioFormat[]) {
      expect(thrown(() => deepgramTtsWire.connect(tts({ format })))).toMatchObject({ code: 'DEEPGRAM_BAD_REQUEST', retryable: false, kind: 'bad-request' });
    }
    const formats = deepgramTtsWire.capabilities.outputFormats;
    expect(formats).toContainEqual(MULAW_8K);
    expect(formats).toContainEqual(PIPELINE_FORMAT);
    for (const format of formats) expect(() => deepgramTtsWire.connect(tts({ format }))).not.toThrow();
    expect(deepgramTtsWire.capabilities).toMatchObject({ wordTimings: false, multiplexed: false, cancelWithoutClosing: true });
    expect(thrown(() => deepgramTtsWire.connect(tts({ apiKey: undefined })))).toMatchObject({ kind: 'auth', retryable: false });
  });

  it('sockets are shared only between equal URLs and keys', () => {
    const key = deepgramTtsWire.connectionKey;
    expect(key(tts())).toBe(key(tts({ signal: new AbortController().signal })));
    expect(key(tts())).not.toBe(key(tts({ apiKey: 'other' })));
    expect(key(tts())).not.toBe(key(tts({ format: MULAW_8K })));
    expect(key(tts())).not.toBe(key(tts({ voice: 'aura-2-helena-en' })));
  });

  it('an utterance: Speak + Flush per piece (a blank piece flushes only), nothing at end, Clear on cancel', () => {
    const u = deepgramTtsWire.utterance('c1', tts());
    expect(u.begin()).toEqual([]);
    expect(u.text('Hello there. ', 0).map((m) => JSON.parse(m) as unknown)).toEqual([{ type: 'Speak', text: 'Hello there. ' }, { type: 'Flush' }]);
    expect(u.text('  ', 1)).toEqual(['{"type":"Flush"}']);
    expect(u.end()).toEqual([]);
    expect(u.cancel()).toEqual(['{"type":"Clear"}']);
    // No end-of-utterance message exists: the last piece's Flushed is the end (the base must know).
    expect(deepgramTtsWire.lastPieceEndsUtterance).toBe(true);
  });

  it('decode: binary → audio (a copy), Flushed → pieceDone, Cleared → cancelled, Metadata → nothing', () => {
    const frame = new Uint8Array([1, 2, 3, 4]);
    const [audio] = decodeSpeak(frame);
    frame[0] = 9;
    expect(audio).toEqual({ type: 'audio', data: new Uint8Array([1, 2, 3, 4]) });
    expect(decodeSpeak(new Uint8Array(0))).toEqual([]);
    expect(decodeSpeak('{"type":"Flushed","sequence_id":0}')).toEqual([{ type: 'pieceDone' }]);
    expect(decodeSpeak('{"type":"Cleared","sequence_id":0}')).toEqual([{ type: 'cancelled' }]);
    expect(decodeSpeak('{"type":"Metadata","request_id":"r","model_name":"aura-2-thalia-en","model_version":"v","model_uuid":"u"}')).toEqual([]);
  });

  it('a Warning about flushes is a retryable rate-limit error (the ignored Flushed would never come); other Warnings are advisory', () => {
    const error = errorOf(decodeSpeak('{"type":"Warning","description":"Exceeded the maximum number of Flush messages","code":"FLUSH_LIMIT"}'));
    expect(error).toMatchObject({ code: 'DEEPGRAM_FLUSH_LIMIT', kind: 'rate-limit', retryable: true });
    expect(decodeSpeak('{"type":"Warning","description":"Text contains unsupported characters","code":"TEXT"}')).toEqual([]);
  });

  it('malformed speak frames are protocol errors', () => {
    expect(errorOf(decodeSpeak('nope'))).toMatchObject({ code: 'DEEPGRAM_PROTOCOL', kind: 'protocol' });
    expect(errorOf(decodeSpeak('{"sequence_id":1}'))).toMatchObject({ code: 'DEEPGRAM_PROTOCOL' });
  });
});

/**
 * The mappings against the fake over a real socket, with no shared base in between: the URL the wire builds
 * is one the fake serves, and what the fake says decodes to the events expected.
 */
describe('deepgram wires against the fake', () => {
  let fake: DeepgramFakeServer | undefined;
  const sockets: WebSocket[] = [];
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    await fake?.close();
    fake = undefined;
  });

  async function open(target: { url: string; headers?: Record<string, string> }, onFrame: (data: string | Uint8Array) => void): Promise<WebSocket> {
    const ws = new WebSocket(target.url, { headers: target.headers });
    sockets.push(ws);
    ws.on('message', (data, isBinary) => onFrame(isBinary ? new Uint8Array(data as Buffer) : (data as Buffer).toString('utf8')));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return ws;
  }

  function speech(words: readonly string[], silenceMs: number): Uint8Array[] {
    const { pcm } = synthesizeWords(words, 16_000);
    const all = new Int16Array(pcm.length + silenceMs * 16);
    all.set(pcm);
    const bytes = new Uint8Array(all.buffer);
    const out: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 640) out.push(bytes.slice(i, i + 640));
    return out;
  }

  async function until(check: () => boolean): Promise<void> {
    const deadline = Date.now() + 3000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('Nova: interims, a final with the words, finalize acknowledged, closed after CloseStream', async () => {
    fake = await startDeepgramFake();
    const events: SttWireEvent[] = [];
    const ws = await open(deepgramSttWire.connect(stt({ endpoint: fake.endpoint, apiKey: fake.apiKey })), (d) => events.push(...deepgramSttWire.decode(d)));
    for (const frame of speech(['what', 'is', 'the', 'weather'], 400)) ws.send(deepgramSttWire.audio(frame));
    await until(() => events.some((e) => e.type === 'final'));
    expect(events.filter((e) => e.type === 'interim').map((e) => (e as { text: string }).text)).toEqual(['what', 'what is', 'what is the', 'what is the weather']);
    expect(events.find((e) => e.type === 'final')).toMatchObject({ text: 'what is the weather', words: [{ word: 'what' }, { word: 'is' }, { word: 'the' }, { word: 'weather' }] });
    expect(events[0]).toEqual({ type: 'speechStarted' });

    for (const frame of speech(['okay'], 0)) ws.send(deepgramSttWire.audio(frame));
    ws.send(deepgramSttWire.finalize!());
    await until(() => events.some((e) => e.type === 'finalized'));
    expect(events.filter((e) => e.type === 'final').at(-1)).toMatchObject({ text: 'okay' });
    ws.send(deepgramSttWire.closeMessage!());
    await until(() => events.some((e) => e.type === 'closed'));
    expect(fake.connections[0]!.headers.authorization).toBe(`Token ${fake.apiKey}`);
  });

  it('Flux: a turn ends with final + endOfTurn; ForceEndTurn finalises', async () => {
    fake = await startDeepgramFake();
    const events: SttWireEvent[] = [];
    const ws = await open(deepgramFluxWire.connect(stt({ model: 'flux-general-en', endpoint: fake.endpoint, apiKey: fake.apiKey })), (d) => events.push(...deepgramFluxWire.decode(d)));
    for (const frame of speech(['tell', 'me', 'a', 'joke'], 500)) ws.send(deepgramFluxWire.audio(frame));
    await until(() => events.some((e) => e.type === 'endOfTurn'));
    expect(events.filter((e) => e.type === 'final')).toEqual([expect.objectContaining({ text: 'tell me a joke' })]);
    expect(events.find((e) => e.type === 'endOfTurn')).toEqual({ type: 'endOfTurn', text: 'tell me a joke' });
    for (const frame of speech(['thanks'], 0)) ws.send(deepgramFluxWire.audio(frame));
    ws.send(deepgramFluxWire.finalize!());
    await until(() => events.some((e) => e.type === 'finalized'));
    expect(events.filter((e) => e.type === 'final').at(-1)).toMatchObject({ text: 'thanks' });
  });

  it('Aura: two pieces → audio that decodes to their words and one pieceDone each; cancel → cancelled', async () => {
    fake = await startDeepgramFake({ speakPacing: { realtimeFactor: Infinity } });
    const options = tts({ endpoint: fake.endpoint, apiKey: fake.apiKey });
    const events: TtsWireEvent[] = [];
    const ws = await open(deepgramTtsWire.connect(options), (d) => events.push(...deepgramTtsWire.decode(d)));
    const u = deepgramTtsWire.utterance('c1', options);
    for (const m of [...u.begin(), ...u.text('Hello there. ', 0), ...u.text('What is the weather today?', 1), ...u.end()]) ws.send(m);
    await until(() => events.filter((e) => e.type === 'pieceDone').length === 2);
    const audio = events.filter((e): e is Extract<TtsWireEvent, { type: 'audio' }> => e.type === 'audio');
    const bytes = new Uint8Array(audio.reduce((n, e) => n + e.data.length, 0));
    let offset = 0;
    for (const e of audio) {
      bytes.set(e.data, offset);
      offset += e.data.length;
    }
    expect(decodeWords(new Int16Array(bytes.buffer), 16_000)).toEqual(['hello', 'there', 'what', 'is', 'the', 'weather', 'today']);
    // The first piece's audio all comes before its pieceDone.
    const firstDone = events.findIndex((e) => e.type === 'pieceDone');
    const before = events.slice(0, firstDone).filter((e): e is Extract<TtsWireEvent, { type: 'audio' }> => e.type === 'audio');
    expect(before.reduce((n, e) => n + e.data.length, 0)).toBe(synthesizeWords(['hello', 'there'], 16_000).pcm.length * 2);

    const next = deepgramTtsWire.utterance('c2', options);
    for (const m of next.text('once upon a time', 0)) ws.send(m);
    for (const m of next.cancel() as string[]) ws.send(m);
    await until(() => events.some((e) => e.type === 'cancelled'));
  });
});
