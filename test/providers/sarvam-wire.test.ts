import { describe, expect, it, vi } from 'vitest';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, type AudioFormat, type AudioFrame } from '../../shared/audio/format';
import { encodeWav } from '../../shared/audio/wav';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttSessionOptions } from '../../shared/contracts/stt';
import type { TtsStreamOptions } from '../../shared/contracts/tts';
import { createSarvamStt, createSarvamTts } from '../../shared/providers/sarvam';
import { sarvamLanguage } from '../../shared/providers/sarvam/protocol';
import { createSarvamSttWire, sarvamAudioMessage, sarvamSttWire } from '../../shared/providers/sarvam/stt-wire';
import { SARVAM_TTS_FORMATS, sarvamOutputFormat, sarvamTtsWire, splitText, stripWavHeader } from '../../shared/providers/sarvam/tts-wire';
import type { SocketFactory } from '../../shared/providers/streaming/socket';

const signal = new AbortController().signal;
const stt = (over: Partial<SttSessionOptions> = {}): SttSessionOptions => ({ language: 'en-IN', apiKey: 'sk-1', options: {}, signal, ...over });
const tts = (over: Partial<TtsStreamOptions> = {}): TtsStreamOptions => ({ language: 'en', voice: 'anushka', format: PIPELINE_FORMAT, apiKey: 'sk-1', options: {}, signal, ...over });
const deps = { connect: () => Promise.reject(new Error('no sockets in wire tests')) };

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

function errorOf(events: readonly unknown[]): ProviderError {
  expect(events).toHaveLength(1);
  const event = events[0] as { type: string; error: ProviderError };
  expect(event.type).toBe('error');
  return event.error;
}

const config = (options: TtsStreamOptions) => JSON.parse(sarvamTtsWire.open!(options)[0]!) as { type: string; data: Record<string, unknown> };

describe('sarvamai language codes', () => {
  it.each([
    ['en', 'unknown', 'en-IN'],
    ['en-US', 'unknown', 'en-IN'],
    ['hi', 'unknown', 'hi-IN'],
    ['hi-IN', 'unknown', 'hi-IN'],
    ['ta_IN', 'unknown', 'ta-IN'],
    ['or', 'unknown', 'od-IN'],
    ['kok', 'unknown', 'kok-IN'],
    ['', 'unknown', 'unknown'],
    ['auto', 'unknown', 'unknown'],
    ['unknown', 'en-IN', 'en-IN'],
    ['fr-FR', 'unknown', 'fr-FR'],
  ])('%s → %s fallback → %s', (language, autoAs, expected) => {
    expect(sarvamLanguage(language, autoAs)).toBe(expected);
  });
});

describe('sarvamai STT wire: connect', () => {
  it('asks /speech-to-text/ws with language-code (hyphen), saaras:v3 transcribe, PCM16 16 kHz, VAD events and flush, keyed by Api-Subscription-Key', () => {
    const { url, headers } = sarvamSttWire.connect(stt());
    const parsed = new URL(url);
    expect(`${parsed.protocol}//${parsed.host}${parsed.pathname}`).toBe('wss://api.sarvam.ai/speech-to-text/ws');
    expect(url).toContain('language-code=en-IN');
    expect(parsed.searchParams.has('language_code')).toBe(false);
    expect(Object.fromEntries(parsed.searchParams)).toEqual({
      'language-code': 'en-IN',
      model: 'saaras:v3',
      mode: 'transcribe',
      sample_rate: '16000',
      input_audio_codec: 'pcm_s16le',
      vad_signals: 'true',
      flush_signal: 'true',
    });
    expect(headers).toEqual({ 'Api-Subscription-Key': 'sk-1' });
  });

  it('takes model, mode, VAD options and endpoint (scheme+host+port only) from the block; mode only for saaras models', () => {
    const v3 = new URL(sarvamSttWire.connect(stt({ language: 'hi', endpoint: 'http://127.0.0.1:4567/x', options: { mode: 'codemix', highVadSensitivity: true, vadSignals: false } })).url);
    expect(v3.origin + v3.pathname).toBe('ws://127.0.0.1:4567/speech-to-text/ws');
    expect(v3.searchParams.get('language-code')).toBe('hi-IN');
    expect(v3.searchParams.get('mode')).toBe('codemix');
    expect(v3.searchParams.get('high_vad_sensitivity')).toBe('true');
    expect(v3.searchParams.get('vad_signals')).toBe('false');
    expect(new URL(sarvamSttWire.connect(stt({ options: { mode: 'transliterate' } })).url).searchParams.get('mode')).toBe('translit');
    const saarika = new URL(sarvamSttWire.connect(stt({ model: 'saarika:v2.5', language: 'auto' })).url);
    expect(saarika.searchParams.get('model')).toBe('saarika:v2.5');
    expect(saarika.searchParams.has('mode')).toBe(false);
    expect(saarika.searchParams.get('language-code')).toBe('unknown');
    expect(new URL(sarvamSttWire.connect(stt({ endpoint: 'https://proxy.example.com' })).url).protocol).toBe('wss:');
  });

  it('refuses what it cannot do before connecting: no key (auth, naming sarvamai), mode on saarika, realtime models, bad options and endpoints', () => {
    const missing = thrown(() => sarvamSttWire.connect(stt({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'SARVAMAI_AUTH', retryable: false, kind: 'auth' });
    expect(missing.message).toContain('sarvamai');
    expect(thrown(() => sarvamSttWire.connect(stt({ model: 'saarika:v2.5', options: { mode: 'translate' } })))).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(thrown(() => sarvamSttWire.connect(stt({ model: 'saaras:v3-realtime' }))).message).toContain('speech-to-text-realtime');
    expect(thrown(() => sarvamSttWire.connect(stt({ options: { mode: 'shout' } })))).toMatchObject({ code: 'SARVAMAI_BAD_OPTIONS', kind: 'bad-request' });
    expect(thrown(() => sarvamSttWire.connect(stt({ options: { audioChunkMs: 30 } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => sarvamSttWire.connect(stt({ endpoint: 'not a url' })))).toMatchObject({ kind: 'bad-request' });
  });
});

describe('sarvamai STT wire: client frames', () => {
  it('audio is a JSON text frame with base64 PCM, sample_rate "16000" and encoding audio/wav', () => {
    const pcm = new Uint8Array([1, 2, 3, 250, 251, 0]);
    const message = sarvamSttWire.audio(pcm);
    expect(typeof message).toBe('string');
    const json = JSON.parse(message as string) as { audio: { data: string; sample_rate: string; encoding: string } };
    expect(json.audio.sample_rate).toBe('16000');
    expect(json.audio.encoding).toBe('audio/wav');
    expect([...Buffer.from(json.audio.data, 'base64')]).toEqual([...pcm]);
    expect(sarvamAudioMessage(pcm)).toBe(message);
  });

  it('finalize is {"type":"flush"}; no close message; the keep-alive is 100 ms of silence as an audio message', () => {
    expect(sarvamSttWire.finalize?.()).toBe('{"type":"flush"}');
    expect(sarvamSttWire.closeMessage).toBeUndefined();
    const keepAlive = sarvamSttWire.keepAliveMessage!;
    expect(keepAlive.intervalMs).toBe(5000);
    const silence = JSON.parse(keepAlive.message()) as { audio: { data: string } };
    const bytes = Buffer.from(silence.audio.data, 'base64');
    expect(bytes.byteLength).toBe(3200);
    expect(bytes.every((b) => b === 0)).toBe(true);
    expect(createSarvamSttWire({ keepAliveIntervalMs: 200 }).keepAliveMessage?.intervalMs).toBe(200);
    expect(sarvamSttWire.capabilities).toEqual({ interimResults: false, finalize: true, wordTimings: false, endOfTurn: false, edgeCapable: true, keepAlive: true });
  });
});

describe('sarvamai STT wire: server frames (reference §1.7 and the endpoint spec)', () => {
  it('data → final with the trimmed transcript; an empty transcript → nothing', () => {
    const frame = JSON.stringify({
      type: 'data',
      data: { request_id: 'r1', transcript: ' नमस्ते दुनिया ', timestamps: null, language_code: 'hi-IN', language_probability: null, metrics: { audio_duration: 8.48, processing_latency: 0.252 } },
    });
    expect(sarvamSttWire.decode(frame)).toEqual([{ type: 'final', text: 'नमस्ते दुनिया' }]);
    expect(sarvamSttWire.decode('{"type":"data","data":{"request_id":"r2","transcript":"","metrics":{"audio_duration":0.4,"processing_latency":0.1}}}')).toEqual([]);
  });

  it('events: START_SPEECH → speechStarted, END_SPEECH and others → nothing', () => {
    expect(sarvamSttWire.decode('{"type":"events","data":{"signal_type":"START_SPEECH","occured_at":1717171717.2}}')).toEqual([{ type: 'speechStarted' }]);
    expect(sarvamSttWire.decode('{"type":"events","data":{"event_type":"vad","signal_type":"END_SPEECH"}}')).toEqual([]);
    expect(sarvamSttWire.decode('{"type":"events","data":{"event_type":"something_new"}}')).toEqual([]);
  });

  it.each([
    [{ error: 'Unprocessable audio', code: '422' }, 'bad-request', false],
    [{ message: 'bad sample rate', code: 422 }, 'bad-request', false],
    [{ message: 'bad', code: 400 }, 'bad-request', false],
    [{ error: 'Invalid API subscription key', code: '403' }, 'auth', false],
    [{ message: 'Unauthorized', code: 401 }, 'auth', false],
    [{ error: 'Invalid API key provided' }, 'auth', false],
    [{ message: 'Rate limit exceeded', code: 429 }, 'rate-limit', true],
    [{ error: 'Internal server error', code: '500' }, 'unavailable', true],
    [{ message: 'Audio stream timed out' }, 'timeout', true],
    [{ message: 'something odd happened' }, 'unavailable', true],
  ])('error %j → %s (retryable %s)', (data, kind, retryable) => {
    const error = errorOf(sarvamSttWire.decode(JSON.stringify({ type: 'error', data })));
    expect(error).toMatchObject({ kind, retryable });
    expect(error.code.startsWith('SARVAMAI_')).toBe(true);
  });

  it('ignores message types it does not know', () => {
    expect(sarvamSttWire.decode('{"type":"no-such-message","x":[1,2]}')).toEqual([]);
  });

  it.each([
    ['not JSON', '{"type":'],
    ['no type', '{"data":{}}'],
    ['data without a transcript', '{"type":"data","data":{"request_id":"r1"}}'],
    ['a binary frame', new Uint8Array([0xde, 0xad, 0xbe, 0xef])],
  ])('a malformed frame (%s) is a SARVAMAI_PROTOCOL error of kind protocol', (_name, frame) => {
    expect(thrown(() => sarvamSttWire.decode(frame))).toMatchObject({ code: 'SARVAMAI_PROTOCOL', kind: 'protocol', retryable: false });
  });
});

describe('sarvamai wires: handshake and close classification', () => {
  it('classifies refused upgrades by status, quoting the body', () => {
    const auth = sarvamSttWire.classifyHandshake(403, '{"error":{"message":"Invalid API subscription key","code":"invalid_api_key_error"}}');
    expect(auth).toMatchObject({ code: 'SARVAMAI_AUTH', kind: 'auth', retryable: false });
    expect(auth.message).toContain('Invalid API subscription key');
    expect(sarvamTtsWire.classifyHandshake(401, '')).toMatchObject({ kind: 'auth', retryable: false });
    expect(sarvamSttWire.classifyHandshake(400, 'bad model')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(sarvamSttWire.classifyHandshake(402, '')).toMatchObject({ kind: 'quota', retryable: false });
    expect(sarvamSttWire.classifyHandshake(429, '')).toMatchObject({ kind: 'rate-limit', retryable: true });
    expect(sarvamTtsWire.classifyHandshake(503, '<html>bad gateway</html>')).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(sarvamSttWire.classifyHandshake(undefined, '')).toMatchObject({ kind: 'unavailable', retryable: true });
  });

  it('an unrequested close is never a normal end: retry, except for closes that reject our frames or the key', () => {
    for (const wire of [sarvamSttWire, sarvamTtsWire]) {
      expect(wire.classifyClose(1000, '')).toMatchObject({ retryable: true });
      expect(wire.classifyClose(1000, 'idle timeout: no audio received')).toMatchObject({ retryable: true, kind: 'timeout' });
      expect(wire.classifyClose(1006, '')).toMatchObject({ retryable: true, kind: 'unavailable' });
      expect(wire.classifyClose(1011, 'Internal server error')).toMatchObject({ retryable: true });
      expect(wire.classifyClose(1008, 'Invalid API subscription key')).toMatchObject({ retryable: false, kind: 'auth' });
      expect(wire.classifyClose(1007, 'invalid payload')).toMatchObject({ retryable: false, kind: 'bad-request' });
    }
  });
});

describe('sarvamai TTS wire: connect, formats and config', () => {
  it('connects to /text-to-speech/ws with the model and send_completion_event=true in the query', () => {
    const { url, headers } = sarvamTtsWire.connect(tts({ endpoint: 'ws://127.0.0.1:9999' }));
    expect(url).toBe('ws://127.0.0.1:9999/text-to-speech/ws?model=bulbul%3Av2&send_completion_event=true');
    expect(headers).toEqual({ 'Api-Subscription-Key': 'sk-1' });
    expect(new URL(sarvamTtsWire.connect(tts({ model: 'bulbul:v3', voice: 'shubh' })).url).searchParams.get('model')).toBe('bulbul:v3');
    expect(sarvamTtsWire.capabilities).toEqual({ wordTimings: false, outputFormats: SARVAM_TTS_FORMATS, edgeCapable: true, multiplexed: false, cancelWithoutClosing: false, keepAlive: true });
    expect(sarvamTtsWire.lastPieceEndsUtterance).toBe(true);
    expect(sarvamTtsWire.keepAliveMessage?.message()).toBe('{"type":"ping"}');
    expect(sarvamTtsWire.keepAliveMessage?.intervalMs).toBeLessThan(60_000);
  });

  it.each([
    [PIPELINE_FORMAT, 'linear16', '16000'],
    [{ encoding: 'pcm16', sampleRateHz: 8000 }, 'linear16', '8000'],
    [{ encoding: 'pcm16', sampleRateHz: 22050 }, 'linear16', '22050'],
    [{ encoding: 'pcm16', sampleRateHz: 24000 }, 'linear16', '24000'],
    [MULAW_8K, 'mulaw', '8000'],
    [ALAW_8K, 'alaw', '8000'],
  ] as [AudioFormat, string, string][])('%j → output_audio_codec %s at speech_sample_rate %s', (format, codec, rate) => {
    expect(sarvamOutputFormat(format)).toEqual({ codec, sampleRate: rate });
    expect(config(tts({ format })).data).toMatchObject({ output_audio_codec: codec, speech_sample_rate: rate });
  });

  it('refuses formats it cannot produce, before connecting', () => {
    for (const format of [{ encoding: 'pcm16', sampleRateHz: 48000 }, { encoding: 'mulaw', sampleRateHz: 16000 }] as AudioFormat[]) {
      expect(thrown(() => sarvamOutputFormat(format))).toMatchObject({ code: 'SARVAMAI_FORMAT', kind: 'bad-request', retryable: false });
      expect(thrown(() => sarvamTtsWire.connect(tts({ format })))).toMatchObject({ code: 'SARVAMAI_FORMAT' });
    }
    const missing = thrown(() => sarvamTtsWire.connect(tts({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'SARVAMAI_AUTH', kind: 'auth', retryable: false });
    expect(missing.message).toContain('sarvamai');
  });

  it('the config carries language (as xx-IN), speaker, model and format; bulbul:v2 options without v3-only ones', () => {
    const msg = config(tts({ language: 'hi', options: { pace: 1.2, pitch: 0.1, loudness: 1.5, temperature: 0.4, enablePreprocessing: true, minBufferSize: 30, maxChunkLength: 200 } }));
    expect(msg).toEqual({
      type: 'config',
      data: {
        target_language_code: 'hi-IN',
        speaker: 'anushka',
        model: 'bulbul:v2',
        speech_sample_rate: '16000',
        output_audio_codec: 'linear16',
        pace: 1.2,
        pitch: 0.1,
        loudness: 1.5,
        enable_preprocessing: true,
        min_buffer_size: 30,
        max_chunk_length: 200,
      },
    });
  });

  it('bulbul:v3 drops pitch and loudness, keeps temperature and dict_id, defaults the speaker to shubh, and checks its pace range', () => {
    const data = config(tts({ model: 'bulbul:v3', voice: undefined, options: { pitch: 0.1, loudness: 1.5, temperature: 0.4, dictId: 'dict-1' } })).data;
    expect(data).toMatchObject({ speaker: 'shubh', model: 'bulbul:v3', temperature: 0.4, dict_id: 'dict-1' });
    expect(data).not.toHaveProperty('pitch');
    expect(data).not.toHaveProperty('loudness');
    expect(config(tts({ voice: undefined })).data.speaker).toBe('anushka');
    expect(thrown(() => config(tts({ model: 'bulbul:v3', options: { pace: 2.5 } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => config(tts({ options: { pace: 9 } })))).toMatchObject({ code: 'SARVAMAI_BAD_OPTIONS' });
  });

  it('a pooled socket is shared only by utterances with the same config and key; the key is not kept in clear', () => {
    const key = sarvamTtsWire.connectionKey(tts());
    expect(sarvamTtsWire.connectionKey(tts())).toBe(key);
    expect(sarvamTtsWire.connectionKey(tts({ voice: 'vidya' }))).not.toBe(key);
    expect(sarvamTtsWire.connectionKey(tts({ format: MULAW_8K }))).not.toBe(key);
    expect(sarvamTtsWire.connectionKey(tts({ language: 'hi' }))).not.toBe(key);
    expect(sarvamTtsWire.connectionKey(tts({ options: { pace: 1.1 } }))).not.toBe(key);
    expect(sarvamTtsWire.connectionKey(tts({ apiKey: 'sk-2' }))).not.toBe(key);
    expect(key).not.toContain('sk-1');
  });
});

describe('sarvamai TTS wire: utterances', () => {
  it('each piece is text + flush; end sends nothing (the last final ends the utterance); cancel closes the socket', () => {
    const u = sarvamTtsWire.utterance('ctx-1', tts());
    expect(u.begin()).toEqual([]);
    expect(u.text('hello there.', 0)).toEqual(['{"type":"text","data":{"text":"hello there."}}', '{"type":"flush"}']);
    expect(u.text('', 1)).toEqual(['{"type":"flush"}']);
    expect(u.end()).toEqual([]);
    expect(u.cancel()).toBe('close-socket');
  });

  it('pieces longer than 2500 characters go out as several text messages cut at whitespace, then one flush', () => {
    const long = 'hello there what is the weather today '.repeat(100);
    const messages = sarvamTtsWire.utterance('ctx-1', tts()).text(long, 0);
    expect(messages.at(-1)).toBe('{"type":"flush"}');
    const texts = messages.slice(0, -1).map((m) => (JSON.parse(m) as { data: { text: string } }).data.text);
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.every((t) => t.length <= 2500)).toBe(true);
    expect(texts.slice(0, -1).every((t) => t.endsWith(' '))).toBe(true);
    expect(texts.join('')).toBe(long);
    expect(splitText('x'.repeat(5001))).toEqual(['x'.repeat(2500), 'x'.repeat(2500), 'x']);
  });
});

describe('sarvamai TTS wire: server frames', () => {
  const audio = (bytes: Uint8Array, contentType = 'audio/pcm') => JSON.stringify({ type: 'audio', data: { audio: Buffer.from(bytes).toString('base64'), content_type: contentType, request_id: 'r1' } });

  it('audio → the raw bytes', () => {
    expect(sarvamTtsWire.decode(audio(new Uint8Array([1, 2, 3, 4])))).toEqual([{ type: 'audio', data: new Uint8Array([1, 2, 3, 4]) }]);
  });

  it('a WAV header at the start of a chunk is stripped (PCM16 and G.711 with its fact chunk); a header-only chunk is nothing', () => {
    const samples = new Uint8Array([10, 20, 30, 40, 50, 60]);
    expect(sarvamTtsWire.decode(audio(encodeWav(PIPELINE_FORMAT, samples), 'audio/wav'))).toEqual([{ type: 'audio', data: samples }]);
    expect(sarvamTtsWire.decode(audio(encodeWav(MULAW_8K, samples), 'audio/wav'))).toEqual([{ type: 'audio', data: samples }]);
    expect(sarvamTtsWire.decode(audio(encodeWav(PIPELINE_FORMAT, new Uint8Array(0)), 'audio/wav'))).toEqual([]);
    expect([...stripWavHeader(encodeWav(ALAW_8K, samples))]).toEqual([...samples]);
    const notWav = new TextEncoder().encode('RIFFxxxxAVI data');
    expect(stripWavHeader(notWav)).toBe(notWav);
  });

  it('compressed audio (the server default mp3) is an error, not noise', () => {
    const error = errorOf(sarvamTtsWire.decode(audio(new Uint8Array([0xff, 0xfb, 0x90, 0x00]), 'audio/mpeg')));
    expect(error).toMatchObject({ code: 'SARVAMAI_FORMAT', kind: 'bad-request', retryable: false });
  });

  it('event final → pieceDone; other events, pongs and unknown types → nothing', () => {
    expect(sarvamTtsWire.decode('{"type":"event","data":{"event_type":"final","message":"done","timestamp":"2026-01-01T00:00:00Z"}}')).toEqual([{ type: 'pieceDone' }]);
    expect(sarvamTtsWire.decode('{"type":"event","data":{"event_type":"started"}}')).toEqual([]);
    expect(sarvamTtsWire.decode('{"type":"pong"}')).toEqual([]);
    expect(sarvamTtsWire.decode('{"type":"no-such-message","x":[1,2]}')).toEqual([]);
  });

  it.each([
    [{ message: 'Text exceeds 2500 characters', code: 422, request_id: 'r1' }, 'bad-request', false],
    [{ message: 'Invalid API subscription key', code: 403 }, 'auth', false],
    [{ message: 'Too many requests', code: 429 }, 'rate-limit', true],
    [{ message: 'Internal error', code: 500 }, 'unavailable', true],
    [{ message: 'Speaker anushka is not compatible with bulbul:v3' }, 'bad-request', false],
  ])('error %j → %s (retryable %s)', (data, kind, retryable) => {
    expect(errorOf(sarvamTtsWire.decode(JSON.stringify({ type: 'error', data })))).toMatchObject({ kind, retryable });
  });

  it.each([
    ['not JSON', '{"type":'],
    ['a binary frame', new Uint8Array([1, 2, 3])],
    ['audio that is not base64', '{"type":"audio","data":{"audio":"***","content_type":"audio/pcm"}}'],
    ['audio without data', '{"type":"audio","data":{"content_type":"audio/pcm"}}'],
    ['an event without event_type', '{"type":"event","data":{}}'],
  ])('a malformed frame (%s) is a SARVAMAI_PROTOCOL error of kind protocol', (_name, frame) => {
    expect(thrown(() => sarvamTtsWire.decode(frame))).toMatchObject({ code: 'SARVAMAI_PROTOCOL', kind: 'protocol' });
  });
});

describe('sarvamai adapters', () => {
  it('register as sarvamai, need a credential, and expose the wires’ capabilities and option schemas', () => {
    const s = createSarvamStt(deps);
    expect(s).toMatchObject({ id: 'sarvamai', requiresCredential: true, capabilities: sarvamSttWire.capabilities });
    expect(s.optionsSchema?.safeParse({ mode: 'translate', audioChunkMs: 60 }).success).toBe(true);
    expect(s.optionsSchema?.safeParse({ audioChunkMs: 7 }).success).toBe(false);
    const t = createSarvamTts(deps);
    expect(t).toMatchObject({ id: 'sarvamai', requiresCredential: true, capabilities: sarvamTtsWire.capabilities });
    expect(t.optionsSchema?.safeParse({ pace: 1.1, temperature: 0.5 }).success).toBe(true);
    expect(t.optionsSchema?.safeParse({ pitch: 3 }).success).toBe(false);
  });

  it('STT open refuses bad options and a missing key without connecting', async () => {
    const connect = vi.fn(deps.connect);
    const s = createSarvamStt({ connect });
    await expect(s.open(stt({ options: { audioChunkMs: 30 } }), () => {})).rejects.toMatchObject({ kind: 'bad-request' });
    await expect(s.open(stt({ apiKey: undefined }), () => {})).rejects.toMatchObject({ kind: 'auth', retryable: false });
    expect(connect).not.toHaveBeenCalled();
  });
});

describe('sarvamai STT: audio batching (the socket base, sized by the wire)', () => {
  it('the wire asks for audioChunkMs messages, unpadded', () => {
    const sizing = sarvamSttWire.audioMessageMs as (options: SttSessionOptions) => unknown;
    expect(sizing(stt())).toEqual({ min: 100, max: 100 });
    expect(sizing(stt({ options: { audioChunkMs: 60 } }))).toEqual({ min: 60, max: 60 });
    expect(sarvamSttWire.replayPacing).toBeUndefined();
  });

  /** The adapter over an in-memory socket: what it sent, as PCM (audio) or the text frame (anything else). */
  async function open(options: Record<string, unknown> = {}) {
    const sent: (Uint8Array | string)[] = [];
    const connect: SocketFactory = async () => ({
      send: (d) => {
        const text = typeof d === 'string' ? d : new TextDecoder().decode(d);
        const audio = text.startsWith('{"audio"') ? (JSON.parse(text) as { audio: { data: string } }).audio.data : undefined;
        sent.push(audio === undefined ? text : Uint8Array.from(atob(audio), (c) => c.charCodeAt(0)));
      },
      bufferedAmount: 0,
      open: true,
      close: () => {},
    });
    const session = await createSarvamStt({ connect }).open(stt({ endpoint: 'ws://fake', options }), () => {});
    const calls = () => sent.map((m) => (typeof m === 'string' ? (m.includes('flush') ? 'flush' : m) : `audio:${m.byteLength}`));
    return { session, sent, calls };
  }

  const frame = (n: number): AudioFrame => ({ format: PIPELINE_FORMAT, data: new Uint8Array(640).fill(n) });

  it('sends whole 100 ms messages of the frames in order; finalize and close send the rest first, unpadded', async () => {
    const { session, sent, calls } = await open();
    for (let i = 1; i <= 12; i++) session.write(frame(i));
    expect(calls()).toEqual(['audio:3200', 'audio:3200']);
    const [first, second] = sent as Uint8Array[];
    expect([...first!.subarray(0, 640)].every((b) => b === 1)).toBe(true);
    expect([...second!.subarray(2560)].every((b) => b === 10)).toBe(true);
    session.finalize();
    expect(calls().slice(2)).toEqual(['audio:1280', 'flush']);
    expect([...(sent[2] as Uint8Array)].every((b, i) => b === (i < 640 ? 11 : 12))).toBe(true);
    session.write(frame(13));
    await session.close();
    expect(calls().slice(4)).toEqual(['audio:640']);
    session.write(frame(14));
    expect(calls()).toHaveLength(5);
  });

  it('audioChunkMs sets the message size', async () => {
    const { session, calls } = await open({ audioChunkMs: 60 });
    for (let i = 1; i <= 7; i++) session.write(frame(i));
    expect(calls()).toEqual(['audio:1920', 'audio:1920']);
    await session.close();
  });

  it('a part-filled message goes out once no audio came for 2 × audioChunkMs (loose timing)', async () => {
    const { session, calls } = await open();
    session.write(frame(1));
    await new Promise((r) => setTimeout(r, 120));
    expect(calls()).toEqual([]);
    await vi.waitFor(() => expect(calls()).toEqual(['audio:640']), { timeout: 1000, interval: 10 });
    await session.close();
  });
});
